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

/// How often a queued request looks for a server with room again: places
/// freed on any core are seen so.
const QUEUE_POLL: Duration = Duration::from_millis(2);

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
        if self.until.is_some_and(|until| Instant::now() >= until) {
            warn_refused(service, Refused::TimedOut);
            return Err(Refused::TimedOut);
        }
        crate::net::sleep(QUEUE_POLL).await;
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
