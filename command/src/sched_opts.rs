//! A scheduler's options (`[service.sched_opts]` in the file, `--sched-opt
//! name=value,...` on tcpvsadm): which names each algorithm takes, with their
//! types, defaults and ranges. Both front ends and the daemon read them here
//! into typed values, so all three accept and refuse the same options with
//! the same message; the daemon only compiles the `dynamic` pattern. A name
//! the algorithm does not take is an error, so a typo is reported instead of
//! silently ignored.

use std::str::FromStr;
use std::time::Duration;

use crate::options::{fault, OptionError, Reader};
use crate::spec::{SchedOptions, SchedulerKind, ServiceId, TableError};
use crate::validate;

/// What requests LARD counts as dynamic (weight 2) unless told: CGI or a query.
pub const DEFAULT_DYNAMIC: &str = r"^/cgi-bin/|\?";
/// How long LARD/R waits before shrinking a stable set (seed 000's K).
pub const DEFAULT_HOLD: Duration = Duration::from_secs(60);
/// chash's load bound when the service sets none, in percent of the fair share.
pub const DEFAULT_FACTOR: u32 = 200;

/// A scheduling algorithm with its options, read and checked: one variant
/// per [`SchedulerKind`], those that take options carrying them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedParams {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Chash(ChashOptions),
    Lard(LardOptions),
    Lardr(LardrOptions),
}

/// The parameters shared by LARD and LARD/R.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LardOptions {
    /// Below this load a server counts as underused (T_low).
    pub low: u32,
    /// Above this load a server counts as overloaded (T_high).
    pub high: u32,
    /// Requests matching this pattern count 2 toward load (its syntax checked).
    pub dynamic: String,
    /// Most targets remembered.
    pub targets: usize,
}

/// LARD/R: LARD's parameters and how long a set stays stable before shrinking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LardrOptions {
    pub lard: LardOptions,
    /// K: a set unchanged this long gives back its most loaded member.
    pub hold: Duration,
}

/// Consistent hashing with bounded loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChashOptions {
    pub key: HashKey,
    /// The load bound, in percent of a server's fair share.
    pub factor: u32,
}

/// What chash hashes a request by (`key=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The target without its query.
    Path,
    /// The whole target, query included.
    Url,
    /// The host the request names, case folded.
    Host,
    /// The value of a header field.
    Header(String),
    /// The value of a cookie.
    Cookie(String),
    /// The client's IP address.
    Source,
}

impl FromStr for HashKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let named = |name: &str, make: fn(String) -> HashKey| match name.trim() {
            "" => Err(format!("option key={text}: give a name after the colon")),
            name => Ok(make(name.to_string())),
        };
        match text.trim().split_once(':') {
            Some(("header", name)) => named(name, HashKey::Header),
            Some(("cookie", name)) => named(name, HashKey::Cookie),
            _ => match text.trim() {
                "path" => Ok(HashKey::Path),
                "url" => Ok(HashKey::Url),
                "host" => Ok(HashKey::Host),
                "source" => Ok(HashKey::Source),
                _ => Err(format!(
                    "option key={text}: give path, url, host, header:NAME, cookie:NAME or source"
                )),
            },
        }
    }
}

/// Why a scheduler's options are refused, and the option at fault.
pub type SchedOptionError = OptionError;

impl OptionError {
    /// This refusal, said of the scheduler `scheduler` of `service`.
    pub fn of_service(self, service: &ServiceId, scheduler: SchedulerKind) -> TableError {
        TableError::BadSchedOption {
            service: service.clone(),
            scheduler,
            reason: self.reason,
        }
    }
}

