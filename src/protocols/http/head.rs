//! Finding the end of a message head and checking its raw bytes.
//!
//! General parsers such as `httparse` accept bare LF line endings and stop at
//! the first line they cannot read; they do not bound a head by size nor tell a
//! too-long request line from a too-large head. This scan runs first over every
//! head we read (requests, responses, chunked trailer sections) so that the
//! byte-level rules of RFC 9112 2.2 and 5 hold before any field is interpreted;
//! then the field lines it checked are split here too (the tests check the
//! split against httparse's).

use std::ops::Range;

use super::{fields, FieldName, FieldValue, Fields, Header, Limits, Version};

/// Why the bytes of a head are unacceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("bare LF line ending")]
    BareLf,
    #[error("bare CR")]
    BareCr,
    #[error("control byte in head")]
    ControlByte,
    #[error("obsolete line folding")]
    ObsFold,
    #[error("empty start line")]
    EmptyStartLine,
    #[error("head too large")]
    TooLarge { start_line_complete: bool },
    #[error("too many header fields")]
    TooManyFields,
    #[error("invalid field name")]
    FieldName,
    #[error("invalid field value")]
    FieldValue,
}

/// What precedes the field lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartLine {
    /// A request line; empty lines before it are skipped (RFC 9112 2.2).
    Request,
    /// A status line.
    Response,
    /// Nothing: a chunked trailer section (RFC 9112 7.1.2).
    Absent,
}

/// Where the parts of a complete head lie in the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// The start line without its CRLF (empty for `StartLine::Absent`).
    pub start_line: Range<usize>,
    /// The field lines and the final empty line; `fields.end` is the length of the head.
    pub fields: Range<usize>,
}

/// Finds a complete head at the start of `buf`, checking every byte on the way.
///
/// `Ok(None)` means the head is incomplete but still within `limits`. Errors are
/// reported as soon as the offending bytes are seen, so a peer cannot trickle a bad
/// head until the deadline.
pub(crate) fn scan(
    buf: &[u8],
    limits: &Limits,
    start: StartLine,
) -> Result<Option<Head>, HeadError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let mut pos = 0;
    if start == StartLine::Request {
        while window[pos..].starts_with(b"\r\n") {
            pos += 2;
        }
    }
    let mut start_line = (start == StartLine::Absent).then_some(pos..pos);
    let mut fields_start = pos;
    let mut line_start = pos;
    let mut field_lines = 0usize;

    while pos < window.len() {
        // Mid-line, whole words of plain bytes need no look one by one.
        if pos != line_start {
            pos += plain_prefix(&window[pos..]);
            if pos == window.len() {
                break;
            }
        }
        let byte = window[pos];
        // A field line starting with whitespace is obs-fold, or whitespace between the
        // start line and the first field (RFC 9112 2.2, 5.2): both are rejected.
        if pos == line_start && start_line.is_some() && matches!(byte, b' ' | b'\t') {
            return Err(HeadError::ObsFold);
        }
        match byte {
            b'\r' => {
                match window.get(pos + 1) {
                    None => break,
                    Some(b'\n') => {}
                    Some(_) => return Err(HeadError::BareCr),
                }
                let line = line_start..pos;
                pos += 2;
                line_start = pos;
                match &start_line {
                    None if line.is_empty() => return Err(HeadError::EmptyStartLine),
                    None => {
                        start_line = Some(line);
                        fields_start = pos;
                    }
                    Some(first) if line.is_empty() => {
                        return Ok(Some(Head {
                            start_line: first.clone(),
                            fields: fields_start..pos,
                        }));
                    }
                    Some(_) => {
                        field_lines += 1;
                        if field_lines > limits.max_headers {
                            return Err(HeadError::TooManyFields);
                        }
                    }
                }
                continue;
            }
            // Only CRLF ends a line here; a lone LF is how requests are smuggled past
            // a peer that splits lines differently (RFC 9112 2.2).
            b'\n' => return Err(HeadError::BareLf),
            b'\t' => {}
            0..=0x1f | 0x7f => return Err(HeadError::ControlByte),
            _ => {}
        }
        pos += 1;
    }

    if buf.len() >= limits.max_head_bytes {
        return Err(HeadError::TooLarge {
            start_line_complete: start_line.is_some(),
        });
    }
    Ok(None)
}

