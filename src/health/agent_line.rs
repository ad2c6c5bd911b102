//! HAProxy agent-check lines, read: what a real server's agent reports.
//!
//! The format is HAProxy's (doc/configuration.txt, `agent-check`; the reader
//! is `tcpcheck_agent_expect_reply` in src/tcpcheck.c, the weight and maxconn
//! values go through `server_parse_weight_change_request` and
//! `server_parse_maxconn_change_request` in src/server.c), so that agents
//! written for HAProxy work unchanged:
//!
//! - the line ends at the first CR or LF; words are separated by spaces, tabs
//!   or commas, in any order, matched without regard to case;
//! - `75%` or `weight:75%`: a weight relative to the configured one;
//!   `weight:N`: an absolute weight;
//! - `ready`, `drain`, `maint`: the administrative state;
//! - `up`, `down`, `stopped`, `fail`: the operational state;
//! - `maxconn:N`: the server's connection limit;
//! - a `#` where a word would start: the rest of the line is a description,
//!   which HAProxy keeps only when an operational word was given;
//! - several words of one kind: the last one wins; a kind not mentioned is
//!   left as it was (so every field here is an `Option`).
//!
//! Where HAProxy goes on and only warns, this reader refuses the whole line:
//! a bad weight or maxconn (HAProxy drops that one value and applies the
//! rest), a line with no known word at all, a line with a control byte, a
//! line longer than [`MAX_LINE`]. An agent that sends such a line is broken,
//! and a broken agent changes nothing. Unknown words next to known ones are
//! ignored, as HAProxy ignores them (it only shows the first in its status):
//! an agent may speak a newer dialect than ours.

use std::fmt;

use tcpvs_command::{AdminState, Weight};

/// The longest line read, in bytes, terminator excluded. HAProxy's limit is
/// its buffer size; a real agent's line is a few words and a short reason.
pub const MAX_LINE: usize = 1024;

/// The highest relative weight. HAProxy clamps a larger one to this (its
/// guard against overflow) rather than refusing it; so does this reader.
pub const MAX_PERCENT: u32 = 25_600;

/// What an agent said of its server. Only what it said is `Some`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentReport {
    pub weight: Option<AgentWeight>,
    pub admin: Option<AdminState>,
    pub operational: Option<AgentOperational>,
    /// Why, after `#`; only kept with an operational word, as HAProxy does.
    pub reason: Option<String>,
    /// The server's connection limit; 0 is HAProxy's "no limit".
    pub maxconn: Option<u32>,
}

/// The weight an agent asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentWeight {
    /// A share of the configured weight, 0 to [`MAX_PERCENT`]. `0%` takes
    /// no new work, like a drain (HAProxy shows it as DRAIN), but it is a
    /// weight, not the administrative state: the next `N%` undoes it.
    Percent(u32),
    /// A weight on the configured weights' scale. HAProxy's scale stops at
    /// 256; tcpvs's goes to 65535, which takes every HAProxy agent's value.
    Absolute(Weight),
}

impl AgentWeight {
    /// The weight a server with `configured` weight takes under this report
    /// (HAProxy: `iweight * percent / 100`, at most the scale's top).
    pub fn effective(self, configured: Weight) -> Weight {
        match self {
            AgentWeight::Percent(percent) => {
                let scaled = u64::from(configured.0) * u64::from(percent) / 100;
                Weight(u16::try_from(scaled).unwrap_or(u16::MAX))
            }
            AgentWeight::Absolute(weight) => weight,
        }
    }
}

/// The operational state an agent reports. `Down`, `Stopped` and `Fail` all
/// take the server down; the word tells the operator whether that was meant
/// (stopped), a failed self-test (fail) or a missing service (down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentOperational {
    Up,
    Down,
    Stopped,
    Fail,
}

impl AgentOperational {
    pub const ALL: &[AgentOperational] = &[
        AgentOperational::Up,
        AgentOperational::Down,
        AgentOperational::Stopped,
        AgentOperational::Fail,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AgentOperational::Up => "up",
            AgentOperational::Down => "down",
            AgentOperational::Stopped => "stopped",
            AgentOperational::Fail => "fail",
        }
    }

    pub fn is_up(self) -> bool {
        self == AgentOperational::Up
    }
}

