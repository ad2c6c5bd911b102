//! The access log: one line per exchange, whatever way it ended (answered by
//! a server, after a failover, by the proxy itself, or refused as malformed),
//! written from the exchange's one record.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
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
        format!("\"GET /first\" 200 {}", live.addr),
        format!("\"GET /missing\" 404 {}", live.addr),
        "\"GET /down/x\" 503 -".to_string(),
        "\"- -\" 400 -".to_string(),
    ];
    // A line is written once its answer went out: two connections' lines
    // may come in either order.
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for expected in &expected {
        let matching: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(expected.as_str()))
            .collect();
        assert_eq!(matching.len(), 1, "one line saying {expected}: {lines:#?}");
        assert!(matching[0].contains(" web "), "{}", matching[0]);
    }
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
        format!("\"OPTIONS rtsp://h/a\" 200 {origin}"),
        "\"PLAY rtsp://h/a\" 454 -".to_string(),
        format!("\"DESCRIBE rtsp://h/b\" 0 {origin}"),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for expected in &expected {
        let matching = lines
            .iter()
            .filter(|l| l.contains(expected.as_str()))
            .count();
        assert_eq!(matching, 1, "one line saying {expected}: {lines:#?}");
    }
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
