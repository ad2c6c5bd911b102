//! The access line of a finished exchange, in the operator's `log_format`:
//! `combined` (nginx's, byte for byte, for log analysers and the locality
//! simulator), `json` (one object per line) or `text` (tcpvsd's own, with
//! the service, termination letters and server). Written to the access
//! log's queue, never waited for; formatted only when access logging is on.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::record::Record;
use super::termination::letters;
use crate::daemon::logging::{self, AccessLog};
use crate::protocols::http::date::civil_from_days;
use crate::table::LogFormat;

/// Where a text line goes decides its prefix: with the daemon's own lines
/// it is dated and leveled as they are, so that the stream stays one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    /// The daemon's log (standard error or `log_file`).
    DaemonLog,
    /// The access log's own file.
    OwnFile,
}

/// When a line is written: the time, and the offset east of UTC of the
/// access log's local time then (for `$time_local`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    pub at: SystemTime,
    pub utc_offset: i32,
}

impl Stamp {
    /// `at`, in UTC.
    #[cfg(test)]
    pub fn utc(at: SystemTime) -> Self {
        Self { at, utc_offset: 0 }
    }
}

/// Writes `record`'s line to the access log. Without the daemon's log
/// (tcpvs used as a library, tests), the line is a tracing event at info,
/// target `tcpvs::access`, as the subscriber in place decides.
pub(super) fn write(record: &Record<'_>, format: LogFormat) {
    let elapsed = record.started.elapsed();
    match logging::access_log() {
        Some(log) => {
            let at = SystemTime::now();
            let stamp = Stamp {
                at,
                utc_offset: log.utc_offset(at),
            };
            log.offer(line(record, format, log_stream(log), stamp, elapsed));
        }
        None => {
            if tracing::enabled!(target: "tcpvs::access", tracing::Level::INFO) {
                let mut text = String::with_capacity(160);
                write_text(record, elapsed, &mut text);
                tracing::info!(target: "tcpvs::access", "{text}");
            }
        }
    }
}

fn log_stream(log: &AccessLog) -> Stream {
    if log.has_own_file() {
        Stream::OwnFile
    } else {
        Stream::DaemonLog
    }
}

/// The whole line, newline included, as it is queued.
pub(super) fn line(
    record: &Record<'_>,
    format: LogFormat,
    stream: Stream,
    stamp: Stamp,
    elapsed: Duration,
) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    match format {
        LogFormat::Combined => write_combined(record, stamp, &mut out),
        LogFormat::Json => write_json(record, stamp.at, elapsed, &mut out),
        LogFormat::Text => {
            write_rfc3339(stamp.at, &mut out);
            out.push_str(match stream {
                Stream::DaemonLog => "  INFO tcpvs::access: ",
                Stream::OwnFile => " ",
            });
            write_text(record, elapsed, &mut out);
        }
    }
    out.push('\n');
    out.into_bytes()
}

/// `client service "METHOD target" status termination server bytes
/// elapsed rule`: `0` for the status when no answer was started, `-` for
/// the server when none got the request, the termination's two letters
/// (`--` for an exchange that completed), the response body's bytes sent,
/// and the conditions of the rule that routed it, quoted (`-` for the
/// default set or no routing).
fn write_text(record: &Record<'_>, elapsed: Duration, out: &mut String) {
    let _ = write!(
        out,
        "{} {} \"{} {}\" {} {} ",
        record.client,
        record.service,
        escaped(&record.method),
        escaped(&record.target),
        record.status.unwrap_or(0),
        letters(record.termination),
    );
    match record.server {
        Some(server) => {
            let _ = write!(out, "{server}");
        }
        None => out.push('-'),
    }
    let _ = write!(out, " {} {}ms ", record.body_bytes, elapsed.as_millis());
    match record.rule {
        Some(rule) => {
            let _ = write!(out, "\"{}\"", escaped(rule));
        }
        None => out.push('-'),
    }
}

/// nginx's `combined`: `$remote_addr - - [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`. The time is local,
/// with its offset (`+0100`); a status never sent is `000` and a missing
/// field `-`, as nginx writes them.
fn write_combined(record: &Record<'_>, stamp: Stamp, out: &mut String) {
    let _ = write!(out, "{} - - [", record.client.ip());
    write_clf_time(stamp, out);
    out.push_str("] \"");
    if record.method == "-" {
        // Nothing was received: nginx's request is `-` too.
        out.push('-');
    } else {
        nginx_escaped(record.method.as_bytes(), out);
        out.push(' ');
        nginx_escaped(record.target.as_bytes(), out);
        if let Some(version) = &record.version {
            out.push(' ');
            nginx_escaped(version.as_bytes(), out);
        }
    }
    let _ = write!(
        out,
        "\" {:03} {} \"",
        record.status.unwrap_or(0),
        record.body_bytes
    );
    nginx_escaped(record.referer.unwrap_or(b"-"), out);
    out.push_str("\" \"");
    nginx_escaped(record.user_agent.unwrap_or(b"-"), out);
    out.push('"');
}

