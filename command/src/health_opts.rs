//! A service's active check, agent and passive counting as options
//! (`--check type=http,path=/health` on tcpvsadm, `[service.check]` in the
//! file), read into their specs: each option through its field's validator,
//! an option the section does not take refused by name.

use std::time::Duration;

use crate::health::{AgentSpec, CheckKind, CheckSpec, PassiveSpec};
use crate::options::{fault, OptionError, Options, Reader};
use crate::validate;

/// What `--check` and `--agent` take to remove the check or the agent.
pub const NONE: &str = "none";

/// An active check; `type` is required, the rest has defaults.
pub fn check(given: &Options) -> Result<CheckSpec, OptionError> {
    let mut options = Reader::new("check", "check", given);
    let kind = options
        .value("type", validate::check_type)?
        .ok_or_else(|| {
            fault(
                "type",
                "check: give its type: type=tcp, http or rtsp".into(),
            )
        })?;
    options.rename(format!("check type={}", kind.name()));
    let mut check = CheckSpec::new(kind);
    options.set(&mut check.interval, "interval", validate::check_interval)?;
    options.set(&mut check.timeout, "timeout", validate::check_timeout)?;
    options.set(&mut check.rise, "rise", validate::threshold)?;
    options.set(&mut check.fall, "fall", validate::threshold)?;
    if let CheckKind::Http(http) = &mut check.kind {
        options.set(&mut http.method, "method", validate::http_method)?;
        options.set(&mut http.path, "path", validate::http_path)?;
        http.host = options.value("host", validate::http_host)?;
        options.set(&mut http.status, "status", validate::status_range)?;
        http.body = options.value("body", validate::expected_body)?;
    }
    timing("check", &mut options, check.timeout, check.interval)?;
    options.finish()?;
    Ok(check)
}

/// A dynamic-feedback agent; `port` is required.
pub fn agent(given: &Options) -> Result<AgentSpec, OptionError> {
    let mut options = Reader::new("agent", "agent", given);
    let port = options
        .value("port", validate::agent_port)?
        .ok_or_else(|| fault("port", "agent: give its port: port=1 to 65535".into()))?;
    let mut agent = AgentSpec::new(port);
    options.set(&mut agent.interval, "interval", validate::check_interval)?;
    options.set(&mut agent.timeout, "timeout", validate::check_timeout)?;
    timing("agent", &mut options, agent.timeout, agent.interval)?;
    options.finish()?;
    Ok(agent)
}

/// Passive counting: `base` with the options given changed.
pub fn passive(given: &Options, base: &PassiveSpec) -> Result<PassiveSpec, OptionError> {
    let mut options = Reader::new("passive", "passive", given);
    let mut passive = base.clone();
    options.set(&mut passive.max_fails, "max_fails", validate::max_fails)?;
    options.set(
        &mut passive.fail_timeout,
        "fail_timeout",
        validate::fail_timeout,
    )?;
    options.set(&mut passive.on_5xx, "on_5xx", validate::yes_no)?;
    options.finish()?;
    Ok(passive)
}

/// The timeout must be below the interval; refused at the one given (both:
/// the timeout).
fn timing(
    section: &str,
    options: &mut Reader,
    timeout: Duration,
    interval: Duration,
) -> Result<(), OptionError> {
    validate::timeout_below_interval(timeout, interval).map_err(|e| {
        let at = if options.has("timeout") || !options.has("interval") {
            "timeout"
        } else {
            "interval"
        };
        fault(at, format!("{section}: {e}"))
    })
}

/// `text` (`k=v,...`, or `none`) as the options of a check or an agent
/// read by `read`; `None` for `none`.
pub fn optional<T>(
    section: &str,
    text: &str,
    read: fn(&Options) -> Result<T, OptionError>,
) -> Result<Option<T>, OptionError> {
    if text == NONE {
        return Ok(None);
    }
    read(&listed(section, text)?).map(Some)
}

