//! Client connections waiting between requests, which their worker can close
//! from outside the tasks that wait on them: a graceful stop closes idle
//! keep-alive clients at once. A read posted on the ring cannot be cancelled
//! (tokio-uring 0.5), but shutting the socket's read side completes it: with
//! the bytes the client already sent, else with the end of the stream.

use std::cell::{Cell, RefCell};
use std::net::Shutdown;
use std::os::fd::{BorrowedFd, RawFd};

use slab::Slab;
use socket2::SockRef;

use super::Conn;

/// One worker's idle client connections, and whether it is stopping.
#[derive(Default)]
pub struct IdleClients {
    /// The descriptors of the connections now waiting (each owned by a live
    /// [`Conn`], see [`Waiting`]).
    waiting: RefCell<Slab<RawFd>>,
    stopping: Cell<bool>,
}

/// A connection noted as idle until this is dropped. It borrows the
/// connection, so the connection outlives its entry.
pub struct Waiting<'a> {
    clients: &'a IdleClients,
    key: usize,
}

impl IdleClients {
    /// Notes `conn` as idle while the returned guard lives: a read on it then
    /// ends when the worker stops. Once the worker is stopping, its read side
    /// is shut at once instead, so the read takes what is already there and
    /// does not wait for more.
    pub fn wait<'a>(&'a self, conn: &'a Conn) -> Waiting<'a> {
        let fd = conn.as_raw_fd();
        if self.stopping.get() {
            shutdown_read(fd);
        }
        let key = self.waiting.borrow_mut().insert(fd);
        Waiting { clients: self, key }
    }

    /// The worker stops: every idle connection's read side is shut (its read
    /// completes), and so is that of any connection that goes idle from now on.
    pub fn stop(&self) {
        self.stopping.set(true);
        for (_, &fd) in self.waiting.borrow().iter() {
            shutdown_read(fd);
        }
    }

    /// Whether [`stop`](IdleClients::stop) was called: a response ending now
    /// should be the connection's last.
    pub fn stopping(&self) -> bool {
        self.stopping.get()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.clients.waiting.borrow_mut().remove(self.key);
    }
}

/// Shuts the read side of a connection that is waiting: a posted read
/// completes, nothing is sent to the peer (the connection's drop does that).
#[allow(unsafe_code)]
fn shutdown_read(fd: RawFd) {
    // SAFETY: `fd` is a waiting connection's: the `Conn` that owns it is
    // borrowed by the `Waiting` guard that keeps it in the set, so it is
    // open for as long as it is in the set (the relay holds each guard across
    // one read and drops it; none is ever forgotten).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = SockRef::from(&fd).shutdown(Shutdown::Read);
}
