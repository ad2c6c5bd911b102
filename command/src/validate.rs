//! One validator per field. The TOML file and tcpvsadm hand the operator's
//! text to these same functions, so both accept the same values and refuse
//! the others with the same message; the front ends only add where the value
//! was (`file:line: key:` or the option).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use crate::health::{duration_text, AdminState, CheckKind, CheckSpec, HttpCheck, StatusRange};
use crate::sched_opts::{self, SchedOptionError, SchedParams};
use crate::spec::{
    HeaderMatch, Protocol, RuleMatch, SchedOptions, SchedulerKind, ServerAddr, ServiceId,
    TableError, Weight,
};

/// A service ident: 1 to 16 letters, digits, `-`, `_` or `.`.
pub fn ident(text: &str) -> Result<ServiceId, TableError> {
    let valid = !text.is_empty()
        && text.len() <= ServiceId::MAX_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if valid {
        Ok(ServiceId::new_unchecked(text))
    } else {
        Err(TableError::BadIdent(text.to_string()))
    }
}

/// A listen or server address, `IP:PORT` (`[v6]:PORT`). Host names are not
/// resolved here: tcpvsadm resolves them before sending, as ipvsadm does.
pub fn address(text: &str) -> Result<SocketAddr, TableError> {
    text.parse().map_err(|_| {
        if text.contains(':') {
            TableError::BadAddress(text.to_string())
        } else {
            TableError::NoPort(text.to_string())
        }
    })
}

/// A real server's address: port 0 is no port to connect to.
pub fn server(text: &str) -> Result<ServerAddr, TableError> {
    match address(text)? {
        addr if addr.port() == 0 => Err(TableError::ServerPortZero(text.to_string())),
        addr => Ok(ServerAddr(addr)),
    }
}

/// What an operator writes for a real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerText {
    /// `IP:PORT`.
    Addr(ServerAddr),
    /// `NAME:PORT`, for tcpvsd to resolve.
    Name { name: String, port: u16 },
}

/// A real server as `IP:PORT` or `NAME:PORT` (a DNS host name, RFC 1123);
/// the name is not looked up here.
pub fn server_text(text: &str) -> Result<ServerText, TableError> {
    if address(text).is_ok() {
        return server(text).map(ServerText::Addr);
    }
    let Some((name, port)) = text.rsplit_once(':') else {
        return Err(TableError::NoPort(text.to_string()));
    };
    // A mistyped address, not a name: said as `address` says it.
    if name.starts_with('[') || name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(TableError::BadAddress(text.to_string()));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| TableError::BadServer(text.to_string()))?;
    if !host_name(name) {
        return Err(TableError::BadServer(text.to_string()));
    }
    if port == 0 {
        return Err(TableError::ServerPortZero(text.to_string()));
    }
    Ok(ServerText::Name {
        name: name.to_string(),
        port,
    })
}

/// A DNS host name: dot-separated labels of letters, digits and inner
/// hyphens, 63 bytes at most each, 253 in all, a final dot allowed.
fn host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label)
}

/// How often server names are looked up again: `0` (or `0s`: only at load
/// and reload), else 1s to 24h.
pub fn resolve_interval(text: &str) -> Result<Duration, TableError> {
    let bad = || TableError::BadResolveInterval(text.to_string());
    match duration(text) {
        Err(TableError::ZeroDuration) => Ok(Duration::ZERO),
        Err(_) if text.trim() == "0" => Ok(Duration::ZERO),
        Ok(d) if (ms(1000)..=ms(86_400_000)).contains(&d) => Ok(d),
        _ => Err(bad()),
    }
}

