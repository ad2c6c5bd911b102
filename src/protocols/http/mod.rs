//! HTTP/1.1 message framing and validation (RFC 9110, RFC 9112), with no I/O.
//!
//! This module owns every decision about where an HTTP message starts and ends and
//! whether its head is acceptable: request and response heads are parsed and checked
//! here (`request`, `response`), chunked bodies are decoded and re-encoded
//! (`chunked`), and heads are re-serialized for the other side (`forward`). The relay
//! only moves bytes according to what these functions return.
//!
//! Heads are read by our own code, not a general parser: `head` checks every
//! byte (bare LF, bare CR, control bytes, obs-fold, sizes) and splits the field
//! lines; `fields` holds the rules of their meaning (Content-Length and
//! Transfer-Encoding semantics, Host, tokens). Both are shared by requests,
//! responses, chunked trailers and RTSP.

pub mod chunked;
pub(crate) mod fields;
pub mod forward;
pub(crate) mod head;
pub mod normalize;
pub mod request;
pub mod response;

pub use chunked::{
    encode_chunk_header, encode_last_chunk, ChunkEvent, ChunkedDecoder, ChunkedError,
};
pub use fields::FramingError;
pub use forward::{
    write_error_response, write_error_response_with, write_request_head, write_response_head,
    ForwardOptions,
};
pub use head::HeadError;
pub use normalize::{normalize_target, InvalidEscape};
pub use request::{parse_request, Method, RequestError, RequestHead};
pub use response::{parse_response, ResponseError, ResponseHead};

/// The HTTP versions we speak; anything else is answered with 505 (RFC 9110 15.6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// The version as it appears on a request or status line.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A field name: short enough, almost always, to be stored inline (no
/// allocation per header on the hot path).
pub type FieldName = compact_str::CompactString;
/// A field value, inline up to 32 bytes.
pub type FieldValue = smallvec::SmallVec<[u8; 32]>;
/// The field lines of a head, inline up to 8 of them.
pub type Fields = smallvec::SmallVec<[Header; 8]>;

/// One field line, in the order and name case it was received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: FieldName,
    pub value: FieldValue,
}

impl Header {
    /// Whether this field has the given (lower-case) name; names are case-insensitive (RFC 9110 5.1).
    pub fn is(&self, lower_name: &str) -> bool {
        self.name.eq_ignore_ascii_case(lower_name)
    }
}

/// Bounds on a message head, so that a peer cannot make us buffer without end.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of the whole head, start line and final empty line included.
    pub max_head_bytes: usize,
    /// Field lines in the head.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// How a message body is delimited (RFC 9112 6.3): a request's or a
/// response's as it arrives, and a body's as it is written out (a chunked
/// response is written as plain bytes to an HTTP/1.0 client, then closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    Length(u64),
    /// Decoded, and re-encoded canonically when written chunked.
    Chunked,
    /// The body ends when its sender closes: responses only (a request
    /// body is never close-delimited, RFC 9112 6.3).
    UntilClose,
}
