//! Several directors (examples/two-directors/): two tcpvsd started from one
//! configuration file, the `chash` scheduler over three real servers, behind
//! HAProxy in TCP mode (roundrobin, so consecutive connections alternate
//! between the directors). Each target, asked several times on new
//! connections, reaches both directors and always lands on the same real
//! server: the directors agree without talking to each other.
//!
//! The files are the example's own, with its addresses swapped for loopback
//! ones: the directors' service listens on port 0 (both from the same file);
//! only the admin address, the control socket and the access log, given on
//! the command line, differ.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{run_within, tcpvsd_exit, Daemon, Scratch, START_TIMEOUT};
use common::{eventually, get, require_tool, wait_for, TestServer};

/// Distinct targets, and how many times each is asked (each time on a new
/// connection, so HAProxy alternates directors within a target's requests).
const TARGETS: usize = 40;
const ROUNDS: usize = 4;

/// The example's folder.
fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/two-directors")
        .join(file)
}

/// `text` with its only `from` replaced by `to`: a change to the example
/// that removes or repeats `from` fails here rather than going untested.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "one {from:?} in\n{text}");
    text.replacen(from, to, 1)
}

/// examples/two-directors/tcpvsd.toml on loopback: its three real servers
/// are `servers`, and the service listener takes a port of its own (port
/// 0), so both directors can run the one file on one machine. (The admin
/// address is given per director on the command line.)
fn shared_config(servers: &[SocketAddr; 3]) -> String {
    let mut config = std::fs::read_to_string(example("tcpvsd.toml")).unwrap();
    config = replace_once(&config, "\"0.0.0.0:80\"", "\"127.0.0.1:0\"");
    config = replace_once(&config, "\"0.0.0.0:9180\"", "\"127.0.0.1:0\"");
    let example_servers = ["10.0.1.11:80", "10.0.1.12:80", "10.0.1.13:80"];
    for (from, to) in example_servers.iter().zip(servers) {
        config = replace_once(&config, &format!("\"{from}\""), &format!("\"{to}\""));
    }
    config
}

/// `N` distinct free ports on 127.0.0.73, for the listeners whose address
/// must be known before they start (HAProxy's, the directors' admin). No
/// other test binds that address, so the ports stay free until used.
fn unused_addresses<const N: usize>() -> [SocketAddr; N] {
    let held: [TcpListener; N] =
        std::array::from_fn(|_| TcpListener::bind("127.0.0.73:0").unwrap());
    held.map(|listener| listener.local_addr().unwrap())
}

/// One director: tcpvsd with the shared file, its access lines as JSON in a
/// file of its own.
struct Director {
    daemon: Daemon,
    web: SocketAddr,
    admin: SocketAddr,
    access_log: PathBuf,
}

impl Director {
    /// `tcpvsd --config CONFIG --admin ADMIN ...`: the one per-instance
    /// setting an operator gives on the command line when two directors
    /// share a machine (the harness adds the control socket).
    fn start(name: &str, config: &Path, admin: SocketAddr) -> Director {
        let dir = Scratch::new(name);
        let access_log = dir.path().join("access.log");
        let admin_flag = admin.to_string();
        let args = [
            "--config".as_ref(),
            config.as_os_str(),
            "--admin".as_ref(),
            admin_flag.as_ref(),
            "--access-log".as_ref(),
            access_log.as_os_str(),
            "--log-format".as_ref(),
            "json".as_ref(),
            "--workers".as_ref(),
            "2".as_ref(),
        ];
        let daemon = Daemon::start_in(dir, &args);
        let web = daemon.bound("web");
        Director {
            daemon,
            web,
            admin,
            access_log,
        }
    }

    /// (target, server) of each access line written so far.
    fn served(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        text.lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("access line {line:?}: {e}"));
                let field = |name: &str| value[name].as_str().unwrap_or("-").to_string();
                (field("target"), field("server"))
            })
            .collect()
    }
}

/// HAProxy in the foreground, killed by its pid when dropped.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `program`, which Debian installs in /usr/sbin (a user's PATH
/// may lack it). `None` when it is missing outside CI (the test is then
/// marked ignored by the build and reached only with `--ignored`).
fn sbin_program(program: &str) -> Option<PathBuf> {
    let sbin = Path::new("/usr/sbin").join(program);
    if sbin.exists() {
        return Some(sbin);
    }
    require_tool(program).then(|| PathBuf::from(program))
}

/// examples/two-directors/haproxy.cfg on loopback, in front of `directors`,
/// each checked on its own admin port.
fn haproxy_config(listen: SocketAddr, directors: &[Director; 2]) -> String {
    let mut config = std::fs::read_to_string(example("haproxy.cfg")).unwrap();
    config = replace_once(&config, "bind :80", &format!("bind {listen}"));
    for (i, director) in directors.iter().enumerate() {
        let example = ["10.0.0.21:80", "10.0.0.22:80"][i];
        let (web, admin) = (director.web, director.admin);
        let (ip, port) = (admin.ip(), admin.port());
        config = replace_once(&config, example, &format!("{web} addr {ip} port {port}"));
    }
    config
}

