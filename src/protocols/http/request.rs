//! Parsing and validating an HTTP/1.x request head (RFC 9112 3, 6; RFC 9110 7.2).
//!
//! A request that passes here has exactly one way to be read: one Host, one
//! framing, a target in a form we can route. Everything ambiguous is refused with
//! the status the relay should answer before closing the connection.

use super::fields::{self, FramingError};
use super::head::{self, HeadError, StartLine, VersionToken};
use super::normalize::{normalize_target_with, Slashes};
use compact_str::CompactString;

use super::{Fields, Framing, Header, Limits, Version};

/// A request method (RFC 9110 9); methods are case-sensitive, so `get` is `Other`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Trace,
    Connect,
    Patch,
    Other(String),
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method as sent on the request line.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Patch => "PATCH",
            Method::Other(token) => token,
        }
    }

    /// Whether a request may be retried after it reached a backend (RFC 9110 9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Options
                | Method::Trace
                | Method::Put
                | Method::Delete
        )
    }
}

/// A validated request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The target in origin-form (or `*`): an absolute-form target is reduced to its
    /// path and query at parse time, its authority going to `host` (RFC 9112 3.2.2).
    ///
    /// Its path is in normal form (`normalize`: unreserved escapes decoded, dot
    /// segments removed, slashes merged), and this is what rules match and what
    /// the server is sent: forwarding the original would let a server that
    /// normalises it differently from us (or at all) serve a path the rule meant
    /// to keep on another pool.
    pub target: CompactString,
    pub version: Version,
    /// Lower-cased: from Host, or the authority of an absolute-form target.
    pub host: Option<CompactString>,
    /// Every field line in order as received (the forwarder filters them).
    pub headers: Fields,
    pub framing: Framing,
    /// The client wants the connection kept after this exchange (RFC 9112 9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 10.1.1).
    pub expect_continue: bool,
    /// The Upgrade value when Connection lists `upgrade` on an HTTP/1.1 request (RFC 9110 7.8).
    pub upgrade: Option<String>,
}

impl RequestHead {
    /// The path (in normal form) and query that content rules match against.
    pub fn path(&self) -> &str {
        &self.target
    }
}

/// Why a request head is refused; the connection is closed after the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Framing(#[from] FramingError),
    #[error("invalid request line")]
    RequestLine,
    #[error("invalid request target")]
    Target,
    #[error("HTTP version not supported")]
    Version,
    #[error("missing Host")]
    MissingHost,
    #[error("more than one Host")]
    DuplicateHost,
    #[error("invalid Host")]
    InvalidHost,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    #[error("CONNECT is not supported")]
    Connect,
}

/// Parses a request head at the start of `buf`.
///
/// `Ok(None)`: the head is incomplete and still within the limits.
/// `Ok(Some((head, n)))`: `n` is the length of the head including the final CRLF CRLF
/// (and any empty lines skipped before the request line).
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    parse_request_with(buf, limits, Slashes::Merge)
}

/// [`parse_request`], with repeated slashes of the path merged or kept.
pub fn parse_request_with(
    buf: &[u8],
    limits: &Limits,
    slashes: Slashes,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    let Some(head) = head::scan(buf, limits, StartLine::Request)? else {
        return Ok(None);
    };
    let len = head.fields.end;
    let (method, raw_target, version) = request_line(&buf[head.start_line])?;
    let (target, authority) = request_target(&method, raw_target, slashes)?;
    let headers = head::parse_fields(&buf[head.fields.clone()], limits.max_headers)?;

    let host = host(&headers, version, authority)?;
    let framing = framing(&headers, version)?;
    let is_11 = version == Version::Http11;
    let close = fields::has_token(&headers, "connection", "close");
    let keep_alive = !close && (is_11 || fields::has_token(&headers, "connection", "keep-alive"));
    // Both are HTTP/1.1 features that an HTTP/1.0 request must not trigger
    // (RFC 9110 10.1.1, 7.8).
    let expect_continue = is_11 && fields::has_token(&headers, "expect", "100-continue");
    let upgrade = if is_11 && fields::has_token(&headers, "connection", "upgrade") {
        upgrade_value(&headers)
    } else {
        None
    };

    let head = RequestHead {
        method,
        target,
        version,
        host,
        headers,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
    };
    Ok(Some((head, len)))
}

