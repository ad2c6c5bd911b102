//! RTSP/1.0 message heads (RFC 2326 6, 7): our own request and status line
//! parsing (httparse rejects `RTSP/1.0`), and the HTTP module's byte-level head
//! checks and field splitting for the rest, since RTSP borrows HTTP/1.1's
//! message syntax. Heads are re-serialized, never passed through.

use std::borrow::Cow;

use crate::protocols::http::date::HttpDate;
use crate::protocols::http::fields::{content_length, is_token};
use crate::protocols::http::head::{parse_fields, scan, StartLine as HeadStart};
use crate::protocols::http::{normalize_target_with, Fields, HeadError, Header, Limits, Slashes};

/// The only version we speak.
pub const VERSION: &str = "RTSP/1.0";

/// The first line of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { status: u16, reason: String },
}

/// A parsed message head. Its body (`body_len` bytes) follows it on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    /// Field lines in the order received, Content-Length included.
    pub headers: Fields,
    /// The CSeq, checked to be 1*DIGIT (RFC 2326 12.17).
    pub cseq: String,
    /// Content-Length, 0 when absent (RFC 2326 12.14).
    pub body_len: u64,
}

/// Why a message head is unacceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{0}")]
    Head(#[from] HeadError),
    #[error("malformed request line")]
    RequestLine,
    #[error("malformed status line")]
    StatusLine,
    #[error("RTSP version not supported")]
    Version,
    #[error("missing or invalid CSeq")]
    CSeq,
    #[error("invalid Content-Length")]
    ContentLength,
    #[error("Transfer-Encoding is not RTSP")]
    TransferEncoding,
    #[error("invalid percent-encoding in the request URI")]
    Uri,
}

impl Message {
    /// The request's method, `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The request's URI, `None` for a response.
    pub fn uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The response's status, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    /// The value of the first field named `name` (case-insensitive), as text.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.is(name))
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }

    /// Replaces every field named `name` by one with `value`, where the first was.
    pub fn set_field(&mut self, name: &str, value: &str) {
        let first = self.headers.iter().position(|h| h.is(name));
        self.headers.retain(|h| !h.is(name));
        let header = Header {
            name: name.into(),
            value: value.as_bytes().into(),
        };
        let at = first.unwrap_or(self.headers.len()).min(self.headers.len());
        self.headers.insert(at, header);
    }

    /// The path of a request's URI, for the content rules: `rtsp://host:port/a/b?q`
    /// and `/a/b?q` give `/a/b`; `*` gives `*`.
    pub fn path(&self) -> &str {
        let uri = self.uri().unwrap_or("*");
        let rest = match uri.find("://") {
            Some(scheme_end) => {
                let after = &uri[scheme_end + 3..];
                after.find('/').map_or("/", |slash| &after[slash..])
            }
            None => uri,
        };
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        &rest[..end]
    }

    /// The path content rules match: [`Message::path`] in normal form (dot
    /// segments removed, unreserved escapes decoded, slashes merged), as
    /// for HTTP, so that `rtsp://h/a/../secret` is routed as `/secret`. The
    /// URI itself is forwarded as it came: session and control URLs must
    /// reach the server as the client spelled them.
    pub fn routing_path(&self, slashes: Slashes) -> Result<Cow<'_, str>, MessageError> {
        normalize_target_with(self.path(), slashes).map_err(|_| MessageError::Uri)
    }

    /// Writes the head for the other side: start line, the fields in order,
    /// and Content-Length as we counted it.
    pub fn write(&self, out: &mut Vec<u8>) {
        match &self.start {
            StartLine::Request { method, uri } => {
                for part in [method.as_str(), " ", uri, " ", VERSION, "\r\n"] {
                    out.extend_from_slice(part.as_bytes());
                }
            }
            StartLine::Response { status, reason } => {
                out.extend_from_slice(format!("{VERSION} {status} {reason}\r\n").as_bytes());
            }
        }
        for header in self.headers.iter().filter(|h| !h.is("content-length")) {
            put_field(out, &header.name, &header.value);
        }
        if self.body_len > 0 {
            put_field(out, "Content-Length", self.body_len.to_string().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes a complete response generated by the proxy, echoing `cseq` (an
/// empty `cseq` is left out: the request had none we could read), dated
/// `date` (RFC 2326 12.18, as HTTP's).
pub fn write_reply(status: u16, cseq: &str, date: &HttpDate, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{VERSION} {status} {}\r\n", reason_phrase(status)).as_bytes());
    if !cseq.is_empty() {
        put_field(out, "CSeq", cseq.as_bytes());
    }
    put_field(out, "Date", date);
    out.extend_from_slice(b"\r\n");
}

/// The reason phrases of the statuses we generate (RFC 2326 7.1.1).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        413 => "Request Entity Too Large",
        454 => "Session Not Found",
        461 => "Unsupported transport",
        503 => "Service Unavailable",
        504 => "Gateway Time-out",
        505 => "RTSP Version not supported",
        _ => "Error",
    }
}

fn put_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a message head at the start of `buf` (empty lines before it are
/// skipped). `Ok(None)`: incomplete, still within `limits`. On success, also
/// returns the head's length in bytes.
pub fn parse_message(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Message, usize)>, MessageError> {
    let Some(head) = scan(buf, limits, HeadStart::Request)? else {
        return Ok(None);
    };
    let start = parse_start_line(&buf[head.start_line.clone()])?;
    let headers = parse_fields(&buf[head.fields.clone()], limits.max_headers)?;
    if headers.iter().any(|h| h.is("transfer-encoding")) {
        return Err(MessageError::TransferEncoding);
    }
    let body_len = content_length(&headers)
        .map_err(|_| MessageError::ContentLength)?
        .unwrap_or(0);
    let mut cseqs = headers.iter().filter(|h| h.is("cseq"));
    let cseq = match (cseqs.next(), cseqs.next()) {
        (Some(only), None) if is_digits(&only.value) => {
            String::from_utf8_lossy(&only.value).into_owned()
        }
        _ => return Err(MessageError::CSeq),
    };
    let message = Message {
        start,
        headers,
        cseq,
        body_len,
    };
    Ok(Some((message, head.fields.end)))
}

/// Reads the CSeq of a head that failed to parse, so the error reply can
/// carry it; empty when there is none to read.
pub fn salvage_cseq(buf: &[u8]) -> String {
    let text = String::from_utf8_lossy(&buf[..buf.len().min(8 * 1024)]);
    text.split("\r\n")
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("cseq"))
        .map(|(_, value)| value.trim())
        .filter(|value| is_digits(value.as_bytes()))
        .unwrap_or_default()
        .to_string()
}

fn is_digits(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= 10 && value.iter().all(u8::is_ascii_digit)
}

fn parse_start_line(line: &[u8]) -> Result<StartLine, MessageError> {
    if line.starts_with(b"RTSP/") {
        return parse_status_line(line);
    }
    // Request-Line = Method SP Request-URI SP RTSP-Version (RFC 2326 6.1):
    // exactly two single spaces, nothing else blank.
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MessageError::RequestLine);
    };
    if !is_token(method) || uri.is_empty() || uri.iter().any(|b| !b.is_ascii_graphic()) {
        return Err(MessageError::RequestLine);
    }
    check_version(version, MessageError::RequestLine)?;
    Ok(StartLine::Request {
        method: String::from_utf8_lossy(method).into_owned(),
        uri: String::from_utf8_lossy(uri).into_owned(),
    })
}

