//! tcpvsd: the tcpvs daemon. Loads the rule table (from a TOML file, or the
//! built-in demo), then serves it on one io_uring worker per core.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use arc_swap::ArcSwap;
use tcpvs::config::{self, DaemonOptions};
use tcpvs::control::plane::ControlPlane;
use tcpvs::control::{socket, DEFAULT_SOCKET};
use tcpvs::table::{Table, TableSpec};
use tcpvs::{demo, worker};

const USAGE: &str = "\
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
  --control-socket PATH  where tcpvsadm talks to tcpvsd (default /run/tcpvsd.sock)
  --state-file PATH      save the table there after each edit, load it at start";

#[derive(Default)]
struct Flags {
    config: Option<PathBuf>,
    check: bool,
    demo: bool,
    listen: Option<SocketAddr>,
    workers: Option<usize>,
    log_level: Option<String>,
    control_socket: Option<PathBuf>,
    state_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcpvsd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let flags = parse_flags(std::env::args().skip(1))?;
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
    init_logging(flags.log_level.as_deref().or(daemon.log_level.as_deref()))?;
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
    serve(spec, workers, &daemon, &pools)
}

fn serve(
    spec: TableSpec,
    workers: usize,
    daemon: &DaemonOptions,
    pools: &[demo::BackendPool],
) -> anyhow::Result<()> {
    let table = Table::build(spec, None).map_err(|(_, e)| anyhow::anyhow!(e))?;
    let table = Arc::new(ArcSwap::from_pointee(table));
    let running = Arc::new(worker::Workers::start(table.clone(), workers)?);
    let _checker =
        tcpvs::health::Checker::start(table.clone()).context("starting the health checker")?;
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
    running.join();
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

fn init_logging(level: Option<&str>) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level.unwrap_or("info"))
        .with_context(|| format!("bad log level `{}`", level.unwrap_or_default()))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}

fn parse_flags(mut args: impl Iterator<Item = String>) -> anyhow::Result<Flags> {
    let mut flags = Flags::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--config" | "-c" => flags.config = Some(value("--config")?.into()),
            "--check" => flags.check = true,
            "--demo" => flags.demo = true,
            "--listen" => {
                let addr = value("--listen")?;
                flags.listen = Some(
                    addr.parse()
                        .with_context(|| format!("--listen: `{addr}` is not IP:PORT"))?,
                );
            }
            "--workers" => {
                let n = value("--workers")?;
                match n.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => flags.workers = Some(n),
                    _ => bail!("--workers: `{n}` is not a number from 1 to 1024"),
                }
            }
            "--log-level" => flags.log_level = Some(value("--log-level")?),
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
