//! Descriptors kept for server connections. A client connection costs one
//! descriptor, and the server connection it makes another: a limit on
//! client connections that ignores the second lets a flood of clients take
//! every descriptor, and then every request of the clients already served
//! fails to connect (HAProxy sizes `maxsock` from `maxconn` the same way).
//!
//! At start the soft RLIMIT_NOFILE is raised to the hard one (as HAProxy
//! does), and the daemon-wide connection limit is derived from it: each
//! client connection keeps one descriptor for its server, and a reserve is
//! left for what is not a client connection (see [`reserve`]).

use std::sync::atomic::{AtomicU32, Ordering};

/// Descriptors always left aside: standard streams, the control socket and
/// its clients, the log file, each worker's ring and event descriptors, the
/// listening sockets (three per service and worker: the worker's, the copy
/// kept to shut it down or hand it over, the one watched for readiness),
/// health checks (one per server checked at a time). An idle tcpvsd with
/// two workers and one service holds 22.
pub const FIXED_RESERVE: u64 = 32;

/// The share of the descriptors left aside besides: pooled idle server
/// connections (a client that leaves may leave its server connection in the
/// pool, which the next client of another server does not use), and
/// listeners and checks of large tables.
pub const RESERVE_SHARE: u64 = 8;

/// Descriptors not available to client and server connections.
pub fn reserve(nofile: u64) -> u64 {
    FIXED_RESERVE + nofile / RESERVE_SHARE
}

/// The most client connections `nofile` descriptors hold, each with a
/// descriptor for its server (at least 1: a daemon must serve someone).
pub fn connection_cap(nofile: u64) -> u32 {
    let usable = nofile.saturating_sub(reserve(nofile)) / 2;
    usable.clamp(1, u64::from(u32::MAX)) as u32
}

/// The daemon-wide limit in effect: the configured one (0: none), never
/// more than `cap` (0: no cap known, as in a process that did not call
/// [`raise_nofile`]); `lowered` when the configuration asked for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub limit: u32,
    pub lowered: bool,
}

pub fn effective(configured: u32, cap: u32) -> Effective {
    match (configured, cap) {
        (0, cap) => Effective {
            limit: cap,
            lowered: false,
        },
        (configured, 0) => Effective {
            limit: configured,
            lowered: false,
        },
        (configured, cap) => Effective {
            limit: configured.min(cap),
            lowered: configured > cap,
        },
    }
}

/// The cap of this process, set once at start (0: none).
static CAP: AtomicU32 = AtomicU32::new(0);

/// The connection cap the descriptors of this process allow (0: unknown).
pub fn cap() -> u32 {
    CAP.load(Ordering::Relaxed)
}

/// The daemon-wide limit in effect for `configured` (the table's
/// `max_conns`).
pub fn limit(configured: u32) -> u32 {
    effective(configured, cap()).limit
}

/// Raises the soft descriptor limit to the hard one, and sets the
/// connection cap from it. Returns the descriptors now allowed.
pub fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: current.maximum,
        maximum: current.maximum,
    };
    let nofile = match setrlimit(Resource::Nofile, raised) {
        Ok(()) => raised.current,
        Err(e) => {
            tracing::warn!("cannot raise the descriptor limit to the hard one: {e}");
            current.current
        }
    };
    // No limit at all (RLIM_INFINITY): the kernel's own bound still holds.
    let nofile = nofile.unwrap_or(1 << 20);
    CAP.store(connection_cap(nofile), Ordering::Relaxed);
    nofile
}

/// Says in the log which limit is in effect for `configured`, and warns
/// when the descriptors cannot hold what the configuration asks.
pub fn log_limit(configured: u32) {
    let effective = effective(configured, cap());
    if effective.lowered {
        tracing::warn!(
            configured,
            limit = effective.limit,
            "max_conns lowered: the descriptor limit holds {} client connections, each \
             with a descriptor for its server (raise the hard RLIMIT_NOFILE, e.g. \
             LimitNOFILE= in the unit file)",
            effective.limit
        );
    } else {
        tracing::info!(
            limit = effective.limit,
            "client connections at most (max_conns)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_keeps_a_descriptor_for_its_server() {
        // 1024: 32 + 128 reserved, 864 left: 432 clients and their servers.
        assert_eq!(connection_cap(1024), 432);
        assert_eq!(connection_cap(1 << 20), 458_736);
        assert_eq!(connection_cap(48), 5);
        assert!(u64::from(connection_cap(48)) * 2 + reserve(48) >= 48);
        assert_eq!(connection_cap(10), 1, "never 0");
        for nofile in [100, 4096, 65_536, 1 << 20] {
            let cap = u64::from(connection_cap(nofile));
            assert!(cap * 2 + reserve(nofile) <= nofile, "{nofile}");
        }
    }

    #[test]
    fn a_configured_limit_beyond_the_descriptors_is_lowered() {
        let lowered = Effective {
            limit: 416,
            lowered: true,
        };
        assert_eq!(effective(5000, 416), lowered);
        assert_eq!(effective(100, 416).limit, 100);
        assert_eq!(effective(0, 416).limit, 416, "0: what the descriptors hold");
        assert_eq!(effective(100, 0).limit, 100, "no cap known");
        assert_eq!(effective(0, 0).limit, 0, "no limit at all");
    }
}
