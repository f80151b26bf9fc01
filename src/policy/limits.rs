//! Request limits: header count and size, methods, credentials in the query string, body size
//! and content type. Compiled once per route from the global and route settings; checked on
//! the request head, then on the body as it arrives.

use super::config::{ConfigError, LimitsConfig, QueryCredentialsAction};
use super::denial::{Denial, Reason};
use super::json_limits::JsonLimits;
use super::media::{self, MediaRange};
use super::method::{Method, MethodSet};

/// Default largest request body: 1 MiB, Envoy's default buffer limit.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default most request headers, Envoy's `max_headers_count` default.
pub const DEFAULT_MAX_HEADER_COUNT: u32 = 100;
/// Default most header bytes: 60 KiB, Envoy's default `max_request_headers_kb`, so the
/// default largest token (32 KiB) fits with the other headers.
pub const DEFAULT_MAX_HEADER_BYTES: u32 = 60 * 1024;
/// Default allowed methods.
pub const DEFAULT_METHODS: [Method; 7] =
    [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS];
/// Default allowed request media ranges.
pub const DEFAULT_CONTENT_TYPES: [&str; 4] =
    ["application/json", "application/*+json", "application/x-www-form-urlencoded", "multipart/form-data"];
/// Default query parameter names that carry credentials.
pub const DEFAULT_QUERY_CREDENTIALS: [&str; 5] = ["access_token", "api_key", "apikey", "token", "jwt"];

/// Upper bound on `max_body_bytes`: larger values are surely a unit mistake.
const MAX_BODY_CEILING: u64 = 1 << 40;

/// Limits for one route, fully resolved (no inheritance left to do per request).
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Largest body in bytes.
    pub max_body_bytes: u64,
    /// Allowed methods.
    pub methods: MethodSet,
    /// Precomputed `Allow` header for 405s.
    pub allow_header: String,
    /// Allowed media ranges for requests with a body.
    pub content_types: Vec<MediaRange>,
    /// Most headers.
    pub max_header_count: u32,
    /// Most header bytes.
    pub max_header_bytes: u32,
    /// Lower-cased credential parameter names; empty when the check is off.
    pub query_credentials: Vec<String>,
    /// Shape limits for JSON bodies.
    pub json: JsonLimits,
}

