//! tcpvsadm against a running tcpvsd: the real binaries, a real control socket,
//! real traffic following every edit.

mod admin_support;
mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use admin_support::{admin_address, sample};
use common::daemon::{Daemon, Scratch};
use common::load::Load;
use common::*;

const EMPTY: &str = "log_level = \"warn\"\nallow_empty = true\n";

/// A tcpvsd started from a configuration with no service.
fn empty_daemon(name: &str) -> Daemon {
    Daemon::with_config(name, EMPTY)
}

/// Adds service `web` on 127.0.0.1:0 (with `options`, e.g. `-s rr`) over
/// `servers`; returns the address it is bound to.
fn web_over(
    daemon: &Daemon,
    options: &str,
    servers: &[std::net::SocketAddr],
) -> std::net::SocketAddr {
    daemon.ok(&format!("-A -i web -l 127.0.0.1:0 {options}"));
    for server in servers {
        daemon.ok(&format!("-a -i web -r {server}"));
    }
    daemon.bound("web")
}

/// `-L` without its generation line, live counters and ephemeral ports (a
/// service on port 0 is bound anew), for comparisons.
fn shape(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip(1)
        .map(|line| {
            if line.starts_with("  -> ") {
                line.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                let mut words: Vec<&str> = line.split_whitespace().collect();
                words.retain(|w| !w.starts_with('('));
                words.join(" ")
            }
        })
        .collect()
}

#[test]
fn ktcpvs_manual_example_typed_line_by_line() {
    let daemon = empty_daemon("manual");
    let cgi = TestServer::named("cgi");
    let images = TestServer::named("images");
    let rest = TestServer::named("rest");
    daemon.ok("-A -i web -s http -l 127.0.0.1:0");
    for server in [&cgi, &images, &rest] {
        daemon.ok(&format!("-a -i web -r {}", server.addr));
    }
    daemon.ok(&format!(
        "--add-rule -i web --pattern=^/cgi-bin/ -r {}",
        cgi.addr
    ));
    daemon.ok(&format!(
        "--add-rule -i web --pattern=^/images/ -r {}",
        images.addr
    ));
    daemon.ok(&format!("--add-rule -i web --pattern=.* -r {}", rest.addr));
    let web = daemon.bound("web");
    assert_eq!(get(web, "/cgi-bin/x.cgi").text(), "cgi");
    assert_eq!(get(web, "/images/a.png").text(), "images");
    assert_eq!(get(web, "/index.html").text(), "rest");
    let listing = daemon.ok("-L -n");
    assert!(listing.contains("web "), "{listing}");
    assert!(
        listing.contains(&format!("rule ^/cgi-bin/ -> {}", cgi.addr)),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("rule .* -> {}", rest.addr)),
        "{listing}"
    );
    let cgi_line = listing
        .lines()
        .find(|l| l.contains(&cgi.addr.to_string()) && l.contains("->"))
        .unwrap();
    // weight 1, 0 active, 1 request served
    assert_eq!(
        cgi_line
            .split_whitespace()
            .skip(2)
            .take(3)
            .collect::<Vec<_>>(),
        ["1", "0", "1"],
        "{listing}"
    );
}

#[test]
fn drain_and_edits_under_load_lose_no_request() {
    let daemon = empty_daemon("drain");
    let a = TestServer::named("a");
    let b = TestServer::named("b");
    let web = web_over(&daemon, "", &[a.addr, b.addr]);

    // Keep-alive clients run while the table is edited under them; each
    // failure is recorded as what it was.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut client = Client::connect(web);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let outcome = client
                        .try_send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                        .and_then(|()| client.try_read_response(false));
                    let failure = match outcome {
                        Ok(r) if r.status == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Ok(r) => format!("status {}", r.status),
                        Err(e) => describe_failure(&e),
                    };
                    failures.lock().unwrap().push(failure);
                    client = Client::connect(web);
                }
            })
        })
        .collect();
    let wait_for_traffic = |at_least: usize| {
        let started = Instant::now();
        while served.load(Ordering::Relaxed) < at_least {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "only {} of {at_least} requests served; failures: {:?}",
                served.load(Ordering::Relaxed),
                failures.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for_traffic(200);
    // Drain a: nothing new reaches it, requests keep being served by b.
    daemon.ok(&format!("-e -i web -r {} -w 0", a.addr));
    let drained_at = a.requests().len();
    wait_for_traffic(served.load(Ordering::Relaxed) + 300);
    assert!(
        a.requests().len() <= drained_at + 4,
        "a drained server got new requests"
    );
    // Unrelated edits under load: a new service, a rule, a weight, a deletion.
    daemon.ok("-A -i other -l 127.0.0.1:0 -s rr");
    daemon.ok(&format!("-a -i other -r {}", a.addr));
    daemon.ok(&format!("--add-rule -i web -p ^/never/ -r {}", b.addr));
    daemon.ok(&format!("-e -i web -r {} -w 5", b.addr));
    daemon.ok("-D -i other");
    daemon.ok(&format!("-d -i web -r {}", a.addr));
    wait_for_traffic(served.load(Ordering::Relaxed) + 300);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    assert_eq!(
        *failures.lock().unwrap(),
        Vec::<String>::new(),
        "requests failed during edits"
    );
    assert!(served.load(Ordering::Relaxed) > 800);
}

/// What a failed request came to: the proxy closed or reset the connection,
/// or nothing came within the client's read timeout (the connection is still
/// open: a stall, not a cut).
fn describe_failure(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => {
            format!("connection closed ({e})")
        }
        WouldBlock | TimedOut => format!("no answer within {TIMEOUT:?}, connection still open"),
        _ => format!("error: {e}"),
    }
}