/// Why a line from an agent changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentLineError {
    #[error("the agent sent an empty line")]
    Empty,
    #[error("the agent's line is {0} bytes long, more than {MAX_LINE}")]
    TooLong(usize),
    #[error("the agent's line has the control byte {byte:#04x} at byte {at}")]
    ControlByte { byte: u8, at: usize },
    #[error("the agent's line has no word of the agent-check format (the first is `{0}`)")]
    NoKnownWord(String),
    #[error(
        "the agent's weight `{0}` is not a whole percentage (`75%`, `weight:75%`) \
         or a weight (`weight:N`, N at most 65535)"
    )]
    BadWeight(String),
    #[error("the agent's `maxconn:{0}` is not a whole number of connections")]
    BadMaxconn(String),
}

/// Reads one agent line (what follows its first CR or LF is not part of it).
pub fn parse(line: &str) -> Result<AgentReport, AgentLineError> {
    let line = line.split(['\r', '\n']).next().unwrap_or_default();
    if line.len() > MAX_LINE {
        return Err(AgentLineError::TooLong(line.len()));
    }
    if let Some((at, byte)) = line.bytes().enumerate().find(|&(_, b)| is_control(b)) {
        return Err(AgentLineError::ControlByte { byte, at });
    }

    let mut report = AgentReport::default();
    // Like HAProxy, only the last weight and maxconn words are read.
    let mut weight_word = None;
    let mut maxconn_word = None;
    let mut known = false;
    let mut first_unknown = None;
    let mut rest = line;
    let description = loop {
        rest = rest.trim_start_matches(is_separator);
        if rest.is_empty() {
            break None;
        }
        if let Some(description) = rest.strip_prefix('#') {
            break Some(description);
        }
        let end = rest.find(is_separator).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(end);
        rest = tail;
        match Word::of(word) {
            Some(Word::Operational(state)) => report.operational = Some(state),
            Some(Word::Admin(state)) => report.admin = Some(state),
            Some(Word::Weight(value)) => weight_word = Some(value),
            Some(Word::Maxconn(value)) => maxconn_word = Some(value),
            None => {
                first_unknown.get_or_insert(word);
                continue;
            }
        }
        known = true;
    };
    if !known {
        return Err(match first_unknown {
            Some(word) => AgentLineError::NoKnownWord(word.to_string()),
            None => AgentLineError::Empty,
        });
    }
    report.weight = weight_word.map(weight).transpose()?;
    report.maxconn = maxconn_word.map(maxconn).transpose()?;
    if report.operational.is_some() {
        report.reason = description
            .map(|text| text.trim_matches([' ', '\t']))
            .filter(|text| !text.is_empty())
            .map(str::to_string);
    }
    Ok(report)
}

/// The canonical line: state words, weight, maxconn, then `#reason`, one
/// space apart (`ready up 75% maxconn:30 #busy`). It parses back to the same
/// report; the legacy `75%` is written rather than `weight:75%`, since every
/// HAProxy version reads it.
impl fmt::Display for AgentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = Vec::new();
        words.extend(self.admin.map(|state| state.name().to_string()));
        words.extend(self.operational.map(|state| state.name().to_string()));
        words.extend(self.weight.map(|weight| match weight {
            AgentWeight::Percent(percent) => format!("{percent}%"),
            AgentWeight::Absolute(weight) => format!("weight:{}", weight.0),
        }));
        words.extend(self.maxconn.map(|maxconn| format!("maxconn:{maxconn}")));
        words.extend(self.reason.as_ref().map(|reason| format!("#{reason}")));
        f.write_str(&words.join(" "))
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | ',')
}

