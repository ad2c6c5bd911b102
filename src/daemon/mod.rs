//! tcpvsd, the daemon: reads its command line and configuration (or starts
//! the demo), then serves the table on one io_uring worker per core, with
//! the health checker and the control socket beside them.

mod cli;
mod flags;
pub mod logging;
mod malloc;
mod privileges;
mod signals;
mod startup;
mod stop;
mod upgrade;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use arc_swap::ArcSwap;

use crate::config::{self, DaemonOptions};
use crate::control::plane::ControlPlane;
use crate::control::reload::{PinnedSettings, Reload, SetLogLevel};
use crate::control::{socket, DEFAULT_SOCKET};
use crate::table::{Table, TableSpec};
use crate::traffic::Traffic;
use crate::{admin, demo, descriptors, health, worker};
use signals::Signal;
use std::sync::mpsc::{Receiver, Sender};
use stop::Sockets;
use tcpvs_command::{AccessLog, Verb};

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
    malloc::return_large_blocks();
    let flags = flags::parse_flags(std::env::args().skip(1))?;
    // First, before any thread starts: from here on a signal is an event of
    // the daemon's, never the default action (which kills it).
    let (events, signals) = signals::listen().context("taking the signals")?;
    let (mut daemon, mut spec, pools) = if flags.demo {
        let listen = flags
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let pools = demo::start_backends().context("starting the demo backends")?;
        let spec = demo::table(listen, &pools).context("the demo's table")?;
        let daemon = DaemonOptions {
            admin: Some(demo::ADMIN),
            ..DaemonOptions::default()
        };
        (daemon, spec, pools)
    } else if let Some(path) = &flags.config {
        let config = config::load(path)?;
        if flags.check {
            println!("{}: ok", path.display());
            return Ok(());
        }
        (config.daemon, config.table, Vec::new())
    } else {
        bail!("give --config FILE or --demo\n{}", flags::usage());
    };
    let from_file = daemon.clone();
    let pinned = PinnedSettings {
        access_log: flags.access_log.as_ref().map(AccessLog::is_on),
        log_format: flags.log_format,
    };
    pinned.apply(&mut spec);
    if let Some(access_log) = flags.access_log {
        daemon.access_log = access_log;
    }
    let _log = logging::init(
        flags.log_level.as_deref().or(daemon.log_level.as_deref()),
        flags.log_file.as_deref().or(daemon.log_file.as_deref()),
        daemon.access_log.file().map(PathBuf::as_path),
    )?;
    if let Some(path) = flags.control_socket {
        daemon.control_socket = Some(path);
    }
    if let Some(path) = flags.state_file {
        daemon.state_file = Some(path);
    }
    if let Some(addr) = flags.admin {
        daemon.admin = Some(addr);
    }
    if let Some(path) = daemon.state_file.as_deref().filter(|p| p.exists()) {
        let saved = config::load(path)
            .with_context(|| {
                "loading the state file (move it away to start from the configuration)"
            })?
            .table
            .services;
        spec.services = startup::prefer_state_file(path, saved, std::mem::take(&mut spec.services));
    }
    if spec.services.is_empty() && !daemon.allow_empty && !flags.demo {
        bail!(
            "no service to serve: add one to the configuration file, or set \
             allow_empty = true to start empty and add services with tcpvsadm"
        );
    }
    let workers = flags
        .workers
        .or(daemon.workers)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = Started {
        config: flags.config.as_deref(),
        level_from_flag: flags.log_level.is_some(),
        pinned,
        workers,
        upgrade: flags.upgrade,
        from_file,
    };
    serve(spec, &started, &daemon, &pools, (events, &signals))
}

/// How tcpvsd was started, for what a reload may change.
struct Started<'a> {
    config: Option<&'a Path>,
    level_from_flag: bool,
    /// `--access-log` and `--log-format`: kept over a reloaded file's.
    pinned: PinnedSettings,
    workers: usize,
    /// `--upgrade`: take over the tcpvsd running on the control socket.
    upgrade: bool,
    /// The daemon's settings as the file gave them, before the flags: what
    /// a reloaded file is compared with for the settings only a restart
    /// changes (a flag is not a change of the file).
    from_file: DaemonOptions,
}