#[test]
fn deleted_or_stopped_service_stops_listening() {
    let daemon = empty_daemon("delete");
    let server = TestServer::named("s");
    let web = web_over(&daemon, "", &[server.addr]);
    assert_eq!(get(web, "/").status, 200);
    // A keep-alive client connected before the stop keeps working.
    let mut kept = Client::connect(web);
    assert_eq!(
        kept.exchange("GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    daemon.ok("--stop -i web");
    assert!(
        std::net::TcpStream::connect(web).is_err(),
        "a stopped service still accepts"
    );
    assert_eq!(
        kept.exchange("GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    assert!(daemon.ok("-L").contains("stopped"));
    daemon.ok("--start -i web");
    let web = daemon.bound("web");
    assert_eq!(get(web, "/").status, 200);
    daemon.ok("-D -i web");
    assert!(
        std::net::TcpStream::connect(web).is_err(),
        "a deleted service still accepts"
    );
    assert!(!daemon.ok("-L").contains("web"));
}

#[test]
fn save_and_restore_give_the_same_table() {
    let daemon = empty_daemon("save");
    let a = TestServer::named("a");
    let b = TestServer::named("b");
    daemon.ok("-A -i web -l 127.0.0.1:0 -s rr --forwarded-proto https");
    daemon.ok(&format!("-a -i web -r {} -w 3", a.addr));
    daemon.ok(&format!("-a -i web -r {} -w 0", b.addr));
    daemon.ok(&format!("--add-rule -i web -p ^/images/ -r {}", a.addr));
    daemon.ok(&format!("--add-rule -i web -p ^/images/ -r {}", b.addr));
    daemon.ok(&format!("--add-rule -i web -p \\.(cgi|pl)$ -r {}", b.addr));
    daemon.ok(&format!("--add-default -i web -r {}", a.addr));
    daemon.ok("-A -i api -l 127.0.0.1:0 -s lard --sched-opt low=10,high=40 --persistent 300");
    daemon.ok(&format!("-a -i api -r {}", b.addr));
    daemon.ok("--stop -i api");
    assert!(daemon
        .ok("-L")
        .contains("lard high=40,low=10 persistent 300s"));
    let saved = daemon.ok("-S");
    let before = daemon.ok("-L");
    daemon.ok("-F");
    assert_eq!(shape(&daemon.ok("-L")).len(), 2, "flushed");
    restore(&daemon, &saved);
    assert_eq!(shape(&daemon.ok("-L")), shape(&before));
    // The restored service still marks requests as forwarded from https.
    assert_eq!(get(daemon.bound("web"), "/").text(), "a");
    let seen = a.requests().pop().unwrap();
    assert_eq!(seen.header("x-forwarded-proto"), ["https"]);

    // -f with a TOML configuration replaces the table with the file's.
    let file = daemon.dir().join("load.toml");
    std::fs::write(
        &file,
        format!(
            "[[service]]\nident = \"fromfile\"\nlisten = \"127.0.0.1:0\"\n[[service.server]]\naddress = \"{}\"\n",
            a.addr
        ),
    )
    .unwrap();
    daemon.ok(&format!("-f {}", file.display()));
    let listing = daemon.ok("-L");
    assert!(
        listing.contains("fromfile") && !listing.contains("web"),
        "{listing}"
    );
    assert_eq!(get(daemon.bound("fromfile"), "/").text(), "a");
}

#[test]
fn rules_on_host_and_headers_and_servers_by_name_through_tcpvsadm() {
    let daemon = empty_daemon("sites");
    let (img, tenant, www) = (
        TestServer::named("img"),
        TestServer::named("tenant"),
        TestServer::named("www"),
    );
    web_over(&daemon, "-s rr", &[img.addr, tenant.addr]);
    // A server by name: tcpvsd resolves it, keeps the name and shows it.
    let www_named = format!("localhost:{}", www.addr.port());
    daemon.ok(&format!("-a -i web -r {www_named}"));
    daemon.ok(&format!("--add-rule -i web --host ^img\\. -r {}", img.addr));
    daemon.ok(&format!(
        "--add-rule -i web -p ^/app/ --header X-Tenant:^a -r {}",
        tenant.addr
    ));
    daemon.ok(&format!("--add-default -i web -r {www_named}"));
    let ask = |path: &str, fields: &str| {
        // Bound anew (port 0) when -R rebuilds the service.
        Client::connect(daemon.bound("web"))
            .exchange(&format!(
                "GET {path} HTTP/1.1\r\n{fields}Connection: close\r\n\r\n"
            ))
            .text()
    };
    for _ in 0..3 {
        assert_eq!(ask("/x.png", "Host: IMG.example.com:8080\r\n"), "img");
        assert_eq!(
            ask("/app/1", "Host: example.com\r\nX-Tenant: acme\r\n"),
            "tenant"
        );
        assert_eq!(
            ask("/app/1", "Host: example.com\r\nX-Tenant: zeta\r\n"),
            "www"
        );
        assert_eq!(ask("/x.png", "Host: www.example.com\r\n"), "www");
    }
    let listing = daemon.ok("-L");
    assert!(listing.contains("rule host ^img\\. -> "), "{listing}");
    assert!(
        listing.contains("rule ^/app/ header 'x-tenant: ^a' -> "),
        "{listing}"
    );
    // The server's row shows its name as configured, once.
    assert!(listing.contains(&format!("  -> {www_named} ")), "{listing}");
    // (the test's tcpvsadm lines are split at spaces: no quotes)
    // -S writes the conditions and the name; -R rebuilds the same table.
    let saved = daemon.ok("-S");
    assert!(
        saved.contains(&format!("-a -i web -r {www_named} ")),
        "{saved}"
    );
    daemon.ok("-F");
    restore(&daemon, &saved);
    assert_eq!(ask("/x.png", "Host: img.example.com\r\n"), "img");
    // A rule is named by all its conditions: deleting needs them all.
    let refused = daemon.adm(&format!("--del-rule -i web -p ^/app/ -r {}", tenant.addr));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "refused by tcpvsd: {said}");
    assert!(said.contains("has no rule `^/app/`"), "{said}");
    daemon.ok(&format!(
        "--del-rule -i web -p ^/app/ --header X-Tenant:^a -r {}",
        tenant.addr
    ));
    assert_eq!(
        ask("/app/1", "Host: example.com\r\nX-Tenant: acme\r\n"),
        "www"
    );
}

/// `-R` with what `-S` printed: the same saved table again.
fn restore(daemon: &Daemon, saved: &str) {
    let restored = daemon.adm_with("-R", Some(saved));
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(daemon.ok("-S"), saved);
}

#[test]
fn state_file_survives_a_restart() {
    let server = TestServer::named("kept");
    let dir = Scratch::new("state");
    let state = dir.path().join("state.toml");
    let state_arg = state.to_str().unwrap().to_string();
    let first = Daemon::with_config_in(dir, EMPTY, &["--state-file", &state_arg]);
    first.ok("-A -i web -l 127.0.0.1:0 -s rr");
    first.ok(&format!("-a -i web -r {} -w 7", server.addr));
    first.ok(&format!("--add-rule -i web -p ^/x/ -r {}", server.addr));
    let before = shape(&first.ok("-L"));
    let dir = first.stop();
    assert!(state.exists());
    let second = Daemon::with_config_in(dir, EMPTY, &["--state-file", &state_arg]);
    assert_eq!(shape(&second.ok("-L")), before);
    assert_eq!(get(second.bound("web"), "/x/1").text(), "kept");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let daemon = empty_daemon("bad");
    let server = TestServer::named("s");
    daemon.ok("-A -i web -l 127.0.0.1:0");
    daemon.ok(&format!("-a -i web -r {}", server.addr));
    let before = daemon.ok("-S");
    let web = daemon.bound("web");
    let cases: Vec<(String, i32, &str)> = vec![
        ("-a -i nope -r 127.0.0.1:1".into(), 1, "no service `nope`"),
        (
            "-A -i web -l 127.0.0.1:0".into(),
            1,
            "service `web` already exists",
        ),
        ("-a -i web -r 999.1.1.1:80".into(), 2, "is not an address"),
        ("-a -i web -r 127.0.0.1:1 -w 65536".into(), 2, "0 to 65535"),
        (
            "--add-rule -i web -p ( -r 127.0.0.1:1".into(),
            1,
            "no real server",
        ),
        (
            format!("--add-rule -i web -p ( -r {}", server.addr),
            1,
            "invalid pattern `(`",
        ),
        (
            "-E -i web -s nosuch".into(),
            1,
            "unknown scheduler `nosuch`",
        ),
        (
            "-E -i web --protocol sip".into(),
            1,
            "unknown protocol `sip` (known: http, rtsp)",
        ),
        (
            "-E -i web --sched-opt low=25".into(),
            1,
            "unknown option `low`",
        ),
        (
            "-E -i web -s lard --sched-opt low=70".into(),
            2,
            "low=70 must be below high=65",
        ),
        (
            "-E -i web -s lard --sched-opt high=lots".into(),
            2,
            "option high=lots: give a number",
        ),
        ("-E -i web --persistent soon".into(), 2, "give seconds"),
        (format!("-A -i dup -l {web}"), 1, "cannot listen on"),
        ("-d -i web -r 127.0.0.1:1".into(), 1, "has no real server"),
        ("--bogus".into(), 2, "unexpected argument '--bogus'"),
    ];
    for (line, code, message) in cases {
        let output = daemon.adm(&line);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{line}: {stderr}");
        // The reason on the first line; a usage error adds clap's usage.
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.contains(message), "{line}: {stderr}");
        let lines = stderr.trim().lines().count();
        let usage = stderr.contains("\nUsage: tcpvsadm");
        assert!(
            (code == 1 && lines == 1) || (code == 2 && usage),
            "{line}: {stderr}"
        );
    }
    // Garbage and half requests on the socket itself.
    use std::os::unix::net::UnixStream;
    let mut raw = UnixStream::connect(&daemon.socket).unwrap();
    raw.write_all(b"this is not json\n{\"id\": 3, \"verb\": \"add-server\"}\n")
        .unwrap();
    let mut reader = std::io::BufReader::new(raw.try_clone().unwrap());
    for expected_id in [0, 3] {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(
            line.contains("\"ok\":false") && line.contains("malformed request"),
            "{line}"
        );
        assert!(line.contains(&format!("\"id\":{expected_id}")), "{line}");
    }
    let mut half = UnixStream::connect(&daemon.socket).unwrap();
    half.write_all(b"{\"id\": 4, \"verb\": \"fl").unwrap();
    drop(half);
    // A request line without end: refused once it passes the limit (4 MiB).
    let mut endless = UnixStream::connect(&daemon.socket).unwrap();
    let mut reader = std::io::BufReader::new(endless.try_clone().unwrap());
    let _ = endless.write_all(&vec![b'x'; 4 * 1024 * 1024 + 1]);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert!(line.contains("request line too long"), "{line}");
    // More clients than the daemon serves at once (32) are turned away, and
    // it serves again once they leave. `raw` still holds a place; `half` and
    // `endless` give theirs back whenever the daemon sees them go, which the
    // test cannot see: so clients join one at a time, each asking for the
    // listing, until one is turned away.
    let mut crowd = Vec::new();
    let refused = loop {
        assert!(crowd.len() < 32, "33 control clients were served at once");
        let client = UnixStream::connect(&daemon.socket).unwrap();
        client.set_read_timeout(Some(TIMEOUT)).unwrap();
        // A client turned away may be closed before this is written.
        let _ = (&client).write_all(b"{\"id\":9,\"verb\":\"list\"}\n");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&client), &mut line).unwrap();
        if !line.contains("\"ok\":true") {
            break line;
        }
        crowd.push(client);
    };
    assert!(refused.contains("too many control clients"), "{refused}");
    drop(crowd);
    let started = Instant::now();
    loop {
        let output = daemon.adm("-S");
        if output.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("too many control clients"), "{stderr}");
        assert!(
            started.elapsed() < TIMEOUT,
            "still turned away {TIMEOUT:?} after the crowd left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The daemon is unharmed and the table unchanged.
    assert_eq!(daemon.ok("-S"), before);
    assert_eq!(get(web, "/").status, 200);
    let missing = Command::new(tcpvsadm_path())
        .args(["--socket", "/nonexistent/tcpvsd.sock", "-L"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no tcpvsd is listening there"));
}

#[test]
fn an_edit_that_cannot_be_saved_is_not_applied() {
    let dir = Scratch::new("unsaved");
    // The state file's directory does not exist: no save can succeed.
    let state = dir.path().join("missing-dir/state.toml");
    let daemon = Daemon::with_config_in(dir, EMPTY, &["--state-file", state.to_str().unwrap()]);
    let output = daemon.adm("-A -i web -l 127.0.0.1:0");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the edit was not applied: cannot save"),
        "{stderr}"
    );
    assert!(
        !daemon.ok("-L").contains("web"),
        "a rule the state file lacks is live"
    );
}

#[test]
fn another_user_is_refused() {
    if !rustix_is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipping: needs root to run tcpvsadm as another user");
        return;
    }
    use std::os::unix::process::CommandExt;
    let daemon = empty_daemon("uid");
    // `nobody` may not be able to reach the build directory: run a copy of
    // tcpvsadm from the daemon's (world-readable) temporary directory.
    use std::os::unix::fs::PermissionsExt;
    let binary = daemon.dir().join("tcpvsadm");
    std::fs::copy(tcpvsadm_path(), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = 65534;
    let as_nobody = |socket: &Path| {
        let mut command = Command::new(&binary);
        command
            .args(["--socket", socket.to_str().unwrap(), "-L"])
            .uid(nobody)
            .gid(nobody);
        // A child another test forks while the copy above is still open for
        // writing holds that descriptor until it execs: running the copy
        // then fails with ETXTBSY ("text file busy") for a moment.
        for _ in 0..100 {
            match command.output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                result => return result.unwrap(),
            }
        }
        panic!("{} stayed busy", binary.display());
    };
    // The socket file is 0600: the filesystem refuses first.
    let output = as_nobody(&daemon.socket);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("permission denied"),
        "{output:?}"
    );
    // With the file opened up, SO_PEERCRED still refuses.
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let output = as_nobody(&daemon.socket);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("permission denied: uid 65534"), "{stderr}");
    assert!(daemon.ok("-L").contains("tcpvs"));
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