/// A service's largest request body, nginx's `client_max_body_size`
/// notation: bytes, or a number with `k`, `m` or `g` (binary multiples);
/// `0` for no limit (`None`).
pub fn max_body(text: &str) -> Result<Option<u64>, TableError> {
    let expected = "a size such as 1048576, 512k, 10m or 1g (0: no limit)";
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let (digits, shift) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 10),
        Some(b'm') => (&lower[..lower.len() - 1], 20),
        Some(b'g') => (&lower[..lower.len() - 1], 30),
        _ => (&lower[..], 0),
    };
    let n: u64 = match digits.parse() {
        Ok(n) if digits.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return Err(bad_value(text, expected)),
    };
    match n.checked_mul(1 << shift) {
        Some(0) => Ok(None),
        // A body length must fit a signed 64-bit offset (issue 17).
        Some(bytes) if bytes <= i64::MAX as u64 => Ok(Some(bytes)),
        _ => Err(bad_value(text, expected)),
    }
}

/// A body size as [`max_body`] reads it, in the largest unit that divides it.
pub fn size_text(bytes: u64) -> String {
    let units = [(30, "g"), (20, "m"), (10, "k")];
    match units
        .iter()
        .find(|(shift, _)| bytes.is_multiple_of(1 << shift))
    {
        Some((shift, unit)) if bytes > 0 => format!("{}{unit}", bytes >> shift),
        _ => bytes.to_string(),
    }
}

/// `http` or `rtsp`.
pub fn protocol(text: &str) -> Result<Protocol, TableError> {
    Protocol::ALL
        .iter()
        .copied()
        .find(|p| p.name() == text)
        .ok_or_else(|| TableError::UnknownProtocol(text.to_string()))
}

/// A scheduler name, KTCPVS's `http` and `phttp` included (they are `wlc`).
pub fn scheduler(text: &str) -> Result<SchedulerKind, TableError> {
    Ok(text.parse::<SchedulerKind>()?)
}

/// A weight, 0 to 65535, as text (tcpvsadm's `-w`, a TOML integer printed).
pub fn weight(text: &str) -> Result<Weight, TableError> {
    let n: i64 = text
        .parse()
        .map_err(|_| TableError::NotAWeight(text.to_string()))?;
    u16::try_from(n)
        .map(Weight)
        .map_err(|_| TableError::WeightOutOfRange(n))
}

/// The longest persistence, as ipvsadm's `-p` (a template's expiry is
/// computed from it on every request, so it must stay far from overflow).
pub const MAX_PERSISTENCE: Duration = Duration::from_secs(31 * 86_400);

/// A persistence timeout: whole seconds (`300`, `0` for none) or a duration
/// in whole seconds (`90s`, `5m`, `1h`), at most [`MAX_PERSISTENCE`].
pub fn persistence(text: &str) -> Result<Option<Duration>, TableError> {
    let bad = || TableError::BadPersistence(text.to_string());
    let trimmed = text.trim();
    let timeout = if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(trimmed.parse().map_err(|_| bad())?)
    } else {
        match duration(trimmed) {
            Ok(d) if d.subsec_nanos() == 0 => d,
            _ => return Err(bad()),
        }
    };
    if timeout > MAX_PERSISTENCE {
        return Err(bad());
    }
    Ok(Some(timeout).filter(|t| !t.is_zero()))
}

/// A timeout: `250ms`, `10s`, `2m`, `1h`, longer than zero.
pub fn duration(text: &str) -> Result<Duration, TableError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || TableError::BadDuration(text.to_string());
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    match millis {
        Some(0) => Err(TableError::ZeroDuration),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Err(bad()),
    }
}

/// The `X-Forwarded-Proto` value: a URI scheme such as `https`; empty for none.
pub fn forwarded_proto(text: &str) -> Result<Option<String>, TableError> {
    if text.is_empty() {
        return Ok(None);
    }
    let mut chars = text.chars();
    let scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if scheme {
        Ok(Some(text.to_string()))
    } else {
        Err(TableError::BadForwardedProto(text.to_string()))
    }
}

