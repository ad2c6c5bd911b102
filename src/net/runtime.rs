//! One io_uring runtime per worker thread, and the runtime's other pieces the
//! data plane uses (timers, select, a channel, an async lock): they are named
//! here, and only here, so that a change of runtime touches `net/` alone.

/// Runs several futures and takes the first that completes (the others are
/// dropped: see `Conn` for what that means for a posted operation).
pub use tokio::select;
/// A channel from other threads to a worker (listening sockets handed over).
pub use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
/// A lock held across awaits by tasks of one worker.
pub use tokio::sync::Mutex as AsyncMutex;
/// A wake-up any thread may send to tasks waiting on any worker.
pub use tokio::sync::Notify;
/// Waits until a time passes, on the worker's runtime.
pub use tokio::time::sleep;
/// Instants of the runtime's clock: deadlines of reads and writes, idle times.
pub use tokio::time::Instant;

use std::future::Future;

/// Submission queue depth of each worker's ring: enough for a few thousand
/// connections with one operation in flight each without stalling submission.
const RING_ENTRIES: u32 = 4096;

/// Runs `future` to completion on a new io_uring runtime owned by this thread.
pub fn start<F: Future>(future: F) -> F::Output {
    let mut uring = tokio_uring::uring_builder();
    if std::env::var_os("TCPVS_URING_PLAIN").is_none() {
        // Only this thread submits, and completions are reaped when it next
        // enters the kernel anyway: no inter-processor interrupt per completion.
        uring.setup_coop_taskrun().setup_single_issuer();
    }
    tokio_uring::builder()
        .entries(RING_ENTRIES)
        .uring_builder(&uring)
        .start(future)
}

/// Spawns a task on the current thread's runtime (tasks never leave their core).
pub fn spawn<F>(task: F)
where
    F: Future + 'static,
{
    drop(tokio_uring::spawn(task));
}
