//! A service's connection limits, as HAProxy and nginx operators know them:
//! how many client connections it holds at once (`maxconn` of a frontend),
//! how many requests may wait for a full server and for how long (HAProxy's
//! backend queue and `timeout queue`), and what one client address may take
//! (nginx `limit_conn` and `limit_req`). Each is a named option, read from
//! the same text by the TOML file (`max_conns = 100`) and by tcpvsadm
//! (`--max-conns 100`); 0 means unlimited everywhere.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::health::duration_text;
use crate::spec::TableError;
use crate::validate;

/// A service's limits; every count 0 for "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceLimits {
    /// Client connections open at once; more wait in the kernel's backlog.
    pub max_conns: u32,
    /// Requests waiting for a server under its `max_conns`; beyond, 503 at
    /// once (0: no limit but `queue_timeout`, as HAProxy's `maxqueue 0`).
    pub max_queue: u32,
    /// How long a request waits in that queue before a 503; `None`: the
    /// connect timeout (HAProxy's default for `timeout queue`).
    pub queue_timeout: Option<Duration>,
    /// Client connections open at once from one address; more are closed
    /// at accept.
    pub max_conns_per_source: u32,
    /// Requests per second from one address (a token bucket); beyond, 429.
    pub rate_per_source: u32,
    /// Requests one address may send at once above the rate (the bucket's
    /// size); 0: as many as the rate.
    pub burst_per_source: u32,
}

/// Limits by option name (`max_conns`), their text as given.
pub type LimitOptions = BTreeMap<String, String>;

/// The largest count a limit takes.
const MAX_COUNT: u32 = 10_000_000;

impl ServiceLimits {
    /// Every option, by the name the file and the JSON verbs use (tcpvsadm
    /// writes `_` as `-`).
    pub const NAMES: [&'static str; 6] = [
        "max_conns",
        "max_queue",
        "queue_timeout",
        "max_conns_per_source",
        "rate_per_source",
        "burst_per_source",
    ];

    /// Sets option `name` from its text.
    pub fn set(&mut self, name: &str, text: &str) -> Result<(), TableError> {
        let count = |expected| number(text, expected);
        match name {
            "max_conns" => self.max_conns = count("a number of connections (0: no limit)")?,
            "max_queue" => self.max_queue = count("a number of queued requests (0: no limit)")?,
            "queue_timeout" => self.queue_timeout = queue_timeout(text)?,
            "max_conns_per_source" => {
                self.max_conns_per_source = count("a number of connections (0: no limit)")?
            }
            "rate_per_source" => {
                self.rate_per_source = count("a number of requests per second (0: no limit)")?
            }
            "burst_per_source" => {
                self.burst_per_source = count("a number of requests (0: as many as the rate)")?
            }
            _ => {
                return Err(TableError::Unparsed(format!(
                    "unknown limit `{name}` (known: {})",
                    Self::NAMES.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Sets every option of `options`, then checks them together.
    pub fn apply(&mut self, options: &LimitOptions) -> Result<(), TableError> {
        for (name, text) in options {
            self.set(name, text)?;
        }
        self.check()
    }

    /// What only the options together can tell.
    pub fn check(&self) -> Result<(), TableError> {
        if self.burst_per_source != 0 && self.rate_per_source == 0 {
            return Err(TableError::Unparsed(
                "burst_per_source needs rate_per_source".to_string(),
            ));
        }
        Ok(())
    }

    /// The options away from their defaults, by name, as text that
    /// [`ServiceLimits::set`] reads back.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let counts = [
            ("max_conns", self.max_conns),
            ("max_queue", self.max_queue),
            ("max_conns_per_source", self.max_conns_per_source),
            ("rate_per_source", self.rate_per_source),
            ("burst_per_source", self.burst_per_source),
        ];
        let mut pairs: Vec<(&'static str, String)> = counts
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(name, n)| (name, n.to_string()))
            .collect();
        if let Some(timeout) = self.queue_timeout {
            pairs.push(("queue_timeout", duration_text(timeout)));
        }
        pairs.sort_by_key(|(name, _)| Self::NAMES.iter().position(|n| n == name));
        pairs
    }

    /// The bucket's size: the burst, or one second of the rate.
    pub fn burst(&self) -> u32 {
        if self.burst_per_source == 0 {
            self.rate_per_source
        } else {
            self.burst_per_source
        }
    }

    /// Whether a per-source table is needed at all.
    pub fn per_source(&self) -> bool {
        self.max_conns_per_source != 0 || self.rate_per_source != 0
    }
}

/// A count from 0 to [`MAX_COUNT`].
fn number(text: &str, expected: &'static str) -> Result<u32, TableError> {
    match text.trim().parse::<u32>() {
        Ok(n) if n <= MAX_COUNT => Ok(n),
        _ => Err(TableError::BadValue {
            value: text.to_string(),
            expected,
        }),
    }
}

/// A connection limit (a server's, the daemon's): 0 to [`MAX_COUNT`], 0 for none.
pub fn max_conns(text: &str) -> Result<u32, TableError> {
    number(text, "a number of connections (0: no limit)")
}

/// `queue_timeout`: a duration up to an hour; `0` or `0s` for the connect
/// timeout.
fn queue_timeout(text: &str) -> Result<Option<Duration>, TableError> {
    match validate::duration(text) {
        Err(TableError::ZeroDuration) => Ok(None),
        _ if text.trim() == "0" => Ok(None),
        Ok(d) if d <= Duration::from_secs(3600) => Ok(Some(d)),
        _ => Err(TableError::BadValue {
            value: text.to_string(),
            expected: "a duration up to 1h (0: the connect timeout)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_set_and_write_back() {
        let mut limits = ServiceLimits::default();
        assert!(limits.pairs().is_empty(), "defaults are not written");
        let given: LimitOptions = [
            ("max_conns", "100"),
            ("queue_timeout", "1500ms"),
            ("rate_per_source", "20"),
            ("burst_per_source", "40"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        limits.apply(&given).unwrap();
        assert_eq!(limits.max_conns, 100);
        assert_eq!(limits.queue_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(limits.burst(), 40);
        let mut back = ServiceLimits::default();
        for (name, text) in limits.pairs() {
            back.set(name, &text).unwrap();
        }
        assert_eq!(back, limits);
        limits.set("queue_timeout", "0").unwrap();
        assert_eq!(limits.queue_timeout, None);
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        let mut limits = ServiceLimits::default();
        let refused = |limits: &mut ServiceLimits, name, text| {
            limits.set(name, text).unwrap_err().to_string()
        };
        assert_eq!(
            refused(&mut limits, "max_conns", "-1"),
            "`-1` is not a number of connections (0: no limit)"
        );
        assert_eq!(
            refused(&mut limits, "max_queue", "20000000"),
            "`20000000` is not a number of queued requests (0: no limit)"
        );
        assert_eq!(
            refused(&mut limits, "queue_timeout", "2h"),
            "`2h` is not a duration up to 1h (0: the connect timeout)"
        );
        assert!(refused(&mut limits, "max_con", "1").starts_with("unknown limit `max_con`"));
        limits.burst_per_source = 5;
        assert_eq!(
            limits.check().unwrap_err().to_string(),
            "burst_per_source needs rate_per_source"
        );
        limits.rate_per_source = 1;
        assert_eq!(limits.check(), Ok(()));
        assert_eq!(limits.burst(), 5);
    }
}