/// The length of the longest run of whole 8-byte words at the start of
/// `bytes` without a control byte (below 0x20, or 0x7f): bytes the scan would
/// pass over one at a time. Most of a head is such bytes; testing a word at
/// once makes the scan several times faster.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut len = 0;
    for word in bytes.chunks_exact(8) {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        let w = u64::from_ne_bytes(eight);
        // Non-zero when some byte is below 0x20 (exact for "any": the borrow
        // only runs past a byte that is itself below), or is 0x7f.
        let below_space = w.wrapping_sub(0x20 * ONES) & !w & HIGH;
        let del = w ^ (0x7f * ONES);
        let is_del = del.wrapping_sub(ONES) & !del & HIGH;
        if below_space | is_del != 0 {
            break;
        }
        len += 8;
    }
    len
}

/// Splits field lines (already checked by `scan`: CRLF line ends, no control
/// byte but HTAB, no obs-fold, the final empty line) into headers, in order.
///
/// field-line = field-name ":" OWS field-value OWS (RFC 9112 5), the name a
/// token with no whitespace before the colon (RFC 9112 5.1). The value's bytes
/// were checked by `scan`: what is left (VCHAR, obs-text, SP, HTAB) is allowed.
pub(crate) fn parse_fields(fields: &[u8], max_headers: usize) -> Result<Fields, HeadError> {
    let mut headers = Fields::new();
    let mut rest = fields;
    while !rest.starts_with(b"\r\n") {
        if headers.len() == max_headers {
            return Err(HeadError::TooManyFields);
        }
        let name_len = rest
            .iter()
            .position(|&b| !fields::is_tchar(b))
            .unwrap_or(rest.len());
        if name_len == 0 || rest.get(name_len) != Some(&b':') {
            return Err(HeadError::FieldName);
        }
        let value = &rest[name_len + 1..];
        // `scan` only lets a CR through as the start of a CRLF.
        let value_len = line_length(value).ok_or(HeadError::FieldValue)?;
        // A token is ASCII.
        let name = std::str::from_utf8(&rest[..name_len]).map_err(|_| HeadError::FieldName)?;
        headers.push(Header {
            name: FieldName::new(name),
            value: FieldValue::from_slice(fields::trim_ows(&value[..value_len])),
        });
        rest = value.get(value_len + 2..).ok_or(HeadError::FieldValue)?;
    }
    Ok(headers)
}

/// Where the line at the start of `bytes` ends (its CR), passing over plain
/// bytes a word at a time.
fn line_length(bytes: &[u8]) -> Option<usize> {
    let plain = plain_prefix(bytes);
    let tail = bytes[plain..].iter().position(|&b| b == b'\r')?;
    Some(plain + tail)
}

/// How an HTTP-version token reads (RFC 9112 2.3: `HTTP/` DIGIT `.` DIGIT, case-sensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VersionToken {
    Supported(Version),
    /// Well-formed but not HTTP/1.x: 505 for a request.
    Unsupported,
    Invalid,
}

/// A higher 1.x minor version reads as 1.1 (RFC 9112 2.3: a recipient treats
/// a higher minor version as the highest it supports), in a request as in a
/// response; other majors and 0.9 are unsupported.
pub(crate) fn version(token: &[u8]) -> VersionToken {
    match token {
        b"HTTP/1.0" => VersionToken::Supported(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if (b'1'..=b'9').contains(minor) => {
            VersionToken::Supported(Version::Http11)
        }
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            VersionToken::Unsupported
        }
        _ => VersionToken::Invalid,
    }
}

