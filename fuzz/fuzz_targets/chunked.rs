//! The chunked body decoder, fed as the relay feeds it: what arrived and was
//! not yet consumed, after every read.
//!
//! Input: a first byte choosing the read sizes (`same_in_any_reads`), then
//! the body's bytes. Whatever the reads, the decoder must find the same data,
//! trailers, error and end as when it is given everything at once; and a body
//! it accepted, re-encoded the way the relay re-encodes it, decodes to the
//! same data and trailers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpvs::protocols::http::{
    encode_chunk_header, encode_last_chunk, ChunkEvent, ChunkedDecoder, ChunkedError, Header,
};
use tcpvs_fuzz::{same_in_any_reads, Reads};

fuzz_target!(|data: &[u8]| {
    let Some((_, whole)) = same_in_any_reads(data, decode) else {
        return;
    };
    if let Some(trailers) = &whole.trailers {
        let canonical = encode(&whole.data, trailers);
        let again = decode(&canonical, Box::new(std::iter::once(canonical.len())));
        let expected = Decoded {
            consumed: canonical.len(),
            ..whole
        };
        assert_eq!(again, expected, "re-encoded: {canonical:?}");
    }
});

/// All a body decoded to.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    data: Vec<u8>,
    /// Set when the last chunk and trailer section were read.
    trailers: Option<Vec<Header>>,
    error: Option<ChunkedError>,
    /// Bytes the decoder took: the body's length when it ended (0 after an
    /// error).
    consumed: usize,
}

/// Decodes `wire` arriving in reads of the given sizes, checking on each
/// call what the decoder promises about its return values.
fn decode(wire: &[u8], mut sizes: Reads) -> Decoded {
    let mut decoder = ChunkedDecoder::new();
    let mut out = Decoded {
        data: Vec::new(),
        trailers: None,
        error: None,
        consumed: 0,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    while fed < wire.len() && out.error.is_none() && !decoder.is_done() {
        let n = sizes.next().unwrap_or(1).min(wire.len() - fed);
        buf.extend_from_slice(&wire[fed..fed + n]);
        fed += n;
        while !buf.is_empty() && !decoder.is_done() {
            let (consumed, event) = match decoder.decode(&buf) {
                Ok(step) => step,
                Err(error) => {
                    out.error = Some(error);
                    // What a failing call had read is not reported.
                    out.consumed = 0;
                    break;
                }
            };
            assert!(
                consumed <= buf.len(),
                "consumed {consumed} of {}",
                buf.len()
            );
            match event {
                Some(ChunkEvent::Data(range)) => {
                    assert!(!range.is_empty() && range.end <= consumed, "{range:?}");
                    out.data.extend_from_slice(&buf[range]);
                }
                Some(ChunkEvent::End { trailers }) => {
                    assert!(decoder.is_done());
                    out.trailers = Some(trailers);
                }
                // Without an event, all is consumed: more input is needed.
                None => assert_eq!(consumed, buf.len(), "stopped without a reason"),
            }
            buf.drain(..consumed);
            out.consumed += consumed;
        }
    }
    if decoder.is_done() {
        // The bytes after the body belong to the next message.
        assert_eq!(decoder.decode(b"0\r\n\r\n"), Ok((0, None)));
    }
    out
}

/// The body as the relay re-encodes it: one chunk for all the data.
fn encode(data: &[u8], trailers: &[Header]) -> Vec<u8> {
    let mut out = Vec::new();
    if !data.is_empty() {
        encode_chunk_header(data.len(), &mut out);
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    encode_last_chunk(trailers, &mut out);
    out
}