#[test]
fn deleting_a_busy_server_lets_its_request_finish() {
    let daemon = empty_daemon("busy");
    // The server holds its answer until the test has deleted it, so the
    // request is surely in flight during the deletion.
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let slow = TestServer::start(move |_| {
        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(30));
        Reply::Send(ok("slow but served"))
    });
    let web = web_over(&daemon, "", &[slow.addr]);
    let in_flight = std::thread::spawn(move || get(web, "/"));
    let started = Instant::now();
    while slow.requests().is_empty() {
        assert!(started.elapsed() < TIMEOUT, "the request never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    // weight 1, 1 active request, 1 request sent.
    let active = daemon.ok("-L -n");
    assert_counters(&active, slow.addr, &[1, 1, 1]);
    daemon.ok(&format!("-d -i web -r {}", slow.addr));
    assert!(!daemon.ok("-L -n").contains(&slow.addr.to_string()));
    release.send(()).unwrap();
    let response = in_flight.join().unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "slow but served")
    );
    assert_eq!(get(web, "/").status, 503, "no server left");
}

/// Asserts the numbers on `listing`'s line for real server `addr`.
#[track_caller]
fn assert_counters(listing: &str, addr: impl ToString, expected: &[u64]) {
    assert_eq!(counters(listing, &addr.to_string()), expected, "{listing}");
}