/// A content rule's pattern; gives its number of capture groups. Parsed by
/// the parser the daemon's regex engine compiles with.
pub fn pattern(text: &str) -> Result<usize, TableError> {
    if text.is_empty() {
        return Err(TableError::EmptyPattern);
    }
    Ok(parsed(text)?.properties().explicit_captures_len())
}

/// A regular expression parsed as the daemon's regex engine parses it; when
/// refused, the last line of the parser's message (it spans lines, and its
/// last says what is wrong).
pub fn pattern_syntax(text: &str) -> Result<regex_syntax::hir::Hir, String> {
    regex_syntax::Parser::new().parse(text).map_err(|e| {
        e.to_string()
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("invalid regex")
            .trim()
            .to_string()
    })
}

/// A rule's conditions: its target pattern (giving its number of capture
/// groups, 0 without one), its host pattern and its header conditions. A
/// rule with none of them is refused: it would be a default rule in
/// disguise.
pub fn rule_match(when: &RuleMatch) -> Result<usize, TableError> {
    let groups = match &when.pattern {
        Some(target) => pattern(target)?,
        None if when.host.is_none() && when.headers.is_empty() => {
            return Err(TableError::EmptyPattern)
        }
        None => 0,
    };
    if let Some(host) = &when.host {
        host_pattern(host)?;
    }
    for header in &when.headers {
        header_name(&header.name)?;
        any_pattern(&header.pattern)?;
    }
    Ok(groups)
}

/// A rule's pattern on the request's host, matched in any case.
pub fn host_pattern(text: &str) -> Result<String, TableError> {
    if text.is_empty() {
        return Err(TableError::EmptyHostPattern);
    }
    any_pattern(text)?;
    Ok(text.to_string())
}

/// A rule's condition on a header field, `NAME: PATTERN`: the name is a
/// token, kept in lower case; blanks around the pattern are dropped (as
/// around a field value). An empty pattern asks only that the field be
/// there.
pub fn header_match(text: &str) -> Result<HeaderMatch, TableError> {
    let (name, pattern) = text
        .split_once(':')
        .ok_or_else(|| TableError::BadHeaderMatch(text.to_string()))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(TableError::BadHeaderMatch(text.to_string()));
    }
    header_name(name)?;
    let pattern = pattern.trim();
    any_pattern(pattern)?;
    Ok(HeaderMatch {
        name: name.to_ascii_lowercase(),
        pattern: pattern.to_string(),
    })
}

/// A header field name: a token (RFC 9110 5.1).
fn header_name(name: &str) -> Result<(), TableError> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        Ok(())
    } else {
        Err(TableError::BadHeaderName(name.to_string()))
    }
}

/// A regular expression the daemon's engine compiles, empty allowed.
fn any_pattern(text: &str) -> Result<(), TableError> {
    parsed(text).map(drop)
}

/// `text` parsed as a regular expression, or refused as a pattern.
fn parsed(text: &str) -> Result<regex_syntax::hir::Hir, TableError> {
    pattern_syntax(text).map_err(|reason| TableError::BadPattern {
        pattern: text.to_string(),
        reason: reason.trim_start_matches("error: ").to_string(),
    })
}

/// A scheduler's options, read for its algorithm: see [`crate::sched_opts`].
pub fn sched_opts(
    kind: SchedulerKind,
    given: &SchedOptions,
) -> Result<SchedParams, SchedOptionError> {
    sched_opts::read(kind, given)
}

/// KTCPVS's `-m N`: a capture group number, 0 to 99.
pub fn match_group(text: &str) -> Result<u32, TableError> {
    match text.parse::<u32>() {
        Ok(group) if group <= 99 => Ok(group),
        _ => Err(TableError::BadMatchGroupNumber(text.to_string())),
    }
}

/// `group` must be a capture group of `pattern`, which has `groups` of them
/// (group 0 is the whole match).
pub fn group_in_pattern(group: u32, pattern: &str, groups: usize) -> Result<(), TableError> {
    if group as usize > groups {
        return Err(TableError::BadMatchGroup {
            pattern: pattern.to_string(),
            group,
            groups,
        });
    }
    Ok(())
}

