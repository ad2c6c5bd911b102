//! The record of one exchange (an HTTP request and its response, or an RTSP
//! request and its answer), filled in as the exchange goes and finished
//! exactly once at its end, whichever way it ended: the one place where the
//! access line is written, and where per-exchange metrics are counted.

use std::borrow::Cow;
use std::net::SocketAddr;

use super::termination::{letters, Termination};
use crate::net::Instant;
use crate::table::{ServerAddr, Settings};

/// What is known of one exchange so far.
#[must_use = "an exchange record is finished exactly once"]
pub(super) struct Record<'a> {
    client: SocketAddr,
    service: &'a str,
    method: Cow<'a, str>,
    target: Cow<'a, str>,
    started: Instant,
    /// The server that got the request, if one did.
    server: Option<ServerAddr>,
    /// The status the client was sent (or, for an answer cut short, was
    /// being sent); `None` when no answer was started.
    status: Option<u16>,
    /// Why the exchange ended early; `None` when it completed.
    termination: Option<Termination>,
}

impl<'a> Record<'a> {
    /// The record of a request that starts now.
    pub fn start(client: SocketAddr, service: &'a str, method: &'a str, target: &'a str) -> Self {
        Self::started_at(client, service, method, target, Instant::now())
    }

    pub fn started_at(
        client: SocketAddr,
        service: &'a str,
        method: &'a str,
        target: &'a str,
        started: Instant,
    ) -> Self {
        Self {
            client,
            service,
            method: Cow::Borrowed(method),
            target: Cow::Borrowed(target),
            started,
            server: None,
            status: None,
            termination: None,
        }
    }

    /// The record of a request refused before its head was parsed: its
    /// method and target are the first two words of what the client sent
    /// (cut to a sane length), so that a malformed or hostile request still
    /// says what it was.
    pub fn refused(
        client: SocketAddr,
        service: &'a str,
        received: &[u8],
        started: Instant,
    ) -> Self {
        let line = received.split(|&b| b == b'\n').next().unwrap_or_default();
        let mut words = line.split(|&b| b == b' ').filter(|word| !word.is_empty());
        let mut word = |max: usize| match words.next() {
            Some(word) => {
                let word = word.strip_suffix(b"\r").unwrap_or(word);
                Cow::Owned(String::from_utf8_lossy(&word[..word.len().min(max)]).into_owned())
            }
            None => Cow::Borrowed("-"),
        };
        let (method, target) = (word(MAX_LOGGED_METHOD), word(MAX_LOGGED_TARGET));
        let mut record = Self::started_at(client, service, "", "", started);
        (record.method, record.target) = (method, target);
        record
    }

    /// The server the request was sent to (the last one, after a retry).
    pub fn sent_to(&mut self, server: ServerAddr) {
        self.server = Some(server);
    }

    /// The status the client was answered with.
    pub fn answered(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// The exchange ended before it completed, as `termination` says.
    pub fn ended(&mut self, termination: Termination) {
        self.termination = Some(termination);
    }

    /// Ends the record: writes its access line when access logging is on.
    pub fn finish(self, settings: &Settings) {
        // Metrics (issue 18): counted into this worker's own counters.
        crate::admin::counters::count_exchange(
            self.service,
            self.server,
            self.status,
            self.started.elapsed(),
        );
        // Formatting costs: the line is made only when it will be written.
        if settings.access_log && tracing::enabled!(target: "tcpvs::access", tracing::Level::INFO) {
            tracing::info!(target: "tcpvs::access", "{}", self.access_line());
        }
    }

    /// `client service "METHOD target" status termination server elapsed`;
    /// `0` for the status when no answer was started, `-` for the server when
    /// none got the request, and the termination's two letters (`--` for an
    /// exchange that completed).
    fn access_line(&self) -> String {
        let server = self
            .server
            .map_or_else(|| "-".to_string(), |server| server.to_string());
        format!(
            "{} {} \"{} {}\" {} {} {} {}ms",
            self.client,
            self.service,
            escaped(&self.method),
            escaped(&self.target),
            self.status.unwrap_or(0),
            letters(self.termination),
            server,
            self.started.elapsed().as_millis()
        )
    }
}

/// The longest method and target logged for a refused request: a 16 KiB
/// garbage line must not become a 16 KiB access line.
const MAX_LOGGED_METHOD: usize = 32;
const MAX_LOGGED_TARGET: usize = 1024;

/// A field as it goes between the quotes of an access line: `"` and `\\`
/// escaped with a backslash, control bytes and DEL as `\xNN`, so that no
/// field can end the quotes early or start a line of its own. (Heads are
/// refused before any such byte reaches here; the line does not rely on it.)
fn escaped(field: &str) -> Cow<'_, str> {
    let clean = |c: char| c != '"' && c != '\\' && !c.is_control();
    if field.chars().all(clean) {
        return Cow::Borrowed(field);
    }
    let mut out = String::with_capacity(field.len() + 8);
    for c in field.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::termination::{Party, Phase};

