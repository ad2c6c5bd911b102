//! The line this agent sends, in HAProxy's agent-check format.

use std::fmt;

/// What the server says of itself. HAProxy lets only the agent undo what
/// the agent did, so the ordinary line says `ready` and `up` every time:
/// once the drain file is gone, the next check takes the server back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The maintenance file exists: no new work at all.
    Maint,
    /// The drain file exists: no new work; work in flight finishes.
    Drain,
    /// Take work, at this share of the configured weight (`None`: the load
    /// could not be read, so the weight is left as it is).
    Ready { percent: Option<u32> },
}

impl Line {
    /// Maintenance before drain: the stronger switch wins.
    pub fn new(maint: bool, drain: bool, percent: Option<u32>) -> Line {
        if maint {
            Line::Maint
        } else if drain {
            Line::Drain
        } else {
            Line::Ready { percent }
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Maint => f.write_str("maint"),
            Line::Drain => f.write_str("drain"),
            Line::Ready { percent: None } => f.write_str("ready up"),
            Line::Ready {
                percent: Some(percent),
            } => write!(f, "ready up {percent}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switches_and_the_load() {
        assert_eq!(
            Line::new(false, false, Some(75)).to_string(),
            "ready up 75%"
        );
        assert_eq!(Line::new(false, false, None).to_string(), "ready up");
        assert_eq!(Line::new(false, true, Some(75)).to_string(), "drain");
        assert_eq!(Line::new(true, false, Some(75)).to_string(), "maint");
        assert_eq!(Line::new(true, true, None).to_string(), "maint");
    }
}
