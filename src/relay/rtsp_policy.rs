//! What the RTSP relay decides about sessions, as plain functions: which
//! client requests it answers itself, what a server's answer does to the
//! session table, and what becomes of a connection's sessions when it ends.
//! `relay::rtsp` moves the bytes and carries these decisions out.

use std::time::{Duration, Instant};

use super::error::ProxyError;
use crate::protocols::rtsp::{
    session, tcp_transports, Message, SessionField, SessionTable, DEFAULT_SESSION_TIMEOUT,
};
use crate::table::ServerAddr;

/// Which side's connection ended the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EndedBy {
    Client,
    Server,
}

/// A request the proxy answers itself.
#[derive(Debug)]
pub(super) struct Refused {
    pub error: ProxyError,
    /// Boxed: a head is large, and refusals are rare.
    pub request: Box<Message>,
}

/// A request to forward (possibly rewritten), with the Session it carries
/// and the server that owns that session.
#[derive(Debug)]
pub(super) struct Admitted {
    pub request: Message,
    pub session: Option<(String, ServerAddr)>,
}

/// Checks a client request against the session table and the transports we
/// relay, on a connection pinned to `pinned` (if it is pinned yet). `Err`:
/// answer it ourselves.
/// - 454 when its Session is unreadable, unknown, or owned by another server
///   than the one this connection is pinned to;
/// - 461 when a SETUP offers no transport that can cross a TCP proxy (we do
///   not relay UDP); otherwise only its TCP transports are forwarded.
pub(super) fn admit(
    mut message: Message,
    sessions: &SessionTable,
    pinned: Option<ServerAddr>,
    now: Instant,
) -> Result<Admitted, Refused> {
    let refuse = |error: ProxyError, request: Message| Refused {
        error,
        request: Box::new(request),
    };
    let session = match session(&message) {
        Ok(None) => None,
        Ok(Some(field)) => match sessions.lookup(&field.id, now) {
            Some(owner) if pinned.is_none_or(|server| server == owner) => Some((field.id, owner)),
            Some(_) | None => return Err(refuse(ProxyError::UnknownSession, message)),
        },
        Err(_) => return Err(refuse(ProxyError::UnknownSession, message)),
    };
    if message.method() == Some("SETUP") {
        if let Some(offered) = message.field("transport") {
            match tcp_transports(offered) {
                Some(kept) => message.set_field("Transport", &kept),
                None => return Err(refuse(ProxyError::UnsupportedTransport, message)),
            }
        }
    }
    Ok(Admitted {
        request: message,
        session,
    })
}

/// What a server's answer does to the session table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Settle {
    Nothing,
    /// A SETUP created a session on this connection's server.
    Learn {
        id: String,
        timeout: Duration,
    },
    /// A SETUP joined a session this connection already learned.
    Refresh {
        id: String,
    },
    /// The session the request named is over.
    End {
        id: String,
    },
}

/// What the answer (`status`, with its Session field) to a request of
/// `method` that named `request_session` does to the sessions; `learned`
/// are the sessions this connection learned so far.
pub(super) fn settle(
    method: &str,
    request_session: Option<&str>,
    status: u16,
    answer_session: Option<SessionField>,
    learned: &[String],
) -> Settle {
    let success = (200..300).contains(&status);
    match (method, answer_session) {
        ("SETUP", Some(field)) if success => {
            return if learned.contains(&field.id) {
                Settle::Refresh { id: field.id }
            } else {
                let timeout = field.timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT);
                Settle::Learn {
                    id: field.id,
                    timeout,
                }
            };
        }
        _ => {}
    }
    let Some(id) = request_session else {
        return Settle::Nothing;
    };
    // An RTSP/1.0 TEARDOWN that succeeds ends its session (RFC 2326 10.12),
    // whether or not the answer names it again (GStreamer's server does):
    // RTSP 2.0's "named means still alive" is not 1.0's. A 454 says the
    // server has no such session.
    let ended = if method == "TEARDOWN" {
        success
    } else {
        status == 454
    };
    if ended {
        Settle::End { id: id.to_string() }
    } else {
        Settle::Nothing
    }
}

/// What becomes of a session when its connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Gone: its media ran on this connection's server side, or its
    /// TEARDOWN was sent (clients often close without waiting for the answer).
    Forget,
    /// Kept until its timeout, for the client to come back on a new connection.
    Release,
}

