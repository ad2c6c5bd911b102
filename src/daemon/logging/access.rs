//! The access log's side of the log: finished lines, already formatted by
//! the relay, queued without waiting, whatever the log level. They go with
//! the daemon's own lines (into the same queue) or to a file of their own,
//! with its own queue and writer thread, reopened on SIGUSR1 like
//! `log_file`.

use std::path::Path;
use std::sync::Arc;

use super::queue::{self, Line, LineQueue};
use super::writer::{self, Output, Target};

/// Where the workers put access lines.
pub struct AccessLog {
    queue: LineQueue,
    /// The file of their own, when they have one.
    own: Option<Arc<Output>>,
}

impl AccessLog {
    /// Access lines that go into the daemon's log, through its `queue`.
    pub(super) fn with_daemon_log(queue: LineQueue) -> AccessLog {
        AccessLog { queue, own: None }
    }

    /// Access lines written to `path` (opened now, so that a bad path is an
    /// error at start) by a writer thread of their own.
    pub(super) fn to_file(path: &Path) -> std::io::Result<AccessLog> {
        let output = Arc::new(Output::new(Target::File(path.to_path_buf())));
        let (queue, lines) = LineQueue::new(queue::CAPACITY);
        writer::start(lines, output.clone(), queue.counts().clone())?;
        Ok(AccessLog {
            queue,
            own: Some(output),
        })
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
