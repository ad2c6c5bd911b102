//! Request bodies under limits: the largest body a service takes (413), the
//! body deadline (408), small bodies read whole before a server is chosen
//! (a slow client holds no server connection), `Expect: 100-continue` on
//! such a body, and the idle timeout of upgraded tunnels.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use tcpvs::table::{ServiceSpec, Settings};

/// Settings with a short body deadline, so that the tests that wait for it
/// take about a second.
fn short_body_deadline() -> Settings {
    let mut settings = Settings::default();
    settings.timeouts.body = Duration::from_secs(1);
    settings
}

fn limited(server: SocketAddr, max_body: Option<u64>) -> ServiceSpec {
    ServiceSpec {
        max_body,
        ..service(&[(server, 1)], &[])
    }
}

fn echo() -> TestServer {
    TestServer::start(|request| Reply::Send(ok(&format!("{} bytes", request.raw_body.len()))))
}

/// A POST head with `fields` (each ending in CRLF).
fn post_head(fields: &str) -> String {
    format!("POST /upload HTTP/1.1\r\nHost: t\r\n{fields}\r\n")
}

/// A server that accepts connections and reads each until it ends, telling
/// `closed` when (and whether the whole `expected` bytes came first).
fn closing_watcher(expected: usize) -> (SocketAddr, mpsc::Receiver<(Instant, usize)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                let mut total = 0;
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => total += n,
                        Err(e) if is_timeout(&e) => return,
                        Err(_) => break,
                    }
                    if total >= expected {
                        let _ = stream.write_all(&ok("all"));
                    }
                }
                let _ = tx.send((Instant::now(), total));
            });
        }
    });
    (addr, rx)
}

fn assert_dated(response: &Response, what: &str) {
    let dates = response.header("date");
    assert_eq!(dates.len(), 1, "{what}: {}", response.head);
    let date = &dates[0];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The proxy formats once a second: this second or the one before.
    let near: Vec<String> = (now.saturating_sub(2)..=now + 1)
        .map(|s| String::from_utf8(tcpvs::protocols::http::date::imf_fixdate(s).to_vec()).unwrap())
        .collect();
    assert!(near.contains(date), "{what}: Date {date:?} is not now");
}

#[test]
fn a_content_length_over_the_limit_gets_413_and_no_server_is_connected() {
    let server = echo();
    let proxy = start_proxy(limited(server.addr, Some(1000)), Settings::default());

    let mut client = Client::connect(proxy.addr());
    client.send(post_head("Content-Length: 1001\r\n").as_bytes());
    let response = client.read_response(false);
    assert_eq!(response.status, 413, "{}", response.head);
    assert_eq!(response.header("connection"), ["close"]);
    assert_dated(&response, "413");
    client.assert_closed("after a 413");
    assert_eq!(server.connection_count(), 0, "a server was connected");

    // At the limit, it passes.
    let mut client = Client::connect(proxy.addr());
    client.send(post_head("Content-Length: 1000\r\n").as_bytes());
    client.send(&[b'x'; 1000]);
    let response = client.read_response(false);
    assert_eq!(
        (response.status, response.text()),
        (200, "1000 bytes".into())
    );
}

#[test]
fn a_chunked_body_growing_past_the_limit_is_cut_with_413() {
    let server = echo();
    let proxy = start_proxy(limited(server.addr, Some(1000)), Settings::default());

    let mut client = Client::connect(proxy.addr());
    client.send(post_head("Transfer-Encoding: chunked\r\n").as_bytes());
    let chunk = format!("320\r\n{}\r\n", "y".repeat(0x320));
    client.send(chunk.as_bytes());
    // Past 1000 bytes with the second chunk.
    let _ = client.try_send(chunk.as_bytes());
    let response = client.read_response(false);
    assert_eq!(response.status, 413, "{}", response.head);
    assert_dated(&response, "413 of a chunked body");
    client.assert_closed("after a chunked body cut");
    // The server saw the head and never a whole request: its connection
    // was closed under it (it would answer a whole one).
    wait_for(TIMEOUT, "the server to read the head", || {
        server.heads().len() == 1
    });
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // Under the limit, a chunked body passes.
    let mut client = Client::connect(proxy.addr());
    client.send(post_head("Transfer-Encoding: chunked\r\n").as_bytes());
    client.send(chunk.as_bytes());
    client.send(b"0\r\n\r\n");
    let response = client.read_response(false);
    assert_eq!(response.status, 200, "{}", response.head);
}

