//! Binary upgrade (issue #16): `tcpvsd --upgrade` takes the running
//! tcpvsd's listening sockets over its control socket, serves them, and the
//! old one drains and exits; under a load of new connections, twenty
//! upgrades in a row cost no request.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::{get, TestServer};

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

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (stop, failed, done) = (stop.clone(), failed.clone(), done.clone());
            thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(90) {
                    match std::panic::catch_unwind(|| get(listen, "/").status) {
                        Ok(200) => {}
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

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
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
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
