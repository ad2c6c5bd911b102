//! The HTTP request head parser, as the relay calls it on each read of a
//! client's bytes; and the head we forward, which a backend must read
//! exactly as we did.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use tcpvs::protocols::http::{
    parse_request, write_request_head, ForwardOptions, RequestHead, Version,
};
use tcpvs_fuzz::{check_head_parser, LIMITS, PEER_LIMITS};

const BACKEND_HOST: &str = "backend.test:8080";

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head, _))) = check_head_parser(data, |buf| parse_request(buf, &LIMITS)) {
        // As forwarded with its body (Expect left out, the body read
        // first) and without.
        forwarded_reads_the_same(&head, false);
        forwarded_reads_the_same(&head, true);
    }
});

/// What we send a backend parses, as a whole head, to the same request: a
/// backend that framed or routed it differently would be smuggled to.
fn forwarded_reads_the_same(head: &RequestHead, drop_expect: bool) {
    let opts = ForwardOptions {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        backend_host: BACKEND_HOST,
        forwarded_proto: Some("https"),
        forwarded_host: true,
        drop_expect,
    };
    let mut out = Vec::new();
    write_request_head(head, &opts, &mut out);
    let again = match parse_request(&out, &PEER_LIMITS) {
        Ok(Some((again, n))) if n == out.len() => again,
        other => panic!(
            "forwarded head not read back whole: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    let sent = String::from_utf8_lossy(&out);
    assert_eq!(again.method, head.method, "{sent}");
    assert_eq!(again.target, head.target, "{sent}");
    let host = head.host.as_deref().unwrap_or(BACKEND_HOST);
    assert_eq!(again.host.as_deref(), Some(host), "{sent}");
    assert_eq!(again.framing, head.framing, "{sent}");
    assert_eq!(again.version, Version::Http11, "{sent}");
    // The backend connection is ours to keep, whatever the client asked.
    assert!(again.keep_alive, "{sent}");
    assert_eq!(again.upgrade, head.upgrade, "{sent}");
    if drop_expect {
        assert!(!again.expect_continue, "{sent}");
    } else if head.version == Version::Http11 {
        assert_eq!(again.expect_continue, head.expect_continue, "{sent}");
    }
}
