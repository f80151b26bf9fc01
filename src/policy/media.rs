//! Media types (`Content-Type`) and the ranges a config may allow.

use std::fmt;

/// A configured media range: `type/subtype`, `type/*`, `*/*`, or a structured-syntax suffix
/// range such as `application/*+json` (RFC 6838 §4.2.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRange {
    /// Every media type.
    Any,
    /// Every subtype of one type, e.g. `text/*`.
    Type(String),
    /// Every subtype of `type` ending in `+suffix`, e.g. `application/*+json`.
    Suffix(String, String),
    /// Exactly one media type.
    Exact(String),
}

/// Why a configured media range is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRangeError(String);

impl fmt::Display for MediaRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a media range (expected type/subtype, type/*, type/*+suffix or */*, without parameters)",
            self.0
        )
    }
}

fn is_restricted_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
}

/// An RFC 9110 token (a header or method name).
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl MediaRange {
    /// Parses a configured range; case-insensitive, parameters are not allowed.
    pub fn parse(s: &str) -> Result<MediaRange, MediaRangeError> {
        let err = || MediaRangeError(s.to_string());
        let lower = s.trim().to_ascii_lowercase();
        let (ty, sub) = lower.split_once('/').ok_or_else(err)?;
        if ty == "*" {
            return if sub == "*" { Ok(MediaRange::Any) } else { Err(err()) };
        }
        if !is_restricted_name(ty) {
            return Err(err());
        }
        if sub == "*" {
            return Ok(MediaRange::Type(ty.to_string()));
        }
        if let Some(suffix) = sub.strip_prefix("*+") {
            return if is_restricted_name(suffix) {
                Ok(MediaRange::Suffix(ty.to_string(), suffix.to_string()))
            } else {
                Err(err())
            };
        }
        if is_restricted_name(sub) {
            Ok(MediaRange::Exact(lower.clone()))
        } else {
            Err(err())
        }
    }

    /// Whether this range includes `essence` (a lower-cased `type/subtype`).
    pub fn includes(&self, essence: &str) -> bool {
        match self {
            MediaRange::Any => true,
            MediaRange::Exact(e) => e == essence,
            MediaRange::Type(t) => essence.split_once('/').is_some_and(|(ty, _)| ty == t),
            MediaRange::Suffix(t, suffix) => essence.split_once('/').is_some_and(|(ty, sub)| {
                ty == t && sub.rsplit_once('+').is_some_and(|(head, suf)| !head.is_empty() && suf == suffix)
            }),
        }
    }
}

/// Media-type parameters (`charset=utf-8`): names lower-cased, values unquoted.
pub type Params = Vec<(String, String)>;

/// Splits `;`-separated parameters (after the essence) into pairs; malformed ones are left out.
fn parse_params(rest: &str) -> Params {
    rest.split(';')
        .filter_map(|p| {
            let (n, v) = p.split_once('=')?;
            let n = n.trim().to_ascii_lowercase();
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            is_token(&n).then(|| (n, v.to_string()))
        })
        .collect()
}

impl MediaRange {
    /// Parses a media-type key of an OpenAPI document, which may carry parameters
    /// (`application/json; charset=utf-8`): the range and its parameters.
    pub fn parse_with_params(s: &str) -> Result<(MediaRange, Params), MediaRangeError> {
        let (main, rest) = s.split_once(';').unwrap_or((s, ""));
        let range = MediaRange::parse(main).map_err(|_| MediaRangeError(s.to_string()))?;
        Ok((range, parse_params(rest)))
    }
}

