//! Request smuggling, response splitting and desync vectors against a running
//! tcpvsd (PROTOCOL-RULES.md, HTTP parts). For every vector we check what the
//! client got (status, closed or not) and, above all, what the real server
//! actually received: nothing, or exactly the canonical requests we meant to
//! forward, never a second request hidden in the first one's bytes.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tcpvs::table::Settings;

/// Short timeouts: a vector that makes the proxy wait must fail fast.
fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.timeouts.head = Duration::from_millis(400);
    settings.timeouts.server = Duration::from_secs(2);
    settings.timeouts.client = Duration::from_secs(2);
    settings.access_log = false;
    settings
}

/// A server that answers every request with 200 and its request line as body.
fn echo_server() -> TestServer {
    TestServer::start(|req| Reply::Send(ok(req.request_line())))
}

fn proxy_to(addr: SocketAddr) -> Proxy {
    start_proxy(service(&[(addr, 1)], &[]), settings())
}

/// The body a server received, decoded (the proxy always re-frames).
fn decoded_body(req: &Received) -> Vec<u8> {
    if req.header("transfer-encoding").is_empty() {
        req.raw_body.clone()
    } else {
        dechunk(&req.raw_body)
    }
}

/// Every request a server gets from us must have exactly one reading: one Host,
/// one framing spelled canonically, no look-alike framing fields, token names.
fn assert_canonical(req: &Received, what: &str) {
    let line = req.request_line();
    assert!(line.ends_with(" HTTP/1.1"), "{what}: {line}");
    let target = line.split(' ').nth(1).unwrap_or("");
    assert!(
        target.starts_with('/') || target == "*",
        "{what}: not origin-form: {line}"
    );
    assert_eq!(req.header("host").len(), 1, "{what}: {}", req.head);
    for field in req.head.lines().skip(1).filter(|l| !l.is_empty()) {
        let (name, _) = field.split_once(':').expect("name: value");
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
            "{what}: bad field name in {field:?}"
        );
        let lower = name.to_ascii_lowercase();
        assert!(
            lower != "transfer_encoding" && lower != "content_length",
            "{what}: look-alike framing field forwarded: {field:?}"
        );
    }
    let te = req.header("transfer-encoding");
    let cl = req.header("content-length");
    // One reading: a body is framed by exactly one framing field, said once
    // (a bodiless request has none, or one that frames nothing).
    assert!(te.is_empty() || cl.is_empty(), "{what}: both CL and TE");
    let framing_fields = te.len() + cl.len();
    if req.raw_body.is_empty() {
        assert!(framing_fields <= 1, "{what}: {}", req.head);
    } else {
        assert_eq!(framing_fields, 1, "{what}: {}", req.head);
    }
    if let Some(te) = te.first() {
        assert_eq!(te, "chunked", "{what}");
        // dechunk panics on anything but canonical hex sizes and CRLFs.
        let _ = dechunk(&req.raw_body);
        let text = String::from_utf8_lossy(&req.raw_body);
        assert!(!text.contains(';'), "{what}: chunk extension forwarded");
    }
    if let Some(cl) = cl.first() {
        assert_eq!(cl, &req.raw_body.len().to_string(), "{what}");
    }
}

/// How a request's body is framed.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length,
    Chunked,
}

/// The framing a head declares, by its field names alone (a test's own
/// reading: the vectors that get here have at most one framing field kind).
fn framing_of(head: &str) -> Framing {
    let named = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    match (named("transfer-encoding"), named("content-length")) {
        (true, _) => Framing::Chunked,
        (false, true) => Framing::Length,
        (false, false) => Framing::None,
    }
}

/// The first head a client sent in `raw`, after any empty lines before it.
fn first_head(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_start_matches("\r\n");
    text.split("\r\n\r\n").next().unwrap_or("").to_string()
}

/// What a request vector must lead to.
enum Expect {
    /// We answer this status, say `Connection: close`, close, and the server
    /// receives no request at all.
    Refused(u16),
    /// The server receives exactly these requests (request line, decoded
    /// body), each answered 200; `closed`: the client connection ends after.
    Forwarded {
        requests: &'static [(&'static str, &'static [u8])],
        closed: bool,
    },
}

struct Vector {
    what: &'static str,
    raw: Vec<u8>,
    expect: Expect,
}

fn refused(what: &'static str, raw: impl AsRef<[u8]>, status: u16) -> Vector {
    Vector {
        what,
        raw: raw.as_ref().to_vec(),
        expect: Expect::Refused(status),
    }
}

fn forwarded(
    what: &'static str,
    raw: impl AsRef<[u8]>,
    requests: &'static [(&'static str, &'static [u8])],
    closed: bool,
) -> Vector {
    Vector {
        what,
        raw: raw.as_ref().to_vec(),
        expect: Expect::Forwarded { requests, closed },
    }
}

/// A POST with these extra field lines and this body after the head.
fn post(fields: &str, body: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n\r\n{body}").into_bytes()
}

/// What a back-end would read as a second request if it framed the first one
/// differently from us.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

fn run_vectors(vectors: Vec<Vector>) {
    let server = echo_server();
    let proxy = proxy_to(server.addr);
    for vector in &vectors {
        run_vector(proxy.addr(), &server, vector);
    }
    let all = server.requests();
    assert!(
        all.iter().all(|r| !r.request_line().contains("/smuggled")),
        "a smuggled request reached the server: {all:#?}"
    );
}