/// The contract the relay relies on when it parses a head as its bytes
/// arrive, checked on any input by the request and response proptests:
/// - every prefix of the bytes is incomplete (`Ok(None)`) or refused with the
///   very error the whole is refused with: a split between two reads never
///   changes the verdict, and never accepts what the whole refuses;
/// - a complete head ends with CRLF CRLF (bare LF endings are refused) and is
///   found at the same length in its own bytes;
/// - an error is final: more bytes never turn a refused head into an accepted
///   or incomplete one (the relay answers at the first error);
/// - "incomplete" means no empty line has arrived yet (after the empty lines
///   a request may start with).
#[cfg(any(test, feature = "fuzzing"))]
pub fn check_incremental_contract<T, E>(
    buf: &[u8],
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
) where
    T: PartialEq + std::fmt::Debug,
    E: PartialEq + std::fmt::Debug,
{
    let whole = parse(buf);
    let complete_at = match &whole {
        Ok(Some((_, n))) => *n,
        _ => buf.len() + 1,
    };
    for end in 0..buf.len().min(complete_at) {
        match parse(&buf[..end]) {
            Ok(None) => {}
            Err(e) if whole.as_ref().err() == Some(&e) => {}
            other => panic!("prefix of {end} bytes: {other:?}, the whole: {whole:?}"),
        }
    }
    match whole {
        Ok(Some((head, n))) => {
            assert!(n <= buf.len(), "length {n} past the buffer");
            assert!(
                buf[..n].ends_with(b"\r\n\r\n"),
                "head of {n} bytes without CRLF CRLF"
            );
            assert_eq!(
                parse(&buf[..n]),
                Ok(Some((head, n))),
                "not found in its own bytes"
            );
        }
        Ok(None) => {
            let leading = buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            let rest = &buf[leading..];
            assert!(
                !rest.windows(4).any(|w| w == b"\r\n\r\n"),
                "an empty line has arrived, yet the head is incomplete"
            );
        }
        Err(first) => {
            for more in [&b"\r\n"[..], b"\r\n\r\n", b"Host: a\r\n\r\n"] {
                let longer = [buf, more].concat();
                assert_eq!(
                    parse(&longer).err().as_ref(),
                    Some(&first),
                    "an error undone or changed by more bytes"
                );
            }
        }
    }
}

