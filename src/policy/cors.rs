//! CORS, as the Fetch standard defines it, decided at the gateway.
//!
//! - A request is a preflight when it is `OPTIONS` with both `Origin` and
//!   `Access-Control-Request-Method`. api-guard answers every preflight itself (204 when the
//!   origin, the method and every requested header are allowed, 403 problem+json without CORS
//!   headers otherwise) and never forwards one upstream. Preflights carry no credentials, so
//!   authentication does not apply to them.
//! - An actual request from an allowed origin gets `Access-Control-Allow-Origin` with that exact
//!   origin (never `*` when credentials are allowed), plus credentials and exposed headers as
//!   configured. From another origin it gets no CORS headers, and by default an unsafe method
//!   is refused outright: the browser would hide the response, but the side effect would
//!   already have happened.
//! - Every response on a CORS route carries `Vary: Origin` (merged with the upstream's `Vary`),
//!   and CORS headers the upstream sent are replaced, so an upstream cannot widen the policy.
//!
//! Configurations that are unsafe are refused at load: a wildcard origin with credentials,
//! patterns that could match foreign origins, and the `null` origin unless enabled.

use super::config::{ConfigError, CorsConfig, CorsMode, RefuseDisallowed};
use super::http::HeaderOp;
use super::http::RequestHead;
use super::media;
use super::method::{Method, MethodSet};

/// Default preflight cache lifetime, seconds.
pub const DEFAULT_MAX_AGE: u32 = 600;
/// Longest preflight cache lifetime accepted (browsers cap it lower anyway).
pub const MAX_MAX_AGE: u32 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    Any,
    Null,
    Exact(String),
    /// `scheme://*.suffix[:port]`: one or more labels, then `.suffix`.
    Subdomain {
        scheme: String,
        suffix: String,
        port: String,
    },
}

/// A compiled CORS policy.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Vec<OriginRule>,
    methods: MethodSet,
    allow_methods: String,
    headers: Vec<String>,
    exposed: String,
    credentials: bool,
    max_age: u32,
    private_network: bool,
    refuse: RefuseDisallowed,
    /// Report only: decide, log and count, refuse nothing.
    pub report_only: bool,
}

/// The CORS verdict on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin`, or the request's own origin: not a CORS request.
    NotCrossOrigin,
    /// A preflight to answer with 204 and these headers.
    PreflightAllowed(Vec<(String, String)>),
    /// A preflight to refuse; `cause` names what was not allowed.
    PreflightRefused {
        /// `origin`, `method` or `header`.
        cause: &'static str,
    },
    /// From an allowed origin: add these headers to the response.
    Allowed(Vec<(String, String)>),
    /// From an origin not allowed; `refuse` when the policy refuses this method.
    Disallowed {
        /// Whether to refuse the request.
        refuse: bool,
    },
}

/// Splits `scheme://host[:port]`, checking it is a serialised origin (lower-case, no path).
fn split_origin(s: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
                return None;
            }
            (h, p)
        }
        _ => (rest, ""),
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.[]:*".contains(&b))
        && !host.starts_with('.')
        && !host.ends_with('.');
    host_ok.then_some((scheme, host, port))
}

fn compile_origin(s: &str, allow_null: bool, credentials: bool) -> Result<OriginRule, String> {
    if s == "*" {
        return if credentials {
            Err("`*` cannot be combined with allow_credentials (browsers refuse it, and reflecting any origin with credentials would expose every user)".into())
        } else {
            Ok(OriginRule::Any)
        };
    }
    if s == "null" {
        return if allow_null {
            Ok(OriginRule::Null)
        } else {
            Err("the origin `null` is shared by every sandboxed frame and file: page; set allow_null_origin to accept it".into())
        };
    }
    // Brackets are not in the list: IPv6 literals use them.
    if s.bytes().any(|b| b"^$()|+?\\{} ".contains(&b)) {
        return Err(
            "must be an origin or an anchored pattern (`https://*.example.com`), not a regular expression"
                .into(),
        );
    }
    let (scheme, host, port) = split_origin(s)
        .ok_or("must be a lower-case origin: `scheme://host[:port]` with http or https and no path or trailing slash")?;
    if !host.contains('*') {
        return Ok(OriginRule::Exact(s.to_string()));
    }
    let suffix =
        host.strip_prefix("*.").ok_or("a `*` may only be the whole first label: `https://*.example.com`")?;
    if suffix.contains('*') {
        return Err("only one `*`, as the whole first label".into());
    }
    // `*.com` would match every site under a public suffix: require a registrable domain.
    if suffix.split('.').filter(|l| !l.is_empty()).count() < 2 {
        return Err("the part after `*.` must have at least two labels (`*.example.com`, not `*.com`)".into());
    }
    Ok(OriginRule::Subdomain {
        scheme: scheme.to_string(),
        suffix: format!(".{suffix}"),
        port: port.to_string(),
    })
}