fn run_vector(proxy: SocketAddr, server: &TestServer, v: &Vector) {
    let what = v.what;
    let before = server.requests().len();
    let mut client = Client::connect(proxy);
    client.send(&v.raw);
    let expected: &[(&str, &[u8])] = match v.expect {
        Expect::Refused(status) => {
            let response = client
                .try_read_response(false)
                .unwrap_or_else(|e| panic!("{what}: no response: {e}"));
            assert_eq!(response.status, status, "{what}: {}", response.head);
            assert_eq!(response.header("connection"), ["close"], "{what}");
            client.assert_closed(what);
            &[]
        }
        Expect::Forwarded { requests, closed } => {
            for (line, _) in requests {
                let response = client
                    .try_read_response(line.starts_with("HEAD "))
                    .unwrap_or_else(|e| panic!("{what}: no response: {e}"));
                assert_eq!(response.status, 200, "{what}: {}", response.head);
                if !line.starts_with("HEAD ") {
                    assert_eq!(response.text(), *line, "{what}");
                }
            }
            if closed {
                client.assert_closed(what);
            } else {
                // The connection is still in step: a next request gets its own answer.
                client.send(b"GET /probe HTTP/1.1\r\nHost: a\r\n\r\n");
                let probe = client
                    .try_read_response(false)
                    .unwrap_or_else(|e| panic!("{what}: no answer to a next request: {e}"));
                assert_eq!(probe.text(), "GET /probe HTTP/1.1", "{what}: desync");
            }
            requests
        }
    };
    // A fresh connection works, and by its answer the server has logged all
    // that the vector made us send.
    let probe = get(proxy, "/probe");
    assert_eq!(probe.text(), "GET /probe HTTP/1.1", "{what}");
    let seen: Vec<Received> = server
        .requests()
        .split_off(before)
        .into_iter()
        .filter(|r| r.request_line() != "GET /probe HTTP/1.1")
        .collect();
    assert_eq!(
        seen.len(),
        expected.len(),
        "{what}: the server received {seen:#?}"
    );
    // The first request is framed as the client framed it: a length stays
    // a length, chunked stays chunked, and no framing is added.
    if let Some(first) = seen.first() {
        assert_eq!(
            framing_of(&first.head),
            framing_of(&first_head(&v.raw)),
            "{what}: {}",
            first.head
        );
    }
    for (got, (line, body)) in seen.iter().zip(expected) {
        assert_canonical(got, what);
        assert_eq!(got.request_line(), *line, "{what}");
        assert_eq!(
            decoded_body(got),
            *body,
            "{what}: body {:?}",
            String::from_utf8_lossy(&got.raw_body)
        );
    }
}

const ONE_POST: &[(&str, &[u8])] = &[("POST / HTTP/1.1", b"")];
const HELLO_POST: &[(&str, &[u8])] = &[("POST / HTTP/1.1", b"hello")];
const SMUGGLED_IN_GET: &[(&str, &[u8])] = &[("GET / HTTP/1.1", SMUGGLED.as_bytes())];
const SMUGGLED_IN_POST: &[(&str, &[u8])] = &[("POST / HTTP/1.1", SMUGGLED.as_bytes())];

