//! tcpvsd's command line as clap reads it. Values the daemon's own types
//! read (the access log's destination) stay text here; `flags.rs` turns
//! them into [`Flags`](super::flags::Flags).
//!
//! This file uses nothing but std and clap: the build script includes it to
//! write the man page and the shell completions (build/manual.rs).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// A user-space KTCPVS: a content-aware Layer-7 load balancer on io_uring.
#[derive(Debug, Parser)]
#[command(
    name = "tcpvsd",
    version,
    after_help = "Signals: SIGHUP reloads the configuration file, SIGUSR1 reopens the log \
                  files, SIGTERM drains and stops. tcpvsadm edits the running table."
)]
pub struct Cli {
    /// Load services, real servers and rules from a TOML file.
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only check the configuration file, then exit.
    #[arg(long, requires = "config")]
    pub check: bool,
    /// Start three built-in backend pools and a service routing /images/ and
    /// /cgi-bin/ to their own pools (no configuration needed).
    #[arg(long, conflicts_with = "config")]
    pub demo: bool,
    /// The demo service's address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", requires = "demo", value_parser = socket_address)]
    pub listen: Option<SocketAddr>,
    /// Worker threads, one io_uring runtime each [default: the cores].
    #[arg(long, value_name = "N", value_parser = workers)]
    pub workers: Option<usize>,
    /// error, warn, info (access lines), debug, trace, or a tracing filter
    /// such as tcpvs=debug [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Write the log there (appended; reopened on SIGUSR1) instead of
    /// standard error.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Access lines: - (with the log), off, or a file of their own
    /// (appended; reopened on SIGUSR1) [default: -].
    #[arg(long, value_name = "DEST")]
    pub access_log: Option<String>,
    /// Access lines as combined (nginx's), json or text [default: text].
    #[arg(long, value_name = "FORMAT", value_parser = ["combined", "json", "text"])]
    pub log_format: Option<String>,
    /// Where tcpvsadm talks to tcpvsd [default: /run/tcpvsd.sock].
    #[arg(long, alias = "socket", value_name = "PATH")]
    pub control_socket: Option<PathBuf>,
    /// Save the table there after each edit, load it at start.
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<PathBuf>,
    /// Serve /metrics, /healthz and /stats on ADDR (the demo's default:
    /// 127.0.0.1:9180).
    #[arg(long, value_name = "ADDR", value_parser = socket_address)]
    pub admin: Option<SocketAddr>,
    /// Take the listening sockets of the tcpvsd running on the control
    /// socket, serve them, then make it drain and exit.
    #[arg(long)]
    pub upgrade: bool,
}

/// An `IP:PORT` (names are resolved from the configuration file, not here).
fn socket_address(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| format!("`{text}` is not IP:PORT"))
}

fn workers(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a number from 1 to 1024")),
    }
}
