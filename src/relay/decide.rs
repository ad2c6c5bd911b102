//! The HTTP relay's decisions, as plain functions of what it knows: whether
//! a request may be sent again, how old a pooled connection it may take,
//! whether the client and the server connections outlive the exchange. The
//! relay only moves bytes and asks these.

use std::time::Duration;

use super::error::ProxyError;
use crate::protocols::http::{Framing, Method, RequestHead};
use crate::table::Timeouts;
use tcpvs_command::PassiveSpec;

/// A request that cannot be retried only reuses a pooled connection this
/// fresh: the server is unlikely to have closed it meanwhile.
pub(super) const SAFE_REUSE: Duration = Duration::from_secs(1);

/// What happens to the client connection after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    KeepAlive,
    Close,
    /// Close, after reading what the client may still be sending.
    Linger,
}

/// Whether a request may be sent again on a new connection when a pooled one
/// turned out closed before any answer: only an idempotent method (RFC 9110
/// 9.2.2) whose whole request is still at hand, that is, without a body.
pub(super) fn replayable(head: &RequestHead) -> bool {
    head.framing == Framing::None && head.method.is_idempotent()
}

/// What follows a try of a request that failed with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Answer the client with the error.
    No,
    /// Send it again on a new connection to a server the scheduler picks
    /// (a pooled connection turned out closed: RFC 9112 9.3.1).
    NewConnection,
    /// Send it to another server, within the retry budget: the server
    /// closed or reset before any byte of its answer.
    AnotherServer,
}

/// Whether and how a request whose try failed with `error` is sent again.
/// Only a replayable request is: one that is not idempotent goes to a
/// second server only when no byte of it reached the first, which is the
/// connect failover's case, not this one.
pub(super) fn retry(error: &ProxyError, head: &RequestHead) -> Retry {
    if !replayable(head) {
        return Retry::No;
    }
    match error {
        ProxyError::StaleConnection => Retry::NewConnection,
        ProxyError::EmptyResponse => Retry::AnotherServer,
        _ => Retry::No,
    }
}

/// Whether an answer with `status` counts against its server: a 5xx, when
/// the service says so (`on_5xx`).
pub(super) fn answer_counts_as_failure(status: u16, passive: &PassiveSpec) -> bool {
    passive.on_5xx && (500..600).contains(&status)
}

/// The longest a pooled connection may have been idle to carry `method`: a
/// request that cannot be retried takes only a fresh one.
pub(super) fn pool_max_idle(method: &Method, timeouts: &Timeouts) -> Duration {
    if method.is_idempotent() {
        timeouts.pool_idle
    } else {
        SAFE_REUSE.min(timeouts.pool_idle)
    }
}

/// The client connection after an answer of ours when no server could be
/// reached: kept when nothing of the request is left unread, else closed
/// after reading what the client may still send.
pub(super) fn flow_after_no_server(head: &RequestHead) -> Flow {
    if head.framing == Framing::None && head.keep_alive {
        Flow::KeepAlive
    } else {
        Flow::Linger
    }
}

/// What becomes of a request body before any server is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyPlan {
    /// None, or too large to hold: relayed as it arrives (within the body
    /// deadline and, when chunked, the size limit).
    Stream,
    /// Read whole first, this many bytes: a client sending it slowly holds no
    /// server connection meanwhile (nginx reads every body first).
    Buffer(usize),
    /// Its Content-Length is above the service's limit: 413, no server.
    TooLarge,
}

/// The plan for a body framed as `framing`, given the service's largest body
/// and the size read whole before connecting (`body_buffer`; 0: none).
pub(super) fn body_plan(framing: Framing, max_body: Option<u64>, body_buffer: usize) -> BodyPlan {
    match framing {
        Framing::Length(n) if max_body.is_some_and(|max| n > max) => BodyPlan::TooLarge,
        Framing::Length(n) if n > 0 && n <= body_buffer as u64 => {
            BodyPlan::Buffer(usize::try_from(n).unwrap_or(usize::MAX))
        }
        _ => BodyPlan::Stream,
    }
}