impl Haproxy {
    fn start(binary: &Path, dir: &Scratch, addr: SocketAddr, directors: &[Director; 2]) -> Haproxy {
        let config = dir.write("haproxy.cfg", &haproxy_config(addr, directors));
        let mut check = Command::new(binary);
        check.arg("-c").arg("-f").arg(&config);
        let check = run_within(check, START_TIMEOUT);
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let mut haproxy = Haproxy { child, addr };
        let log = dir.path().join("haproxy.log");
        let said = || std::fs::read_to_string(&log).unwrap_or_default();
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(addr).is_err() {
            let exited = haproxy.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "haproxy not listening on {addr} ({exited:?}):\n{}",
                said()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }
}

#[test]
#[cfg_attr(
    missing_haproxy,
    ignore = "needs haproxy (apt install haproxy); .ci/run installs it"
)]
fn both_directors_send_each_target_to_the_same_server() {
    let Some(binary) = sbin_program("haproxy") else {
        return;
    };
    let servers = [
        TestServer::named("a"),
        TestServer::named("b"),
        TestServer::named("c"),
    ];
    let name_of: BTreeMap<String, &str> = servers
        .iter()
        .zip(["a", "b", "c"])
        .map(|(server, name)| (server.addr.to_string(), name))
        .collect();
    let shared = Scratch::new("two-directors");
    let config = shared.write(
        "tcpvsd.toml",
        &shared_config(&[servers[0].addr, servers[1].addr, servers[2].addr]),
    );
    let [front, admin1, admin2] = unused_addresses();
    let directors = [
        Director::start("director1", &config, admin1),
        Director::start("director2", &config, admin2),
    ];
    let haproxy = Haproxy::start(&binary, &shared, front, &directors);

    // The real server that answered each target, as the client saw it.
    let mut answered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for target in (0..TARGETS).map(|i| format!("/objects/{i}.jpg")) {
        for _ in 0..ROUNDS {
            let response = get(haproxy.addr, &target);
            assert_eq!(response.status, 200, "{target}: {response:?}");
            answered
                .entry(target.clone())
                .or_default()
                .insert(response.text());
        }
    }
    for (target, names) in &answered {
        assert_eq!(names.len(), 1, "{target} was served by {names:?}");
    }

    // What each director did, from its access log (written off the workers:
    // wait for every line).
    let total = || directors.iter().map(|d| d.served().len()).sum::<usize>();
    let all_logged = eventually(Duration::from_secs(10), || total() >= TARGETS * ROUNDS);
    assert!(
        all_logged,
        "{} access lines of {}",
        total(),
        TARGETS * ROUNDS
    );
    let mut seen: BTreeMap<String, BTreeMap<usize, BTreeSet<&str>>> = BTreeMap::new();
    let logs: Vec<_> = directors.iter().map(Director::served).collect();
    for (i, lines) in logs.iter().enumerate() {
        assert!(!lines.is_empty(), "director {} served nothing", i + 1);
        for (target, server) in lines {
            let name = name_of.get(server).copied().unwrap_or("none");
            let servers = seen.entry(target.clone()).or_default().entry(i);
            servers.or_default().insert(name);
        }
    }
    for (target, by_director) in &seen {
        assert_eq!(
            by_director.len(),
            2,
            "{target} reached only director(s) {:?}: HAProxy should alternate",
            by_director.keys().map(|i| i + 1).collect::<Vec<_>>()
        );
        let servers: BTreeSet<&str> = by_director.values().flatten().copied().collect();
        assert_eq!(
            servers.len(),
            1,
            "{target}: the directors chose {by_director:?}"
        );
        let answer = answered[target].first().unwrap();
        assert!(
            servers.contains(answer.as_str()),
            "{target}: {answer} answered, logged {servers:?}"
        );
    }

    // And the targets spread over the servers (40 targets all on one of
    // three equal servers would mean the key is not hashed at all).
    let used: BTreeSet<&String> = answered.values().flatten().collect();
    assert_eq!(used.len(), 3, "targets all went to {used:?}");

    // A director stops (it stops listening at once): HAProxy passes its
    // connections to the other one, and every target keeps its server.
    let [stopping, staying] = directors;
    let before = staying.served().len();
    stopping.daemon.signal("TERM");
    wait_for(START_TIMEOUT, "director 1 stops listening", || {
        TcpStream::connect(stopping.web).is_err()
    });
    for (target, names) in &answered {
        let response = get(haproxy.addr, target);
        assert_eq!(response.status, 200, "{target} after a stop: {response:?}");
        assert!(
            names.contains(&response.text()),
            "{target} moved after a stop"
        );
    }
    let rest = || staying.served().len() - before;
    let logged = eventually(Duration::from_secs(10), || rest() >= TARGETS);
    assert!(logged, "director 2 logged {} of {TARGETS}", rest());
}

#[test]
fn the_example_configuration_passes_tcpvsd_check() {
    let output = tcpvsd_exit(&[
        "--config".as_ref(),
        example("tcpvsd.toml").as_os_str(),
        "--check".as_ref(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[cfg_attr(
    missing_keepalived,
    ignore = "needs keepalived (apt install keepalived); .ci/run installs it"
)]
fn the_example_keepalived_conf_passes_its_config_test() {
    let Some(binary) = sbin_program("keepalived") else {
        return;
    };
    let mut check = Command::new(binary);
    check
        .arg("--config-test")
        .arg("--use-file")
        .arg(example("keepalived.conf"));
    let output = run_within(check, START_TIMEOUT);
    // It names unknown keywords and values it set by default on standard
    // error, and exits non-zero only for some of them: both must be quiet.
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && said.trim().is_empty(), "{said}");
}