/// The numbers on `-L`'s line for real server `addr`: weight, active
/// requests, requests (and failures with `--stats`); the health and last
/// check that follow are words.
fn counters(listing: &str, addr: &str) -> Vec<u64> {
    server_line(listing, addr)
        .split_whitespace()
        .skip(2)
        .map_while(|n| n.parse().ok())
        .collect()
}

/// `-L`'s line for real server `addr`.
fn server_line<'a>(listing: &'a str, addr: &str) -> &'a str {
    listing
        .lines()
        .find(|l| {
            l.trim_start()
                .strip_prefix("-> ")
                .map(str::split_whitespace)
                .and_then(|mut w| w.next())
                == Some(addr)
        })
        .unwrap_or_else(|| panic!("no line for {addr}:\n{listing}"))
}

/// The words after the numbers on `-L`'s line for real server `addr`: its
/// health (with its state when that differs) and last check.
fn health_words(listing: &str, addr: &str) -> Vec<String> {
    let line = server_line(listing, addr);
    let words = line.split_whitespace().skip(2);
    words
        .skip_while(|w| w.parse::<u64>().is_ok() || w.contains('/'))
        .map(String::from)
        .collect()
}

#[test]
fn match_group_keeps_a_user_on_one_server() {
    let daemon = empty_daemon("sticky");
    let servers: Vec<TestServer> = ["s1", "s2", "s3"]
        .into_iter()
        .map(TestServer::named)
        .collect();
    daemon.ok("-A -i web -l 127.0.0.1:0");
    for server in &servers {
        daemon.ok(&format!("-a -i web -r {}", server.addr));
        daemon.ok(&format!(
            "--add-rule -i web -p ^/home/([a-z0-9]+)/ -r {} -m 1",
            server.addr
        ));
    }
    let web = daemon.bound("web");
    let mut seen = std::collections::BTreeSet::new();
    for user in 0..30 {
        let first = get(web, &format!("/home/user{user}/a")).text();
        for page in ["b", "c"] {
            assert_eq!(
                get(web, &format!("/home/user{user}/{page}")).text(),
                first,
                "user{user}"
            );
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 3, "users spread over every server");
    assert!(daemon.ok("-L").contains("(hash of group 1)"));
}

#[test]
fn an_idle_keep_alive_client_follows_edits_made_while_it_waited() {
    let daemon = empty_daemon("idle-edit");
    let a = TestServer::named("a");
    let b = TestServer::named("b");
    let web = web_over(&daemon, "-s rr", &[a.addr]);
    let mut client = Client::connect(web);
    assert_eq!(
        client.exchange("GET /1 HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    assert_eq!(a.requests().len(), 1);
    // While the client idles, a is replaced by b.
    daemon.ok(&format!("-a -i web -r {}", b.addr));
    daemon.ok(&format!("-d -i web -r {}", a.addr));
    for i in 2..5 {
        let r = client.exchange(&format!("GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(r.status, 200);
    }
    assert_eq!(a.requests().len(), 1, "a deleted server got requests");
    assert_eq!(b.requests().len(), 3);
}

/// What `n` requests for `path` got, in order: each answer's body.
fn answers(web: std::net::SocketAddr, path: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let response = get(web, path);
            assert_eq!(response.status, 200, "{path}: {}", response.text());
            response.text()
        })
        .collect()
}

/// The distinct answers among `answers`.
fn distinct(answers: &[String]) -> std::collections::BTreeSet<&str> {
    answers.iter().map(String::as_str).collect()
}

#[test]
fn zero_clears_the_counters_of_one_service_or_all() {
    let mut daemon = Daemon::with_config("zero", &format!("admin = \"127.0.0.1:0\"\n{EMPTY}"));
    let admin = admin_address(&mut daemon);
    let a = TestServer::named("a");
    let b = TestServer::named("b");
    let dead = dead_address();
    daemon.ok("-A -i web -l 127.0.0.1:0 -s rr");
    daemon.ok(&format!("-a -i web -r {}", a.addr));
    daemon.ok(&format!("-a -i web -r {dead}"));
    daemon.ok("-A -i api -l 127.0.0.1:0");
    daemon.ok(&format!("-a -i api -r {}", b.addr));
    let (web, api) = (daemon.bound("web"), daemon.bound("api"));
    // The dead server's refused connects go to a (the next server).
    assert_eq!(distinct(&answers(web, "/", 3)), ["a"].into());
    assert_eq!(distinct(&answers(api, "/", 2)), ["b"].into());
    let table = daemon.ok("-S");
    let stats = stats_when(&daemon, a.addr, |n| n[REQUESTS] == 3);
    assert_eq!(stats_of(&stats, a.addr)[FAILURES], 0, "{stats}");
    let dead_counts = stats_of(&stats, dead);
    assert!(dead_counts[FAILURES] >= 1, "no failure counted:\n{stats}");
    stats_when(&daemon, b.addr, |n| n[REQUESTS] == 2);
    let failures = format!("tcpvs_server_failures_total{{service=\"web\",server=\"{dead}\"}}");
    assert_eq!(metric(admin, &failures), dead_counts[FAILURES]);

    daemon.ok("-Z -i web");
    let stats = daemon.ok("-L -n --stats");
    assert!(stats_of(&stats, a.addr).iter().all(|&n| n == 0), "{stats}");
    assert!(stats_of(&stats, dead).iter().all(|&n| n == 0), "{stats}");
    assert_eq!(
        stats_of(&stats, b.addr)[REQUESTS],
        2,
        "-Z -i web zeroed api:\n{stats}"
    );
    // Counting goes on from zero.
    assert_eq!(distinct(&answers(web, "/", 1)), ["a"].into());
    stats_when(&daemon, a.addr, |n| n[REQUESTS] == 1);
    daemon.ok("-Z");
    let stats = daemon.ok("-L -n --stats");
    for server in [a.addr, b.addr, dead] {
        assert!(stats_of(&stats, server).iter().all(|&n| n == 0), "{stats}");
    }
    assert_eq!(
        metric(admin, &failures),
        dead_counts[FAILURES],
        "-Z reset /metrics"
    );
    let plain = daemon.ok("-L -n");
    assert_counters(&plain, a.addr, &[1, 0, 0]);
    // Zeroing is no edit of the table.
    assert_eq!(daemon.ok("-S"), table);
    let output = daemon.adm("-Z -i nope");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no service `nope`"));
}

/// `--stats`' columns after the address, as [`stats_of`] reads them.
const REQUESTS: usize = 0;
const CLASS_2XX: usize = 2;
const IN_BYTES: usize = 7;
const OUT_BYTES: usize = 8;
const FAILURES: usize = 9;

/// The numbers of `-L --stats` on the line of server `addr`: requests,
/// 1xx to 5xx, none, in bytes, out bytes, failures.
#[track_caller]
fn stats_of(stats: &str, addr: impl ToString) -> Vec<u64> {
    let numbers = counters(stats, &addr.to_string());
    assert_eq!(numbers.len(), 10, "{stats}");
    numbers
}

/// `-L -n --stats` once server `addr`'s numbers are as `holds` wants (an
/// exchange is counted once it has ended, after its client got the answer).
#[track_caller]
fn stats_when(daemon: &Daemon, addr: impl ToString, holds: impl Fn(&[u64]) -> bool) -> String {
    let addr = addr.to_string();
    let seen = Mutex::new(String::new());
    let counted = eventually(Duration::from_secs(5), || {
        let stats = daemon.ok("-L -n --stats");
        let ok = holds(&stats_of(&stats, &addr));
        *seen.lock().unwrap() = stats;
        ok
    });
    let stats = seen.into_inner().unwrap();
    assert!(counted, "{addr} not as expected:\n{stats}");
    stats
}

/// Service `web`, `rr` over a server that refuses connections and one that
/// answers "live", after 4 requests: each served, a refused connect going
/// on to the next server.
fn dead_then_live(daemon: &Daemon) -> (TestServer, std::net::SocketAddr) {
    let live = TestServer::named("live");
    let dead = dead_address();
    daemon.ok("-A -i web -l 127.0.0.1:0 -s rr");
    daemon.ok(&format!("-a -i web -r {dead}"));
    daemon.ok(&format!("-a -i web -r {}", live.addr));
    let web = daemon.bound("web");
    assert_eq!(distinct(&answers(web, "/", 4)), ["live"].into());
    (live, dead)
}

#[test]
fn list_stats_shows_failures_beside_the_answers() {
    let daemon = empty_daemon("stats");
    let (live, dead) = dead_then_live(&daemon);

    let plain = daemon.ok("-L -n");
    assert!(!plain.contains("Failures"), "{plain}");
    assert_counters(&plain, live.addr, &[1, 0, 4]);
    assert_eq!(counters(&plain, &dead.to_string()).len(), 3, "{plain}");

    let stats = stats_when(&daemon, live.addr, |n| n[REQUESTS] == 4);
    let header: Vec<&str> = stats.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "Ident", "Listen", "Requests", "1xx", "2xx", "3xx", "4xx", "5xx", "None", "InBytes",
            "OutBytes", "Failures"
        ],
        "{stats}"
    );
    assert_eq!(stats.lines().nth(2), Some("  -> RealServer"), "{stats}");
    let live_counts = stats_of(&stats, live.addr);
    assert_eq!(
        (live_counts[CLASS_2XX], live_counts[FAILURES]),
        (4, 0),
        "{stats}"
    );
    let dead_counts = stats_of(&stats, dead);
    assert!(
        dead_counts[FAILURES] >= 1 && dead_counts[REQUESTS] == 0,
        "the dead server failed its connects and answered nothing:\n{stats}"
    );
    // The service's row sums its servers'.
    let web = service_stats(&stats, "web");
    assert_eq!(web[REQUESTS], 4, "{stats}");
    assert_eq!(web[FAILURES], dead_counts[FAILURES], "{stats}");
}

/// The numbers of `-L --stats` (or `--rate`) on service `ident`'s row.
#[track_caller]
fn service_stats(stats: &str, ident: &str) -> Vec<u64> {
    let line = stats
        .lines()
        .find(|l| l.starts_with(&format!("{ident} ")))
        .unwrap_or_else(|| panic!("no row for {ident}:\n{stats}"));
    let mut numbers: Vec<u64> = line
        .split_whitespace()
        .rev()
        .map_while(|n| n.parse().ok())
        .collect();
    numbers.reverse();
    numbers
}

/// The request `get` sends, whose bytes tcpvsd counts in.
const GET_ROOT: &str = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

/// N requests through tcpvsd: `-L -n --stats` shows N, the bytes in and
/// out, per server and service; `-Z` zeroes the listing, never /metrics.
#[test]
fn list_stats_counts_requests_and_bytes_and_zero_spares_the_metrics() {
    const N: u64 = 12;
    let backend = TestServer::named("hello");
    let mut daemon = Daemon::with_config(
        "stats-bytes",
        &format!(
            "admin = \"127.0.0.1:0\"\nlog_level = \"warn\"\n[[service]]\nident = \"web\"\n\
             listen = \"127.0.0.1:0\"\n[[service.server]]\naddress = \"{}\"\n",
            backend.addr
        ),
    );
    let admin = admin_address(&mut daemon);
    let web = daemon.bound("web");
    for _ in 0..N {
        assert_eq!(get(web, "/").text(), "hello");
    }
    let expected = |n: u64| {
        let mut row = vec![0; 10];
        row[REQUESTS] = n;
        row[CLASS_2XX] = n;
        row[IN_BYTES] = n * GET_ROOT.len() as u64;
        row[OUT_BYTES] = n * "hello".len() as u64;
        row
    };
    let stats = stats_when(&daemon, backend.addr, |n| n[REQUESTS] == N);
    assert_eq!(stats_of(&stats, backend.addr), expected(N), "{stats}");
    assert_eq!(service_stats(&stats, "web"), expected(N), "{stats}");
    let served = format!(
        "tcpvs_requests_total{{service=\"web\",server=\"{}\",code_class=\"2xx\"}}",
        backend.addr
    );
    let metric = || metric(admin, &served);
    assert_eq!(metric(), N);

    daemon.ok("-Z");
    let stats = daemon.ok("-L -n --stats");
    assert_eq!(stats_of(&stats, backend.addr), expected(0), "{stats}");
    assert_eq!(service_stats(&stats, "web"), expected(0), "{stats}");
    assert_eq!(metric(), N, "-Z reset /metrics");

    for _ in 0..3 {
        assert_eq!(get(web, "/").text(), "hello");
    }
    let stats = stats_when(&daemon, backend.addr, |n| n[REQUESTS] == 3);
    assert_eq!(stats_of(&stats, backend.addr), expected(3), "{stats}");
    assert_eq!(metric(), N + 3);
    // The JSON view holds the same numbers, for scripts.
    let json: serde_json::Value = serde_json::from_str(&daemon.ok("-L --json")).unwrap();
    let server = &json["services"][0]["servers"][0];
    assert_eq!(server["stats"]["requests"], 3, "{json}");
    assert_eq!(server["stats"]["responses"]["2xx"], 3, "{json}");
    assert_eq!(server["stats"]["out_bytes"], 15, "{json}");
    assert_eq!(json["services"][0]["stats"]["requests"], 3, "{json}");
}

/// The sample `name_and_labels` of the admin listener's /metrics.
#[track_caller]
fn metric(admin: std::net::SocketAddr, name_and_labels: &str) -> u64 {
    sample(&get(admin, "/metrics").text(), name_and_labels) as u64
}

/// `-L --rate`: requests and bytes per second while a bounded load runs,
/// 0 again within a sampling interval or two once it stops.
#[test]
fn list_rate_follows_the_load() {
    let daemon = empty_daemon("rate");
    let backend = TestServer::named("r");
    let web = web_over(&daemon, "", &[backend.addr]);
    let rate = || daemon.ok("-L -n --rate -i web");
    let header: Vec<String> = rate()
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        header,
        [
            "Ident",
            "Listen",
            "Req/s",
            "InBytes/s",
            "OutBytes/s",
            "Err/s"
        ]
    );
    let load = Load::new_connections(web, 2, "/");
    let seen = Mutex::new(String::new());
    let busy = eventually(Duration::from_secs(10), || {
        let listing = rate();
        let numbers = counters(&listing, &backend.addr.to_string());
        *seen.lock().unwrap() = listing;
        numbers[0] > 0 && numbers[1] > 0 && numbers[2] > 0
    });
    let (sent, failed) = load.finish();
    let listing = seen.into_inner().unwrap();
    assert!(busy, "no rate after {sent} requests:\n{listing}");
    assert_eq!(failed, 0);
    assert!(service_stats(&listing, "web")[0] > 0, "{listing}");
    // Two samples after the last request: nothing happened between them.
    wait_for(Duration::from_secs(7), "the rate back to 0", || {
        counters(&rate(), &backend.addr.to_string()) == [0, 0, 0, 0]
    });
}