#[test]
fn a_stalled_large_body_gets_408_at_its_deadline_and_the_server_connection_closes() {
    const LENGTH: usize = 200_000; // above body_buffer: streamed
    let (server, closed) = closing_watcher(LENGTH);
    let proxy = start_proxy(limited(server, None), short_body_deadline());

    let mut client = Client::connect(proxy.addr());
    let sent_at = Instant::now();
    client.send(post_head(&format!("Content-Length: {LENGTH}\r\n")).as_bytes());
    client.send(&vec![b'z'; LENGTH / 2]);
    let response = client.read_response(false);
    let after = sent_at.elapsed();
    assert_eq!(response.status, 408, "{}", response.head);
    assert_dated(&response, "408");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "408 after {after:?}, not at the 1 s deadline"
    );
    client.assert_closed("after a 408");
    let (at, received) = closed
        .recv_timeout(TIMEOUT)
        .expect("the server connection closed");
    assert!(received < LENGTH, "the server got {received} bytes");
    assert!(
        at.duration_since(sent_at) < Duration::from_secs(3),
        "the server connection stayed open for {:?}",
        at.duration_since(sent_at)
    );
}

#[test]
fn a_slow_small_body_holds_no_server_connection_until_it_is_whole() {
    let server = echo();
    let mut settings = Settings::default();
    settings.timeouts.body = Duration::from_secs(5);
    let proxy = start_proxy(limited(server.addr, None), settings);

    let mut client = Client::connect(proxy.addr());
    client.send(post_head("Content-Length: 4096\r\n").as_bytes());
    // Trickled in pieces for over half a second.
    for _ in 0..7 {
        client.send(&[b'a'; 512]);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            server.connection_count(),
            0,
            "a server connection while the body trickles"
        );
    }
    client.send(&[b'a'; 512]);
    let response = client.read_response(false);
    assert_eq!(
        (response.status, response.text()),
        (200, "4096 bytes".into())
    );
    assert_eq!(server.connection_count(), 1);
    let received = server.requests();
    assert_eq!(received[0].raw_body, vec![b'a'; 4096]);
    // The connection goes on: a next request on it is served too.
    let next = client.exchange("GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(next.status, 200);
}

/// Clients trickling small bodies at once: not one server connection is
/// held while they send.
const SLOW_CLIENTS: usize = 200;

#[test]
fn many_slow_small_bodies_hold_no_server_connection() {
    let server = echo();
    let proxy = start_proxy(limited(server.addr, None), Settings::default());
    let started = Instant::now();
    let mut clients: Vec<Client> = (0..SLOW_CLIENTS)
        .map(|_| {
            let mut client = Client::connect(proxy.addr());
            client.send(post_head("Content-Length: 4096\r\n").as_bytes());
            client.send(&[b's'; 1024]);
            client
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.connection_count(),
        0,
        "server connections held by {SLOW_CLIENTS} clients sending their bodies"
    );
    for client in &mut clients {
        client.send(&[b's'; 3072]);
    }
    for client in &mut clients {
        let response = client.read_response(false);
        assert_eq!(
            (response.status, response.text()),
            (200, "4096 bytes".into())
        );
    }
    eprintln!(
        "{SLOW_CLIENTS} slow bodies: 0 server connections while sending, {} after, {:?} in all",
        server.connection_count(),
        started.elapsed()
    );
}

#[test]
fn a_stalled_small_body_gets_408_without_a_server() {
    let server = echo();
    let proxy = start_proxy(limited(server.addr, None), short_body_deadline());

    let mut client = Client::connect(proxy.addr());
    let sent_at = Instant::now();
    client.send(post_head("Content-Length: 4096\r\n").as_bytes());
    client.send(&[b'a'; 100]);
    let response = client.read_response(false);
    let after = sent_at.elapsed();
    assert_eq!(response.status, 408, "{}", response.head);
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "408 after {after:?}"
    );
    client.assert_closed("after a 408");
    assert_eq!(server.connection_count(), 0);
}

