//! End-to-end behaviour of the HTTP relay over real sockets on 127.0.0.1:
//! framing both ways, keep-alive with per-request routing, bodiless responses,
//! close-delimited bodies, failing and quiescent servers.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tcpvs::table::{Settings, Timeouts};

fn proxy_to(servers: &[&TestServer]) -> Proxy {
    let list: Vec<(SocketAddr, u16)> = servers.iter().map(|s| (s.addr, 1)).collect();
    start_proxy(service(&list, &[]), Settings::default())
}

/// A proxy to the one server at `addr`, with the default settings but for
/// the timeouts `edit` changes.
fn proxy_with_timeouts(addr: SocketAddr, edit: impl FnOnce(&mut Timeouts)) -> Proxy {
    let mut settings = Settings::default();
    edit(&mut settings.timeouts);
    start_proxy(service(&[(addr, 1)], &[]), settings)
}

/// A client connected to a proxy over one server that answers "s", with the
/// timeouts `edit` changes; the server and the proxy live as long as their
/// handles.
fn client_of_one_server(edit: impl FnOnce(&mut Timeouts)) -> (TestServer, Proxy, Client) {
    let server = TestServer::named("s");
    let proxy = proxy_with_timeouts(server.addr, edit);
    let client = Client::connect(proxy.addr());
    (server, proxy, client)
}