/// Without -n, addresses are shown by name, as ipvsadm shows them.
#[test]
fn list_without_n_shows_names() {
    let daemon = empty_daemon("names");
    let backend = TestServer::named("n");
    web_over(&daemon, "", &[backend.addr]);
    let port = backend.addr.port();
    let named = daemon.ok("-L");
    assert!(
        named.contains(&format!("  -> localhost:{port} ")),
        "{named}"
    );
    assert!(!named.contains("127.0.0.1"), "{named}");
    let numeric = daemon.ok("-Ln");
    assert!(
        numeric.contains(&format!("  -> {} ", backend.addr)),
        "{numeric}"
    );
}

/// README: `-L` lists the requests sent to each server. A server whose
/// connects all failed got none (it counted them until the counter moved
/// from the scheduler's pick to the connect).
#[test]
fn list_counts_only_requests_sent() {
    let daemon = empty_daemon("served");
    let (_live, dead) = dead_then_live(&daemon);
    let listing = daemon.ok("-L -n");
    assert_eq!(
        counters(&listing, &dead.to_string()),
        [1, 0, 0],
        "a server that served nothing:\n{listing}"
    );
}

/// Service `web`, `rr` over three servers answering "a", "b" and "c".
fn rr_over_a_b_c(daemon: &Daemon) -> (Vec<TestServer>, [std::net::SocketAddr; 3]) {
    let servers: Vec<TestServer> = ["a", "b", "c"].into_iter().map(TestServer::named).collect();
    let addrs = [0, 1, 2].map(|i| servers[i].addr);
    daemon.ok("-A -i web -l 127.0.0.1:0 -s rr");
    for server in addrs {
        daemon.ok(&format!("-a -i web -r {server}"));
    }
    (servers, addrs)
}

