//! One validator per field. The TOML file and tcpvsadm hand the operator's
//! text to these same functions, so both accept the same values and refuse
//! the others with the same message; the front ends only add where the value
//! was (`file:line: key:` or the option).

use std::net::SocketAddr;
use std::time::Duration;

use crate::sched_opts::{self, SchedOptionError, SchedParams};
use crate::spec::{
    Protocol, SchedOptions, SchedulerKind, ServerAddr, ServiceId, TableError, Weight,
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

/// A real server's address.
pub fn server(text: &str) -> Result<ServerAddr, TableError> {
    address(text).map(ServerAddr)
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
    let hir = pattern_syntax(text).map_err(|reason| TableError::BadPattern {
        pattern: text.to_string(),
        reason: reason.trim_start_matches("error: ").to_string(),
    })?;
    Ok(hir.properties().explicit_captures_len())
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
}
