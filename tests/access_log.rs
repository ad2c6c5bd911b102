//! The access log: one line per exchange, whatever way it ended (answered by
//! a server, after a failover, by the proxy itself, or refused as malformed),
//! written from the exchange's one record.

mod admin_support;
mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use admin_support::{sample, start_with_admin};
use common::daemon::{Daemon, Scratch};
use common::*;

/// The access lines tcpvsd wrote so far (target `tcpvs::access`).
fn access_lines(daemon: &Daemon) -> Vec<String> {
    daemon
        .stderr()
        .lines()
        .filter(|line| line.contains("tcpvs::access"))
        .map(str::to_string)
        .collect()
}

/// Waits until `count` access lines are written, then a little more for any
/// line too many; returns them all.
fn wait_for_lines(daemon: &Daemon, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while access_lines(daemon).len() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A duplicate would be written right after its original.
    std::thread::sleep(Duration::from_millis(300));
    access_lines(daemon)
}

/// Each of `expected` is said by exactly one of `lines`.
fn assert_each_once(lines: &[String], expected: &[String]) {
    for expected in expected {
        let matching = lines
            .iter()
            .filter(|l| l.contains(expected.as_str()))
            .count();
        assert_eq!(matching, 1, "one line saying {expected}: {lines:#?}");
    }
}

