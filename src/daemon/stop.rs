//! A graceful stop (nginx's QUIT, HAProxy's soft-stop): stop accepting, close
//! the idle keep-alive clients, let requests and RTSP sessions in flight
//! finish within the drain time, then close what is left.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::signals::Signal;
use crate::worker::Workers;

/// How often the open client connections are counted while draining.
const POLL: Duration = Duration::from_millis(20);
/// How long the workers may take to close what is left once cut.
const CUT_GRACE: Duration = Duration::from_secs(1);

/// What the listening sockets become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sockets {
    /// Shut down: new connections are refused.
    Close,
    /// Handed to the new tcpvsd of an upgrade: left open, only this
    /// process stops accepting on them.
    HandedOver,
}

/// Stops `workers` gracefully within `drain`; a second stop signal from
/// `signals` ends the wait at once.
pub fn graceful(workers: &Workers, signals: &Receiver<Signal>, drain: Duration, sockets: Sockets) {
    match sockets {
        Sockets::Close => workers.drain(),
        Sockets::HandedOver => workers.release(),
    }
    let started = Instant::now();
    let Err(why) = wait_until_closed(workers, Some(signals), started + drain, sockets) else {
        tracing::info!(took = ?started.elapsed(), "drained: every client connection closed");
        return;
    };
    let left = workers.open_clients();
    workers.cut();
    // The count falls as each worker's runtime drops its connections.
    let _ = wait_until_closed(workers, None, Instant::now() + CUT_GRACE, Sockets::Close);
    tracing::warn!(
        cut = left,
        took = ?started.elapsed(),
        "{why}: the client connections still open were closed"
    );
}

/// Why a drain ended before every client connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Cut {
    #[error("drain time passed")]
    TimeUp,
    #[error("second stop signal")]
    SecondSignal,
}

/// Waits until the workers have no client connection open, `until` passes,
/// or a stop signal comes from `signals`.
fn wait_until_closed(
    workers: &Workers,
    mut signals: Option<&Receiver<Signal>>,
    until: Instant,
    sockets: Sockets,
) -> Result<(), Cut> {
    loop {
        // An accept still posted may take one more connection: it is served.
        // Posted accepts first: once they read 0, what they took is open.
        let posted = workers.accepting();
        let open = workers.open_clients();
        if open == 0 && posted == 0 {
            return Ok(());
        }
        if open == 0 && sockets == Sockets::HandedOver {
            // Idle: no client will complete this process's posted accepts
            // on the sockets the new tcpvsd serves.
            workers.complete_posted_accepts();
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Cut::TimeUp);
        }
        let pause = left.min(POLL);
        // The signal channel doubles as the pause between counts.
        match signals.map(|s| s.recv_timeout(pause)) {
            Some(Ok(Signal::Stop)) => return Err(Cut::SecondSignal),
            Some(Ok(other)) => tracing::info!("{other:?} ignored: stopping"),
            Some(Err(RecvTimeoutError::Timeout)) => {}
            Some(Err(RecvTimeoutError::Disconnected)) => {
                signals = None;
                std::thread::sleep(pause);
            }
            None => std::thread::sleep(pause),
        }
    }
}