/// `text` (`k=v,...`) as options, refused as `section`'s.
pub fn listed(section: &str, text: &str) -> Result<Options, OptionError> {
    crate::options::split(text).map_err(|reason| fault("", format!("{section}: {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HttpCheck, StatusRange};

    fn given(text: &str) -> Options {
        crate::options::split(text).unwrap()
    }

    fn refusal<T: std::fmt::Debug>(result: Result<T, OptionError>) -> (String, String) {
        let error = result.unwrap_err();
        (error.option, error.reason)
    }

    #[test]
    fn a_check_reads_its_type_then_its_options() {
        let check = check(&given(
            "type=http,path=/health,host=www.example.com,status=200-299,body=OK,\
             method=HEAD,interval=500ms,timeout=100ms,rise=1,fall=5",
        ))
        .unwrap();
        assert_eq!(check.interval, Duration::from_millis(500));
        assert_eq!(check.timeout, Duration::from_millis(100));
        assert_eq!((check.rise, check.fall), (1, 5));
        assert_eq!(
            check.kind,
            CheckKind::Http(HttpCheck {
                method: "HEAD".into(),
                path: "/health".into(),
                host: Some("www.example.com".into()),
                status: StatusRange {
                    low: 200,
                    high: 299
                },
                body: Some("OK".into()),
            })
        );
        assert_eq!(
            super::check(&given("type=tcp")),
            Ok(CheckSpec::new(CheckKind::Tcp))
        );
    }

    #[test]
    fn check_refusals_name_the_option() {
        let cases = [
            (
                "interval=2s",
                "type",
                "check: give its type: type=tcp, http or rtsp",
            ),
            (
                "type=icmp",
                "type",
                "check type: `icmp` is not a check type (tcp, http or rtsp)",
            ),
            (
                "type=tcp,path=/x",
                "path",
                "unknown option `path` (check type=tcp takes type, interval, timeout, rise, fall)",
            ),
            (
                "type=tcp,interval=50ms",
                "interval",
                "check interval: `50ms` is not a duration from 100ms to 1h",
            ),
            (
                "type=tcp,timeout=2s",
                "timeout",
                "check: timeout 2s must be below interval 2s",
            ),
            (
                "type=tcp,interval=500ms",
                "interval",
                "check: timeout 1s must be below interval 500ms",
            ),
            (
                "type=http,rise=0",
                "rise",
                "check rise: `0` is not a number from 1 to 100",
            ),
            (
                "type=http,path=health",
                "path",
                "check path: `health` is not a path (starting with /, without spaces)",
            ),
            (
                "type=http,status=600",
                "status",
                "check status: `600` is not a status range: give a status (100 to 599) or LOW-HIGH",
            ),
        ];
        for (text, option, reason) in cases {
            assert_eq!(
                refusal(check(&given(text))),
                (option.to_string(), reason.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn agent_needs_a_port_and_passive_changes_what_is_given() {
        assert_eq!(agent(&given("port=9999")), Ok(AgentSpec::new(9999)));
        assert_eq!(
            refusal(agent(&given("interval=5s"))),
            (
                "port".into(),
                "agent: give its port: port=1 to 65535".into()
            )
        );
        assert_eq!(
            refusal(agent(&given("port=0"))),
            (
                "port".into(),
                "agent port: `0` is not a port from 1 to 65535".into()
            )
        );
        let base = PassiveSpec {
            max_fails: 3,
            ..PassiveSpec::default()
        };
        let changed = passive(&given("on_5xx=yes"), &base).unwrap();
        assert_eq!((changed.max_fails, changed.on_5xx), (3, true));
        assert_eq!(
            refusal(passive(&given("max_fails=1001"), &base)),
            (
                "max_fails".into(),
                "passive max_fails: `1001` is not a number from 0 (off) to 1000".into()
            )
        );
        assert_eq!(optional("agent", NONE, agent), Ok(None));
        assert_eq!(
            refusal(optional("agent", ",x", agent)),
            ("".into(), "agent: `x` is not name=value".into())
        );
    }

    #[test]
    fn what_is_written_reads_back() {
        let check = check(&given(
            "type=http,path=/a b?c=1,body=x, y,interval=1m,timeout=1500ms,fall=1",
        ));
        // A space in the path is refused; the rest round-trips.
        assert!(check.is_err());
        let check = super::check(&given(
            "type=http,path=/a?c=1,body=x, y,interval=1m,timeout=1500ms,fall=1",
        ))
        .unwrap();
        assert_eq!(super::check(&given(&check.to_string())), Ok(check.clone()));
        let agent = agent(&given("port=1,interval=1h,timeout=1m")).unwrap();
        assert_eq!(agent.to_string(), "port=1,interval=1h,timeout=1m");
        let passive = passive(
            &given("max_fails=0,fail_timeout=90s,on_5xx=true"),
            &PassiveSpec::default(),
        )
        .unwrap();
        assert_eq!(
            passive.to_string(),
            "max_fails=0,fail_timeout=90s,on_5xx=true"
        );
        assert_eq!(PassiveSpec::default().to_string(), "");
    }
}
