//! Reload (issue #16): SIGHUP and `tcpvsadm -f` apply the whole file in one
//! swap — rules, timeouts, log level — under load without a failed request,
//! and a file that does not load leaves the running configuration serving.

mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use common::daemon::Daemon;
use common::load::Load;
use common::{get, ok, wait_for, Reply, TestServer};

/// A backend that names itself, and answers `/slow` after 600 ms.
fn backend(name: &'static str) -> TestServer {
    TestServer::start(move |request| {
        if request.request_line().contains(" /slow") {
            thread::sleep(Duration::from_millis(600));
        }
        Reply::Send(ok(name))
    })
}

/// The file in one of two versions: `/r/` goes to `to`, the server timeout
/// and log level as given.
fn config(
    listen: &str,
    to: SocketAddr,
    other: SocketAddr,
    server_timeout: &str,
    level: &str,
) -> String {
    format!(
        "log_level = \"{level}\"\n\
         [timeouts]\nserver = \"{server_timeout}\"\n\
         [[service]]\nident = \"web\"\nlisten = \"{listen}\"\n\
         [[service.server]]\naddress = \"{to}\"\n\
         [[service.server]]\naddress = \"{other}\"\n\
         [[service.rule]]\npattern = \"^/r/\"\nservers = [\"{to}\"]\n"
    )
}

/// The running table's generation, which every applied edit or reload
/// raises (read from `tcpvsadm -L`: the log may be at `warn`).
fn generation(daemon: &Daemon) -> u64 {
    let listing = daemon.ok("-L");
    let (_, rest) = listing
        .split_once("table generation ")
        .expect("a generation");
    rest.split(')')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

#[test]
fn sighup_applies_the_changed_file_under_load_without_a_failed_request() {
    let (one, two) = (backend("one"), backend("two"));
    // The listen address is the same in both versions (port 0: the one
    // bound at start stays).
    let versions = [
        config("127.0.0.1:0", one.addr, two.addr, "5s", "info"),
        config("127.0.0.1:0", two.addr, one.addr, "200ms", "warn"),
    ];
    let mut daemon = Daemon::with_config("reload-hup", &versions[0]);
    let listen = daemon.bound("web");

    // New connections per request, all through the reloads.
    let load = Load::new_connections(listen, 3, "/page");

    for round in 0..20 {
        let version = round % 2;
        std::fs::write(daemon.config_path(), &versions[version]).unwrap();
        let before = generation(&daemon);
        daemon.signal("HUP");
        wait_for(Duration::from_secs(3), "the reload", || {
            generation(&daemon) > before
        });
        // The rule moved with the file.
        let expected = ["one", "two"][version];
        assert_eq!(get(listen, "/r/x").text(), expected, "round {round}");
    }
    let (done, failed) = load.finish();
    eprintln!("{failed} failed of {done} requests across 20 reloads");
    assert!(done > 100, "only {done} requests");
    assert_eq!(failed, 0, "{failed} of {done} requests failed");

    // The last version (round 19) has the 200 ms server timeout and warn:
    // a slow answer is 504, info events are no longer written, and access
    // lines still are (they are not an event level).
    assert_eq!(get(listen, "/slow").status, 504);
    // The log is written by a thread of its own: let it catch up first.
    let access_lines = || daemon.stderr().matches("tcpvs::access").count();
    thread::sleep(Duration::from_millis(300));
    let lines = access_lines();
    for _ in 0..5 {
        assert_eq!(get(listen, "/marker").status, 200);
    }
    wait_for(Duration::from_secs(3), "the access lines at warn", || {
        access_lines() == lines + 5
    });
    daemon.signal("USR2");
    thread::sleep(Duration::from_millis(300));
    let stderr = daemon.stderr();
    assert!(
        !stderr.contains("SIGUSR2 ignored"),
        "an info event at warn: {stderr}"
    );

    // A broken file: refused with its line, the last version keeps serving.
    std::fs::write(
        daemon.config_path(),
        "[[service]]\nident = \"web\"\nlisten = nonsense\n",
    )
    .unwrap();
    daemon.signal("HUP");
    wait_for(Duration::from_secs(3), "the refusal", || {
        daemon.stderr().contains("reload refused")
    });
    let log = daemon.stderr();
    assert!(log.contains("tcpvsd.toml:3"), "{log}");
    assert_eq!(get(listen, "/r/x").text(), "two");
    assert_eq!(get(listen, "/slow").status, 504);
    assert!(daemon.alive());
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn tcpvsadm_load_applies_settings_too_and_names_what_needs_a_restart() {
    let (one, two) = (backend("one"), backend("two"));
    let daemon = Daemon::with_config(
        "reload-adm",
        &config("127.0.0.1:0", one.addr, two.addr, "5s", "info"),
    );
    let listen = daemon.bound("web");
    assert_eq!(get(listen, "/slow").status, 200);
    let file = daemon.dir().join("new.toml");
    // The same file again: the flags tcpvsd was started with (its control
    // socket) are not taken for changes of the file, and nothing is named.
    let same = config("127.0.0.1:0", one.addr, two.addr, "5s", "info");
    std::fs::write(&file, same).unwrap();
    daemon.ok(&format!("-f {}", file.display()));
    std::thread::sleep(Duration::from_millis(500));
    let stderr = daemon.stderr();
    assert!(
        !stderr.contains("only applied at the next start"),
        "a restart asked for though the file changed none: {stderr}"
    );
    let new = format!(
        "workers = 1\n{}",
        config("127.0.0.1:0", two.addr, one.addr, "200ms", "info")
    );
    std::fs::write(&file, &new).unwrap();
    daemon.ok(&format!("-f {}", file.display()));
    assert_eq!(
        get(listen, "/slow").status,
        504,
        "the timeout was not applied"
    );
    assert_eq!(get(listen, "/r/x").text(), "two");
    // A file that names the port tcpvsd was given for port 0: the same socket.
    let pinned = config(&listen.to_string(), one.addr, two.addr, "5s", "info");
    std::fs::write(&file, pinned).unwrap();
    daemon.ok(&format!("-f {}", file.display()));
    assert_eq!(daemon.bound("web"), listen);
    assert_eq!(get(listen, "/r/x").text(), "one");
    std::fs::write(&file, &new).unwrap();
    daemon.ok(&format!("-f {}", file.display()));
    wait_for(Duration::from_secs(3), "the restart warning", || {
        daemon
            .stderr()
            .contains("only applied at the next start: workers")
    });
    // An empty file is refused (a mistake), unless it says it means it.
    std::fs::write(&file, "log_level = \"info\"\n").unwrap();
    let refused = daemon.adm(&format!("-f {}", file.display()));
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(message.contains("no service"), "{message}");
    assert_eq!(get(listen, "/r/x").text(), "two");
    std::fs::write(&file, "allow_empty = true\n").unwrap();
    daemon.ok(&format!("-f {}", file.display()));
    assert!(!daemon.ok("-L").contains("web"), "the table is not empty");
}