impl RequestLimits {
    /// Resolves `route` over `global` over the defaults, checking every value.
    /// `at` is the JSON path of the `limits` object being compiled, for error messages.
    pub fn compile(
        global: &LimitsConfig,
        route: Option<&LimitsConfig>,
        at: &str,
    ) -> Result<RequestLimits, ConfigError> {
        // A route value wins; errors in a route's own value are reported at the route.
        fn pick<'a, T>(
            route: Option<&'a LimitsConfig>,
            global: &'a LimitsConfig,
            at: &str,
            f: impl Fn(&'a LimitsConfig) -> Option<&'a T>,
        ) -> (Option<&'a T>, String) {
            match route.and_then(&f) {
                Some(v) => (Some(v), at.to_string()),
                None => (f(global), "limits".to_string()),
            }
        }

        let (v, p) = pick(route, global, at, |l| l.max_body_bytes.as_ref());
        let max_body_bytes = v.copied().unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes > MAX_BODY_CEILING {
            return Err(ConfigError::new(
                format!("{p}.max_body_bytes"),
                format!("must be at most {MAX_BODY_CEILING} bytes"),
            ));
        }

        let (v, p) = pick(route, global, at, |l| l.allowed_methods.as_ref());
        let methods: MethodSet = match v {
            Some(list) => list.iter().copied().collect(),
            None => DEFAULT_METHODS.into_iter().collect(),
        };
        if methods.is_empty() {
            return Err(ConfigError::new(format!("{p}.allowed_methods"), "must list at least one method"));
        }

        let (v, p) = pick(route, global, at, |l| l.allowed_content_types.as_ref());
        let content_types = match v {
            Some(list) => {
                if list.is_empty() {
                    return Err(ConfigError::new(
                        format!("{p}.allowed_content_types"),
                        "must list at least one media range (use \"*/*\" to accept any)",
                    ));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        MediaRange::parse(s).map_err(|e| {
                            ConfigError::new(format!("{p}.allowed_content_types[{i}]"), e.to_string())
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            None => DEFAULT_CONTENT_TYPES.iter().filter_map(|s| MediaRange::parse(s).ok()).collect(),
        };

        let (v, p) = pick(route, global, at, |l| l.max_header_count.as_ref());
        let max_header_count = v.copied().unwrap_or(DEFAULT_MAX_HEADER_COUNT);
        if max_header_count == 0 {
            return Err(ConfigError::new(format!("{p}.max_header_count"), "must be at least 1"));
        }
        let (v, p) = pick(route, global, at, |l| l.max_header_bytes.as_ref());
        let max_header_bytes = v.copied().unwrap_or(DEFAULT_MAX_HEADER_BYTES);
        if max_header_bytes == 0 {
            return Err(ConfigError::new(format!("{p}.max_header_bytes"), "must be at least 1"));
        }

        let (v, p) = pick(route, global, at, |l| l.query_credentials.as_ref());
        let query_credentials = match v {
            Some(q) if q.action == QueryCredentialsAction::Allow => Vec::new(),
            Some(q) => match &q.names {
                Some(names) => {
                    if names.is_empty() {
                        return Err(ConfigError::new(
                            format!("{p}.query_credentials.names"),
                            "must list at least one name (set action to \"allow\" to turn the check off)",
                        ));
                    }
                    let mut out = Vec::with_capacity(names.len());
                    for (i, n) in names.iter().enumerate() {
                        if n.is_empty() || !n.is_ascii() {
                            return Err(ConfigError::new(
                                format!("{p}.query_credentials.names[{i}]"),
                                "must be a non-empty ASCII parameter name",
                            ));
                        }
                        out.push(n.to_ascii_lowercase());
                    }
                    out
                }
                None => DEFAULT_QUERY_CREDENTIALS.iter().map(|s| s.to_string()).collect(),
            },
            None => DEFAULT_QUERY_CREDENTIALS.iter().map(|s| s.to_string()).collect(),
        };

        let json = JsonLimits::compile(
            global.json.as_ref(),
            route.and_then(|r| r.json.as_ref()),
            &format!("{at}.json"),
        )?;

        Ok(RequestLimits {
            json,
            max_body_bytes,
            allow_header: methods.allow_header(),
            methods,
            content_types,
            max_header_count,
            max_header_bytes,
            query_credentials,
        })
    }

    /// Header count and size (pseudo-headers such as `:path` are not counted).
    pub fn check_headers<'a>(
        &self,
        headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<(), Denial> {
        let mut count: u64 = 0;
        let mut bytes: u64 = 0;
        for (name, value) in headers {
            if name.starts_with(':') {
                continue;
            }
            count += 1;
            bytes += (name.len() + value.len()) as u64;
        }
        if count > u64::from(self.max_header_count) || bytes > u64::from(self.max_header_bytes) {
            return Err(Denial::new(Reason::HeadersTooLarge));
        }
        Ok(())
    }

    /// The method allowlist.
    pub fn check_method(&self, method: Option<Method>) -> Result<(), Denial> {
        if self.methods.contains(method) {
            Ok(())
        } else {
            Err(Denial {
                allow: Some(self.allow_header.as_str().into()),
                ..Denial::new(Reason::MethodNotAllowed)
            })
        }
    }

    /// Credentials in the query string (raw query, without `?`).
    pub fn check_query(&self, query: &str) -> Result<(), Denial> {
        if self.query_credentials.is_empty() || query.is_empty() {
            return Ok(());
        }
        // `;` is a separator for some frameworks, so treat it as one too.
        for pair in query.split(['&', ';']) {
            let raw_name = pair.split('=').next().unwrap_or("");
            if raw_name.is_empty() {
                continue;
            }
            let name = param_name(raw_name);
            if self.query_credentials.contains(&name) {
                return Err(Denial::new(Reason::CredentialInQuery));
            }
        }
        Ok(())
    }

    /// The declared body: its size against the limit, and its media type.
    pub fn check_body_head(&self, body: &BodyFacts<'_>) -> Result<(), Denial> {
        if let Some(len) = body.content_length {
            if len > self.max_body_bytes {
                return Err(Denial::new(Reason::BodyTooLarge));
            }
        }
        if body.has_body {
            let essence = body.content_type.and_then(media::essence);
            let allowed =
                essence.as_deref().is_some_and(|e| self.content_types.iter().any(|r| r.includes(e)));
            if !allowed {
                return Err(Denial::new(Reason::UnsupportedMediaType));
            }
        }
        Ok(())
    }
}

/// What the request head says about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyFacts<'a> {
    /// Whether a body follows.
    pub has_body: bool,
    /// The declared `Content-Length`, if one valid value was sent.
    pub content_length: Option<u64>,
    /// The `Content-Type` value, if any.
    pub content_type: Option<&'a [u8]>,
}

/// Lower-cased, percent-decoded parameter name, with any `[...]` suffix removed
/// (`Access%5Ftoken[]` → `access_token`).
fn param_name(raw: &str) -> String {
    let mut name = super::path::percent_decode_lossy(raw, true).to_ascii_lowercase();
    if let Some(open) = name.find('[') {
        name.truncate(open);
    }
    name.trim().to_string()
}

/// Counts body bytes as they arrive, and says when the limit is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCounter {
    limit: u64,
    seen: u64,
}

impl BodyCounter {
    /// A counter for a body of at most `limit` bytes.
    pub fn new(limit: u64) -> BodyCounter {
        BodyCounter { limit, seen: 0 }
    }

    /// Adds a chunk of `len` bytes.
    pub fn add(&mut self, len: u64) -> Result<(), Denial> {
        self.seen = self.seen.saturating_add(len);
        self.check()
    }

    /// Sets the total seen so far (for hosts that report the buffered size, not the chunk).
    pub fn set_total(&mut self, total: u64) -> Result<(), Denial> {
        self.seen = self.seen.max(total);
        self.check()
    }

    /// Bytes counted so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    fn check(&self) -> Result<(), Denial> {
        if self.seen > self.limit {
            Err(Denial::new(Reason::BodyTooLarge))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(json: &str) -> RequestLimits {
        let cfg: LimitsConfig = serde_json::from_str(json).unwrap();
        RequestLimits::compile(&cfg, None, "limits").unwrap()
    }

    #[test]
    fn defaults() {
        let l = limits("{}");
        assert_eq!(l.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(l.allow_header, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        assert!(l.check_method(Some(Method::TRACE)).is_err());
        assert!(l.check_method(None).is_err());
        assert_eq!(l.query_credentials.len(), 5);
    }

    #[test]
    fn route_overrides_global_field_by_field() {
        let global: LimitsConfig =
            serde_json::from_str(r#"{"max_body_bytes":10,"allowed_methods":["GET"]}"#).unwrap();
        let route: LimitsConfig = serde_json::from_str(r#"{"max_body_bytes":20}"#).unwrap();
        let l = RequestLimits::compile(&global, Some(&route), "routes[0].limits").unwrap();
        assert_eq!(l.max_body_bytes, 20);
        assert_eq!(l.allow_header, "GET");
    }

    #[test]
    fn bad_values_name_their_field() {
        let global = LimitsConfig::default();
        let route: LimitsConfig = serde_json::from_str(r#"{"allowed_content_types":["json"]}"#).unwrap();
        let e = RequestLimits::compile(&global, Some(&route), "routes[3].limits").unwrap_err();
        assert_eq!(e.path, "routes[3].limits.allowed_content_types[0]");
        for (json, field) in [
            (r#"{"allowed_methods":[]}"#, "limits.allowed_methods"),
            (r#"{"allowed_content_types":[]}"#, "limits.allowed_content_types"),
            (r#"{"max_header_count":0}"#, "limits.max_header_count"),
            (r#"{"max_header_bytes":0}"#, "limits.max_header_bytes"),
            (r#"{"max_body_bytes":2000000000000}"#, "limits.max_body_bytes"),
            (r#"{"query_credentials":{"names":[]}}"#, "limits.query_credentials.names"),
            (r#"{"query_credentials":{"names":[""]}}"#, "limits.query_credentials.names[0]"),
        ] {
            let cfg: LimitsConfig = serde_json::from_str(json).unwrap();
            let e = RequestLimits::compile(&cfg, None, "limits").unwrap_err();
            assert_eq!(e.path, field, "{json}");
        }
    }

    #[test]
    fn header_limits_count_regular_headers_only() {
        let l = limits(r#"{"max_header_count":2,"max_header_bytes":10}"#);
        let ok: Vec<(&str, &[u8])> = vec![(":path", b"/very/long/path/indeed"), ("a", b"1234"), ("b", b"5")];
        assert!(l.check_headers(ok.into_iter()).is_ok());
        let too_many: Vec<(&str, &[u8])> = vec![("a", b""), ("b", b""), ("c", b"")];
        assert_eq!(l.check_headers(too_many.into_iter()).unwrap_err().reason, Reason::HeadersTooLarge);
        let too_big: Vec<(&str, &[u8])> = vec![("abc", b"12345678")];
        assert!(l.check_headers(too_big.into_iter()).is_err());
        let exact: Vec<(&str, &[u8])> = vec![("abc", b"1234567")];
        assert!(l.check_headers(exact.into_iter()).is_ok());
    }

    #[test]
    fn query_credentials_are_found_in_any_spelling() {
        let l = limits("{}");
        for q in [
            "access_token=x",
            "a=1&ACCESS_TOKEN=x",
            "a=1;api_key=x",
            "access%5Ftoken=x",
            "token[]=x",
            "jwt",
            "x=1&apikey=",
        ] {
            assert_eq!(l.check_query(q).unwrap_err().reason, Reason::CredentialInQuery, "{q}");
        }
        for q in ["", "a=access_token", "tokens=1", "my_token=1", "%zz=1", "&&="] {
            assert!(l.check_query(q).is_ok(), "{q}");
        }
        let off = limits(r#"{"query_credentials":{"action":"allow"}}"#);
        assert!(off.check_query("access_token=x").is_ok());
        let custom = limits(r#"{"query_credentials":{"names":["Sig"]}}"#);
        assert!(custom.check_query("sig=1").is_err());
        assert!(custom.check_query("token=1").is_ok());
    }

    #[test]
    fn body_head_checks_size_then_type() {
        let l = limits(r#"{"max_body_bytes":100}"#);
        let json = Some(&b"application/json; charset=utf-8"[..]);
        let facts = |has_body, len, ct| BodyFacts { has_body, content_length: len, content_type: ct };
        assert!(l.check_body_head(&facts(true, Some(100), json)).is_ok());
        assert_eq!(
            l.check_body_head(&facts(true, Some(101), json)).unwrap_err().reason,
            Reason::BodyTooLarge
        );
        assert_eq!(
            l.check_body_head(&facts(true, None, Some(b"text/plain"))).unwrap_err().reason,
            Reason::UnsupportedMediaType
        );
        assert_eq!(
            l.check_body_head(&facts(true, None, None)).unwrap_err().reason,
            Reason::UnsupportedMediaType
        );
        assert!(l.check_body_head(&facts(false, None, None)).is_ok());
        assert!(l.check_body_head(&facts(true, None, Some(b"application/merge-patch+json"))).is_ok());
    }

    #[test]
    fn counter_stops_just_over_the_limit() {
        let mut c = BodyCounter::new(10);
        assert!(c.add(4).is_ok());
        assert!(c.add(6).is_ok());
        assert_eq!(c.add(1).unwrap_err().reason, Reason::BodyTooLarge);
        let mut c = BodyCounter::new(10);
        assert!(c.set_total(10).is_ok());
        assert!(c.set_total(11).is_err());
        let mut c = BodyCounter::new(u64::MAX);
        assert!(c.add(u64::MAX).is_ok());
        assert!(c.add(1).is_ok());
    }
}
