//! The access log's side of the log: finished lines, already formatted by
//! the relay, queued without waiting, whatever the log level. They go with
//! the daemon's own lines (into the same queue) or to a file of their own,
//! with its own queue and writer thread, reopened on SIGUSR1 like
//! `log_file`. Lines dropped from a file of their own are told in the
//! daemon's log, not in that file: log tools read it line by line.

use std::path::Path;
use std::sync::Arc;

use std::time::SystemTime;

use super::local_time::LocalZone;
use super::queue::{self, Line, LineQueue};
use super::writer::{self, DropNotice, Output, Target};

/// Where the workers put access lines.
pub struct AccessLog {
    queue: LineQueue,
    /// The file of their own, when they have one.
    own: Option<Arc<Output>>,
    /// The zone of the lines' local time.
    zone: LocalZone,
}

impl AccessLog {
    /// Access lines that go into the daemon's log, through its `queue`.
    pub(super) fn with_daemon_log(queue: LineQueue, zone: LocalZone) -> AccessLog {
        AccessLog {
            queue,
            own: None,
            zone,
        }
    }

    /// Access lines written to `path` (opened now, so that a bad path is an
    /// error at start) by a writer thread of their own.
    pub(super) fn to_file(path: &Path, zone: LocalZone) -> std::io::Result<AccessLog> {
        let output = Arc::new(Output::new(Target::File(path.to_path_buf())));
        let (queue, lines) = LineQueue::new(queue::CAPACITY);
        let notice = DropNotice::Report(report_dropped);
        writer::start(lines, output.clone(), queue.counts().clone(), notice)?;
        Ok(AccessLog {
            queue,
            own: Some(output),
            zone,
        })
    }

    /// Seconds east of UTC of the lines' local time at `at`.
    pub fn utc_offset(&self, at: SystemTime) -> i32 {
        self.zone.offset_at(at)
    }

    /// Queues a finished line (newline included); dropped and counted when
    /// the queue is full.
    pub fn offer(&self, line: Line) {
        self.queue.offer(line);
    }

    /// Whether the lines go to a file of their own.
    pub fn has_own_file(&self) -> bool {
        self.own.is_some()
    }

    /// The file of their own, if any.
    pub(super) fn own_output(&self) -> Option<&Output> {
        self.own.as_deref()
    }

    /// The queue the lines go through.
    pub(super) fn queue(&self) -> &LineQueue {
        &self.queue
    }
}

/// Tells the daemon's log that `count` access lines were dropped (called by
/// the access file's writer before its next line).
fn report_dropped(count: u64) {
    tracing::warn!("{count} access log lines dropped: the access log's reader did not keep up");
}
