//! The normal form of an origin-form request target (RFC 3986 6.2.2), which
//! content rules match and which is forwarded.
//!
//! Servers serve `/a/./b`, `//a/b`, `/a/x/../b` and `/a/%62` as `/a/b`; a rule
//! that matched the raw path could be walked around by any of them. So the path
//! is brought to one spelling, as nginx does before `location` matching:
//! percent-encoded unreserved characters are decoded (other escapes are kept,
//! their hex digits in upper case), dot segments are removed (RFC 3986 5.2.4,
//! never above the root), and repeated slashes are merged (nginx's
//! `merge_slashes on`). The query is left as it is.

use std::borrow::Cow;

/// A `%` not followed by two hex digits: no server reads such a path the same
/// way as another, so it is refused (as nginx does) rather than guessed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid percent-encoding in the request path")]
pub struct InvalidEscape;

/// What the normal form does with repeated slashes (nginx's
/// `merge_slashes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Slashes {
    /// `//a///b` is `/a/b`: what most servers serve, so rules cannot be
    /// walked around with extra slashes.
    #[default]
    Merge,
    /// Empty segments are segments (RFC 3986), for servers where `/a//b`
    /// names something else than `/a/b` (object stores, some APIs).
    Keep,
}

/// The normal form of an origin-form target (`/path?query`), slashes merged;
/// any other target (`*`) is returned as it is. A target already normal is
/// borrowed, not copied.
pub fn normalize_target(target: &str) -> Result<Cow<'_, str>, InvalidEscape> {
    normalize_target_with(target, Slashes::Merge)
}

/// [`normalize_target`], with repeated slashes merged or kept.
pub fn normalize_target_with(
    target: &str,
    slashes: Slashes,
) -> Result<Cow<'_, str>, InvalidEscape> {
    if !target.starts_with('/') {
        return Ok(Cow::Borrowed(target));
    }
    let (path, query) = match target.find('?') {
        Some(at) => target.split_at(at),
        None => (target, ""),
    };
    if is_normal(path, slashes)? {
        return Ok(Cow::Borrowed(target));
    }
    let mut out = remove_dot_segments(&decode_unreserved(path), slashes);
    out.push_str(query);
    Ok(Cow::Owned(out))
}

/// Whether `path` is already in normal form, checking every escape on the way.
fn is_normal(path: &str, slashes: Slashes) -> Result<bool, InvalidEscape> {
    let bytes = path.as_bytes();
    let mut normal = true;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let (hex, byte) = escape(&bytes[i..])?;
            normal &= !is_unreserved(byte) && hex.iter().all(|h| !h.is_ascii_lowercase());
        }
    }
    // No empty segment (but a final one) to merge, and no dot segment.
    let merged = slashes == Slashes::Keep || !path.contains("//");
    Ok(normal && merged && path.split('/').all(|s| s != "." && s != ".."))
}

/// The two hex digits after the `%` at the start of `escape`, and the byte
/// they encode.
fn escape(escape: &[u8]) -> Result<([u8; 2], u8), InvalidEscape> {
    let digit = |i: usize| {
        escape
            .get(i)
            .and_then(|&h| (h as char).to_digit(16).map(|d| (h, d as u8)))
    };
    match (digit(1), digit(2)) {
        (Some((h1, d1)), Some((h2, d2))) => Ok(([h1, h2], (d1 << 4) | d2)),
        _ => Err(InvalidEscape),
    }
}

/// unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 2.3): the only
/// characters whose escaped and plain forms mean the same (RFC 3986 6.2.2.2).
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// `path` with unreserved characters decoded and other escapes in upper case.
///
/// `%2F` stays encoded: decoded, it would become a segment separator, so that
/// `/a%2Fb` (one segment to the server that serves it, a file named `a/b`) would
/// route as `/a/b`; and `/x/..%2F..%2Fsecret` would climb where the server does
/// not. Escapes are checked by `is_normal` before this is called.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        out.push_str(&path[copied..i]);
        i += match escape(&bytes[i..]) {
            Ok((_, byte)) if is_unreserved(byte) => {
                out.push(byte as char);
                3
            }
            Ok((hex, _)) => {
                out.push('%');
                out.extend(hex.iter().map(|h| h.to_ascii_uppercase() as char));
                3
            }
            // Unreachable after `is_normal`; kept as it was.
            Err(InvalidEscape) => {
                out.push('%');
                1
            }
        };
        copied = i;
    }
    out.push_str(&path[copied..]);
    out
}

/// `path` (starting with `/`) without `.` and `..` segments (RFC 3986 5.2.4)
/// nor, when merging slashes, empty ones; `..` at the root stays at the root,
/// as in nginx. A path that ended in a directory (`/`, `.` or `..`) keeps its
/// final slash.
fn remove_dot_segments(path: &str, slashes: Slashes) -> String {
    let merge = slashes == Slashes::Merge;
    let mut kept: Vec<&str> = Vec::new();
    let mut directory = false;
    for segment in path.split('/').skip(1) {
        directory = matches!(segment, "." | "..") || (merge && segment.is_empty());
        match segment {
            "." => {}
            "" if merge => {}
            ".." => {
                kept.pop();
            }
            name => kept.push(name),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if directory || kept.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn normal(target: &str) -> String {
        normalize_target(target).unwrap().into_owned()
    }

    /// Each target normalises to the one paired with it.
    fn assert_normalizes(cases: &[(&str, &str)]) {
        for (target, expected) in cases {
            assert_eq!(normal(target), *expected, "{target}");
        }
    }

    #[test]
    fn the_evasions_of_a_rule_on_a_prefix_reach_the_same_path() {
        for target in [
            "/echo/public/../secret/x",
            "//echo/secret/x",
            "/echo/%73ecret/x",
            "/echo/./secret/x",
            "/echo/%2e%2e/echo/secret/x",
            "/echo/%2E/secret/x",
            "/./echo/secret/x",
            "/echo//secret//x",
            "/../echo/secret/x",
            "/%65%63%68%6F/secret/x",
        ] {
            assert_normalizes(&[(target, "/echo/secret/x")]);
        }
    }

    #[test]
    fn dot_segments_as_in_rfc_3986() {
        // RFC 3986 5.4, from base "http://a/b/c/d;p?q", resolved then reduced here.
        assert_normalizes(&[
            ("/b/c/g", "/b/c/g"),
            ("/b/c/./g", "/b/c/g"),
            ("/b/c/g/", "/b/c/g/"),
            ("/b/c/.", "/b/c/"),
            ("/b/c/./", "/b/c/"),
            ("/b/c/..", "/b/"),
            ("/b/c/../", "/b/"),
            ("/b/c/../g", "/b/g"),
            ("/b/c/../..", "/"),
            ("/b/c/../../g", "/g"),
            ("/b/c/../../../g", "/g"),
            ("/b/c/../../../../g", "/g"),
            ("/./g", "/g"),
            ("/../g", "/g"),
            ("/b/c/g.", "/b/c/g."),
            ("/b/c/.g", "/b/c/.g"),
            ("/b/c/g..", "/b/c/g.."),
            ("/b/c/..g", "/b/c/..g"),
            ("/b/c/./../g", "/b/g"),
            ("/b/c/./g/.", "/b/c/g/"),
            ("/b/c/g/./h", "/b/c/g/h"),
            ("/b/c/g/../h", "/b/c/h"),
            ("/b/c/g;x=1/./y", "/b/c/g;x=1/y"),
            ("/b/c/g;x=1/../y", "/b/c/y"),
            ("/..", "/"),
            ("/.", "/"),
            ("/", "/"),
        ]);
    }

    #[test]
    fn repeated_slashes_are_merged() {
        assert_normalizes(&[
            ("//", "/"),
            ("///a///b", "/a/b"),
            ("/a//", "/a/"),
            // Merged before `..` is applied, as nginx does.
            ("/a/b//../c", "/a/c"),
        ]);
    }

    #[test]
    fn only_unreserved_escapes_are_decoded() {
        assert_normalizes(&[
            ("/%41%7a%30%2D%2e%5F%7E", "/Az0-._~"),
            ("/a%20b", "/a%20b"),
            ("/a%2fb", "/a%2Fb"),
            ("/%c3%a9", "/%C3%A9"),
            // %25 is "%": decoding it would make a new escape of what follows.
            ("/%2541", "/%2541"),
        ]);
    }

    #[test]
    fn repeated_slashes_can_be_kept() {
        let keep = |target: &str| {
            normalize_target_with(target, Slashes::Keep)
                .unwrap()
                .into_owned()
        };
        for (target, expected) in [
            ("//a///b", "//a///b"),
            ("/a//b/", "/a//b/"),
            ("/a//./b", "/a//b"),
            ("/a//../b", "/a/b"),
            ("/a/%62//c/..", "/a/b//"),
            ("/./a", "/a"),
            ("/", "/"),
            ("/..", "/"),
        ] {
            assert_eq!(keep(target), expected, "{target}");
        }
        assert!(matches!(
            normalize_target_with("/a//b", Slashes::Keep),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn an_encoded_slash_is_not_a_separator() {
        assert_normalizes(&[
            ("/echo/%2Fsecret", "/echo/%2Fsecret"),
            ("/a/..%2Fsecret", "/a/..%2Fsecret"),
            ("/a/%2e%2e%2fsecret", "/a/..%2Fsecret"),
        ]);
    }

    #[test]
    fn the_query_is_left_alone() {
        assert_normalizes(&[
            ("/a/../b?x=/../%41//", "/b?x=/../%41//"),
            ("/a?", "/a?"),
            ("/a/./?b", "/a/?b"),
        ]);
    }

    #[test]
    fn asterisk_is_left_alone() {
        assert_eq!(normal("*"), "*");
    }

    #[test]
    fn invalid_escapes_in_the_path_are_refused() {
        for target in ["/%", "/a%2", "/%zz", "/%%41", "/a%g0/b", "/a/./%"] {
            assert_eq!(normalize_target(target), Err(InvalidEscape), "{target}");
        }
        // In the query they are the server's business.
        assert_eq!(normal("/a?%zz"), "/a?%zz");
    }

    #[test]
    fn a_normal_target_is_borrowed() {
        for target in [
            "/",
            "/a/b",
            "/a/b/",
            "/a/.b/c./..d/e..",
            "/%20%2F%C3%A9",
            "/a?x=../%2f//",
        ] {
            assert!(
                matches!(normalize_target(target), Ok(Cow::Borrowed(_))),
                "{target}"
            );
        }
        for target in ["/a//b", "/a/.", "/a/..", "/.", "//", "/%2f", "/%41"] {
            assert!(
                matches!(normalize_target(target), Ok(Cow::Owned(_))),
                "{target}"
            );
        }
    }

    proptest! {
        #[test]
        fn normalizing_is_idempotent_and_never_panics(
            target in "(/|\\*|[!-~])([./%2eE5FfA7a3?]|[!-~]){0,40}",
        ) {
            for slashes in [Slashes::Merge, Slashes::Keep] {
                if let Ok(once) = normalize_target_with(&target, slashes) {
                    let twice = normalize_target_with(&once, slashes);
                    prop_assert_eq!(twice.as_deref(), Ok(&*once));
                    prop_assert!(matches!(twice, Ok(Cow::Borrowed(_))));
                    if target.starts_with('/') {
                        prop_assert!(once.starts_with('/'));
                    }
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(target in "/\\PC{0,40}") {
            let _ = normalize_target(&target);
        }
    }
}
