//! The tcpvsd binary itself: the demo a new user runs first, and the
//! configuration errors an operator sees.

mod common;

use std::net::SocketAddr;
use std::process::Output;

use common::daemon::{tcpvsd_exit, Daemon, Scratch};
use common::*;

/// The address in the "listening on ADDR" line tcpvsd prints for a service.
fn listening_on(daemon: &mut Daemon) -> SocketAddr {
    let line = daemon.stdout_line("listening on ");
    let (_, rest) = line.split_once("listening on ").unwrap();
    rest.split_whitespace()
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// Asserts tcpvsd exited with status 1 exactly and said `message`.
fn assert_exit_1(output: &Output, what: &str, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
    assert!(stderr.contains(message), "{what}: {stderr}");
}

#[test]
fn demo_routes_three_paths_to_three_pools() {
    let mut daemon = Daemon::start_in(
        Scratch::new("demo"),
        &["--demo", "--listen", "127.0.0.1:0", "--workers", "2"],
    );
    let addr = listening_on(&mut daemon);
    let mut pools = Vec::new();
    for (path, pool) in [
        ("/images/x.jpg", "images"),
        ("/cgi-bin/a.cgi", "cgi"),
        ("/index.html", "static"),
    ] {
        let response = get(addr, path);
        assert_eq!(response.status, 200);
        let text = response.text();
        assert!(
            text.starts_with(&format!("{pool} server ")),
            "{path}: {text}"
        );
        pools.push(response.header("x-served-by")[0].clone());
    }
    pools.dedup();
    assert_eq!(pools.len(), 3);
}

#[test]
fn config_file_serves_and_errors_name_file_line_key() {
    let server = TestServer::named("from-config");
    let mut daemon = Daemon::with_config(
        "config",
        &format!(
            "log_level = \"warn\"\n[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
             [[service.server]]\naddress = \"{}\"\n",
            server.addr
        ),
    );
    let addr = listening_on(&mut daemon);
    assert_eq!(get(addr, "/").text(), "from-config");

    let dir = Scratch::new("config-errors");
    let bad = dir.write(
        "bad.toml",
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"fastest\"\n",
    );
    assert_exit_1(
        &tcpvsd_exit(&["--config", bad.to_str().unwrap()]),
        "unknown scheduler",
        "bad.toml:4: service[0].scheduler: unknown scheduler `fastest`",
    );
    assert_exit_1(
        &tcpvsd_exit(&["--config", "/nonexistent.toml"]),
        "missing file",
        "/nonexistent.toml: cannot read",
    );
}

/// The README's example: "A configuration error names the file, the line and
/// the key, and tcpvsd exits 1", with `--check` as with a start.
#[test]
fn config_error_exits_1_naming_file_line_and_key() {
    let dir = Scratch::new("exit-1");
    let file = dir.write(
        "t.toml",
        "log_level = \"warn\"\n\
         [[service]]\n\
         ident = \"web\"\n\
         listen = \"127.0.0.1:0\"\n\
         [[service.server]]\n\
         address = \"127.0.0.1:9001\"\n\
         [[service.server]]\n\
         address = \"127.0.0.1:9002\"\n\
         weight = 70000\n",
    );
    let path = file.to_str().unwrap();
    let message =
        format!("tcpvsd: {path}:9: service[0].server[1].weight: 70000 is out of range 0..=65535");
    let socket = dir.path().join("control.sock");
    for check in [false, true] {
        let mut args = vec![
            "--config",
            path,
            "--control-socket",
            socket.to_str().unwrap(),
        ];
        if check {
            args.push("--check");
        }
        let output = tcpvsd_exit(&args);
        assert_exit_1(&output, &format!("{args:?}"), &message);
        assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
    }
    // The same file with the weight in range checks out.
    let good = dir.write(
        "good.toml",
        &std::fs::read_to_string(&file)
            .unwrap()
            .replace("70000", "65535"),
    );
    let output = tcpvsd_exit(&["--config", good.to_str().unwrap(), "--check"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}: ok\n", good.display())
    );
}

#[test]
fn bad_state_file_and_flags_are_errors() {
    let dir = Scratch::new("state");
    let config = dir.write("c.toml", "log_level = \"warn\"\n");
    let state = dir.write(
        "state.toml",
        "[[service]]\nident = \"web\"\nlisten = \"nowhere\"\n",
    );
    let output = tcpvsd_exit(&[
        "--config",
        config.to_str().unwrap(),
        "--state-file",
        state.to_str().unwrap(),
    ]);
    assert_exit_1(&output, "bad state file", "state.toml:3: service[0].listen");
    assert_exit_1(&output, "bad state file", "loading the state file");
    for (args, message) in [
        (
            &["--demo", "--workers", "0"][..],
            "invalid value '0' for '--workers <N>': `0` is not a number from 1 to 1024",
        ),
        (
            &["--demo", "--listen", "localhost"][..],
            "invalid value 'localhost' for '--listen <ADDR>': `localhost` is not IP:PORT",
        ),
        (
            &["--frobnicate"][..],
            "unexpected argument '--frobnicate' found",
        ),
        (&[][..], "give --config FILE or --demo"),
    ] {
        assert_exit_1(&tcpvsd_exit(args), &format!("{args:?}"), message);
    }
}

#[test]
fn busy_port_is_an_error_not_a_shared_socket() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = Scratch::new("busy");
    let socket = dir.path().join("control.sock");
    assert_exit_1(
        &tcpvsd_exit(&[
            "--demo",
            "--listen",
            &addr,
            "--control-socket",
            socket.to_str().unwrap(),
        ]),
        "busy port",
        "cannot listen on",
    );
}

