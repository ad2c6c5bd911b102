//! The queue of a service (HAProxy's backend queue): a request whose every
//! server is at its `max_conns` waits for a place, up to `queue_timeout`,
//! and at most `max_queue` requests wait at once; either way past them the
//! client gets 503.

use std::fmt;
use std::time::Duration;

use crate::net::Instant;
use crate::slots::Slot;
use crate::table::{Service, Settings};
use crate::throttled::Throttled;

/// The longest a queued request waits before it looks for a server with
/// room again, if no wake-up came (one sent just before it began to wait).
const RECHECK: Duration = Duration::from_millis(20);

/// Why the queue refused a request (HAProxy: 503 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_queue` requests wait already.
    Full,
    /// It waited `queue_timeout`.
    TimedOut,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::Full => "the queue is full (max_queue)",
            Refused::TimedOut => "waited in the queue for queue_timeout",
        })
    }
}

/// A request's place in its service's queue, while every server it may go
/// to is at its `max_conns` (HAProxy's backend queue).
#[derive(Default)]
pub struct Queue {
    /// Its place, held while it waits.
    place: Option<Slot>,
    /// When it stops waiting.
    until: Option<Instant>,
}

impl Queue {
    /// Waits a moment for a place on a server to free: `Ok` to look again,
    /// or why the request is refused (the queue is full, or the wait is
    /// over).
    pub async fn wait(&mut self, service: &Service, settings: &Settings) -> Result<(), Refused> {
        let limits = &service.conn_limits;
        if self.place.is_none() {
            let Some(place) = service.state.queued.try_take(limits.max_queue) else {
                warn_refused(service, Refused::Full);
                return Err(Refused::Full);
            };
            self.place = Some(place);
            let timeout = limits.queue_timeout.unwrap_or(settings.timeouts.connect);
            self.until = Some(Instant::now() + timeout);
        }
        let left = self.until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(Instant::now())
        });
        if left.is_zero() {
            warn_refused(service, Refused::TimedOut);
            return Err(Refused::TimedOut);
        }
        // Woken by a request of the service's servers that ends, on any core.
        service.state.freed.wait(left.min(RECHECK)).await;
        Ok(())
    }

    /// Leaves the queue (the request has its server).
    pub fn leave(&mut self) {
        self.place = None;
    }
}

/// Says once a second per kind, with a count, that a service's queue
/// refuses requests.
fn warn_refused(service: &Service, refused: Refused) {
    static FULL: Throttled = Throttled::new();
    static TIMED_OUT: Throttled = Throttled::new();
    let throttled = match refused {
        Refused::Full => &FULL,
        Refused::TimedOut => &TIMED_OUT,
    };
    if let Some(times) = throttled.occurred() {
        tracing::warn!(service = %service.ident, times, "503: {refused}");
    }
}
