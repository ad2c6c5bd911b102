//! Content rules match the normalised path, and the server is sent it: the
//! spellings a server would serve as a path a rule keeps on one pool reach that
//! pool, and no other.

mod common;

use common::*;
use tcpvs::table::Settings;

/// A proxy that sends `^/echo/secret` to "A" and everything else to "B".
fn secret_on_a() -> (TestServer, TestServer, Proxy) {
    secret_on_a_with(Settings::default())
}

fn secret_on_a_with(settings: Settings) -> (TestServer, TestServer, Proxy) {
    let (a, b) = (TestServer::named("A"), TestServer::named("B"));
    let rules: &[(&str, &[_])] = &[("^/echo/secret", &[a.addr]), ("^/", &[b.addr])];
    let servers = [(a.addr, 1), (b.addr, 1)];
    let proxy = start_proxy(service(&servers, rules), settings);
    (a, b, proxy)
}

#[test]
fn with_merge_slashes_off_empty_segments_are_kept_and_routed_as_such() {
    let settings = Settings {
        merge_slashes: false,
        ..Settings::default()
    };
    let (a, b, proxy) = secret_on_a_with(settings);
    for (target, pool) in [
        ("//echo/secret/x", "B"),
        ("/echo//secret/x", "B"),
        ("/echo/public/../secret//x", "A"),
        ("/echo/%73ecret/x", "A"),
    ] {
        assert_eq!(get(proxy.addr(), target).text(), pool, "{target}");
    }
    assert_eq!(
        b.heads(),
        [
            "GET //echo/secret/x HTTP/1.1",
            "GET /echo//secret/x HTTP/1.1"
        ]
    );
    let to_a: Vec<String> = a
        .requests()
        .iter()
        .map(|r| r.request_line().to_owned())
        .collect();
    assert_eq!(
        to_a,
        [
            "GET /echo/secret//x HTTP/1.1",
            "GET /echo/secret/x HTTP/1.1"
        ]
    );
}

#[test]
fn spellings_of_a_ruled_path_reach_its_pool_as_the_normal_path() {
    let (a, b, proxy) = secret_on_a();
    let evasions = [
        ("/echo/public/../secret/x", "/echo/secret/x"),
        ("//echo/secret/x", "/echo/secret/x"),
        ("/echo/%73ecret/x", "/echo/secret/x"),
        ("/echo/./secret/x", "/echo/secret/x"),
        ("/echo/%2e%2e/echo/secret/x", "/echo/secret/x"),
        ("/echo/x/%2E%2e/secret/y", "/echo/secret/y"),
        ("/./echo/secret", "/echo/secret"),
        ("/../echo//secret/x?q=/../p", "/echo/secret/x?q=/../p"),
    ];
    for (target, _) in evasions {
        let response = get(proxy.addr(), target);
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.text(), "A", "{target} went to the other pool");
    }
    assert!(b.requests().is_empty(), "B got {:?}", b.heads());
    let received: Vec<String> = a
        .requests()
        .iter()
        .map(|r| r.request_line().to_owned())
        .collect();
    let expected: Vec<String> = evasions
        .iter()
        .map(|(_, normal)| format!("GET {normal} HTTP/1.1"))
        .collect();
    assert_eq!(received, expected);
}

#[test]
fn an_encoded_slash_is_kept_and_does_not_match() {
    let (a, b, proxy) = secret_on_a();
    let response = get(proxy.addr(), "/echo/%2fsecret");
    assert_eq!(response.text(), "B");
    assert!(a.requests().is_empty());
    assert_eq!(b.heads(), ["GET /echo/%2Fsecret HTTP/1.1"]);
}

#[test]
fn an_invalid_escape_in_the_path_is_refused() {
    let (a, b, proxy) = secret_on_a();
    assert_eq!(get(proxy.addr(), "/echo/%zzsecret").status, 400);
    assert!(a.heads().is_empty() && b.heads().is_empty());
}
