//! Replay of real access logs: Common/Combined Log Format (the nginx and Apache
//! defaults) or plain `path size` lines, detected per line, into a [`Workload`].
//!
//! A line that is neither is counted as malformed, never a panic: real logs
//! hold garbage (scanners, truncated writes), and one bad line should not cost
//! a replay. Every request is kept whatever its status: it reached the server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Request, Workload};

/// What a parse read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceReport {
    /// Lines read, blank and comment lines included.
    pub lines: usize,
    /// Lines that became a request.
    pub requests: usize,
    /// Lines that were neither a request, blank nor a comment.
    pub malformed: usize,
    /// The first malformed line: its number (1-based) and why.
    pub first_malformed: Option<(usize, String)>,
}

/// A log that cannot be replayed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TraceError {
    #[error("the trace has no request ({lines} lines read, {malformed} malformed{})", first_note(.first_malformed))]
    Empty {
        lines: usize,
        malformed: usize,
        first_malformed: Option<(usize, String)>,
    },
}

/// A log file that cannot be replayed, named.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Trace { file: PathBuf, source: TraceError },
}

fn first_note(first: &Option<(usize, String)>) -> String {
    match first {
        Some((line, why)) => format!("; first: line {line}: {why}"),
        None => String::new(),
    }
}

/// Parses a log, one request per line; see the module doc for the formats.
///
/// Each distinct path becomes one file, indexed in first-seen order; each line
/// becomes a request of that line's size (so a file's size, as
/// [`Workload::working_set_bytes`] sees it, is the largest seen for it).
pub fn parse(text: &str) -> Result<(Workload, TraceReport), TraceError> {
    parse_bytes(text.as_bytes())
}

/// Reads and parses a log file; a line that is not UTF-8 is malformed.
pub fn parse_file(path: &Path) -> Result<(Workload, TraceReport), TraceFileError> {
    let bytes = std::fs::read(path).map_err(|source| TraceFileError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse_bytes(&bytes).map_err(|source| TraceFileError::Trace {
        file: path.to_path_buf(),
        source,
    })
}

fn parse_bytes(bytes: &[u8]) -> Result<(Workload, TraceReport), TraceError> {
    let mut workload = Workload::default();
    let mut report = TraceReport::default();
    let mut index: HashMap<String, u32> = HashMap::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let lines = if bytes.is_empty() {
        None
    } else {
        Some(body.split(|&b| b == b'\n'))
    };
    for (number, raw) in lines.into_iter().flatten().enumerate() {
        report.lines += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match read_line(raw) {
            Ok(None) => {}
            Ok(Some((path, size))) => {
                let file = match index.get(path) {
                    Some(&file) => file,
                    None => {
                        let Ok(file) = u32::try_from(workload.paths.len()) else {
                            malformed(
                                &mut report,
                                number + 1,
                                "more distinct paths than u32 indices",
                            );
                            continue;
                        };
                        index.insert(path.to_owned(), file);
                        workload.paths.push(path.to_owned());
                        file
                    }
                };
                workload.requests.push(Request { file, size });
                report.requests += 1;
            }
            Err(why) => malformed(&mut report, number + 1, why),
        }
    }
    if workload.requests.is_empty() {
        return Err(TraceError::Empty {
            lines: report.lines,
            malformed: report.malformed,
            first_malformed: report.first_malformed,
        });
    }
    Ok((workload, report))
}

fn malformed(report: &mut TraceReport, line: usize, why: &str) {
    report.malformed += 1;
    report
        .first_malformed
        .get_or_insert_with(|| (line, why.to_owned()));
}

/// Why a line is not a request.
type Why = &'static str;

/// A line's path and size; `None` for a blank or comment line.
fn read_line(raw: &[u8]) -> Result<Option<(&str, u64)>, Why> {
    let line = std::str::from_utf8(raw).map_err(|_| "not UTF-8")?;
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err("control byte");
    }
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if line.starts_with('/') {
        read_plain(line).map(Some)
    } else {
        read_clf(line).map(Some)
    }
}

