//! A TCP connection on the worker's ring, with deadlines on every operation.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use socket2::SockRef;

use bytes::{Buf, Bytes, BytesMut};
use smallvec::SmallVec;
use tokio::time::{timeout_at, Instant};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

/// Smallest free space worth a read; below it the buffer grows first.
const MIN_READ_SPACE: usize = 2048;
/// How much a buffer grows by when it runs out of free space (the size of
/// the relay's lent buffers, `BUFFER_SIZE` in relay/memory.rs).
const READ_GROWTH: usize = 128 * 1024;

/// Why an operation on a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum IoFailure {
    /// The deadline passed. The connection is poisoned: the kernel may still
    /// hold the operation, so nothing may be read from it again.
    #[error("timed out")]
    TimedOut,
    /// An earlier operation timed out: reading again could lose bytes.
    #[error("connection unusable after a timeout")]
    Poisoned,
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl IoFailure {
    /// Whether this process, not the peer, ran out of something: descriptors
    /// (EMFILE, ENFILE), buffers or memory (ENOBUFS, ENOMEM), or local ports
    /// (EADDRNOTAVAIL). Such a failure says nothing about the server.
    pub fn is_local(&self) -> bool {
        let IoFailure::Io(error) = self else {
            return false;
        };
        matches!(
            error.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
        )
    }
}

/// A TCP connection (client or real server).
pub struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    poisoned: Cell<bool>,
    /// Set by [`Conn::close_after_writes`].
    closing: Cell<bool>,
    /// An accepted connection not yet read from: see [`Conn::read`].
    fresh: Cell<bool>,
}

impl Conn {
    /// Wraps an accepted stream (TCP_NODELAY comes from its listener).
    pub(super) fn accepted(stream: TcpStream, peer: SocketAddr) -> Self {
        let conn = Self::new(stream, peer);
        conn.fresh.set(true);
        conn
    }

    fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        Self {
            stream,
            peer,
            poisoned: Cell::new(false),
            closing: Cell::new(false),
            fresh: Cell::new(false),
        }
    }

    /// Connects to `addr`. A connect that times out leaves its half-open socket
    /// to the kernel, which closes it when its SYN retries give up.
    pub async fn connect(addr: SocketAddr, deadline: Instant) -> Result<Self, IoFailure> {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Heads and small responses must leave at once; we batch
                // writes ourselves.
                let _ = stream.set_nodelay(true);
                Ok(Self::new(stream, addr))
            }
            Ok(Err(e)) => Err(IoFailure::Io(e)),
            Err(_) => Err(IoFailure::TimedOut),
        }
    }

    /// The address of the other end.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Its descriptor, for the worker's set of idle clients.
    pub(super) fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Whether an operation on this connection has timed out.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.get()
    }

    /// Reads more bytes, appended after `buf`'s current contents. `Ok((0, buf))`
    /// is the end of the stream. On error the buffer is gone with the connection.
    pub async fn read(
        &self,
        mut buf: BytesMut,
        deadline: Instant,
    ) -> Result<(usize, BytesMut), IoFailure> {
        self.check()?;
        if buf.capacity() - buf.len() < MIN_READ_SPACE {
            buf.reserve(READ_GROWTH);
        }
        // A client's first bytes are there when its accept completes (the
        // listener defers accepts until they are, see `listener.rs`): taken
        // directly, the request is served in this turn of the worker rather
        // than after a read's completion comes back from the ring in the
        // next. The ring is used when they are not (a client quiet for longer
        // than the deferral).
        if self.fresh.replace(false) {
            if let Some(read) = self.recv_now(&mut buf)? {
                return Ok((read, buf));
            }
        }
        let start = buf.len();
        let end = buf.capacity();
        match timeout_at(deadline, self.stream.read(buf.slice(start..end))).await {
            Ok((Ok(n), slice)) => Ok((n, slice.into_inner())),
            Ok((Err(e), _)) => Err(IoFailure::Io(e)),
            Err(_) => Err(self.poison_reads()),
        }
    }

    /// Writes all of `data`.
    pub async fn write_all(&self, mut data: Bytes, deadline: Instant) -> Result<(), IoFailure> {
        if self.closing.get() {
            let sent = self.send_now(std::slice::from_ref(&data))?;
            data.advance(sent);
        }
        if data.is_empty() {
            return Ok(());
        }
        match timeout_at(deadline, self.stream.write_all(data)).await {
            Ok((result, _)) => result.map_err(IoFailure::Io),
            Err(_) => Err(self.poison()),
        }
    }

    /// Writes all of `parts` in order with as few system calls as the kernel allows.
    pub async fn write_all_vectored(
        &self,
        mut parts: Vec<Bytes>,
        deadline: Instant,
    ) -> Result<(), IoFailure> {
        parts.retain(|part| !part.is_empty());
        if self.closing.get() {
            let sent = self.send_now(&parts)?;
            advance_parts(&mut parts, sent);
        }
        while !parts.is_empty() {
            if parts.len() == 1 {
                let last = parts.pop().unwrap_or_default();
                return self.write_all(last, deadline).await;
            }
            let (result, mut returned) = match timeout_at(deadline, self.stream.writev(parts)).await
            {
                Ok(done) => done,
                Err(_) => return Err(self.poison()),
            };
            let written = result?;
            if written == 0 {
                return Err(IoFailure::Io(io::ErrorKind::WriteZero.into()));
            }
            advance_parts(&mut returned, written);
            parts = returned;
        }
        Ok(())
    }

    /// Receives what is already there without waiting, `None` if nothing is.
    #[allow(unsafe_code)]
    fn recv_now(&self, buf: &mut BytesMut) -> Result<Option<usize>, IoFailure> {
        let spare = buf.spare_capacity_mut();
        match self.with_socket(|socket| socket.recv_with_flags(spare, libc::MSG_DONTWAIT)) {
            Ok(read) => {
                // SAFETY: the kernel initialised the first `read` spare bytes.
                unsafe { buf.set_len(buf.len() + read) };
                Ok(Some(read))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(IoFailure::Io(e)),
        }
    }

    /// Tells the connection that it closes after the writes to come (a
    /// response with `Connection: close`). They are then first tried as a
    /// direct non-blocking `sendmsg`, which usually takes them whole: the
    /// connection closes in this turn of the worker instead of waiting for a
    /// write completion from the ring in the next. With a new connection per
    /// request that gave 1.04x the requests per second (25.0 -> 24.1 us CPU
    /// per request). Kept connections stay on the ring: their writes are
    /// batched in one submission per turn, and direct sends there measured
    /// 0.96x.
    pub fn close_after_writes(&self) {
        self.closing.set(true);
    }

    /// Sends what the socket takes at once, without waiting. A full buffer
    /// sends part or nothing, and the caller goes on through the ring. Reads
    /// are posted on the ring while this runs; writes never overlap (each
    /// caller waits for its write), so bytes stay in order.
    fn send_now(&self, parts: &[Bytes]) -> Result<usize, IoFailure> {
        if parts.is_empty() {
            return Ok(0);
        }
        let slices: SmallVec<[IoSlice<'_>; 4]> =
            parts.iter().map(|part| IoSlice::new(part)).collect();
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        match self.with_socket(|socket| socket.send_vectored_with_flags(&slices, flags)) {
            Ok(sent) => Ok(sent),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(IoFailure::Io(e)),
        }
    }

    /// Runs `call` on the socket, for the calls made without the ring.
    #[allow(unsafe_code)]
    fn with_socket<R>(&self, call: impl FnOnce(SockRef<'_>) -> R) -> R {
        // SAFETY: the descriptor is owned by `self.stream`, which outlives
        // the borrow (it lasts for `call` only).
        let fd = unsafe { BorrowedFd::borrow_raw(self.stream.as_raw_fd()) };
        call(SockRef::from(&fd))
    }

    /// Whether an idle connection can carry a new request: nothing is waiting
    /// to be read (a server must not speak before it is asked: stray bytes
    /// would be taken for the next response) and the peer has not closed it.
    /// Checked without blocking when a connection leaves the pool.
    pub fn is_idle_clean(&self) -> bool {
        if self.poisoned.get() {
            return false;
        }
        let mut byte = [MaybeUninit::<u8>::uninit(); 1];
        let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
        let peeked = self.with_socket(|socket| socket.recv_with_flags(&mut byte, flags));
        matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Gives up reading for good, after a read future was dropped while its
    /// operation may still be posted. Writing stays possible.
    pub fn abandon_reads(&self) {
        let _ = self.poison_reads();
    }

    /// Sends FIN: the peer sees the end of our stream, we may still read.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    fn check(&self) -> Result<(), IoFailure> {
        if self.poisoned.get() {
            Err(IoFailure::Poisoned)
        } else {
            Ok(())
        }
    }

    /// After a read timed out: the read may still be posted, so shut the read
    /// side (which completes it) and never read again. Writing stays possible,
    /// for a last 408.
    fn poison_reads(&self) -> IoFailure {
        self.poisoned.set(true);
        let _ = self.stream.shutdown(Shutdown::Read);
        IoFailure::TimedOut
    }

    /// After a write timed out: the peer is not reading; nothing more can be
    /// done with this connection.
    fn poison(&self) -> IoFailure {
        self.poisoned.set(true);
        let _ = self.stream.shutdown(Shutdown::Both);
        IoFailure::TimedOut
    }
}

/// Drops the first `written` bytes of `parts`: the parts that went out whole,
/// and the sent head of a part cut midway.
fn advance_parts(parts: &mut Vec<Bytes>, mut written: usize) {
    let done = parts
        .iter()
        .take_while(|part| {
            if written >= part.len() {
                written -= part.len();
                true
            } else {
                false
            }
        })
        .count();
    parts.drain(..done);
    if let Some(first) = parts.first_mut() {
        first.advance(written);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Completes any operation still posted, so the descriptor closes now
        // rather than whenever the peer next sends a byte.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_is_local_and_a_refusal_is_not() {
        let os = |code| IoFailure::Io(io::Error::from_raw_os_error(code));
        for local in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EADDRNOTAVAIL,
        ] {
            assert!(os(local).is_local(), "{local}");
        }
        for remote in [libc::ECONNREFUSED, libc::ECONNRESET, libc::EHOSTUNREACH] {
            assert!(!os(remote).is_local(), "{remote}");
        }
        assert!(!IoFailure::TimedOut.is_local());
    }
}
