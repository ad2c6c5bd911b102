//! How an exchange ended, as the two letters of its access line (HAProxy's
//! termination state, which operators already read): who ended it, and in
//! which phase. `--` is an exchange that completed normally.
//!
//! First letter, who: `C` the client (closed or reset), `S` the server
//! (refused, closed, reset or sent something invalid), `P` the proxy (it
//! refused the request: malformed, over a limit, nowhere to send it), `R` a
//! local resource ran out (descriptors, memory, ports). A timeout is the
//! lower-case letter of the side that was waited for (`c`, `s`).
//!
//! Second letter, when: `R` receiving the request from the client (its
//! head, or its body, whether read before a server is chosen or streamed
//! to one), `Q` waiting in the service's queue, `C` connecting to a server, `H` waiting for the response head,
//! `D` relaying the response body or a tunnel.

use std::fmt;

use super::body::BodyError;
use super::connect::Unreachable;
use super::error::ProxyError;
use super::queue::Refused;
use crate::net::IoFailure;

/// Who ended an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    Client,
    Server,
    Proxy,
    /// This process ran out of something.
    Resource,
}

/// Where the exchange was when it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Receiving the request from the client: its head or its body.
    Request,
    /// Waiting in the service's queue for a server below its `max_conns`.
    Queue,
    /// Connecting to a server.
    Connect,
    /// Sending the request to the server and waiting for its response head.
    Headers,
    /// Relaying the response body, or a tunnel.
    Data,
}

/// Why an exchange ended before it completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termination {
    pub by: Party,
    /// `by` did not act in time (it is the side that was waited for).
    pub timed_out: bool,
    pub phase: Phase,
}

impl Termination {
    pub const fn new(by: Party, phase: Phase) -> Self {
        Self {
            by,
            timed_out: false,
            phase,
        }
    }

    pub const fn timeout(by: Party, phase: Phase) -> Self {
        Self {
            by,
            timed_out: true,
            phase,
        }
    }

    /// A failure to read from or write to `peer`: a timeout is `peer`'s, a
    /// local resource error is this process's, anything else is `peer`
    /// closing or resetting.
    pub fn io(failure: &IoFailure, peer: Party, phase: Phase) -> Self {
        match failure {
            IoFailure::TimedOut => Self::timeout(peer, phase),
            failure if failure.is_local() => Self::new(Party::Resource, phase),
            _ => Self::new(peer, phase),
        }
    }

    /// A body relayed from `from` to `to` that broke off in `phase`.
    pub fn body(error: &BodyError, from: Party, to: Party, phase: Phase) -> Self {
        match error {
            BodyError::Read(failure) => Self::io(failure, from, phase),
            BodyError::Write(failure) => Self::io(failure, to, phase),
            // The sender closed early, or its framing was invalid (which
            // the proxy refused to relay further).
            BodyError::Truncated => Self::new(from, phase),
            BodyError::BadChunk(_) | BodyError::TooLarge => Self::new(Party::Proxy, phase),
        }
    }

    /// No server could take the request: the queue refused it (its timeout
    /// is HAProxy's `sQ`; a full queue the proxy's refusal), or the last
    /// connect tried failed, or no server was usable (HAProxy's `SC` to
    /// `<NOSRV>`).
    pub fn unreachable(unreachable: &Unreachable) -> Self {
        match (unreachable.queue, unreachable.failed.last()) {
            (Some(Refused::TimedOut), _) => Self::timeout(Party::Server, Phase::Queue),
            (Some(Refused::Full), _) => Self::new(Party::Proxy, Phase::Queue),
            (None, Some(last)) => Self::io(&last.failure, Party::Server, Phase::Connect),
            (None, None) => Self::new(Party::Server, Phase::Connect),
        }
    }

    /// The termination of an exchange the proxy answered with `error`.
    pub fn of(error: &ProxyError) -> Self {
        use Party::*;
        use Phase::*;
        use ProxyError::*;
        match error {
            BadRequest(_) | BadMessage(_) | UnexpectedResponse | UnknownSession
            | UnsupportedTransport => Self::new(Proxy, Request),
            HeadTimeout | BodyTimeout => Self::timeout(Client, Request),
            BodyTooLarge | TooManyRequests { .. } => Self::new(Proxy, Request),
            BadRequestBody => Self::new(Proxy, Headers),
            ServiceGone | SessionServerGone => Self::new(Proxy, Connect),
            Unreachable { timed_out: false } => Self::new(Server, Connect),
            Unreachable { timed_out: true } => Self::timeout(Server, Connect),
            StaleConnection | EmptyResponse | SendFailed { timed_out: false } | BodyNotSent => {
                Self::new(Server, Headers)
            }
            ServerTimeout | SendFailed { timed_out: true } => Self::timeout(Server, Headers),
            // The server answered, but with what the proxy will not relay.
            BadResponse | UnaskedUpgrade => Self::new(Proxy, Headers),
        }
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = match self.by {
            Party::Client => 'C',
            Party::Server => 'S',
            Party::Proxy => 'P',
            Party::Resource => 'R',
        };
        let by = if self.timed_out {
            by.to_ascii_lowercase()
        } else {
            by
        };
        let phase = match self.phase {
            Phase::Request => 'R',
            Phase::Queue => 'Q',
            Phase::Connect => 'C',
            Phase::Headers => 'H',
            Phase::Data => 'D',
        };
        write!(f, "{by}{phase}")
    }
}

/// The two letters of an exchange's access line: `--` when it completed.
pub fn letters(termination: Option<Termination>) -> String {
    termination.map_or_else(|| "--".to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::protocols::http::{HeadError, RequestError};

    #[test]
    fn refusals_and_timeouts_read_as_haproxy_flags() {
        let of = |e: ProxyError| Termination::of(&e).to_string();
        assert_eq!(of(ProxyError::BadRequest(RequestError::MissingHost)), "PR");
        assert_eq!(
            of(ProxyError::BadRequest(RequestError::Head(
                HeadError::TooManyFields
            ))),
            "PR"
        );
        assert_eq!(of(ProxyError::HeadTimeout), "cR");
        assert_eq!(of(ProxyError::Unreachable { timed_out: false }), "SC");
        assert_eq!(of(ProxyError::Unreachable { timed_out: true }), "sC");
        assert_eq!(of(ProxyError::ServerTimeout), "sH");
        assert_eq!(of(ProxyError::EmptyResponse), "SH");
        assert_eq!(of(ProxyError::BadResponse), "PH");
        assert_eq!(letters(None), "--");
    }

    #[test]
    fn a_cut_body_names_the_side_that_cut_it() {
        let reset = || IoFailure::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        let (server, client) = (Party::Server, Party::Client);
        let response = |e: BodyError| Termination::body(&e, server, client, Phase::Data);
        assert_eq!(response(BodyError::Truncated).to_string(), "SD");
        assert_eq!(
            response(BodyError::Read(IoFailure::TimedOut)).to_string(),
            "sD"
        );
        assert_eq!(response(BodyError::Write(reset())).to_string(), "CD");
        assert_eq!(
            response(BodyError::Write(IoFailure::TimedOut)).to_string(),
            "cD"
        );
        let emfile = IoFailure::Io(io::Error::from_raw_os_error(24));
        assert_eq!(response(BodyError::Read(emfile)).to_string(), "RD");
    }
}
