//! A graceful stop: stop accepting, let what is in flight finish within the
//! drain time, then close what is left. (To be built: issue #16.)

use std::sync::mpsc::Receiver;
use std::time::Duration;

use super::signals::Signal;
use crate::worker::Workers;

/// Stops `workers` gracefully within `drain`; a second stop signal from
/// `signals` ends the wait at once.
pub fn graceful(workers: &Workers, signals: &Receiver<Signal>, drain: Duration) {
    let _ = (workers, signals, drain);
}
