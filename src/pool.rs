//! Idle keep-alive connections to real servers, one pool per worker, so a
//! keep-alive client does not cost a backend connect per request.
//!
//! Connections are taken most-recently-used first: the warmest connection is
//! the least likely to have been closed by the server, and the coldest age out.

use std::collections::HashMap;
use std::time::Duration;

use crate::net::Instant;

use crate::net::Conn;
use crate::table::ServerAddr;

/// A connection back from the pool, with how long it sat idle.
pub struct Reused {
    pub conn: Conn,
    pub idle_for: Duration,
}

/// One worker's idle connections, by real server.
#[derive(Default)]
pub struct Pool {
    idle: HashMap<ServerAddr, Vec<(Conn, Instant)>>,
}

impl Pool {
    /// The most recently parked connection to `addr` that has been idle less
    /// than `max_idle` and is still clean (not closed by the server, no stray
    /// bytes); the others are closed on the way.
    pub fn take(&mut self, addr: ServerAddr, max_idle: Duration) -> Option<Reused> {
        let conns = self.idle.get_mut(&addr)?;
        let now = Instant::now();
        while let Some((conn, since)) = conns.pop() {
            let idle_for = now.saturating_duration_since(since);
            if idle_for < max_idle && conn.is_idle_clean() {
                return Some(Reused { conn, idle_for });
            }
        }
        None
    }

    /// Parks `conn` for reuse, unless `addr` already has `limit` idle ones.
    pub fn put(&mut self, addr: ServerAddr, conn: Conn, limit: usize) {
        let conns = self.idle.entry(addr).or_default();
        if conns.len() < limit {
            conns.push((conn, Instant::now()));
        }
    }

    /// Closes connections idle for `max_idle` or longer.
    pub fn sweep(&mut self, max_idle: Duration) {
        let now = Instant::now();
        self.idle.retain(|_, conns| {
            // Oldest first: everything before the first fresh one has expired.
            let fresh = conns
                .iter()
                .position(|(_, since)| now.saturating_duration_since(*since) < max_idle)
                .unwrap_or(conns.len());
            conns.drain(..fresh);
            !conns.is_empty()
        });
    }

    /// Idle connections held, all servers together.
    pub fn len(&self) -> usize {
        self.idle.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