/// `group` must be a capture group of the rule's target pattern, which has
/// `groups` of them; a rule without one has none to hash.
pub fn rule_group(group: u32, when: &RuleMatch, groups: usize) -> Result<(), TableError> {
    match &when.pattern {
        Some(pattern) => group_in_pattern(group, pattern, groups),
        None => Err(TableError::MatchGroupWithoutPattern(when.to_string())),
    }
}

/// `text` as a duration within `range`, or refused as not `expected`.
fn duration_in(
    text: &str,
    range: RangeInclusive<Duration>,
    expected: &'static str,
) -> Result<Duration, TableError> {
    match duration(text) {
        Ok(d) if range.contains(&d) => Ok(d),
        _ => Err(bad_value(text, expected)),
    }
}

/// `text` as a number within `range`, or refused as not `expected`.
fn number_in<T: FromStr + PartialOrd>(
    text: &str,
    range: RangeInclusive<T>,
    expected: &'static str,
) -> Result<T, TableError> {
    match text.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(bad_value(text, expected)),
    }
}

fn bad_value(text: &str, expected: &'static str) -> TableError {
    TableError::BadValue {
        value: text.to_string(),
        expected,
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Tries of a request on other servers after a failed one, 0 to 10.
pub fn retries(text: &str) -> Result<u32, TableError> {
    number_in(text, 0..=10, "a number of retries from 0 to 10")
}

/// How long a server coming back ramps its weight up: `0s` (off) to 1h.
pub fn slowstart(text: &str) -> Result<Duration, TableError> {
    match duration(text) {
        Err(TableError::ZeroDuration) => Ok(Duration::ZERO),
        Ok(d) if d <= ms(3_600_000) => Ok(d),
        _ => Err(bad_value(text, "a duration from 0s (off) to 1h")),
    }
}

/// An active check's `type`: `tcp`, `http` (with the default request) or `rtsp`.
pub fn check_type(text: &str) -> Result<CheckKind, TableError> {
    match text {
        "tcp" => Ok(CheckKind::Tcp),
        "http" => Ok(CheckKind::Http(HttpCheck::default())),
        "rtsp" => Ok(CheckKind::Rtsp),
        _ => Err(bad_value(text, "a check type (tcp, http or rtsp)")),
    }
}

/// Between two checks (or agent reads) of a server: 100ms to 1h.
pub fn check_interval(text: &str) -> Result<Duration, TableError> {
    duration_in(text, ms(100)..=ms(3_600_000), "a duration from 100ms to 1h")
}

/// One check (or agent read), connect to verdict: 10ms to 1m.
pub fn check_timeout(text: &str) -> Result<Duration, TableError> {
    duration_in(text, ms(10)..=ms(60_000), "a duration from 10ms to 1m")
}

/// A check's timeout must end before the next check starts.
pub fn timeout_below_interval(timeout: Duration, interval: Duration) -> Result<(), TableError> {
    if timeout < interval {
        Ok(())
    } else {
        Err(TableError::TimeoutNotBelowInterval {
            timeout: duration_text(timeout),
            interval: duration_text(interval),
        })
    }
}

/// `rise` or `fall`: consecutive results that change a server's state, 1 to 100.
pub fn threshold(text: &str) -> Result<u32, TableError> {
    number_in(text, 1..=100, "a number from 1 to 100")
}

/// An HTTP check's method: a token (RFC 9110), such as `GET` or `HEAD`.
pub fn http_method(text: &str) -> Result<String, TableError> {
    let token = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    token
        .then(|| text.to_string())
        .ok_or_else(|| bad_value(text, "a method (a token such as GET or HEAD)"))
}

/// An HTTP check's target: starts with `/`, no space or control byte.
pub fn http_path(text: &str) -> Result<String, TableError> {
    let path = text.starts_with('/') && !text.bytes().any(|b| b == b' ' || b.is_ascii_control());
    path.then(|| text.to_string())
        .ok_or_else(|| bad_value(text, "a path (starting with /, without spaces)"))
}

/// An HTTP check's Host: not empty, no space or control byte.
pub fn http_host(text: &str) -> Result<String, TableError> {
    let host = !text.is_empty() && !text.bytes().any(|b| b == b' ' || b.is_ascii_control());
    host.then(|| text.to_string())
        .ok_or_else(|| bad_value(text, "a host name (without spaces)"))
}

/// A text an HTTP check's response body must contain: not empty, no
/// control byte.
pub fn expected_body(text: &str) -> Result<String, TableError> {
    let body = !text.is_empty() && !text.chars().any(char::is_control);
    body.then(|| text.to_string()).ok_or_else(|| {
        bad_value(
            text,
            "a text to find in the body (without control characters)",
        )
    })
}

/// The statuses an HTTP check passes: `200-399` or `204`.
pub fn status_range(text: &str) -> Result<StatusRange, TableError> {
    text.parse().map_err(TableError::Unparsed)
}

/// An agent's port on the real server, 1 to 65535.
pub fn agent_port(text: &str) -> Result<u16, TableError> {
    number_in(text, 1..=65535, "a port from 1 to 65535")
}

/// Failures of real traffic that take a server out, 0 (never) to 1000.
pub fn max_fails(text: &str) -> Result<u32, TableError> {
    number_in(text, 0..=1000, "a number from 0 (off) to 1000")
}

/// The window in which `max_fails` count, and how long the server is
/// then out: 1s to 1h.
pub fn fail_timeout(text: &str) -> Result<Duration, TableError> {
    duration_in(text, ms(1000)..=ms(3_600_000), "a duration from 1s to 1h")
}

/// A yes-or-no option (`on_5xx`): `yes`, `no`, `true` or `false`.
pub fn yes_no(text: &str) -> Result<bool, TableError> {
    match text {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(bad_value(text, "yes or no")),
    }
}

/// The state an operator puts a server in: `ready`, `drain` or `maint`.
pub fn admin_state(text: &str) -> Result<AdminState, TableError> {
    text.parse().map_err(TableError::Unparsed)
}

/// A check must speak the service's protocol, or plain TCP.
pub fn check_fits(
    service: &ServiceId,
    protocol: Protocol,
    check: &CheckSpec,
) -> Result<(), TableError> {
    let fits = match check.kind {
        CheckKind::Tcp => true,
        CheckKind::Http(_) => protocol == Protocol::Http,
        CheckKind::Rtsp => protocol == Protocol::Rtsp,
    };
    if fits {
        Ok(())
    } else {
        Err(TableError::CheckDoesNotFit {
            service: service.clone(),
            protocol,
            check: check.kind.name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedulers_by_name_and_ktcpvs_alias() {
        for &kind in SchedulerKind::ALL {
            assert_eq!(scheduler(kind.name()), Ok(kind));
        }
        assert_eq!(scheduler("http"), Ok(SchedulerKind::Wlc));
        assert_eq!(scheduler("phttp"), Ok(SchedulerKind::Wlc));
        assert_eq!(
            scheduler("fastest").unwrap_err().to_string(),
            "unknown scheduler `fastest` (known: rr, wrr, lc, wlc, sed, nq, sh, chash, lard, lardr)"
        );
    }

    #[test]
    fn weights_persistence_and_durations() {
        assert_eq!(weight("0"), Ok(Weight(0)));
        assert_eq!(weight("65535"), Ok(Weight(65535)));
        assert_eq!(weight("65536"), Err(TableError::WeightOutOfRange(65536)));
        assert_eq!(weight("-1"), Err(TableError::WeightOutOfRange(-1)));
        for bad in ["", "lots", "99999999999999999999"] {
            assert_eq!(weight(bad), Err(TableError::NotAWeight(bad.into())));
        }
        assert_eq!(persistence("300"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(persistence("5m"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(persistence("0"), Ok(None));
        assert_eq!(persistence("2678400"), Ok(Some(MAX_PERSISTENCE)));
        for bad in [
            "soon",
            "1500ms",
            "-1",
            "",
            "2678401",
            "18446744073709551615",
        ] {
            assert!(persistence(bad).is_err(), "{bad}");
        }
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("0s"), Err(TableError::ZeroDuration));
    }

    #[test]
    fn patterns_count_their_groups() {
        assert_eq!(pattern("^/home/([a-z]+)/(x)?"), Ok(2));
        assert_eq!(pattern(".*"), Ok(0));
        assert_eq!(pattern(""), Err(TableError::EmptyPattern));
        assert_eq!(
            pattern("(").unwrap_err().to_string(),
            "invalid pattern `(`: unclosed group"
        );
        assert!(group_in_pattern(2, "(a)", 1).is_err());
        assert_eq!(
            match_group("100"),
            Err(TableError::BadMatchGroupNumber("100".into()))
        );
    }

    #[test]
    fn a_server_at_port_zero_is_refused() {
        assert_eq!(
            server("127.0.0.1:0"),
            Err(TableError::ServerPortZero("127.0.0.1:0".into()))
        );
        assert!(server("127.0.0.1:1").is_ok());
        let message = server("[::1]:0").unwrap_err().to_string();
        assert!(message.contains("port other than 0"), "{message}");
    }

    #[test]
    fn body_sizes() {
        assert_eq!(max_body("0"), Ok(None));
        assert_eq!(max_body("1048576"), Ok(Some(1 << 20)));
        assert_eq!(max_body("512k"), Ok(Some(512 << 10)));
        assert_eq!(max_body("10M"), Ok(Some(10 << 20)));
        assert_eq!(max_body("1g"), Ok(Some(1 << 30)));
        for bad in ["", "k", "-1", "+5", "1.5m", "1t", "9999999999g", "1 m"] {
            assert!(max_body(bad).is_err(), "{bad}");
        }
        for bytes in [1, 1000, 1024, 3 << 20, 5 << 30, (1 << 20) + 1] {
            assert_eq!(max_body(&size_text(bytes)), Ok(Some(bytes)));
        }
        assert_eq!(size_text(10 << 20), "10m");
    }

    #[test]
    fn addresses_and_forwarded_proto() {
        assert!(address("[::1]:80").is_ok());
        assert_eq!(address("web"), Err(TableError::NoPort("web".into())));
        assert_eq!(
            address("999.1.1.1:80"),
            Err(TableError::BadAddress("999.1.1.1:80".into()))
        );
        assert_eq!(forwarded_proto(""), Ok(None));
        assert_eq!(forwarded_proto("https"), Ok(Some("https".into())));
        assert!(forwarded_proto("https\r\nX-Evil: 1").is_err());
    }

    /// Each health field's validator: its bounds accepted, one past each
    /// refused, with what it takes.
    #[test]
    fn health_fields_within_their_limits() {
        let d = Duration::from_millis;
        assert_eq!(retries("0"), Ok(0));
        assert_eq!(retries("10"), Ok(10));
        assert_eq!(
            retries("11").unwrap_err().to_string(),
            "`11` is not a number of retries from 0 to 10"
        );
        assert_eq!(slowstart("0s"), Ok(Duration::ZERO));
        assert_eq!(slowstart("1h"), Ok(d(3_600_000)));
        for bad in ["61m", "0", "soon"] {
            assert!(slowstart(bad).is_err(), "{bad}");
        }
        assert_eq!(check_type("tcp"), Ok(CheckKind::Tcp));
        assert_eq!(
            check_type("http"),
            Ok(CheckKind::Http(HttpCheck::default()))
        );
        assert_eq!(check_type("rtsp"), Ok(CheckKind::Rtsp));
        assert!(check_type("TCP").is_err());
        assert_eq!(check_interval("100ms"), Ok(d(100)));
        assert_eq!(check_interval("1h"), Ok(d(3_600_000)));
        for bad in ["99ms", "61m", "0s", "2"] {
            assert!(check_interval(bad).is_err(), "{bad}");
        }
        assert_eq!(check_timeout("10ms"), Ok(d(10)));
        assert_eq!(check_timeout("1m"), Ok(d(60_000)));
        for bad in ["9ms", "61s"] {
            assert!(check_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(timeout_below_interval(d(999), d(1000)), Ok(()));
        assert_eq!(
            timeout_below_interval(d(1000), d(1000))
                .unwrap_err()
                .to_string(),
            "timeout 1s must be below interval 1s"
        );
        assert_eq!((threshold("1"), threshold("100")), (Ok(1), Ok(100)));
        for bad in ["0", "101", "-1", "x"] {
            assert!(threshold(bad).is_err(), "{bad}");
        }
        assert_eq!(http_method("GET"), Ok("GET".into()));
        for bad in ["", "G T", "GET\r\n", "(x)"] {
            assert!(http_method(bad).is_err(), "{bad:?}");
        }
        assert_eq!(http_path("/health?x=1"), Ok("/health?x=1".into()));
        for bad in ["", "health", "/a b", "/a\nb"] {
            assert!(http_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            http_host("www.example.com:81"),
            Ok("www.example.com:81".into())
        );
        for bad in ["", "a b", "a\r\nX: y"] {
            assert!(http_host(bad).is_err(), "{bad:?}");
        }
        assert_eq!(expected_body("all good"), Ok("all good".into()));
        for bad in ["", "a\tb", "\u{7f}"] {
            assert!(expected_body(bad).is_err(), "{bad:?}");
        }
        assert_eq!(status_range("204").map(|s| s.to_string()), Ok("204".into()));
        assert!(status_range("399-200").is_err());
        assert_eq!((agent_port("1"), agent_port("65535")), (Ok(1), Ok(65535)));
        for bad in ["0", "65536"] {
            assert!(agent_port(bad).is_err(), "{bad}");
        }
        assert_eq!((max_fails("0"), max_fails("1000")), (Ok(0), Ok(1000)));
        assert!(max_fails("1001").is_err());
        assert_eq!(fail_timeout("1s"), Ok(d(1000)));
        assert_eq!(fail_timeout("1h"), Ok(d(3_600_000)));
        for bad in ["999ms", "61m"] {
            assert!(fail_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!((yes_no("yes"), yes_no("false")), (Ok(true), Ok(false)));
        assert!(yes_no("1").is_err());
        assert_eq!(admin_state("drain"), Ok(AdminState::Drain));
        assert_eq!(
            admin_state("down").unwrap_err().to_string(),
            "unknown state `down` (known: ready, drain, maint)"
        );
    }

    #[test]
    fn a_check_fits_its_protocol_or_is_tcp() {
        let web = ident("web").unwrap();
        let check = |kind| CheckSpec::new(kind);
        let http = || CheckKind::Http(HttpCheck::default());
        for protocol in [Protocol::Http, Protocol::Rtsp] {
            assert_eq!(check_fits(&web, protocol, &check(CheckKind::Tcp)), Ok(()));
        }
        assert_eq!(check_fits(&web, Protocol::Http, &check(http())), Ok(()));
        assert_eq!(
            check_fits(&web, Protocol::Rtsp, &check(CheckKind::Rtsp)),
            Ok(())
        );
        assert!(check_fits(&web, Protocol::Rtsp, &check(http())).is_err());
        assert_eq!(
            check_fits(&web, Protocol::Http, &check(CheckKind::Rtsp))
                .unwrap_err()
                .to_string(),
            "service `web` speaks http: a check of type rtsp does not fit \
             (give type=http or type=tcp)"
        );
    }
}
