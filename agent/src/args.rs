//! The command line.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const USAGE: &str = "\
tcpvs-agent: tells a load balancer how much of this server is free.

For each connection it writes one line in HAProxy's agent-check format and
closes: `ready up N%` with N the free share of the CPUs (from the 1-minute
load average), `drain` while the drain file exists, `maint` while the
maintenance file exists. tcpvsd (`--agent port=...`) and HAProxy
(`agent-check agent-port ...`) both read it.

Usage: tcpvs-agent [OPTIONS]

Options:
  --listen ADDR       address and port to serve on [default: 0.0.0.0:9999];
                      the bound address is printed first: `listening on ADDR`
  --floor N           lowest share sent, 0 to 100 [default: 10], so a busy
                      server is weighted down rather than drained
  --drain-file PATH   while PATH exists, send `drain` (no new work)
  --maint-file PATH   while PATH exists, send `maint` (maintenance)
  -h, --help          print this text
";

/// What the agent was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub listen: SocketAddr,
    pub floor: u32,
    pub drain_file: Option<PathBuf>,
    pub maint_file: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9999)),
            floor: 10,
            drain_file: None,
            maint_file: None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve(Args),
    Help,
}

/// Reads the arguments after the program's name (`--flag VALUE` or `--flag=VALUE`).
pub fn parse(arguments: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut args = Args::default();
    let mut arguments = arguments.into_iter();
    while let Some(argument) = arguments.next() {
        let argument = argument
            .into_string()
            .map_err(|bad| format!("argument {bad:?} is not UTF-8"))?;
        if argument == "-h" || argument == "--help" {
            return Ok(Command::Help);
        }
        let (flag, inline) = match argument.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(OsString::from(value))),
            None => (argument, None),
        };
        let set: Setter = match flag.as_str() {
            "--listen" => |args, value| {
                args.listen = text("--listen", value)?
                    .parse()
                    .map_err(|e| format!("--listen: not an address and port ({e})"))?;
                Ok(())
            },
            "--floor" => |args, value| {
                args.floor = floor(&text("--floor", value)?)?;
                Ok(())
            },
            "--drain-file" => |args, value| {
                args.drain_file = Some(value.into());
                Ok(())
            },
            "--maint-file" => |args, value| {
                args.maint_file = Some(value.into());
                Ok(())
            },
            _ => return Err(format!("unknown argument `{flag}` (see --help)")),
        };
        let value = inline
            .or_else(|| arguments.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        set(&mut args, value)?;
    }
    Ok(Command::Serve(args))
}

/// Puts a flag's value in its place.
type Setter = fn(&mut Args, OsString) -> Result<(), String>;

fn text(flag: &str, value: OsString) -> Result<String, String> {
    value
        .into_string()
        .map_err(|bad| format!("{flag}: {bad:?} is not UTF-8"))
}

fn floor(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(floor) if floor <= 100 => Ok(floor),
        _ => Err(format!(
            "--floor: `{text}` is not a percentage from 0 to 100"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &[&str]) -> Result<Command, String> {
        parse(line.iter().map(OsString::from))
    }

    #[test]
    fn defaults() {
        assert_eq!(run(&[]), Ok(Command::Serve(Args::default())));
        assert_eq!(Args::default().listen.to_string(), "0.0.0.0:9999");
        assert_eq!(Args::default().floor, 10);
    }

    #[test]
    fn every_flag_both_ways() {
        let expected = Args {
            listen: "127.0.0.1:0".parse().unwrap_or(Args::default().listen),
            floor: 0,
            drain_file: Some("/run/drain".into()),
            maint_file: Some("/run/maint".into()),
        };
        let spaced = [
            "--listen",
            "127.0.0.1:0",
            "--floor",
            "0",
            "--drain-file",
            "/run/drain",
            "--maint-file",
            "/run/maint",
        ];
        assert_eq!(run(&spaced), Ok(Command::Serve(expected.clone())));
        let joined = [
            "--listen=127.0.0.1:0",
            "--floor=0",
            "--drain-file=/run/drain",
            "--maint-file=/run/maint",
        ];
        assert_eq!(run(&joined), Ok(Command::Serve(expected)));
        assert_eq!(run(&["--floor", "7", "--help"]), Ok(Command::Help));
        assert_eq!(run(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn mistakes_are_named() {
        let error = |line: &[&str]| run(line).err().unwrap_or_default();
        assert!(error(&["--floor", "101"]).contains("0 to 100"));
        assert!(error(&["--floor", "-1"]).contains("`-1`"));
        assert!(error(&["--listen", "9999"]).starts_with("--listen"));
        assert_eq!(error(&["--floor"]), "--floor needs a value");
        assert!(error(&["--port", "1"]).contains("`--port`"));
        assert!(error(&["serve"]).contains("`serve`"));
    }
}