/// Tab separates words; every other control byte means the agent is
/// sending something that is not a line of text.
fn is_control(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

/// One word of an agent line, as HAProxy sorts it.
enum Word<'a> {
    Operational(AgentOperational),
    Admin(AdminState),
    /// What follows `weight:`, or a word that starts with a digit and has a
    /// `%` (HAProxy's test for the legacy form; `75` alone is unknown).
    Weight(&'a str),
    /// What follows `maxconn:`.
    Maxconn(&'a str),
}

impl<'a> Word<'a> {
    fn of(word: &'a str) -> Option<Word<'a>> {
        if let Some(state) = named(AgentOperational::ALL, word, |s| s.name()) {
            Some(Word::Operational(state))
        } else if let Some(state) = named(AdminState::ALL, word, |s| s.name()) {
            Some(Word::Admin(state))
        } else if word.starts_with(|c: char| c.is_ascii_digit()) && word.contains('%') {
            Some(Word::Weight(word))
        } else if let Some(value) = strip_prefix_ignore_case(word, "weight:") {
            Some(Word::Weight(value))
        } else {
            strip_prefix_ignore_case(word, "maxconn:").map(Word::Maxconn)
        }
    }
}

fn named<T: Copy>(all: &[T], word: &str, name: impl Fn(T) -> &'static str) -> Option<T> {
    all.iter()
        .copied()
        .find(|&item| name(item).eq_ignore_ascii_case(word))
}

fn strip_prefix_ignore_case<'a>(word: &'a str, prefix: &str) -> Option<&'a str> {
    let head = word.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &word[prefix.len()..])
}

/// `N%` (relative) or `N` (absolute), N digits only: HAProxy's strtol would
/// also take a sign, which no agent has reason to send.
fn weight(text: &str) -> Result<AgentWeight, AgentLineError> {
    let bad = || AgentLineError::BadWeight(text.to_string());
    match text.strip_suffix('%') {
        Some(digits) => {
            let percent = whole(digits).ok_or_else(bad)?;
            Ok(AgentWeight::Percent(
                u32::try_from(percent.min(u64::from(MAX_PERCENT))).unwrap_or(MAX_PERCENT),
            ))
        }
        None => {
            let weight = whole(text).ok_or_else(bad)?;
            Ok(AgentWeight::Absolute(Weight(
                u16::try_from(weight).map_err(|_| bad())?,
            )))
        }
    }
}

fn maxconn(text: &str) -> Result<u32, AgentLineError> {
    whole(text)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| AgentLineError::BadMaxconn(text.to_string()))
}

