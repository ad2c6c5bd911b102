//! Incremental decoding and canonical re-encoding of the chunked transfer coding
//! (RFC 9112 7.1).
//!
//! Chunked bodies are never passed through raw: the decoder checks every size line,
//! every CRLF and the trailer section, and reports data as ranges of the caller's
//! input, which the relay re-frames with `encode_chunk_header`. What the backend
//! sees is then our framing, not whatever spelling the client chose.

use std::ops::Range;

use super::fields;
use super::head::{self, HeadError, StartLine};
use super::{Header, Limits};

/// A chunk size is at most 16 hex digits, so it always fits in a u64.
const MAX_SIZE_DIGITS: u8 = 16;
/// Extensions are dropped, but a peer must not make us read them forever.
const MAX_EXTENSION_BYTES: usize = 4096;
/// Trailers are buffered until the section ends, so they are bounded like a head.
const TRAILER_LIMITS: Limits = Limits {
    max_head_bytes: 16 * 1024,
    max_headers: 100,
};

/// Fields that must not take effect from a trailer section (RFC 9110 6.5.1): framing,
/// routing, connection options and content metadata. They are dropped.
const TRAILER_DROPPED: &[&str] = &[
    "content-encoding",
    "content-range",
    "content-type",
    "expect",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "authorization",
    "set-cookie",
    "cookie",
];

/// What the decoder found in its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkEvent {
    /// Chunk data at this range of the input just given.
    Data(Range<usize>),
    /// The last chunk and the trailer section, stripped of fields that must not travel
    /// in trailers.
    End { trailers: Vec<Header> },
}

/// Why a chunked body is malformed; the connection cannot be trusted after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("invalid chunk size")]
    Size,
    #[error("chunk size too large")]
    SizeOverflow,
    #[error("invalid chunk extension")]
    Extension,
    #[error("chunk extension too long")]
    ExtensionTooLong,
    #[error("chunk line not ended by CRLF")]
    LineEnding,
    #[error("missing CRLF after chunk data")]
    DataCrlf,
    #[error("invalid trailer section: {0}")]
    Trailers(HeadError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a size line.
    Size {
        digits: u8,
        size: u64,
    },
    /// Skipping a chunk extension (after `;`), counting its bytes.
    Extension {
        len: usize,
        size: u64,
    },
    /// Saw the CR ending a size line.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// Collecting the trailer section into `trailers` until its empty line.
    Trailers,
    Done,
}

