//! tcpvsd's command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use tcpvs_command::{AccessLog, LogFormat};

pub const USAGE: &str = "\
usage: tcpvsd --config FILE [OPTIONS] [--check]
       tcpvsd --demo [--listen ADDR] [OPTIONS]

  --config FILE          load services, real servers and rules from a TOML file
  --check                only check the configuration file, then exit
  --demo                 start three built-in backend pools and a service routing
                         /images/ and /cgi-bin/ to their own pools (no config needed)
  --listen ADDR          the demo service's address (default 127.0.0.1:8080)
options:
  --workers N            worker threads, one io_uring runtime each (default: cores)
  --log-level LEVEL      error, warn, info (access lines), debug, trace, or a
                         tracing filter such as tcpvs=debug (default: info)
  --log-file PATH        write the log there (appended; reopened on SIGUSR1)
                         instead of standard error
  --access-log DEST      access lines: - (with the log), off, or a file of their
                         own (appended; reopened on SIGUSR1) (default: -)
  --log-format FORMAT    access lines as combined (nginx's), json or text
                         (default: text)
  --control-socket PATH  where tcpvsadm talks to tcpvsd (default /run/tcpvsd.sock)
  --state-file PATH      save the table there after each edit, load it at start
  --admin ADDR           serve /metrics and /healthz on ADDR (the demo's default:
                         127.0.0.1:9180)
  --upgrade              take the listening sockets of the tcpvsd running on the
                         control socket, serve them, then make it drain and exit";

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

/// The value of the flag `name`, an `IP:PORT`.
fn address(name: &str, addr: String) -> anyhow::Result<SocketAddr> {
    addr.parse()
        .with_context(|| format!("{name}: `{addr}` is not IP:PORT"))
}

/// Reads the command line (without the program name).
pub fn parse_flags(mut args: impl Iterator<Item = String>) -> anyhow::Result<Flags> {
    let mut flags = Flags::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--config" | "-c" => flags.config = Some(value("--config")?.into()),
            "--check" => flags.check = true,
            "--upgrade" => flags.upgrade = true,
            "--demo" => flags.demo = true,
            "--listen" => flags.listen = Some(address("--listen", value("--listen")?)?),
            "--admin" => flags.admin = Some(address("--admin", value("--admin")?)?),
            "--workers" => {
                let n = value("--workers")?;
                match n.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => flags.workers = Some(n),
                    _ => bail!("--workers: `{n}` is not a number from 1 to 1024"),
                }
            }
            "--log-level" => flags.log_level = Some(value("--log-level")?),
            "--log-file" => flags.log_file = Some(value("--log-file")?.into()),
            "--access-log" => {
                let text = value("--access-log")?;
                flags.access_log = Some(text.parse().map_err(|e| anyhow!("--access-log: {e}"))?);
            }
            "--log-format" => {
                let text = value("--log-format")?;
                flags.log_format = Some(text.parse().map_err(|e| anyhow!("--log-format: {e}"))?);
            }
            "--control-socket" | "--socket" => {
                flags.control_socket = Some(value("--control-socket")?.into())
            }
            "--state-file" => flags.state_file = Some(value("--state-file")?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "-V" | "--version" => {
                println!("tcpvsd {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if flags.demo && flags.config.is_some() {
        bail!("--demo and --config exclude each other");
    }
    Ok(flags)
}
