//! Parsing and validating a backend's response head (RFC 9112 4, 6.3; RFC 9110 15).
//!
//! Every error here means the backend spoke something we cannot frame safely: the
//! relay closes that backend connection and answers 502.

use super::fields::{self, FramingError};
use super::head::{self, HeadError, StartLine, VersionToken};
use super::request::Method;
use super::{Fields, Framing, Header, Limits, Version};

/// A validated response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub version: Version,
    pub status: u16,
    pub reason: compact_str::CompactString,
    /// Every field line in order as received (the forwarder filters them).
    pub headers: Fields,
    pub framing: Framing,
    /// The backend connection may be reused after this response.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// An interim response (1xx other than 101): the final one is still to come (RFC 9110 15.2).
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Why a response head is refused: close the backend, answer 502.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error("invalid status line")]
    StatusLine,
    #[error("unsupported HTTP version")]
    Version,
}

/// Parses a response head at the start of `buf`, for a request made with `request_method`.
///
/// `Ok(None)`: the head is incomplete and still within the limits.
/// `Ok(Some((head, n)))`: `n` is the length of the head including the final CRLF CRLF.
pub fn parse_response(
    buf: &[u8],
    request_method: &Method,
    limits: &Limits,
) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
    let Some(head) = head::scan(buf, limits, StartLine::Response)? else {
        return Ok(None);
    };
    let len = head.fields.end;
    let (version, status, reason) = status_line(&buf[head.start_line])?;
    let headers = head::parse_fields(&buf[head.fields], limits.max_headers)?;
    let framing = framing(status, request_method, &headers)?;

    let close = fields::has_token(&headers, "connection", "close");
    let persistent = !close
        && match version {
            Version::Http11 => true,
            Version::Http10 => fields::has_token(&headers, "connection", "keep-alive"),
        };
    // An HTTP/1.0 message with Transfer-Encoding has faulty framing: close after it
    // (RFC 9112 6.1). After 101 the connection is no longer HTTP.
    let faulty = version == Version::Http10 && fields::has_field(&headers, "transfer-encoding");
    let keep_alive = persistent
        && !faulty
        && status != 101
        && framing != Framing::UntilClose
        && !announces_unsent_body(framing, &headers);

    let head = ResponseHead {
        version,
        status,
        reason,
        headers,
        framing,
        keep_alive,
    };
    Ok(Some((head, len)))
}

/// Whether a bodiless response (to HEAD, or 1xx, 204, 304) announces a body all the
/// same. A server that then sends that body in a write after the head leaves it
/// unread on the connection, where the next request would read it as its own
/// response (response queue poisoning): such a connection is not reused.
fn announces_unsent_body(framing: Framing, headers: &[Header]) -> bool {
    framing == Framing::None
        && (fields::has_field(headers, "transfer-encoding")
            || !matches!(fields::content_length(headers), Ok(None | Some(0))))
}

/// status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4); a
/// missing SP before an empty reason is tolerated, as RFC 9112 4 asks of clients.
fn status_line(line: &[u8]) -> Result<(Version, u16, compact_str::CompactString), ResponseError> {
    let (version, rest) = line.split_at(line.iter().position(|&b| b == b' ').unwrap_or(line.len()));
    let version = match head::version(version) {
        VersionToken::Supported(v) => v,
        VersionToken::Unsupported => return Err(ResponseError::Version),
        VersionToken::Invalid => return Err(ResponseError::StatusLine),
    };
    let (code, reason) = match rest {
        [b' ', a, b, c] => ([*a, *b, *c], &[][..]),
        [b' ', a, b, c, b' ', reason @ ..] => ([*a, *b, *c], reason),
        _ => return Err(ResponseError::StatusLine),
    };
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(ResponseError::StatusLine);
    }
    let status = code
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    // Status codes are 100..=599 (RFC 9110 15).
    if !(100..600).contains(&status) {
        return Err(ResponseError::StatusLine);
    }
    Ok((
        version,
        status,
        compact_str::CompactString::from_utf8_lossy(reason),
    ))
}