/// Status-Line = RTSP-Version SP Status-Code SP Reason-Phrase (RFC 2326 7.1).
fn parse_status_line(line: &[u8]) -> Result<StartLine, MessageError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(version), Some(code), reason) = (parts.next(), parts.next(), parts.next()) else {
        return Err(MessageError::StatusLine);
    };
    check_version(version, MessageError::StatusLine)?;
    let status = match code {
        [a, b, c] if code.iter().all(u8::is_ascii_digit) && (b'1'..=b'5').contains(a) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(MessageError::StatusLine),
    };
    Ok(StartLine::Response {
        status,
        reason: String::from_utf8_lossy(reason.unwrap_or_default()).into_owned(),
    })
}

/// `RTSP/1.0` is spoken; another well-formed `RTSP/d.d` is not supported;
/// anything else (an HTTP request on an RTSP port, say) is malformed.
fn check_version(token: &[u8], malformed: MessageError) -> Result<(), MessageError> {
    match token {
        b"RTSP/1.0" => Ok(()),
        [b'R', b'T', b'S', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(MessageError::Version)
        }
        _ => Err(malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<(Message, usize)>, MessageError> {
        parse_message(text.as_bytes(), &Limits::default())
    }

    fn complete(text: &str) -> Message {
        let (message, len) = parse(text).unwrap().unwrap();
        assert_eq!(len, text.len());
        message
    }

    #[test]
    fn reads_a_request() {
        let m = complete(
            "SETUP rtsp://h:554/vod/a.mp4/track1?x=1 RTSP/1.0\r\nCSeq: 3\r\n\
             Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
        );
        assert_eq!(m.method(), Some("SETUP"));
        assert_eq!(m.path(), "/vod/a.mp4/track1");
        assert_eq!(m.cseq, "3");
        assert_eq!(m.body_len, 0);
        assert_eq!(
            m.field("transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1")
        );
    }

    #[test]
    fn paths_of_the_uri_forms() {
        let path = |uri: &str| {
            complete(&format!("OPTIONS {uri} RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
                .path()
                .to_string()
        };
        assert_eq!(path("*"), "*");
        assert_eq!(path("rtsp://host"), "/");
        assert_eq!(path("rtsp://host:554/live/cam#frag"), "/live/cam");
        assert_eq!(path("/live/cam?a=b"), "/live/cam");
    }

    #[test]
    fn rules_see_the_path_in_normal_form() {
        let routed = |uri: &str| {
            complete(&format!("DESCRIBE {uri} RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
                .routing_path(Slashes::Merge)
                .map(|path| path.into_owned())
        };
        for evasive in [
            "rtsp://h/live/public/../secret/cam",
            "rtsp://h//live/secret/cam",
            "rtsp://h/live/%73ecret/cam",
            "rtsp://h/live/./secret/cam",
            "/live/secret/./cam?x=1",
        ] {
            assert_eq!(routed(evasive), Ok("/live/secret/cam".into()), "{evasive}");
        }
        assert_eq!(routed("rtsp://h/../../etc"), Ok("/etc".into()));
        assert_eq!(routed("*"), Ok("*".into()));
        assert_eq!(routed("rtsp://h/live/%zz"), Err(MessageError::Uri));
    }

    #[test]
    fn reads_a_response_with_a_body() {
        let text = "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\n\
                    Content-Length: 5\r\n\r\nv=0\r\n";
        let (m, len) = parse(text).unwrap().unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.body_len, 5);
        assert_eq!(&text[len..], "v=0\r\n");
    }

    #[test]
    fn incomplete_heads_wait() {
        assert_eq!(
            parse("DESCRIBE rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n"),
            Ok(None)
        );
        assert_eq!(parse(""), Ok(None));
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let (m, len) = parse("\r\nOPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(m.cseq, "9");
        assert_eq!(len, 33);
    }

    #[test]
    fn refuses_what_rtsp_does_not_allow() {
        let bad = |text: &str| parse(text).unwrap_err();
        assert_eq!(bad("PLAY rtsp://h/a RTSP/1.0\r\n\r\n"), MessageError::CSeq);
        assert_eq!(
            bad("PLAY rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nCSeq: 2\r\n\r\n"),
            MessageError::CSeq
        );
        assert_eq!(
            bad("PLAY rtsp://h/a RTSP/1.0\r\nCSeq: -1\r\n\r\n"),
            MessageError::CSeq
        );
        assert_eq!(
            bad("PLAY rtsp://h/a RTSP/2.0\r\nCSeq: 1\r\n\r\n"),
            MessageError::Version
        );
        let answer = crate::relay::ProxyError::BadMessage(MessageError::Version).status();
        assert_eq!(answer, 505);
        assert_eq!(
            bad("GET /a HTTP/1.1\r\nCSeq: 1\r\n\r\n"),
            MessageError::RequestLine
        );
        assert_eq!(
            bad("PLAY  rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            MessageError::RequestLine
        );
        assert_eq!(
            bad("SET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            MessageError::TransferEncoding
        );
        assert_eq!(
            bad("SET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            MessageError::ContentLength
        );
        assert_eq!(
            bad("SET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: +1\r\n\r\n"),
            MessageError::ContentLength
        );
        assert_eq!(
            bad("PLAY rtsp://h/a RTSP/1.0\nCSeq: 1\n\n"),
            MessageError::Head(HeadError::BareLf)
        );
        assert_eq!(
            bad("PLAY rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n folded\r\n\r\n"),
            MessageError::Head(HeadError::ObsFold)
        );
        assert_eq!(
            bad("RTSP/1.0 99 Odd\r\nCSeq: 1\r\n\r\n"),
            MessageError::StatusLine
        );
        assert_eq!(
            bad("RTSP/1.0 2000 OK\r\nCSeq: 1\r\n\r\n"),
            MessageError::StatusLine
        );
    }

    #[test]
    fn an_endless_head_is_refused_at_the_limit() {
        let mut text = "DESCRIBE rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n".to_string();
        while text.len() <= Limits::default().max_head_bytes {
            text.push_str("X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let error = parse(&text).unwrap_err();
        assert_eq!(crate::relay::ProxyError::BadMessage(error).status(), 413);
    }

    #[test]
    fn writes_a_canonical_head() {
        let mut m = complete(
            "SET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 4\r\nContent-length: 007\r\n\
             Session: 12345678\r\n\r\n",
        );
        m.set_field("Session", "abc");
        let mut out = Vec::new();
        m.write(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 4\r\nSession: abc\r\n\
             Content-Length: 7\r\n\r\n"
        );
    }

    #[test]
    fn replies_echo_the_cseq() {
        let mut out = Vec::new();
        let date = crate::protocols::http::date::imf_fixdate(784_111_777);
        write_reply(454, "7", &date, &mut out);
        assert_eq!(
            out,
            b"RTSP/1.0 454 Session Not Found\r\nCSeq: 7\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
        assert_eq!(salvage_cseq(b"PLAY x RTSP/9.9\r\ncseq:  12 \r\n\r\n"), "12");
        assert_eq!(salvage_cseq(b"PLAY x\r\n\r\nCSeq: 3\r\n"), "");
    }
}
