//! Relaying message bodies from one connection to the other. Bytes read from
//! one socket are written to the other from the same buffer: a body is split
//! off the read buffer as `Bytes` and handed to the kernel, never copied.
//! Chunked bodies are decoded and re-encoded canonically (only the small
//! size lines are new bytes).

use std::time::Duration;

use crate::net::Instant;
use bytes::{Bytes, BytesMut};

use crate::net::{Conn, IoFailure};
use crate::protocols::http::{
    encode_chunk_header, encode_last_chunk, ChunkEvent, ChunkedDecoder, Framing,
};

const CRLF: Bytes = Bytes::from_static(b"\r\n");
/// Most pieces handed to one vectored write. The kernel refuses more than
/// IOV_MAX (1024) iovecs, and a body of tiny chunks makes three per chunk:
/// a peer sending thousands of one-byte chunks in one read must not make the
/// write fail.
const MAX_PARTS: usize = 512;

/// One end of a body relay: a connection, how long each wait on it may
/// last, and when all waits end (a request body's deadline).
#[derive(Clone, Copy)]
pub struct End<'a> {
    pub conn: &'a Conn,
    pub timeout: Duration,
    pub until: Option<Instant>,
}

impl<'a> End<'a> {
    /// An end whose waits have no deadline beyond `timeout` each.
    pub fn new(conn: &'a Conn, timeout: Duration) -> Self {
        Self {
            conn,
            timeout,
            until: None,
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        let wait = Instant::now() + self.timeout;
        self.until.map_or(wait, |until| until.min(wait))
    }
}

/// Why a body relay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the body: {0}")]
    Read(IoFailure),
    #[error("writing the body: {0}")]
    Write(IoFailure),
    #[error("the sender closed before the end of the body")]
    Truncated,
    #[error("bad chunked encoding: {0}")]
    BadChunk(String),
    #[error("the body is larger than allowed")]
    TooLarge,
}

/// Relays one body that arrives framed as `framing` and is written out as
/// `written` (the same framing, but for a chunked response written plainly
/// to an HTTP/1.0 client, or none for a body the client must not get);
/// `ahead` (a head) goes out first, in the same write as the first body
/// bytes. `buf` holds what was already read from `from`, and keeps whatever
/// follows the body. A chunked body whose data grows past `max` is cut
/// (a Content-Length one is checked before it is relayed). `sent` is set
/// to the body bytes written out (chunk framing included, `ahead` not),
/// also when the relay stops early: the access log's `$body_bytes_sent`.
pub async fn relay(
    from: End<'_>,
    buf: &mut BytesMut,
    to: End<'_>,
    (framing, written): (Framing, Framing),
    (ahead, max): (Option<Bytes>, Option<u64>),
    sent: &mut u64,
) -> Result<(), BodyError> {
    let head = ahead.as_ref().map_or(0, |head| head.len() as u64);
    let mut out = Written { to, bytes: 0 };
    let relayed = match (framing, written) {
        (Framing::None, _) | (_, Framing::None) => out.send(ahead.into_iter().collect()).await,
        (Framing::Length(length), _) => copy_length(from, buf, &mut out, length, ahead).await,
        (Framing::Chunked, written) => {
            let rechunk = written == Framing::Chunked;
            let max = max.unwrap_or(u64::MAX);
            copy_chunked(from, buf, &mut out, rechunk, ahead, max).await
        }
        (Framing::UntilClose, _) => copy_until_close(from, buf, &mut out, ahead).await,
    };
    *sent = out.bytes.saturating_sub(head);
    relayed
}

/// The writing end of a relay, counting what it wrote.
struct Written<'a> {
    to: End<'a>,
    bytes: u64,
}

impl Written<'_> {
    async fn send(&mut self, parts: Vec<Bytes>) -> Result<(), BodyError> {
        if parts.is_empty() {
            return Ok(());
        }
        let bytes: u64 = parts.iter().map(|part| part.len() as u64).sum();
        self.to
            .conn
            .write_all_vectored(parts, self.to.deadline())
            .await
            .map_err(BodyError::Write)?;
        self.bytes += bytes;
        Ok(())
    }
}

/// Relays exactly `length` bytes; `buf` holds what was already read from `from`
/// and keeps whatever follows the body. `ahead` (a head) goes out in the same
/// write as the first body bytes: one segment instead of two for a small
/// response.
async fn copy_length(
    from: End<'_>,
    buf: &mut BytesMut,
    to: &mut Written<'_>,
    mut length: u64,
    mut ahead: Option<Bytes>,
) -> Result<(), BodyError> {
    loop {
        let mut parts: Vec<Bytes> = Vec::with_capacity(2);
        parts.extend(ahead.take());
        if !buf.is_empty() && length > 0 {
            let take = usize::try_from(length).unwrap_or(usize::MAX).min(buf.len());
            parts.push(buf.split_to(take).freeze());
            length -= take as u64;
        }
        to.send(parts).await?;
        if length == 0 {
            return Ok(());
        }
        fill(from, buf).await?;
    }
}

