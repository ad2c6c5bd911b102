//! Content rules on the Host header and other header fields, through a
//! running tcpvsd and its TOML file: one listener fronts two sites by Host,
//! a tenant goes to its own pool by a header, and a request meeting no
//! condition falls to the later rules.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::daemon::Daemon;
use common::{Client, Reply, TestServer};

/// Five pools, each naming itself; `img` and `site-b` by host, `tenant` by
/// a header, `api-b` by host and path, `rest` for the rest (`.*`).
fn two_sites_and_a_tenant() -> (Daemon, [TestServer; 5]) {
    let pools = ["img", "api-b", "site-b", "tenant", "rest"].map(TestServer::named);
    let [img, api_b, site_b, tenant, rest] = &pools;
    let servers: String = pools
        .iter()
        .map(|p| format!("[[service.server]]\naddress = \"{}\"\n", p.addr))
        .collect();
    let config = format!(
        "[[service]]\nident = \"web\"\nlisten = \"127.0.0.1:0\"\n{servers}\
         [[service.rule]]\nhost = \"^img\\\\.example\\\\.com$\"\nservers = [\"{img}\"]\n\
         [[service.rule]]\npattern = \"^/api/\"\nhost = \"^site-b\\\\.\"\nservers = [\"{api_b}\"]\n\
         [[service.rule]]\nhost = \"^site-b\\\\.\"\nservers = [\"{site_b}\"]\n\
         [[service.rule]]\nheader = [\"X-Tenant: ^acme$\", \"X-Plan:\"]\nservers = [\"{tenant}\"]\n\
         [[service.rule]]\npattern = \".*\"\nservers = [\"{rest}\"]\n",
        img = img.addr,
        api_b = api_b.addr,
        site_b = site_b.addr,
        tenant = tenant.addr,
        rest = rest.addr,
    );
    (Daemon::with_config("header-rules", &config), pools)
}

/// The pool that answered `head` (a request without a body).
fn pool_of(client: &mut Client, head: &str) -> String {
    let response = client.exchange(&format!("{head}\r\n"));
    assert_eq!(response.status, 200, "{head}");
    response.text()
}

#[test]
fn requests_go_by_host_then_header_then_target() {
    let (daemon, _pools) = two_sites_and_a_tenant();
    let mut client = Client::connect(daemon.bound("web"));
    let cases = [
        ("GET / HTTP/1.1\r\nHost: img.example.com\r\n", "img"),
        // Host names are case-insensitive; the port is not part of the name.
        ("GET /a HTTP/1.1\r\nHost: IMG.Example.COM:8080\r\n", "img"),
        // The final dot of a fully qualified name changes nothing.
        ("GET /a HTTP/1.1\r\nHost: img.example.com.\r\n", "img"),
        // An absolute-form target names the host (RFC 9112 3.2.2).
        (
            "GET http://img.example.com/x HTTP/1.1\r\nHost: site-b.org\r\n",
            "img",
        ),
        ("GET /api/v1 HTTP/1.1\r\nHost: site-b.org\r\n", "api-b"),
        (
            "GET /index.html HTTP/1.1\r\nHost: site-b.org:80\r\n",
            "site-b",
        ),
        (
            "GET /api/v1 HTTP/1.1\r\nHost: img.example.com.evil\r\n",
            "rest",
        ),
        // No Host (HTTP/1.0): host rules pass it by, later rules take it.
        ("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n", "rest"),
        // Every header condition holds, on any of a field's lines.
        (
            "GET /x HTTP/1.1\r\nHost: t\r\nx-tenant: acme\r\nX-Plan: gold\r\n",
            "tenant",
        ),
        (
            "GET /x HTTP/1.1\r\nHost: t\r\nX-Tenant: zeta\r\nX-Tenant: acme\r\nX-Plan: \r\n",
            "tenant",
        ),
        ("GET /x HTTP/1.1\r\nHost: t\r\nX-Tenant: acme\r\n", "rest"),
        (
            "GET /x HTTP/1.1\r\nHost: t\r\nX-Tenant: acme-2\r\nX-Plan: gold\r\n",
            "rest",
        ),
        // Rules are tried in order: the host rule comes before the tenant's.
        (
            "GET /x HTTP/1.1\r\nHost: site-b.org\r\nX-Tenant: acme\r\nX-Plan: gold\r\n",
            "site-b",
        ),
    ];
    for (head, pool) in cases {
        assert_eq!(pool_of(&mut client, head), pool, "{head}");
    }
    // A value that is not UTF-8 (obs-text, RFC 9110 5.5) is matched as well:
    // `X-Plan:` asks only that the field be there.
    client.send(b"GET /x HTTP/1.1\r\nHost: t\r\nX-Tenant: acme\r\nX-Plan: caf\xe9\r\n\r\n");
    let response = client.read_response(false);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "tenant");
}