#[test]
fn every_exchange_is_logged_once() {
    let live = TestServer::start(|req| {
        if req.request_line().starts_with("GET /missing") {
            Reply::Send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec())
        } else {
            Reply::Send(ok("live"))
        }
    });
    let dead = dead_address();
    // rr over [dead, live]: the first request fails over from dead to live.
    let config = format!(
        "log_level = \"info\"\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\nscheduler = \"rr\"\n\
         default = [\"{dead}\", \"{live}\"]\n\
         [[service.server]]\naddress = \"{dead}\"\n\
         [[service.server]]\naddress = \"{live}\"\n\
         [[service.rule]]\npattern = \"^/down/\"\nservers = [\"{dead}\"]\n",
        live = live.addr
    );
    let daemon = Daemon::with_config("access", &config);
    let web = daemon.bound("web");

    let mut client = Client::connect(web);
    let failover = client.exchange("GET /first HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((failover.status, failover.text().as_str()), (200, "live"));
    assert_eq!(
        client
            .exchange("GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
            .status,
        404
    );
    assert_eq!(
        client
            .exchange("GET /down/x HTTP/1.1\r\nHost: t\r\n\r\n")
            .status,
        503
    );
    let mut bad = Client::connect(web);
    bad.send(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(bad.read_response(false).status, 400);

    let lines = wait_for_lines(&daemon, 4);
    let expected = [
        format!("\"GET /first\" 200 -- {}", live.addr),
        format!("\"GET /missing\" 404 -- {}", live.addr),
        "\"GET /down/x\" 503 SC -".to_string(),
        "\"GET /\" 400 PR -".to_string(),
    ];
    // A line is written once its answer went out: two connections' lines
    // may come in either order.
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    assert_each_once(&lines, &expected);
    assert!(lines.iter().all(|l| l.contains(" web ")), "{lines:#?}");
}

/// An RTSP origin that answers OPTIONS and leaves every other request
/// unanswered.
fn options_only_origin() -> SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let (mut method, mut cseq) = (String::new(), String::new());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if method.is_empty() {
                        method = line.split_whitespace().next().unwrap_or("").to_string();
                    } else if let Some(value) = line.strip_prefix("CSeq:") {
                        cseq = value.trim().to_string();
                    } else if line == "\r\n" {
                        if method == "OPTIONS" {
                            let answer = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n");
                            let _ = writer.write_all(answer.as_bytes());
                        }
                        method.clear();
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[test]
fn every_rtsp_request_is_logged_once_answered_or_not() {
    use std::io::{BufRead, BufReader, Write};
    let origin = options_only_origin();
    let config = format!(
        "log_level = \"info\"\n\
         [[service]]\nident = \"tv\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"rtsp\"\n\
         [[service.server]]\naddress = \"{origin}\"\n"
    );
    let daemon = Daemon::with_config("access-rtsp", &config);
    let tv = daemon.bound("tv");
    let stream = std::net::TcpStream::connect(tv).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_of = |request: &str| {
        writer.write_all(request.as_bytes()).unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        status
    };
    assert!(status_of("OPTIONS rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n").contains(" 200 "));
    assert!(
        status_of("PLAY rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\nSession: nope\r\n\r\n").contains(" 454 ")
    );
    // Never answered: the client leaves first.
    writer
        .write_all(b"DESCRIBE rtsp://h/b RTSP/1.0\r\nCSeq: 3\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop((writer, reader));

    let lines = wait_for_lines(&daemon, 3);
    let expected = [
        format!("\"OPTIONS rtsp://h/a\" 200 -- {origin}"),
        "\"PLAY rtsp://h/a\" 454 PR -".to_string(),
        format!("\"DESCRIBE rtsp://h/b\" 0 CH {origin}"),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    assert_each_once(&lines, &expected);
}

/// One line per refusal class, with the status sent and the termination
/// letters: whatever a hostile client tries leaves a trace.
#[test]
fn every_refusal_and_cut_answer_leaves_a_line() {
    // `/cut` announces 100 bytes and sends 5 before closing.
    let live = TestServer::start(|req| {
        if req.request_line().starts_with("GET /cut") {
            Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello".to_vec())
        } else {
            Reply::Send(ok("live"))
        }
    });
    let config = format!(
        "log_level = \"info\"\n[timeouts]\nhead = \"500ms\"\nbody = \"500ms\"\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\nmax_body = 1000\n\
         [[service.server]]\naddress = \"{}\"\n",
        live.addr
    );
    let daemon = Daemon::with_config("access-refusals", &config);
    let web = daemon.bound("web");
    let refused = |raw: &[u8], status: u16| {
        let mut client = Client::connect(web);
        client.send(raw);
        assert_eq!(client.read_response(false).status, status, "{raw:?}");
    };
    refused(b"GET /dup HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    refused(
        format!("GET /many HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes(),
        431,
    );
    refused(
        b"GET /zip HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: zip\r\n\r\n",
        501,
    );
    refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    refused(long.as_bytes(), 414);
    // A slowloris: half a head, then nothing until the head timeout.
    refused(b"GET /slow HTTP/1.1\r\nHost: a\r\n", 408);
    refused(
        b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n",
        413,
    );
    // Half a body, then nothing until the body deadline.
    refused(
        b"POST /stall HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhalf",
        408,
    );
    // Half a head, then the client gives up.
    let mut gone = Client::connect(web);
    gone.send(b"GET /gone HTTP/1.1\r\nHo");
    std::thread::sleep(Duration::from_millis(100));
    drop(gone);
    // The server cuts its answer short.
    let mut cut = Client::connect(web);
    cut.send(b"GET /cut HTTP/1.1\r\nHost: a\r\n\r\n");
    cut.assert_cut(false, "a cut answer");

    let lines = wait_for_lines(&daemon, 10);
    let expected = [
        "\"GET /dup\" 400 PR -".to_string(),
        "\"GET /many\" 431 PR -".to_string(),
        "\"GET /zip\" 501 PR -".to_string(),
        "\"PRI *\" 505 PR -".to_string(),
        "414 PR -".to_string(),
        "\"GET /slow\" 408 cR -".to_string(),
        "\"POST /big\" 413 PR -".to_string(),
        "\"POST /stall\" 408 cR -".to_string(),
        "\"GET /gone\" 0 CR -".to_string(),
        format!("\"GET /cut\" 200 SD {}", live.addr),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    assert_each_once(&lines, &expected);
    let longest = lines.iter().map(String::len).max().unwrap_or(0);
    assert!(
        longest < 1500,
        "a 20 KB target is cut in the log: {longest} bytes"
    );
}

#[test]
fn no_access_lines_when_access_log_is_off() {
    let live = TestServer::named("live");
    let config = format!(
        "log_level = \"info\"\naccess_log = false\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{}\"\n",
        live.addr
    );
    let daemon = Daemon::with_config("access-off", &config);
    let web = daemon.bound("web");
    assert_eq!(get(web, "/").status, 200);
    let mut bad = Client::connect(web);
    bad.send(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(bad.read_response(false).status, 400);
    // Nothing to wait for: give a line the time it would take to appear.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(access_lines(&daemon), Vec::<String>::new());
}

/// A daemon at `log_level = "warn"` whose access lines go to `access.log`
/// in its directory, as `format`, in front of one server answering `live`;
/// the daemon, the access log's path and the server.
fn daemon_with_access_file(
    name: &str,
    format: &str,
    args: &[&str],
) -> (Daemon, PathBuf, TestServer) {
    let live = TestServer::start(|_| Reply::Send(ok("live")));
    let dir = Scratch::new(name);
    let path = dir.path().join("access.log");
    let config = format!(
        "log_level = \"warn\"\naccess_log = \"{path}\"\nlog_format = \"{format}\"\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{live}\"\n\
         [[service.rule]]\npattern = \"^/j\"\nhost = \"^t$\"\nservers = [\"{live}\"]\n",
        path = path.display(),
        live = live.addr
    );
    (Daemon::with_config_in(dir, &config, args), path, live)
}

/// The lines of the access log once it holds `count` (at most 10 s), and a
/// little more for any line too many.
fn wait_for_file_lines(path: &Path, count: usize) -> Vec<String> {
    let read = || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(10), || read().len() >= count);
    std::thread::sleep(Duration::from_millis(300));
    read()
}

#[test]
fn a_combined_access_log_replays_in_the_simulator_with_no_malformed_line() {
    let (daemon, path, _live) = daemon_with_access_file("access-combined", "combined", &[]);
    let web = daemon.bound("web");
    let mut sent = 0;
    let mut client = Client::connect(web);
    for i in 0..30 {
        let request = format!(
            "GET /page/{} HTTP/1.1\r\nHost: t\r\nUser-Agent: bot \"{i}\" \\o/\r\n\
             Referer: http://t/from?{i}\r\n\r\n",
            i % 7
        );
        let response = client.exchange(&request);
        assert_eq!((response.status, response.text().as_str()), (200, "live"));
        sent += 1;
    }
    let odd = client.exchange("GET /odd/%22caf%C3%A9%22?q=%5C HTTP/1.0\r\nHost: t\r\n\r\n");
    assert_eq!(odd.status, 200);
    sent += 1;
    let mut refused = Client::connect(web);
    refused.send(b"GET /dup HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(refused.read_response(false).status, 400);
    sent += 1;
    let mut garbage = Client::connect(web);
    garbage.send(b"GET /a\"b\\c\x01\xff HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(garbage.read_response(false).status, 400);
    sent += 1;

    let lines = wait_for_file_lines(&path, sent);
    assert_eq!(lines.len(), sent, "{lines:#?}");
    let (workload, report) = tcpvs::sim::trace::parse_file(&path).unwrap();
    assert_eq!(report.malformed, 0, "{report:?}\n{lines:#?}");
    assert_eq!(report.requests, sent, "{report:?}");
    assert_eq!(workload.requests.len(), sent);
    assert!(
        lines.iter().any(|l| l.contains(
            "\"GET /page/3 HTTP/1.1\" 200 4 \"http://t/from?3\" \"bot \\x223\\x22 \\x5Co/\""
        )),
        "status, body bytes, referer and agent as nginx writes them: {lines:#?}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with("127.0.0.1 - - [")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"GET /a\\x22b\\x5Cc\\x01\\xEF\\xBF\\xBD HTTP/1.1\" 400 ")),
        "{lines:#?}"
    );
    assert_eq!(
        access_lines(&daemon),
        Vec::<String>::new(),
        "none on stderr"
    );
}

#[test]
fn json_access_lines_parse_and_hold_every_field() {
    let (daemon, path, _live) = daemon_with_access_file("access-json", "json", &[]);
    let web = daemon.bound("web");
    let mut client = Client::connect(web);
    let response = client
        .exchange("GET /j?x=\"1\" HTTP/1.1\r\nHost: t\r\nUser-Agent: a\\b\r\nReferer: r\r\n\r\n");
    assert_eq!(response.status, 200);
    // Not the rule's: the default set routes it.
    assert_eq!(
        client.exchange("GET /k HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    let lines = wait_for_file_lines(&path, 2);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let other: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert!(other["rule"].is_null(), "{other}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["rule"], "^/j host ^t$", "the rule that routed it");
    assert_eq!(
        line["client"].as_str().map(|c| c.starts_with("127.0.0.1:")),
        Some(true)
    );
    assert_eq!(line["service"], "web");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["target"], "/j?x=\"1\"");
    assert_eq!(line["version"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["termination"], "--");
    assert!(line["server"].as_str().is_some(), "{line}");
    assert_eq!(line["bytes_sent"], 4);
    assert!(line["duration_ms"].as_u64().is_some(), "{line}");
    assert_eq!(line["referer"], "r");
    assert_eq!(line["user_agent"], "a\\b");
    let time = line["time"].as_str().unwrap_or_default();
    assert!(time.len() == 27 && time.ends_with('Z'), "RFC 3339: {time}");
}

#[test]
fn access_log_off_writes_nothing_anywhere() {
    // The flag wins over the file's destination.
    let (daemon, path, _live) =
        daemon_with_access_file("access-flag-off", "combined", &["--access-log", "off"]);
    let web = daemon.bound("web");
    assert_eq!(get(web, "/").status, 200);
    let mut bad = Client::connect(web);
    bad.send(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(bad.read_response(false).status, 400);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!path.exists(), "no access log file is even opened");
    // Not in the daemon's log either, in any format.
    let stderr = daemon.stderr();
    assert!(!stderr.contains("GET /"), "{stderr}");
}

#[test]
fn sigusr1_reopens_the_access_log_file_after_logrotate_moved_it() {
    let (daemon, path, _live) = daemon_with_access_file("access-reopen", "combined", &[]);
    let web = daemon.bound("web");
    assert_eq!(get(web, "/before").status, 200);
    assert_eq!(wait_for_file_lines(&path, 1).len(), 1);
    let rotated = path.with_extension("log.1");
    std::fs::rename(&path, &rotated).unwrap();
    daemon.signal("USR1");
    // The reopen happens on the daemon's signal thread: requests until one
    // lands in the new file.
    let reopened = eventually(Duration::from_secs(5), || {
        assert_eq!(get(web, "/after").status, 200);
        std::thread::sleep(Duration::from_millis(20));
        std::fs::read_to_string(&path).is_ok_and(|text| text.contains("GET /after"))
    });
    assert!(reopened, "no line in a new {}", path.display());
    let fresh = std::fs::read_to_string(&path).unwrap();
    assert!(!fresh.contains("GET /before"), "{fresh}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("GET /before"), "{old}");
}

#[test]
fn the_format_flag_wins_over_a_reloaded_file() {
    let (daemon, path, _live) =
        daemon_with_access_file("access-flag-reload", "combined", &["--log-format", "json"]);
    let web = daemon.bound("web");
    // The file says combined; `tcpvsadm -f` loads it as SIGHUP does.
    daemon.ok(&format!("-f {}", daemon.config_path().display()));
    assert_eq!(get(web, "/after-reload").status, 200);
    let lines = wait_for_file_lines(&path, 1);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0])
        .unwrap_or_else(|e| panic!("not json after the reload ({e}): {lines:#?}"));
    assert_eq!(line["target"], "/after-reload");
}

#[test]
fn rtsp_lines_in_combined_name_their_version_and_their_bytes_are_counted() {
    use std::io::{BufRead, BufReader, Write};
    let origin = options_only_origin();
    let path = std::env::temp_dir().join(format!("tcpvs-rtsp-access-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let config = format!(
        "access_log = \"{}\"\nlog_format = \"combined\"\n\
         [[service]]\nident = \"tv\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"rtsp\"\n\
         [[service.server]]\naddress = \"{origin}\"\n",
        path.display()
    );
    let (daemon, admin) = start_with_admin("access-rtsp-combined", &config);
    let stream = std::net::TcpStream::connect(daemon.bound("tv")).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let requests = [
        "OPTIONS rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        "PLAY rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\nSession: nope\r\n\r\n",
    ];
    for request in requests {
        writer.write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
    }
    let lines = wait_for_file_lines(&path, 2);
    let _ = std::fs::remove_file(&path);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_each_once(
        &lines,
        &[
            "\"OPTIONS rtsp://h/a RTSP/1.0\" 200 0 \"-\" \"-\"".to_string(),
            "\"PLAY rtsp://h/a RTSP/1.0\" 454 0 \"-\" \"-\"".to_string(),
        ],
    );
    // Both requests' bytes: the one the origin answered, the one refused.
    let metrics = get(admin, "/metrics").text();
    let forwarded = sample(
        &metrics,
        &format!("tcpvs_request_bytes_total{{service=\"tv\",server=\"{origin}\"}}"),
    );
    let refused = sample(
        &metrics,
        "tcpvs_request_bytes_total{service=\"tv\",server=\"\"}",
    );
    let sent = requests.map(|request| request.len() as f64);
    assert_eq!([forwarded, refused], sent, "{metrics}");
}

#[test]
fn an_rtsp_line_names_the_rule_that_pinned_its_connection() {
    use std::io::{BufRead, BufReader, Write};
    let origin = options_only_origin();
    let dir = Scratch::new("access-rtsp-rule");
    let path = dir.path().join("access.log");
    let config = format!(
        "log_level = \"warn\"\naccess_log = \"{}\"\nlog_format = \"json\"\n\
         [[service]]\nident = \"tv\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"rtsp\"\n\
         [[service.server]]\naddress = \"{origin}\"\n\
         [[service.rule]]\npattern = \"^/live/\"\nservers = [\"{origin}\"]\n",
        path.display()
    );
    let daemon = Daemon::with_config_in(dir, &config, &[]);
    let stream = std::net::TcpStream::connect(daemon.bound("tv")).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"OPTIONS rtsp://h/live/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 2 {
        line.clear();
    }
    let lines = wait_for_file_lines(&path, 1);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["rule"], "^/live/", "{line}");
    assert_eq!(line["status"], 200, "{line}");
}

/// tcpvsd run by hand with `TZ` set in its environment (the harness passes
/// its own on), killed by its pid and reaped when dropped.
struct ZonedDaemon {
    child: std::process::Child,
    /// Where its one service listens.
    bound: SocketAddr,
}

impl ZonedDaemon {
    /// tcpvsd on `config` in `dir` with `TZ={tz}`, once it says where its
    /// service listens.
    fn start(dir: &Scratch, config: &str, tz: &str) -> ZonedDaemon {
        use common::daemon::{tcpvsd_command, START_TIMEOUT};
        let config = dir.write("tcpvsd.toml", config);
        let stdout = dir.path().join("tcpvsd.out");
        let child = tcpvsd_command(&config, &dir.path().join("control.sock"))
            .env("TZ", tz)
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(dir.path().join("tcpvsd.err")).unwrap())
            .spawn()
            .expect("start tcpvsd");
        let mut zoned = ZonedDaemon {
            child,
            bound: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let listening = || {
            let out = std::fs::read_to_string(&stdout).unwrap_or_default();
            let addr = out.lines().find_map(|l| l.split("listening on ").nth(1))?;
            addr.split_whitespace().next()?.parse().ok()
        };
        let started = Instant::now();
        zoned.bound = loop {
            if let Some(addr) = listening() {
                break addr;
            }
            let exited = zoned.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && started.elapsed() < START_TIMEOUT,
                "tcpvsd did not start ({exited:?}): {}",
                std::fs::read_to_string(dir.path().join("tcpvsd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        zoned
    }
}

impl Drop for ZonedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn combined_time_is_local_time_with_its_offset_as_nginx_writes_it() {
    let live = TestServer::start(|_| Reply::Send(ok("live")));
    let dir = Scratch::new("access-local-time");
    let path = dir.path().join("access.log");
    let config = format!(
        "log_level = \"warn\"\naccess_log = \"{}\"\nlog_format = \"combined\"\n\
         [[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n\
         [[service.server]]\naddress = \"{}\"\n",
        path.display(),
        live.addr
    );
    // A zone without daylight saving: the offset is the same all year.
    let daemon = ZonedDaemon::start(&dir, &config, "IST-5:30");
    let before = std::time::SystemTime::now();
    assert_eq!(get(daemon.bound, "/zoned").status, 200);
    let lines = wait_for_file_lines(&path, 1);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    // The line's clock, read back as UTC, is the request's time.
    let time = lines[0]
        .split(['[', ']'])
        .nth(1)
        .unwrap_or_else(|| panic!("no time in {lines:?}"));
    assert!(time.ends_with(" +0530"), "{time}");
    let local = time.trim_end_matches(" +0530");
    let since = before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let utc = seconds_of_clf(local) - (5 * 3600 + 30 * 60);
    assert!(
        (since..since + 3).contains(&utc),
        "{local} is {} s from the request",
        utc as i64 - since as i64
    );
    let (_, report) = tcpvs::sim::trace::parse_file(&path).unwrap();
    assert_eq!((report.requests, report.malformed), (1, 0), "{lines:#?}");
}

/// Seconds since the epoch of a `DD/Mon/YYYY:HH:MM:SS` clock, read as UTC.
fn seconds_of_clf(clock: &str) -> u64 {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = clock.split(['/', ':']).collect();
    let [day, month, year, hour, minute, second] = parts[..] else {
        panic!("not a CLF time: {clock}");
    };
    let number = |text: &str| text.parse::<i64>().unwrap();
    let month = MONTHS.iter().position(|m| *m == month).unwrap() as i64 + 1;
    // Days from the civil date (Howard Hinnant's algorithm).
    let year = number(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + number(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    (days * 86_400 + number(hour) * 3600 + number(minute) * 60 + number(second)) as u64
}
