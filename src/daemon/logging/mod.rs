//! The daemon's log: tracing's fmt lines (events and access lines) go to
//! standard error or a log file through a bounded queue and one writer
//! thread, so that a reader that stalls (a full pipe, a slow journald)
//! costs lines, counted, and never a worker's time. The level can change
//! while it runs; the file is reopened on SIGUSR1. Access lines come
//! formatted and skip the level filter: they go into the same queue, or to
//! an access log file of their own (`access`).

mod access;
mod local_time;
mod queue;
mod writer;

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

pub use access::AccessLog;
use local_time::LocalZone;
use queue::LineQueue;
use writer::{DropNotice, Output, Target};

/// How long the daemon's exit waits for the queued lines to be written (the
/// reader may be stalled for good).
const EXIT_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// The running log: its level, its output and its queue's counts.
pub struct Logging {
    level: reload::Handle<EnvFilter, Registry>,
    output: Arc<Output>,
    queue: LineQueue,
    access: AccessLog,
}

/// The process's log, once [`init`] installed it.
static INSTALLED: OnceLock<Logging> = OnceLock::new();

/// Starts logging at `level` (a level or a tracing filter; `info` if none)
/// to `file` (standard error if none), access lines to `access_file` (with
/// the rest if none), for the rest of the process. Keep what it returns
/// until the daemon exits: dropping it waits (a little) for the queued
/// lines to be written.
pub fn init(
    level: Option<&str>,
    file: Option<&Path>,
    access_file: Option<&Path>,
) -> anyhow::Result<FlushAtExit> {
    let target = file.map_or(Target::Stderr, |path| Target::File(path.to_path_buf()));
    // Read once, here: never by a worker, never per line.
    let (zone, zone_error) = match LocalZone::system() {
        Ok(zone) => (zone, None),
        Err(e) => (LocalZone::utc(), Some(e)),
    };
    let (logging, subscriber) = Logging::start(level, target, access_file, zone)?;
    subscriber.try_init().context("installing the log")?;
    if INSTALLED.set(logging).is_err() {
        anyhow::bail!("the log is installed already");
    }
    if let Some(e) = zone_error {
        tracing::warn!("local time zone unknown ({e}): access lines are in UTC");
    }
    Ok(FlushAtExit)
}

/// The process's log, if [`init`] installed one.
pub fn installed() -> Option<&'static Logging> {
    INSTALLED.get()
}

/// Where access lines go, if [`init`] installed the log.
pub fn access_log() -> Option<&'static AccessLog> {
    installed().map(|logging| &logging.access)
}

/// Lines dropped since the start because the log's queue was full.
pub fn dropped_lines() -> u64 {
    installed().map_or(0, Logging::dropped)
}

/// SIGUSR1: reopens the log file; a failure is logged (to the old file,
/// still open).
pub fn reopen() {
    let Some(logging) = installed() else { return };
    match (logging.reopen(), logging.output.target()) {
        (Ok(()), Target::File(path)) => tracing::info!("SIGUSR1: {} reopened", path.display()),
        (Ok(()), Target::Stderr) => tracing::info!("SIGUSR1: the log is standard error, kept"),
        (Err(e), _) => tracing::error!("SIGUSR1: reopening the log file: {e}"),
    }
    if let Some(access) = logging.access.own_output() {
        match (access.reopen(), access.target()) {
            (Ok(()), target) => tracing::info!("SIGUSR1: access log {target:?} reopened"),
            (Err(e), _) => tracing::error!("SIGUSR1: reopening the access log: {e}"),
        }
    }
}

impl Logging {
    /// The log and the subscriber that writes to it, not yet installed.
    fn start(
        level: Option<&str>,
        target: Target,
        access_file: Option<&Path>,
        zone: LocalZone,
    ) -> anyhow::Result<(Logging, impl tracing::Subscriber + Send + Sync)> {
        let filter = EnvFilter::try_new(level.unwrap_or("info"))
            .with_context(|| format!("bad log level `{}`", level.unwrap_or_default()))?;
        let (filter, level) = reload::Layer::new(filter);
        // Colours only for a person reading standard error.
        let ansi = target == Target::Stderr && io::IsTerminal::is_terminal(&io::stderr());
        let output = Arc::new(Output::new(target));
        let (queue, lines) = LineQueue::new(queue::CAPACITY);
        writer::start(
            lines,
            output.clone(),
            queue.counts().clone(),
            DropNotice::Inline,
        )
        .with_context(|| format!("opening the log: {:?}", output.target()))?;
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(queue.clone())
            .with_ansi(ansi);
        let access = match access_file {
            Some(path) => AccessLog::to_file(path, zone)
                .with_context(|| format!("opening the access log {}", path.display()))?,
            None => AccessLog::with_daemon_log(queue.clone(), zone),
        };
        let subscriber = Registry::default().with(filter).with(fmt);
        let logging = Logging {
            level,
            output,
            queue,
            access,
        };
        Ok((logging, subscriber))
    }

    /// Applies a new level or tracing filter; a bad one is refused and the
    /// current one stays.
    pub fn set_level(&self, filter: &str) -> Result<(), String> {
        let parsed =
            EnvFilter::try_new(filter).map_err(|e| format!("bad log level `{filter}`: {e}"))?;
        self.level
            .reload(parsed)
            .map_err(|e| format!("setting the log level: {e}"))
    }

    /// Opens the log file again (logrotate moved it away); nothing to do
    /// for standard error.
    pub fn reopen(&self) -> io::Result<()> {
        self.output.reopen()
    }

    /// Lines dropped since the start because a queue was full.
    pub fn dropped(&self) -> u64 {
        let own_access = self.access.has_own_file();
        let access = if own_access {
            self.access.queue().counts().dropped()
        } else {
            0
        };
        self.queue.counts().dropped() + access
    }
}

/// Held by the daemon until it exits: then the lines still queued are
/// written, unless the reader is stalled for longer than
/// `EXIT_FLUSH_LIMIT`.
#[must_use = "dropping it is when the queued lines are flushed"]
pub struct FlushAtExit;

impl Drop for FlushAtExit {
    fn drop(&mut self) {
        if let Some(logging) = installed() {
            logging.queue.counts().wait_written(EXIT_FLUSH_LIMIT);
            logging
                .access
                .queue()
                .counts()
                .wait_written(EXIT_FLUSH_LIMIT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_changes_at_run_time_and_a_bad_one_is_refused() {
        let log = writer::tests::TempLog::new("level");
        let path = &log.path;
        let (logging, subscriber) = Logging::start(
            Some("warn"),
            Target::File(path.to_path_buf()),
            None,
            LocalZone::utc(),
        )
        .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("hidden at warn");
            logging.set_level("info").unwrap();
            tracing::info!("shown at info");
            let refused = logging.set_level("tcpvs=loud").unwrap_err();
            assert!(refused.contains("bad log level `tcpvs=loud`"), "{refused}");
            tracing::info!("still shown at info");
        });
        assert!(logging.queue.counts().wait_written(Duration::from_secs(5)));
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains("hidden"), "{text}");
        assert!(text.contains("shown at info"), "{text}");
        assert!(text.contains("still shown at info"), "{text}");
    }
}