/// Reads the options `given` to a scheduler of `kind`.
pub fn read(kind: SchedulerKind, given: &SchedOptions) -> Result<SchedParams, SchedOptionError> {
    let mut options = Reader::new(kind.name(), "option", given);
    let params = match kind {
        SchedulerKind::Lard => SchedParams::Lard(lard(&mut options)?),
        SchedulerKind::Lardr => SchedParams::Lardr(LardrOptions {
            lard: lard(&mut options)?,
            hold: duration(&mut options, "hold", DEFAULT_HOLD)?,
        }),
        SchedulerKind::Chash => SchedParams::Chash(ChashOptions {
            key: match options.text("key") {
                Some(text) => text.parse().map_err(|reason| fault("key", reason))?,
                None => HashKey::Path,
            },
            factor: options.number("factor", DEFAULT_FACTOR, 100..=1000)?,
        }),
        SchedulerKind::Rr => SchedParams::Rr,
        SchedulerKind::Wrr => SchedParams::Wrr,
        SchedulerKind::Lc => SchedParams::Lc,
        SchedulerKind::Wlc => SchedParams::Wlc,
        SchedulerKind::Sed => SchedParams::Sed,
        SchedulerKind::Nq => SchedParams::Nq,
        SchedulerKind::Sh => SchedParams::Sh,
    };
    options.finish()?;
    Ok(params)
}

/// The message for a `dynamic` pattern refused, by this crate's parser or
/// by the daemon's compiler (`reason`: the last line of their message).
pub fn bad_dynamic(text: &str, reason: &str) -> SchedOptionError {
    fault(
        "dynamic",
        format!("option dynamic: invalid pattern `{text}`: {reason}"),
    )
}

/// `low`, `high`, `dynamic` and `targets`: LARD's and LARD/R's.
fn lard(options: &mut Reader) -> Result<LardOptions, SchedOptionError> {
    let low = options.number("low", 25u32, 0..=1_000_000)?;
    let high = options.number("high", 65u32, 1..=1_000_000)?;
    if low >= high {
        // The one the operator gave (both given: the later, `high`).
        let at = if options.has("high") { "high" } else { "low" };
        return Err(fault(at, format!("low={low} must be below high={high}")));
    }
    Ok(LardOptions {
        low,
        high,
        dynamic: pattern(options, "dynamic", DEFAULT_DYNAMIC)?,
        targets: options.number("targets", 1_000_000usize, 1..=100_000_000)?,
    })
}

/// A duration in seconds (`60`) or with a unit (`500ms`, `2m`).
fn duration(
    options: &mut Reader,
    name: &'static str,
    default: Duration,
) -> Result<Duration, SchedOptionError> {
    let Some(text) = options.text(name) else {
        return Ok(default);
    };
    let text = text.trim();
    let with_unit = if text.bytes().all(|b| b.is_ascii_digit()) {
        format!("{text}s")
    } else {
        text.to_string()
    };
    validate::duration(&with_unit).map_err(|e| fault(name, format!("option {name}: {e}")))
}

