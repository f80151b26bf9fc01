//! Request-target normalisation, done once per request before any route is matched.
//!
//! Route rules are security boundaries, so the matcher must see the path the upstream will act
//! on, not a spelling chosen to slip past a rule (`/admin/../public`, `//admin`, `/%61dmin`).
//! The normal form is: query and fragment removed, `%XX` of unreserved characters decoded,
//! other escapes upper-cased, dot segments removed (RFC 3986 §5.2.4), repeated slashes merged.
//! Escapes that would change the path's structure (`%2F`, `%5C`, `%00`), raw backslashes,
//! control characters and broken escapes make the path invalid: the request is refused
//! rather than guessed at. So, by default, do the forms common upstreams read differently from
//! the normal form ([`PathRules`]): `;` path parameters (Java servlet containers strip them,
//! so `/public/..;/admin` is `/admin` there), an encoded `%` (`%252e`: a second decoder sees
//! `%2e`), and segments with leading or trailing spaces (trimmed by some servers).

use std::fmt;

/// Why a request path could not be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// A `%` is not followed by two hex digits.
    BadEscape,
    /// The path encodes `/`, `\` or NUL, or holds a raw backslash or a control character.
    AmbiguousCharacter,
    /// A `;` or `%3B` (a path parameter, stripped by Java servlet containers).
    PathParameter,
    /// An encoded `%` (`%25`), which a second decoder reads as another escape.
    EncodedPercent,
    /// A segment that starts or ends with an encoded space or other white space.
    EdgeWhitespace,
}

impl PathError {
    /// Short stable name, for the denial's log line.
    pub fn name(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "not_absolute",
            PathError::BadEscape => "bad_escape",
            PathError::AmbiguousCharacter => "ambiguous_character",
            PathError::PathParameter => "path_parameter",
            PathError::EncodedPercent => "encoded_percent",
            PathError::EdgeWhitespace => "edge_whitespace",
        }
    }
}

/// Which path forms that upstreams read in more than one way are accepted (`paths` in the
/// configuration). Refused by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathRules {
    /// `;` in a segment (matrix parameters), matched and forwarded as written.
    pub allow_path_parameters: bool,
    /// `%25` in the path.
    pub allow_encoded_percent: bool,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "path does not start with '/'",
            PathError::BadEscape => "malformed percent-escape in path",
            PathError::AmbiguousCharacter => {
                "path holds an encoded slash, backslash, NUL or control character"
            }
            PathError::PathParameter => "path holds a ';' path parameter",
            PathError::EncodedPercent => "path holds an encoded '%'",
            PathError::EdgeWhitespace => "a path segment starts or ends with a space",
        })
    }
}

/// Splits a request target (`:path`) into its path and its query (without `?`).
/// A fragment, which clients should never send, is dropped.
pub fn split_target(target: &str) -> (&str, &str) {
    let target = target.split('#').next().unwrap_or("");
    match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    }
}

/// Returns the normal form of `path` (without query) under the default [`PathRules`].
pub fn normalize(path: &str) -> Result<String, PathError> {
    normalize_with(path, PathRules::default())
}

/// Returns the normal form of `path` (without query), or why it has none.
pub fn normalize_with(path: &str, rules: PathRules) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode_unreserved(path)?;
    // An encoded `;` is one too, to a servlet container behind anything that decodes first.
    if !rules.allow_path_parameters && (decoded.contains(';') || decoded.contains("%3B")) {
        return Err(PathError::PathParameter);
    }
    if !rules.allow_encoded_percent && decoded.contains("%25") {
        return Err(PathError::EncodedPercent);
    }
    let mut out: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        if edge_whitespace(segment) {
            return Err(PathError::EdgeWhitespace);
        }
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut normal = String::with_capacity(decoded.len());
    for s in &out {
        normal.push('/');
        normal.push_str(s);
    }
    // Keep a trailing slash: `/users/` and `/users` may be different resources upstream.
    if (decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..")) && !out.is_empty() {
        normal.push('/');
    }
    if normal.is_empty() {
        normal.push('/');
    }
    Ok(normal)
}

/// Whether a segment starts or ends with whitespace, encoded or not: a space, or any Unicode
/// white space (`%E2%80%A8`, `%C2%A0`, `%E3%80%80`), which Java's `Character.isWhitespace`
/// and Python's `str.strip` trim. Only segments with an escape or a non-ASCII byte at an edge
/// are decoded to look.
fn edge_whitespace(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let escaped_edge = bytes.first() == Some(&b'%')
        || bytes.len().checked_sub(3).and_then(|i| bytes.get(i)) == Some(&b'%')
        || bytes.first().is_some_and(|b| !b.is_ascii())
        || bytes.last().is_some_and(|b| !b.is_ascii());
    if !escaped_edge {
        return false;
    }
    let decoded = percent_decode(segment, false);
    let text = String::from_utf8_lossy(&decoded);
    text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace)
}

/// Percent-decodes `s` (and `+` as a space where `plus_as_space`, as in query strings and
/// form bodies). A `%` without two hex digits stays as it is.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| {
                Some(
                    bytes.get(i + 1).copied().and_then(hex_value)? * 16
                        + bytes.get(i + 2).copied().and_then(hex_value)?,
                )
            })
            .flatten();
        match escaped {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(if b == b'+' && plus_as_space { b' ' } else { b });
                i += 1;
            }
        }
    }
    out
}

