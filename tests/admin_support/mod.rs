//! tcpvsd with its admin listener, as the admin tests start it, and the
//! reading of a /metrics page: shared by tests/admin.rs,
//! tests/admin_stats.rs, tests/access_log.rs and tests/tcpvsadm.rs.

use std::net::SocketAddr;

use crate::common::daemon::{Daemon, Scratch};

/// tcpvsd with `services` (TOML `[[service]]` tables) and its admin
/// listener on a port of its own, on two workers: the daemon and the
/// admin's address.
#[allow(dead_code)] // Not every test crate starts its own.
pub fn start_with_admin(name: &str, services: &str) -> (Daemon, SocketAddr) {
    let config = format!("admin = \"127.0.0.1:0\"\nlog_level = \"warn\"\n{services}");
    let mut daemon = Daemon::with_config_in(Scratch::new(name), &config, &["--workers", "2"]);
    let admin = admin_address(&mut daemon);
    (daemon, admin)
}

/// Where `daemon`'s admin listener is, as its start-up lines say.
pub fn admin_address(daemon: &mut Daemon) -> SocketAddr {
    let line = daemon.stdout_line("admin listener");
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no admin address in {line:?}"))
}

/// The value of the sample `name{labels}` on a /metrics `page`.
#[allow(dead_code)] // Not every test crate reads /metrics.
pub fn sample(page: &str, name_and_labels: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{page}"))
        .parse()
        .unwrap()
}
