//! Connection limits (issue #17): a daemon-wide and a per-service
//! `max_conns` leave new clients waiting in the kernel's backlog, never
//! closed, and serve them as soon as a client leaves; clients already
//! connected are served throughout.

mod common;

use std::time::Duration;

use common::{service, start_proxy, Client, Ending, TestServer};
use tcpvs::table::Settings;

const GET: &str = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// With two connections allowed, two keep-alive clients are served; a third
/// one's request gets no answer and its connection stays open (waiting in
/// the backlog); once one of the two leaves, the third is answered, and the
/// other is served all along.
fn third_client_waits_for_a_slot(service_max: u32, daemon_max: u32) {
    let backend = TestServer::named("a");
    let mut web = service(&[(backend.addr, 1)], &[]);
    web.conn_limits.max_conns = service_max;
    let settings = Settings {
        max_conns: daemon_max,
        ..Settings::default()
    };
    let proxy = start_proxy(web, settings);
    let mut first = Client::connect(proxy.addr());
    let mut second = Client::connect(proxy.addr());
    assert_eq!(first.exchange(GET).status, 200);
    assert_eq!(second.exchange(GET).status, 200);
    let mut third = Client::connect(proxy.addr());
    third.send(GET.as_bytes());
    assert_eq!(
        third.ending(Duration::from_millis(500)),
        Ending::Open,
        "the third client was served or closed past the limit"
    );
    for _ in 0..3 {
        assert_eq!(second.exchange(GET).status, 200, "a client already served");
    }
    drop(first);
    let answered = std::time::Instant::now();
    assert_eq!(third.read_response(false).status, 200);
    assert!(
        answered.elapsed() < Duration::from_secs(1),
        "served {:?} after a slot freed",
        answered.elapsed()
    );
    assert_eq!(second.exchange(GET).status, 200);
}

#[test]
fn a_service_at_its_max_conns_leaves_new_clients_in_the_backlog() {
    third_client_waits_for_a_slot(2, 0);
}

#[test]
fn the_daemon_wide_max_conns_leaves_new_clients_in_the_backlog() {
    third_client_waits_for_a_slot(0, 2);
}