/// A regular expression's text once its syntax is checked, `default` when
/// not given (an empty one is taken: it matches every request).
fn pattern(
    options: &mut Reader,
    name: &'static str,
    default: &str,
) -> Result<String, SchedOptionError> {
    let text = options.text(name).unwrap_or(default);
    match validate::pattern_syntax(text) {
        Ok(_) => Ok(text.to_string()),
        Err(reason) => Err(bad_dynamic(text, &reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, &str)]) -> SchedOptions {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(kind: SchedulerKind, pairs: &[(&str, &str)]) -> SchedOptionError {
        read(kind, &given(pairs)).unwrap_err()
    }

    #[test]
    fn defaults_when_nothing_is_given() {
        let lard = LardOptions {
            low: 25,
            high: 65,
            dynamic: DEFAULT_DYNAMIC.to_string(),
            targets: 1_000_000,
        };
        let none = SchedOptions::new();
        assert_eq!(
            read(SchedulerKind::Lard, &none),
            Ok(SchedParams::Lard(lard.clone()))
        );
        assert_eq!(
            read(SchedulerKind::Lardr, &none),
            Ok(SchedParams::Lardr(LardrOptions {
                lard,
                hold: DEFAULT_HOLD
            }))
        );
        assert_eq!(
            read(SchedulerKind::Chash, &none),
            Ok(SchedParams::Chash(ChashOptions {
                key: HashKey::Path,
                factor: DEFAULT_FACTOR
            }))
        );
        assert_eq!(read(SchedulerKind::Wlc, &none), Ok(SchedParams::Wlc));
        for &kind in SchedulerKind::ALL {
            assert!(read(kind, &none).is_ok(), "{kind}");
        }
    }

    #[test]
    fn values_are_typed_and_ranged() {
        let pairs = [
            ("low", "10"),
            ("high", " 40"),
            ("dynamic", r"^/\d{1,3}/"),
            ("targets", "5"),
            ("hold", "90"),
        ];
        let Ok(SchedParams::Lardr(lardr)) = read(SchedulerKind::Lardr, &given(&pairs)) else {
            panic!("lardr's options refused")
        };
        assert_eq!((lardr.lard.low, lardr.lard.high), (10, 40));
        assert_eq!(lardr.lard.dynamic, r"^/\d{1,3}/");
        assert_eq!(lardr.lard.targets, 5);
        assert_eq!(lardr.hold, Duration::from_secs(90));
        let hold = |text| match read(SchedulerKind::Lardr, &given(&[("hold", text)])) {
            Ok(SchedParams::Lardr(o)) => Ok(o.hold),
            other => Err(other),
        };
        assert_eq!(hold("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(hold("2m"), Ok(Duration::from_secs(120)));
        let key = |text| match read(SchedulerKind::Chash, &given(&[("key", text)])) {
            Ok(SchedParams::Chash(o)) => Some(o.key),
            _ => None,
        };
        assert_eq!(key("header:X-User"), Some(HashKey::Header("X-User".into())));
        assert_eq!(key("cookie:sid"), Some(HashKey::Cookie("sid".into())));
        for (text, expected) in [
            ("path", HashKey::Path),
            ("url", HashKey::Url),
            ("host", HashKey::Host),
            ("source", HashKey::Source),
        ] {
            assert_eq!(key(text), Some(expected));
        }
    }

    #[test]
    fn refusals_name_the_option_and_say_why() {
        use SchedulerKind::*;
        /// The scheduler, its options, the option at fault and the reason.
        type Refusal = (
            SchedulerKind,
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
        );
        let cases: &[Refusal] = &[
            (
                Lard,
                &[("low", "70")],
                "low",
                "low=70 must be below high=65",
            ),
            (
                Lard,
                &[("low", "30"), ("high", "20")],
                "high",
                "low=30 must be below high=20",
            ),
            (
                Lard,
                &[("high", "lots")],
                "high",
                "option high=lots: give a number from 1 to 1000000",
            ),
            (
                Lard,
                &[("low", "-1")],
                "low",
                "option low=-1: give a number from 0 to 1000000",
            ),
            (
                Lard,
                &[("targets", "0")],
                "targets",
                "option targets=0: give a number from 1 to 100000000",
            ),
            (
                Lard,
                &[("dynamic", "(")],
                "dynamic",
                "option dynamic: invalid pattern `(`: error: unclosed group",
            ),
            (
                Lard,
                &[("typo", "1")],
                "typo",
                "unknown option `typo` (lard takes low, high, dynamic, targets)",
            ),
            (
                Lard,
                &[("hold", "1m")],
                "hold",
                "unknown option `hold` (lard takes low, high, dynamic, targets)",
            ),
            (
                Lardr,
                &[("hold", "soon")],
                "hold",
                "option hold: `soon` is not a duration: write e.g. 500ms, 10s, 2m",
            ),
            (
                Lardr,
                &[("hold", "0")],
                "hold",
                "option hold: a timeout must be longer than zero",
            ),
            (
                Chash,
                &[("factor", "99")],
                "factor",
                "option factor=99: give a number from 100 to 1000",
            ),
            (
                Chash,
                &[("key", "header:")],
                "key",
                "option key=header:: give a name after the colon",
            ),
            (
                Chash,
                &[("key", "query")],
                "key",
                "option key=query: give path, url, host, header:NAME, cookie:NAME or source",
            ),
            (
                Chash,
                &[("low", "25")],
                "low",
                "unknown option `low` (chash takes key, factor)",
            ),
            (
                Wlc,
                &[("low", "25")],
                "low",
                "unknown option `low` (wlc takes none)",
            ),
        ];
        for &(kind, pairs, option, reason) in cases {
            let refused = error(kind, pairs);
            assert_eq!(
                (refused.option.as_str(), refused.reason.as_str()),
                (option, reason),
                "{kind} {pairs:?}"
            );
        }
    }
}