/// The verbs name a rule by all its conditions: a rule with the pattern of
/// another but a host of its own is added beside it, routes, is listed with
/// its conditions, and is deleted alone. (It goes before `.*`, KTCPVS's
/// default rule, which stays last.)
#[test]
fn verbs_add_list_and_delete_a_rule_by_its_conditions() {
    let (daemon, pools) = two_sites_and_a_tenant();
    let [img, ..] = &pools;
    let rule = |verb: &str| {
        format!(
            r#"{{"id":1,"verb":"{verb}","ident":"web","pattern":"^/","host":"^new\\.","server":"{}"}}"#,
            img.addr
        )
    };
    assert!(daemon.control(&rule("add-rule")).contains(r#""ok":true"#));
    let mut client = Client::connect(daemon.bound("web"));
    let new_host = "GET /x HTTP/1.1\r\nHost: new.example\r\n";
    assert_eq!(pool_of(&mut client, new_host), "img");
    let listing = daemon.control(r#"{"id":2,"verb":"list"}"#);
    for shown in [
        r#""pattern":"","servers":[""#,
        r#""host":"^img\\.example\\.com$""#,
        r#""headers":["x-plan:","x-tenant: ^acme$"]"#,
        r#""pattern":"^/","servers":[""#,
        r#""host":"^new\\.""#,
        r#""pattern":".*","servers":[""#,
    ] {
        assert!(listing.contains(shown), "{shown} not in {listing}");
    }
    assert!(daemon.control(&rule("del-rule")).contains(r#""ok":true"#));
    assert_eq!(pool_of(&mut client, new_host), "rest");
    let listing = daemon.control(r#"{"id":3,"verb":"list"}"#);
    assert!(!listing.contains("new"), "{listing}");
}

/// An RTSP origin that answers every request 200 with its name in a field.
fn rtsp_origin(name: &'static str) -> TestServer {
    TestServer::start(move |request| {
        let cseq = request.header("cseq").pop().unwrap_or_default();
        let answer = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nX-Origin: {name}\r\n\r\n");
        Reply::Send(answer.into_bytes())
    })
}

/// On an RTSP service, header conditions place the requests the rules
/// place (here OPTIONS on a new connection): a player by its User-Agent.
#[test]
fn rtsp_requests_go_by_header_too() {
    let (vlc, other) = (rtsp_origin("vlc"), rtsp_origin("other"));
    let config = format!(
        "[[service]]\nident = \"tv\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"rtsp\"\n\
         [[service.server]]\naddress = \"{vlc}\"\n\
         [[service.server]]\naddress = \"{other}\"\n\
         [[service.rule]]\nheader = \"User-Agent: ^VLC/\"\nservers = [\"{vlc}\"]\n\
         [[service.rule]]\npattern = \".*\"\nservers = [\"{other}\"]\n",
        vlc = vlc.addr,
        other = other.addr,
    );
    let daemon = Daemon::with_config("header-rules-rtsp", &config);
    let tv = daemon.bound("tv");
    for (agent, origin) in [("VLC/3.0.18 LibVLC/3.0.18", "vlc"), ("mpv 0.35", "other")] {
        let mut stream = TcpStream::connect(tv).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let request = format!(
            "OPTIONS rtsp://{tv}/live/1 RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: {agent}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            let read = reader.read_line(&mut head).expect("an answer");
            assert!(read > 0, "closed after {head:?}");
        }
        assert!(head.starts_with("RTSP/1.0 200"), "{head}");
        assert!(
            head.contains(&format!("X-Origin: {origin}\r\n")),
            "{agent}: {head}"
        );
    }
}
