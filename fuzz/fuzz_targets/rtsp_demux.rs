//! The RTSP demultiplexer: one direction of a connection split into message
//! heads and opaque bytes (bodies and `$`-interleaved frames), as the relay
//! feeds it after every read.
//!
//! Input: a first byte choosing the read sizes (`same_in_any_reads`), then
//! the bytes of the direction. Whatever the reads, the same heads, opaque
//! bytes and error come out as when everything is there at once; and every
//! head, written as the relay writes it, parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpvs::protocols::http::Header;
use tcpvs::protocols::rtsp::{parse_message, salvage_cseq, Demux, Message, MessageError, Step};
use tcpvs_fuzz::{check_head_parser, same_in_any_reads, Reads, LIMITS, PEER_LIMITS};

fuzz_target!(|data: &[u8]| {
    let Some((wire, whole)) = same_in_any_reads(data, demux) else {
        return;
    };
    for unit in &whole.units {
        if let Unit::Head(message) = unit {
            written_reads_the_same(message);
        }
    }
    // The head parser alone, as the demultiplexer calls it at a boundary.
    if wire.first() != Some(&b'$') {
        let _ = check_head_parser(wire, |buf| parse_message(buf, &LIMITS));
    }
});

#[derive(Debug, PartialEq, Eq)]
enum Unit {
    Head(Box<Message>),
    /// Opaque bytes between heads, runs of them joined.
    Opaque(Vec<u8>),
}

#[derive(Debug, PartialEq, Eq)]
struct Split {
    units: Vec<Unit>,
    error: Option<MessageError>,
    /// Bytes left when the input ran out (an incomplete head or frame
    /// header); none after an error.
    left: Vec<u8>,
}

/// Splits `wire` arriving in reads of the given sizes.
fn demux(wire: &[u8], mut sizes: Reads) -> Split {
    let mut demux = Demux::new();
    let mut split = Split {
        units: Vec::new(),
        error: None,
        left: Vec::new(),
    };
    let buf = &mut split.left;
    let mut fed = 0;
    loop {
        match demux.step(buf, &LIMITS) {
            Ok(Step::More) => {
                if fed == wire.len() {
                    break;
                }
                let n = sizes.next().unwrap_or(1).min(wire.len() - fed);
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
            }
            Ok(Step::Opaque(n)) => {
                assert!(n >= 1 && n <= buf.len(), "opaque {n} of {}", buf.len());
                let bytes = buf.drain(..n);
                match split.units.last_mut() {
                    Some(Unit::Opaque(run)) => run.extend(bytes),
                    _ => split.units.push(Unit::Opaque(bytes.collect())),
                }
            }
            Ok(Step::Message(message, len)) => {
                assert!(len >= 1 && len <= buf.len(), "head {len} of {}", buf.len());
                buf.drain(..len);
                split.units.push(Unit::Head(message));
            }
            Err(error) => {
                // The relay answers with the CSeq it can still read.
                salvage_cseq(buf);
                split.error = Some(error);
                // How much had arrived behind the error depends on the reads.
                buf.clear();
                break;
            }
        }
    }
    split
}

/// The head as the relay writes it for the other side parses to the same
/// message; only Content-Length moves to the end, as we counted it.
fn written_reads_the_same(message: &Message) {
    let mut out = Vec::new();
    message.write(&mut out);
    let sent = String::from_utf8_lossy(&out);
    let again = match parse_message(&out, &PEER_LIMITS) {
        Ok(Some((again, n))) if n == out.len() => again,
        other => panic!("written head not read back whole: {other:?}\n{sent}"),
    };
    let mut expected = message.clone();
    expected.headers.retain(|h| !h.is("content-length"));
    if message.body_len > 0 {
        expected.headers.push(Header {
            name: "Content-Length".into(),
            value: message.body_len.to_string().as_bytes().into(),
        });
    }
    assert_eq!(again, expected, "{sent}");
}
