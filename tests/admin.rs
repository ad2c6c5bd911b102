//! The admin listener as a scraper and a keepalived track script use it:
//! /metrics counts every request and its bytes once and passes `promtool
//! check metrics` (the demo's page too, its counts equal to the requests sent),
//! /healthz says 200 while serving and 503 once a graceful stop has begun,
//! and neither a silent client nor a busy address goes unnoticed.

mod admin_support;
mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use admin_support::{admin_address, sample, start_with_admin};
use common::daemon::{tcpvsd_exit, Daemon, Scratch};
use common::{dead_address, get, ok, require_tool, wait_for, Client, Ending, Reply, TestServer};

/// tcpvsd with one HTTP service `web` to `backend`, its admin listener on a
/// port of its own: the daemon, the service's and the admin's addresses.
fn start(name: &str, backend: SocketAddr) -> (Daemon, SocketAddr, SocketAddr) {
    let service = format!(
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{backend}\"\n"
    );
    let (daemon, admin) = start_with_admin(name, &service);
    let web = daemon.bound("web");
    (daemon, web, admin)
}

#[test]
fn metrics_count_every_request_and_pass_promtool() {
    const N: usize = 40;
    let backend = TestServer::named("a");
    let (_daemon, web, admin) = start("admin-metrics", backend.addr);
    // Requests without a body, with a small one (read whole before a
    // server is picked) and with one past the 64 KiB buffer (streamed).
    let (mut body_bytes, mut request_bytes) = (0, 0);
    for i in 0..N {
        let body = "b".repeat([0, 100, 100_000][i % 3]);
        let request = match body.len() {
            0 => "GET /x HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".to_string(),
            n => format!(
                "POST /x HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
                 Content-Length: {n}\r\n\r\n{body}"
            ),
        };
        let response = Client::connect(web).exchange(&request);
        assert_eq!(response.status, 200);
        body_bytes += response.text().len();
        request_bytes += request.len();
    }
    let server = backend.addr;
    let labels = format!("{{service=\"web\",server=\"{server}\"");
    let served = |page: &str| {
        let name = format!("tcpvs_requests_total{labels},code_class=\"2xx\"}}");
        sample(page, &name)
    };
    // An exchange is counted as it ends, which may be just after its
    // client has read the whole response.
    wait_for(Duration::from_secs(5), "every request counted", || {
        served(&get(admin, "/metrics").text()) >= N as f64
    });
    let metrics = get(admin, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type")[0].starts_with("text/plain; version=0.0.4"));
    let page = metrics.text();
    assert_eq!(served(&page), N as f64, "each request counted once");
    let counted = sample(
        &page,
        &format!("tcpvs_request_duration_seconds_count{labels}}}"),
    );
    assert_eq!(counted, N as f64);
    let bytes = sample(&page, &format!("tcpvs_response_body_bytes_total{labels}}}"));
    assert_eq!(bytes, body_bytes as f64, "every body byte counted");
    let received = sample(&page, &format!("tcpvs_request_bytes_total{labels}}}"));
    assert_eq!(received, request_bytes as f64, "every request byte counted");
    let inf = format!("tcpvs_request_duration_seconds_bucket{labels},le=\"+Inf\"}}");
    assert_eq!(sample(&page, &inf), N as f64);
    assert_eq!(sample(&page, &format!("tcpvs_server_up{labels}}}")), 1.0);
    assert_eq!(
        sample(&page, &format!("tcpvs_server_weight{labels}}}")),
        1.0
    );
    let accepted: f64 = (0..2)
        .map(|i| {
            let name = format!("tcpvs_worker_connections_accepted_total{{worker=\"{i}\"}}");
            sample(&page, &name)
        })
        .sum();
    assert_eq!(accepted, N as f64, "one connection per request");
    if require_tool("promtool") {
        let (passed, said) = promtool_check_metrics(&page);
        assert!(passed, "promtool check metrics:\n{said}\n{page}");
    }
}

#[test]
#[cfg_attr(
    missing_promtool,
    ignore = "needs promtool (apt install prometheus); .ci/run installs it"
)]
fn the_demo_metrics_pass_promtool_and_count_the_requests_sent() {
    let mut daemon = Daemon::start_in(
        Scratch::new("admin-demo"),
        &[
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--workers",
            "2",
        ],
    );
    let admin = admin_address(&mut daemon);
    let line = daemon.stdout_line("listening on ");
    let web: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    // The pools the demo's rules pick: 7 requests each.
    let paths = ["/images/x.jpg", "/cgi-bin/a.cgi", "/index.html"];
    let sent = 7 * paths.len();
    for path in paths.iter().cycle().take(sent) {
        assert_eq!(get(web, path).status, 200, "{path}");
    }
    let requests = |page: &str| summed(page, "tcpvs_requests_total", "");
    wait_for(Duration::from_secs(5), "every request counted", || {
        requests(&get(admin, "/metrics").text()) >= sent as f64
    });
    let page = get(admin, "/metrics").text();
    assert_eq!(
        requests(&page),
        sent as f64,
        "each request counted once:\n{page}"
    );
    let two_xx = summed(&page, "tcpvs_requests_total", "code_class=\"2xx\"");
    assert_eq!(two_xx, sent as f64, "all answered 200");
    assert!(require_tool("promtool"));
    let (passed, said) = promtool_check_metrics(&page);
    assert!(passed, "promtool check metrics:\n{said}\n{page}");
}

