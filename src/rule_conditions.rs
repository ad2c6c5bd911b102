//! A content rule's conditions beyond its target pattern: on the host a
//! request names and on its header fields. Compiled with the table (on the
//! control thread, never on a worker) and matched per request.

use regex::{Regex, RegexBuilder};

use crate::schedulers::RequestInfo;
use crate::table::RuleMatch;

/// The host and header conditions of one rule, compiled.
#[derive(Debug, Default)]
pub struct Conditions {
    /// Matched in any case (host names are case-insensitive, RFC 9110 4.2.3).
    host: Option<Regex>,
    /// Each by its field name (lower case); all must hold.
    /// On the value's bytes: a value that is not UTF-8 is still matched.
    headers: Vec<(String, regex::bytes::Regex)>,
}

/// A pattern of a rule that the regex engine refused (its size, mostly:
/// the syntax was checked with the spec).
#[derive(Debug)]
pub struct Refused {
    pub pattern: String,
    pub error: regex::Error,
}

impl Conditions {
    /// The host and header conditions of `when`, compiled.
    pub fn compile(when: &RuleMatch) -> Result<Self, Refused> {
        let refused = |pattern: &str| {
            let pattern = pattern.to_string();
            move |error| Refused { pattern, error }
        };
        let host = when
            .host
            .as_deref()
            .map(|host| {
                RegexBuilder::new(host)
                    .case_insensitive(true)
                    .build()
                    .map_err(refused(host))
            })
            .transpose()?;
        let headers = when
            .headers
            .iter()
            .map(|h| {
                let pattern = regex::bytes::Regex::new(&h.pattern).map_err(refused(&h.pattern))?;
                Ok((h.name.clone(), pattern))
            })
            .collect::<Result<_, Refused>>()?;
        Ok(Self { host, headers })
    }

    /// Whether `request` meets every condition. A request naming no host
    /// meets no host condition; one without the field, no condition on it.
    pub fn admit(&self, request: &RequestInfo<'_>) -> bool {
        let host_ok = self.host.as_ref().is_none_or(|pattern| {
            request
                .host
                .is_some_and(|authority| pattern.is_match(host_name(authority)))
        });
        host_ok
            && self.headers.iter().all(|(name, pattern)| {
                request
                    .headers
                    .any_value(name, &mut |value| pattern.is_match(value))
            })
    }
}

/// The host a rule matches: the authority without its port, and without
/// the final dot of a fully qualified name (`Example.COM.:8080` is
/// `example.com` once the parser lowered it), as nginx's `server_name` and
/// HAProxy's normalised `hdr(host)` see it. An IPv6 literal keeps its
/// brackets.
pub fn host_name(authority: &str) -> &str {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest
            .find(']')
            .map_or(authority, |end| &authority[..end + 2]),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host),
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedulers::HeaderLookup;
    use crate::table::HeaderMatch;
    use std::net::Ipv4Addr;

    struct Fields(Vec<(&'static str, &'static [u8])>);

    impl HeaderLookup for Fields {
        fn header(&self, name: &str) -> Option<&str> {
            let mut values = self.0.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
            values.next().and_then(|(_, v)| std::str::from_utf8(v).ok())
        }

        fn any_value(&self, name: &str, accept: &mut dyn FnMut(&[u8]) -> bool) -> bool {
            let mut values = self.0.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
            values.any(|(_, v)| accept(v))
        }
    }

    fn when(host: Option<&str>, headers: &[&str]) -> Conditions {
        let when = RuleMatch {
            pattern: None,
            host: host.map(str::to_string),
            headers: headers
                .iter()
                .map(|h| h.parse::<HeaderMatch>().unwrap())
                .collect(),
        };
        Conditions::compile(&when).unwrap()
    }

    fn admits(conditions: &Conditions, host: Option<&str>, fields: &Fields) -> bool {
        let request = RequestInfo {
            path: "/",
            host,
            client: Ipv4Addr::LOCALHOST.into(),
            headers: fields,
        };
        conditions.admit(&request)
    }

    #[test]
    fn host_is_matched_without_port_or_final_dot_in_any_case() {
        for (authority, name) in [
            ("img.example.com:8080", "img.example.com"),
            ("img.example.com.", "img.example.com"),
            ("img.example.com.:81", "img.example.com"),
            ("img", "img"),
            ("[::1]:8080", "[::1]"),
            ("[::1]", "[::1]"),
            ("10.0.0.1:80", "10.0.0.1"),
        ] {
            assert_eq!(host_name(authority), name, "{authority}");
        }
        let img = when(Some(r"^IMG\.example\.com$"), &[]);
        let none = Fields(vec![]);
        assert!(admits(&img, Some("img.example.com:8080"), &none));
        assert!(admits(&img, Some("img.example.com."), &none));
        assert!(!admits(&img, Some("www.example.com"), &none));
        assert!(
            !admits(&img, None, &none),
            "no host meets no host condition"
        );
    }

    #[test]
    fn every_header_condition_must_hold_on_some_field_line() {
        let tenant = when(None, &["X-Tenant: ^a", "accept: json"]);
        let both = Fields(vec![("x-tenant", b"acme"), ("Accept", b"application/json")]);
        assert!(admits(&tenant, None, &both));
        let one = Fields(vec![("X-TENANT", b"acme")]);
        assert!(!admits(&tenant, None, &one), "all conditions hold");
        let other = Fields(vec![("x-tenant", b"zeta"), ("accept", b"application/json")]);
        assert!(!admits(&tenant, None, &other));
        // A field sent twice: either line may match.
        let twice = Fields(vec![
            ("x-tenant", b"zeta"),
            ("accept", b"text/html"),
            ("x-tenant", b"acme"),
            ("accept", b"application/json"),
        ]);
        assert!(admits(&tenant, None, &twice));
        // An empty pattern asks only that the field be there.
        let present = when(None, &["X-Debug:"]);
        assert!(admits(&present, None, &Fields(vec![("x-debug", b"")])));
        assert!(!admits(&present, None, &Fields(vec![])));
        // A value that is not UTF-8 (obs-text) is matched, not skipped.
        let latin1 = Fields(vec![("x-debug", b"caf\xe9"), ("x-tenant", b"acme\xff")]);
        assert!(admits(&present, None, &latin1));
        assert!(admits(&when(None, &["X-Tenant: ^acme"]), None, &latin1));
    }

    #[test]
    fn no_condition_admits_everything() {
        let none = Conditions::default();
        assert!(admits(&none, None, &Fields(vec![])));
    }
}