#[test]
fn content_length_and_transfer_encoding_vectors() {
    let smuggle_chunked = format!("0\r\n\r\n{SMUGGLED}");
    let vectors = vec![
        // CL.TE: the front end reads CL, the back end reads TE (or the reverse).
        refused(
            "CL.TE",
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked",
                "0\r\n\r\nG",
            ),
            400,
        ),
        // TE.CL: same pair, the other order.
        refused(
            "TE.CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 3",
                &format!("8\r\nSMUGGLED\r\n0\r\n\r\n{SMUGGLED}"),
            ),
            400,
        ),
        // TE.TE: a TE the back end would not recognise, next to a real one.
        refused(
            "TE.TE with identity",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
                &smuggle_chunked,
            ),
            400,
        ),
        refused(
            "TE.TE with unknown coding",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: x",
                &smuggle_chunked,
            ),
            501,
        ),
        // `chunked` applied twice.
        refused(
            "TE chunked, chunked",
            post("Transfer-Encoding: chunked, chunked", &smuggle_chunked),
            400,
        ),
        refused(
            "TE chunked on two lines",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                &smuggle_chunked,
            ),
            400,
        ),
        // Look-alikes of chunked some parsers match by substring.
        refused(
            "TE xchunked",
            post("Transfer-Encoding: xchunked", &smuggle_chunked),
            501,
        ),
        refused(
            "TE chunked-false",
            post("Transfer-Encoding: chunked-false", &smuggle_chunked),
            501,
        ),
        refused(
            "TE quoted",
            post("Transfer-Encoding: \"chunked\"", &smuggle_chunked),
            400,
        ),
        refused(
            "TE with parameter",
            post("Transfer-Encoding: chunked;q=1", &smuggle_chunked),
            400,
        ),
        refused(
            "TE chunked not last",
            post("Transfer-Encoding: chunked, gzip", &smuggle_chunked),
            400,
        ),
        refused(
            "TE gzip, chunked (we cannot undo gzip)",
            post("Transfer-Encoding: gzip, chunked", &smuggle_chunked),
            400,
        ),
        refused(
            "TE empty list member",
            post("Transfer-Encoding: ,chunked", &smuggle_chunked),
            400,
        ),
        refused(
            "TE empty value",
            post("Transfer-Encoding: ", &smuggle_chunked),
            400,
        ),
        // Whitespace between name and colon: some servers drop the space.
        refused(
            "TE name SP colon",
            post("Transfer-Encoding : chunked", &smuggle_chunked),
            400,
        ),
        refused(
            "TE name HTAB colon",
            post("Transfer-Encoding\t: chunked", &smuggle_chunked),
            400,
        ),
        // Vertical tab / form feed as whitespace.
        refused(
            "TE VT before value",
            post("Transfer-Encoding:\x0bchunked", &smuggle_chunked),
            400,
        ),
        refused(
            "TE FF after value",
            post("Transfer-Encoding: chunked\x0c", &smuggle_chunked),
            400,
        ),
        // obs-fold hides TE from one parser and not another.
        refused(
            "TE obs-fold value",
            post("Transfer-Encoding:\r\n chunked", &smuggle_chunked),
            400,
        ),
        refused(
            "TE as folded continuation",
            post(
                "X-Foo: bar\r\n Transfer-Encoding: chunked",
                &smuggle_chunked,
            ),
            400,
        ),
        refused(
            "TE after bare CR",
            post("X-Foo: bar\rTransfer-Encoding: chunked", &smuggle_chunked),
            400,
        ),
        refused(
            "TE with NUL",
            post("Transfer-Encoding: chunked\x00", &smuggle_chunked),
            400,
        ),
        refused(
            "TE non-ASCII look-alike",
            post("Transfer-Encoding: chunk\u{0131}d", &smuggle_chunked),
            400,
        ),
        // HTTP/1.0 has no chunked: a 1.0 back end would read the body as a request.
        refused(
            "HTTP/1.0 with TE",
            format!(
                "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{smuggle_chunked}"
            ),
            400,
        ),
        // Content-Length spellings that some parsers read as a number.
        refused("CL +5", post("Content-Length: +5", "hello"), 400),
        refused("CL -5", post("Content-Length: -5", "hello"), 400),
        refused("CL 0x5", post("Content-Length: 0x5", "hello"), 400),
        refused("CL 5.0", post("Content-Length: 5.0", "hello"), 400),
        refused("CL 1e1", post("Content-Length: 1e1", "hello"), 400),
        refused("CL inner space", post("Content-Length: 5 0", "hello"), 400),
        refused(
            "CL trailing garbage",
            post("Content-Length: 5x", "hello"),
            400,
        ),
        refused("CL empty", post("Content-Length: ", "hello"), 400),
        refused(
            "CL u64 overflow (wraps to 0 elsewhere)",
            post("Content-Length: 18446744073709551616", SMUGGLED),
            400,
        ),
        refused(
            "CL huge",
            post("Content-Length: 99999999999999999999999999999", SMUGGLED),
            400,
        ),
        refused(
            "CL beyond a signed 64-bit offset (negative to a signed parser)",
            post("Content-Length: 9223372036854775808", SMUGGLED),
            400,
        ),
        refused(
            "CL u64 max",
            post("Content-Length: 18446744073709551615", SMUGGLED),
            400,
        ),
        // Duplicate CL: first-wins vs last-wins.
        refused(
            "CL duplicate lines differ",
            post("Content-Length: 5\r\nContent-Length: 0", "hello"),
            400,
        ),
        refused(
            "CL list differs",
            post("Content-Length: 0, 5", "hello"),
            400,
        ),
        refused(
            "CL list with empty member",
            post("Content-Length: 5,", "hello"),
            400,
        ),
        refused("CL name SP colon", post("Content-Length : 5", "hello"), 400),
        refused("CL obs-fold", post("Content-Length:\r\n 5", "hello"), 400),
        // Legitimate variants: forwarded, canonical, never a second request.
        forwarded(
            "TE with HTAB before value (OWS)",
            post("Transfer-Encoding:\tchunked", "5\r\nhello\r\n0\r\n\r\n"),
            HELLO_POST,
            false,
        ),
        forwarded(
            "TE upper case, no space",
            post("Transfer-Encoding:CHUNKED  ", "5\r\nhello\r\n0\r\n\r\n"),
            HELLO_POST,
            false,
        ),
        forwarded(
            "CL identical duplicates fold into one",
            post("Content-Length: 5\r\nContent-Length: 5, 5", "hello"),
            HELLO_POST,
            false,
        ),
        forwarded(
            "CL leading zeros and OWS",
            post("Content-Length: \t005 ", "hello"),
            HELLO_POST,
            false,
        ),
        forwarded(
            "Transfer_Encoding look-alike is not framing and not forwarded",
            post("Transfer_Encoding: chunked\r\nContent-Length: 5", "hello"),
            HELLO_POST,
            false,
        ),
        forwarded(
            "Content_Length look-alike is not framing and not forwarded",
            post("Content_Length: 5", ""),
            ONE_POST,
            false,
        ),
        forwarded(
            "Connection naming Content-Length cannot strip our framing",
            post(
                "Connection: Content-Length, Transfer-Encoding\r\nContent-Length: 5",
                "hello",
            ),
            HELLO_POST,
            false,
        ),
        forwarded(
            "GET with a body is framed by its CL",
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
            SMUGGLED_IN_GET,
            false,
        ),
        forwarded(
            "CL 0 then a pipelined request is two requests, both ours",
            post("Content-Length: 0", "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[("POST / HTTP/1.1", b""), ("GET /2 HTTP/1.1", b"")],
            false,
        ),
        forwarded(
            "no framing: the bytes after the head are the next request",
            "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
            &[("GET / HTTP/1.1", b""), ("GET /2 HTTP/1.1", b"")],
            false,
        ),
    ];
    run_vectors(vectors);
}

