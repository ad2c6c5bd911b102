//! tcpvsd's command line: clap reads it (`cli.rs`), and it becomes the
//! [`Flags`] the daemon starts with.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use tcpvs_command::{AccessLog, LogFormat};

use super::cli::Cli;

#[derive(Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub check: bool,
    pub upgrade: bool,
    pub demo: bool,
    pub listen: Option<SocketAddr>,
    pub workers: Option<usize>,
    pub log_level: Option<String>,
    pub log_file: Option<PathBuf>,
    pub access_log: Option<AccessLog>,
    pub log_format: Option<LogFormat>,
    pub control_socket: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
}

/// The usage line, for the errors that clap cannot see (no --config or --demo).
pub fn usage() -> String {
    Cli::command().render_usage().to_string()
}

/// Reads the command line (without the program name); `--help` and
/// `--version` print and exit.
pub fn parse_flags(args: impl Iterator<Item = String>) -> anyhow::Result<Flags> {
    let words = std::iter::once("tcpvsd".to_string()).chain(args);
    let cli = match Cli::try_parse_from(words) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        // tcpvsd's errors all exit 1 with one `tcpvsd: ` prefix.
        Err(e) => {
            let text = e.render().to_string();
            return Err(anyhow!("{}", text.trim_start_matches("error: ").trim_end()));
        }
    };
    let access_log = cli
        .access_log
        .map(|text| text.parse().map_err(|e| anyhow!("--access-log: {e}")))
        .transpose()?;
    let log_format = cli
        .log_format
        .map(|text| text.parse().map_err(|e| anyhow!("--log-format: {e}")))
        .transpose()?;
    Ok(Flags {
        config: cli.config,
        check: cli.check,
        upgrade: cli.upgrade,
        demo: cli.demo,
        listen: cli.listen,
        workers: cli.workers,
        log_level: cli.log_level,
        log_file: cli.log_file,
        access_log,
        log_format,
        control_socket: cli.control_socket,
        state_file: cli.state_file,
        admin: cli.admin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(line: &str) -> anyhow::Result<Flags> {
        parse_flags(line.split_whitespace().map(String::from))
    }

    fn error(line: &str) -> String {
        flags(line).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn flags_read_as_before() {
        let f = flags(
            "-c /etc/tcpvsd.toml --check --workers 3 --log-format combined --access-log off \
             --socket /tmp/t.sock --admin 127.0.0.1:9180",
        )
        .unwrap();
        assert_eq!(f.config, Some(PathBuf::from("/etc/tcpvsd.toml")));
        assert!(f.check && !f.demo);
        assert_eq!(f.workers, Some(3));
        assert_eq!(f.log_format, Some(LogFormat::Combined));
        assert_eq!(f.access_log, Some("off".parse().unwrap()));
        assert_eq!(f.control_socket, Some(PathBuf::from("/tmp/t.sock")));
        assert_eq!(f.admin, Some("127.0.0.1:9180".parse().unwrap()));
        let demo = flags("--demo --listen [::1]:8080").unwrap();
        assert_eq!(demo.listen, Some("[::1]:8080".parse().unwrap()));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(error("--demo --workers 0").contains("`0` is not a number from 1 to 1024"));
        assert!(error("--demo --listen localhost").contains("`localhost` is not IP:PORT"));
        assert!(error("--demo --config x.toml").contains("cannot be used with"));
        assert!(error("--log-format apache").contains("[possible values: combined, json, text]"));
        assert!(error("--frobnicate").contains("unexpected argument '--frobnicate'"));
        assert!(error("--demo --workers").contains("a value is required for '--workers <N>'"));
    }
}