impl OriginRule {
    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginRule::Any => origin != "null",
            OriginRule::Null => origin == "null",
            OriginRule::Exact(o) => o == origin,
            OriginRule::Subdomain { scheme, suffix, port } => match split_origin(origin) {
                Some((s, host, p)) => {
                    s == scheme
                        && p == port
                        && !host.contains('*')
                        && host.len() > suffix.len()
                        && host.ends_with(suffix.as_str())
                }
                None => false,
            },
        }
    }
}

/// The request's own origin, from `:scheme` and `:authority`.
fn own_origin(head: &RequestHead<'_>) -> Option<String> {
    let scheme = std::str::from_utf8(head.header(":scheme")?).ok()?;
    let authority = std::str::from_utf8(head.header(":authority")?).ok()?;
    let authority = authority.to_ascii_lowercase();
    // A default port is not part of a serialised origin.
    let authority = match (scheme, authority.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) => h.to_string(),
        _ => authority,
    };
    Some(format!("{scheme}://{authority}"))
}

impl CorsPolicy {
    /// Compiles and checks a CORS configuration; `at` is its JSON path.
    pub fn compile(c: &CorsConfig, at: &str) -> Result<CorsPolicy, ConfigError> {
        if c.allowed_origins.is_empty() {
            return Err(ConfigError::new(format!("{at}.allowed_origins"), "must list at least one origin"));
        }
        let mut origins = Vec::new();
        for (i, o) in c.allowed_origins.iter().enumerate() {
            let rule = compile_origin(o, c.allow_null_origin, c.allow_credentials)
                .map_err(|e| ConfigError::new(format!("{at}.allowed_origins[{i}]"), e))?;
            origins.push(rule);
        }
        let methods: MethodSet = match &c.allowed_methods {
            Some(list) if list.is_empty() => {
                return Err(ConfigError::new(
                    format!("{at}.allowed_methods"),
                    "must list at least one method",
                ))
            }
            Some(list) => list.iter().copied().collect(),
            None => [Method::GET, Method::HEAD, Method::POST].into_iter().collect(),
        };
        let check_names = |list: &[String], field: &str| -> Result<Vec<String>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, h)| {
                    if h == "*" {
                        return Err(ConfigError::new(
                            format!("{at}.{field}[{i}]"),
                            "list header names; `*` is not accepted (it means a literal `*` with credentials)",
                        ));
                    }
                    if !media::is_token(h) {
                        return Err(ConfigError::new(format!("{at}.{field}[{i}]"), "must be a header name"));
                    }
                    Ok(h.to_ascii_lowercase())
                })
                .collect()
        };
        let headers = check_names(&c.allowed_headers, "allowed_headers")?;
        let exposed = check_names(&c.exposed_headers, "exposed_headers")?.join(", ");
        let max_age = c.max_age.unwrap_or(DEFAULT_MAX_AGE);
        if max_age > MAX_MAX_AGE {
            return Err(ConfigError::new(
                format!("{at}.max_age"),
                format!("must be at most {MAX_MAX_AGE} seconds"),
            ));
        }
        Ok(CorsPolicy {
            origins,
            allow_methods: methods.allow_header(),
            methods,
            headers,
            exposed,
            credentials: c.allow_credentials,
            max_age,
            private_network: c.allow_private_network,
            refuse: c.refuse_disallowed,
            report_only: c.mode == CorsMode::ReportOnly,
        })
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|r| r.matches(origin))
    }

    /// Judges a request. `method` is the request method.
    pub fn decide(&self, head: &RequestHead<'_>, method: Option<Method>) -> Verdict {
        let Some(origin) = head.header("origin").and_then(|o| std::str::from_utf8(o).ok()) else {
            return Verdict::NotCrossOrigin;
        };
        let preflight_method = head.header("access-control-request-method");
        let is_preflight = method == Some(Method::OPTIONS) && preflight_method.is_some();
        if !is_preflight && own_origin(head).as_deref() == Some(origin) {
            return Verdict::NotCrossOrigin;
        }
        let allowed = self.origin_allowed(origin);
        if is_preflight {
            if !allowed {
                return Verdict::PreflightRefused { cause: "origin" };
            }
            let requested =
                preflight_method.and_then(|m| std::str::from_utf8(m).ok()).and_then(Method::parse);
            if requested.is_none() || !self.methods.contains(requested) {
                return Verdict::PreflightRefused { cause: "method" };
            }
            let asked = head
                .header("access-control-request-headers")
                .map(|h| String::from_utf8_lossy(h).to_ascii_lowercase())
                .unwrap_or_default();
            let asked: Vec<&str> = asked.split(',').map(str::trim).filter(|h| !h.is_empty()).collect();
            if asked.iter().any(|h| !self.headers.iter().any(|a| a == h)) {
                return Verdict::PreflightRefused { cause: "header" };
            }
            let wants_pna = head.header("access-control-request-private-network") == Some(b"true");
            if wants_pna && !self.private_network {
                return Verdict::PreflightRefused { cause: "private-network" };
            }
            let mut out = vec![("access-control-allow-origin".to_string(), origin.to_string())];
            if self.credentials {
                out.push(("access-control-allow-credentials".into(), "true".into()));
            }
            out.push(("access-control-allow-methods".into(), self.allow_methods.clone()));
            if !asked.is_empty() {
                out.push(("access-control-allow-headers".into(), asked.join(", ")));
            }
            out.push(("access-control-max-age".into(), self.max_age.to_string()));
            if wants_pna {
                out.push(("access-control-allow-private-network".into(), "true".into()));
            }
            let mut vary =
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_string();
            if self.private_network {
                vary.push_str(", Access-Control-Request-Private-Network");
            }
            out.push(("vary".into(), vary));
            return Verdict::PreflightAllowed(out);
        }
        if allowed {
            let mut out = vec![("access-control-allow-origin".to_string(), origin.to_string())];
            if self.credentials {
                out.push(("access-control-allow-credentials".into(), "true".into()));
            }
            if !self.exposed.is_empty() {
                out.push(("access-control-expose-headers".into(), self.exposed.clone()));
            }
            return Verdict::Allowed(out);
        }
        let refuse = match self.refuse {
            RefuseDisallowed::All => true,
            RefuseDisallowed::None => false,
            RefuseDisallowed::UnsafeMethods => {
                !matches!(method, Some(Method::GET | Method::HEAD | Method::OPTIONS))
            }
        };
        Verdict::Disallowed { refuse }
    }
}