#[test]
fn expect_100_continue_on_a_buffered_body_is_answered_by_the_proxy() {
    let server = echo();
    let proxy = start_proxy(limited(server.addr, None), Settings::default());

    let mut client = Client::connect(proxy.addr());
    client.send(post_head("Content-Length: 2000\r\nExpect: 100-continue\r\n").as_bytes());
    // The client waits for the 100 before it sends its body.
    let interim = client.read_response(false);
    assert_eq!(interim.status, 100, "{}", interim.head);
    assert_eq!(server.connection_count(), 0);
    client.send(&[b'e'; 2000]);
    let response = client.read_response(false);
    assert_eq!(
        (response.status, response.text()),
        (200, "2000 bytes".into())
    );
    // The server got the body with the head, and no expectation to answer.
    let received = server.requests();
    assert!(
        received[0].header("expect").is_empty(),
        "{}",
        received[0].head
    );

    // Above the limit, the answer is the final 413, not a 100.
    let proxy = start_proxy(limited(server.addr, Some(1000)), Settings::default());
    let mut client = Client::connect(proxy.addr());
    client.send(post_head("Content-Length: 2000\r\nExpect: 100-continue\r\n").as_bytes());
    assert_eq!(client.read_response(false).status, 413);
}

/// A WebSocket-like server: answers 101, then echoes until the client closes;
/// tells `ended` when its side ended.
fn upgrading_echo() -> (SocketAddr, mpsc::Receiver<Instant>) {
    let (tx, rx) = mpsc::channel();
    let addr = one_shot_server(move |_head, mut reader, mut writer| {
        writer
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 64];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Instant::now());
    });
    (addr, rx)
}

/// A proxy with a 1 s tunnel timeout before `server`, and a client's
/// stream upgraded through it, with the bytes already read past the 101.
fn upgraded_through_proxy(server: SocketAddr) -> (Proxy, TcpStream, Vec<u8>) {
    let mut settings = Settings::default();
    settings.timeouts.tunnel = Duration::from_secs(1);
    let proxy = start_proxy(service(&[(server, 1)], &[]), settings);
    let mut client = Client::connect(proxy.addr());
    client
        .send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(client.read_response(true).status, 101);
    let (raw, already) = client.into_stream();
    raw.set_read_timeout(Some(TIMEOUT)).unwrap();
    (proxy, raw, already)
}

#[test]
fn an_idle_tunnel_is_closed_after_its_timeout_and_not_while_bytes_flow() {
    let (server, ended) = upgrading_echo();
    let (_proxy, mut raw, _) = upgraded_through_proxy(server);
    // Two seconds of traffic, a byte every 400 ms: twice the idle timeout.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        raw.write_all(b"p").unwrap();
        let mut echo = [0u8; 1];
        raw.read_exact(&mut echo)
            .expect("the tunnel is open while used");
        std::thread::sleep(Duration::from_millis(400));
    }
    let last_byte = Instant::now();
    let mut rest = [0u8; 16];
    let end = raw.read(&mut rest);
    let idle = last_byte.elapsed();
    assert!(
        matches!(end, Ok(0)) || matches!(&end, Err(e) if is_end_of_stream(e)),
        "not closed: {end:?}"
    );
    assert!(
        idle >= Duration::from_millis(500) && idle < Duration::from_secs(3),
        "closed after {idle:?} idle, not at the 1 s timeout"
    );
    // The server's side was shut down too.
    let at = ended.recv_timeout(TIMEOUT).expect("the server side ended");
    assert!(at.duration_since(last_byte) < Duration::from_secs(3));
}