/// What the relay knows once a final response head has arrived.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answer {
    /// The client asked to keep its connection.
    pub client_keep_alive: bool,
    /// The whole request body reached the server (a final answer may come
    /// before it: 413, 417).
    pub body_complete: bool,
    /// How the response body is framed by the server.
    pub framing: Framing,
    /// The server asked to keep its connection.
    pub server_keep_alive: bool,
    /// The worker drains (a graceful stop): this response is the client's last.
    pub draining: bool,
}

impl Answer {
    /// Whether the response head we write tells the client its connection
    /// stays open: not when part of its request body is still unread, nor
    /// when the worker drains.
    pub fn offer_keep_alive(&self) -> bool {
        self.client_keep_alive && self.body_complete && !self.draining
    }

    /// Whether the client connection stays open after the response, given
    /// how its body is written to the client.
    pub fn client_keeps(&self, client_body: Framing) -> bool {
        self.offer_keep_alive()
            && !matches!(client_body, Framing::UntilClose)
            && self.framing != Framing::UntilClose
    }

    /// Whether the server connection may carry another request once the
    /// response is relayed: not when the server did not get the whole
    /// request, sent more than its response, or has a read in flight.
    pub fn server_reusable(&self, bytes_past_response: bool, poisoned: bool) -> bool {
        self.body_complete
            && self.server_keep_alive
            && self.framing != Framing::UntilClose
            && !bytes_past_response
            && !poisoned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http::{parse_request, Limits};

    fn head(raw: &str) -> RequestHead {
        let (head, _) = parse_request(raw.as_bytes(), &Limits::default())
            .expect("valid")
            .expect("complete");
        head
    }

    #[test]
    fn only_bodiless_idempotent_requests_are_replayed() {
        assert!(replayable(&head("GET / HTTP/1.1\r\nHost: a\r\n\r\n")));
        assert!(replayable(&head("DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n")));
        assert!(!replayable(&head("POST / HTTP/1.1\r\nHost: a\r\n\r\n")));
        assert!(!replayable(&head("PATCH / HTTP/1.1\r\nHost: a\r\n\r\n")));
        assert!(!replayable(&head(
            "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n"
        )));
        assert!(!replayable(&head(
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        )));
    }

    #[test]
    fn only_a_replayable_request_is_retried_and_only_before_any_answer() {
        let get = head("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let post = head("POST / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            retry(&ProxyError::StaleConnection, &get),
            Retry::NewConnection
        );
        assert_eq!(
            retry(&ProxyError::EmptyResponse, &get),
            Retry::AnotherServer
        );
        assert_eq!(retry(&ProxyError::StaleConnection, &post), Retry::No);
        assert_eq!(retry(&ProxyError::EmptyResponse, &post), Retry::No);
        // Part of an answer came, or the server may still be working on it.
        assert_eq!(retry(&ProxyError::BadResponse, &get), Retry::No);
        assert_eq!(retry(&ProxyError::ServerTimeout, &get), Retry::No);
    }

    #[test]
    fn a_5xx_counts_against_the_server_only_when_asked() {
        let mut passive = PassiveSpec::default();
        assert!(!answer_counts_as_failure(503, &passive));
        passive.on_5xx = true;
        assert!(answer_counts_as_failure(500, &passive));
        assert!(answer_counts_as_failure(599, &passive));
        assert!(!answer_counts_as_failure(404, &passive));
        assert!(!answer_counts_as_failure(200, &passive));
    }

    #[test]
    fn requests_that_cannot_be_retried_take_only_fresh_pooled_connections() {
        let mut timeouts = Timeouts {
            pool_idle: Duration::from_secs(10),
            ..Timeouts::default()
        };
        assert_eq!(pool_max_idle(&Method::Get, &timeouts), timeouts.pool_idle);
        assert_eq!(pool_max_idle(&Method::Post, &timeouts), SAFE_REUSE);
        timeouts.pool_idle = Duration::from_millis(300);
        assert_eq!(
            pool_max_idle(&Method::Post, &timeouts),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn no_server_keeps_only_a_bodiless_keep_alive_client() {
        let get = head("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(flow_after_no_server(&get), Flow::KeepAlive);
        let closing = head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert_eq!(flow_after_no_server(&closing), Flow::Linger);
        let post = head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(flow_after_no_server(&post), Flow::Linger);
    }

    fn answer() -> Answer {
        Answer {
            client_keep_alive: true,
            body_complete: true,
            framing: Framing::Length(5),
            server_keep_alive: true,
            draining: false,
        }
    }

    #[test]
    fn a_whole_exchange_keeps_both_connections() {
        let answer = answer();
        assert!(answer.offer_keep_alive());
        assert!(answer.client_keeps(Framing::Length(5)));
        assert!(answer.client_keeps(Framing::Chunked));
        assert!(answer.server_reusable(false, false));
    }

    #[test]
    fn an_early_answer_closes_both_connections() {
        let answer = Answer {
            body_complete: false,
            ..answer()
        };
        assert!(!answer.offer_keep_alive());
        assert!(!answer.client_keeps(Framing::Length(5)));
        assert!(!answer.server_reusable(false, false));
    }

    #[test]
    fn a_close_delimited_body_closes_both_connections() {
        let answer = Answer {
            framing: Framing::UntilClose,
            ..answer()
        };
        assert!(answer.offer_keep_alive());
        assert!(!answer.client_keeps(Framing::Length(5)));
        assert!(!answer.server_reusable(false, false));
        // A chunked body written plainly to an HTTP/1.0 client ends with a close.
        assert!(!super::tests::answer().client_keeps(Framing::UntilClose));
    }

    #[test]
    fn each_side_closes_for_its_own_reasons() {
        let client_closes = Answer {
            client_keep_alive: false,
            ..answer()
        };
        assert!(!client_closes.client_keeps(Framing::Length(5)));
        assert!(client_closes.server_reusable(false, false));
        let server_closes = Answer {
            server_keep_alive: false,
            ..answer()
        };
        assert!(server_closes.client_keeps(Framing::Length(5)));
        assert!(!server_closes.server_reusable(false, false));
        assert!(
            !answer().server_reusable(true, false),
            "bytes past the response"
        );
        assert!(!answer().server_reusable(false, true), "a read in flight");
    }

    #[test]
    fn a_draining_worker_closes_the_client_but_keeps_the_server() {
        let draining = Answer {
            draining: true,
            ..answer()
        };
        assert!(!draining.offer_keep_alive());
        assert!(!draining.client_keeps(Framing::Length(5)));
        assert!(draining.server_reusable(false, false));
    }

    #[test]
    fn small_bodies_are_read_first_and_large_ones_refused() {
        let plan = |framing, max| body_plan(framing, max, 64 * 1024);
        assert_eq!(plan(Framing::Length(10), None), BodyPlan::Buffer(10));
        assert_eq!(
            plan(Framing::Length(64 * 1024), None),
            BodyPlan::Buffer(64 * 1024)
        );
        assert_eq!(plan(Framing::Length(64 * 1024 + 1), None), BodyPlan::Stream);
        assert_eq!(plan(Framing::Length(0), None), BodyPlan::Stream);
        assert_eq!(plan(Framing::None, Some(0)), BodyPlan::Stream);
        assert_eq!(plan(Framing::Chunked, Some(1)), BodyPlan::Stream);
        assert_eq!(plan(Framing::Length(100), Some(100)), BodyPlan::Buffer(100));
        assert_eq!(plan(Framing::Length(101), Some(100)), BodyPlan::TooLarge);
        assert_eq!(
            plan(Framing::Length(1 << 40), Some(1 << 30)),
            BodyPlan::TooLarge
        );
        // Buffering off.
        assert_eq!(body_plan(Framing::Length(10), None, 0), BodyPlan::Stream);
    }
}