/// The response headers api-guard owns on a CORS route.
const OWNED: [&str; 7] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
    "access-control-allow-private-network",
];

/// The edits that turn the upstream's response headers into the final ones: upstream CORS
/// headers removed, ours set, and `Origin` merged into `Vary` without duplicating a value.
pub fn response_ops(upstream: &[(String, Vec<u8>)], ours: &[(String, String)]) -> Vec<HeaderOp> {
    let mut ops = Vec::new();
    for name in OWNED {
        if upstream.iter().any(|(n, _)| n == name) && !ours.iter().any(|(n, _)| n == name) {
            ops.push(HeaderOp::Remove(name.to_string()));
        }
    }
    for (n, v) in ours {
        ops.push(HeaderOp::Set(n.clone(), v.clone()));
    }
    let mut vary: Vec<String> = upstream
        .iter()
        .filter(|(n, _)| n == "vary")
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v).split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect();
    if !vary.iter().any(|t| t == "*" || t.eq_ignore_ascii_case("origin")) {
        vary.push("Origin".to_string());
        ops.push(HeaderOp::Set("vary".into(), vary.join(", ")));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::config::CorsConfig;

    fn cfg(json: &str) -> CorsConfig {
        serde_json::from_str(json).unwrap()
    }

    fn policy(json: &str) -> CorsPolicy {
        CorsPolicy::compile(&cfg(json), "cors").unwrap()
    }

    fn verdict(p: &CorsPolicy, method: &str, pairs: &[(&str, &str)]) -> Verdict {
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), method.as_bytes().to_vec()),
            (":scheme".into(), b"https".to_vec()),
            (":authority".into(), b"api.example.com".to_vec()),
        ];
        headers.extend(pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())));
        p.decide(&RequestHead { headers: &headers, end_of_stream: None }, Method::parse(method))
    }

    fn header<'a>(v: &'a Verdict, name: &str) -> Option<&'a str> {
        match v {
            Verdict::PreflightAllowed(h) | Verdict::Allowed(h) => {
                h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
            }
            _ => None,
        }
    }

    #[test]
    fn unsafe_configurations_are_refused_at_load() {
        let bad = [
            (r#"{"allowed_origins": ["*"], "allow_credentials": true}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": ["null"]}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": ["https://.*\\.example\\.com"]}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": ["https://app.example.com", "^https://x$"]}"#, "allowed_origins[1]"),
            (r#"{"allowed_origins": ["https://*.com"]}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": ["https://a*.example.com"]}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": ["https://*.*.example.com"]}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": ["*.example.com"]}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": ["https://app.example.com/"]}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": ["https://App.example.com"]}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": ["ftp://x.example.com"]}"#, "allowed_origins[0]"),
            (r#"{"allowed_origins": []}"#, "allowed_origins"),
            (r#"{"allowed_origins": ["https://a.b"], "allowed_headers": ["*"]}"#, "allowed_headers[0]"),
            (r#"{"allowed_origins": ["https://a.b"], "allowed_headers": ["x y"]}"#, "allowed_headers[0]"),
            (r#"{"allowed_origins": ["https://a.b"], "max_age": 100000}"#, "max_age"),
        ];
        for (json, field) in bad {
            let e = CorsPolicy::compile(&cfg(json), "cors").unwrap_err();
            assert_eq!(e.path, format!("cors.{field}"), "{json}");
            assert!(!e.message.is_empty());
        }
        assert!(CorsPolicy::compile(
            &cfg(r#"{"allowed_origins": ["null"], "allow_null_origin": true}"#),
            "c"
        )
        .is_ok());
        assert!(CorsPolicy::compile(&cfg(r#"{"allowed_origins": ["*"]}"#), "c").is_ok());
        assert!(CorsPolicy::compile(
            &cfg(r#"{"allowed_origins": ["http://localhost:3000", "http://[::1]:8080"]}"#),
            "c"
        )
        .is_ok());
    }

    #[test]
    fn origins_match_exactly_or_by_anchored_subdomain() {
        let p = policy(
            r#"{"allowed_origins": ["https://app.example.com", "https://*.example.org", "http://localhost:3000"]}"#,
        );
        for ok in [
            "https://app.example.com",
            "https://a.example.org",
            "https://a.b.example.org",
            "http://localhost:3000",
        ] {
            assert!(p.origin_allowed(ok), "{ok}");
        }
        for no in [
            "https://app.example.com.evil.com",
            "https://evilapp.example.com",
            "http://app.example.com",
            "https://app.example.com:444",
            "https://example.org",
            "https://evilexample.org",
            "https://a.example.org.evil.com",
            "http://a.example.org",
            "https://a.example.org:8443",
            "http://localhost:3001",
            "http://localhost",
            "null",
            "",
            "https://*.example.org",
        ] {
            assert!(!p.origin_allowed(no), "{no}");
        }
        assert!(!policy(r#"{"allowed_origins": ["*"]}"#).origin_allowed("null"));
    }

    #[test]
    fn preflights_follow_the_fetch_rules() {
        let p = policy(
            r#"{"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET", "PUT"],
                "allowed_headers": ["Content-Type", "X-Trace"], "allow_credentials": true, "max_age": 300}"#,
        );
        let o = ("origin", "https://app.example.com");
        let v = verdict(
            &p,
            "OPTIONS",
            &[
                o,
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-trace, Content-Type"),
            ],
        );
        assert_eq!(header(&v, "access-control-allow-origin"), Some("https://app.example.com"));
        assert_eq!(header(&v, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(&v, "access-control-allow-methods"), Some("GET, PUT"));
        assert_eq!(header(&v, "access-control-allow-headers"), Some("x-trace, content-type"));
        assert_eq!(header(&v, "access-control-max-age"), Some("300"));
        assert_eq!(
            header(&v, "vary"),
            Some("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
        );
        let refused = |pairs: &[(&str, &str)]| match verdict(&p, "OPTIONS", pairs) {
            Verdict::PreflightRefused { cause } => cause,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(&[("origin", "https://evil.com"), ("access-control-request-method", "GET")]),
            "origin"
        );
        assert_eq!(refused(&[o, ("access-control-request-method", "DELETE")]), "method");
        assert_eq!(refused(&[o, ("access-control-request-method", "put")]), "method");
        assert_eq!(
            refused(&[
                o,
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-other")
            ]),
            "header"
        );
        assert_eq!(
            refused(&[
                o,
                ("access-control-request-method", "GET"),
                ("access-control-request-private-network", "true")
            ]),
            "private-network"
        );
        // OPTIONS without Access-Control-Request-Method is an actual request.
        assert!(matches!(verdict(&p, "OPTIONS", &[o]), Verdict::Allowed(_)));
        let pna =
            policy(r#"{"allowed_origins": ["https://app.example.com"], "allow_private_network": true}"#);
        let v = verdict(
            &pna,
            "OPTIONS",
            &[
                o,
                ("access-control-request-method", "GET"),
                ("access-control-request-private-network", "true"),
            ],
        );
        assert_eq!(header(&v, "access-control-allow-private-network"), Some("true"));
    }

    #[test]
    fn actual_requests() {
        let p = policy(
            r#"{"allowed_origins": ["https://app.example.com"], "exposed_headers": ["X-Request-Id"]}"#,
        );
        let v = verdict(&p, "POST", &[("origin", "https://app.example.com")]);
        assert_eq!(
            v,
            Verdict::Allowed(vec![
                ("access-control-allow-origin".into(), "https://app.example.com".into()),
                ("access-control-expose-headers".into(), "x-request-id".into()),
            ])
        );
        assert_eq!(
            verdict(&p, "GET", &[("origin", "https://evil.com")]),
            Verdict::Disallowed { refuse: false }
        );
        assert_eq!(
            verdict(&p, "POST", &[("origin", "https://evil.com")]),
            Verdict::Disallowed { refuse: true }
        );
        assert_eq!(verdict(&p, "GET", &[]), Verdict::NotCrossOrigin);
        // Same-origin requests (browsers send Origin on same-origin POSTs too) are not CORS.
        assert_eq!(verdict(&p, "POST", &[("origin", "https://api.example.com")]), Verdict::NotCrossOrigin);
        let none = policy(r#"{"allowed_origins": ["https://a.example.com"], "refuse_disallowed": "none"}"#);
        assert_eq!(
            verdict(&none, "DELETE", &[("origin", "https://evil.com")]),
            Verdict::Disallowed { refuse: false }
        );
        let all = policy(r#"{"allowed_origins": ["https://a.example.com"], "refuse_disallowed": "all"}"#);
        assert_eq!(
            verdict(&all, "GET", &[("origin", "https://evil.com")]),
            Verdict::Disallowed { refuse: true }
        );
    }

    #[test]
    fn upstream_cors_headers_are_replaced_and_vary_is_merged() {
        let upstream: Vec<(String, Vec<u8>)> = vec![
            ("access-control-allow-origin".into(), b"*".to_vec()),
            ("access-control-allow-methods".into(), b"DELETE".to_vec()),
            ("vary".into(), b"Accept-Encoding".to_vec()),
        ];
        let ours = vec![("access-control-allow-origin".to_string(), "https://a.example.com".to_string())];
        assert_eq!(
            response_ops(&upstream, &ours),
            vec![
                HeaderOp::Remove("access-control-allow-methods".into()),
                HeaderOp::Set("access-control-allow-origin".into(), "https://a.example.com".into()),
                HeaderOp::Set("vary".into(), "Accept-Encoding, Origin".into()),
            ]
        );
        let already: Vec<(String, Vec<u8>)> = vec![("vary".into(), b"origin, accept".to_vec())];
        assert_eq!(response_ops(&already, &[]), vec![]);
        assert_eq!(response_ops(&[], &[]), vec![HeaderOp::Set("vary".into(), "Origin".into())]);
    }
}
