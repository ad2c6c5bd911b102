//! Binary upgrade (issue #16): `tcpvsd --upgrade` takes the running
//! tcpvsd's listening sockets over its control socket, serves them, and the
//! old one drains and exits; under a load of new connections, twenty
//! upgrades in a row cost no request.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::thread;
use std::time::Duration;

use common::daemon::Daemon;
use common::load::Load;
use common::TestServer;

#[test]
fn twenty_upgrades_under_load_lose_no_request() {
    let backend = TestServer::named("served");
    let config = format!(
        "log_level = \"info\"\naccess_log = false\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{}\"\n",
        backend.addr
    );
    let mut daemon = Daemon::with_config("upgrade", &config);
    let listen = daemon.bound("web");

    let load = Load::new_connections(listen, 3, "/");
    thread::sleep(Duration::from_millis(200));
    for round in 0..20 {
        let mut new = daemon.upgrade();
        let status = daemon.wait_exit(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "round {round}: the old tcpvsd did not exit 0: {status:?}\n{}",
            daemon.stderr()
        );
        assert!(
            new.alive(),
            "round {round}: the new tcpvsd died:\n{}",
            new.stderr()
        );
        assert!(new.stderr().contains("took over from the running tcpvsd"));
        // The same address, now served by the new process.
        assert_eq!(new.bound("web"), listen);
        daemon = new;
    }
    thread::sleep(Duration::from_millis(200));
    let (done, failed) = load.finish();
    eprintln!("{failed} failed of {done} requests across 20 upgrades");
    assert!(done > 200, "only {done} requests");
    assert_eq!(failed, 0, "{failed} of {done} requests failed");
    daemon.ok("-L");
}

#[test]
fn an_upgrade_with_nothing_running_says_so_and_changes_nothing() {
    let dir = common::daemon::Scratch::new("upgrade-alone");
    let config = dir.write(
        "c.toml",
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n",
    );
    let socket = dir.path().join("none.sock");
    let output = common::daemon::tcpvsd_exit(&[
        "--config",
        config.to_str().unwrap(),
        "--control-socket",
        socket.to_str().unwrap(),
        "--upgrade",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--upgrade: no tcpvsd answers on"),
        "{stderr}"
    );
    assert!(!socket.exists());
}

/// A retire that no hand-over came before is refused: the running tcpvsd
/// keeps serving and keeps its control socket.
#[test]
fn a_retire_without_a_hand_over_is_refused() {
    let backend = TestServer::named("served");
    let config = format!(
        "log_level = \"warn\"\n[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{}\"\n",
        backend.addr
    );
    let mut daemon = Daemon::with_config("retire-alone", &config);
    let listen = daemon.bound("web");
    let mut control = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    control
        .write_all(b"{\"id\":7,\"verb\":\"retire\"}\n")
        .unwrap();
    let mut answer = String::new();
    BufReader::new(&control).read_line(&mut answer).unwrap();
    assert!(answer.contains("hand-over first"), "{answer}");
    thread::sleep(Duration::from_millis(300));
    assert!(daemon.alive());
    assert_eq!(common::get(listen, "/").status, 200);
    daemon.ok("-L");
}