/// request-line = method SP request-target SP HTTP-version (RFC 9112 3), with single
/// spaces: anything else could be split differently by the backend.
fn request_line(line: &[u8]) -> Result<(Method, &str, Version), RequestError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::RequestLine);
    };
    if !fields::is_token(method) {
        return Err(RequestError::RequestLine);
    }
    let version = match head::version(version) {
        VersionToken::Supported(v) => v,
        VersionToken::Unsupported => return Err(RequestError::Version),
        VersionToken::Invalid => return Err(RequestError::RequestLine),
    };
    // VCHAR only: no controls, spaces or obs-text; no fragment (RFC 9112 3.2).
    if target.is_empty()
        || !target
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && b != b'#')
    {
        return Err(RequestError::Target);
    }
    // Tokens and VCHAR are ASCII, so these cannot fail.
    let method = std::str::from_utf8(method).map_err(|_| RequestError::RequestLine)?;
    let target = std::str::from_utf8(target).map_err(|_| RequestError::Target)?;
    Ok((Method::from_token(method), target, version))
}

/// Returns the origin-form target, its path in normal form, and, for
/// absolute-form, the authority (RFC 9112 3.2).
fn request_target(
    method: &Method,
    target: &str,
    slashes: Slashes,
) -> Result<(CompactString, Option<CompactString>), RequestError> {
    if *method == Method::Connect {
        // authority-form would be the only legal form, but we do not tunnel CONNECT.
        return Err(RequestError::Connect);
    }
    if target == "*" {
        // asterisk-form is only for server-wide OPTIONS (RFC 9112 3.2.4).
        return match method {
            Method::Options => Ok((target.into(), None)),
            _ => Err(RequestError::Target),
        };
    }
    if target.starts_with('/') {
        return Ok((normalized(target, slashes)?, None));
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err(RequestError::Target);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(RequestError::Target);
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // An http URI with an empty host is invalid (RFC 9110 4.2.1); userinfo is refused
    // by the authority check (RFC 9110 4.2.4).
    if !fields::is_valid_authority(authority.as_bytes()) {
        return Err(RequestError::Target);
    }
    // An empty path becomes "/", or "*" for OPTIONS (RFC 9112 3.2.1, 3.2.4).
    let origin = match (path.chars().next(), method) {
        (None, Method::Options) => "*".into(),
        (Some('/'), _) => normalized(path, slashes)?,
        _ => normalized(&format!("/{path}"), slashes)?,
    };
    Ok((origin, Some(lowercase(authority.as_bytes()))))
}

/// An origin-form target with its path in normal form; copied only when it
/// was not (a long target already normal is copied once, as before).
fn normalized(target: &str, slashes: Slashes) -> Result<CompactString, RequestError> {
    Ok(normalize_target_with(target, slashes)
        .map_err(|_| RequestError::Target)?
        .into())
}

/// The host to route on (RFC 9112 3.2): exactly one valid Host line for HTTP/1.1,
/// at most one otherwise; an absolute-form authority takes precedence (RFC 9112 3.2.2).
fn host(
    headers: &[Header],
    version: Version,
    authority: Option<CompactString>,
) -> Result<Option<CompactString>, RequestError> {
    let mut lines = headers.iter().filter(|h| h.is("host"));
    let field = lines.next();
    if lines.next().is_some() {
        return Err(RequestError::DuplicateHost);
    }
    let field = match field {
        Some(h) if !fields::is_valid_authority(&h.value) => return Err(RequestError::InvalidHost),
        // Valid authorities are ASCII.
        Some(h) => Some(lowercase(&h.value)),
        None if version == Version::Http11 => return Err(RequestError::MissingHost),
        None => None,
    };
    Ok(authority.or(field))
}

/// An authority (ASCII once validated) in lower case, without allocating
/// when it is short.
fn lowercase(authority: &[u8]) -> CompactString {
    let mut out = CompactString::from_utf8_lossy(authority);
    out.make_ascii_lowercase();
    out
}

/// The body framing of a request (RFC 9112 6.3), refusing every ambiguous case.
fn framing(headers: &[Header], version: Version) -> Result<Framing, RequestError> {
    if fields::has_field(headers, "transfer-encoding") {
        // An HTTP/1.0 request with Transfer-Encoding was likely forwarded by something
        // that did not decode it: its framing is faulty (RFC 9112 6.1).
        if version == Version::Http10 {
            return Err(RequestError::TransferEncodingInHttp10);
        }
        // Both: the classic smuggling shape; refuse rather than pick one (RFC 9112 6.1).
        if fields::has_field(headers, "content-length") {
            return Err(FramingError::TransferEncodingAndContentLength.into());
        }
    }
    let Some(codings) = fields::transfer_codings(headers)? else {
        return Ok(match fields::content_length(headers)? {
            Some(n) => Framing::Length(n),
            None => Framing::None,
        });
    };
    if codings.unknown {
        return Err(FramingError::UnknownCoding.into());
    }
    // Only `chunked` alone: any other coding would have to be undone for the
    // backend, and a request with chunked not last has no length (RFC 9112 6.3 rule 4).
    if !codings.only_chunked {
        return Err(FramingError::TransferEncoding.into());
    }
    Ok(Framing::Chunked)
}

/// The Upgrade value, only for WebSocket: after a 101 the connection is a blind
/// tunnel, and an `h2c` upgrade would carry further requests past our routing and
/// content rules (h2c smuggling). Other upgrades are forwarded as plain requests.
fn upgrade_value(headers: &[Header]) -> Option<String> {
    let protocols: Vec<&[u8]> = fields::list_members(headers, "upgrade").collect();
    // protocol = protocol-name ["/" protocol-version] (RFC 9110 7.8).
    let is_websocket = |p: &&[u8]| {
        p.split(|&b| b == b'/')
            .next()
            .is_some_and(|name| name.eq_ignore_ascii_case(b"websocket"))
    };
    if protocols.is_empty() || !protocols.iter().all(is_websocket) {
        return None;
    }
    Some(String::from_utf8_lossy(&protocols.join(&b", "[..])).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, RequestError> {
        parse_request(buf, &Limits::default())
    }

    fn ok(buf: &[u8]) -> RequestHead {
        let (head, n) = parse(buf).expect("valid").expect("complete");
        assert_eq!(n, buf.len());
        head
    }

    /// The status the relay answers a refused request with (relay/error.rs
    /// maps every error; these tests check that parsing finds the right one).
    fn answer(error: RequestError) -> u16 {
        crate::relay::ProxyError::BadRequest(error).status()
    }

    fn status(buf: &[u8]) -> u16 {
        answer(parse(buf).expect_err("must be refused"))
    }

    #[test]
    fn simple_get() {
        let head = ok(b"GET /a?b=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nAccept: */*\r\n\r\n");
        assert_eq!(head.method, Method::Get);
        assert_eq!(head.target, "/a?b=1");
        assert_eq!(head.path(), "/a?b=1");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.host.as_deref(), Some("example.com:8080"));
        assert_eq!(head.headers.len(), 2);
        assert_eq!(head.headers[1].name, "Accept");
        assert_eq!(head.framing, Framing::None);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
        assert_eq!(head.upgrade, None);
    }

    #[test]
    fn head_length_excludes_body() {
        let buf = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
        let (head, n) = parse(buf).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Length(3));
        assert_eq!(&buf[n..], b"abcGET");
    }

    #[test]
    fn incomplete_head_is_none_at_every_prefix() {
        let buf = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        for end in 0..buf.len() {
            assert_eq!(parse(&buf[..end]), Ok(None), "prefix {end}");
        }
        assert!(parse(buf).unwrap().is_some());
    }

    #[test]
    fn te_and_cl_both_present_is_400() {
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), 400);
    }

    #[test]
    fn te_in_http10_request_is_400() {
        assert_eq!(
            parse(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(RequestError::TransferEncodingInHttp10)
        );
    }

    #[test]
    fn chunked_request_framing() {
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(head.framing, Framing::Chunked);
    }

    #[test]
    fn te_must_be_exactly_one_chunked() {
        for te in [
            "chunked, chunked",
            "gzip",
            "identity",
            "gzip, chunked",
            "chunked, gzip",
            "",
            "chunked,",
            ", chunked",
            "chunked;foo=bar",
            "chunked\t,",
        ] {
            let req = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(status(req.as_bytes()), 400, "{te:?}");
        }
    }

    #[test]
    fn te_split_over_lines_is_one_list() {
        let buf = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(buf), 400);
        let buf = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(buf), 400);
    }

    #[test]
    fn unknown_transfer_coding_is_501() {
        for te in ["xchunked", "chunkedx", "foo, chunked", "chunked-false"] {
            let req = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(status(req.as_bytes()), 501, "{te:?}");
        }
    }

    #[test]
    fn invalid_content_length_is_400() {
        for cl in [
            "",
            "-1",
            "+1",
            "1 2",
            "0x5",
            "1,2",
            "5, 6",
            "abc",
            "18446744073709551616",
        ] {
            let req = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n");
            assert_eq!(status(req.as_bytes()), 400, "{cl:?}");
        }
    }

    #[test]
    fn conflicting_content_length_lines_are_400() {
        let buf = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(status(buf), 400);
    }

    #[test]
    fn identical_content_length_duplicates_fold_to_one() {
        let head =
            ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(head.framing, Framing::Length(5));
    }

    #[test]
    fn smuggling_vectors_rejected() {
        let cases: [(&[u8], u16); 14] = [
            (
                b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
                400,
            ),
            (b"Transfer-Encoding:\x0bchunked", 400),
            (b"Transfer-Encoding: ch\x00unked", 400),
            (b"Transfer-Encoding: chunked\r\n\tContent-Length: 0", 400),
            (b"Transfer-Encoding\r\n : chunked", 400),
            (b"Content-Length: 4\r\nContent-Length: 5", 400),
            (b"Content-Length:\n 4", 400),
            (b"Content-Length: 1_0", 400),
            (
                b"Content-Length: 4\r\nTransfer_Encoding: chunked\r\nTransfer-Encoding: chunked",
                400,
            ),
            (b"X-Foo: bar\rTransfer-Encoding: chunked", 400),
            (b"Transfer-Encoding: chunk\xc3\xa9d", 400),
            (b"Transfer-Encoding: \"chunked\"", 400),
            (b"Transfer-Encoding: chunked, identity", 400),
            (b"Transfer-Encoding: x, chunked", 501),
        ];
        for (fields, expected) in cases {
            let req = [&b"POST / HTTP/1.1\r\nHost: a\r\n"[..], fields, b"\r\n\r\n"].concat();
            assert_eq!(
                status(&req),
                expected,
                "{:?}",
                String::from_utf8_lossy(fields)
            );
        }
    }

    #[test]
    fn optional_whitespace_around_framing_values_is_fine() {
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:chunked \t\r\n\r\n");
        assert_eq!(head.framing, Framing::Chunked);
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t 12 \r\n\r\n");
        assert_eq!(head.framing, Framing::Length(12));
    }

    #[test]
    fn missing_host_in_http11_is_400() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(RequestError::MissingHost)
        );
        // HTTP/1.0 may omit it.
        assert_eq!(ok(b"GET / HTTP/1.0\r\n\r\n").host, None);
    }

    #[test]
    fn two_host_lines_are_400() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(RequestError::DuplicateHost)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            Err(RequestError::DuplicateHost)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(RequestError::DuplicateHost)
        );
    }

    #[test]
    fn empty_or_invalid_host_is_400() {
        for host in ["", "a b", "a,b", "user@a", "a/b", "[::1", "a:port"] {
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(
                parse(req.as_bytes()),
                Err(RequestError::InvalidHost),
                "{host:?}"
            );
        }
    }

    #[test]
    fn absolute_form_routes_on_authority() {
        let head = ok(b"GET http://Backend.example:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(head.host.as_deref(), Some("backend.example:81"));
        assert_eq!(head.target, "/p?q");
        assert_eq!(head.path(), "/p?q");
        let head = ok(b"GET https://h HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.target, "/");
        let head = ok(b"GET http://h?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.target, "/?x=1");
        let head = ok(b"OPTIONS http://h HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.target, "*");
    }

    #[test]
    fn the_target_is_normalised_for_rules_and_server() {
        for (target, expected) in [
            ("/a/./b/../%63//d?x=/../%41", "/a/c/d?x=/../%41"),
            ("http://h/../%2e/x", "/x"),
            ("http://h?a=.", "/?a=."),
        ] {
            let head = ok(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
            assert_eq!((head.target.as_str(), head.path()), (expected, expected));
        }
    }

    #[test]
    fn an_invalid_escape_in_the_path_is_400() {
        for line in ["GET /a%zz HTTP/1.1", "GET http://h/% HTTP/1.1"] {
            let req = format!("{line}\r\nHost: h\r\n\r\n");
            assert_eq!(status(req.as_bytes()), 400, "{line}");
        }
    }

    #[test]
    fn absolute_form_still_needs_host_in_http11() {
        assert_eq!(
            parse(b"GET http://h/ HTTP/1.1\r\n\r\n"),
            Err(RequestError::MissingHost)
        );
    }

    #[test]
    fn invalid_absolute_form_is_400() {
        for target in [
            "http:///p",
            "http://u@h/p",
            "ftp://h/p",
            "http:/h",
            "h/p",
            "http://h:x/",
        ] {
            let req = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(
                parse(req.as_bytes()),
                Err(RequestError::Target),
                "{target:?}"
            );
        }
    }

    #[test]
    fn asterisk_form_only_for_options() {
        assert_eq!(ok(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").target, "*");
        assert_eq!(
            parse(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(RequestError::Target)
        );
    }

    #[test]
    fn connect_is_501() {
        assert_eq!(
            status(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
            501
        );
    }

    #[test]
    fn authority_form_without_connect_is_400() {
        assert_eq!(status(b"GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn bad_targets_are_400() {
        for line in [
            &b"GET  / HTTP/1.1"[..],
            b"GET /a b HTTP/1.1",
            b"GET /\xc3\xa9 HTTP/1.1",
            b"GET /a#frag HTTP/1.1",
            b"GET /a\tb HTTP/1.1",
        ] {
            let mut req = line.to_vec();
            req.extend_from_slice(b"\r\nHost: a\r\n\r\n");
            assert_eq!(status(&req), 400, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn malformed_request_lines_are_400() {
        for line in [
            &b"GET /"[..],
            b"GET / HTTP/1.1 ",
            b" GET / HTTP/1.1",
            b"GET\t/ HTTP/1.1",
            b"G(T / HTTP/1.1",
            b"GET / http/1.1",
            b"GET / HTTP/1",
            b"GET / RTSP/1.0",
        ] {
            let mut req = line.to_vec();
            req.extend_from_slice(b"\r\nHost: a\r\n\r\n");
            assert_eq!(status(&req), 400, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn unsupported_versions_are_505() {
        for version in ["HTTP/2.0", "HTTP/0.9", "HTTP/3.0", "HTTP/2.1"] {
            let req = format!("GET / {version}\r\nHost: a\r\n\r\n");
            assert_eq!(status(req.as_bytes()), 505, "{version}");
        }
        assert_eq!(status(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
    }

    #[test]
    fn a_higher_minor_version_is_read_as_11() {
        for version in ["HTTP/1.2", "HTTP/1.9"] {
            let req = format!("GET / {version}\r\nHost: a\r\n\r\n");
            let head = ok(req.as_bytes());
            assert_eq!(head.version, Version::Http11, "{version}");
            assert!(head.keep_alive, "{version}");
            // 1.1's rules hold: a Host is required.
            let no_host = format!("GET / {version}\r\n\r\n");
            assert_eq!(status(no_host.as_bytes()), 400, "{version}");
        }
        // Malformed versions stay malformed.
        assert_eq!(status(b"GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn methods_are_case_sensitive_tokens() {
        assert_eq!(
            ok(b"get / HTTP/1.0\r\n\r\n").method,
            Method::Other("get".into())
        );
        assert_eq!(ok(b"PURGE / HTTP/1.0\r\n\r\n").method.as_str(), "PURGE");
    }

    #[test]
    fn idempotent_methods() {
        for m in [
            Method::Get,
            Method::Head,
            Method::Options,
            Method::Trace,
            Method::Put,
            Method::Delete,
        ] {
            assert!(m.is_idempotent(), "{m:?}");
        }
        for m in [
            Method::Post,
            Method::Patch,
            Method::Connect,
            Method::Other("X".into()),
        ] {
            assert!(!m.is_idempotent(), "{m:?}");
        }
    }

    #[test]
    fn bare_lf_rejected() {
        assert_eq!(status(b"GET / HTTP/1.1\nHost: a\n\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\n\r\n"), 400);
    }

    #[test]
    fn bare_cr_and_nul_rejected() {
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r2\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\x002\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn space_before_colon_rejected() {
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 3\r\n\r\n"),
            400
        );
    }

    #[test]
    fn obs_fold_rejected() {
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn invalid_field_names_rejected() {
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nX\x80: x\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nno-colon\r\n\r\n"),
            400
        );
    }

    #[test]
    fn oversized_head_is_431() {
        let limits = Limits {
            max_head_bytes: 64,
            max_headers: 100,
        };
        let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        buf.extend(std::iter::repeat_n(b'a', 64));
        assert_eq!(answer(parse_request(&buf, &limits).unwrap_err()), 431);
    }

    #[test]
    fn oversized_request_line_is_414() {
        let mut buf = b"GET /".to_vec();
        buf.extend(std::iter::repeat_n(b'a', 16 * 1024));
        assert_eq!(status(&buf), 414);
        let limits = Limits {
            max_head_bytes: 16,
            max_headers: 100,
        };
        assert_eq!(
            answer(parse_request(b"GET /0123456789 HTTP/1.1\r\n\r\n", &limits).unwrap_err()),
            414
        );
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..100 {
            buf.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        assert_eq!(status(&buf), 431);
        // Exactly at the limit is fine.
        let limits = Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 101,
        };
        assert!(parse_request(&buf, &limits).unwrap().is_some());
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(
            !ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n").keep_alive
        );
        assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn expect_continue_only_for_http11() {
        assert!(
            ok(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
                .expect_continue
        );
        assert!(
            !ok(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
                .expect_continue
        );
    }

    #[test]
    fn upgrade_needs_connection_upgrade_and_http11() {
        let head = ok(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(head.upgrade.as_deref(), Some("websocket"));
        assert_eq!(
            ok(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").upgrade,
            None
        );
        let head = ok(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(head.upgrade, None);
    }

    #[test]
    fn only_websocket_upgrades_are_honoured() {
        let head = ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: x\r\n\r\n");
        assert_eq!(head.upgrade, None);
        let head = ok(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket, h2c\r\n\r\n",
        );
        assert_eq!(head.upgrade, None);
        let head = ok(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: WebSocket/13\r\n\r\n",
        );
        assert_eq!(head.upgrade.as_deref(), Some("WebSocket/13"));
    }

    #[test]
    fn leading_empty_lines_are_skipped_and_counted() {
        let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let (head, n) = parse(buf).unwrap().unwrap();
        assert_eq!(head.target, "/");
        assert_eq!(n, buf.len());
    }

    #[test]
    fn pipelined_request_is_left_in_buffer() {
        let buf = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
        let (first, n) = parse(buf).unwrap().unwrap();
        assert_eq!(first.target, "/1");
        let (second, _) = parse(&buf[n..]).unwrap().unwrap();
        assert_eq!(second.target, "/2");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_keep_the_incremental_contract(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            crate::protocols::http::head::check_incremental_contract(&buf, parse);
        }

        #[test]
        fn request_like_bytes_keep_the_incremental_contract(
            line in "(\r\n)?(GET|POST|HEAD|PUT|OPTIONS|CONNECT|[A-Z]{1,7}) (/|\\*|http://a/)[!-~]{0,12} HTTP/1\\.[01]\r\n",
            fields in crate::protocols::http::head::field_lines(),
            end in "(\r\n|\n|\r)?",
            body in "[ -~\r\n]{0,8}",
        ) {
            let buf = [line, fields, end, body].concat();
            crate::protocols::http::head::check_incremental_contract(buf.as_bytes(), parse);
        }

        #[test]
        fn arbitrary_heads_never_panic(
            line in "[A-Z]{1,7} [ -~]{0,40} HTTP/1\\.[01]",
            fields in proptest::collection::vec("[!-~]{0,12}:[ -~\t]{0,20}", 0..8),
        ) {
            let mut buf = line.into_bytes();
            buf.extend_from_slice(b"\r\n");
            for f in fields {
                buf.extend_from_slice(f.as_bytes());
                buf.extend_from_slice(b"\r\n");
            }
            buf.extend_from_slice(b"\r\n");
            if let Ok(Some((head, n))) = parse(&buf) {
                prop_assert_eq!(n, buf.len());
                prop_assert!(head.version == Version::Http10 || head.host.is_some());
            }
        }
    }
}
