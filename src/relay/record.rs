//! The record of one exchange (an HTTP request and its response, or an RTSP
//! request and its answer), filled in as the exchange goes and finished
//! exactly once at its end, whichever way it ended: the one place where the
//! access line is written, and where per-exchange metrics are counted.

use std::borrow::Cow;
use std::net::SocketAddr;

use super::access_line;
use super::termination::Termination;
use crate::net::Instant;
use crate::protocols::http::RequestHead;
use crate::table::{ServerAddr, Settings};

/// What is known of one exchange so far.
#[must_use = "an exchange record is finished exactly once"]
pub(super) struct Record<'a> {
    pub(super) client: SocketAddr,
    pub(super) service: &'a str,
    pub(super) method: Cow<'a, str>,
    pub(super) target: Cow<'a, str>,
    /// `HTTP/1.1` and the like; `None` when the request did not say.
    pub(super) version: Option<Cow<'a, str>>,
    /// The Referer and User-Agent fields, as received.
    pub(super) referer: Option<&'a [u8]>,
    pub(super) user_agent: Option<&'a [u8]>,
    pub(super) started: Instant,
    /// The conditions of the rule that routed it (`None`: the default set,
    /// or not routed).
    pub(super) rule: Option<&'a str>,
    /// The server that got the request, if one did.
    pub(super) server: Option<ServerAddr>,
    /// The status the client was sent (or, for an answer cut short, was
    /// being sent); `None` when no answer was started.
    pub(super) status: Option<u16>,
    /// Why the exchange ended early; `None` when it completed.
    pub(super) termination: Option<Termination>,
    /// Bytes of the response body written to the client (its head not
    /// counted; chunk framing counted, as nginx's `$body_bytes_sent`).
    pub(super) body_bytes: u64,
    /// Bytes of the request (head and body) received from the client.
    pub(super) request_bytes: u64,
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
            version: None,
            referer: None,
            user_agent: None,
            started,
            rule: None,
            server: None,
            status: None,
            termination: None,
            body_bytes: 0,
            request_bytes: 0,
        }
    }

    /// The record of a parsed HTTP request that starts now: its fields
    /// borrowed from its head.
    pub fn of_request(client: SocketAddr, service: &'a str, head: &'a RequestHead) -> Self {
        let field = |name: &str| {
            let found = head.headers.iter().find(|header| header.is(name));
            found.map(|header| header.value.as_slice())
        };
        let mut record = Self::start(client, service, head.method.as_str(), &head.target);
        record.version = Some(Cow::Borrowed(head.version.as_str()));
        record.referer = field("referer");
        record.user_agent = field("user-agent");
        record
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
        let version = Some(word(MAX_LOGGED_VERSION)).filter(|version| version != "-");
        let mut record = Self::started_at(client, service, "", "", started);
        (record.method, record.target, record.version) = (method, target, version);
        record
    }

    /// The protocol version the request was sent in (`RTSP/1.0`), for a
    /// request whose head is not an HTTP one.
    pub fn spoken_in(&mut self, version: &'a str) {
        self.version = Some(Cow::Borrowed(version));
    }

    /// The rule that routed the request, by its conditions.
    pub fn routed_by(&mut self, rule: Option<&'a str>) {
        self.rule = rule;
    }

    /// The server the request was sent to (the last one, after a retry).
    pub fn sent_to(&mut self, server: ServerAddr) {
        self.server = Some(server);
    }

    /// The status the client was answered with.
    pub fn answered(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// `bytes` of the response body were written to the client.
    pub fn sent_body(&mut self, bytes: u64) {
        self.body_bytes = bytes;
    }

    /// `bytes` of the request (head and body) were received from the client.
    pub fn received(&mut self, bytes: u64) {
        self.request_bytes = bytes;
    }

    /// The exchange ended before it completed, as `termination` says.
    pub fn ended(&mut self, termination: Termination) {
        self.termination = Some(termination);
    }

    /// Ends the record: writes its access line when access logging is on
    /// (off, nothing is formatted).
    pub fn finish(self, settings: &Settings) {
        // Metrics (issue 18): counted into this worker's own counters.
        let exchange = crate::admin::counters::Exchange {
            status: self.status,
            took: self.started.elapsed(),
            request_bytes: self.request_bytes,
            body_bytes: self.body_bytes,
        };
        crate::admin::counters::count_exchange(self.service, self.server, exchange);
        if settings.access_log {
            access_line::write(&self, settings.log_format);
        }
    }
}

/// The longest method and target logged for a refused request: a 16 KiB
/// garbage line must not become a 16 KiB access line.
const MAX_LOGGED_METHOD: usize = 32;
const MAX_LOGGED_TARGET: usize = 1024;
const MAX_LOGGED_VERSION: usize = 16;

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::relay::access_line::{escaped, line, Stamp, Stream};
    use crate::relay::termination::{Party, Phase};
    use crate::table::LogFormat;

    impl Record<'_> {
        /// The text line without its date, for a request that took no time.
        fn access_line(&self) -> String {
            let line = line(
                self,
                LogFormat::Text,
                Stream::OwnFile,
                Stamp::utc(UNIX_EPOCH),
                Duration::ZERO,
            );
            let line = String::from_utf8(line).unwrap();
            let undated = line.strip_prefix("1970-01-01T00:00:00.000000Z ").unwrap();
            undated.trim_end().to_string()
        }
    }

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
            "192.0.2.7:4321 web \"GET /a?b\" 200 -- 127.0.0.1:9001 0 0ms -"
        );
    }

    #[test]
    fn a_request_no_server_got_shows_a_dash() {
        let mut record = record();
        record.answered(503);
        assert_eq!(
            record.access_line(),
            "192.0.2.7:4321 web \"GET /a?b\" 503 -- - 0 0ms -"
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
            "192.0.2.7:4321 web \"GET /a\\\"b\\\\c\\x0d\\x0afake 200\\x7f\" 0 -- - 0 0ms -"
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
            "192.0.2.7:4321 web \"GET /a?b\" 200 SD 127.0.0.1:9001 0 0ms -"
        );
    }

    #[test]
    fn an_unanswered_exchange_has_status_zero() {
        let mut record = record();
        record.sent_to(ServerAddr("127.0.0.1:9001".parse().unwrap()));
        record.ended(Termination::new(Party::Client, Phase::Headers));
        assert_eq!(
            record.access_line(),
            "192.0.2.7:4321 web \"GET /a?b\" 0 CH 127.0.0.1:9001 0 0ms -"
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
            "192.0.2.7:4321 web \"GET /x\" 400 PR - 0 0ms -"
        );
        assert_eq!(line(b""), "192.0.2.7:4321 web \"- -\" 400 PR - 0 0ms -");
        assert_eq!(
            line(b"PRI * HTTP/2.0\r\n"),
            "192.0.2.7:4321 web \"PRI *\" 400 PR - 0 0ms -"
        );
        let long = [b'a'; 5000];
        assert!(line(&long).len() < 200, "a garbage line is cut");
        assert_eq!(
            line(b"G\x01T /\xff\r\n"),
            "192.0.2.7:4321 web \"G\\x01T /\u{fffd}\" 400 PR - 0 0ms -"
        );
    }
}
