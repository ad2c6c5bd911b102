//! Reading a scheduler's `--sched-opt name=value` parameters: each is taken
//! by name with a default and a range, and anything left over is an error, so
//! a typo is reported instead of silently ignored.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use regex::Regex;

use super::SchedulerKind;
use crate::table::SchedOptions;

/// The options given to one scheduler, being read.
pub struct Options<'a> {
    kind: SchedulerKind,
    given: &'a SchedOptions,
    read: Vec<&'static str>,
}

impl<'a> Options<'a> {
    pub fn new(kind: SchedulerKind, given: &'a SchedOptions) -> Self {
        Self {
            kind,
            given,
            read: Vec::new(),
        }
    }

    /// Raw text of option `name`, if given.
    pub fn text(&mut self, name: &'static str) -> Option<&'a str> {
        self.read.push(name);
        self.given.get(name).map(String::as_str)
    }

    /// A number in `range`, `default` when not given.
    pub fn number<T>(
        &mut self,
        name: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, String>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        match text.trim().parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(format!(
                "option {name}={text}: give a number from {} to {}",
                range.start(),
                range.end()
            )),
        }
    }

    /// A duration in seconds (`60`) or with a unit (`500ms`, `2m`).
    pub fn duration(&mut self, name: &'static str, default: Duration) -> Result<Duration, String> {
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        let text = text.trim();
        let with_unit = if text.bytes().all(|b| b.is_ascii_digit()) {
            format!("{text}s")
        } else {
            text.to_string()
        };
        tcpvs_command::validate::duration(&with_unit).map_err(|e| format!("option {name}: {e}"))
    }

    /// A regular expression, `default` when not given.
    pub fn regex(&mut self, name: &'static str, default: &str) -> Result<Regex, String> {
        let text = self.text(name).unwrap_or(default);
        Regex::new(text).map_err(|e| {
            let reason = e.to_string();
            let last = reason.lines().last().unwrap_or("invalid regex").trim();
            format!("option {name}: invalid pattern `{text}`: {last}")
        })
    }

    /// Fails on any option that was given but not read.
    pub fn finish(self) -> Result<(), String> {
        match self.given.keys().find(|k| !self.read.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) if self.read.is_empty() => Err(format!(
                "unknown option `{unknown}` ({} takes none)",
                self.kind
            )),
            Some(unknown) => Err(format!(
                "unknown option `{unknown}` ({} takes {})",
                self.kind,
                self.read.join(", ")
            )),
        }
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

    #[test]
    fn reads_defaults_ranges_and_rejects_leftovers() {
        let map = given(&[("low", "30"), ("hold", "2m")]);
        let mut options = Options::new(SchedulerKind::Wlc, &map);
        assert_eq!(options.number("low", 25u32, 1..=1000), Ok(30));
        assert_eq!(options.number("high", 65u32, 1..=1000), Ok(65));
        assert_eq!(
            options.duration("hold", Duration::from_secs(60)),
            Ok(Duration::from_secs(120))
        );
        assert!(options.finish().is_ok());

        let map = given(&[("low", "0"), ("typo", "1")]);
        let mut options = Options::new(SchedulerKind::Wlc, &map);
        assert!(options
            .number("low", 25u32, 1..=1000)
            .unwrap_err()
            .contains("from 1 to 1000"));
        assert_eq!(
            options.finish().unwrap_err(),
            "unknown option `typo` (wlc takes low)"
        );
    }
}
