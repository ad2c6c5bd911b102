//! Re-serializing heads for the other side of the proxy (RFC 9110 7.6, RFC 9112 9.6).
//!
//! Heads are never passed through raw: we write a fresh start line, copy the
//! end-to-end fields, and emit the framing, Host and connection fields ourselves, so
//! the next hop reads the message exactly as we did.

use std::net::IpAddr;

use super::fields::{self, HOP_BY_HOP};
use super::request::RequestHead;
use super::response::{ResponseFraming, ResponseHead};
use super::{BodyFraming, Header, Version};

/// How a request is forwarded to a backend.
#[derive(Clone, Copy, Debug)]
pub struct ForwardOptions<'a> {
    /// Appended to X-Forwarded-For.
    pub client_ip: IpAddr,
    /// Used as Host when the client sent none (HTTP/1.0).
    pub backend_host: &'a str,
    /// Sets X-Forwarded-Proto when `Some`, replacing the client's.
    pub forwarded_proto: Option<&'a str>,
    /// Sets X-Forwarded-Host from the request host, replacing the client's.
    pub forwarded_host: bool,
}

/// How the response body must be written to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientBody {
    None,
    Length(u64),
    /// Re-encode with `encode_chunk_header` / `encode_last_chunk`.
    Chunked,
    /// Write the (dechunked) body as is, then close the client connection.
    UntilClose,
}

