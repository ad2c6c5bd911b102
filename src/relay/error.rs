//! The relay's one error type, for HTTP and RTSP: which side failed, what
//! failed, whether it counts against the server, and the one mapping from an
//! error to the status the client is answered with. (Whether a request is
//! sent again is `decide::retry`'s call.)

use crate::protocols::http::{FramingError, HeadError, RequestError};
use crate::protocols::rtsp::MessageError;

/// Where an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client sent something we refuse, or too slowly.
    Client,
    /// No server could take the request, or the table no longer has it.
    Proxy,
    /// The server failed while it had the request.
    Server,
}

/// Why the proxy answers a request itself instead of relaying an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("bad request: {0}")]
    BadRequest(RequestError),
    #[error("bad RTSP message: {0}")]
    BadMessage(MessageError),
    #[error("a response where a request was expected")]
    UnexpectedResponse,
    #[error("request head not received in time")]
    HeadTimeout,
    #[error("bad chunked request body")]
    BadRequestBody,
    #[error("the request body is larger than the service allows")]
    BodyTooLarge,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("unknown or unreadable RTSP session")]
    UnknownSession,
    #[error("no transport offered that crosses a TCP proxy")]
    UnsupportedTransport,
    #[error("the service was deleted")]
    ServiceGone,
    #[error("the session's server was deleted")]
    SessionServerGone,
    #[error("no server could be connected")]
    Unreachable { timed_out: bool },
    #[error("a pooled connection was closed by the server")]
    StaleConnection,
    #[error("the server closed or reset the connection before answering")]
    EmptyResponse,
    #[error("the server closed or sent an invalid response head")]
    BadResponse,
    #[error("the server did not answer in time")]
    ServerTimeout,
    #[error("the request could not be sent to the server")]
    SendFailed { timed_out: bool },
    #[error("the request body could not be sent to the server")]
    BodyNotSent,
    #[error("the server switched protocols unasked")]
    UnaskedUpgrade,
    #[error("over the service's rate_per_source")]
    TooManyRequests { retry_after_secs: u64 },
}

impl ProxyError {
    /// Which side failed.
    pub fn side(&self) -> Side {
        use ProxyError::*;
        match self {
            BadRequest(_)
            | BadMessage(_)
            | UnexpectedResponse
            | HeadTimeout
            | BadRequestBody
            | BodyTooLarge
            | BodyTimeout
            | UnknownSession
            | UnsupportedTransport
            | TooManyRequests { .. } => Side::Client,
            ServiceGone | SessionServerGone | Unreachable { .. } => Side::Proxy,
            StaleConnection
            | EmptyResponse
            | BadResponse
            | ServerTimeout
            | SendFailed { .. }
            | BodyNotSent
            | UnaskedUpgrade => Side::Server,
        }
    }

    /// Whether the failure counts against the server in its passive check:
    /// it failed to take or to answer a request. A stale pooled connection
    /// does not (servers close idle connections), nor anything the client
    /// did.
    pub fn counts_against_server(&self) -> bool {
        matches!(
            self,
            ProxyError::EmptyResponse
                | ProxyError::BadResponse
                | ProxyError::ServerTimeout
                | ProxyError::SendFailed { .. }
        )
    }

    /// The status the client is answered with (HTTP, or RTSP's equivalents).
    pub fn status(&self) -> u16 {
        use ProxyError::*;
        match self {
            BadRequest(error) => request_status(error),
            // RFC 2326 7.1.1.
            BadMessage(MessageError::Head(
                HeadError::TooLarge { .. } | HeadError::TooManyFields,
            )) => 413,
            BadMessage(MessageError::Version) => 505,
            BadMessage(_) | UnexpectedResponse | BadRequestBody => 400,
            HeadTimeout | BodyTimeout => 408,
            BodyTooLarge => 413,
            TooManyRequests { .. } => 429,
            UnknownSession => 454,
            UnsupportedTransport => 461,
            SessionServerGone => 454,
            ServiceGone | Unreachable { timed_out: false } => 503,
            Unreachable { timed_out: true } | ServerTimeout | SendFailed { timed_out: true } => 504,
            StaleConnection
            | EmptyResponse
            | BadResponse
            | SendFailed { timed_out: false }
            | BodyNotSent
            | UnaskedUpgrade => 502,
        }
    }
}