/// One JSON object; `null` for what is not known.
fn write_json(record: &Record<'_>, now: SystemTime, elapsed: Duration, out: &mut String) {
    #[derive(Serialize)]
    struct Line<'r> {
        time: &'r str,
        client: String,
        service: &'r str,
        method: &'r str,
        target: &'r str,
        version: Option<&'r str>,
        status: Option<u16>,
        termination: String,
        server: Option<String>,
        rule: Option<&'r str>,
        bytes_sent: u64,
        duration_ms: u64,
        referer: Option<Cow<'r, str>>,
        user_agent: Option<Cow<'r, str>>,
    }
    let mut time = String::with_capacity(27);
    write_rfc3339(now, &mut time);
    let line = Line {
        time: &time,
        client: record.client.to_string(),
        service: record.service,
        method: &record.method,
        target: &record.target,
        version: record.version.as_deref(),
        status: record.status,
        termination: letters(record.termination),
        server: record.server.map(|server| server.to_string()),
        rule: record.rule,
        bytes_sent: record.body_bytes,
        duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        referer: record.referer.map(String::from_utf8_lossy),
        user_agent: record.user_agent.map(String::from_utf8_lossy),
    };
    // Serializing plain strings and numbers cannot fail.
    if let Ok(json) = serde_json::to_string(&line) {
        out.push_str(&json);
    }
}