/// `path size`.
fn read_plain(line: &str) -> Result<(&str, u64), Why> {
    let mut fields = line.split_whitespace();
    let (Some(path), Some(size)) = (fields.next(), fields.next()) else {
        return Err("plain line without a size");
    };
    if fields.next().is_some() {
        return Err("plain line with more than two fields");
    }
    Ok((path, number(size).ok_or("size is not a number")?))
}

/// `host ident user [date] "METHOD target PROTO" status bytes` and, in
/// Combined, `"referer" "agent"` (any further fields are let through).
fn read_clf(line: &str) -> Result<(&str, u64), Why> {
    let mut rest = line;
    for _ in 0..3 {
        let (field, after) = next_token(rest).ok_or("missing host, ident or user")?;
        if field.starts_with('[') || field.starts_with('"') {
            return Err("missing host, ident or user");
        }
        rest = after;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('[').ok_or("missing [date]")?;
    let (date, rest) = rest.split_once(']').ok_or("unclosed [date]")?;
    if date.trim().is_empty() {
        return Err("empty [date]");
    }
    let (request, rest) = quoted(rest.trim_start()).ok_or("missing or unclosed \"request\"")?;
    let target = request_target(request)?;
    let (status, rest) = next_token(rest).ok_or("missing status")?;
    if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return Err("status is not a 3-digit number");
    }
    let (bytes, mut rest) = next_token(rest).ok_or("missing byte count")?;
    let size = match bytes {
        "-" => 0,
        _ => number(bytes).ok_or("byte count is not a number")?,
    };
    // Referer, agent and whatever a custom format adds: only quotes must hold.
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        if rest.starts_with('"') {
            rest = quoted(rest).ok_or("unclosed quote after the byte count")?.1;
        } else if let Some((_, after)) = next_token(rest) {
            if rest[..rest.len() - after.len()].contains('"') {
                return Err("stray quote after the byte count");
            }
            rest = after;
        }
    }
    Ok((target, size))
}

/// The path of `METHOD target PROTO`, without the scheme and host of an
/// absolute-form target (the query string is kept: it names content too).
fn request_target(request: &str) -> Result<&str, Why> {
    let mut parts = request.split(' ');
    let (Some(method), Some(target), Some(proto), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("request is not METHOD TARGET PROTO");
    };
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return Err("request method is not a token");
    }
    // tcpvsd's own log holds its RTSP services' requests too: their
    // control URLs name content as HTTP targets do.
    if !proto.starts_with("HTTP/") && !proto.starts_with("RTSP/") {
        return Err("request protocol is not HTTP/x or RTSP/x");
    }
    let path = match target.split_once("://") {
        Some((scheme, after)) if !scheme.is_empty() && !scheme.contains('/') => {
            after.find('/').map_or("/", |slash| &after[slash..])
        }
        _ => target,
    };
    if path.starts_with('/') || path == "*" {
        Ok(path)
    } else {
        Err("request target is not a path")
    }
}

/// The first whitespace-separated token and what follows it.
fn next_token(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some((&text[..end], &text[end..]))
}

/// The inside of a leading `"…"` (a backslash escapes the next byte, as
/// Apache writes `\"`) and what follows the closing quote.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('"')?;
    let mut escaped = false;
    for (at, byte) in inner.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some((&inner[..at], &inner[at + 1..])),
            _ => {}
        }
    }
    None
}

