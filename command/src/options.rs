//! Named options given as `name=value`: `--sched-opt`, `--check`, `--agent`
//! and `--passive` on tcpvsadm's command line, a table such as
//! `[service.check]` in the file. Both front ends hand them to a [`Reader`],
//! which takes each by name through its validator and refuses any name left
//! unread, so a typo is reported instead of silently ignored.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::spec::TableError;

/// Options as given, by name (in name order).
pub type Options = BTreeMap<String, String>;

/// Why options are refused, and the option at fault (so the file can point
/// at its line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct OptionError {
    pub option: String,
    pub reason: String,
}

/// The refusal of option `option` for `reason`.
pub fn fault(option: &str, reason: String) -> OptionError {
    OptionError {
        option: option.to_string(),
        reason,
    }
}

/// `low=25,high=65` as options. A comma starts another option only where
/// `name=` follows, so a value may hold commas (a pattern such as
/// `\d{1,3}`), as it may in the file.
pub fn split(text: &str) -> Result<Options, String> {
    let mut items: Vec<String> = Vec::new();
    for piece in text.split(',') {
        match items.last_mut() {
            Some(last) if !last.is_empty() && !piece.is_empty() && !starts_option(piece) => {
                last.push(',');
                last.push_str(piece);
            }
            _ => items.push(piece.to_string()),
        }
    }
    items
        .iter()
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("`{item}` is not name=value")),
        })
        .collect()
}

/// Whether `piece` begins with an option's `name=`.
fn starts_option(piece: &str) -> bool {
    piece.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    })
}

/// Options being read: each by name; [`Reader::finish`] refuses any left
/// unread.
pub struct Reader<'a> {
    /// Who takes the options, as the refusal of an unknown one names it
    /// (`lard`, `check type=tcp`).
    owner: String,
    /// What a value's refusal starts with (`check` in `check rise: ...`).
    section: &'static str,
    given: &'a Options,
    read: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    pub fn new(owner: impl Into<String>, section: &'static str, given: &'a Options) -> Self {
        Self {
            owner: owner.into(),
            section,
            given,
            read: Vec::new(),
        }
    }

    /// Names the owner anew, once what it is depends on an option read.
    pub fn rename(&mut self, owner: String) {
        self.owner = owner;
    }

    /// Whether option `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.given.contains_key(name)
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
    ) -> Result<T, OptionError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        match text.trim().parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(fault(
                name,
                format!(
                    "option {name}={text}: give a number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// Option `name` through its field's validator, `None` when not given.
    pub fn value<T>(
        &mut self,
        name: &'static str,
        validator: fn(&str) -> Result<T, TableError>,
    ) -> Result<Option<T>, OptionError> {
        let section = self.section;
        self.text(name)
            .map(|text| validator(text).map_err(|e| fault(name, format!("{section} {name}: {e}"))))
            .transpose()
    }

    /// Option `name` through its field's validator into `slot`, which is
    /// left as it is when the option is not given.
    pub fn set<T>(
        &mut self,
        slot: &mut T,
        name: &'static str,
        validator: fn(&str) -> Result<T, TableError>,
    ) -> Result<(), OptionError> {
        if let Some(value) = self.value(name, validator)? {
            *slot = value;
        }
        Ok(())
    }

    /// Fails on any option that was given but not read.
    pub fn finish(self) -> Result<(), OptionError> {
        let Some(unknown) = self.given.keys().find(|k| !self.read.contains(&k.as_str())) else {
            return Ok(());
        };
        let takes = if self.read.is_empty() {
            "none".to_string()
        } else {
            self.read.join(", ")
        };
        Err(fault(
            unknown,
            format!("unknown option `{unknown}` ({} takes {takes})", self.owner),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_starts_an_option_only_before_a_name() {
        let options = split(r"dynamic=^/\d{1,3}/,low=5,,body=a, b").unwrap();
        assert_eq!(options["dynamic"], r"^/\d{1,3}/");
        assert_eq!(options["low"], "5");
        assert_eq!(options["body"], "a, b");
        assert_eq!(split(",x"), Err("`x` is not name=value".into()));
        assert_eq!(split("=1"), Err("`=1` is not name=value".into()));
    }
}