#[test]
fn del_default_narrows_then_restores_every_server() {
    let daemon = empty_daemon("default");
    let (_servers, [a, b, c]) = rr_over_a_b_c(&daemon);
    // A rule sends /x/ to c whatever the default set.
    daemon.ok(&format!("--add-rule -i web -p ^/x/ -r {c}"));
    let web = daemon.bound("web");
    assert_eq!(distinct(&answers(web, "/", 6)), ["a", "b", "c"].into());

    daemon.ok(&format!("--add-default -i web -r {a}"));
    daemon.ok(&format!("--add-default -i web -r {b}"));
    let default_line = |listing: String| {
        listing
            .lines()
            .find(|l| l.trim_start().starts_with("default ->"))
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| panic!("no default line:\n{listing}"))
    };
    assert_eq!(
        default_line(daemon.ok("-L -n")),
        format!("default -> {a} {b}")
    );
    assert_eq!(distinct(&answers(web, "/", 6)), ["a", "b"].into());
    assert_eq!(distinct(&answers(web, "/x/1", 2)), ["c"].into());

    daemon.ok(&format!("--del-default -i web -r {a}"));
    assert_eq!(default_line(daemon.ok("-L -n")), format!("default -> {b}"));
    assert_eq!(distinct(&answers(web, "/", 4)), ["b"].into());

    // The set emptied: requests no rule matches may go to every server again.
    daemon.ok(&format!("--del-default -i web -r {b}"));
    assert_eq!(default_line(daemon.ok("-L -n")), "default -> every server");
    assert_eq!(distinct(&answers(web, "/", 6)), ["a", "b", "c"].into());

    let output = daemon.adm(&format!("--del-default -i web -r {b}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not in the default set"), "{stderr}");
}