/// A decimal `u64`, digits only (no sign, no overflow).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn requests(w: &Workload) -> Vec<(&str, u64)> {
        w.requests
            .iter()
            .map(|r| (w.paths[r.file as usize].as_str(), r.size))
            .collect()
    }

    #[test]
    fn nginx_combined_lines() {
        let log = concat!(
            "203.0.113.7 - - [10/Oct/2024:13:55:36 +0000] \"GET /index.html HTTP/1.1\" 200 2326 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n",
            "198.51.100.2 - alice [10/Oct/2024:13:55:37 +0000] \"GET /img/logo.png?v=3 HTTP/2.0\" 200 10240 \"https://example.com/\" \"curl/8.5.0\"\n",
            "203.0.113.7 - - [10/Oct/2024:13:55:38 +0000] \"GET /index.html HTTP/1.1\" 304 0 \"-\" \"Mozilla/5.0\"\n",
            "203.0.113.9 - - [10/Oct/2024:13:55:39 +0000] \"POST /api/x HTTP/1.1\" 404 153 \"-\" \"a \\\"quoted\\\" agent\"\n",
        );
        let (w, report) = parse(log).unwrap();
        assert_eq!(
            requests(&w),
            [
                ("/index.html", 2326),
                ("/img/logo.png?v=3", 10240),
                ("/index.html", 0),
                ("/api/x", 153)
            ]
        );
        assert_eq!(w.paths, ["/index.html", "/img/logo.png?v=3", "/api/x"]);
        assert_eq!(
            report,
            TraceReport {
                lines: 4,
                requests: 4,
                malformed: 0,
                first_malformed: None
            }
        );
        assert_eq!(w.working_set_bytes(), 2326 + 10240 + 153);
    }

    #[test]
    fn apache_common_lines_with_dash_size() {
        let log = "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326\r\n\
                   127.0.0.1 - - [10/Oct/2000:13:55:40 -0700] \"HEAD /apache_pb.gif HTTP/1.0\" 200 -\r\n\
                   ::1 - - [10/Oct/2000:13:56:00 -0700] \"GET http://www.example.com/a/b?c=d HTTP/1.1\" 301 -\r\n\
                   ::1 - - [10/Oct/2000:13:56:01 -0700] \"GET https://www.example.com HTTP/1.1\" 500 17\r\n\
                   ::1 - - [10/Oct/2000:13:56:02 -0700] \"DESCRIBE rtsp://cam.example:554/live/cam RTSP/1.0\" 200 -\r\n\
                   ::1 - - [10/Oct/2000:13:56:02 -0700] \"OPTIONS * HTTP/1.1\" 200 -\r\n";
        let (w, report) = parse(log).unwrap();
        assert_eq!(
            requests(&w),
            [
                ("/apache_pb.gif", 2326),
                ("/apache_pb.gif", 0),
                ("/a/b?c=d", 0),
                ("/", 17),
                ("/live/cam", 0),
                ("*", 0)
            ]
        );
        assert_eq!(report.malformed, 0);
        assert_eq!(report.lines, 6);
    }

    #[test]
    fn plain_path_size_lines() {
        let (w, report) = parse("/a 100\n/b\t2000\n/a 300\n  /c   7  \n").unwrap();
        assert_eq!(
            requests(&w),
            [("/a", 100), ("/b", 2000), ("/a", 300), ("/c", 7)]
        );
        assert_eq!(report.requests, 4);
        // A file's size is the largest seen for it.
        assert_eq!(w.working_set_bytes(), 300 + 2000 + 7);
    }

    #[test]
    fn mixed_formats_comments_and_blank_lines() {
        let log = "# replay of a test day\n\
                   \n\
                   /plain.txt 42\n   \n\
                   10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] \"GET /plain.txt HTTP/1.1\" 200 50\n\
                   \t# indented comment\n\
                   10.0.0.1 - - [01/Jan/2024:00:00:01 +0000] \"GET /other HTTP/1.1\" 200 5 \"-\" \"x\"\n\
                   not a line at all\n";
        let (w, report) = parse(log).unwrap();
        assert_eq!(
            requests(&w),
            [("/plain.txt", 42), ("/plain.txt", 50), ("/other", 5)]
        );
        assert_eq!(
            report,
            TraceReport {
                lines: 8,
                requests: 3,
                malformed: 1,
                first_malformed: Some((8, "missing [date]".to_owned())),
            }
        );
    }

    const GOOD: &str = "1.2.3.4 - - [01/Jan/2024:00:00:00 +0000] \"GET /ok HTTP/1.1\" 200 1";

    #[test]
    fn malformed_lines_are_counted_with_the_first_located() {
        let table: &[(&str, &str)] = &[
            ("/only-a-path", "plain line without a size"),
            ("/a 12x", "size is not a number"),
            ("/a -5", "size is not a number"),
            ("/a 1 2", "plain line with more than two fields"),
            ("/a 99999999999999999999999", "size is not a number"),
            ("1.2.3.4 - - \"GET / HTTP/1.1\" 200 1", "missing [date]"),
            (
                "1.2.3.4 - - [01/Jan/2024:00:00:00 +0000 \"GET / HTTP/1.1\" 200 1",
                "unclosed [date]",
            ),
            ("1.2.3.4 - - [] \"GET / HTTP/1.1\" 200 1", "empty [date]"),
            (
                "1.2.3.4 - - [d] \"GET / HTTP/1.1 200 1",
                "missing or unclosed \"request\"",
            ),
            (
                "1.2.3.4 - - [d] GET / HTTP/1.1 200 1",
                "missing or unclosed \"request\"",
            ),
            (
                "1.2.3.4 - - [d] \"-\" 400 0",
                "request is not METHOD TARGET PROTO",
            ),
            (
                "1.2.3.4 - - [d] \"GET /\" 200 1",
                "request is not METHOD TARGET PROTO",
            ),
            (
                "1.2.3.4 - - [d] \"GET  / HTTP/1.1\" 200 1",
                "request is not METHOD TARGET PROTO",
            ),
            (
                "1.2.3.4 - - [d] \"get / HTTP/1.1\" 200 1",
                "request method is not a token",
            ),
            (
                "1.2.3.4 - - [d] \"GET / SPDY/3\" 200 1",
                "request protocol is not HTTP/x or RTSP/x",
            ),
            (
                "1.2.3.4 - - [d] \"CONNECT host:443 HTTP/1.1\" 200 1",
                "request target is not a path",
            ),
            (
                "1.2.3.4 - - [d] \"GET / HTTP/1.1\" OK 1",
                "status is not a 3-digit number",
            ),
            (
                "1.2.3.4 - - [d] \"GET / HTTP/1.1\" 200",
                "missing byte count",
            ),
            ("1.2.3.4 - - [d] \"GET / HTTP/1.1\"", "missing status"),
            (
                "1.2.3.4 - - [d] \"GET / HTTP/1.1\" 200 lots",
                "byte count is not a number",
            ),
            (
                "1.2.3.4 - - [d] \"GET / HTTP/1.1\" 200 1 \"-\" \"agent",
                "unclosed quote after the byte count",
            ),
            (
                "1.2.3.4 - - [d] \"GET / HTTP/1.1\" 200 1 ref\"x",
                "stray quote after the byte count",
            ),
            (
                "1.2.3.4 - [d] \"GET / HTTP/1.1\" 200 1",
                "missing host, ident or user",
            ),
            ("1.2.3.4", "missing host, ident or user"),
            ("/a\u{7}bell 1", "control byte"),
            (
                "1.2.3.4 - - [d] \"GET /\u{0} HTTP/1.1\" 200 1",
                "control byte",
            ),
        ];
        for (line, why) in table {
            let text = format!("{GOOD}\n{line}\n{GOOD}\n");
            let (w, report) = parse(&text).unwrap();
            assert_eq!(w.requests.len(), 2, "{line}");
            assert_eq!(report.malformed, 1, "{line}");
            assert_eq!(report.first_malformed, Some((2, why.to_string())), "{line}");
        }
        // All at once: each counted, the first reported.
        let mut text = String::from("# header\n\n");
        for (line, _) in table {
            text += line;
            text += "\n";
        }
        text += GOOD;
        let (w, report) = parse(&text).unwrap();
        assert_eq!(w.requests.len(), 1);
        assert_eq!(report.malformed, table.len());
        assert_eq!(report.lines, table.len() + 3);
        assert_eq!(report.first_malformed, Some((3, table[0].1.to_owned())));
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let mut bytes = b"/a 1\n/caf".to_vec();
        bytes.extend_from_slice(&[0xE9, b' ', b'2', b'\n']);
        let (w, report) = parse_bytes(&bytes).unwrap();
        assert_eq!(w.requests.len(), 1);
        assert_eq!(report.first_malformed, Some((2, "not UTF-8".to_owned())));
    }

    #[test]
    fn an_empty_trace_is_an_error() {
        for text in ["", "\n", "# only a comment\n\n"] {
            let err = parse(text).unwrap_err();
            assert!(matches!(
                err,
                TraceError::Empty {
                    malformed: 0,
                    first_malformed: None,
                    ..
                }
            ));
        }
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "the trace has no request (0 lines read, 0 malformed)"
        );
        assert_eq!(
            parse("# a\n\n").unwrap_err().to_string(),
            "the trace has no request (2 lines read, 0 malformed)"
        );
    }

    #[test]
    fn an_all_malformed_trace_is_an_error_naming_the_first() {
        let err = parse("# log\nhello world\n/a b\n").unwrap_err();
        assert_eq!(
            err,
            TraceError::Empty {
                lines: 3,
                malformed: 2,
                first_malformed: Some((2, "missing host, ident or user".to_owned())),
            }
        );
        assert_eq!(
            err.to_string(),
            "the trace has no request (3 lines read, 2 malformed; first: line 2: missing host, ident or user)"
        );
    }

    #[test]
    fn parse_file_names_the_file() {
        let dir = std::env::temp_dir().join(format!("tcpvs-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.log");
        std::fs::write(&good, format!("{GOOD}\n/x 3\n")).unwrap();
        let (w, report) = parse_file(&good).unwrap();
        assert_eq!(w.paths, ["/ok", "/x"]);
        assert_eq!(report.requests, 2);

        let empty = dir.join("empty.log");
        std::fs::write(&empty, "").unwrap();
        let message = parse_file(&empty).unwrap_err().to_string();
        assert_eq!(
            message,
            format!(
                "{}: the trace has no request (0 lines read, 0 malformed)",
                empty.display()
            )
        );

        let missing = dir.join("missing.log");
        let message = parse_file(&missing).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: cannot read: ", missing.display())),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_are_indexed_in_first_seen_order() {
        let paths: Vec<String> = (0..500)
            .map(|i| format!("/p/{}", (i * 7919) % 1000))
            .collect();
        let text: String = paths.iter().map(|p| format!("{p} 1\n")).collect();
        let (a, _) = parse(&text).unwrap();
        let (b, _) = parse(&text).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.paths, paths);
        assert!(a
            .requests
            .iter()
            .enumerate()
            .all(|(i, r)| r.file as usize == i));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,300}") {
            check_counts(parse(&text), text.as_bytes());
        }

        #[test]
        fn arbitrary_bytes_are_counted_line_by_line(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let result = parse_bytes(&bytes);
            check_counts(result.clone(), &bytes);
            // A line that is not UTF-8 is malformed, never read as a request.
            let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let not_utf8 = body
                .split(|&b| b == b'\n')
                .filter(|line| std::str::from_utf8(line).is_err())
                .count();
            let malformed = match result {
                Ok((_, report)) => report.malformed,
                Err(TraceError::Empty { malformed, .. }) => malformed,
            };
            prop_assert!(malformed >= not_utf8, "{malformed} malformed, {not_utf8} lines not UTF-8");
        }

        #[test]
        fn log_like_text_never_panics(
            lines in proptest::collection::vec(
                "[ -~\t]{0,12}( |\\[|\\]|\"|/|-|[0-9]{1,4}|GET|HTTP/1.1|://){0,12}",
                0..10,
            )
        ) {
            let text = lines.join("\n");
            check_counts(parse(&text), text.as_bytes());
        }
    }

    /// Every line is counted once: a request, malformed, or skipped.
    fn check_counts(result: Result<(Workload, TraceReport), TraceError>, text: &[u8]) {
        let lines = text
            .strip_suffix(b"\n")
            .unwrap_or(text)
            .split(|&b| b == b'\n');
        let expected_lines = if text.is_empty() { 0 } else { lines.count() };
        match result {
            Ok((w, report)) => {
                assert_eq!(report.lines, expected_lines);
                assert_eq!(report.requests, w.requests.len());
                assert!(report.requests + report.malformed <= report.lines);
                assert!(w.requests.iter().all(|r| (r.file as usize) < w.paths.len()));
            }
            Err(TraceError::Empty {
                lines, malformed, ..
            }) => {
                assert_eq!(lines, expected_lines);
                assert!(malformed <= lines);
            }
        }
    }
}
