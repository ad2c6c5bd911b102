//! The workers' side of the log: a formatted line goes into a bounded queue
//! without ever waiting; when the queue is full the line is dropped and
//! counted, so a stalled reader of the log can never stall a worker.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How many lines may wait for the writer: at 100k requests per second a
/// tenth of a second of a slow reader, a few megabytes at most.
pub const CAPACITY: usize = 8192;

/// A finished line, newline included.
pub type Line = Vec<u8>;

/// What happened to the lines, counted since the queue was made.
#[derive(Debug, Default)]
pub struct Counts {
    queued: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
}

impl Counts {
    /// Lines dropped because the queue was full (or its writer gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The writer handed `lines` more to its output.
    pub fn add_written(&self, lines: u64) {
        self.written.fetch_add(lines, Ordering::Release);
    }

    /// Waits until every line queued so far is written, at most `limit`;
    /// whether they all were.
    pub fn wait_written(&self, limit: Duration) -> bool {
        let queued = self.queued.load(Ordering::Acquire);
        let deadline = Instant::now() + limit;
        while self.written.load(Ordering::Acquire) < queued {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }
}

/// The sending end, as tracing's fmt layer writes to it: each event makes a
/// [`QueuedLine`] that is offered to the queue when dropped.
#[derive(Debug, Clone)]
pub struct LineQueue {
    lines: SyncSender<Line>,
    counts: Arc<Counts>,
}

impl LineQueue {
    /// A queue of `capacity` lines and its receiving end, for the writer.
    pub fn new(capacity: usize) -> (LineQueue, Receiver<Line>) {
        let (lines, receiver) = mpsc::sync_channel(capacity);
        let counts = Arc::default();
        (LineQueue { lines, counts }, receiver)
    }

    pub fn counts(&self) -> &Arc<Counts> {
        &self.counts
    }

    /// Queues `line` if there is room; drops and counts it otherwise.
    pub fn offer(&self, line: Line) {
        match self.lines.try_send(line) {
            Ok(()) => self.counts.queued.fetch_add(1, Ordering::Release),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// One event's line as the fmt layer writes it (in one `write_all`, but any
/// number of writes make one line); queued when dropped.
pub struct QueuedLine<'a> {
    queue: &'a LineQueue,
    line: Line,
}

impl io::Write for QueuedLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.queue.offer(std::mem::take(&mut self.line));
        }
    }
}

impl<'a> MakeWriter<'a> for LineQueue {
    type Writer = QueuedLine<'a>;

    fn make_writer(&'a self) -> QueuedLine<'a> {
        QueuedLine {
            queue: self,
            line: Line::new(),
        }
    }
}
