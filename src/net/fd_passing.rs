//! Open sockets passed between two tcpvsd processes over a unix stream
//! (SCM_RIGHTS), with a message beside them: how a new binary takes the
//! running one's listening sockets, so that no connection is refused or
//! lost in an accept queue during an upgrade (HAProxy's `-x`).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// The most descriptors one message carries (services x workers).
pub const MAX_FDS: usize = 1024;
/// The longest message beside them.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Sends `message` and `fds` in one message.
pub fn send(stream: &UnixStream, message: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS || message.len() > MAX_MESSAGE || message.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many sockets or too long a message to pass",
        ));
    }
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let control: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(message)],
        control,
        MsgFlags::empty(),
        None,
    )?;
    if sent != message.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "message cut short",
        ));
    }
    Ok(())
}

/// Receives one message and the descriptors that came with it (owned: they
/// close when dropped).
#[allow(unsafe_code)]
pub fn receive(stream: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buffer = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(&mut buffer)];
    let received = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in received.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = message {
            // SAFETY: the kernel just installed these descriptors in this
            // process for us; nothing else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let truncated = received.flags.contains(MsgFlags::MSG_CTRUNC);
    let length = received.bytes;
    if truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptors cut short",
        ));
    }
    buffer.truncate(length);
    Ok((buffer, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::fd::AsFd;

    #[test]
    fn a_listening_socket_crosses_and_still_accepts() {
        let (here, there) = UnixStream::pair().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        send(&here, b"web", &[listener.as_fd()]).unwrap();
        let (message, mut fds) = receive(&there).unwrap();
        assert_eq!((message.as_slice(), fds.len()), (&b"web"[..], 1));
        drop(listener);
        let taken = TcpListener::from(fds.remove(0));
        assert_eq!(taken.local_addr().unwrap(), addr);
        let _client = std::net::TcpStream::connect(addr).unwrap();
        taken.accept().unwrap();
    }
}
