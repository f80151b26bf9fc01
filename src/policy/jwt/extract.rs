//! Where tokens come from: headers with a prefix (default `Authorization: Bearer`), cookies,
//! and, only where a provider explicitly allows it, query parameters.
//!
//! Extraction is exactly RFC 6750 §2.1: the scheme (any case), one or more spaces, and a
//! `b64token` (`A-Z a-z 0-9 - . _ ~ + /`, then `=` padding only). Only the spaces and tabs
//! HTTP itself strips from a field value's ends (RFC 9110 §5.5) are ignored. A header whose
//! prefix matched carries a credential: whatever follows the spaces is the token, exactly, so
//! anything else around it (a `\r`, a comma, a second token) makes it a malformed token
//! (401 `invalid_token`, cause `malformed`), never a trimmed valid one. Cookies and query
//! parameters that are not a `b64token` are passed over.

use crate::policy::http::RequestHead;

/// One configured token location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A header (lower-case name) whose value starts with `prefix` (matched case-insensitively,
    /// so `Bearer`, `bearer` and `BEARER` all work); the token is the rest.
    Header {
        /// Header name.
        name: String,
        /// Value prefix, e.g. `Bearer `; may be empty.
        prefix: String,
    },
    /// A cookie by name.
    Cookie(String),
    /// A query parameter by name.
    Param(String),
}

/// A token found in a request, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'r> {
    /// The token text.
    pub token: &'r str,
    /// Which source held it.
    pub source: &'r Source,
}

/// RFC 6750's `b64token`, which every compact JWS fits.
fn token_chars(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// Optional whitespace as HTTP defines it: spaces and horizontal tabs only.
fn trim_ows(v: &str) -> &str {
    v.trim_matches([' ', '\t'])
}

/// The token after `prefix` in a header value: a prefix ending in a space takes one or more
/// spaces there (`1*SP`), as the `Bearer` scheme does.
fn after_prefix<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let value = value.trim_start_matches([' ', '\t']);
    let head = value.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = value.get(prefix.len()..)?;
    let rest = if prefix.ends_with(' ') { rest.trim_start_matches(' ') } else { rest };
    Some(rest.trim_end_matches([' ', '\t']))
}

/// The first token present in `sources`, in order. `query` is the raw query string.
pub fn find<'r>(sources: &'r [Source], head: &RequestHead<'r>, query: &'r str) -> Option<Found<'r>> {
    for source in sources {
        let token = match source {
            Source::Header { name, prefix } => head
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .find_map(|v| after_prefix(v, prefix)),
            Source::Cookie(name) => head
                .headers
                .iter()
                .filter(|(n, _)| n == "cookie")
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| trim_ows(pair).split_once('='))
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)),
            Source::Param(name) => query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(n, _)| n == name)
                .map(|(_, v)| v),
        };
        let usable = |t: &&str| match source {
            Source::Header { .. } => !t.is_empty(),
            _ => token_chars(t),
        };
        if let Some(token) = token.filter(usable) {
            return Some(Found { token, source });
        }
    }
    None
}

/// The default source: `Authorization: Bearer <token>` (RFC 6750 §2.1).
pub fn default_sources() -> Vec<Source> {
    vec![Source::Header { name: "authorization".into(), prefix: "Bearer ".into() }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_in(sources: &[Source], headers: &[(&str, &str)], query: &str) -> Option<String> {
        let h: Vec<(String, Vec<u8>)> =
            headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect();
        let head = RequestHead { headers: &h, end_of_stream: Some(true) };
        find(sources, &head, query).map(|f| f.token.to_string())
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let s = default_sources();
        assert_eq!(find_in(&s, &[("authorization", "Bearer abc.def.ghi")], ""), Some("abc.def.ghi".into()));
        assert_eq!(find_in(&s, &[("authorization", "bearer abc")], ""), Some("abc".into()));
        assert_eq!(find_in(&s, &[("authorization", "BEARER   abc  ")], ""), Some("abc".into()));
        assert_eq!(find_in(&s, &[("authorization", "Basic dXNlcg==")], ""), None);
        assert_eq!(find_in(&s, &[("authorization", "Bearer ")], ""), None);
        assert_eq!(find_in(&s, &[("authorization", "Bearer a b")], ""), Some("a b".into()), "malformed");
        assert_eq!(find_in(&s, &[("authorization", "Bear")], ""), None);
        assert_eq!(find_in(&s, &[("authorization", "Bearer\tabc")], ""), None, "1*SP, not a tab");
        assert_eq!(find_in(&s, &[("authorization", "Bearer \t")], ""), None, "HTTP's trailing whitespace");
        assert_eq!(find_in(&s, &[("authorization", "Bearerabc")], ""), None);
    }

    #[test]
    fn extraction_is_exactly_rfc_6750() {
        let s = default_sources();
        let t = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        for ok in [
            format!("Bearer {t}"),
            format!("Bearer    {t}"),
            format!(" Bearer {t}\t "),
            format!("Bearer {t}=="),
        ] {
            assert!(find_in(&s, &[("authorization", &ok)], "").is_some(), "{ok:?}");
        }
        for bad in [
            format!("Bearer \r{t}"),
            format!("Bearer {t}\r"),
            format!("Bearer \n{t}"),
            format!("Bearer {t},x"),
            format!("Bearer {t} {t}"),
            format!("Bearer \u{a0}{t}"),
            format!("Bearer {t}=x"),
            format!("Bearer ={t}"),
            "Bearer ==".to_string(),
        ] {
            // A credential, but not the clean token: refused as malformed by the parser.
            let found = find_in(&s, &[("authorization", &bad)], "").unwrap();
            assert_ne!(found, t, "{bad:?}");
            assert!(!token_chars(&found), "{bad:?}");
        }
        let c = vec![Source::Cookie("session".into())];
        assert_eq!(find_in(&c, &[("cookie", "session=\"abc\"")], ""), Some("abc".into()));
        assert_eq!(find_in(&c, &[("cookie", "\rsession=abc")], ""), None);
        assert_eq!(find_in(&c, &[("cookie", "session=\"abc")], ""), None);
        assert_eq!(find_in(&s, &[], "access_token=abc"), None, "query only when configured");
    }

    #[test]
    fn cookies_params_and_custom_headers() {
        let s = vec![
            Source::Header { name: "x-token".into(), prefix: String::new() },
            Source::Cookie("session".into()),
            Source::Param("access_token".into()),
        ];
        assert_eq!(find_in(&s, &[("x-token", "t1")], ""), Some("t1".into()));
        assert_eq!(find_in(&s, &[("cookie", "a=1; session=t2; b=3")], ""), Some("t2".into()));
        assert_eq!(find_in(&s, &[("cookie", "sessionx=no")], "access_token=t3&x=1"), Some("t3".into()));
        assert_eq!(find_in(&s, &[], "x=1"), None);
    }
}
