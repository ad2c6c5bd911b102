//! One io_uring runtime per worker thread.

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