/// A whole number of ASCII digits, saturating (a run of digits too long for
/// u64 is still a number, only a large one).
fn whole(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn report() -> AgentReport {
        AgentReport::default()
    }

    fn percent(percent: u32) -> Option<AgentWeight> {
        Some(AgentWeight::Percent(percent))
    }

    #[test]
    fn a_percentage_alone_sets_only_the_weight() {
        assert_eq!(
            parse("75%"),
            Ok(AgentReport {
                weight: percent(75),
                ..report()
            })
        );
        assert_eq!(parse("75%\n"), parse("75%"));
        assert_eq!(parse("75%\r\n"), parse("75%"));
    }

    #[test]
    fn words_in_any_order_any_case_any_separator() {
        let expected = AgentReport {
            weight: percent(50),
            admin: Some(AdminState::Ready),
            operational: Some(AgentOperational::Up),
            maxconn: Some(30),
            ..report()
        };
        for line in [
            "ready up 50% maxconn:30",
            "ready,up,50%,maxconn:30",
            "MAXCONN:30\tUp , 50%  READY",
            " ,\t50% maxconn:30 ready up ,",
        ] {
            assert_eq!(parse(line), Ok(expected.clone()), "{line:?}");
        }
    }

    #[test]
    fn every_state_word() {
        for state in AdminState::ALL {
            let expected = Some(*state);
            assert_eq!(parse(state.name()).map(|r| r.admin), Ok(expected));
        }
        for state in AgentOperational::ALL {
            let expected = Some(*state);
            assert_eq!(parse(state.name()).map(|r| r.operational), Ok(expected));
        }
        assert!(AgentOperational::Up.is_up() && !AgentOperational::Stopped.is_up());
    }

    #[test]
    fn the_last_word_of_a_kind_wins() {
        let line = "down up 10% weight:20% drain ready maxconn:5 maxconn:6";
        assert_eq!(
            parse(line),
            Ok(AgentReport {
                weight: percent(20),
                admin: Some(AdminState::Ready),
                operational: Some(AgentOperational::Up),
                maxconn: Some(6),
                ..report()
            })
        );
        // HAProxy reads only the last weight word: an earlier bad one is moot.
        assert_eq!(parse("7x% 50%").map(|r| r.weight), Ok(percent(50)));
    }

    #[test]
    fn weight_prefix_relative_and_absolute() {
        assert_eq!(parse("weight:75%").map(|r| r.weight), Ok(percent(75)));
        assert_eq!(
            parse("WEIGHT:0").map(|r| r.weight),
            Ok(Some(AgentWeight::Absolute(Weight(0))))
        );
        assert_eq!(
            parse("weight:65535").map(|r| r.weight),
            Ok(Some(AgentWeight::Absolute(Weight(65535))))
        );
        assert_eq!(
            parse("weight:65536"),
            Err(AgentLineError::BadWeight("65536".into()))
        );
    }

    #[test]
    fn percent_bounds_are_haproxys() {
        assert_eq!(parse("0%").map(|r| r.weight), Ok(percent(0)));
        assert_eq!(parse("250%").map(|r| r.weight), Ok(percent(250)));
        assert_eq!(parse("25600%").map(|r| r.weight), Ok(percent(MAX_PERCENT)));
        assert_eq!(parse("25601%").map(|r| r.weight), Ok(percent(MAX_PERCENT)));
        let huge = format!("{}%", "9".repeat(40));
        assert_eq!(parse(&huge).map(|r| r.weight), Ok(percent(MAX_PERCENT)));
    }

    #[test]
    fn bad_weights_refuse_the_line() {
        for (line, value) in [
            ("75%%", "75%%"),
            ("7a%", "7a%"),
            ("75%x", "75%x"),
            ("up 5.5%", "5.5%"),
            ("weight:", ""),
            ("weight:%", "%"),
            ("weight:-5", "-5"),
            ("weight:+5%", "+5%"),
            ("weight:x", "x"),
        ] {
            assert_eq!(
                parse(line),
                Err(AgentLineError::BadWeight(value.into())),
                "{line:?}"
            );
        }
    }

    #[test]
    fn maxconn_is_kept_and_checked() {
        assert_eq!(parse("maxconn:0").map(|r| r.maxconn), Ok(Some(0)));
        assert_eq!(
            parse("maxconn:4294967295").map(|r| r.maxconn),
            Ok(Some(u32::MAX))
        );
        for bad in ["", "-1", "4294967296", "30x", "3%"] {
            let line = format!("up maxconn:{bad}");
            assert_eq!(
                parse(&line),
                Err(AgentLineError::BadMaxconn(bad.into())),
                "{line:?}"
            );
        }
    }

    #[test]
    fn a_reason_follows_a_sharp_and_needs_an_operational_word() {
        let down = |reason: &str| AgentReport {
            operational: Some(AgentOperational::Down),
            reason: Some(reason.into()),
            ..report()
        };
        // A sharp inside a word is part of the word, as in HAProxy.
        assert_eq!(
            parse("down#disk full"),
            Err(AgentLineError::NoKnownWord("down#disk".into()))
        );
        assert_eq!(parse("down #disk full"), Ok(down("disk full")));
        assert_eq!(parse("down,# \tdisk, full  "), Ok(down("disk, full")));
        assert_eq!(parse("down #a#b up"), Ok(down("a#b up")));
        // Words after the sharp are description, not words.
        assert_eq!(parse("50% # drain").map(|r| r.admin), Ok(None));
        // HAProxy keeps a description only with a health word.
        assert_eq!(
            parse("drain #window"),
            Ok(AgentReport {
                admin: Some(AdminState::Drain),
                ..report()
            })
        );
        assert_eq!(parse("up #").map(|r| r.reason), Ok(None));
        assert_eq!(parse("up #  ").map(|r| r.reason), Ok(None));
    }

    #[test]
    fn unknown_words_beside_known_ones_are_ignored() {
        assert_eq!(
            parse("hello up 75 world"),
            Ok(AgentReport {
                operational: Some(AgentOperational::Up),
                ..report()
            })
        );
    }

    #[test]
    fn lines_that_say_nothing_are_errors() {
        for line in ["", "\n", "\r\n", " , \t", "\nup"] {
            assert_eq!(parse(line), Err(AgentLineError::Empty), "{line:?}");
        }
        assert_eq!(parse("# just a note"), Err(AgentLineError::Empty));
        assert_eq!(parse("75"), Err(AgentLineError::NoKnownWord("75".into())));
        assert_eq!(
            parse("hello, world"),
            Err(AgentLineError::NoKnownWord("hello".into()))
        );
        assert_eq!(
            parse("HTTP/1.1 400 Bad Request"),
            Err(AgentLineError::NoKnownWord("HTTP/1.1".into()))
        );
    }

    #[test]
    fn control_bytes_and_long_lines_are_errors() {
        assert_eq!(
            parse("up\u{1}"),
            Err(AgentLineError::ControlByte { byte: 1, at: 2 })
        );
        assert_eq!(
            parse("up\0 50%"),
            Err(AgentLineError::ControlByte { byte: 0, at: 2 })
        );
        assert_eq!(
            parse("\u{7f}up"),
            Err(AgentLineError::ControlByte { byte: 0x7f, at: 0 })
        );
        // What follows the line's end is not part of it.
        assert_eq!(
            parse("up\n\u{1}").map(|r| r.operational.is_some()),
            Ok(true)
        );
        let long = format!("up #{}", "x".repeat(MAX_LINE));
        assert_eq!(parse(&long), Err(AgentLineError::TooLong(MAX_LINE + 4)));
        let longest = format!("up #{}", "x".repeat(MAX_LINE - 4));
        assert!(parse(&longest).is_ok());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let text = |line: &str| parse(line).map(|_| ()).unwrap_err().to_string();
        assert_eq!(text(""), "the agent sent an empty line");
        assert!(text("7a%").contains("`7a%`"));
        assert!(text("up maxconn:x").contains("`maxconn:x`"));
        assert!(text("up\u{1b}").contains("0x1b at byte 2"));
        assert!(text("bonjour").contains("`bonjour`"));
    }

    #[test]
    fn the_canonical_line() {
        let full = AgentReport {
            weight: percent(75),
            admin: Some(AdminState::Ready),
            operational: Some(AgentOperational::Down),
            reason: Some("disk full".into()),
            maxconn: Some(30),
        };
        assert_eq!(full.to_string(), "ready down 75% maxconn:30 #disk full");
        let absolute = AgentReport {
            weight: Some(AgentWeight::Absolute(Weight(3))),
            ..report()
        };
        assert_eq!(absolute.to_string(), "weight:3");
    }

    #[test]
    fn effective_weights() {
        assert_eq!(AgentWeight::Percent(50).effective(Weight(10)), Weight(5));
        assert_eq!(AgentWeight::Percent(0).effective(Weight(10)), Weight(0));
        assert_eq!(AgentWeight::Percent(33).effective(Weight(1)), Weight(0));
        assert_eq!(AgentWeight::Percent(200).effective(Weight(10)), Weight(20));
        assert_eq!(
            AgentWeight::Percent(MAX_PERCENT).effective(Weight(u16::MAX)),
            Weight(u16::MAX)
        );
        assert_eq!(
            AgentWeight::Absolute(Weight(7)).effective(Weight(10)),
            Weight(7)
        );
    }

    /// Lines made of the format's words, some bad, with any separators.
    fn agent_line() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            Just("up".to_string()),
            Just("DOWN".to_string()),
            Just("stopped".to_string()),
            Just("Fail".to_string()),
            Just("ready".to_string()),
            Just("drain".to_string()),
            Just("MAINT".to_string()),
            "[0-9]{1,6}%",
            "weight:[0-9]{1,6}%?",
            "maxconn:[0-9]{1,11}",
            "[a-z#%:0-9]{1,8}",
        ];
        let separator = prop_oneof![Just(" "), Just(","), Just("\t"), Just(" , ")];
        (
            proptest::collection::vec((word, separator), 0..8),
            proptest::option::of("#[ -~\t]{0,20}"),
        )
            .prop_map(|(words, reason)| {
                let mut line: String = words.into_iter().map(|(w, s)| w + s).collect();
                line.push_str(&reason.unwrap_or_default());
                line
            })
    }

    proptest! {
        #[test]
        fn never_panics(line in any::<String>()) {
            let _ = parse(&line);
        }

        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn a_report_printed_reads_back_the_same(line in agent_line()) {
            if let Ok(report) = parse(&line) {
                let printed = report.to_string();
                prop_assert_eq!(parse(&printed), Ok(report), "{:?} printed as {:?}", line, printed);
            }
        }

        #[test]
        fn arbitrary_lines_read_back_the_same(line in any::<String>()) {
            if let Ok(report) = parse(&line) {
                prop_assert_eq!(parse(&report.to_string()), Ok(report));
            }
        }
    }
}