/// Relays everything until `from` closes its side, `ahead` first.
async fn copy_until_close(
    from: End<'_>,
    buf: &mut BytesMut,
    to: &mut Written<'_>,
    mut ahead: Option<Bytes>,
) -> Result<(), BodyError> {
    loop {
        let mut parts: Vec<Bytes> = Vec::with_capacity(2);
        parts.extend(ahead.take());
        if !buf.is_empty() {
            parts.push(buf.split().freeze());
        }
        to.send(parts).await?;
        match fill(from, buf).await {
            Ok(()) => {}
            Err(BodyError::Truncated) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Decodes a chunked body from `from` and writes it to `to` re-chunked, or as
/// plain bytes (for an HTTP/1.0 client) when not `rechunk`, `ahead` first.
async fn copy_chunked(
    from: End<'_>,
    buf: &mut BytesMut,
    to: &mut Written<'_>,
    rechunk: bool,
    mut ahead: Option<Bytes>,
    max: u64,
) -> Result<(), BodyError> {
    let mut decoder = ChunkedDecoder::default();
    let mut data_bytes: u64 = 0;
    loop {
        let mut parts: Vec<Bytes> = Vec::with_capacity(2);
        parts.extend(ahead.take());
        let mut done = false;
        while !buf.is_empty() && !done && parts.len() < MAX_PARTS {
            let (consumed, event) = decoder
                .decode(buf)
                .map_err(|e| BodyError::BadChunk(e.to_string()))?;
            let decoded = buf.split_to(consumed).freeze();
            match event {
                Some(ChunkEvent::Data(range)) => {
                    let data = decoded.slice(range);
                    data_bytes = data_bytes.saturating_add(data.len() as u64);
                    if data_bytes > max {
                        return Err(BodyError::TooLarge);
                    }
                    if rechunk {
                        let mut size_line = Vec::with_capacity(18);
                        encode_chunk_header(data.len(), &mut size_line);
                        parts.push(Bytes::from(size_line));
                        parts.push(data);
                        parts.push(CRLF);
                    } else {
                        parts.push(data);
                    }
                }
                Some(ChunkEvent::End { trailers }) => {
                    if rechunk {
                        let mut last = Vec::new();
                        encode_last_chunk(&trailers, &mut last);
                        parts.push(Bytes::from(last));
                    }
                    done = true;
                }
                None if consumed == 0 => break,
                None => {}
            }
        }
        // Stopped by MAX_PARTS with input left: write it out, then decode the
        // rest before reading more.
        let capped = parts.len() >= MAX_PARTS && !buf.is_empty();
        to.send(parts).await?;
        if done {
            return Ok(());
        }
        if !capped {
            fill(from, buf).await?;
        }
    }
}

/// Reads more bytes from `from` into `buf`; the end of the stream is `Truncated`.
async fn fill(from: End<'_>, buf: &mut BytesMut) -> Result<(), BodyError> {
    let (n, filled) = from
        .conn
        .read(std::mem::take(buf), from.deadline())
        .await
        .map_err(BodyError::Read)?;
    *buf = filled;
    if n == 0 {
        Err(BodyError::Truncated)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::time::Duration;

    use super::*;
    use crate::net::{self, Listener};

    fn end(conn: &Conn) -> End<'_> {
        End::new(conn, Duration::from_secs(5))
    }

    #[test]
    fn many_tiny_chunks_are_written_within_iov_max() {
        // Thousands of one-byte chunks in one read: three pieces each.
        let mut input = "1\r\nx\r\n".repeat(3000).into_bytes();
        input.extend_from_slice(b"0\r\n\r\nnext");
        let sink = TcpListener::bind("127.0.0.1:0").unwrap();
        let sink_addr = sink.local_addr().unwrap();
        let received = std::thread::spawn(move || {
            let (mut stream, _) = sink.accept().unwrap();
            let mut out = Vec::new();
            stream.read_to_end(&mut out).unwrap();
            out
        });
        let rest = net::start(async move {
            let (listener, addr) = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
            let writer = std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(&input).unwrap();
                // Held open until the relay is done, so no read sees the end.
                std::thread::sleep(Duration::from_millis(500));
            });
            let (from, _) = listener.accept().await.unwrap();
            let to = Conn::connect(sink_addr, Instant::now() + Duration::from_secs(5))
                .await
                .unwrap();
            let mut buf = BytesMut::new();
            // One read may hold the whole body: wait for it all before relaying.
            while buf.len() < 3000 * 6 + 9 {
                let (_, filled) = from
                    .read(buf, Instant::now() + Duration::from_secs(5))
                    .await
                    .unwrap();
                buf = filled;
            }
            let mut sent = 0;
            relay(
                end(&from),
                &mut buf,
                end(&to),
                (Framing::Chunked, Framing::Chunked),
                (Some(Bytes::from_static(b"HEAD")), None),
                &mut sent,
            )
            .await
            .unwrap();
            drop(to);
            writer.join().unwrap();
            (buf, sent)
        });
        let (rest, sent) = rest;
        assert_eq!(&rest[..], b"next");
        let out = received.join().unwrap();
        let mut expected = b"HEAD".to_vec();
        expected.extend_from_slice("1\r\nx\r\n".repeat(3000).as_bytes());
        expected.extend_from_slice(b"0\r\n\r\n");
        assert!(out == expected, "{} bytes relayed", out.len());
        assert_eq!(
            sent,
            expected.len() as u64 - 4,
            "the body's bytes, not the head's"
        );
    }
}