#[test]
fn a_tunnel_the_server_alone_talks_on_stays_open() {
    // The server pushes a byte every 300 ms for 2 s; the client says nothing.
    let addr = one_shot_server(|_head, _reader, mut writer| {
        writer
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .unwrap();
        for _ in 0..7 {
            std::thread::sleep(Duration::from_millis(300));
            if writer.write_all(b"s").is_err() {
                return;
            }
        }
    });
    let (_proxy, mut raw, already) = upgraded_through_proxy(addr);
    let mut got = already.len();
    let mut byte = [0u8; 1];
    while got < 7 {
        raw.read_exact(&mut byte)
            .expect("pushed bytes keep the tunnel open");
        got += 1;
    }
}

#[test]
fn a_response_head_over_its_limits_gets_502() {
    let big_field = format!("X-Big: {}\r\n", "b".repeat(3000));
    let many_fields: String = (0..20).map(|i| format!("X-F{i}: v\r\n")).collect();
    let (big, many) = (big_field.clone(), many_fields.clone());
    let server = TestServer::start(move |request| {
        let extra = if request.request_line().contains("/big") {
            &big
        } else {
            &many
        };
        Reply::Send(format!("HTTP/1.1 200 OK\r\n{extra}Content-Length: 2\r\n\r\nok").into_bytes())
    });
    let mut settings = Settings::default();
    settings.limits.max_response_head_bytes = 2048;
    settings.limits.max_response_headers = 10;
    let proxy = start_proxy(service(&[(server.addr, 1)], &[]), settings);
    for path in ["/big", "/many"] {
        let response = get(proxy.addr(), path);
        assert_eq!(response.status, 502, "{path}: {}", response.head);
        assert_dated(&response, "502");
    }
    // The request's own limits are not the response's.
    let mut settings = Settings::default();
    settings.limits.max_head_bytes = 1024;
    settings.limits.max_headers = 5;
    let proxy = start_proxy(service(&[(server.addr, 1)], &[]), settings);
    for path in ["/big", "/many"] {
        assert_eq!(get(proxy.addr(), path).status, 200, "{path}");
    }
}

#[test]
fn the_proxys_own_answers_are_dated() {
    // 503: no server to take it; 400, 431, 505: refused at the head.
    let proxy = start_proxy(service(&[(dead_address(), 1)], &[]), Settings::default());
    let cases: [(&str, String, u16); 4] = [
        ("no server", "GET / HTTP/1.1\r\nHost: t\r\n\r\n".into(), 503),
        ("bad request", "GET / HTTP/1.1\r\n\r\n".into(), 400),
        (
            "head too large",
            format!(
                "GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
                "h".repeat(20_000)
            ),
            431,
        ),
        ("version", "GET / HTTP/2.0\r\nHost: t\r\n\r\n".into(), 505),
    ];
    for (what, raw, status) in cases {
        let mut client = Client::connect(proxy.addr());
        let _ = client.try_send(raw.as_bytes());
        let response = client.read_response(false);
        assert_eq!(response.status, status, "{what}: {}", response.head);
        assert_dated(&response, what);
    }
    // 408: the head deadline.
    let mut settings = Settings::default();
    settings.timeouts.head = Duration::from_millis(500);
    let proxy = start_proxy(service(&[(dead_address(), 1)], &[]), settings);
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET / HTTP/1.1\r\n");
    let response = client.read_response(false);
    assert_eq!(response.status, 408);
    assert_dated(&response, "408");
}
