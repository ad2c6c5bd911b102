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
    headers: Vec<(String, Regex)>,
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
                let pattern = Regex::new(&h.pattern).map_err(refused(&h.pattern))?;
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

    struct Fields(Vec<(&'static str, &'static str)>);

    impl HeaderLookup for Fields {
        fn header(&self, name: &str) -> Option<&str> {
            let mut values = self.0.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
            values.next().map(|(_, v)| *v)
        }

        fn any_value(&self, name: &str, accept: &mut dyn FnMut(&str) -> bool) -> bool {
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
        let both = Fields(vec![("x-tenant", "acme"), ("Accept", "application/json")]);
        assert!(admits(&tenant, None, &both));
        let one = Fields(vec![("X-TENANT", "acme")]);
        assert!(!admits(&tenant, None, &one), "all conditions hold");
        let other = Fields(vec![("x-tenant", "zeta"), ("accept", "application/json")]);
        assert!(!admits(&tenant, None, &other));
        // A field sent twice: either line may match.
        let twice = Fields(vec![
            ("x-tenant", "zeta"),
            ("accept", "text/html"),
            ("x-tenant", "acme"),
            ("accept", "application/json"),
        ]);
        assert!(admits(&tenant, None, &twice));
        // An empty pattern asks only that the field be there.
        let present = when(None, &["X-Debug:"]);
        assert!(admits(&present, None, &Fields(vec![("x-debug", "")])));
        assert!(!admits(&present, None, &Fields(vec![])));
    }

    #[test]
    fn no_condition_admits_everything() {
        let none = Conditions::default();
        assert!(admits(&none, None, &Fields(vec![])));
    }
}
