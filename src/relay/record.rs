//! The record of one exchange (an HTTP request and its response, or an RTSP
//! request and its answer), filled in as the exchange goes and finished
//! exactly once at its end, whichever way it ended: the one place where the
//! access line is written, and where per-exchange metrics will be counted.

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::net::Instant;

use crate::table::{ServerAddr, Settings};

/// What is known of one exchange so far.
#[must_use = "an exchange record is finished exactly once"]
pub(super) struct Record<'a> {
    client: SocketAddr,
    service: &'a str,
    method: &'a str,
    target: &'a str,
    started: Instant,
    /// The server that got the request, if one did.
    server: Option<ServerAddr>,
    /// The status the client got; `None` when the exchange broke before a
    /// whole answer reached the client.
    status: Option<u16>,
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
            method,
            target,
            started,
            server: None,
            status: None,
        }
    }

    /// The server the request was sent to (the last one, after a retry).
    pub fn sent_to(&mut self, server: ServerAddr) {
        self.server = Some(server);
    }

    /// The status the client was answered with.
    pub fn answered(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// Ends the record: writes its access line when access logging is on.
    pub fn finish(self, settings: &Settings) {
        // Formatting costs: the line is made only when it will be written.
        if settings.access_log && tracing::enabled!(target: "tcpvs::access", tracing::Level::INFO) {
            tracing::info!(target: "tcpvs::access", "{}", self.access_line());
        }
    }

    /// `client service "METHOD target" status server elapsed`; `0` for the
    /// status of a broken exchange and `-` for the server when none got it.
    fn access_line(&self) -> String {
        let server = self
            .server
            .map_or_else(|| "-".to_string(), |server| server.to_string());
        format!(
            "{} {} \"{} {}\" {} {} {}ms",
            self.client,
            self.service,
            escaped(self.method),
            escaped(self.target),
            self.status.unwrap_or(0),
            server,
            self.started.elapsed().as_millis()
        )
    }
}

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
            "192.0.2.7:4321 web \"GET /a?b\" 200 127.0.0.1:9001 0ms"
        );
    }

    #[test]
    fn a_request_no_server_got_shows_a_dash() {
        let mut record = record();
        record.answered(503);
        assert_eq!(
            record.access_line(),
            "192.0.2.7:4321 web \"GET /a?b\" 503 - 0ms"
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
            "192.0.2.7:4321 web \"GET /a\\\"b\\\\c\\x0d\\x0afake 200\\x7f\" 0 - 0ms"
        );
        assert!(matches!(escaped("/plain?x=1"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_broken_exchange_has_status_zero() {
        let mut record = record();
        record.sent_to(ServerAddr("127.0.0.1:9001".parse().unwrap()));
        assert_eq!(
            record.access_line(),
            "192.0.2.7:4321 web \"GET /a?b\" 0 127.0.0.1:9001 0ms"
        );
    }
}