impl ProxyError {
    /// The `Retry-After` of the answer, in seconds, when it has one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ProxyError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// RFC 9112 and 9110 on requests we refuse.
fn request_status(error: &RequestError) -> u16 {
    match error {
        RequestError::Head(HeadError::TooLarge {
            start_line_complete: false,
        }) => 414,
        RequestError::Head(HeadError::TooLarge { .. } | HeadError::TooManyFields) => 431,
        // RFC 9112 6.1: a transfer coding the server does not understand.
        RequestError::Framing(FramingError::UnknownCoding) | RequestError::Connect => 501,
        RequestError::Version => 505,
        _ => 400,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_requests_get_the_rfc_status() {
        let status = |e: RequestError| ProxyError::BadRequest(e).status();
        assert_eq!(
            status(RequestError::Head(HeadError::TooLarge {
                start_line_complete: false
            })),
            414
        );
        assert_eq!(
            status(RequestError::Head(HeadError::TooLarge {
                start_line_complete: true
            })),
            431
        );
        assert_eq!(status(RequestError::Head(HeadError::TooManyFields)), 431);
        assert_eq!(
            status(RequestError::Framing(FramingError::UnknownCoding)),
            501
        );
        assert_eq!(status(RequestError::Connect), 501);
        assert_eq!(status(RequestError::Version), 505);
        assert_eq!(status(RequestError::Head(HeadError::BareLf)), 400);
        assert_eq!(status(RequestError::MissingHost), 400);
    }

    #[test]
    fn refused_rtsp_messages_get_the_rfc_status() {
        let status = |e: MessageError| ProxyError::BadMessage(e).status();
        assert_eq!(status(MessageError::Head(HeadError::TooManyFields)), 413);
        assert_eq!(
            status(MessageError::Head(HeadError::TooLarge {
                start_line_complete: true
            })),
            413
        );
        assert_eq!(status(MessageError::Version), 505);
        assert_eq!(status(MessageError::CSeq), 400);
        assert_eq!(ProxyError::UnknownSession.status(), 454);
        assert_eq!(ProxyError::SessionServerGone.status(), 454);
        assert_eq!(ProxyError::UnsupportedTransport.status(), 461);
    }

    #[test]
    fn unreachable_servers_and_timeouts() {
        assert_eq!(ProxyError::Unreachable { timed_out: false }.status(), 503);
        assert_eq!(ProxyError::Unreachable { timed_out: true }.status(), 504);
        assert_eq!(ProxyError::ServiceGone.status(), 503);
        assert_eq!(ProxyError::HeadTimeout.status(), 408);
        assert_eq!(ProxyError::ServerTimeout.status(), 504);
        assert_eq!(ProxyError::SendFailed { timed_out: true }.status(), 504);
        assert_eq!(ProxyError::SendFailed { timed_out: false }.status(), 502);
        assert_eq!(ProxyError::BadResponse.status(), 502);
        assert_eq!(ProxyError::StaleConnection.status(), 502);
        assert_eq!(ProxyError::UnaskedUpgrade.status(), 502);
        assert_eq!(ProxyError::BodyNotSent.status(), 502);
        assert_eq!(ProxyError::BadRequestBody.status(), 400);
        assert_eq!(ProxyError::BodyTooLarge.status(), 413);
        assert_eq!(ProxyError::BodyTimeout.status(), 408);
        assert!(!ProxyError::BodyTimeout.counts_against_server());
        assert_eq!(ProxyError::BodyTooLarge.side(), Side::Client);
        let over_rate = ProxyError::TooManyRequests {
            retry_after_secs: 2,
        };
        assert_eq!(
            (over_rate.status(), over_rate.retry_after_secs()),
            (429, Some(2))
        );
        assert_eq!(over_rate.side(), Side::Client);
    }

    #[test]
    fn only_failures_of_the_server_count_against_it() {
        for yes in [
            ProxyError::EmptyResponse,
            ProxyError::BadResponse,
            ProxyError::ServerTimeout,
            ProxyError::SendFailed { timed_out: false },
        ] {
            assert!(yes.counts_against_server(), "{yes:?}");
        }
        for no in [
            ProxyError::StaleConnection,
            ProxyError::HeadTimeout,
            ProxyError::BodyNotSent,
            ProxyError::Unreachable { timed_out: false },
        ] {
            assert!(!no.counts_against_server(), "{no:?}");
        }
        assert_eq!(ProxyError::EmptyResponse.status(), 502);
    }

    #[test]
    fn each_error_names_its_side() {
        assert_eq!(ProxyError::HeadTimeout.side(), Side::Client);
        assert_eq!(ProxyError::UnknownSession.side(), Side::Client);
        assert_eq!(
            ProxyError::Unreachable { timed_out: false }.side(),
            Side::Proxy
        );
        assert_eq!(ProxyError::ServiceGone.side(), Side::Proxy);
        assert_eq!(ProxyError::StaleConnection.side(), Side::Server);
        assert_eq!(ProxyError::ServerTimeout.side(), Side::Server);
    }
}
