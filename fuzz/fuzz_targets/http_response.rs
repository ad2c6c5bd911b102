//! The HTTP response head parser, as the relay calls it on each read of a
//! backend's bytes; and the head we write to the client, which must read as
//! the framing we then follow.
//!
//! Input: a first byte for the exchange (bit 0: the request was HEAD, bit 1:
//! the client speaks HTTP/1.0, bit 2: the relay wants to keep the client
//! connection), then the backend's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpvs::protocols::http::{
    parse_response, write_response_head, Framing, Method, ResponseHead, Version,
};
use tcpvs_fuzz::{check_head_parser, LIMITS, PEER_LIMITS};

fuzz_target!(|data: &[u8]| {
    let Some((&exchange, wire)) = data.split_first() else {
        return;
    };
    let method = if exchange & 1 == 1 {
        Method::Head
    } else {
        Method::Get
    };
    let client = if exchange & 2 == 2 {
        Version::Http10
    } else {
        Version::Http11
    };
    let keep_alive = exchange & 4 == 4;
    let parse = |buf: &[u8]| parse_response(buf, &method, &LIMITS);
    if let Ok(Some((head, _))) = check_head_parser(wire, parse) {
        client_reads_our_framing(&head, &method, client, keep_alive);
    }
});

/// The client parses the head we write to the framing we follow, and is not
/// told the connection stays open when we are going to close it.
fn client_reads_our_framing(head: &ResponseHead, method: &Method, client: Version, keep: bool) {
    let mut out = Vec::new();
    let body = write_response_head(head, client, keep, &mut out);
    if out.is_empty() {
        // Only an interim response to an HTTP/1.0 client is dropped.
        assert!(head.is_interim() && client == Version::Http10);
        return;
    }
    let sent = String::from_utf8_lossy(&out);
    let again = match parse_response(&out, method, &PEER_LIMITS) {
        Ok(Some((again, n))) if n == out.len() => again,
        other => panic!("our head not read back whole: {other:?}\n{sent}"),
    };
    assert_eq!(again.version, client, "{sent}");
    assert_eq!(again.status, head.status, "{sent}");
    assert_eq!(again.reason, head.reason, "{sent}");
    assert_eq!(again.framing, body, "{sent}");
    let closing = !keep || body == Framing::UntilClose;
    if closing && !head.is_interim() && head.status != 101 {
        assert!(!again.keep_alive, "we close, the client keeps: {sent}");
    }
}