/// Field lines for the contract proptests: mostly well-formed, some with a
/// bare CR or LF, a missing line end, or odd bytes in the name or value.
#[cfg(test)]
pub(crate) fn field_lines() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let ending = prop::sample::select(vec!["\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\n", "\r", ""]);
    let line = prop_oneof![
        4 => "(Host|Content-Length|Transfer-Encoding|Connection|X-[a-z]{1,4}): [ -~]{0,8}",
        1 => "Content-Length: [0-9 ,]{0,4}",
        1 => "Transfer-Encoding: (chunked|gzip|identity)(, chunked)?",
        1 => "[!-~]{0,10}:[ -~\t\x00\x7f]{0,12}",
    ];
    proptest::collection::vec((line, ending), 0..7)
        .prop_map(|lines| lines.into_iter().map(|(l, e)| l + e).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(bytes: usize, headers: usize) -> Limits {
        Limits {
            max_head_bytes: bytes,
            max_headers: headers,
        }
    }

    #[test]
    fn plain_prefix_stops_at_the_word_holding_a_control_byte() {
        let plain = b"abcdefgh\x80\xff ~!#$%ABCDEFGH";
        assert_eq!(plain_prefix(plain), 24);
        for bad in [b'\r', b'\n', b'\t', 0, 0x1f, 0x7f] {
            for at in 0..24 {
                let mut bytes = plain.to_vec();
                bytes[at] = bad;
                assert_eq!(plain_prefix(&bytes), at / 8 * 8, "{bad:#x} at {at}");
            }
        }
        // A tail shorter than a word is left to the byte-wise scan.
        assert_eq!(plain_prefix(b"abcdefghijk"), 8);
    }

    proptest::proptest! {
        /// The word-wise skip never passes a byte the byte-wise scan would stop at.
        #[test]
        fn plain_prefix_matches_bytewise(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let control = |b: &u8| *b < 0x20 || *b == 0x7f;
            let first = bytes.iter().position(control).unwrap_or(bytes.len());
            proptest::prop_assert_eq!(plain_prefix(&bytes), first / 8 * 8);
        }
    }

    fn scan_default(buf: &[u8], start: StartLine) -> Result<Option<Head>, HeadError> {
        scan(buf, &Limits::default(), start)
    }

    #[test]
    fn complete_head_is_found() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
        let head = scan_default(buf, StartLine::Request).unwrap().unwrap();
        assert_eq!(&buf[head.start_line], b"GET / HTTP/1.1");
        assert_eq!(&buf[head.fields.clone()], b"Host: a\r\n\r\n");
        assert_eq!(head.fields.end, buf.len() - 4);
    }

    #[test]
    fn incomplete_head_waits() {
        for buf in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n"[..],
            b"GET / HTTP/1.1\r",
            b"",
            b"\r",
        ] {
            assert_eq!(scan_default(buf, StartLine::Request), Ok(None));
        }
    }

    #[test]
    fn bare_lf_rejected() {
        for buf in [
            &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
            b"\nGET / HTTP/1.1\r\n",
        ] {
            assert_eq!(
                scan_default(buf, StartLine::Request),
                Err(HeadError::BareLf)
            );
        }
    }

    #[test]
    fn bare_cr_rejected() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n";
        assert_eq!(
            scan_default(buf, StartLine::Request),
            Err(HeadError::BareCr)
        );
    }

    #[test]
    fn nul_and_control_bytes_rejected() {
        for bad in [0u8, 0x01, 0x0b, 0x0c, 0x1b, 0x7f] {
            let mut buf = b"GET / HTTP/1.1\r\nX: a".to_vec();
            buf.push(bad);
            buf.extend_from_slice(b"\r\n\r\n");
            assert_eq!(
                scan_default(&buf, StartLine::Request),
                Err(HeadError::ControlByte)
            );
        }
    }

    #[test]
    fn obs_fold_rejected() {
        let buf = b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n";
        assert_eq!(
            scan_default(buf, StartLine::Request),
            Err(HeadError::ObsFold)
        );
        let buf = b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n";
        assert_eq!(
            scan_default(buf, StartLine::Request),
            Err(HeadError::ObsFold)
        );
    }

    #[test]
    fn whitespace_before_first_field_rejected() {
        let buf = b"GET / HTTP/1.1\r\n Host: a\r\n\r\n";
        assert_eq!(
            scan_default(buf, StartLine::Request),
            Err(HeadError::ObsFold)
        );
    }

    #[test]
    fn leading_empty_lines_skipped_for_requests_only() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let head = scan_default(buf, StartLine::Request).unwrap().unwrap();
        assert_eq!(&buf[head.start_line], b"GET / HTTP/1.1");
        assert_eq!(head.fields.end, buf.len());
        let buf = b"\r\nHTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(
            scan_default(buf, StartLine::Response),
            Err(HeadError::EmptyStartLine)
        );
    }

    #[test]
    fn head_over_limit_is_too_large() {
        let buf = b"GET / HTTP/1.1\r\nX: aaaaaaaa\r\n\r\n";
        // Exactly at the limit is fine; one byte less is not.
        assert!(scan(buf, &limits(buf.len(), 10), StartLine::Request)
            .unwrap()
            .is_some());
        assert_eq!(
            scan(buf, &limits(buf.len() - 1, 10), StartLine::Request),
            Err(HeadError::TooLarge {
                start_line_complete: true
            })
        );
        assert_eq!(
            scan(buf, &limits(10, 10), StartLine::Request),
            Err(HeadError::TooLarge {
                start_line_complete: false
            })
        );
    }

    #[test]
    fn incomplete_head_at_limit_is_too_large() {
        let buf = b"GET / HTTP/1.1\r\nX: a";
        assert_eq!(
            scan(buf, &limits(buf.len(), 10), StartLine::Request),
            Err(HeadError::TooLarge {
                start_line_complete: true
            })
        );
    }

    #[test]
    fn too_many_fields_detected_before_head_ends() {
        let buf = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n";
        assert_eq!(
            scan(buf, &limits(1024, 2), StartLine::Request),
            Err(HeadError::TooManyFields)
        );
        let buf = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(scan(buf, &limits(1024, 2), StartLine::Request)
            .unwrap()
            .is_some());
    }

    #[test]
    fn trailer_section_has_no_start_line() {
        let head = scan_default(b"\r\n", StartLine::Absent).unwrap().unwrap();
        assert_eq!(head.fields, 0..2);
        let buf = b"X: 1\r\n\r\n";
        let head = scan_default(buf, StartLine::Absent).unwrap().unwrap();
        assert_eq!(head.fields, 0..buf.len());
    }

    /// What httparse (which split the fields before) makes of a field block:
    /// the headers, or whether it refused a name or something else.
    fn httparse_fields(fields: &[u8]) -> Result<Vec<(String, Vec<u8>)>, HeadError> {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        match httparse::parse_headers(fields, &mut slots) {
            Ok(httparse::Status::Complete((_, parsed))) => Ok(parsed
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect()),
            Err(httparse::Error::HeaderName) => Err(HeadError::FieldName),
            _ => Err(HeadError::FieldValue),
        }
    }

    proptest::proptest! {
        /// On every field block `scan` lets through, the split agrees with
        /// httparse's: the same names and values, or a refusal of a name.
        #[test]
        fn fields_split_as_httparse_splits_them(
            lines in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(
                    b"aZ09-_!~:; \t\"(),/\x80\xe9".to_vec()), 0..12),
                0..6)
        ) {
            let mut block = Vec::new();
            for line in &lines {
                block.extend_from_slice(line);
                block.extend_from_slice(b"\r\n");
            }
            block.extend_from_slice(b"\r\n");
            let Ok(Some(_)) = scan_default(&block, StartLine::Absent) else {
                return Ok(());
            };
            let ours = parse_fields(&block, 64).map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect::<Vec<_>>()
            });
            let theirs = httparse_fields(&block);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                // httparse reports some bad names as other errors; both refuse.
                (Err(_), Err(_)) => {}
                _ => proptest::prop_assert!(false, "{:?}: ours {:?}, httparse {:?}",
                    String::from_utf8_lossy(&block), ours, theirs),
            }
        }
    }

    #[test]
    fn more_fields_than_allowed_are_refused() {
        assert_eq!(
            parse_fields(b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 2),
            Err(HeadError::TooManyFields)
        );
        assert_eq!(
            parse_fields(b"A: 1\r\nB: 2\r\n\r\n", 2).map(|f| f.len()),
            Ok(2)
        );
    }

    #[test]
    fn whitespace_before_colon_rejected() {
        assert_eq!(
            parse_fields(b"Host : a\r\n\r\n", 10),
            Err(HeadError::FieldName)
        );
        assert_eq!(
            parse_fields(b"Host\t: a\r\n\r\n", 10),
            Err(HeadError::FieldName)
        );
    }

    #[test]
    fn non_token_field_names_rejected() {
        for buf in [
            &b": a\r\n\r\n"[..],
            b"Ho\"st: a\r\n\r\n",
            b"Ho(st: a\r\n\r\n",
            b"H\xc3\xa9: a\r\n\r\n",
        ] {
            assert_eq!(parse_fields(buf, 10), Err(HeadError::FieldName));
        }
    }

    #[test]
    fn field_values_are_trimmed_and_may_hold_obs_text() {
        let fields = parse_fields(b"X:  a b\t \r\nY: \xe9\r\nZ:\r\n\r\n", 10).unwrap();
        assert_eq!(&fields[0].value[..], b"a b");
        assert_eq!(&fields[1].value[..], b"\xe9");
        assert_eq!(&fields[2].value[..], b"");
    }

    #[test]
    fn version_tokens() {
        assert_eq!(
            version(b"HTTP/1.1"),
            VersionToken::Supported(Version::Http11)
        );
        assert_eq!(
            version(b"HTTP/1.0"),
            VersionToken::Supported(Version::Http10)
        );
        assert_eq!(version(b"HTTP/2.0"), VersionToken::Unsupported);
        assert_eq!(version(b"HTTP/3.1"), VersionToken::Unsupported);
        for higher in [&b"HTTP/1.2"[..], b"HTTP/1.5", b"HTTP/1.9"] {
            assert_eq!(version(higher), VersionToken::Supported(Version::Http11));
        }
        assert_eq!(version(b"HTTP/0.9"), VersionToken::Unsupported);
        for bad in [
            &b"http/1.1"[..],
            b"HTTP/1.1 ",
            b"HTTP/11",
            b"HTTP/1.10",
            b"RTSP/1.0",
            b"",
        ] {
            assert_eq!(version(bad), VersionToken::Invalid);
        }
    }
}
