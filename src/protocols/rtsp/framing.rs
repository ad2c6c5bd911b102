//! Splitting one direction of an RTSP connection into messages and opaque
//! bytes (RFC 2326 10.12): at a message boundary, a `$` starts an interleaved
//! binary frame (`$`, channel, 16-bit big-endian length, payload), anything
//! else starts an RTSP message whose Content-Length body follows its head.
//! Frames and bodies are opaque: the relay forwards them as they arrive,
//! without waiting for their end and without copying them.

use super::message::{parse_message, Message, MessageError};
use crate::protocols::http::Limits;

/// The bytes before an interleaved frame's payload.
pub const FRAME_HEADER: usize = 4;

/// What the bytes at the front of the buffer are.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing can be decided before more bytes arrive.
    More,
    /// The next `n` bytes (at least 1, at most what is buffered) are opaque:
    /// part of a frame or of a message body. Consume exactly `n`.
    Opaque(usize),
    /// A message head of the given length in bytes; its body follows as
    /// `Opaque` steps. Consume the head's length. (Boxed: a head is large
    /// and rare next to the frames.)
    Message(Box<Message>, usize),
}

/// The state of one direction: at a boundary, or inside opaque bytes.
#[derive(Debug, Default)]
pub struct Demux {
    opaque_left: u64,
}

impl Demux {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the next byte starts a message or a frame.
    pub fn at_boundary(&self) -> bool {
        self.opaque_left == 0
    }

    /// Looks at the front of `buf` (the unconsumed bytes of this direction).
    pub fn step(&mut self, buf: &[u8], limits: &Limits) -> Result<Step, MessageError> {
        if self.opaque_left > 0 {
            return Ok(self.take_opaque(buf.len()));
        }
        match buf.first() {
            None => Ok(Step::More),
            Some(b'$') => {
                let Some(header) = buf.get(..FRAME_HEADER) else {
                    return Ok(Step::More);
                };
                let payload = u16::from_be_bytes([header[2], header[3]]);
                self.opaque_left = (FRAME_HEADER + usize::from(payload)) as u64;
                Ok(self.take_opaque(buf.len()))
            }
            Some(_) => match parse_message(buf, limits)? {
                None => Ok(Step::More),
                Some((message, len)) => {
                    self.opaque_left = message.body_len;
                    Ok(Step::Message(Box::new(message), len))
                }
            },
        }
    }

    fn take_opaque(&mut self, available: usize) -> Step {
        if available == 0 {
            return Step::More;
        }
        let n = self.opaque_left.min(available as u64);
        self.opaque_left -= n;
        // n <= available, a usize.
        Step::Opaque(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a direction carried, in order: message heads (by start line) and
    /// the opaque bytes between them.
    #[derive(Debug, PartialEq, Eq)]
    enum Unit {
        Head(String),
        Opaque(Vec<u8>),
    }

    /// Feeds `wire` in pieces of `sizes` (cycled), as reads would deliver it.
    fn demux(wire: &[u8], sizes: &[usize]) -> Vec<Unit> {
        let limits = Limits::default();
        let mut demux = Demux::new();
        let mut units: Vec<Unit> = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut size = sizes.iter().cycle();
        loop {
            match demux.step(&buf, &limits).unwrap() {
                Step::More => {
                    if fed == wire.len() {
                        break;
                    }
                    let n = (*size.next().unwrap()).max(1).min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
                Step::Opaque(n) => {
                    assert!(n >= 1 && n <= buf.len());
                    let bytes: Vec<u8> = buf.drain(..n).collect();
                    match units.last_mut() {
                        Some(Unit::Opaque(run)) => run.extend(bytes),
                        _ => units.push(Unit::Opaque(bytes)),
                    }
                }
                Step::Message(message, len) => {
                    buf.drain(..len);
                    let line = match message.method() {
                        Some(method) => format!("{method} {}", message.uri().unwrap_or("")),
                        None => format!("{:?}", message.status()),
                    };
                    units.push(Unit::Head(line));
                }
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        units
    }

    fn frame(channel: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b'$', channel];
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn sample() -> (Vec<u8>, Vec<Unit>) {
        let big: Vec<u8> = (0..65535u32).map(|i| (i % 251) as u8).collect();
        let mut wire = b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 1\r\n\r\n".to_vec();
        let first = frame(0, b"$$$ not a head\r\n\r\n");
        wire.extend_from_slice(&first);
        let second = frame(1, &big);
        wire.extend_from_slice(&second);
        wire.extend_from_slice(
            b"GET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\n$ab",
        );
        let third = frame(0, b"");
        wire.extend_from_slice(&third);
        let mut frames = first;
        frames.extend_from_slice(&second);
        let units = vec![
            Unit::Head("Some(200)".into()),
            Unit::Opaque(frames),
            Unit::Head("GET_PARAMETER rtsp://h/a".into()),
            // The body starts with `$` and is still body, then a frame follows.
            Unit::Opaque([b"$ab".as_slice(), &third].concat()),
        ];
        (wire, units)
    }

    #[test]
    fn frames_right_after_a_message_and_of_the_largest_size() {
        let (wire, expected) = sample();
        assert_eq!(demux(&wire, &[wire.len()]), expected);
    }

    #[test]
    fn frames_split_across_reads() {
        let (wire, expected) = sample();
        assert_eq!(demux(&wire, &[1]), expected);
        assert_eq!(demux(&wire, &[3, 7, 1, 4096]), expected);
    }

    #[test]
    fn a_bad_message_after_a_frame_is_an_error() {
        let mut wire = frame(0, b"xy");
        wire.extend_from_slice(b"PLAY rtsp://h/a RTSP/1.0\r\n\r\n");
        let mut demux = Demux::new();
        assert_eq!(demux.step(&wire, &Limits::default()), Ok(Step::Opaque(6)));
        assert!(demux.at_boundary());
        assert_eq!(
            demux.step(&wire[6..], &Limits::default()),
            Err(MessageError::CSeq)
        );
    }

    proptest! {
        /// However the bytes are cut into reads, the same units come out.
        #[test]
        fn any_read_sizes_give_the_same_units(sizes in proptest::collection::vec(1usize..200, 1..20)) {
            let (wire, expected) = sample();
            prop_assert_eq!(demux(&wire, &sizes), expected);
        }
    }
}