#[test]
fn get_head_and_post_with_content_length() {
    let server = TestServer::start(|req| {
        let body = format!("{} got {} bytes", req.request_line(), req.raw_body.len());
        Reply::Send(ok(&body))
    });
    let proxy = proxy_to(&[&server]);
    let mut client = Client::connect(proxy.addr());

    let get = client.exchange("GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(get.status, 200);
    assert_eq!(get.text(), "GET /a HTTP/1.1 got 0 bytes");

    let head = client.exchange("HEAD /a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), ["28"]);

    let post =
        client.exchange("POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(post.text(), "POST /form HTTP/1.1 got 11 bytes");
    let seen = server.requests();
    assert_eq!(seen[2].raw_body, b"hello world");
    assert_eq!(seen[2].header("content-length"), ["11"]);
}

#[test]
fn large_body_both_ways_is_relayed_intact() {
    let server = TestServer::start(|req| {
        // Echo the body back, reversed, so order errors show.
        let mut body = req.raw_body.clone();
        body.reverse();
        let mut out =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        out.extend_from_slice(&body);
        Reply::Send(out)
    });
    let proxy = proxy_to(&[&server]);
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut client = Client::connect(proxy.addr());
    let mut request = format!(
        "PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    client.send(&request);
    let response = client.read_response(false);
    let mut expected = body.clone();
    expected.reverse();
    assert_eq!(response.body.len(), expected.len());
    assert!(response.body == expected);
}

#[test]
fn chunked_request_is_decoded_and_reencoded() {
    let server = TestServer::start(|req| Reply::Send(ok(&format!("{}", req.raw_body.len()))));
    let proxy = proxy_to(&[&server]);
    let mut client = Client::connect(proxy.addr());
    // Extensions, upper-case hex and leading zeros are the client's business;
    // the server must see canonical chunks only.
    let response = client.exchange(
        "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=value\r\nhello\r\n00B\r\n, chunked!!\r\n0\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    let seen = &server.requests()[0];
    assert_eq!(seen.header("transfer-encoding"), ["chunked"]);
    assert!(seen.header("content-length").is_empty());
    assert_eq!(dechunk(&seen.raw_body), b"hello, chunked!!");
    assert!(!String::from_utf8_lossy(&seen.raw_body).contains("name=value"));
    assert!(String::from_utf8_lossy(&seen.raw_body).starts_with("5\r\nhello\r\nb\r\n"));
}

#[test]
fn chunked_response_relayed_and_dechunked_for_http10() {
    let server = TestServer::start(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n".to_vec(),
        )
    });
    let proxy = proxy_to(&[&server]);
    let mut client = Client::connect(proxy.addr());
    let response = client.exchange("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(response.header("transfer-encoding"), ["chunked"]);
    assert_eq!(response.text(), "Wikipedia");
    // Still usable for a next request.
    assert_eq!(
        client.exchange("GET / HTTP/1.1\r\nHost: t\r\n\r\n").text(),
        "Wikipedia"
    );

    let mut old = Client::connect(proxy.addr());
    let response = old.exchange("GET / HTTP/1.0\r\n\r\n");
    assert!(
        response.head.starts_with("HTTP/1.0 200"),
        "{}",
        response.head
    );
    assert!(response.header("transfer-encoding").is_empty());
    assert_eq!(response.text(), "Wikipedia");
    old.assert_closed("HTTP/1.0 client after its response");
}

#[test]
fn keep_alive_requests_are_routed_one_by_one() {
    let images = TestServer::named("images");
    let cgi = TestServer::named("cgi");
    let files = TestServer::named("static");
    let spec = service(
        &[(images.addr, 1), (cgi.addr, 1), (files.addr, 1)],
        &[("^/images/", &[images.addr]), ("^/cgi-bin/", &[cgi.addr])],
    );
    let mut spec = spec;
    spec.default = Some(vec![tcpvs::table::ServerAddr(files.addr)]);
    let proxy = start_proxy(spec, Settings::default());
    let mut client = Client::connect(proxy.addr());
    for (path, pool) in [
        ("/images/x.jpg", "images"),
        ("/cgi-bin/a.cgi", "cgi"),
        ("/index.html", "static"),
        ("/images/y.png", "images"),
    ] {
        let response = client.exchange(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(response.text(), pool, "{path}");
    }
    // Two requests pipelined in one write are answered in order.
    client.send(
        b"GET /cgi-bin/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /images/2 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(client.read_response(false).text(), "cgi");
    assert_eq!(client.read_response(false).text(), "images");
    // Connections to the servers were reused, not opened per request.
    assert_eq!(images.connection_count(), 1);
}

#[test]
fn bodiless_responses_have_no_body() {
    let server = TestServer::start(|req| {
        let line = req.request_line().to_string();
        let raw: &[u8] = if line.starts_with("HEAD") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        } else if line.contains("/204") {
            b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
        } else if line.contains("/304") {
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 500\r\nETag: \"x\"\r\n\r\n"
        } else {
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        Reply::Send(raw.to_vec())
    });
    let proxy = proxy_to(&[&server]);
    let mut client = Client::connect(proxy.addr());
    let head = client.exchange("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((head.status, head.body.len()), (200, 0));
    let no_content = client.exchange("GET /204 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(no_content.status, 204);
    let not_modified = client.exchange("GET /304 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), ["\"x\""]);
    // Interim responses are relayed, in order, before the final one.
    client.send(b"GET /hints HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.read_response(false).status, 103);
    assert_eq!(client.read_response(false).status, 100);
    let last = client.read_response(false);
    assert_eq!((last.status, last.text().as_str()), (200, "ok"));
    // The connection survived all of it.
    assert_eq!(
        client
            .exchange("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n")
            .status,
        200
    );
}

/// A server that sends interim responses without end is cut off: the client
/// gets the ones within the bound, then a 502, not a wait without end.
#[test]
fn endless_interim_responses_end_in_502() {
    let hints = b"HTTP/1.1 103 Early Hints\r\n\r\n".repeat(40);
    let server = TestServer::start(move |_| {
        let mut raw = hints.clone();
        raw.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        Reply::Send(raw)
    });
    let proxy = proxy_to(&[&server]);
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let statuses: Vec<u16> = (0..17)
        .map(|_| client.read_response(false).status)
        .collect();
    assert_eq!(statuses[..16], [103; 16]);
    assert_eq!(statuses[16], 502);
}

#[test]
fn large_response_to_a_closing_client_that_reads_late_is_whole() {
    // The last response before a close is first sent without the ring; a
    // client that does not read yet fills its socket buffer, so that send
    // takes only part and the ring must carry on from the right byte.
    let body: Vec<u8> = (0..6_000_000u32).map(|i| (i % 253) as u8).collect();
    let served = body.clone();
    let server = TestServer::start(move |_| {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            served.len()
        )
        .into_bytes();
        out.extend_from_slice(&served);
        Reply::Send(out)
    });
    let proxy = proxy_to(&[&server]);
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    std::thread::sleep(Duration::from_millis(300));
    let response = client.read_response(false);
    assert_eq!(response.header("connection"), ["close"]);
    assert_eq!(response.body.len(), body.len());
    assert!(response.body == body, "bytes lost or out of order");
    client.assert_closed("Connection: close");
}

#[test]
fn clients_that_wait_before_speaking_are_served() {
    // Listeners defer accepts until the client's first bytes (1 s at most):
    // a client quiet for less, or for longer, is still served.
    let server = TestServer::start(|_| Reply::Send(ok("hello")));
    let proxy = proxy_to(&[&server]);
    for quiet in [Duration::from_millis(300), Duration::from_millis(2500)] {
        let mut client = Client::connect(proxy.addr());
        std::thread::sleep(quiet);
        let response = client.exchange("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "hello"),
            "{quiet:?}"
        );
    }
}

#[test]
fn clients_that_leave_without_a_byte_do_not_disturb_the_next() {
    // A new connection's first read is taken directly: an end of stream
    // (FIN) or a reset there ends that connection quietly, and nothing
    // reaches the server.
    let server = TestServer::start(|_| Reply::Send(ok("hello")));
    let proxy = proxy_to(&[&server]);
    let polite = std::net::TcpStream::connect(proxy.addr()).unwrap();
    polite.shutdown(std::net::Shutdown::Write).unwrap();
    polite
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut &polite, &mut byte).unwrap(), 0);
    let rude = std::net::TcpStream::connect(proxy.addr()).unwrap();
    socket2::SockRef::from(&rude)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(rude); // RST
    let mut client = Client::connect(proxy.addr());
    let response = client.exchange("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn close_delimited_response_is_relayed_whole_then_closed() {
    let server = TestServer::start(|_| {
        Reply::SendAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the server closes".to_vec(),
        )
    });
    let proxy = proxy_to(&[&server]);
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = client.read_response(false);
    assert_eq!(response.text(), "until the server closes");
    assert_eq!(response.header("connection"), ["close"]);
}

#[test]
fn connect_failure_goes_to_another_server() {
    let live = TestServer::named("live");
    let dead = dead_address();
    let proxy = start_proxy(
        service(&[(dead, 1), (live.addr, 1)], &[]),
        Settings::default(),
    );
    for _ in 0..6 {
        let response = get(proxy.addr(), "/");
        assert_eq!((response.status, response.text().as_str()), (200, "live"));
    }
}

#[test]
fn no_usable_server_is_503() {
    let proxy = start_proxy(service(&[(dead_address(), 1)], &[]), Settings::default());
    assert_eq!(get(proxy.addr(), "/").status, 503);
    let quiescent = TestServer::named("drained");
    let proxy = start_proxy(service(&[(quiescent.addr, 0)], &[]), Settings::default());
    assert_eq!(get(proxy.addr(), "/").status, 503);
    assert!(quiescent.requests().is_empty());
    let proxy = start_proxy(service(&[], &[]), Settings::default());
    assert_eq!(get(proxy.addr(), "/").status, 503);
}

#[test]
fn server_closing_before_head_is_502() {
    let server = TestServer::start(|_| Reply::Close);
    let proxy = proxy_to(&[&server]);
    assert_eq!(get(proxy.addr(), "/").status, 502);
    let garbage = TestServer::start(|_| {
        Reply::SendAndClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
        )
    });
    let proxy = proxy_to(&[&garbage]);
    assert_eq!(get(proxy.addr(), "/").status, 502);
}

#[test]
fn slow_server_is_504() {
    let server = TestServer::start(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        Reply::Send(ok("late"))
    });
    let proxy = proxy_with_timeouts(server.addr, |t| t.server = Duration::from_millis(300));
    assert_eq!(get(proxy.addr(), "/").status, 504);
}

#[test]
fn weight_zero_gets_no_new_requests() {
    let drained = TestServer::named("drained");
    let active = TestServer::named("active");
    let proxy = start_proxy(
        service(&[(drained.addr, 0), (active.addr, 1)], &[]),
        Settings::default(),
    );
    for _ in 0..10 {
        assert_eq!(get(proxy.addr(), "/").text(), "active");
    }
    assert!(drained.requests().is_empty());
}

#[test]
fn hop_by_hop_headers_removed_and_client_added_to_x_forwarded_for() {
    let server = TestServer::named("s");
    let proxy = proxy_to(&[&server]);
    let mut client = Client::connect(proxy.addr());
    let response = client.exchange(
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n\
         Proxy-Connection: keep-alive\r\nTE: gzip\r\nUpgrade: h2c\r\nX-Forwarded-For: 10.9.8.7\r\nX-Kept: yes\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    client.assert_closed("Connection: close, X-Secret");
    let seen = &server.requests()[0];
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert!(
            seen.header(gone).is_empty(),
            "{gone} forwarded: {}",
            seen.head
        );
    }
    assert_eq!(seen.header("x-kept"), ["yes"]);
    assert_eq!(seen.header("host"), ["t"]);
    assert_eq!(seen.header("x-forwarded-for"), ["10.9.8.7, 127.0.0.1"]);
}

#[test]
fn malformed_requests_get_400_and_close() {
    let server = TestServer::named("s");
    let proxy = proxy_to(&[&server]);
    for bad in [
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\nHost: t\n\n",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut client = Client::connect(proxy.addr());
        client.send(bad.as_bytes());
        let response = client.read_response(false);
        assert_eq!(response.status, 400, "{bad:?}");
        client.assert_closed(&format!("{bad:?}"));
    }
    // Only the last case has a valid head: it reached the server, and its
    // bad body did not.
    let chunked = "POST / HTTP/1.1";
    let deadline = Instant::now() + TIMEOUT;
    while server.heads().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(server.heads(), [chunked]);
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn expect_continue_is_relayed_without_buffering_the_body() {
    // A server that answers 100 after the head, then reads the body.
    let addr = one_shot_server(|_head, mut reader, mut writer| {
        use std::io::{Read, Write};
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
        let mut body = [0u8; 5];
        reader.read_exact(&mut body).unwrap();
        writer
            .write_all(&ok(std::str::from_utf8(&body).unwrap()))
            .unwrap();
    });
    // Small bodies are read whole first unless buffering is off
    // (tests/bodies.rs has the buffered case, where the proxy sends the 100).
    let mut settings = Settings::default();
    settings.limits.body_buffer = 0;
    let proxy = start_proxy(service(&[(addr, 1)], &[]), settings);
    let mut client = Client::connect(proxy.addr());
    client.send(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    // The client sends its body only after the 100.
    assert_eq!(client.read_response(false).status, 100);
    client.send(b"hello");
    assert_eq!(client.read_response(false).text(), "hello");
}

#[test]
fn server_dying_mid_body_cuts_the_client() {
    let server = TestServer::start(|_| {
        Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part".to_vec())
    });
    let proxy = proxy_to(&[&server]);
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    client.assert_cut(false, "server dying mid-body");
}

#[test]
fn head_deadline_is_absolute() {
    const HEAD: Duration = Duration::from_millis(500);
    let (server, _proxy, mut client) = client_of_one_server(|t| t.head = HEAD);
    // A byte every 100 ms for up to 5 s: an idle timer would not fire while
    // it lasts, the absolute deadline does.
    let head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(60)
    );
    let started = Instant::now();
    let trickler = client.trickle(
        head.as_bytes(),
        Duration::from_millis(100),
        Duration::from_secs(5),
    );
    let response = client.read_response(false);
    let answered = started.elapsed();
    assert_eq!(response.status, 408);
    assert!(
        answered < HEAD + Duration::from_secs(2),
        "408 after {answered:?}, not at the deadline"
    );
    client.assert_closed("408 at the head deadline");
    trickler.join().unwrap();
    assert!(server.requests().is_empty());
}

#[test]
fn upgrade_becomes_a_tunnel() {
    let addr = one_shot_server(|head, mut reader, mut writer| {
        use std::io::{Read, Write};
        assert!(
            head.to_ascii_lowercase().contains("upgrade: websocket"),
            "{head}"
        );
        writer
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhi")
            .unwrap();
        // Echo upper-cased until the client closes.
        let mut buf = [0u8; 64];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => writer.write_all(&buf[..n].to_ascii_uppercase()).unwrap(),
            }
        }
    });
    let proxy = start_proxy(service(&[(addr, 1)], &[]), Settings::default());
    let mut client = Client::connect(proxy.addr());
    client
        .send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    let response = client.read_response(true);
    assert_eq!(response.status, 101);
    let (mut raw, mut got) = client.into_stream();
    use std::io::{Read, Write};
    while got.len() < 2 {
        let mut more = [0u8; 2];
        let n = raw.read(&mut more[..2 - got.len()]).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&more[..n]);
    }
    assert_eq!(got, b"hi");
    raw.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    raw.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"PING");
}

