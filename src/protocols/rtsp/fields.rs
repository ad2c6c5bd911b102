//! The RTSP fields the proxy acts on: Session (which server owns a request)
//! and Transport (whether its media can cross a TCP proxy). Their grammar is
//! rtsp-types'; what we do with them is ours.

use std::time::Duration;

use rtsp_types::headers::{
    HeaderName, RtpLowerTransport, Session, Transport, Transports, TypedHeader, SESSION, TRANSPORT,
};
use rtsp_types::{Empty, Method, Request, Version};

use super::message::Message;

/// A session's timeout when its SETUP response names none (RFC 2326 12.37).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest session id we keep: ids are short tokens, and the table is bounded.
const MAX_SESSION_ID: usize = 256;
/// Longest timeout we honour, so an entry cannot be pinned for days.
const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(3600);

/// A Session field: the id and the timeout it carries, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionField {
    pub id: String,
    pub timeout: Option<Duration>,
}

/// A Session field we cannot route on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unreadable Session field")]
pub struct BadSession;

/// The message's Session field. `Err`: present but unreadable, which the
/// proxy treats like an unknown session.
pub fn session(message: &Message) -> Result<Option<SessionField>, BadSession> {
    let Some(value) = message.field("session") else {
        return Ok(None);
    };
    let Ok(Some(Session(id, timeout))) = Session::from_headers(one_field(SESSION, value)) else {
        return Err(BadSession);
    };
    let id = id.trim();
    let readable = !id.is_empty()
        && id.len() <= MAX_SESSION_ID
        && id.bytes().all(|b| b.is_ascii_graphic() && b != b';');
    if !readable {
        return Err(BadSession);
    }
    Ok(Some(SessionField {
        id: id.to_string(),
        timeout: timeout.map(|t| Duration::from_secs(t).min(MAX_SESSION_TIMEOUT)),
    }))
}

/// The transport specs of a SETUP's Transport value that can cross a TCP
/// proxy (RTP over the RTSP connection itself, interleaved), in the client's
/// order and as the client wrote them. `None`: there are none, so the SETUP
/// must be answered 461 (RFC 2326 12.39). UDP specs are dropped: their media
/// would go from the server straight to ports we do not relay.
pub fn tcp_transports(value: &str) -> Option<String> {
    let kept: Vec<&str> = split_specs(value)
        .into_iter()
        .map(str::trim)
        .filter(|spec| is_interleaved_tcp(spec))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

fn is_interleaved_tcp(spec: &str) -> bool {
    let Ok(Some(transports)) = Transports::from_headers(one_field(TRANSPORT, spec)) else {
        return false;
    };
    transports.len() == 1
        && matches!(
            &transports[0],
            Transport::Rtp(rtp) if rtp.lower_transport == Some(RtpLowerTransport::Tcp)
        )
}

/// A carrier for one field, for rtsp-types' typed parsers (which read a
/// whole message's fields).
fn one_field(name: HeaderName, value: &str) -> Request<Empty> {
    Request::builder(Method::Options, Version::V1_0)
        .header(name, value.to_string())
        .empty()
}

/// Splits a Transport list at the commas outside quoted strings.
fn split_specs(value: &str) -> Vec<&str> {
    let mut specs = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                specs.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    specs.push(&value[start..]);
    specs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http::Limits;
    use crate::protocols::rtsp::message::parse_message;

    fn with_session(value: &str) -> Message {
        let text = format!("PLAY rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nSession: {value}\r\n\r\n");
        parse_message(text.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn reads_session_ids_and_timeouts() {
        let field = |value| session(&with_session(value));
        assert_eq!(
            field("A1b2;timeout=30"),
            Ok(Some(SessionField {
                id: "A1b2".into(),
                timeout: Some(Duration::from_secs(30)),
            }))
        );
        assert_eq!(
            field("12345678"),
            Ok(Some(SessionField {
                id: "12345678".into(),
                timeout: None,
            }))
        );
        assert_eq!(
            field("x;timeout=99999999").unwrap().unwrap().timeout,
            Some(MAX_SESSION_TIMEOUT)
        );
        assert_eq!(field("x;timeout=soon"), Err(BadSession));
        assert_eq!(field(&"x".repeat(300)), Err(BadSession));
        let none = parse_message(
            b"PLAY rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            &Limits::default(),
        )
        .unwrap()
        .unwrap()
        .0;
        assert_eq!(session(&none), Ok(None));
    }

    #[test]
    fn keeps_only_interleaved_tcp_transports() {
        assert_eq!(
            tcp_transports("RTP/AVP/TCP;unicast;interleaved=0-1").as_deref(),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1")
        );
        assert_eq!(
            tcp_transports(
                "RTP/AVP;unicast;client_port=5000-5001, RTP/AVP/TCP;unicast;interleaved=2-3;mode=\"PLAY\""
            )
            .as_deref(),
            Some("RTP/AVP/TCP;unicast;interleaved=2-3;mode=\"PLAY\"")
        );
        assert_eq!(
            tcp_transports("RTP/AVP;unicast;client_port=5000-5001"),
            None
        );
        assert_eq!(tcp_transports("RTP/AVP/UDP;multicast"), None);
        assert_eq!(tcp_transports(""), None);
        assert_eq!(tcp_transports("garbage,,;"), None);
    }
}
