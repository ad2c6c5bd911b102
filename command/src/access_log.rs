//! Where access lines go (`access_log`) and in which format (`log_format`):
//! the two settings' values and their parsing, shared by the configuration
//! file and tcpvsd's flags.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where access lines are written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccessLog {
    /// None are written, nor formatted.
    Off,
    /// With the daemon's own lines: standard error, or `log_file` (`"-"`).
    #[default]
    DaemonLog,
    /// A file of their own, appended to and reopened on SIGUSR1.
    File(PathBuf),
}

impl AccessLog {
    /// Whether lines are written at all.
    pub fn is_on(&self) -> bool {
        *self != AccessLog::Off
    }

    /// The file of their own, if they have one.
    pub fn file(&self) -> Option<&PathBuf> {
        match self {
            AccessLog::File(path) => Some(path),
            _ => None,
        }
    }
}

impl FromStr for AccessLog {
    type Err = String;

    /// `off`, `-` (the daemon's log) or a path; `true` and `false`, the old
    /// boolean, are read as `-` and `off`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" => Err("give \"-\", \"off\" or a file path".into()),
            "off" | "false" => Ok(AccessLog::Off),
            "-" | "true" => Ok(AccessLog::DaemonLog),
            path => Ok(AccessLog::File(path.into())),
        }
    }
}

/// The format of an access line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// nginx's `combined`: what log analysers and the locality simulator read.
    Combined,
    /// One JSON object per line.
    Json,
    /// tcpvsd's own: service, termination letters, server, bytes, duration.
    #[default]
    Text,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "combined" => Ok(LogFormat::Combined),
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!("`{other}` is not one of combined, json, text")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Combined => "combined",
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_booleans_still_mean_on_and_off() {
        assert_eq!("true".parse(), Ok(AccessLog::DaemonLog));
        assert_eq!("false".parse(), Ok(AccessLog::Off));
        assert_eq!("-".parse(), Ok(AccessLog::DaemonLog));
        assert_eq!("off".parse(), Ok(AccessLog::Off));
        assert_eq!(
            "/var/log/tcpvs/access.log".parse(),
            Ok(AccessLog::File("/var/log/tcpvs/access.log".into()))
        );
        assert!("".parse::<AccessLog>().is_err());
    }

    #[test]
    fn formats_are_named() {
        for format in [LogFormat::Combined, LogFormat::Json, LogFormat::Text] {
            assert_eq!(format.to_string().parse(), Ok(format));
        }
        let refused = "clf".parse::<LogFormat>().unwrap_err();
        assert!(refused.contains("combined, json, text"), "{refused}");
    }
}
