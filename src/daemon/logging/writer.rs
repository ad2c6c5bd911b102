//! The log's one writer thread: takes the queued lines and writes them to
//! standard error or the log file. It alone may block on its output (a pipe
//! nobody reads); the workers never wait for it. Before the first line
//! after some were dropped it says how many, as its [`DropNotice`] asks.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use tracing_subscriber::fmt::format;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

use super::queue::{Counts, Line};

/// How many lines the writer takes from the queue between two flushes of
/// its output (under a steady flow it would otherwise never flush).
const BATCH: usize = 256;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stderr,
    /// Opened in append mode, and again on [`Output::reopen`].
    File(PathBuf),
}

type Sink = Box<dyn Write + Send>;

/// The log's target, and the file a reopen opened for the writer to take
/// up at its next line.
#[derive(Debug)]
pub struct Output {
    target: Target,
    reopened: Mutex<Option<File>>,
}

impl Output {
    pub fn new(target: Target) -> Output {
        Output {
            target,
            reopened: Mutex::new(None),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Opens the file again at its path (logrotate moved it away): the
    /// lines from the writer's next one on go there. Opened here, so that
    /// a failure is the caller's to report; standard error has nothing to
    /// reopen.
    pub fn reopen(&self) -> io::Result<()> {
        if let Target::File(path) = &self.target {
            let file = open_append(path)?;
            *self.reopened.lock().unwrap_or_else(PoisonError::into_inner) = Some(file);
        }
        Ok(())
    }

    fn open(&self) -> io::Result<Sink> {
        Ok(match &self.target {
            Target::Stderr => Box::new(io::stderr()),
            Target::File(path) => Box::new(open_append(path)?),
        })
    }

    fn take_reopened(&self) -> Option<File> {
        self.reopened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// How a writer tells of the lines dropped before its next one.
#[derive(Debug, Clone, Copy)]
pub enum DropNotice {
    /// A line of its own in the output, dated and leveled as the daemon's
    /// lines: for the daemon's log, where such notices are read.
    Inline,
    /// The count handed to this function: for an output whose every line
    /// must be of one format (an access log file, read by log tools).
    Report(fn(u64)),
}

/// Opens `output` (so a bad path is an error at start) and starts the
/// writer thread on `lines`.
pub fn start(
    lines: Receiver<Line>,
    output: Arc<Output>,
    counts: Arc<Counts>,
    notice: DropNotice,
) -> io::Result<()> {
    let sink = output.open()?;
    thread::Builder::new()
        .name("tcpvs-log".into())
        .spawn(move || write_lines(&lines, &output, sink, (&counts, notice)))?;
    Ok(())
}

/// Writes each line as it comes, flushing whenever the queue runs empty (or
/// every `BATCH` lines); returns when every sender is gone. A failed write
/// is not reported: the log is the one place it could be reported to.
fn write_lines(
    lines: &Receiver<Line>,
    output: &Output,
    sink: Sink,
    (counts, notice): (&Counts, DropNotice),
) {
    let mut sink = BufWriter::new(sink);
    let mut reported = 0;
    while let Ok(first) = lines.recv() {
        if let Some(file) = output.take_reopened() {
            let _ = sink.flush();
            sink = BufWriter::new(Box::new(file));
        }
        let mut written = 0;
        for line in std::iter::once(first).chain(lines.try_iter().take(BATCH)) {
            let dropped = counts.dropped();
            if dropped > reported {
                match notice {
                    DropNotice::Inline => {
                        let _ = sink.write_all(dropped_line(dropped - reported).as_bytes());
                    }
                    DropNotice::Report(report) => report(dropped - reported),
                }
                reported = dropped;
            }
            let _ = sink.write_all(&line);
            written += 1;
        }
        let _ = sink.flush();
        counts.add_written(written);
    }
}

/// The line that says `count` lines were lost, dated and leveled as the
/// fmt layer's own lines are.
fn dropped_line(count: u64) -> String {
    let mut line = String::new();
    let _ = SystemTime.format_time(&mut format::Writer::new(&mut line));
    line.push_str(&format!(
        "  WARN {}: {count} log lines dropped: the log's reader did not keep up\n",
        module_path!()
    ));
    line
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::super::queue::LineQueue;
    use super::*;

    /// A log file's path in a directory of its own, removed when dropped.
    pub struct TempLog {
        pub path: PathBuf,
    }

    impl TempLog {
        pub fn new(name: &str) -> TempLog {
            let dir = std::env::temp_dir().join(format!("tcpvs-log-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempLog {
                path: dir.join("tcpvsd.log"),
            }
        }
    }

    impl Drop for TempLog {
        fn drop(&mut self) {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn lines_of(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn offer(queue: &LineQueue, text: &str) {
        queue.offer(format!("{text}\n").into_bytes());
    }

    fn written(queue: &LineQueue) {
        assert!(queue.counts().wait_written(Duration::from_secs(5)));
    }

    #[test]
    fn a_full_queue_drops_and_counts_then_says_so_first() {
        let log = TempLog::new("full");
        let path = &log.path;
        let (queue, lines) = LineQueue::new(2);
        for text in ["a", "b", "c", "d", "e"] {
            offer(&queue, text);
        }
        assert_eq!(queue.counts().dropped(), 3);
        // The writer starts only now: space returns.
        let output = Arc::new(Output::new(Target::File(path.to_path_buf())));
        start(lines, output, queue.counts().clone(), DropNotice::Inline).unwrap();
        written(&queue);
        let got = lines_of(path);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got[0].ends_with("WARN tcpvs::daemon::logging::writer: 3 log lines dropped: the log's reader did not keep up"),
            "{got:?}"
        );
        assert_eq!(got[1..], ["a", "b"]);
        // Said once: the next line comes alone.
        offer(&queue, "f");
        written(&queue);
        assert_eq!(lines_of(path)[3..], ["f"]);
    }

    #[test]
    fn a_reporting_writer_keeps_the_notice_out_of_its_output() {
        static REPORTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        fn report(count: u64) {
            REPORTED.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        }
        let log = TempLog::new("report");
        let path = &log.path;
        let (queue, lines) = LineQueue::new(2);
        for text in ["a", "b", "c", "d"] {
            offer(&queue, text);
        }
        let output = Arc::new(Output::new(Target::File(path.to_path_buf())));
        start(
            lines,
            output,
            queue.counts().clone(),
            DropNotice::Report(report),
        )
        .unwrap();
        written(&queue);
        assert_eq!(lines_of(path), ["a", "b"], "the lines alone");
        assert_eq!(REPORTED.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn a_reopen_after_a_rename_writes_to_a_new_file() {
        let log = TempLog::new("reopen");
        let path = &log.path;
        let (queue, lines) = LineQueue::new(16);
        let output = Arc::new(Output::new(Target::File(path.to_path_buf())));
        start(
            lines,
            output.clone(),
            queue.counts().clone(),
            DropNotice::Inline,
        )
        .unwrap();
        offer(&queue, "before");
        written(&queue);
        let rotated = path.with_extension("log.1");
        std::fs::rename(path, &rotated).unwrap();
        output.reopen().unwrap();
        assert!(path.exists(), "reopen creates the file");
        offer(&queue, "after");
        written(&queue);
        assert_eq!(lines_of(&rotated), ["before"]);
        assert_eq!(lines_of(path), ["after"]);
    }

    #[test]
    fn a_log_file_is_appended_to() {
        let log = TempLog::new("append");
        let path = &log.path;
        std::fs::write(path, "earlier\n").unwrap();
        let (queue, lines) = LineQueue::new(16);
        let output = Arc::new(Output::new(Target::File(path.to_path_buf())));
        start(lines, output, queue.counts().clone(), DropNotice::Inline).unwrap();
        offer(&queue, "later");
        written(&queue);
        assert_eq!(lines_of(path), ["earlier", "later"]);
    }
}
