//! The fields that frame, route or scope a message: Content-Length,
//! Transfer-Encoding, Connection and Host (RFC 9110 5.6, 7.2, 7.6.1, 8.6; RFC 9112 6).
//!
//! Request and response parsing, the forwarder and the chunked decoder all read
//! these through the same functions, so the two sides of the proxy can never
//! disagree about a message's length.

use super::Header;

/// Why a message's length cannot be determined safely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("invalid Transfer-Encoding")]
    TransferEncoding,
    #[error("unknown transfer coding")]
    UnknownCoding,
    #[error("both Transfer-Encoding and Content-Length")]
    TransferEncodingAndContentLength,
}

/// Fields that only concern one connection (RFC 9110 7.6.1) or that we re-emit
/// ourselves (framing, Host): never copied from one side to the other.
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
];

/// Transfer codings we know of, other than `chunked` (IANA registry; `identity` was
/// removed by RFC 7230 but is still sent).
const KNOWN_CODINGS: &[&str] = &[
    "compress",
    "deflate",
    "gzip",
    "x-compress",
    "x-gzip",
    "identity",
];

/// tchar (RFC 9110 5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHARS[usize::from(b)]
}

/// Which bytes are tchar: a table, as every field name of every head is
/// checked byte by byte.
const TCHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// token = 1*tchar (RFC 9110 5.6.2).
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Removes optional whitespace around a list member (RFC 9110 5.6.3).
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// Whether a received name would be read as `lower` by a peer that treats `_` as `-`
/// (some servers do): such look-alikes of framing fields are never forwarded.
pub(crate) fn name_alike(name: &str, lower: &str) -> bool {
    name.len() == lower.len()
        && name
            .bytes()
            .zip(lower.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// Every member of the comma-separated lists in all `name` lines, trimmed; empty
/// members are kept so that callers can reject them. Several lines form one list
/// (RFC 9110 5.3).
pub(crate) fn list_members<'a>(
    headers: &'a [Header],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.is(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(trim_ows)
}

/// Whether any line named `name` exists.
pub(crate) fn has_field(headers: &[Header], name: &str) -> bool {
    headers.iter().any(|h| h.is(name))
}

/// Whether a list field (such as Connection) holds `token`, case-insensitively.
pub(crate) fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    list_members(headers, name).any(|m| m.eq_ignore_ascii_case(token.as_bytes()))
}

/// The longest body length taken, from Content-Length or a chunk size: what a
/// signed 64-bit offset holds. A longer one is refused (400), as HAProxy and
/// nginx do: forwarded, it would be read differently by any server whose
/// parser uses signed offsets.
pub(crate) const MAX_LENGTH: u64 = i64::MAX as u64;

/// The message length from Content-Length (RFC 9110 8.6): `None` when absent.
///
/// Each member must be 1*DIGIT and at most [`MAX_LENGTH`]; a list or repeated lines are
/// accepted only when every value is the same, since that is a duplicate made by an
/// upstream, while differing values cannot be resolved (RFC 9112 6.3 rule 5).
pub(crate) fn content_length(headers: &[Header]) -> Result<Option<u64>, FramingError> {
    let mut length = None;
    for member in list_members(headers, "content-length") {
        let value = parse_decimal(member)
            .filter(|&length| length <= MAX_LENGTH)
            .ok_or(FramingError::ContentLength)?;
        if length.is_some_and(|seen| seen != value) {
            return Err(FramingError::ContentLength);
        }
        length = Some(value);
    }
    Ok(length)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let digit = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// What a Transfer-Encoding list says, once it is known to be well-formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TransferCodings {
    /// `chunked` is the last coding, so the body is chunked (RFC 9112 6.3 rule 4).
    pub chunked_last: bool,
    /// The list is exactly `chunked`.
    pub only_chunked: bool,
    /// Some coding is neither `chunked` nor a registered one.
    pub unknown: bool,
}

