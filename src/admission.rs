//! Whether a new client connection may be taken, and what it holds while
//! it lives: its slots under the daemon-wide and its service's `max_conns`
//! (taken before the accept is posted, see `worker::accept_loop`), and its
//! place under its address's limits (checked once it is accepted).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::descriptors;
use crate::slots::{Slot, Slots};
use crate::sources::{Refusal, SourceConn};
use crate::table::{Protocol, ServiceId, Table};
use crate::throttled::Throttled;

/// What one client connection holds from before its accept to its end: its
/// place under the daemon's and its service's `max_conns`.
pub struct Admission {
    _daemon: Slot,
    _service: Slot,
}

/// The slots for one more connection of `service`, if both limits allow it
/// (a service deleted meanwhile takes none: its socket is being closed).
/// A limit reached is said once a second; `times` counts the looks that
/// found it so (an accept loop with connections queued looks every few ms).
pub fn admit(table: &Table, service: &ServiceId, conns: &Arc<Slots>) -> Option<Admission> {
    let entry = table.service(service)?;
    let daemon_limit = descriptors::limit(table.settings().max_conns);
    let Some(daemon) = conns.try_take(daemon_limit) else {
        static DAEMON_FULL: Throttled = Throttled::new();
        if let Some(times) = DAEMON_FULL.occurred() {
            tracing::warn!(
                limit = daemon_limit,
                times,
                "max_conns reached: new connections wait in the backlog"
            );
        }
        return None;
    };
    let service_limit = entry.conn_limits.max_conns;
    let Some(service_slot) = entry.state.conns.try_take(service_limit) else {
        static SERVICE_FULL: Throttled = Throttled::new();
        if let Some(times) = SERVICE_FULL.occurred() {
            tracing::warn!(
                %service,
                limit = service_limit,
                times,
                "service max_conns reached: new connections wait in the backlog"
            );
        }
        return None;
    };
    Some(Admission {
        _daemon: daemon,
        _service: service_slot,
    })
}

/// The place of a new connection under its address's limits: its
/// connection counted against `max_conns_per_source`, and for RTSP, whose
/// requests are not counted one by one, a token of its `rate_per_source`.
/// Refused, it is said in the log once a second, with the count and the
/// last address refused.
pub fn admit_source(
    table: &Table,
    service: &ServiceId,
    peer: SocketAddr,
) -> Result<Option<SourceConn>, Refusal> {
    let Some(entry) = table.service(service) else {
        return Ok(None);
    };
    let Some(sources) = &entry.sources else {
        return Ok(None);
    };
    let limits = entry.per_source();
    let admitted = sources.connect(peer.ip(), limits).and_then(|conn| {
        if entry.protocol == Protocol::Rtsp {
            sources.request(peer.ip(), limits)?;
        }
        Ok(conn)
    });
    if let Err(refusal) = &admitted {
        static REFUSED: Throttled = Throttled::new();
        if let Some(times) = REFUSED.occurred() {
            tracing::warn!(
                %service,
                client = %peer.ip(),
                times,
                "connection closed at accept: {refusal}"
            );
        }
    }
    admitted
}