#[test]
fn edit_listen_moves_the_service_to_the_new_address() {
    let daemon = empty_daemon("relisten");
    let server = TestServer::named("s");
    let old = web_over(&daemon, "-s rr", &[server.addr]);
    assert_eq!(get(old, "/").text(), "s");
    // Another loopback address, so the new socket cannot be the old one.
    daemon.ok("-E -i web -l 127.0.0.2:0");
    let new = daemon.bound("web");
    assert_eq!(new.ip().to_string(), "127.0.0.2", "{new}");
    assert_eq!(get(new, "/").text(), "s");
    let refused = std::net::TcpStream::connect(old);
    assert_eq!(
        refused.as_ref().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "the old address {old}: {refused:?}"
    );
    // The rest of the service is unchanged.
    let listing = daemon.ok("-L -n");
    assert!(listing.contains("127.0.0.2:0 (127.0.0.2:"), "{listing}");
    assert_counters(&listing, server.addr, &[1, 0, 2]);
}

#[test]
fn del_rule_removes_a_server_then_the_empty_rule() {
    let daemon = empty_daemon("del-rule");
    let (_servers, [a, b, _]) = rr_over_a_b_c(&daemon);
    daemon.ok(&format!("--add-rule -i web -p ^/x/ -r {a}"));
    daemon.ok(&format!("--add-rule -i web -p ^/x/ -r {b}"));
    let web = daemon.bound("web");
    assert_eq!(distinct(&answers(web, "/x/1", 6)), ["a", "b"].into());

    daemon.ok(&format!("--del-rule -i web -p ^/x/ -r {a}"));
    let listing = daemon.ok("-L -n");
    assert!(
        listing.contains(&format!("rule ^/x/ -> {b}\n")),
        "{listing}"
    );
    assert_eq!(distinct(&answers(web, "/x/1", 4)), ["b"].into());

    // Its last server gone, the rule goes: /x/ is like any other path.
    daemon.ok(&format!("--del-rule -i web -p ^/x/ -r {b}"));
    let listing = daemon.ok("-L -n");
    assert!(!listing.contains("rule"), "{listing}");
    assert_eq!(distinct(&answers(web, "/x/1", 6)), ["a", "b", "c"].into());

    let output = daemon.adm(&format!("--del-rule -i web -p ^/x/ -r {b}"));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

/// `-e --state drain` is stored, listed and saved with the service's health
/// options; replaying `-S` gives the same table, and `--state ready` undoes it.
#[test]
fn server_state_and_health_options_are_listed_and_survive_save_and_restore() {
    let daemon = empty_daemon("server-state");
    let a = TestServer::named("a");
    let b = TestServer::named("b");
    let options = "-s rr --check type=tcp,interval=5s --passive max_fails=3 --retries 1";
    web_over(&daemon, options, &[a.addr, b.addr]);
    daemon.ok(&format!("-e -i web -r {} --state drain", a.addr));
    let drained = |listing: &str| health_words(listing, &a.addr.to_string()).join(" ");
    let listing = daemon.ok("-L -n");
    assert!(drained(&listing).contains("drain"), "{listing}");
    assert!(
        !health_words(&listing, &b.addr.to_string())
            .join(" ")
            .contains("drain"),
        "{listing}"
    );
    assert!(
        listing.contains("\n  check type=tcp,interval=5s; passive max_fails=3; retries 1,"),
        "{listing}"
    );
    let saved = daemon.ok("-S");
    assert!(
        saved.contains(&format!("-a -i web -r {} -w 1 --state drain\n", a.addr)),
        "{saved}"
    );
    assert!(
        saved.contains("--check type=tcp,interval=5s --passive max_fails=3 --retries 1\n"),
        "{saved}"
    );
    daemon.ok("-F");
    restore(&daemon, &saved);
    assert!(drained(&daemon.ok("-L -n")).contains("drain"));
    daemon.ok(&format!("-e -i web -r {} --state ready", a.addr));
    let listing = daemon.ok("-L -n");
    assert!(!drained(&listing).contains("drain"), "{listing}");
    assert!(!daemon.ok("-S").contains("--state"));
}