/// Reads all Transfer-Encoding lines as one list (RFC 9112 6.1); `None` when absent.
///
/// Empty members, members that are not a bare token (parameters included, since
/// `chunked` takes none) and `chunked` applied twice (RFC 9112 7) are errors.
pub(crate) fn transfer_codings(
    headers: &[Header],
) -> Result<Option<TransferCodings>, FramingError> {
    if !has_field(headers, "transfer-encoding") {
        return Ok(None);
    }
    let mut count = 0;
    let mut chunked_at = None;
    let mut unknown = false;
    for member in list_members(headers, "transfer-encoding") {
        if !is_token(member) {
            return Err(FramingError::TransferEncoding);
        }
        if member.eq_ignore_ascii_case(b"chunked") {
            if chunked_at.is_some() {
                return Err(FramingError::TransferEncoding);
            }
            chunked_at = Some(count);
        } else if !KNOWN_CODINGS
            .iter()
            .any(|k| member.eq_ignore_ascii_case(k.as_bytes()))
        {
            unknown = true;
        }
        count += 1;
    }
    Ok(Some(TransferCodings {
        chunked_last: chunked_at.is_some_and(|i| i + 1 == count),
        only_chunked: count == 1 && chunked_at.is_some(),
        unknown,
    }))
}

/// Whether `s` is a valid `uri-host [ ":" port ]` (RFC 9110 7.2, RFC 3986 3.2.2),
/// without userinfo: the value we route on must not be ambiguous.
pub(crate) fn is_valid_authority(s: &[u8]) -> bool {
    let (host, port) = if s.first() == Some(&b'[') {
        // IP-literal: hex digits, ':' and '.' (IPv6, with an embedded IPv4 tail).
        let Some(close) = s.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &s[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &s[close + 1..] {
            [] => (&s[..=close], None),
            [b':', port @ ..] => (&s[..=close], Some(port)),
            _ => return false,
        }
    } else {
        match s.iter().position(|&b| b == b':') {
            Some(colon) => (&s[..colon], Some(&s[colon + 1..])),
            None => (s, None),
        }
    };
    // reg-name also allows sub-delims, but no DNS name has them and a `,` is what two
    // Host values joined by some hop look like: unreserved and pct-encoded only. No
    // '@' either (userinfo).
    let host_ok = !host.is_empty()
        && (host.starts_with(b"[")
            || host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    #[test]
    fn tchars_are_the_rfc_list() {
        for b in 0..=255u8 {
            let listed = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), listed, "{b:#x}");
        }
    }

    use super::*;

    fn headers(lines: &[(&str, &str)]) -> Vec<Header> {
        lines
            .iter()
            .map(|(n, v)| Header {
                name: (*n).into(),
                value: v.as_bytes().into(),
            })
            .collect()
    }

    fn cl(values: &[&str]) -> Result<Option<u64>, FramingError> {
        let lines: Vec<_> = values.iter().map(|v| ("Content-Length", *v)).collect();
        content_length(&headers(&lines))
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(cl(&["0"]), Ok(Some(0)));
        assert_eq!(cl(&["0042"]), Ok(Some(42)));
        assert_eq!(cl(&[]), Ok(None));
        for bad in ["", "+5", "-5", "5 5", "0x10", "1e3", "5.0", " ", "٣", "5;x"] {
            assert_eq!(cl(&[bad]), Err(FramingError::ContentLength), "{bad:?}");
        }
    }

    #[test]
    fn content_length_overflow_rejected() {
        assert_eq!(cl(&["9223372036854775807"]), Ok(Some(MAX_LENGTH)));
        assert_eq!(
            cl(&["0009223372036854775807"]),
            Ok(Some(MAX_LENGTH)),
            "leading zeros are the same number"
        );
        assert_eq!(
            cl(&["9223372036854775808"]),
            Err(FramingError::ContentLength),
            "beyond a signed 64-bit offset"
        );
        assert_eq!(
            cl(&["18446744073709551615"]),
            Err(FramingError::ContentLength)
        );
        assert_eq!(
            cl(&["18446744073709551616"]),
            Err(FramingError::ContentLength)
        );
        assert_eq!(
            cl(&["99999999999999999999999999"]),
            Err(FramingError::ContentLength)
        );
    }

    #[test]
    fn identical_content_length_duplicates_fold() {
        assert_eq!(cl(&["5", "5"]), Ok(Some(5)));
        assert_eq!(cl(&["5, 5"]), Ok(Some(5)));
        assert_eq!(cl(&["5,5", "05"]), Ok(Some(5)));
    }

    #[test]
    fn differing_content_lengths_rejected() {
        assert_eq!(cl(&["5", "6"]), Err(FramingError::ContentLength));
        assert_eq!(cl(&["5, 6"]), Err(FramingError::ContentLength));
        assert_eq!(cl(&["5,"]), Err(FramingError::ContentLength));
        assert_eq!(cl(&[",5"]), Err(FramingError::ContentLength));
    }

    fn te(values: &[&str]) -> Result<Option<TransferCodings>, FramingError> {
        let lines: Vec<_> = values.iter().map(|v| ("Transfer-Encoding", *v)).collect();
        transfer_codings(&headers(&lines))
    }

    #[test]
    fn transfer_coding_lists() {
        let only = TransferCodings {
            chunked_last: true,
            only_chunked: true,
            unknown: false,
        };
        assert_eq!(te(&[]), Ok(None));
        assert_eq!(te(&["chunked"]), Ok(Some(only)));
        assert_eq!(te(&["CHUNKED"]), Ok(Some(only)));
        assert_eq!(te(&["\tchunked "]), Ok(Some(only)));
        let c = te(&["gzip", "chunked"]).unwrap().unwrap();
        assert!(c.chunked_last && !c.only_chunked && !c.unknown);
        let c = te(&["chunked, gzip"]).unwrap().unwrap();
        assert!(!c.chunked_last && !c.only_chunked);
        let c = te(&["xchunked"]).unwrap().unwrap();
        assert!(c.unknown && !c.chunked_last);
    }

    #[test]
    fn chunked_listed_twice_rejected() {
        assert_eq!(
            te(&["chunked, chunked"]),
            Err(FramingError::TransferEncoding)
        );
        assert_eq!(
            te(&["chunked", "chunked"]),
            Err(FramingError::TransferEncoding)
        );
    }

    #[test]
    fn malformed_transfer_coding_members_rejected() {
        for bad in [
            &[""][..],
            &["chunked,"],
            &[", chunked"],
            &["chunked;x=1"],
            &["chunked chunked"],
            &["\"chunked\""],
        ] {
            assert_eq!(te(bad), Err(FramingError::TransferEncoding), "{bad:?}");
        }
    }

    #[test]
    fn connection_tokens_are_case_insensitive() {
        let h = headers(&[
            ("Connection", "Keep-Alive, UPGRADE"),
            ("connection", "close"),
        ]);
        assert!(has_token(&h, "connection", "keep-alive"));
        assert!(has_token(&h, "connection", "upgrade"));
        assert!(has_token(&h, "connection", "close"));
        assert!(!has_token(&h, "connection", "te"));
    }

    #[test]
    fn authorities() {
        for good in [
            "a",
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:443",
            "a-b_c~d",
            "x:",
        ] {
            assert!(is_valid_authority(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            ":80",
            "user@host",
            "a,b",
            "a;b",
            "a b",
            "a/b",
            "[::1",
            "[]",
            "[::1]x",
            "a:b",
            "a:123456",
            "a?b",
            "é",
        ] {
            assert!(!is_valid_authority(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn underscore_look_alikes() {
        assert!(name_alike("Transfer_Encoding", "transfer-encoding"));
        assert!(name_alike("CONTENT-LENGTH", "content-length"));
        assert!(!name_alike("Content-Lengthx", "content-length"));
        assert!(!name_alike("X-Foo", "x-bar"));
    }
}