/// A field of a text line: `"` and `\\` escaped with a backslash, control
/// bytes and DEL as `\xNN`, so that no field can end the quotes early or
/// start a line of its own. (Heads are refused before any such byte
/// reaches here; the line does not rely on it.)
pub(super) fn escaped(field: &str) -> Cow<'_, str> {
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
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A field of a combined line, escaped as nginx's `ngx_http_log_escape`
/// does: `"`, `\\`, control bytes and every byte from DEL up as `\xHH`.
fn nginx_escaped(field: &[u8], out: &mut String) {
    for &byte in field {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            let _ = write!(out, "\\x{byte:02X}");
        } else {
            out.push(char::from(byte));
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the epoch and the civil date and time of `now`, UTC.
fn civil(now: SystemTime) -> (Duration, (u64, u64, u64), u64) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    (since, civil_from_days(seconds / 86_400), seconds % 86_400)
}

/// `$time_local`: the local time and its offset, `07/Dec/2026:17:57:13 +0100`.
fn write_clf_time(stamp: Stamp, out: &mut String) {
    let offset = Duration::from_secs(u64::from(stamp.utc_offset.unsigned_abs()));
    let local = match stamp.utc_offset {
        east if east >= 0 => stamp.at.checked_add(offset),
        _ => stamp.at.checked_sub(offset),
    };
    let (_, (year, month, day), second) = civil(local.unwrap_or(stamp.at));
    let month = MONTHS[usize::try_from(month - 1).unwrap_or(0) % 12];
    let sign = if stamp.utc_offset < 0 { '-' } else { '+' };
    let minutes = stamp.utc_offset.unsigned_abs() / 60;
    let _ = write!(
        out,
        "{day:02}/{month}/{year}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
        second / 3600,
        second / 60 % 60,
        second % 60,
        minutes / 60,
        minutes % 60
    );
}

/// RFC 3339 in UTC with microseconds, as the daemon's own lines are dated:
/// `2026-12-07T16:57:13.123456Z`.
fn write_rfc3339(now: SystemTime, out: &mut String) {
    let (since, (year, month, day), second) = civil(now);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        second / 3600,
        second / 60 % 60,
        second % 60,
        since.subsec_micros()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Instant;
    use crate::relay::termination::{Party, Phase, Termination};
    use crate::table::ServerAddr;

    /// 2026-12-07 16:57:13.25 UTC.
    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_796_662_633_250)
    }

    fn served() -> Record<'static> {
        let mut record = Record::start("192.0.2.7:4321".parse().unwrap(), "web", "GET", "/a?b");
        record.version = Some(Cow::Borrowed("HTTP/1.1"));
        record.referer = Some(b"http://example.com/");
        record.user_agent = Some(b"curl/8.5.0");
        record.sent_to(ServerAddr("127.0.0.1:9001".parse().unwrap()));
        record.answered(200);
        record.sent_body(1234);
        record
    }

    fn text_of(record: &Record<'_>, format: LogFormat, stream: Stream) -> String {
        let line = line(
            record,
            format,
            stream,
            Stamp::utc(at()),
            Duration::from_millis(7),
        );
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn combined_is_nginx_s_line() {
        assert_eq!(
            text_of(&served(), LogFormat::Combined, Stream::OwnFile),
            "192.0.2.7 - - [07/Dec/2026:16:57:13 +0000] \"GET /a?b HTTP/1.1\" 200 1234 \
             \"http://example.com/\" \"curl/8.5.0\"\n"
        );
    }

    #[test]
    fn combined_writes_local_time_with_its_offset() {
        let line_at = |utc_offset: i32| {
            let stamp = Stamp {
                at: at(),
                utc_offset,
            };
            let line = line(
                &served(),
                LogFormat::Combined,
                Stream::OwnFile,
                stamp,
                Duration::ZERO,
            );
            String::from_utf8(line).unwrap()
        };
        assert!(line_at(3600).contains(" - - [07/Dec/2026:17:57:13 +0100] "));
        assert!(line_at(19_800).contains(" - - [07/Dec/2026:22:27:13 +0530] "));
        // Across midnight, backwards.
        assert!(line_at(-18 * 3600).contains(" - - [06/Dec/2026:22:57:13 -1800] "));
        let line = line_at(-9000);
        assert!(line.contains("[07/Dec/2026:14:27:13 -0230] "), "{line}");
        let (_, report) = crate::sim::trace::parse(&line).unwrap();
        assert_eq!((report.requests, report.malformed), (1, 0), "{line}");
    }

    #[test]
    fn combined_writes_dashes_and_000_for_what_is_missing() {
        let mut record = Record::start("192.0.2.7:4321".parse().unwrap(), "web", "GET", "/");
        record.ended(Termination::new(Party::Client, Phase::Headers));
        assert_eq!(
            text_of(&record, LogFormat::Combined, Stream::DaemonLog),
            "192.0.2.7 - - [07/Dec/2026:16:57:13 +0000] \"GET /\" 000 0 \"-\" \"-\"\n"
        );
        let nothing = Record::refused("192.0.2.7:1".parse().unwrap(), "web", b"", Instant::now());
        let line = text_of(&nothing, LogFormat::Combined, Stream::OwnFile);
        assert!(line.contains("] \"-\" 000 0 "), "{line}");
    }

    #[test]
    fn combined_escapes_as_nginx_does() {
        let mut record = served();
        record.target = Cow::Borrowed("/a\"b\\c\r\n\u{e9}\x7f");
        record.user_agent = Some(b"evil\" \xff agent");
        let line = text_of(&record, LogFormat::Combined, Stream::OwnFile);
        assert!(
            line.contains("\"GET /a\\x22b\\x5Cc\\x0D\\x0A\\xC3\\xA9\\x7F HTTP/1.1\""),
            "{line}"
        );
        assert!(line.ends_with("\"evil\\x22 \\xFF agent\"\n"), "{line}");
        let (_, report) = crate::sim::trace::parse(&line).unwrap();
        assert_eq!((report.requests, report.malformed), (1, 0), "{line}");
    }

    #[test]
    fn a_refused_request_keeps_its_version_in_combined() {
        let mut record = Record::refused(
            "192.0.2.7:1".parse().unwrap(),
            "web",
            b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            Instant::now(),
        );
        record.answered(400);
        let line = text_of(&record, LogFormat::Combined, Stream::OwnFile);
        assert!(
            line.contains("\"GET /x HTTP/1.1\" 400 0 \"-\" \"-\""),
            "{line}"
        );
    }

    #[test]
    fn json_holds_every_field_escaped() {
        let mut record = served();
        record.target = Cow::Borrowed("/q\"\n");
        let line = text_of(&record, LogFormat::Json, Stream::DaemonLog);
        assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["time"], "2026-12-07T16:57:13.250000Z");
        assert_eq!(value["client"], "192.0.2.7:4321");
        assert_eq!(value["service"], "web");
        assert_eq!(value["method"], "GET");
        assert_eq!(value["target"], "/q\"\n");
        assert_eq!(value["version"], "HTTP/1.1");
        assert_eq!(value["status"], 200);
        assert_eq!(value["termination"], "--");
        assert_eq!(value["server"], "127.0.0.1:9001");
        assert!(value["rule"].is_null(), "the default set: {line}");
        assert_eq!(value["bytes_sent"], 1234);
        assert_eq!(value["duration_ms"], 7);
        assert_eq!(value["referer"], "http://example.com/");
        assert_eq!(value["user_agent"], "curl/8.5.0");
        let unanswered = Record::start("192.0.2.7:4321".parse().unwrap(), "web", "GET", "/");
        let line = text_of(&unanswered, LogFormat::Json, Stream::DaemonLog);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(
            value["status"].is_null() && value["server"].is_null(),
            "{line}"
        );
        assert!(
            value["referer"].is_null() && value["version"].is_null(),
            "{line}"
        );
    }

    #[test]
    fn text_is_dated_and_leveled_like_the_daemon_s_lines_when_it_goes_with_them() {
        assert_eq!(
            text_of(&served(), LogFormat::Text, Stream::DaemonLog),
            "2026-12-07T16:57:13.250000Z  INFO tcpvs::access: \
             192.0.2.7:4321 web \"GET /a?b\" 200 -- 127.0.0.1:9001 1234 7ms -\n"
        );
        let mut routed = served();
        routed.routed_by(Some("^/a host ^img\\. header x-t: \"q\""));
        assert_eq!(
            text_of(&routed, LogFormat::Text, Stream::OwnFile),
            "2026-12-07T16:57:13.250000Z \
             192.0.2.7:4321 web \"GET /a?b\" 200 -- 127.0.0.1:9001 1234 7ms \
             \"^/a host ^img\\\\. header x-t: \\\"q\\\"\"\n"
        );
    }
}