/// [`percent_decode`] as text, invalid UTF-8 replaced.
pub fn percent_decode_lossy(s: &str, plus_as_space: bool) -> String {
    String::from_utf8_lossy(&percent_decode(s, plus_as_space)).into_owned()
}

/// Fully percent-decodes one segment of a normalised path (which can no longer hold an
/// encoded `/`). `None` if the result is not UTF-8.
pub fn decode_segment(segment: &str) -> Option<String> {
    String::from_utf8(percent_decode(segment, false)).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn hex_digit(n: u8) -> u8 {
    if n < 10 {
        b'0' + n
    } else {
        b'A' + (n - 10)
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

pub(crate) fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            // A raw space is not part of any URI (RFC 3986); servers that trim segments would
            // read `/ /admin` as `/admin`.
            if b == b'\\' || b <= 0x20 || b == 0x7f {
                return Err(PathError::AmbiguousCharacter);
            }
            out.push(b);
            i += 1;
            continue;
        }
        let hi = bytes.get(i + 1).copied().and_then(hex_value);
        let lo = bytes.get(i + 2).copied().and_then(hex_value);
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err(PathError::BadEscape);
        };
        let v = hi * 16 + lo;
        if v == b'/' || v == b'\\' || v < 0x20 || v == 0x7f {
            return Err(PathError::AmbiguousCharacter);
        }
        if is_unreserved(v) {
            out.push(v);
        } else {
            out.extend([b'%', hex_digit(hi), hex_digit(lo)]);
        }
        i += 3;
    }
    // Only ASCII was decoded into a valid UTF-8 input, so this cannot fail; map it anyway.
    String::from_utf8(out).map_err(|_| PathError::BadEscape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_query_and_drops_fragment() {
        assert_eq!(split_target("/a/b?x=1&y=2"), ("/a/b", "x=1&y=2"));
        assert_eq!(split_target("/a#frag?x"), ("/a", ""));
        assert_eq!(split_target("/a?x#f"), ("/a", "x"));
        assert_eq!(split_target("/"), ("/", ""));
    }

    #[test]
    fn normal_forms() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a//b", "/a/b"),
            ("//a", "/a"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/..", "/a/"),
            ("/a/", "/a/"),
            ("/%61dmin", "/admin"),
            ("/a%2e%2e/b", "/a../b"),
            ("/a/%2e%2e/b", "/b"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/x%20y", "/x%20y"),
            ("/a%E2%80%A8b", "/a%E2%80%A8b"),
            ("/%C3%A9t%C3%A9", "/%C3%A9t%C3%A9"),
            ("/café", "/café"),
            ("/..", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(want), "input {input}");
        }
    }

    #[test]
    fn segments_decode() {
        assert_eq!(decode_segment("a%40b%C3%A9").as_deref(), Some("a@bé"));
        assert_eq!(decode_segment("plain").as_deref(), Some("plain"));
        assert_eq!(decode_segment("%FF"), None);
    }

    #[test]
    fn structural_escapes_are_refused() {
        for bad in ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a\\b", "/a%00", "/a\tb", "/a%7F", "/ /admin", "/a b"] {
            assert_eq!(normalize(bad), Err(PathError::AmbiguousCharacter), "{bad}");
        }
        for bad in ["/a%", "/a%4", "/a%zz", "/%%41"] {
            assert_eq!(normalize(bad), Err(PathError::BadEscape), "{bad}");
        }
        assert_eq!(normalize("a/b"), Err(PathError::NotAbsolute));
        for (bad, why) in [
            ("/public/..;/admin/x", PathError::PathParameter),
            ("/admin;x", PathError::PathParameter),
            ("/admin;/x", PathError::PathParameter),
            ("/admin%3bx", PathError::PathParameter),
            ("/public/%252e%252e/admin", PathError::EncodedPercent),
            ("/a%25", PathError::EncodedPercent),
            ("/admin%20/x", PathError::EdgeWhitespace),
            ("/%20admin", PathError::EdgeWhitespace),
            ("/admin%E2%80%A8", PathError::EdgeWhitespace),
            ("/%e2%80%a9admin/x", PathError::EdgeWhitespace),
            ("/admin%C2%A0/x", PathError::EdgeWhitespace),
            ("/admin%C2%85", PathError::EdgeWhitespace),
            ("/%E3%80%80admin", PathError::EdgeWhitespace),
            ("/admin\u{2028}", PathError::EdgeWhitespace),
        ] {
            assert_eq!(normalize(bad), Err(why), "{bad}");
        }
        let relaxed = PathRules { allow_path_parameters: true, allow_encoded_percent: true };
        assert_eq!(normalize_with("/a;v=1/b", relaxed).as_deref(), Ok("/a;v=1/b"));
        assert_eq!(normalize_with("/100%25", relaxed).as_deref(), Ok("/100%25"));
        assert_eq!(normalize_with("/a%20/b", relaxed), Err(PathError::EdgeWhitespace), "never relaxed");
        assert_eq!(normalize("*"), Err(PathError::NotAbsolute));
        assert_eq!(normalize(""), Err(PathError::NotAbsolute));
    }
}
