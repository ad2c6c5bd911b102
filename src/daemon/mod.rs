//! tcpvsd, the daemon: reads its command line and configuration (or starts
//! the demo), then serves the table on one io_uring worker per core, with
//! the health checker and the control socket beside them.

mod flags;
pub mod logging;
mod signals;
mod stop;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use arc_swap::ArcSwap;

use crate::config::{self, DaemonOptions};
use crate::control::plane::ControlPlane;
use crate::control::{socket, DEFAULT_SOCKET};
use crate::table::{Table, TableSpec};
use crate::{demo, health, worker};
use flags::USAGE;
use signals::Signal;
use std::sync::mpsc::Receiver;

/// tcpvsd's `main`: runs the daemon; an error is printed and exits 1.
pub fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcpvsd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let flags = flags::parse_flags(std::env::args().skip(1))?;
    // First, before any thread starts: from here on a signal is an event of
    // the daemon's, never the default action (which kills it).
    let signals = signals::listen().context("taking the signals")?;
    let (mut daemon, mut spec, pools) = if flags.demo {
        let listen = flags
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let pools = demo::start_backends().context("starting the demo backends")?;
        let spec = demo::table(listen, &pools).context("the demo's table")?;
        (DaemonOptions::default(), spec, pools)
    } else if let Some(path) = &flags.config {
        let config = config::load(path)?;
        if flags.check {
            println!("{}: ok", path.display());
            return Ok(());
        }
        (config.daemon, config.table, Vec::new())
    } else {
        bail!("give --config FILE or --demo\n{USAGE}");
    };
    let _log = logging::init(
        flags.log_level.as_deref().or(daemon.log_level.as_deref()),
        flags.log_file.as_deref().or(daemon.log_file.as_deref()),
    )?;
    if let Some(path) = flags.control_socket {
        daemon.control_socket = Some(path);
    }
    if let Some(path) = flags.state_file {
        daemon.state_file = Some(path);
    }
    // The state file holds the table as the last edit left it: it wins over
    // the services of the configuration file.
    if let Some(path) = daemon.state_file.as_deref().filter(|p| p.exists()) {
        spec.services = config::load(path)
            .with_context(|| {
                "loading the state file (move it away to start from the configuration)"
            })?
            .table
            .services;
        tracing::info!(state_file = %path.display(), "table loaded from the state file");
    }
    let workers = flags
        .workers
        .or(daemon.workers)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    serve(spec, workers, &daemon, &pools, &signals)
}

fn serve(
    spec: TableSpec,
    workers: usize,
    daemon: &DaemonOptions,
    pools: &[demo::BackendPool],
    signals: &Receiver<Signal>,
) -> anyhow::Result<()> {
    let table = Table::build(spec, None).map_err(|(_, e)| anyhow::anyhow!(e))?;
    let table = Arc::new(ArcSwap::from_pointee(table));
    let running = Arc::new(worker::Workers::start(table.clone(), workers)?);
    let _checker = health::Checker::start(table.clone()).context("starting the health checker")?;
    let plane = Arc::new(ControlPlane::new(
        table.clone(),
        running.clone(),
        daemon.state_file.clone(),
    ));
    let socket_path = daemon
        .control_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let access =
        socket::Access::for_daemon(daemon.control_group.as_deref()).context("control_group")?;
    socket::serve(&socket_path, plane, access)?;
    println!("tcpvsd: control socket {}", socket_path.display());
    let listening = running.listening();
    let snapshot = table.load();
    for service in &snapshot.services {
        let Some(&addr) = listening.get(&service.ident) else {
            continue;
        };
        println!(
            "tcpvsd: service {} ({}, {}) listening on {addr} with {} real servers, {workers} workers",
            service.ident,
            service.protocol,
            service.scheduler.kind(),
            service.servers.len()
        );
        if !pools.is_empty() {
            print_demo_help(addr, pools);
        }
    }
    loop {
        match signals.recv() {
            Ok(Signal::Stop) | Err(_) => break,
            Ok(Signal::Reload) => tracing::warn!("SIGHUP: reload is not implemented yet"),
            Ok(Signal::ReopenLogs) => logging::reopen(),
        }
    }
    let drain = table.load().settings().timeouts.drain;
    tracing::info!(?drain, "stopping: requests in flight may finish");
    stop::graceful(&running, signals, drain);
    // Ours: the start refused any other file at this path.
    let _ = std::fs::remove_file(&socket_path);
    Ok(())
}

fn print_demo_help(addr: SocketAddr, pools: &[demo::BackendPool]) {
    for pool in pools {
        let servers: Vec<String> = pool.servers.iter().map(ToString::to_string).collect();
        println!("  pool {:<7} {}", pool.name, servers.join(" "));
    }
    println!("try:");
    for path in ["/images/x.jpg", "/cgi-bin/a.cgi", "/index.html"] {
        println!("  curl http://{addr}{path}");
    }
    println!("  curl -d 'hello' http://{addr}/cgi-bin/form.cgi");
}