/// An incremental chunked-body decoder; it never asks for bytes it has consumed.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    trailers: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0, size: 0 },
            trailers: Vec::new(),
        }
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the last chunk and trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input` (bytes the caller has not yet consumed).
    ///
    /// Returns the bytes consumed and at most one event; `Data` ranges index into
    /// `input` and lie within the consumed prefix. `(n, None)` with `n ==
    /// input.len()` asks for more input. After `End`, `is_done()` is true, the bytes
    /// after the consumed prefix belong to the next message, and further calls
    /// consume nothing.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<ChunkEvent>), ChunkedError> {
        let mut pos = 0;
        while pos < input.len() {
            if let State::Data { remaining } = self.state {
                let available = input.len() - pos;
                let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
                let range = pos..pos + take;
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                return Ok((range.end, Some(ChunkEvent::Data(range))));
            }
            if self.state == State::Done {
                return Ok((pos, None));
            }
            let byte = input[pos];
            pos += 1;
            if self.state == State::Trailers {
                if let Some(trailers) = self.trailer_byte(byte)? {
                    self.state = State::Done;
                    return Ok((pos, Some(ChunkEvent::End { trailers })));
                }
                continue;
            }
            self.state = self.line_byte(byte)?;
        }
        Ok((pos, None))
    }

    /// Advances through a size line or the CRLF after data by one byte.
    fn line_byte(&self, byte: u8) -> Result<State, ChunkedError> {
        Ok(match (self.state, byte) {
            (State::Size { digits, size }, _) if byte.is_ascii_hexdigit() => {
                if digits == MAX_SIZE_DIGITS {
                    return Err(ChunkedError::SizeOverflow);
                }
                let digit = u64::from(char::from(byte).to_digit(16).unwrap_or(0));
                let size = size << 4 | digit;
                // What a signed 64-bit offset holds, as for Content-Length.
                if size > fields::MAX_LENGTH {
                    return Err(ChunkedError::SizeOverflow);
                }
                State::Size {
                    digits: digits + 1,
                    size,
                }
            }
            // chunk-size = 1*HEXDIG, then an extension or CRLF: no whitespace, which
            // peers disagree on (RFC 9112 7.1).
            (State::Size { digits: 0, .. }, _) => return Err(ChunkedError::Size),
            (State::Size { size, .. }, b';') => State::Extension { len: 0, size },
            (State::Size { size, .. }, b'\r') => State::SizeLf { size },
            (State::Size { .. }, b'\n') => return Err(ChunkedError::LineEnding),
            (State::Size { .. }, _) => return Err(ChunkedError::Size),
            (State::Extension { size, .. }, b'\r') => State::SizeLf { size },
            (State::Extension { .. }, b'\n') => return Err(ChunkedError::LineEnding),
            (State::Extension { .. }, 0..=0x08 | 0x0a..=0x1f | 0x7f) => {
                return Err(ChunkedError::Extension)
            }
            (State::Extension { len, size }, _) => {
                if len >= MAX_EXTENSION_BYTES {
                    return Err(ChunkedError::ExtensionTooLong);
                }
                State::Extension { len: len + 1, size }
            }
            (State::SizeLf { size: 0 }, b'\n') => State::Trailers,
            (State::SizeLf { size }, b'\n') => State::Data { remaining: size },
            (State::SizeLf { .. }, _) => return Err(ChunkedError::LineEnding),
            // The CRLF after the data is part of the framing and must be exactly there.
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size { digits: 0, size: 0 },
            (State::DataCr | State::DataLf, _) => return Err(ChunkedError::DataCrlf),
            (State::Data { .. } | State::Trailers | State::Done, _) => self.state,
        })
    }

    /// Collects one byte of the trailer section; returns the trailers once it ends.
    fn trailer_byte(&mut self, byte: u8) -> Result<Option<Vec<Header>>, ChunkedError> {
        let after_cr = self.trailers.last() == Some(&b'\r');
        match byte {
            b'\n' if !after_cr => return Err(ChunkedError::LineEnding),
            b'\n' => {}
            _ if after_cr => return Err(ChunkedError::LineEnding),
            _ => {}
        }
        if self.trailers.len() >= TRAILER_LIMITS.max_head_bytes {
            return Err(ChunkedError::Trailers(HeadError::TooLarge {
                start_line_complete: true,
            }));
        }
        self.trailers.push(byte);
        let section_ended =
            byte == b'\n' && (self.trailers == b"\r\n" || self.trailers.ends_with(b"\r\n\r\n"));
        if !section_ended {
            return Ok(None);
        }
        let section = std::mem::take(&mut self.trailers);
        parse_trailers(&section)
            .map(Some)
            .map_err(ChunkedError::Trailers)
    }
}

/// Validates a trailer section like a head's fields and drops what must not travel
/// in trailers: they are forwarded or dropped, never allowed to change framing.
fn parse_trailers(section: &[u8]) -> Result<Vec<Header>, HeadError> {
    let Some(found) = head::scan(section, &TRAILER_LIMITS, StartLine::Absent)? else {
        return Err(HeadError::FieldValue);
    };
    let trailers = head::parse_fields(&section[found.fields], TRAILER_LIMITS.max_headers)?;
    Ok(trailers
        .into_iter()
        .filter(|h| {
            !fields::HOP_BY_HOP
                .iter()
                .chain(TRAILER_DROPPED)
                .any(|name| fields::name_alike(&h.name, name))
        })
        .collect())
}

/// Writes a canonical chunk size line: `{len:x}\r\n`. The caller writes the data and `\r\n`.
pub fn encode_chunk_header(len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
}