    fn record() -> Record<'static> {
        Record::start("192.0.2.7:4321".parse().unwrap(), "web", "GET", "/a?b")
    }

    #[test]
    fn a_served_request_names_its_server_and_status() {
        let mut record = record();
        record.sent_to(ServerAddr("127.0.0.1:9001".parse().unwrap()));
        record.answered(200);
        assert_eq!(
            record.access_line(),
            "192.0.2.7:4321 web \"GET /a?b\" 200 -- 127.0.0.1:9001 0ms"
        );
    }

    #[test]
    fn a_request_no_server_got_shows_a_dash() {
        let mut record = record();
        record.answered(503);
        assert_eq!(
            record.access_line(),
            "192.0.2.7:4321 web \"GET /a?b\" 503 -- - 0ms"
        );
    }

    #[test]
    fn quotes_and_control_bytes_cannot_break_the_line() {
        let record = Record::start(
            "192.0.2.7:4321".parse().unwrap(),
            "web",
            "GET",
            "/a\"b\\c\r\nfake 200\x7f",
        );
        assert_eq!(
            record.access_line(),
            "192.0.2.7:4321 web \"GET /a\\\"b\\\\c\\x0d\\x0afake 200\\x7f\" 0 -- - 0ms"
        );
        assert!(matches!(escaped("/plain?x=1"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_cut_answer_keeps_its_status_and_says_who_cut_it() {
        let mut record = record();
        record.sent_to(ServerAddr("127.0.0.1:9001".parse().unwrap()));
        record.answered(200);
        record.ended(Termination::new(Party::Server, Phase::Data));
        assert_eq!(
            record.access_line(),
            "192.0.2.7:4321 web \"GET /a?b\" 200 SD 127.0.0.1:9001 0ms"
        );
    }

    #[test]
    fn an_unanswered_exchange_has_status_zero() {
        let mut record = record();
        record.sent_to(ServerAddr("127.0.0.1:9001".parse().unwrap()));
        record.ended(Termination::new(Party::Client, Phase::Headers));
        assert_eq!(
            record.access_line(),
            "192.0.2.7:4321 web \"GET /a?b\" 0 CH 127.0.0.1:9001 0ms"
        );
    }

    #[test]
    fn a_refused_request_is_named_by_its_first_words() {
        let client = "192.0.2.7:4321".parse().unwrap();
        let started = Instant::now();
        let line = |received: &[u8]| {
            let mut record = Record::refused(client, "web", received, started);
            record.answered(400);
            record.ended(Termination::new(Party::Proxy, Phase::Request));
            record.access_line()
        };
        assert_eq!(
            line(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            "192.0.2.7:4321 web \"GET /x\" 400 PR - 0ms"
        );
        assert_eq!(line(b""), "192.0.2.7:4321 web \"- -\" 400 PR - 0ms");
        assert_eq!(
            line(b"PRI * HTTP/2.0\r\n"),
            "192.0.2.7:4321 web \"PRI *\" 400 PR - 0ms"
        );
        let long = [b'a'; 5000];
        assert!(line(&long).len() < 200, "a garbage line is cut");
        assert_eq!(
            line(b"G\x01T /\xff\r\n"),
            "192.0.2.7:4321 web \"G\\x01T /\u{fffd}\" 400 PR - 0ms"
        );
    }
}