#[test]
fn request_line_and_field_vectors() {
    let vectors = vec![
        // HTTP/0.9 simple request: no version, no head.
        refused("HTTP/0.9 request line", "GET /\r\n\r\n", 400),
        refused("HTTP/0.9 version", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
        refused("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        // RFC 9112 2.3: a higher minor version is served as the highest we speak.
        forwarded(
            "HTTP/1.2 as 1.1",
            "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
            &[("GET / HTTP/1.1", b"")],
            false,
        ),
        refused("HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
        refused(
            "lower-case version",
            "GET / http/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "version with trailing space",
            "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "two spaces after method",
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "HTAB as separator",
            "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        // A space in the target: `GET /a HTTP/1.1 x` read as a target with spaces.
        refused(
            "space inside target",
            "GET /a HTTP/1.1/b HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "fragment in target",
            "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "non-ASCII target",
            "GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "NUL in target",
            "GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "method with delimiter",
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "CONNECT tunnel",
            "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            501,
        ),
        refused(
            "asterisk with GET",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        refused(
            "authority-form with GET",
            "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        // Bare LF and bare CR line endings split lines differently per parser.
        refused("bare LF head", "GET / HTTP/1.1\nHost: a\n\n", 400),
        refused(
            "bare LF in one field",
            "GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",
            400,
        ),
        refused("bare LF final line", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
        refused(
            "bare CR in value",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r2\r\n\r\n",
            400,
        ),
        refused(
            "NUL in value",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\x002\r\n\r\n",
            400,
        ),
        refused(
            "DEL in value",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\x7f\r\n\r\n",
            400,
        ),
        refused(
            "obs-fold",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
            400,
        ),
        refused(
            "whitespace before first field",
            "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            400,
        ),
        refused(
            "space in field name",
            "GET / HTTP/1.1\r\nHost: a\r\nFoo Bar: x\r\n\r\n",
            400,
        ),
        refused(
            "non-token field name",
            "GET / HTTP/1.1\r\nHost: a\r\nFoo[: x\r\n\r\n",
            400,
        ),
        refused(
            "empty field name",
            "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
            400,
        ),
        refused(
            "field without colon",
            "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n",
            400,
        ),
        refused(
            "non-ASCII field name",
            "GET / HTTP/1.1\r\nHost: a\r\nX\u{e9}: 1\r\n\r\n",
            400,
        ),
        // Host confusion: routing and the back end must agree on one host.
        refused("no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400),
        refused(
            "two Host lines",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
        refused("Host list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
        refused(
            "Host with userinfo",
            "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
            400,
        ),
        refused("Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        refused("empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400),
        refused("Host SP colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        refused(
            "absolute URI with userinfo",
            "GET http://a@b/ HTTP/1.1\r\nHost: b\r\n\r\n",
            400,
        ),
        refused(
            "absolute URI with empty host",
            "GET http:///x HTTP/1.1\r\nHost: b\r\n\r\n",
            400,
        ),
        refused(
            "absolute URI, other scheme",
            "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
        forwarded(
            "absolute URI with conflicting Host: the URI wins, once",
            "GET http://good.example/p HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            &[("GET /p HTTP/1.1", b"")],
            false,
        ),
        forwarded(
            "lower-case method is another method, not GET",
            "get / HTTP/1.1\r\nHost: a\r\n\r\n",
            &[("get / HTTP/1.1", b"")],
            false,
        ),
        forwarded(
            "leading empty lines before a request are skipped",
            "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            &[("GET / HTTP/1.1", b"")],
            false,
        ),
        forwarded(
            "HTTP/1.0 without Host gets one",
            "GET / HTTP/1.0\r\n\r\n",
            &[("GET / HTTP/1.1", b"")],
            true,
        ),
    ];
    run_vectors(vectors);
}

#[test]
fn chunked_body_vectors() {
    let chunked = |body: &str| post("Transfer-Encoding: chunked", body);
    let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(5000));
    let vectors = vec![
        // The chunk size is where TE.TE variants go once the header is agreed on.
        refused("chunk size 0x prefix", chunked("0x5\r\nhello\r\n0\r\n\r\n"), 400),
        refused("chunk size leading space", chunked(" 5\r\nhello\r\n0\r\n\r\n"), 400),
        refused("chunk size trailing space", chunked("5 \r\nhello\r\n0\r\n\r\n"), 400),
        refused("chunk size HTAB before ext", chunked("5\t;a\r\nhello\r\n0\r\n\r\n"), 400),
        refused("chunk size negative", chunked("-5\r\nhello\r\n0\r\n\r\n"), 400),
        refused("chunk size empty line", chunked("\r\nhello\r\n0\r\n\r\n"), 400),
        refused("chunk size not hex", chunked("g\r\nhello\r\n0\r\n\r\n"), 400),
        refused(
            "chunk size 17 hex digits (truncated to 0 by some)",
            chunked(&format!("10000000000000005\r\nhello\r\n0\r\n\r\n{SMUGGLED}")),
            400,
        ),
        refused(
            "chunk size overflow with leading zeros",
            chunked("00000000000000000005\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        refused(
            "chunk size beyond a signed 64-bit offset (negative to a signed parser)",
            chunked(&format!("8000000000000005\r\nhello\r\n0\r\n\r\n{SMUGGLED}")),
            400,
        ),
        refused("chunk line bare LF", chunked("5\nhello\r\n0\r\n\r\n"), 400),
        refused("chunk line bare CR", chunked("5\rhello\r\n0\r\n\r\n"), 400),
        refused("bare LF in chunk extension", chunked("5;a\nb\r\nhello\r\n0\r\n\r\n"), 400),
        refused("NUL in chunk extension", chunked("5;a\x00\r\nhello\r\n0\r\n\r\n"), 400),
        refused("chunk extension too long", chunked(&long_extension), 400),
        // The CRLF after chunk data: a parser that skips 2 bytes blindly desyncs.
        refused(
            "chunk data longer than its size",
            chunked(&format!("5\r\nhelloXX\r\n0\r\n\r\n{SMUGGLED}")),
            400,
        ),
        refused("bare LF after chunk data", chunked("5\r\nhello\n0\r\n\r\n"), 400),
        refused("last chunk bare LF", chunked("5\r\nhello\r\n0\n\r\n"), 400),
        refused("trailer bare LF", chunked("0\r\nX: 1\n\r\n"), 400),
        refused("trailer obs-fold", chunked("0\r\nX: 1\r\n 2\r\n\r\n"), 400),
        refused("trailer name SP colon", chunked("0\r\nX : 1\r\n\r\n"), 400),
        refused(
            "trailer section too large",
            chunked(&format!("0\r\nX: {}\r\n\r\n", "a".repeat(17 * 1024))),
            400,
        ),
        forwarded(
            "extensions, upper-case hex and leading zeros become canonical",
            chunked("5;a=b;c=\"d\"\r\nhello\r\n0000A\r\n0123456789\r\n0;x\r\n\r\n"),
            &[("POST / HTTP/1.1", b"hello0123456789")],
            false,
        ),
        forwarded(
            "framing fields in trailers are dropped, never applied",
            chunked(
                "5\r\nhello\r\n0\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\nHost: evil\r\nX-T: 1\r\n\r\n",
            ),
            HELLO_POST,
            false,
        ),
        forwarded(
            "TE.CL payload inside a valid chunked body stays body",
            chunked(&format!(
                "{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
                SMUGGLED.len()
            )),
            SMUGGLED_IN_POST,
            false,
        ),
        forwarded(
            "empty chunked body",
            chunked("0\r\n\r\n"),
            ONE_POST,
            false,
        ),
        forwarded(
            "request after a chunked body is the next request",
            chunked("5\r\nhello\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
            &[("POST / HTTP/1.1", b"hello"), ("GET /2 HTTP/1.1", b"")],
            false,
        ),
    ];
    run_vectors(vectors);
    // Trailers that survive are still trailers, never framing.
    let server = echo_server();
    let proxy = proxy_to(server.addr);
    let mut client = Client::connect(proxy.addr());
    client.send(&chunked(
        "5\r\nhello\r\n0\r\nContent-Length: 50\r\nTransfer_Encoding: x\r\nX-T: 1\r\n\r\n",
    ));
    assert_eq!(client.read_response(false).status, 200);
    let raw = String::from_utf8(server.requests()[0].raw_body.clone()).unwrap();
    assert_eq!(raw, "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n");
}

#[test]
fn pipelining_and_errors_close_the_connection() {
    let vectors = vec![
        // Bytes after `Connection: close` are never a request.
        forwarded(
            "pipelined request after Connection: close",
            format!("GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n{SMUGGLED}"),
            &[("GET /1 HTTP/1.1", b"")],
            true,
        ),
        forwarded(
            "pipelined after close with a body",
            format!(
                "POST / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\nContent-Length: 5\r\n\r\nhello{SMUGGLED}"
            ),
            HELLO_POST,
            true,
        ),
        forwarded(
            "HTTP/1.0 without keep-alive closes",
            format!("GET / HTTP/1.0\r\n\r\n{SMUGGLED}"),
            &[("GET / HTTP/1.1", b"")],
            true,
        ),
        // After an error, the rest of the stream cannot be trusted.
        refused(
            "good request after a bad one",
            format!("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n{SMUGGLED}"),
            400,
        ),
        refused(
            "bad chunk then a request",
            post(
                "Transfer-Encoding: chunked",
                &format!("5\r\nhello\r\nzz\r\n{SMUGGLED}"),
            ),
            400,
        ),
    ];
    run_vectors(vectors);
}

#[test]
fn head_size_count_and_deadline_limits() {
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(17 * 1024));
    let long_field = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let endless = "X-Pad: aaaaaaaa\r\n".repeat(2000);
    let vectors = vec![
        refused("absurdly long request line", long_line, 414),
        refused("absurdly long field", long_field, 431),
        refused("too many small fields", many, 431),
        refused(
            "head that never ends",
            format!("GET / HTTP/1.1\r\nHost: a\r\n{endless}"),
            431,
        ),
    ];
    run_vectors(vectors);

    let server = echo_server();
    let proxy = proxy_to(server.addr);
    // Slow-loris: an incomplete head gets 408 at the deadline, then close.
    let started = Instant::now();
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n");
    let response = client.read_response(false);
    assert_eq!(response.status, 408);
    client.assert_closed("408 to an incomplete head");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Trickling bytes does not extend the deadline: the 408 comes while the
    // client still trickles (for up to 4 s, a byte every 40 ms).
    let mut client = Client::connect(proxy.addr());
    let head = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "a".repeat(200));
    let started = Instant::now();
    let trickler = client.trickle(
        head.as_bytes(),
        Duration::from_millis(40),
        Duration::from_secs(4),
    );
    let response = client.try_read_response(false).expect("a 408");
    let answered = started.elapsed();
    assert_eq!(response.status, 408);
    assert!(
        answered < Duration::from_secs(2),
        "408 after {answered:?}, not at the deadline"
    );
    client.assert_closed("408 to a trickled head");
    trickler.join().unwrap();
    // A connection that never sends a byte is closed without an answer.
    let mut silent = Client::connect(proxy.addr());
    silent.assert_closed("a client that never sends a byte");
    assert!(server.requests().is_empty());
}

/// What a server of `answer_head_then_record` got after the head.
struct Recorded {
    bytes: Arc<Mutex<Vec<u8>>>,
    /// Set when the server stopped recording.
    done: Arc<AtomicBool>,
}

impl Recorded {
    /// Every byte that followed the head, once the server stopped recording.
    fn all(&self) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.done.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the server never stopped recording"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.bytes.lock().unwrap().clone()
    }
}

/// A one-connection server that answers the first head with `reply` without
/// reading any body, then records every byte that follows until the proxy
/// closes (or 2 s pass).
fn answer_head_then_record(reply: &'static [u8]) -> (SocketAddr, Recorded) {
    let after = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let (log, finished) = (after.clone(), done.clone());
    let addr = one_shot_server(move |_head, mut reader, mut writer| {
        writer.write_all(reply).unwrap();
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            log.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        finished.store(true, Ordering::SeqCst);
    });
    (addr, Recorded { bytes: after, done })
}

#[test]
fn expect_and_upgrade_vectors() {
    // Expect: 100-continue answered early with a final status: the body the
    // client then sends is not a request, on either side. (A body this small
    // is read by the proxy before connecting unless buffering is off: then
    // the proxy answers the expectation itself, see tests/bodies.rs.)
    let (addr, after) =
        answer_head_then_record(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n");
    let mut streaming = settings();
    streaming.limits.body_buffer = 0;
    let proxy = start_proxy(service(&[(addr, 1)], &[]), streaming);
    let mut client = Client::connect(proxy.addr());
    client.send(
        format!(
            "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            SMUGGLED.len()
        )
        .as_bytes(),
    );
    let response = client.read_response(false);
    assert_eq!(response.status, 417);
    assert_eq!(response.header("connection"), ["close"]);
    let _ = client.try_send(SMUGGLED.as_bytes());
    client.assert_closed("417 to Expect: 100-continue");
    assert!(
        !String::from_utf8_lossy(&after.all()).contains("HTTP/1.1"),
        "bytes after an early answer reached the server as a request"
    );

    // Expect on HTTP/1.0 is not ours to honour: no 1xx may reach a 1.0 client.
    let server = TestServer::start(|_| {
        let mut out = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        out.extend_from_slice(&ok("done"));
        Reply::Send(out)
    });
    let proxy = proxy_to(server.addr);
    let mut client = Client::connect(proxy.addr());
    let response =
        client.exchange("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!((response.status, response.text().as_str()), (200, "done"));

    // h2c smuggling: an Upgrade the proxy does not honour must not become a
    // tunnel even if the server says 101.
    let server = TestServer::start(|_| {
        Reply::Send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
                .to_vec(),
        )
    });
    let proxy = proxy_to(server.addr);
    let mut client = Client::connect(proxy.addr());
    client.send(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    let response = client.read_response(false);
    assert_eq!(response.status, 502);
    let _ = client.try_send(SMUGGLED.as_bytes());
    client.assert_closed("101 to an h2c upgrade");
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].header("upgrade").is_empty(), "{}", seen[0].head);
    assert!(
        seen[0].header("http2-settings").is_empty(),
        "{}",
        seen[0].head
    );

    // A 101 to a request that asked for no upgrade: 502, no tunnel.
    let proxy = proxy_to(server.addr);
    let mut client = Client::connect(proxy.addr());
    client.send(format!("GET / HTTP/1.1\r\nHost: a\r\n\r\n{SMUGGLED}").as_bytes());
    assert_eq!(client.read_response(false).status, 502);
    client.assert_closed("101 to a request that asked no upgrade");
    assert!(server
        .requests()
        .iter()
        .all(|r| !r.head.contains("smuggled")));

    // A refused WebSocket upgrade (426) leaves plain HTTP: the next bytes are
    // parsed by us as a request, not tunnelled.
    let server = TestServer::start(|req| {
        if req.header("upgrade").is_empty() {
            Reply::Send(ok(req.request_line()))
        } else {
            Reply::Send(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n".to_vec())
        }
    });
    let proxy = proxy_to(server.addr);
    let mut client = Client::connect(proxy.addr());
    client.send(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 1337\r\n\r\n\
          GET /next HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    );
    assert_eq!(client.read_response(false).status, 426);
    // The second request is ours to judge (two Host lines): refused.
    assert_eq!(client.read_response(false).status, 400);
    client.assert_closed("400 after a refused upgrade");
    assert_eq!(server.requests().len(), 1);
}

/// A scripted real server: for each request (read by the harness's own parser)
/// the script says what to write, with pauses, and whether to close.
enum Step {
    Write(&'static [u8]),
    Sleep(u64),
    Close,
    /// Counts a script done (its late bytes written): what a test waits for.
    Done,
}

struct ScriptedServer {
    addr: SocketAddr,
    /// Scripts that reached their `Done`.
    done: Arc<AtomicUsize>,
}

impl ScriptedServer {
    /// Waits until `count` scripts reached their `Done`.
    fn wait_done(&self, count: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.done.load(Ordering::SeqCst) < count {
            assert!(
                Instant::now() < deadline,
                "{what}: late bytes never written"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn scripted_server(script: fn(&Received) -> Vec<Step>) -> ScriptedServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || serve_steps(stream, script, &counter));
        }
    });
    ScriptedServer { addr, done }
}

fn serve_steps(stream: TcpStream, script: fn(&Received) -> Vec<Step>, done: &AtomicUsize) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Ok(Some(request)) = read_request(&mut reader) {
        for step in script(&request) {
            match step {
                Step::Write(bytes) => {
                    if writer.write_all(bytes).is_err() {
                        return;
                    }
                }
                Step::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms)),
                Step::Close => return,
                Step::Done => {
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
}

/// A bad or tricky response for each `/r/<name>`; `/ok` is answered plainly.
/// `EVIL` marks bytes that must never reach a client as a response.
fn backend_script(req: &Received) -> Vec<Step> {
    use Step::*;
    const EVIL: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL";
    let path = req
        .request_line()
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string();
    match path.trim_start_matches("/r/") {
        "ok" | "/ok" => vec![Write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")],
        // Response framing confusion: both CL and TE.
        "cl-te" => vec![Write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
        )],
        "cl-plus" => vec![Write(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok")],
        "cl-hex" => vec![Write(b"HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok")],
        "cl-dup" => vec![Write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 44\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
        )],
        "te-twice" => vec![Write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        )],
        "te-space" => vec![Write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        )],
        "bare-lf" => vec![Write(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")],
        "obs-fold" => vec![Write(b"HTTP/1.1 200 OK\r\nContent-Length:\r\n 2\r\n\r\nok")],
        "nul" => vec![Write(b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok")],
        "status-long" => vec![Write(b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok")],
        "status-nospace" => vec![Write(b"HTTP/1.1 200OK\r\nContent-Length: 2\r\n\r\nok")],
        "http2" => vec![Write(b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok")],
        "icy" => vec![Write(b"ICY 200 OK\r\nContent-Length: 2\r\n\r\nok")],
        "http09" => vec![Write(b"ok, no head at all"), Close],
        "half-head" => vec![Write(b"HTTP/1.1 200 OK\r\nContent-Len"), Close],
        "nothing" => vec![Close],
        "huge-head" => vec![
            Write(b"HTTP/1.1 200 OK\r\n"),
            Write(HUGE_FIELD),
            Write(b"\r\nContent-Length: 2\r\n\r\nok"),
        ],
        // A 1xx never has a body: its Content-Length must not eat the final head.
        "interim-cl" => vec![Write(
            b"HTTP/1.1 100 Continue\r\nContent-Length: 2\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        )],
        // Cut bodies: the client must see a cut, not a complete response.
        "short-body" => vec![Write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), Close],
        "bad-chunk" => vec![Write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0x4\r\nEVIL\r\n0\r\n\r\n",
        )],
        "chunk-no-crlf" => vec![Write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokEVIL\r\n0\r\n\r\n",
        )],
        // Bodies on bodiless responses, in the same write as the head.
        "head-body" => vec![Write(b"HTTP/1.1 200 OK\r\nContent-Length: 44\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")],
        "304-body" => vec![Write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 44\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")],
        "204-body" => vec![Write(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")],
        // A whole extra response after a complete one.
        "extra" => vec![Write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")],
        "chunked-extra" => vec![Write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")],
        // The same bodies, written after a pause: they arrive after the head
        // was parsed, when the connection may already be back in the pool.
        "head-body-late" => vec![
            Write(b"HTTP/1.1 200 OK\r\nContent-Length: 44\r\n\r\n"),
            Sleep(50),
            Write(EVIL),
            Done,
        ],
        "304-body-late" => vec![
            Write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 44\r\n\r\n"),
            Sleep(50),
            Write(EVIL),
            Done,
        ],
        "204-body-late" => vec![
            Write(b"HTTP/1.1 204 No Content\r\nContent-Length: 44\r\n\r\n"),
            Sleep(50),
            Write(EVIL),
            Done,
        ],
        // A whole response after a correctly framed one, after a pause.
        "extra-late" => vec![
            Write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Sleep(50),
            Write(EVIL),
            Done,
        ],
        // Trailers cannot change framing on the way back either.
        "trailers" => vec![Write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nContent-Length: 44\r\nX-T: 1\r\n\r\n",
        )],
        // An HTTP/1.0 server sending chunked: faulty framing, relayed then dropped.
        "http10-chunked" => vec![Write(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        )],
        "hints" => vec![Write(
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        )],
        _ => vec![Write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")],
    }
}

const HUGE_FIELD: &[u8] = &[b'a'; 20 * 1024];

/// How the client must see a backend vector.
#[derive(Clone, Copy, Debug)]
enum Seen {
    /// This status, then (for 502) the connection closed.
    Status(u16),
    /// A response that cannot be read whole: the body was cut.
    Cut,
}

#[test]
fn backend_response_vectors() {
    let server = scripted_server(backend_script);
    let proxy = proxy_to(server.addr);
    let cases: &[(&str, &str, Seen)] = &[
        ("CL and TE in a response", "cl-te", Seen::Status(502)),
        ("CL +2", "cl-plus", Seen::Status(502)),
        ("CL 0x2", "cl-hex", Seen::Status(502)),
        ("two differing CL", "cl-dup", Seen::Status(502)),
        ("TE chunked, chunked", "te-twice", Seen::Status(502)),
        ("TE name SP colon", "te-space", Seen::Status(502)),
        ("bare LF response head", "bare-lf", Seen::Status(502)),
        ("obs-fold in a response", "obs-fold", Seen::Status(502)),
        ("NUL in a response field", "nul", Seen::Status(502)),
        ("four-digit status", "status-long", Seen::Status(502)),
        ("no space after status", "status-nospace", Seen::Status(502)),
        ("HTTP/2.0 status line", "http2", Seen::Status(502)),
        ("ICY status line", "icy", Seen::Status(502)),
        ("HTTP/0.9 response", "http09", Seen::Status(502)),
        (
            "close in the middle of a head",
            "half-head",
            Seen::Status(502),
        ),
        ("close before any byte", "nothing", Seen::Status(502)),
        (
            "response head over the limit",
            "huge-head",
            Seen::Status(502),
        ),
        ("server closes mid-body", "short-body", Seen::Cut),
        ("0x chunk size in a response", "bad-chunk", Seen::Cut),
        ("chunk longer than its size", "chunk-no-crlf", Seen::Cut),
    ];
    for &(what, name, seen) in cases {
        let mut client = Client::connect(proxy.addr());
        client.send(format!("GET /r/{name} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        match seen {
            Seen::Status(status) => {
                let mut response = client
                    .try_read_response(false)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                // Interim responses relayed before the bad part are fine.
                while response.status < 200 {
                    response = client.read_response(false);
                }
                assert_eq!(response.status, status, "{what}: {}", response.head);
                assert_ne!(response.text(), "EVIL", "{what}");
                client.assert_closed(what);
            }
            Seen::Cut => client.assert_cut(false, what),
        }
        // The next client is served by a server connection in step.
        let next = get(proxy.addr(), "/ok");
        assert_eq!((next.status, next.text().as_str()), (200, "ok"), "{what}");
    }
}

#[test]
fn backend_extra_bytes_never_reach_the_next_request() {
    let server = scripted_server(backend_script);
    let proxy = proxy_to(server.addr);
    let cases: &[(&str, &str, u16, &str)] = &[
        ("HEAD response with a body", "HEAD /r/head-body", 200, ""),
        ("304 with a body", "GET /r/304-body", 304, ""),
        ("204 with a body", "GET /r/204-body", 204, ""),
        (
            "a second response after the first",
            "GET /r/extra",
            200,
            "ok",
        ),
        (
            "a response after a chunked one",
            "GET /r/chunked-extra",
            200,
            "ok",
        ),
        (
            "HEAD response with a late body",
            "HEAD /r/head-body-late",
            200,
            "",
        ),
        ("304 with a late body", "GET /r/304-body-late", 304, ""),
        ("204 with a late body", "GET /r/204-body-late", 204, ""),
        ("trailers with CL", "GET /r/trailers", 200, "ok"),
        (
            "HTTP/1.0 server with chunked",
            "GET /r/http10-chunked",
            200,
            "ok",
        ),
        ("interim responses", "GET /r/hints", 200, "ok"),
        ("1xx with a Content-Length", "GET /r/interim-cl", 200, "ok"),
    ];
    let mut late = 0;
    for &(what, request, status, body) in cases {
        let mut client = Client::connect(proxy.addr());
        let is_head = request.starts_with("HEAD ");
        client.send(format!("{request} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let mut response = client.read_response(is_head);
        while response.status < 200 {
            response = client.read_response(is_head);
        }
        assert_eq!(
            (response.status, response.text().as_str()),
            (status, body),
            "{what}: {}",
            response.head
        );
        // Once the late bytes are out, reuse both connections.
        if request.ends_with("-late") {
            late += 1;
            server.wait_done(late, what);
        }
        for round in 0..3 {
            let next = client.exchange("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(
                (next.status, next.text().as_str()),
                (200, "ok"),
                "{what}: round {round} desynchronised"
            );
        }
    }
    // HTTP/1.0 clients get no 1xx at all.
    let mut old = Client::connect(proxy.addr());
    let response = old.exchange("GET /r/hints HTTP/1.0\r\n\r\n");
    assert_eq!((response.status, response.text().as_str()), (200, "ok"));
}

#[test]
fn many_tiny_chunks_in_one_read() {
    // Thousands of one-byte chunks arrive in one read: each becomes three
    // pieces of a vectored write, far past IOV_MAX (1024).
    let tiny: String = "1\r\nx\r\n".repeat(3000) + "0\r\n\r\n";
    let server = TestServer::start(|req| Reply::Send(ok(&decoded_body(req).len().to_string())));
    let proxy = proxy_to(server.addr);
    let mut client = Client::connect(proxy.addr());
    client.send(&post("Transfer-Encoding: chunked", &tiny));
    let response = client.read_response(false);
    assert_eq!((response.status, response.text().as_str()), (200, "3000"));
    // And the same on the way back.
    let addr = one_shot_server(move |_head, _reader, mut writer| {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        out.extend_from_slice("1\r\ny\r\n".repeat(3000).as_bytes());
        out.extend_from_slice(b"0\r\n\r\n");
        writer.write_all(&out).unwrap();
    });
    let proxy = proxy_to(addr);
    let response = Client::connect(proxy.addr()).exchange("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((response.status, response.body.len()), (200, 3000));
}

/// A server that sends a whole extra response some time after a correctly
/// framed one would poison the pooled connection: the next request would read
/// it. The pool peeks (without blocking) at a connection before reusing it and
/// drops one with stray bytes.
#[test]
fn late_extra_response_after_a_framed_one_is_not_served() {
    let server = scripted_server(backend_script);
    let proxy = proxy_to(server.addr);
    let mut client = Client::connect(proxy.addr());
    let first = client.exchange("GET /r/extra-late HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(first.text(), "ok");
    server.wait_done(1, "extra-late");
    let next = client.exchange("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((next.status, next.text().as_str()), (200, "ok"));
}

#[test]
fn answer_to_a_complete_body_keeps_the_connection() {
    // The server answers as soon as the last chunk is in: that answer is not
    // early, and the request pipelined behind the body must be served. A new
    // server connection each time (the server closes) widens the race.
    let server = TestServer::start(|req| {
        let body = req.request_line();
        Reply::SendAndClose(
            format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    });
    let proxy = proxy_to(server.addr);
    for i in 0..40 {
        let mut client = Client::connect(proxy.addr());
        let body = post("Transfer-Encoding: chunked", "5\r\nhello\r\n0\r\n\r\n");
        client.send(&[&body[..], b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"].concat());
        let first = client.read_response(false);
        assert_eq!(first.status, 200, "round {i}");
        assert!(
            first.header("connection").is_empty(),
            "round {i}: {}",
            first.head
        );
        let next = client
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("round {i}: pipelined request lost: {e}"));
        assert_eq!(next.text(), "GET /next HTTP/1.1", "round {i}");
    }
}
