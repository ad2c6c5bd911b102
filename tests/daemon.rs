//! The tcpvsd binary itself: the demo a new user runs first, and the
//! configuration errors an operator sees.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::*;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tcpvsd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tcpvsd"))
}

/// Starts `tcpvsd args` and returns the address from its "listening on" line.
/// Each daemon gets a control socket of its own (not the default path, which a
/// running tcpvsd on this machine may hold).
fn start(args: &[&str]) -> (Daemon, SocketAddr) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let socket = std::env::temp_dir().join(format!("tcpvsd-test-{}-{n}.sock", std::process::id()));
    let mut child = tcpvsd()
        .args(args)
        .arg("--control-socket")
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tcpvsd");
    let stdout = child.stdout.take().unwrap();
    let daemon = Daemon(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("tcpvsd output");
        if let Some((_, rest)) = line.split_once("listening on ") {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (daemon, addr);
        }
    }
    panic!("tcpvsd exited without listening");
}

#[test]
fn demo_routes_three_paths_to_three_pools() {
    let (_daemon, addr) = start(&["--demo", "--listen", "127.0.0.1:0", "--workers", "2"]);
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
    let dir = std::env::temp_dir().join(format!("tcpvs-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        format!(
            "log_level = \"warn\"\n[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
             [[service.server]]\naddress = \"{}\"\n",
            server.addr
        ),
    )
    .unwrap();
    let (_daemon, addr) = start(&["--config", good.to_str().unwrap()]);
    assert_eq!(get(addr, "/").text(), "from-config");

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"fastest\"\n",
    )
    .unwrap();
    let output = tcpvsd()
        .args(["--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml:4: service[0].scheduler: unknown scheduler `fastest`"),
        "{stderr}"
    );

    let output = tcpvsd()
        .args(["--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent.toml: cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_state_file_and_flags_are_errors() {
    let dir = std::env::temp_dir().join(format!("tcpvs-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.toml");
    std::fs::write(&config, "log_level = \"warn\"\n").unwrap();
    let state = dir.join("state.toml");
    std::fs::write(
        &state,
        "[[service]]\nident = \"web\"\nlisten = \"nowhere\"\n",
    )
    .unwrap();
    let output = tcpvsd()
        .args([
            "--config",
            config.to_str().unwrap(),
            "--state-file",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("state.toml:3: service[0].listen"),
        "{stderr}"
    );
    assert!(stderr.contains("loading the state file"), "{stderr}");
    for (args, message) in [
        (
            &["--demo", "--workers", "0"][..],
            "--workers: `0` is not a number from 1 to 1024",
        ),
        (
            &["--demo", "--listen", "localhost"][..],
            "--listen: `localhost` is not IP:PORT",
        ),
        (&["--frobnicate"][..], "unknown argument `--frobnicate`"),
        (&[][..], "give --config FILE or --demo"),
    ] {
        let output = tcpvsd().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn busy_port_is_an_error_not_a_shared_socket() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = tcpvsd()
        .args(["--demo", "--listen", &addr])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}