/// The body framing of a response (RFC 9112 6.3).
fn framing(
    status: u16,
    request_method: &Method,
    headers: &[Header],
) -> Result<Framing, ResponseError> {
    // Rule 1: these never have a body, whatever the headers say.
    if *request_method == Method::Head
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(Framing::None);
    }
    // Rule 3 lets TE override CL, but a backend sending both is broken or attacked:
    // refuse it rather than guess (RFC 9112 6.1 "ought to be handled as an error").
    if let Some(codings) = fields::transfer_codings(headers)? {
        if fields::has_field(headers, "content-length") {
            return Err(FramingError::TransferEncodingAndContentLength.into());
        }
        // Rule 4: chunked last means chunked; otherwise read until close.
        return Ok(if codings.chunked_last {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    // Rules 5 to 7.
    Ok(match fields::content_length(headers)? {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_for(
        method: &Method,
        buf: &[u8],
    ) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
        parse_response(buf, method, &Limits::default())
    }

    fn ok_for(method: &Method, buf: &[u8]) -> ResponseHead {
        let (head, n) = parse_for(method, buf).expect("valid").expect("complete");
        assert_eq!(n, buf.len());
        head
    }

    fn ok(buf: &[u8]) -> ResponseHead {
        ok_for(&Method::Get, buf)
    }

    fn err(buf: &[u8]) -> ResponseError {
        parse_for(&Method::Get, buf).expect_err("must be refused")
    }

    #[test]
    fn simple_response() {
        let head = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\n");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.status, 200);
        assert_eq!(head.reason, "OK");
        assert_eq!(head.headers.len(), 2);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert!(!head.is_interim());
    }

    #[test]
    fn incomplete_head_is_none() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        for end in 0..buf.len() {
            assert_eq!(parse_for(&Method::Get, &buf[..end]), Ok(None));
        }
    }

    #[test]
    fn head_304_204_1xx_have_no_body() {
        let cl = b"Content-Length: 10\r\n\r\n";
        for line in [
            "HTTP/1.1 204 No Content",
            "HTTP/1.1 304 Not Modified",
            "HTTP/1.1 100 Continue",
            "HTTP/1.1 103 Early Hints",
        ] {
            let buf = [format!("{line}\r\n").as_bytes(), cl].concat();
            assert_eq!(ok(&buf).framing, Framing::None, "{line}");
        }
        let head = ok_for(
            &Method::Head,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(head.framing, Framing::None);
        let head = ok_for(&Method::Head, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(head.framing, Framing::None);
        assert!(head.keep_alive);
    }

    #[test]
    fn bodiless_response_announcing_a_body_is_not_reused() {
        // The body may still come, after the head: the connection is out of step.
        for (method, buf) in [
            (
                &Method::Head,
                &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"[..],
            ),
            (
                &Method::Head,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            (
                &Method::Head,
                b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
            ),
            (
                &Method::Get,
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            ),
            (
                &Method::Get,
                b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
        ] {
            let head = ok_for(method, buf);
            assert_eq!(head.framing, Framing::None);
            assert!(!head.keep_alive, "{:?}", String::from_utf8_lossy(buf));
        }
        // Announcing nothing, or an empty body, keeps the connection.
        for (method, buf) in [
            (
                &Method::Head,
                &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
            ),
            (
                &Method::Get,
                b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
            ),
            (
                &Method::Get,
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            ),
        ] {
            assert!(
                ok_for(method, buf).keep_alive,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn interim_responses() {
        assert!(ok(b"HTTP/1.1 100 Continue\r\n\r\n").is_interim());
        assert!(ok(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n").is_interim());
        let switching = ok(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        assert!(!switching.is_interim());
        assert!(!switching.keep_alive);
    }

    #[test]
    fn no_length_means_until_close() {
        let head = ok(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(head.framing, Framing::UntilClose);
        assert!(!head.keep_alive);
    }

    #[test]
    fn chunked_last_means_chunked() {
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
            Framing::Chunked
        );
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing,
            Framing::Chunked
        );
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
                .framing,
            Framing::Chunked
        );
    }

    #[test]
    fn te_without_chunked_last_reads_until_close() {
        for te in ["gzip", "chunked, gzip", "xchunked"] {
            let buf = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
            let head = ok(buf.as_bytes());
            assert_eq!(head.framing, Framing::UntilClose, "{te}");
            assert!(!head.keep_alive);
        }
    }

    #[test]
    fn malformed_te_is_an_error() {
        for te in ["chunked, chunked", "", "chunked,", "chunked;x=1"] {
            let buf = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(
                err(buf.as_bytes()),
                ResponseError::Framing(FramingError::TransferEncoding),
                "{te:?}"
            );
        }
    }

    #[test]
    fn te_and_cl_both_present_is_an_error() {
        assert_eq!(
            err(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ResponseError::Framing(FramingError::TransferEncodingAndContentLength)
        );
    }

    #[test]
    fn invalid_content_length_is_an_error() {
        for cl in ["-1", "1 2", "3, 4", "0x3", "", "99999999999999999999"] {
            let buf = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n");
            assert_eq!(
                err(buf.as_bytes()),
                ResponseError::Framing(FramingError::ContentLength),
                "{cl:?}"
            );
        }
        assert_eq!(
            err(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            ResponseError::Framing(FramingError::ContentLength)
        );
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n").framing,
            Framing::Length(3)
        );
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(
            !ok(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").keep_alive
        );
        assert!(!ok(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            ok(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
                .keep_alive
        );
    }

    #[test]
    fn te_in_http10_response_closes_after() {
        let head =
            ok(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(head.framing, Framing::Chunked);
        assert!(!head.keep_alive);
    }

    #[test]
    fn status_lines() {
        assert_eq!(ok(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").reason, "");
        assert_eq!(ok(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").reason, "");
        assert_eq!(
            ok(b"HTTP/1.1 404 Not  Found\t!\r\nContent-Length: 0\r\n\r\n").reason,
            "Not  Found\t!"
        );
        for line in [
            &b"HTTP/1.1 20 OK"[..],
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1  200 OK",
            b"HTTP/1.1 099 X",
            b"HTTP/1.1 600 X",
            b"HTTP/1.1 2x0 X",
            b"http/1.1 200 OK",
            b"HTTP/1.1",
            b"ICY 200 OK",
        ] {
            let buf = [line, b"\r\n\r\n"].concat();
            assert_eq!(
                err(&buf),
                ResponseError::StatusLine,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(err(b"HTTP/2.0 200 OK\r\n\r\n"), ResponseError::Version);
        // RFC 9112 2.3: a higher minor version reads as the highest we speak.
        let higher = ok(b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((higher.version, higher.keep_alive), (Version::Http11, true));
    }

    #[test]
    fn malformed_response_heads_are_errors() {
        assert_eq!(
            err(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
            ResponseError::Head(HeadError::BareLf)
        );
        assert_eq!(
            err(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
            ResponseError::Head(HeadError::ObsFold)
        );
        assert_eq!(
            err(b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
            ResponseError::Head(HeadError::FieldName)
        );
        assert_eq!(
            err(b"HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n"),
            ResponseError::Head(HeadError::ControlByte)
        );
    }

    #[test]
    fn oversized_response_head_is_an_error() {
        let limits = Limits {
            max_head_bytes: 32,
            max_headers: 2,
        };
        let buf = b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        assert!(matches!(
            parse_response(buf, &Method::Get, &limits),
            Err(ResponseError::Head(HeadError::TooLarge { .. }))
        ));
        let buf = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        let limits = Limits {
            max_head_bytes: 1024,
            max_headers: 2,
        };
        assert_eq!(
            parse_response(buf, &Method::Get, &limits),
            Err(ResponseError::Head(HeadError::TooManyFields))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_keep_the_incremental_contract(buf in proptest::collection::vec(any::<u8>(), 0..512), head in any::<bool>()) {
            let method = if head { Method::Head } else { Method::Get };
            crate::protocols::http::head::check_incremental_contract(&buf, |b| parse_for(&method, b));
        }

        #[test]
        fn response_like_bytes_keep_the_incremental_contract(
            line in "HTTP/1\\.[01] (1[0-9][0-9]|200|204|304|[0-9]{1,4}) [ -~]{0,10}\r\n",
            fields in crate::protocols::http::head::field_lines(),
            end in "(\r\n|\n|\r)?",
            body in "[ -~\r\n]{0,8}",
            head in any::<bool>(),
        ) {
            let method = if head { Method::Head } else { Method::Get };
            let buf = [line, fields, end, body].concat();
            crate::protocols::http::head::check_incremental_contract(buf.as_bytes(), |b| parse_for(&method, b));
        }
    }
}
