//! The one way the relay reaches a real server, for HTTP and RTSP alike: the
//! content rules and the scheduler pick (among the servers the health checks
//! and the operator let take work), a pooled connection is reused when the
//! caller allows it, else a new one is connected; a server whose connect
//! fails counts a passive failure and the next one is tried, within the
//! service's retry budget ([`Tries`]). When every server a request may go
//! to is at its `max_conns`, it waits in the service's queue.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::net::Instant;

use super::choose_server;
use super::error::ProxyError;
use super::queue::{Queue, Refused};
use crate::net::{Conn, IoFailure};
use crate::pool::Pool;
use crate::schedulers::{any_server_full, Pick, RequestInfo};
use crate::table::{RealServer, Route, ServerAddr, Service, Settings};
use crate::throttled::Throttled;

/// What one request may still try: the servers it failed on already, and
/// how many more servers it may go to (the service's `retries`).
pub(super) struct Tries {
    pub exclude: Vec<ServerAddr>,
    retries_left: u32,
}

impl Tries {
    pub fn new(service: &Service) -> Self {
        Self {
            exclude: Vec::new(),
            retries_left: service.health.retries,
        }
    }

    /// Notes a failed try on `server`; whether another server may be tried
    /// (counted as a retry of the service when it may).
    pub fn failed_on(&mut self, server: ServerAddr, service: &Service) -> bool {
        self.exclude.push(server);
        if self.retries_left == 0 {
            return false;
        }
        self.retries_left -= 1;
        service.state.count_retry();
        true
    }
}

/// Whether a pooled idle connection may serve the request.
pub(super) enum Reuse<'p> {
    /// A new connection only (RTSP, or the retry of a stale pooled one).
    Never,
    /// A pooled connection idle for less than `max_idle`, when there is one.
    Pooled {
        pool: &'p RefCell<Pool>,
        max_idle: Duration,
    },
}

/// A connection to the server the request goes to.
pub(super) struct Connected {
    pub conn: Conn,
    pub pick: Pick,
    /// Taken from the pool: the server may have closed it meanwhile.
    pub reused: bool,
    /// The servers tried before it, whose connects failed.
    pub passed_over: Vec<Failed>,
}

/// A server that could not be connected, and why.
pub(super) struct Failed {
    pub server: ServerAddr,
    pub failure: IoFailure,
}

/// No server could take the request: the failed connects, in order (empty
/// when no server was usable at all), or the queue that refused it.
#[derive(Default)]
pub(super) struct Unreachable {
    pub failed: Vec<Failed>,
    pub queue: Option<Refused>,
}

impl Unreachable {
    /// What the client is told.
    pub fn error(&self) -> ProxyError {
        ProxyError::Unreachable {
            timed_out: self.timed_out(),
        }
    }

    /// Whether the last connect tried ran out of time (the client then gets
    /// 504, else 503).
    pub fn timed_out(&self) -> bool {
        self.failed
            .last()
            .is_some_and(|f| matches!(f.failure, IoFailure::TimedOut))
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(refused) = self.queue {
            return write!(f, "every server at its max_conns: {refused}");
        }
        if self.failed.is_empty() {
            return f.write_str("no usable server");
        }
        f.write_str("every server failed:")?;
        for failed in &self.failed {
            write!(f, " {} ({})", failed.server, failed.failure)?;
        }
        Ok(())
    }
}

/// Connects to the server the rules and scheduler pick for `request`,
/// passing over the servers `tries` failed on and adding to them every
/// server whose connect fails, until one connects, none is left or the
/// retry budget is spent.
pub(super) async fn connect_scheduled(
    service: &Arc<Service>,
    route: &Route<'_, '_>,
    request: &RequestInfo<'_>,
    settings: &Settings,
    tries: &mut Tries,
    reuse: Reuse<'_>,
) -> Result<Connected, Unreachable> {
    let mut unreachable = Unreachable::default();
    let mut queue = Queue::default();
    loop {
        let Some(pick) = choose_server(service, route, request, &tries.exclude) else {
            if !any_server_full(route.candidates, &tries.exclude) {
                break;
            }
            match queue.wait(service, settings).await {
                Ok(()) => continue,
                Err(refused) => {
                    unreachable.queue = Some(refused);
                    break;
                }
            }
        };
        queue.leave();
        if let Reuse::Pooled { pool, max_idle } = reuse {
            let pooled = pool.borrow_mut().take(pick.server.addr, max_idle);
            if let Some(pooled) = pooled {
                pick.server.state.count_request();
                return Ok(Connected {
                    conn: pooled.conn,
                    pick,
                    reused: true,
                    passed_over: unreachable.failed,
                });
            }
        }
        match connect(service, &pick.server, settings).await {
            Ok(conn) => {
                return Ok(Connected {
                    conn,
                    pick,
                    reused: false,
                    passed_over: unreachable.failed,
                })
            }
            Err(failed) => {
                let local = failed.failure.is_local();
                let another = !local && tries.failed_on(failed.server, service);
                unreachable.failed.push(failed);
                if !another {
                    break;
                }
            }
        }
    }
    Err(unreachable)
}

/// Connects to `server` itself, with no failover: the owner of an RTSP
/// session, which no other server can serve.
pub(super) async fn connect_pinned(
    service: &Service,
    server: &Arc<RealServer>,
    settings: &Settings,
) -> Result<Connected, Unreachable> {
    let pick = Pick::pinned(server.clone());
    match connect(service, server, settings).await {
        Ok(conn) => Ok(Connected {
            conn,
            pick,
            reused: false,
            passed_over: Vec::new(),
        }),
        Err(failed) => Err(Unreachable {
            failed: vec![failed],
            queue: None,
        }),
    }
}

/// One connect within the connect timeout; a failure counts against the
/// server (passively: the checker logs it going down, once).
async fn connect(
    service: &Service,
    server: &RealServer,
    settings: &Settings,
) -> Result<Conn, Failed> {
    let deadline = Instant::now() + settings.timeouts.connect;
    match Conn::connect(server.addr.0, deadline).await {
        Ok(conn) => {
            server.state.count_request();
            Ok(conn)
        }
        Err(failure) if failure.is_local() => {
            // This process ran out (descriptors, buffers, ports): nothing
            // is wrong with the server, and no other would do better.
            static OUT_OF_RESOURCES: Throttled = Throttled::new();
            if let Some(times) = OUT_OF_RESOURCES.occurred() {
                tracing::warn!(times, "connecting to a server: {failure} (a local limit)");
            }
            Err(Failed {
                server: server.addr,
                failure,
            })
        }
        Err(failure) => {
            tracing::debug!(server = %server.addr, "connect failed: {failure}");
            server.state.record_connect_failure(&service.health.passive);
            Err(Failed {
                server: server.addr,
                failure,
            })
        }
    }
}