/// An empty configuration is a mistake unless it says otherwise; when a
/// state file and the configuration file disagree, the state file wins and
/// the log names what the configuration file held that was not applied.
#[test]
fn empty_configuration_is_refused_and_the_state_file_wins_out_loud() {
    let dir = Scratch::new("empty");
    let empty = dir.write("empty.toml", "log_level = \"warn\"\n");
    assert_exit_1(
        &tcpvsd_exit(&["--config", empty.to_str().unwrap()]),
        "an empty configuration",
        "no service to serve",
    );

    let state = dir.write(
        "state.toml",
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n",
    );
    let config = "log_level = \"info\"\n\
         [[service]]\nident = \"api\"\nlisten = \"127.0.0.1:0\"\n";
    let daemon = Daemon::with_config_in(
        Scratch::new("precedence"),
        config,
        &["--state-file", state.to_str().unwrap()],
    );
    let listing = daemon.ok("-L");
    assert!(
        listing.contains("web") && !listing.contains("api"),
        "{listing}"
    );
    let log = daemon.stderr();
    assert!(log.contains("the table is the state file's"), "{log}");
    assert!(
        log.contains("api (not in the state file)") && log.contains("web (only in the state file)"),
        "{log}"
    );
}

/// `user`/`group`: started as root, tcpvsd binds what it needs, then every
/// one of its threads runs as the unprivileged user, and it still serves.
#[test]
fn user_and_group_drop_root_after_binding() {
    if !is_root() {
        eprintln!("skipped: needs root to change user");
        return;
    }
    let backend = TestServer::named("served");
    let config = format!(
        "log_level = \"warn\"\nuser = \"nobody\"\ngroup = \"nogroup\"\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{}\"\n",
        backend.addr
    );
    let daemon = Daemon::with_config("drop-root", &config);
    let listen = daemon.bound("web");
    assert_eq!(get(listen, "/").text(), "served");
    let tasks = std::fs::read_dir(format!("/proc/{}/task", daemon.pid())).unwrap();
    let mut threads = 0;
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap();
        let ids = |key: &str| {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            line.split_whitespace()
                .skip(1)
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert!(ids("Uid:").iter().all(|id| id == "65534"), "{status}");
        assert!(ids("Gid:").iter().all(|id| id == "65534"), "{status}");
        threads += 1;
    }
    assert!(threads >= 3, "only {threads} threads");
    // The unprivileged user could not bind it, but it still serves it, and
    // root still reaches the control socket.
    daemon.ok("-L");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
