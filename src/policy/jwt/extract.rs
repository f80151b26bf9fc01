//! Where tokens come from: headers with a prefix (default `Authorization: Bearer`), cookies,
//! and, only where a provider explicitly allows it, query parameters.

use crate::policy::RequestHead;

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

fn token_chars(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic())
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
                .find_map(|v| {
                    let head = v.get(..prefix.len())?;
                    head.eq_ignore_ascii_case(prefix).then(|| v.get(prefix.len()..)).flatten()
                })
                .map(str::trim),
            Source::Cookie(name) => head
                .headers
                .iter()
                .filter(|(n, _)| n == "cookie")
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.trim_matches('"')),
            Source::Param(name) => query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(n, _)| n == name)
                .map(|(_, v)| v),
        };
        if let Some(token) = token.filter(|t| token_chars(t)) {
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
        assert_eq!(find_in(&s, &[("authorization", "Bearer a b")], ""), None);
        assert_eq!(find_in(&s, &[("authorization", "Bear")], ""), None);
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
