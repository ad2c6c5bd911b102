//! Memory that the relay's large buffers took goes back to the system when
//! they are freed.
//!
//! glibc serves an allocation of 128 KiB or more (a relay buffer) with an
//! mmap of its own, but raises that threshold to the size of each such
//! block freed: after the first buffer comes back, the next ones are cut
//! from the threads' heaps, where a thousand slow readers leave a thousand
//! holes that are never returned (measured: 64 KB of RSS per slow reader
//! kept after they all left, tests/slow_clients.rs). A fixed threshold
//! keeps every buffer an mmap of its own, unmapped when freed. The workers'
//! spare lists (relay/memory.rs) keep the common case free of mmap calls.

/// Allocations of this size or more get their own mapping: room for a
/// relay buffer, well above request heads and task states.
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: libc::c_int = 64 * 1024;

/// Fixes glibc's mmap threshold. Called first thing, before any thread starts.
#[allow(unsafe_code)]
pub fn return_large_blocks() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any other thread exists.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 {
            eprintln!("tcpvsd: could not fix the malloc mmap threshold");
        }
    }
}