/// The fate of a session of a connection that `ended_by` closed.
pub(super) fn fate_at_end(ended_by: EndedBy, teardown_sent: bool) -> Fate {
    if teardown_sent || ended_by == EndedBy::Server {
        Fate::Forget
    } else {
        Fate::Release
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http::Limits;
    use crate::protocols::rtsp::parse_message;

    fn message(raw: &str) -> Message {
        let raw = raw.replace('\n', "\r\n") + "\r\n";
        parse_message(raw.as_bytes(), &Limits::default())
            .expect("valid")
            .expect("complete")
            .0
    }

    fn server(port: u16) -> ServerAddr {
        ServerAddr(([127, 0, 0, 1], port).into())
    }

    fn table_with(id: &str, owner: ServerAddr) -> SessionTable {
        let sessions = SessionTable::new(16);
        assert!(sessions.learn(id, owner, Duration::from_secs(60), Instant::now()));
        sessions
    }

    fn refused_with(result: Result<Admitted, Refused>) -> u16 {
        result.expect_err("refused").error.status()
    }

    #[test]
    fn a_request_without_session_is_admitted_as_is() {
        let sessions = SessionTable::new(16);
        let request = message("DESCRIBE rtsp://a/x RTSP/1.0\nCSeq: 1\n");
        let admitted = admit(request, &sessions, None, Instant::now()).expect("admitted");
        assert_eq!(admitted.session, None);
        assert_eq!(admitted.request.method(), Some("DESCRIBE"));
    }

    #[test]
    fn a_known_session_is_routed_to_its_owner() {
        let sessions = table_with("abc", server(1));
        let play = message("PLAY rtsp://a/x RTSP/1.0\nCSeq: 2\nSession: abc\n");
        let admitted = admit(play, &sessions, None, Instant::now()).expect("admitted");
        assert_eq!(admitted.session, Some(("abc".to_string(), server(1))));
    }

    #[test]
    fn unknown_unreadable_and_foreign_sessions_are_454() {
        let sessions = table_with("abc", server(1));
        let now = Instant::now();
        let unknown = message("PLAY rtsp://a/x RTSP/1.0\nCSeq: 2\nSession: zzz\n");
        assert_eq!(refused_with(admit(unknown, &sessions, None, now)), 454);
        let unreadable = message("PLAY rtsp://a/x RTSP/1.0\nCSeq: 2\nSession: ;timeout=5\n");
        assert_eq!(refused_with(admit(unreadable, &sessions, None, now)), 454);
        let foreign = message("PLAY rtsp://a/x RTSP/1.0\nCSeq: 2\nSession: abc\n");
        assert_eq!(
            refused_with(admit(foreign, &sessions, Some(server(2)), now)),
            454
        );
        let own = message("PLAY rtsp://a/x RTSP/1.0\nCSeq: 2\nSession: abc\n");
        assert!(admit(own, &sessions, Some(server(1)), now).is_ok());
    }

    #[test]
    fn a_setup_keeps_only_transports_that_cross_a_tcp_proxy() {
        let sessions = SessionTable::new(16);
        let now = Instant::now();
        let udp_only =
            message("SETUP rtsp://a/x RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP;unicast;client_port=5000-5001\n");
        assert_eq!(refused_with(admit(udp_only, &sessions, None, now)), 461);
        let mixed = message(
            "SETUP rtsp://a/x RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP;unicast;client_port=5000-5001,RTP/AVP/TCP;unicast;interleaved=0-1\n",
        );
        let admitted = admit(mixed, &sessions, None, now).expect("admitted");
        assert_eq!(
            admitted.request.field("transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1")
        );
    }

    fn field(id: &str, timeout: Option<u64>) -> Option<SessionField> {
        Some(SessionField {
            id: id.to_string(),
            timeout: timeout.map(Duration::from_secs),
        })
    }

    #[test]
    fn a_successful_setup_teaches_its_session_once() {
        assert_eq!(
            settle("SETUP", None, 200, field("s1", Some(30)), &[]),
            Settle::Learn {
                id: "s1".into(),
                timeout: Duration::from_secs(30)
            }
        );
        assert_eq!(
            settle("SETUP", None, 200, field("s1", None), &[]),
            Settle::Learn {
                id: "s1".into(),
                timeout: DEFAULT_SESSION_TIMEOUT
            }
        );
        assert_eq!(
            settle("SETUP", Some("s1"), 200, field("s1", None), &["s1".into()]),
            Settle::Refresh { id: "s1".into() }
        );
        assert_eq!(
            settle("SETUP", None, 461, field("s1", None), &[]),
            Settle::Nothing
        );
        assert_eq!(settle("SETUP", None, 200, None, &[]), Settle::Nothing);
        assert_eq!(
            settle("PLAY", Some("s1"), 200, field("s1", None), &[]),
            Settle::Nothing
        );
    }

    #[test]
    fn a_successful_teardown_ends_its_session_named_again_or_not() {
        for answer in [None, field("s1", None)] {
            assert_eq!(
                settle("TEARDOWN", Some("s1"), 200, answer, &["s1".into()]),
                Settle::End { id: "s1".into() }
            );
        }
        assert_eq!(
            settle("TEARDOWN", Some("s1"), 500, None, &["s1".into()]),
            Settle::Nothing
        );
        assert_eq!(settle("TEARDOWN", None, 200, None, &[]), Settle::Nothing);
    }

    #[test]
    fn a_454_answer_ends_the_session_the_request_named() {
        assert_eq!(
            settle("PLAY", Some("s1"), 454, None, &[]),
            Settle::End { id: "s1".into() }
        );
        assert_eq!(settle("PLAY", None, 454, None, &[]), Settle::Nothing);
    }

    #[test]
    fn sessions_outlive_a_client_that_leaves_but_not_a_server_or_a_teardown() {
        assert_eq!(fate_at_end(EndedBy::Client, false), Fate::Release);
        assert_eq!(fate_at_end(EndedBy::Server, false), Fate::Forget);
        assert_eq!(fate_at_end(EndedBy::Client, true), Fate::Forget);
        assert_eq!(fate_at_end(EndedBy::Server, true), Fate::Forget);
    }
}