#[test]
fn connect_errors_are_counted_apart_for_the_server_that_refused() {
    let live = TestServer::named("live");
    let dead = dead_address();
    let services = format!(
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"rr\"\n\
         [[service.server]]\naddress = \"{}\"\n[[service.server]]\naddress = \"{dead}\"\n",
        live.addr
    );
    let (daemon, admin) = start_with_admin("admin-connect-errors", &services);
    let web = daemon.bound("web");
    for _ in 0..6 {
        assert_eq!(get(web, "/x").status, 200, "retried on the live server");
    }
    let page = get(admin, "/metrics").text();
    let of = |name: &str, server: SocketAddr| {
        sample(
            &page,
            &format!("{name}{{service=\"web\",server=\"{server}\"}}"),
        )
    };
    let refused = of("tcpvs_server_connect_errors_total", dead);
    assert!(refused >= 1.0, "{page}");
    assert_eq!(
        refused,
        of("tcpvs_server_failures_total", dead),
        "all of its failures"
    );
    assert_eq!(of("tcpvs_server_connect_errors_total", live.addr), 0.0);
}

/// The sum of the samples of family `name` on a /metrics `page` whose labels
/// hold `labels` (all of them for "").
fn summed(page: &str, name: &str, labels: &str) -> f64 {
    page.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter(|rest| rest.contains(labels))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `promtool check metrics` with `page` on its standard input: whether it
/// passed, and what it said.
fn promtool_check_metrics(page: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = promtool.stdin.take().unwrap();
    stdin.write_all(page.as_bytes()).unwrap();
    drop(stdin);
    let output = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

#[test]
fn healthz_is_ok_while_serving_and_503_while_draining() {
    // A request in flight keeps the stop draining for a while.
    let backend = TestServer::start(|_| {
        std::thread::sleep(Duration::from_secs(2));
        Reply::Send(ok("slow"))
    });
    let (daemon, web, admin) = start("admin-healthz", backend.addr);
    let health = get(admin, "/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let in_flight = std::thread::spawn(move || get(web, "/slow").status);
    wait_for(
        Duration::from_secs(5),
        "the request reached the server",
        || !backend.heads().is_empty(),
    );
    daemon.signal("TERM");
    wait_for(Duration::from_secs(2), "/healthz answers 503", || {
        get(admin, "/healthz").status == 503
    });
    assert_eq!(
        in_flight.join().unwrap(),
        200,
        "the request in flight finished"
    );
}

#[test]
fn other_paths_and_methods_are_refused() {
    let backend = TestServer::named("a");
    let (_daemon, _web, admin) = start("admin-refused", backend.addr);
    assert_eq!(get(admin, "/nothing").status, 404);
    let post = Client::connect(admin).exchange("POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), ["GET, HEAD"]);
    assert!(
        !post.header("date").is_empty(),
        "dated as tcpvsd's answers are"
    );
    // Whatever a peer sends gets an answer and a close, never a hang.
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(20_000));
    assert_eq!(Client::connect(admin).exchange(&long).status, 431);
    let many = format!(
        "GET /metrics HTTP/1.1\r\n{}\r\n",
        "X-A: b\r\n".repeat(3_000)
    );
    assert_eq!(Client::connect(admin).exchange(&many).status, 431);
    for bad in ["\r\n\r\n", "\x01\x02\x7f\r\n\r\n", "GET\r\n\r\n"] {
        assert_eq!(Client::connect(admin).exchange(bad).status, 400, "{bad:?}");
    }
    let mut head = Client::connect(admin);
    head.send(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    let answer = head.read_response(true);
    assert_eq!(answer.status, 200);
    assert_eq!(
        head.ending(Duration::from_secs(3)),
        Ending::Closed,
        "no body after a HEAD's head"
    );
}

#[test]
fn clients_trickling_their_heads_cannot_keep_healthz_from_answering() {
    let backend = TestServer::named("a");
    let (_daemon, _web, admin) = start("admin-trickle", backend.addr);
    // More than the 16 places, each sending a byte every 300 ms: within the
    // time a head may take (2 s, all of it), not within a read's.
    let mut tricklers: Vec<Client> = (0..20).map(|_| Client::connect(admin)).collect();
    let started = std::time::Instant::now();
    let _senders: Vec<_> = tricklers
        .iter()
        .map(|client| {
            client.trickle(
                b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: yes\r\n\r\n",
                Duration::from_millis(300),
                Duration::from_secs(20),
            )
        })
        .collect();
    for client in &mut tricklers {
        assert_eq!(client.ending(Duration::from_secs(5)), Ending::Closed);
    }
    let closed = started.elapsed();
    assert!(
        closed < Duration::from_secs(4),
        "the last closed after {closed:?}"
    );
    assert_eq!(get(admin, "/healthz").status, 200);
}

#[test]
fn a_silent_client_holds_nothing() {
    let backend = TestServer::named("a");
    let (_daemon, _web, admin) = start("admin-silent", backend.addr);
    let mut silent = Client::connect(admin);
    // Served beside it, at once.
    let started = std::time::Instant::now();
    assert_eq!(get(admin, "/healthz").status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    // And it is closed after the read timeout (2 s).
    assert_eq!(silent.ending(Duration::from_secs(5)), Ending::Closed);
}

#[test]
fn a_busy_admin_address_is_a_clear_startup_error() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = Scratch::new("admin-busy");
    let config = dir.write(
        "tcpvsd.toml",
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"127.0.0.1:9\"\n",
    );
    let socket = dir.path().join("control.sock");
    let output = tcpvsd_exit(&[
        "--config".as_ref(),
        config.as_os_str(),
        "--control-socket".as_ref(),
        socket.as_os_str(),
        "--admin".as_ref(),
        addr.to_string().as_ref(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("admin listener on {addr}")) && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn an_upgrade_hands_the_admin_address_to_the_new_tcpvsd() {
    // A request in flight keeps the old tcpvsd draining past the time the
    // new one waits for the address.
    let backend = TestServer::start(|_| {
        std::thread::sleep(Duration::from_secs(4));
        Reply::Send(ok("slow"))
    });
    // A fixed port: the new tcpvsd must get the very address the old one had.
    let admin: SocketAddr = {
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap()
    };
    let config = format!(
        "admin = \"{admin}\"\nlog_level = \"info\"\n[[service]]\nident = \"web\"\n\
         listen = \"127.0.0.1:0\"\n[[service.server]]\naddress = \"{}\"\n",
        backend.addr
    );
    let mut old = Daemon::with_config_in(Scratch::new("admin-upgrade"), &config, &[]);
    let web = old.bound("web");
    assert_eq!(get(admin, "/healthz").status, 200);
    let in_flight = std::thread::spawn(move || get(web, "/slow").status);
    wait_for(
        Duration::from_secs(5),
        "the request reached the server",
        || !backend.heads().is_empty(),
    );
    let mut new = old.upgrade();
    let line = new.stdout_line("admin listener");
    assert!(
        line.contains(&admin.to_string()),
        "{line}\n{}",
        new.stderr()
    );
    assert!(old.alive(), "the old tcpvsd still drains");
    assert_eq!(get(admin, "/healthz").status, 200, "the new tcpvsd answers");
    assert_eq!(in_flight.join().unwrap(), 200);
    assert!(old
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    assert!(new.alive());
}