fn serve(
    spec: TableSpec,
    started: &Started<'_>,
    daemon: &DaemonOptions,
    pools: &[demo::BackendPool],
    (events, signals): (Sender<Signal>, &Receiver<Signal>),
) -> anyhow::Result<()> {
    let run_as = privileges::resolve(daemon.user.as_deref(), daemon.group.as_deref())?;
    let socket_path = daemon
        .control_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let nofile = descriptors::raise_nofile();
    tracing::info!(nofile, "descriptors");
    descriptors::log_limit(spec.settings.max_conns);
    let table = Table::build(spec, None).map_err(|(_, e)| anyhow::anyhow!(e))?;
    let table = Arc::new(ArcSwap::from_pointee(table));
    let inherited = match started.upgrade {
        true => upgrade::take_sockets(&socket_path)?,
        false => Vec::new(),
    };
    let running = Arc::new(worker::Workers::start_with(
        table.clone(),
        started.workers,
        inherited,
    )?);
    let _checker = health::Checker::start(table.clone()).context("starting the health checker")?;
    let set_log_level: SetLogLevel = Box::new(|level| match logging::installed() {
        Some(log) => log.set_level(level),
        None => Err("no log installed".into()),
    });
    let retire: Box<dyn Fn() + Send + Sync> = Box::new(move || {
        let _ = events.send(Signal::Retire);
    });
    // What tcpvsadm's listings and the /stats page count from, sampled for
    // their rates by a thread of its own.
    let traffic = Traffic::start(table.clone(), running.clone());
    let plane = Arc::new(
        ControlPlane::new(
            table.clone(),
            running.clone(),
            daemon.state_file.clone(),
            traffic.clone(),
        )
        .with_reload(
            Reload::new(
                started.from_file.clone(),
                started.level_from_flag,
                set_log_level,
            )
            .with_pinned(started.pinned.clone()),
        )
        .with_retire(retire),
    );
    if started.upgrade {
        // Serving the sockets already: the old tcpvsd may go.
        upgrade::retire_old(&socket_path)?;
        tracing::info!(socket = %socket_path.display(), "took over from the running tcpvsd");
    }
    let pages = admin::Admin {
        table: table.clone(),
        workers: running.clone(),
        traffic,
    };
    let admin = start_admin(daemon.admin, pages, started.upgrade)?;
    let mut access =
        socket::Access::for_daemon(daemon.control_group.as_deref()).context("control_group")?;
    if let Some(run_as) = &run_as {
        // The user tcpvsd becomes may use its own socket.
        access.uid = run_as.uid.as_raw();
    }
    socket::serve(&socket_path, plane.clone(), access)?;
    let _resolver =
        crate::resolve::start(table.clone(), &plane).context("starting the resolver")?;
    println!("tcpvsd: control socket {}", socket_path.display());
    if let Some(run_as) = &run_as {
        // So that it can remove its socket at exit (its directory allowing).
        nix::unistd::chown(&socket_path, Some(run_as.uid), Some(run_as.gid))
            .with_context(|| format!("chown {}", socket_path.display()))?;
        privileges::drop_to(run_as)?;
    }
    let listening = running.listening();
    let snapshot = table.load();
    for service in &snapshot.services {
        let Some(&addr) = listening.get(&service.ident) else {
            continue;
        };
        println!(
            "tcpvsd: service {} ({}, {}) listening on {addr} with {} real servers, {} workers",
            service.ident,
            service.protocol,
            service.scheduler.kind(),
            service.servers.len(),
            started.workers
        );
        if !pools.is_empty() {
            print_demo_help(addr, pools, &socket_path, admin.as_ref().map(|a| a.bound));
        }
    }
    let sockets = loop {
        match signals.recv() {
            Ok(Signal::Stop) | Err(_) => break Sockets::Close,
            Ok(Signal::Retire) => break Sockets::HandedOver,
            Ok(Signal::Reload) => reload_file(&plane, started.config),
            Ok(Signal::ReopenLogs) => logging::reopen(),
        }
    };
    if let (Some(admin), Sockets::HandedOver) = (admin, sockets) {
        // The new tcpvsd binds the address and answers for it.
        admin.close();
    }
    let drain = table.load().settings().timeouts.drain;
    tracing::info!(?drain, "stopping: requests in flight may finish");
    stop::graceful(&running, signals, drain, sockets);
    if sockets == Sockets::Close {
        // Ours: the start refused any other file at this path. (Handed
        // over, the path is the new tcpvsd's.)
        let _ = std::fs::remove_file(&socket_path);
    }
    Ok(())
}

/// How long an upgrade's new tcpvsd waits for the old one to give up the
/// admin address (it does as soon as it is told to retire).
const ADMIN_HANDOVER: Duration = Duration::from_secs(3);

/// Opens the admin listener at `addr`, if one is configured. An address in
/// use stops the start; after an upgrade's retire (the old tcpvsd is going
/// away) it only costs the admin pages, said in the log.
fn start_admin(
    addr: Option<SocketAddr>,
    pages: admin::Admin,
    upgrade: bool,
) -> anyhow::Result<Option<admin::AdminListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = match upgrade {
        false => admin::serve(addr, pages)
            .with_context(|| format!("admin listener on {addr} (admin, --admin)"))?,
        true => match admin::serve_when_free(addr, pages, ADMIN_HANDOVER) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!("admin listener on {addr}: {e}; serving without it");
                return Ok(None);
            }
        },
    };
    println!(
        "tcpvsd: admin listener http://{}/ (/stats, /metrics, /healthz)",
        listener.bound
    );
    Ok(Some(listener))
}

/// SIGHUP: the configuration file again, applied as `tcpvsadm -f` applies
/// it (one swap); a file that does not load leaves everything as it was.
fn reload_file(plane: &ControlPlane, path: Option<&Path>) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: the demo has no configuration file to reload");
        return;
    };
    let source = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            tracing::error!("reload refused, the running configuration stays: {source}: {e}");
            return;
        }
    };
    match plane.handle(&Verb::Load { source, text }) {
        Ok(_) => tracing::info!(file = %path.display(), "configuration reloaded"),
        Err(e) => tracing::error!("reload refused, the running configuration stays: {e}"),
    }
}

fn print_demo_help(
    addr: SocketAddr,
    pools: &[demo::BackendPool],
    socket: &Path,
    admin: Option<SocketAddr>,
) {
    for pool in pools {
        let servers: Vec<String> = pool.servers.iter().map(ToString::to_string).collect();
        println!("  pool {:<7} {}", pool.name, servers.join(" "));
    }
    println!("try:");
    for path in ["/images/x.jpg", "/cgi-bin/a.cgi", "/index.html"] {
        println!("  curl http://{addr}{path}");
    }
    println!("  curl -d 'hello' http://{addr}/cgi-bin/form.cgi");
    if let Some(admin) = admin {
        println!("  curl http://{admin}/metrics");
        println!("  http://{admin}/stats in a browser: servers, load and rates, live");
    }
    // From the source tree, whether or not tcpvsadm was installed.
    let socket = socket.display();
    println!("the table, live (or `tcpvsadm` once installed, see README):");
    println!("  cargo run --release -p tcpvsadm -- --socket {socket} -L -n --stats");
    println!("  cargo run --release -p tcpvsadm -- --socket {socket} -L -n --rate");
}