/// Writes the request head for a backend: always HTTP/1.1 on a persistent
/// connection (the relay owns the backend pool), origin-form target, one Host,
/// canonical framing, hop-by-hop fields removed and X-Forwarded-For appended.
pub fn write_request_head(head: &RequestHead, opts: &ForwardOptions, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Host first (RFC 9110 7.2), exactly once, from what we routed on.
    let host = head.host.as_deref().unwrap_or(opts.backend_host);
    put_field(out, "Host", host.as_bytes());

    let options = connection_options(&head.headers);
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    for field in &head.headers {
        // The client's list is kept for the backend's information, never trusted:
        // our own entry is always the last one.
        if fields::name_alike(&field.name, "x-forwarded-for") {
            if !field.value.is_empty() {
                forwarded_for.push(&field.value);
            }
            continue;
        }
        let replaced = (opts.forwarded_proto.is_some()
            && fields::name_alike(&field.name, "x-forwarded-proto"))
            || (opts.forwarded_host && fields::name_alike(&field.name, "x-forwarded-host"));
        if !replaced && !is_connection_specific(field, &options) {
            put_field(out, &field.name, &field.value);
        }
    }

    match head.framing {
        BodyFraming::None => {}
        BodyFraming::Length(n) => put_field(out, "Content-Length", n.to_string().as_bytes()),
        BodyFraming::Chunked => put_field(out, "Transfer-Encoding", b"chunked"),
    }
    // TE is hop-by-hop; `trailers` alone is worth passing on because we relay
    // trailers, and it must then be named in Connection (RFC 9110 10.1.4).
    let mut te = head.headers.iter().filter(|h| h.is("te"));
    let te_trailers = matches!((te.next(), te.next()), (Some(h), None) if h.value.eq_ignore_ascii_case(b"trailers"));
    if te_trailers {
        put_field(out, "TE", b"trailers");
    }
    match (&head.upgrade, te_trailers) {
        (Some(protocol), te) => {
            put_field(out, "Upgrade", protocol.as_bytes());
            put_field(
                out,
                "Connection",
                if te { b"upgrade, te" } else { b"upgrade" },
            );
        }
        (None, true) => put_field(out, "Connection", b"te"),
        (None, false) => {}
    }

    let mut list = forwarded_for.join(&b", "[..]);
    if !list.is_empty() {
        list.extend_from_slice(b", ");
    }
    list.extend_from_slice(opts.client_ip.to_string().as_bytes());
    put_field(out, "X-Forwarded-For", &list);
    if let Some(proto) = opts.forwarded_proto {
        put_field(out, "X-Forwarded-Proto", proto.as_bytes());
    }
    if let (true, Some(host)) = (opts.forwarded_host, &head.host) {
        put_field(out, "X-Forwarded-Host", host.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a response head for the client and says how its body must follow.
///
/// `keep_alive` is whether the relay intends to keep the client connection; a body
/// delimited by close forces `Connection: close`.
pub fn write_response_head(
    head: &ResponseHead,
    client_version: Version,
    keep_alive: bool,
    out: &mut Vec<u8>,
) -> ClientBody {
    if head.is_interim() {
        // A server must not send 1xx to an HTTP/1.0 client (RFC 9110 15.2): drop it.
        if client_version == Version::Http11 {
            write_status_line(head, client_version, out);
            put_end_to_end(&head.headers, out);
            out.extend_from_slice(b"\r\n");
        }
        return ClientBody::None;
    }
    write_status_line(head, client_version, out);
    put_end_to_end(&head.headers, out);
    if head.status == 101 {
        // The connection becomes a tunnel; the client needs the protocol switched to.
        let upgrade: Vec<&[u8]> = head
            .headers
            .iter()
            .filter(|h| h.is("upgrade"))
            .map(|h| &h.value[..])
            .collect();
        put_field(out, "Upgrade", &upgrade.join(&b", "[..]));
        put_field(out, "Connection", b"upgrade");
        out.extend_from_slice(b"\r\n");
        return ClientBody::None;
    }

    let body = match head.framing {
        ResponseFraming::None => ClientBody::None,
        ResponseFraming::Length(n) => ClientBody::Length(n),
        // An HTTP/1.0 client cannot read chunked (RFC 9112 6.1): dechunk and close.
        ResponseFraming::Chunked if client_version == Version::Http11 => ClientBody::Chunked,
        ResponseFraming::Chunked | ResponseFraming::UntilClose => ClientBody::UntilClose,
    };
    match body {
        ClientBody::Length(n) => put_field(out, "Content-Length", n.to_string().as_bytes()),
        ClientBody::Chunked => put_field(out, "Transfer-Encoding", b"chunked"),
        ClientBody::UntilClose => {}
        // A HEAD or 304 response keeps the length the full response would have
        // (RFC 9110 8.6); 1xx and 204 must not have one.
        ClientBody::None => {
            if head.status != 204 {
                if let Ok(Some(n)) = fields::content_length(&head.headers) {
                    put_field(out, "Content-Length", n.to_string().as_bytes());
                }
            }
        }
    }
    let keep_alive = keep_alive && body != ClientBody::UntilClose;
    match (client_version, keep_alive) {
        (Version::Http11, true) => {}
        (Version::Http10, true) => put_field(out, "Connection", b"keep-alive"),
        (_, false) => put_field(out, "Connection", b"close"),
    }
    out.extend_from_slice(b"\r\n");
    body
}

/// Writes a complete small response generated by the proxy itself.
pub fn write_error_response(status: u16, close: bool, out: &mut Vec<u8>) {
    let reason = reason_phrase(status);
    let body = format!("{status} {reason}\n");
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    put_field(out, "Content-Type", b"text/plain; charset=utf-8");
    put_field(out, "Content-Length", body.len().to_string().as_bytes());
    put_field(
        out,
        "Connection",
        if close { b"close" } else { b"keep-alive" },
    );
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// The reason phrase we send for a status code we generate (RFC 9110 15).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn write_status_line(head: &ResponseHead, client_version: Version, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{} {} ", client_version.as_str(), head.status).as_bytes());
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The field names listed in Connection, lower-cased (RFC 9110 7.6.1).
fn connection_options(headers: &[Header]) -> Vec<String> {
    fields::list_members(headers, "connection")
        .filter(|m| !m.is_empty())
        .map(|m| String::from_utf8_lossy(m).to_ascii_lowercase())
        .collect()
}

/// Whether a field only concerns the connection it came on. Connection cannot
/// protect a field from this, and dropping Content-Length, Transfer-Encoding or Host
/// through it changes nothing: we always re-emit those ourselves.
fn is_connection_specific(field: &Header, options: &[String]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|name| fields::name_alike(&field.name, name))
        || options.iter().any(|o| field.is(o))
}

/// Copies the end-to-end fields of a response.
fn put_end_to_end(headers: &[Header], out: &mut Vec<u8>) {
    let options = connection_options(headers);
    for field in headers
        .iter()
        .filter(|f| !is_connection_specific(f, &options))
    {
        put_field(out, &field.name, &field.value);
    }
}

fn put_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
