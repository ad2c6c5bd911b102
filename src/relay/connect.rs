//! The one way the relay reaches a real server, for HTTP and RTSP alike: the
//! content rules and the scheduler pick, a pooled connection is reused when
//! the caller allows it, else a new one is connected; a server whose connect
//! fails is marked failed and the next one is tried. The coming health
//! checks, passive marks and retry budget belong here.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::net::Instant;

use super::choose_server;
use super::error::ProxyError;
use crate::net::{Conn, IoFailure};
use crate::pool::Pool;
use crate::schedulers::{Pick, RequestInfo};
use crate::table::{RealServer, Route, ServerAddr, Service, Settings};

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
/// when no server was usable at all).
#[derive(Default)]
pub(super) struct Unreachable {
    pub failed: Vec<Failed>,
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
/// passing over the servers in `exclude` and adding to it every server whose
/// connect fails, until one connects or none is left.
pub(super) async fn connect_scheduled(
    service: &Arc<Service>,
    route: &Route<'_, '_>,
    request: &RequestInfo<'_>,
    settings: &Settings,
    exclude: &mut Vec<ServerAddr>,
    reuse: Reuse<'_>,
) -> Result<Connected, Unreachable> {
    let mut unreachable = Unreachable::default();
    while let Some(pick) = choose_server(service, route, request, exclude) {
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
        match connect(&pick.server, settings).await {
            Ok(conn) => {
                return Ok(Connected {
                    conn,
                    pick,
                    reused: false,
                    passed_over: unreachable.failed,
                })
            }
            Err(failed) => {
                exclude.push(failed.server);
                unreachable.failed.push(failed);
            }
        }
    }
    Err(unreachable)
}

/// Connects to `server` itself, with no failover: the owner of an RTSP
/// session, which no other server can serve.
pub(super) async fn connect_pinned(
    server: &Arc<RealServer>,
    settings: &Settings,
) -> Result<Connected, Unreachable> {
    let pick = Pick::pinned(server.clone());
    match connect(server, settings).await {
        Ok(conn) => Ok(Connected {
            conn,
            pick,
            reused: false,
            passed_over: Vec::new(),
        }),
        Err(failed) => Err(Unreachable {
            failed: vec![failed],
        }),
    }
}

/// One connect within the service's connect timeout; the server's failure
/// mark follows the outcome.
async fn connect(server: &RealServer, settings: &Settings) -> Result<Conn, Failed> {
    let deadline = Instant::now() + settings.timeouts.connect;
    match Conn::connect(server.addr.0, deadline).await {
        Ok(conn) => {
            server.state.mark_ok();
            server.state.count_request();
            Ok(conn)
        }
        Err(failure) => {
            tracing::warn!(server = %server.addr, "connect failed: {failure}");
            server.state.mark_failed(settings.timeouts.fail_hold);
            Err(Failed {
                server: server.addr,
                failure,
            })
        }
    }
}