/// How well a request's `Content-Type` parameters fit a documented key's (RFC 9110 §8.3.1:
/// names compare case-insensitively; `charset` values too). `None`: a parameter both name has
/// another value, so the key does not describe this body. `Some(n)`: `n` of the key's
/// parameters are present and equal (a parameter the request leaves out is no conflict).
pub fn params_fit(key: &Params, content_type: &[u8]) -> Option<usize> {
    if key.is_empty() {
        return Some(0);
    }
    let text = String::from_utf8_lossy(content_type);
    let sent = parse_params(text.split_once(';').map_or("", |(_, r)| r));
    let mut fit = 0;
    for (name, want) in key {
        if let Some((_, got)) = sent.iter().find(|(n, _)| n == name) {
            let same = if name == "charset" { got.eq_ignore_ascii_case(want) } else { got == want };
            if !same {
                return None;
            }
            fit += 1;
        }
    }
    Some(fit)
}

/// The essence (`type/subtype`, lower-cased, without parameters) of a `Content-Type` value,
/// or `None` when the value is not a well-formed media type.
pub fn essence(content_type: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(content_type).ok()?;
    let main = s.split(';').next()?.trim().to_ascii_lowercase();
    let (ty, sub) = main.split_once('/')?;
    (is_restricted_name(ty) && is_restricted_name(sub)).then_some(main)
}

/// Whether an essence names JSON: `application/json` or any `+json` structured syntax suffix
/// (RFC 6839).
pub fn is_json(essence: &str) -> bool {
    essence == "application/json"
        || essence.split_once('/').is_some_and(|(_, sub)| sub.len() > 5 && sub.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        assert_eq!(MediaRange::parse("*/*"), Ok(MediaRange::Any));
        assert_eq!(MediaRange::parse("Text/*"), Ok(MediaRange::Type("text".into())));
        assert_eq!(
            MediaRange::parse("application/*+json"),
            Ok(MediaRange::Suffix("application".into(), "json".into()))
        );
        assert_eq!(MediaRange::parse("application/JSON"), Ok(MediaRange::Exact("application/json".into())));
        for bad in ["json", "*/json", "application/json; charset=utf-8", "a b/c", "/", "a/", ""] {
            assert!(MediaRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_essences() {
        let json = MediaRange::parse("application/json").unwrap();
        let any_json = MediaRange::parse("application/*+json").unwrap();
        let text = MediaRange::parse("text/*").unwrap();
        assert!(json.includes("application/json"));
        assert!(!json.includes("application/jsonx"));
        assert!(any_json.includes("application/problem+json"));
        assert!(!any_json.includes("application/json"));
        assert!(!any_json.includes("application/+json"));
        assert!(!any_json.includes("text/x+json"));
        assert!(text.includes("text/plain"));
        assert!(!text.includes("texts/plain"));
        assert!(MediaRange::Any.includes("x/y"));
    }

    #[test]
    fn keys_with_parameters() {
        let (range, params) = MediaRange::parse_with_params("Application/JSON; Charset=\"UTF-8\"").unwrap();
        assert_eq!(range, MediaRange::Exact("application/json".into()));
        assert_eq!(params, vec![("charset".to_string(), "UTF-8".to_string())]);
        assert_eq!(params_fit(&params, b"application/json;charset=utf-8"), Some(1));
        assert_eq!(params_fit(&params, b"application/json"), Some(0));
        assert_eq!(params_fit(&params, b"application/json; charset=latin1"), None);
        let (_, v) = MediaRange::parse_with_params("application/vnd.api+json; version=2").unwrap();
        assert_eq!(params_fit(&v, b"application/vnd.api+json; version=2"), Some(1));
        assert_eq!(params_fit(&v, b"application/vnd.api+json; VERSION=3"), None);
        assert!(MediaRange::parse_with_params("application; x=1").is_err());
    }

    #[test]
    fn extracts_essence() {
        assert_eq!(essence(b"Application/JSON; charset=utf-8").as_deref(), Some("application/json"));
        assert_eq!(essence(b" text/plain ").as_deref(), Some("text/plain"));
        assert_eq!(essence(b"json"), None);
        assert_eq!(essence(b""), None);
        assert_eq!(essence(b"a/b c"), None);
        assert_eq!(essence(&[0xff, b'/', b'x']), None);
    }
}