/// What `OneAnswerServer` does after answering a connection's first request.
#[derive(Clone, Copy)]
enum AfterAnswer {
    /// Keeps the connection open; the next request on it is read whole, then
    /// the connection is closed without an answer. Until that request is
    /// sent, the connection looks alive to the proxy's pool.
    CloseOnNextRequest,
    /// Closes at once: a pooled connection that is already dead.
    Close,
}

/// A server that answers only the first request of each connection (200,
/// keep-alive, body `connection N`, N counting accepts from 0) and records
/// every request line per connection as soon as its head is read, before
/// any body: a request sent twice shows even when its second copy never
/// completes.
struct OneAnswerServer {
    addr: SocketAddr,
    /// Request lines per connection, in accept order.
    seen: Arc<Mutex<Vec<Vec<String>>>>,
    /// Connections the server has closed.
    closed: Arc<AtomicUsize>,
}

impl OneAnswerServer {
    fn start(after: AfterAnswer) -> OneAnswerServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicUsize::new(0));
        let (log, closes) = (seen.clone(), closed.clone());
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().flatten().enumerate() {
                log.lock().unwrap().push(Vec::new());
                let (log, closes) = (log.clone(), closes.clone());
                std::thread::spawn(move || {
                    answer_once(stream, n, after, &log);
                    closes.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        OneAnswerServer { addr, seen, closed }
    }

    fn seen(&self) -> Vec<Vec<String>> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves connection `n` of a `OneAnswerServer`; returns when it closes it.
fn answer_once(stream: TcpStream, n: usize, after: AfterAnswer, log: &Mutex<Vec<Vec<String>>>) {
    use std::io::{BufReader, Read, Write};
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for answered in [false, true] {
        let Ok(Some(head)) = read_head(&mut reader) else {
            return;
        };
        let line = head.lines().next().unwrap_or("").to_string();
        log.lock().unwrap()[n].push(line);
        let length: usize = header_values(&head, "content-length")
            .first()
            .map_or(0, |l| l.parse().unwrap());
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if answered {
            // The request was read whole: close without an answer.
            return;
        }
        writer.write_all(&ok(&format!("connection {n}"))).unwrap();
        if let AfterAnswer::Close = after {
            return;
        }
    }
}

#[test]
fn stale_pooled_connection_is_retried_for_idempotent_requests() {
    // The pooled connection is alive when taken, and the server closes it
    // only on reading the next request: the proxy learns it is stale only
    // after sending the request on it.
    let server = OneAnswerServer::start(AfterAnswer::CloseOnNextRequest);
    let proxy = start_proxy(service(&[(server.addr, 1)], &[]), Settings::default());
    let mut client = Client::connect(proxy.addr());
    let first = client.exchange("GET /first HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((first.status, first.text().as_str()), (200, "connection 0"));
    for (n, method) in [(1, "GET"), (2, "OPTIONS"), (3, "DELETE")] {
        let request = format!("{method} /again HTTP/1.1\r\nHost: t\r\n\r\n");
        let again = client.exchange(&request);
        assert_eq!(
            (again.status, again.text()),
            (200, format!("connection {n}")),
            "{method}"
        );
    }
    // Each request went once on the stale connection, once on a fresh one.
    let line = |method: &str| format!("{method} /again HTTP/1.1");
    assert_eq!(
        server.seen(),
        vec![
            vec!["GET /first HTTP/1.1".to_string(), line("GET")],
            vec![line("GET"), line("OPTIONS")],
            vec![line("OPTIONS"), line("DELETE")],
            vec![line("DELETE")],
        ]
    );
}

#[test]
fn non_idempotent_request_on_a_stale_pooled_connection_is_never_sent_twice() {
    // Sent at once after the first exchange: a request that is not
    // idempotent reuses only a connection pooled less than 1 s ago.
    for (what, request) in [
        ("POST without a body", "POST /once HTTP/1.1\r\nHost: t\r\n\r\n"),
        (
            "POST with a Content-Length body",
            "POST /once HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "PATCH with a chunked body",
            "PATCH /once HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "PUT with a body (idempotent, but its body is gone once sent)",
            "PUT /once HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
        ),
    ] {
        let server = OneAnswerServer::start(AfterAnswer::CloseOnNextRequest);
        // A retry that waits for a body nobody sends again fails fast.
        let proxy = proxy_with_timeouts(server.addr, |t| t.client = Duration::from_secs(2));
        let mut client = Client::connect(proxy.addr());
        let first = client.exchange("GET /first HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(first.status, 200, "{what}");
        client.send(request.as_bytes());
        let response = client
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("{what}: no response: {e}"));
        assert_eq!(response.status, 502, "{what}: {}", response.head);
        client.assert_closed(what);
        let request_line = request.lines().next().unwrap().to_string();
        assert_eq!(
            server.seen(),
            vec![vec!["GET /first HTTP/1.1".to_string(), request_line]],
            "{what}: sent on the stale connection, and only there"
        );
    }
}

#[test]
fn pooled_connection_the_server_closed_is_not_reused() {
    // The server closes after each answer. Once its close has reached the
    // proxy, the pool's check drops that connection, so even a request that
    // could not be retried gets through on a new one.
    let server = OneAnswerServer::start(AfterAnswer::Close);
    let proxy = start_proxy(service(&[(server.addr, 1)], &[]), Settings::default());
    let mut client = Client::connect(proxy.addr());
    for (n, request) in [
        "GET / HTTP/1.1\r\nHost: t\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
        "POST / HTTP/1.1\r\nHost: t\r\n\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        let response = client.exchange(request);
        assert_eq!(
            (response.status, response.text()),
            (200, format!("connection {n}")),
            "{request:?}"
        );
        // The next request goes out only after the server's close (within
        // the 1 s a POST may reuse a pooled connection).
        let deadline = Instant::now() + Duration::from_millis(500);
        while server.closed.load(Ordering::SeqCst) <= n {
            assert!(Instant::now() < deadline, "the server never closed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(
        server.seen().iter().map(Vec::len).collect::<Vec<_>>(),
        [1, 1, 1]
    );
}

// The README's timeouts ([timeouts]), each shortened to hundreds of ms.

const GET: &str = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn keepalive_timeout_closes_an_idle_client_after_it_not_before() {
    const KEEPALIVE: Duration = Duration::from_millis(800);
    let (server, _proxy, mut client) = client_of_one_server(|t| t.keepalive = KEEPALIVE);
    assert_eq!(client.exchange(GET).status, 200);
    // Idle for half the timeout: still open, and the next request is served.
    assert_eq!(client.ending(KEEPALIVE / 2), Ending::Open);
    assert_eq!(client.exchange(GET).status, 200);
    // Idle from the response on: an end of stream after the timeout.
    let idle_since = Instant::now();
    let ending = client.ending(KEEPALIVE + CLOSE_WAIT);
    let idle = idle_since.elapsed();
    assert_eq!(ending, Ending::Closed, "after {idle:?} idle");
    // The proxy's timer started as it sent the response, a little before
    // the client had it.
    assert!(
        idle >= KEEPALIVE - Duration::from_millis(50),
        "closed after {idle:?} idle"
    );
    assert_eq!(server.requests().len(), 2);
}

/// A listener whose connects never complete: its accept queue (backlog 0)
/// is full of connections nobody accepts, so the kernel drops further SYNs.
struct Unanswered {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
}

impl Unanswered {
    fn start() -> Unanswered {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut queued = Vec::new();
        // Fill the queue until a connect hangs: proof that the next ones will.
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(stream) => queued.push(stream),
                Err(e) if is_timeout(&e) => {
                    return Unanswered {
                        addr,
                        _listener: listener,
                        _queued: queued,
                    }
                }
                Err(e) => panic!("connecting to fill the accept queue: {e}"),
            }
        }
        panic!("connects to a full accept queue still complete");
    }
}

#[test]
fn connect_timeout_moves_on_to_the_next_server() {
    const CONNECT: Duration = Duration::from_millis(500);
    let hanging = Unanswered::start();
    let live = TestServer::named("live");
    let mut settings = Settings::default();
    settings.timeouts.connect = CONNECT;
    let proxy = start_proxy(
        service(&[(hanging.addr, 1), (live.addr, 1)], &[]),
        settings.clone(),
    );
    // Ties are broken in turn, so one of the first requests tries the
    // hanging server first; it is served by the other after the timeout.
    let mut slowest = Duration::ZERO;
    for _ in 0..4 {
        let started = Instant::now();
        let response = get(proxy.addr(), "/");
        assert_eq!((response.status, response.text().as_str()), (200, "live"));
        slowest = slowest.max(started.elapsed());
        if slowest >= CONNECT {
            break;
        }
    }
    assert!(
        slowest >= CONNECT,
        "no request waited on the hanging server ({slowest:?})"
    );
    assert!(
        slowest < CONNECT + Duration::from_secs(2),
        "the next server was tried only after {slowest:?}"
    );
    // With no other server: 504 once the connect timed out.
    let proxy = start_proxy(service(&[(hanging.addr, 1)], &[]), settings);
    let started = Instant::now();
    assert_eq!(get(proxy.addr(), "/").status, 504);
    let waited = started.elapsed();
    assert!(
        waited >= CONNECT && waited < CONNECT + Duration::from_secs(2),
        "504 after {waited:?}"
    );
}

#[test]
fn pool_idle_timeout_ends_the_reuse_of_a_server_connection() {
    const POOL_IDLE: Duration = Duration::from_millis(800);
    let (server, _proxy, mut client) = client_of_one_server(|t| t.pool_idle = POOL_IDLE);
    // One client connection: its requests stay on one worker and its pool.
    assert_eq!(client.exchange(GET).status, 200);
    assert_eq!(server.connection_count(), 1);
    // The sleeps are the idle times under test, not synchronisation.
    std::thread::sleep(POOL_IDLE / 4);
    assert_eq!(client.exchange(GET).status, 200);
    assert_eq!(
        server.connection_count(),
        1,
        "a connection idle {:?} was not reused",
        POOL_IDLE / 4
    );
    std::thread::sleep(POOL_IDLE * 3 / 2);
    assert_eq!(client.exchange(GET).status, 200);
    assert_eq!(
        server.connection_count(),
        2,
        "a connection idle {:?} was reused",
        POOL_IDLE * 3 / 2
    );
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn client_timeout_cuts_a_client_that_stops_sending_its_body() {
    const CLIENT: Duration = Duration::from_millis(800);
    let (server, _proxy, mut client) = client_of_one_server(|t| t.client = CLIENT);
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello");
    let stalled = Instant::now();
    assert_eq!(client.ending(CLIENT / 2), Ending::Open, "cut too early");
    // No response had started: the client hears 408, then the close.
    let response = client.read_response(false);
    let waited = stalled.elapsed();
    assert_eq!(response.status, 408, "{}", response.head);
    client.assert_closed("after the 408");
    assert!(waited >= CLIENT, "cut after {waited:?}");
    // The server never had the whole request.
    assert!(server.requests().is_empty());
}

#[test]
fn client_timeout_cuts_a_client_that_stops_reading() {
    const CLIENT: Duration = Duration::from_millis(800);
    // Far more than the socket buffers on the way hold.
    const BODY: usize = 64 << 20;
    let write_failed = Arc::new(Mutex::new(None::<Instant>));
    let failed = write_failed.clone();
    let server = one_shot_server(move |_head, _reader, mut writer| {
        use std::io::Write;
        writer.set_write_timeout(Some(TIMEOUT)).unwrap();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n");
        let chunk = vec![b'x'; 64 * 1024];
        let mut result = writer.write_all(head.as_bytes());
        let mut sent = 0;
        while result.is_ok() && sent < BODY {
            result = writer.write_all(&chunk);
            sent += chunk.len();
        }
        if result.is_err() {
            *failed.lock().unwrap() = Some(Instant::now());
        }
    });
    let proxy = proxy_with_timeouts(server, |t| t.client = CLIENT);
    let mut client = Client::connect(proxy.addr());
    let asked = Instant::now();
    client.send(GET.as_bytes());
    // The client reads nothing: once the buffers are full the proxy's writes
    // wait, and after the client timeout it gives up on both ends.
    let deadline = asked + CLIENT + Duration::from_secs(5);
    let cut_at = loop {
        if let Some(at) = *write_failed.lock().unwrap() {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy still relays to a client that stopped reading"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(cut_at - asked >= CLIENT, "cut after {:?}", cut_at - asked);
    client.assert_cut(false, "a client that stopped reading");
}

#[test]
fn a_dropped_proxy_refuses_connections_and_closes_its_clients() {
    let server = TestServer::named("s");
    let proxy = proxy_to(&[&server]);
    let addr = proxy.addr();
    let mut client = Client::connect(addr);
    assert_eq!(client.exchange(GET).status, 200);
    drop(proxy);
    let refused = TcpStream::connect(addr).map(|_| ());
    assert_eq!(
        refused.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "{addr} still accepts connections"
    );
    client.assert_closed("the client of a stopped proxy");
}

/// README: `[limits]` bound every head, the client's and the server's: 414
/// for a request line beyond `max_head_bytes`, 431 for a larger head or more
/// than `max_headers` fields, 502 for such a response. Set small here, so
/// that the defaults (16 KiB, 100) would let every one of these through.
#[test]
fn configured_head_limits_bound_requests_and_responses() {
    let big_response = TestServer::start(|req| {
        if req.request_line().contains("/big-answer") {
            let mut head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_string();
            head.push_str(&format!("X-Pad: {}\r\n\r\n", "a".repeat(1500)));
            Reply::Send(head.into_bytes())
        } else {
            Reply::Send(ok("fine"))
        }
    });
    let mut settings = Settings::default();
    settings.limits.max_head_bytes = 1024;
    settings.limits.max_headers = 4;
    settings.limits.max_response_head_bytes = 1024;
    let proxy = start_proxy(service(&[(big_response.addr, 1)], &[]), settings);
    let status = |raw: String| {
        let mut client = Client::connect(proxy.addr());
        client.send(raw.as_bytes());
        client.read_response(false).status
    };
    let within = "GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n".to_string();
    assert_eq!(status(within), 200);
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(1100));
    assert_eq!(status(long_line), 414);
    let large_head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(1100)
    );
    assert_eq!(status(large_head), 431);
    let many_fields =
        "GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n".to_string();
    assert_eq!(status(many_fields), 431);
    let big_answer = "GET /big-answer HTTP/1.1\r\nHost: t\r\n\r\n".to_string();
    assert_eq!(status(big_answer), 502);
}

/// README: `pool_idle` closes an idle server connection once it is that old,
/// even when no request comes to notice it (the worker sweeps its pool every
/// second): the server sees the end of stream soon after `pool_idle`.
#[test]
fn an_idle_pooled_connection_is_closed_without_traffic() {
    use std::io::{Read, Write};
    const POOL_IDLE: Duration = Duration::from_millis(500);
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let addr = one_shot_server(move |_head, mut reader, mut writer| {
        writer.write_all(&ok("kept")).unwrap();
        let answered = Instant::now();
        // Read until the proxy closes the pooled connection.
        let mut byte = [0u8; 1];
        let end = reader.read(&mut byte);
        let _ = closed_tx.send((end.map_err(|e| e.kind()), answered.elapsed()));
    });
    let proxy = proxy_with_timeouts(addr, |t| t.pool_idle = POOL_IDLE);
    assert_eq!(get(proxy.addr(), "/").text(), "kept");
    let (end, after) = closed_rx
        .recv_timeout(Duration::from_secs(8))
        .expect("the server's connection was never closed");
    assert_eq!(end, Ok(0), "an end of stream, after {after:?}");
    // Swept within a second or two of aging out.
    assert!(after >= POOL_IDLE, "closed after {after:?}");
    assert!(
        after < POOL_IDLE + Duration::from_secs(3),
        "closed after {after:?}"
    );
}