/// Writes the last chunk, the trailers and the final empty line.
pub fn encode_last_chunk(trailers: &[Header], out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    for trailer in trailers {
        out.extend_from_slice(trailer.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&trailer.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What decoding a whole stream gave: the data, the trailers (if the body ended)
    /// and the bytes left for the next message.
    #[derive(Debug, PartialEq, Eq)]
    struct Decoded {
        data: Vec<u8>,
        trailers: Option<Vec<Header>>,
        rest: Vec<u8>,
    }

    /// Feeds `pieces` as a relay would: unconsumed bytes stay in front of the next piece.
    fn decode_pieces(pieces: &[&[u8]]) -> Result<Decoded, ChunkedError> {
        let mut decoder = ChunkedDecoder::new();
        let mut pending = Vec::new();
        let mut decoded = Decoded {
            data: Vec::new(),
            trailers: None,
            rest: Vec::new(),
        };
        for piece in pieces {
            pending.extend_from_slice(piece);
            while !decoder.is_done() {
                let (n, event) = decoder.decode(&pending)?;
                assert!(n <= pending.len());
                let more = event.is_some();
                match event {
                    Some(ChunkEvent::Data(range)) => {
                        assert!(range.end <= n && !range.is_empty());
                        decoded.data.extend_from_slice(&pending[range]);
                    }
                    Some(ChunkEvent::End { trailers }) => decoded.trailers = Some(trailers),
                    None => assert_eq!(n, pending.len(), "no event must mean all input consumed"),
                }
                pending.drain(..n);
                if !more {
                    break;
                }
            }
        }
        decoded.rest = pending;
        Ok(decoded)
    }

    fn decode_all(input: &[u8]) -> Result<Decoded, ChunkedError> {
        decode_pieces(&[input])
    }

    /// The same stream must decode the same way however it is split.
    fn assert_split_invariant(input: &[u8]) {
        let whole = decode_all(input);
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(decode_pieces(&[a, b]), whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_pieces(&bytes), whole, "byte at a time");
    }

    fn header(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: value.as_bytes().into(),
        }
    }

    #[test]
    fn decodes_chunks_and_leaves_next_message() {
        let out = decode_all(b"5\r\nhello\r\nA;ext=\"x y\"\r\n0123456789\r\n0\r\n\r\nGET").unwrap();
        assert_eq!(out.data, b"hello0123456789");
        assert_eq!(out.trailers, Some(vec![]));
        assert_eq!(out.rest, b"GET");
    }

    #[test]
    fn decoding_is_split_invariant() {
        assert_split_invariant(
            b"5\r\nhello\r\nA;ext=\"x y\"\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nGET",
        );
        assert_split_invariant(b"1;a=b;c\r\nx\r\n000\r\n\r\n");
    }

    #[test]
    fn data_is_never_copied_and_ranges_index_input() {
        let mut decoder = ChunkedDecoder::new();
        let input = b"3\r\nabc\r\n";
        assert_eq!(decoder.decode(input), Ok((6, Some(ChunkEvent::Data(3..6)))));
        assert_eq!(decoder.decode(&input[6..]), Ok((2, None)));
    }

    #[test]
    fn partial_size_line_needs_no_replay() {
        let mut decoder = ChunkedDecoder::new();
        assert_eq!(decoder.decode(b"1"), Ok((1, None)));
        assert_eq!(decoder.decode(b"0;e"), Ok((3, None)));
        assert_eq!(decoder.decode(b"\r"), Ok((1, None)));
        assert_eq!(
            decoder.decode(b"\n0123456789abcdef"),
            Ok((17, Some(ChunkEvent::Data(1..17))))
        );
    }

    #[test]
    fn is_done_after_end_and_consumes_nothing_more() {
        let mut decoder = ChunkedDecoder::new();
        assert_eq!(
            decoder.decode(b"0\r\n\r\nX"),
            Ok((5, Some(ChunkEvent::End { trailers: vec![] })))
        );
        assert!(decoder.is_done());
        assert_eq!(decoder.decode(b"X"), Ok((0, None)));
    }

    #[test]
    fn uppercase_and_leading_zero_sizes() {
        assert_eq!(
            decode_all(b"0A\r\n0123456789\r\n0\r\n\r\n").unwrap().data,
            b"0123456789"
        );
        assert_eq!(
            decode_all(b"0000000000000001\r\nx\r\n0\r\n\r\n")
                .unwrap()
                .data,
            b"x"
        );
    }

    #[test]
    fn empty_chunk_size_rejected() {
        assert_eq!(decode_all(b"\r\n"), Err(ChunkedError::Size));
        assert_eq!(decode_all(b";ext\r\n"), Err(ChunkedError::Size));
    }

    #[test]
    fn chunk_size_with_spaces_rejected() {
        assert_eq!(decode_all(b" 5\r\nhello\r\n"), Err(ChunkedError::Size));
        assert_eq!(decode_all(b"5 \r\nhello\r\n"), Err(ChunkedError::Size));
        assert_eq!(decode_all(b"5\t;x\r\nhello\r\n"), Err(ChunkedError::Size));
    }

    #[test]
    fn chunk_size_non_hex_rejected() {
        for bad in [&b"0x5\r\n"[..], b"+5\r\n", b"-1\r\n", b"5g\r\n", b"g\r\n"] {
            assert_eq!(
                decode_all(bad),
                Err(ChunkedError::Size),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunk_size_overflow_rejected() {
        assert_eq!(
            decode_all(b"10000000000000000\r\n"),
            Err(ChunkedError::SizeOverflow)
        );
        assert_eq!(
            decode_all(b"00000000000000001\r\n"),
            Err(ChunkedError::SizeOverflow)
        );
        // Beyond a signed 64-bit offset: refused, as a Content-Length would be.
        assert_eq!(
            decode_all(b"ffffffffffffffff\r\n"),
            Err(ChunkedError::SizeOverflow)
        );
        assert_eq!(
            decode_all(b"8000000000000000\r\n"),
            Err(ChunkedError::SizeOverflow)
        );
        // 16 digits is the most, and i64::MAX fits.
        let mut decoder = ChunkedDecoder::new();
        assert_eq!(decoder.decode(b"7fffffffffffffff\r\n"), Ok((18, None)));
        assert_eq!(decoder.decode(b"ab"), Ok((2, Some(ChunkEvent::Data(0..2)))));
    }

    #[test]
    fn chunk_line_bare_lf_rejected() {
        assert_eq!(decode_all(b"5\nhello\r\n"), Err(ChunkedError::LineEnding));
        assert_eq!(
            decode_all(b"5;ext\nhello\r\n"),
            Err(ChunkedError::LineEnding)
        );
        assert_eq!(
            decode_all(b"5;ext\rhello\r\n"),
            Err(ChunkedError::LineEnding)
        );
        assert_eq!(decode_all(b"5\rhello\r\n"), Err(ChunkedError::LineEnding));
    }

    #[test]
    fn chunk_missing_crlf_after_data_rejected() {
        assert_eq!(
            decode_all(b"5\r\nhelloX\r\n0\r\n\r\n"),
            Err(ChunkedError::DataCrlf)
        );
        assert_eq!(
            decode_all(b"5\r\nhello\n0\r\n\r\n"),
            Err(ChunkedError::DataCrlf)
        );
        assert_eq!(decode_all(b"5\r\nhello\rX"), Err(ChunkedError::DataCrlf));
        assert_eq!(decode_all(b"3\r\nhello\r\n"), Err(ChunkedError::DataCrlf));
    }

    #[test]
    fn chunk_extension_length_capped() {
        let mut body = b"1;".to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_EXTENSION_BYTES - 1));
        body.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(decode_all(&body).unwrap().data, b"x");
        let mut body = b"1;".to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_EXTENSION_BYTES + 1));
        assert_eq!(decode_all(&body), Err(ChunkedError::ExtensionTooLong));
    }

    #[test]
    fn chunk_extension_control_bytes_rejected() {
        assert_eq!(
            decode_all(b"1;a\x00\r\nx\r\n"),
            Err(ChunkedError::Extension)
        );
        assert_eq!(
            decode_all(b"1;a=\"\tb\"\r\nx\r\n0\r\n\r\n").unwrap().data,
            b"x"
        );
    }

    #[test]
    fn trailers_are_returned_without_framing_fields() {
        let out = decode_all(
            b"0\r\nX-Checksum: abc\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nTransfer_Encoding: chunked\r\nHost: evil\r\nTrailer: X\r\nConnection: close\r\nSet-Cookie: a=b\r\nX-Other:  v \r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            out.trailers,
            Some(vec![header("X-Checksum", "abc"), header("X-Other", "v")])
        );
    }

    #[test]
    fn trailers_validated_like_fields() {
        let cases: [(&[u8], ChunkedError); 6] = [
            (b"0\r\nX: a\n\r\n", ChunkedError::LineEnding),
            (b"0\r\nX: a\r\n\n", ChunkedError::LineEnding),
            (b"0\r\nX: a\rb\r\n\r\n", ChunkedError::LineEnding),
            (
                b"0\r\nX : a\r\n\r\n",
                ChunkedError::Trailers(HeadError::FieldName),
            ),
            (
                b"0\r\nX: a\r\n b\r\n\r\n",
                ChunkedError::Trailers(HeadError::ObsFold),
            ),
            (
                b"0\r\nX: \x00\r\n\r\n",
                ChunkedError::Trailers(HeadError::ControlByte),
            ),
        ];
        for (input, error) in cases {
            assert_eq!(
                decode_all(input),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            decode_all(b"0\r\nno colon\r\n\r\n"),
            Err(ChunkedError::Trailers(HeadError::FieldName))
        );
    }

    #[test]
    fn trailer_section_length_capped() {
        let mut body = b"0\r\nX: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', TRAILER_LIMITS.max_head_bytes));
        assert!(matches!(
            decode_all(&body),
            Err(ChunkedError::Trailers(HeadError::TooLarge { .. }))
        ));
        let mut body = b"0\r\n".to_vec();
        for i in 0..=TRAILER_LIMITS.max_headers {
            body.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        assert_eq!(
            decode_all(&body),
            Err(ChunkedError::Trailers(HeadError::TooManyFields))
        );
    }

    #[test]
    fn encodes_canonical_chunks() {
        let mut out = Vec::new();
        encode_chunk_header(0x1a2b, &mut out);
        assert_eq!(out, b"1a2b\r\n");
        out.clear();
        encode_last_chunk(&[], &mut out);
        assert_eq!(out, b"0\r\n\r\n");
        out.clear();
        encode_last_chunk(&[header("X-Sum", "1")], &mut out);
        assert_eq!(out, b"0\r\nX-Sum: 1\r\n\r\n");
    }

    /// A chunked body with arbitrary chunk sizes, extensions and trailers.
    fn chunked_body() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 1..40),
                    "(;[a-z]{1,5}(=[a-z0-9]{0,5})?)?",
                ),
                0..5,
            ),
            proptest::collection::vec("X-[a-z]{1,6}: [ -~]{0,10}", 0..3),
        )
            .prop_map(|(chunks, trailers)| {
                let mut wire = Vec::new();
                let mut data = Vec::new();
                for (chunk, ext) in chunks {
                    wire.extend_from_slice(format!("{:X}{ext}\r\n", chunk.len()).as_bytes());
                    wire.extend_from_slice(&chunk);
                    wire.extend_from_slice(b"\r\n");
                    data.extend_from_slice(&chunk);
                }
                wire.extend_from_slice(b"0\r\n");
                for t in trailers {
                    wire.extend_from_slice(t.as_bytes());
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"\r\nNEXT");
                (wire, data)
            })
    }

    proptest! {
        #[test]
        fn valid_bodies_decode_at_every_split((wire, data) in chunked_body()) {
            let whole = decode_all(&wire).unwrap();
            prop_assert_eq!(&whole.data, &data);
            prop_assert_eq!(&whole.rest, b"NEXT");
            for at in 0..=wire.len() {
                let (a, b) = wire.split_at(at);
                prop_assert_eq!(&decode_pieces(&[a, b]).unwrap(), &whole);
            }
        }

        #[test]
        fn reencoding_round_trips((wire, data) in chunked_body()) {
            let whole = decode_all(&wire).unwrap();
            let mut out = Vec::new();
            if !whole.data.is_empty() {
                encode_chunk_header(whole.data.len(), &mut out);
                out.extend_from_slice(&whole.data);
                out.extend_from_slice(b"\r\n");
            }
            encode_last_chunk(whole.trailers.as_deref().unwrap_or(&[]), &mut out);
            let again = decode_all(&out).unwrap();
            prop_assert_eq!(&again.data, &data);
            prop_assert_eq!(again.trailers, whole.trailers);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_split_the_same(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b'1'), Just(b';'), Just(b':'), any::<u8>()],
                0..64,
            ),
            at in any::<proptest::sample::Index>(),
        ) {
            let whole = decode_all(&input);
            let (a, b) = input.split_at(at.index(input.len() + 1));
            prop_assert_eq!(decode_pieces(&[a, b]), whole);
        }
    }
}
