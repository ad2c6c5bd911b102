//! What the fuzz targets share: how an input is cut into reads, and the
//! contract every incremental head parser keeps (the relay re-parses its
//! buffer after each read, so a parse must not depend on where reads ended).

use tcpvs::protocols::http::Limits;

/// The limits of the head parsers under test: small, so that the fuzzer's
/// inputs soon reach both.
pub const LIMITS: Limits = Limits {
    max_head_bytes: 512,
    max_headers: 16,
};

/// The limits of the peer that reads what we write (a head we forward gains
/// Host, X-Forwarded-* and framing fields): not what is under test there.
pub const PEER_LIMITS: Limits = Limits {
    max_head_bytes: 1 << 20,
    max_headers: 1 << 10,
};

/// Splits inputs whose first byte says how the rest arrives: as reads of
/// the sizes `reads` gives. The fuzzer mutates that byte like any other, so
/// it explores read patterns and contents together, while a seed file stays
/// readable text after its first byte.
pub fn split_first(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&seed, rest)| (seed, rest))
}

/// Read sizes for `seed`: an endless, deterministic sequence of 1 to 64
/// bytes, mostly small (where boundaries fall inside lines and CRLFs).
pub fn reads(seed: u8) -> impl Iterator<Item = usize> {
    // xorshift32: enough to scatter the cuts, and the same on every run.
    let mut state = u32::from(seed) | 0x9e37_0000;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = match state % 8 {
            0..=4 => state >> 8 & 0x3,
            5 | 6 => state >> 8 & 0xf,
            _ => state >> 8 & 0x3f,
        };
        size as usize + 1
    })
}

/// One read of everything: what `reads` is compared with.
pub fn at_once() -> impl Iterator<Item = usize> {
    std::iter::repeat(usize::MAX)
}

/// The lengths at which a head parser is asked about a prefix of `buf`: after
/// every CR and LF (where reads of line-oriented peers end, and where the
/// parser's state changes) and one byte short of the whole, at most 64 of
/// them so that a long input stays cheap.
fn probes(buf: &[u8]) -> impl Iterator<Item = usize> + '_ {
    buf.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\r' || b == b'\n')
        .map(|(i, _)| i + 1)
        .take(64)
        .chain(buf.len().checked_sub(1))
}

/// Checks the contract of an incremental head parser on `buf`, and returns
/// the verdict on the whole:
/// - a complete head ends in CRLF CRLF, within the buffer, and is found
///   again, the same, in its own bytes;
/// - a prefix of a complete head is incomplete, and a prefix of a refused
///   one is incomplete or refused for the same reason;
/// - incomplete means no empty line has arrived (after the empty lines a
///   request may start with);
/// - a refusal is final: more bytes never change it.
pub fn check_head_parser<T, E>(
    buf: &[u8],
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Result<Option<(T, usize)>, E>
where
    T: PartialEq + std::fmt::Debug,
    E: PartialEq + std::fmt::Debug,
{
    let whole = parse(buf);
    let complete_at = match &whole {
        Ok(Some((_, n))) => *n,
        _ => buf.len() + 1,
    };
    for end in probes(buf).filter(|&end| end < complete_at) {
        match parse(&buf[..end]) {
            Ok(None) => {}
            Err(e) if whole.as_ref().err() == Some(&e) => {}
            other => panic!("prefix of {end} bytes: {other:?}, the whole: {whole:?}"),
        }
    }
    match &whole {
        Ok(Some((head, n))) => {
            assert!(*n <= buf.len(), "head of {n} bytes in {} bytes", buf.len());
            assert!(buf[..*n].ends_with(b"\r\n\r\n"), "head without CRLF CRLF");
            match parse(&buf[..*n]) {
                Ok(Some((again, m))) => {
                    assert_eq!((&again, m), (head, *n), "not found in its own bytes")
                }
                other => panic!("not found in its own bytes: {other:?}"),
            }
        }
        Ok(None) => {
            let leading = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n');
            let rest = &buf[leading.count()..];
            assert!(
                !rest.windows(4).any(|w| w == b"\r\n\r\n"),
                "an empty line has arrived, yet the head is incomplete"
            );
        }
        Err(first) => {
            let longer = [buf, b"\r\n\r\n"].concat();
            assert_eq!(
                parse(&longer).err().as_ref(),
                Some(first),
                "a refusal changed by more bytes"
            );
        }
    }
    whole
}
