//! Response headers: the security-header preset, headers that reveal the stack, and the CORS
//! edits, merged into one list of changes computed from the upstream's headers.
//!
//! The preset (each value can be changed or dropped in the configuration):
//! - `Strict-Transport-Security: max-age=31536000; includeSubDomains`;
//! - `X-Content-Type-Options: nosniff`;
//! - `Referrer-Policy: no-referrer`;
//! - `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` on JSON responses
//!   (an API response is never a page to render or frame);
//! - `Cache-Control: no-store` on responses to authenticated requests.

use base64::Engine;

use super::config::{
    ConfigError, FieldActionConfig, FieldRuleConfig, Oversize, ResponseConfig, RouteResponseConfig,
};
use super::http::HeaderOp;
use super::media;
use super::redact::{self, Action, Selector};

/// Default largest response body buffered for field rules.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// A compiled field rule.
#[derive(Debug, Clone)]
struct FieldRule {
    selectors: Vec<Selector>,
    action: Action,
    unless_scopes: Vec<String>,
    routes: Option<Vec<usize>>,
    statuses: Option<Vec<u16>>,
}

/// How much of a response body is buffered for rewriting, and what happens past that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffering {
    /// Largest body buffered.
    pub max_body_bytes: u64,
    /// What to do with a larger one.
    pub oversize: Oversize,
}

impl Default for Buffering {
    fn default() -> Buffering {
        Buffering { max_body_bytes: DEFAULT_MAX_BODY_BYTES, oversize: Oversize::Fail }
    }
}

impl Buffering {
    /// The global settings (`response`), overridden field by field by a route's.
    pub fn resolve(global: Option<&ResponseConfig>, route: Option<&RouteResponseConfig>) -> Buffering {
        let base = global.map_or_else(Buffering::default, |c| Buffering {
            max_body_bytes: c.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            oversize: c.oversize,
        });
        match route {
            Some(r) => Buffering {
                max_body_bytes: r.max_body_bytes.unwrap_or(base.max_body_bytes),
                oversize: r.oversize.unwrap_or(base.oversize),
            },
            None => base,
        }
    }
}

/// What a response is owed, decided with the request, where the route, the caller's verified
/// token and the operation are known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Duty {
    /// Field rules that apply to this caller (indexes into the response policy).
    pub rules: Vec<usize>,
    /// The OpenAPI operation whose documented response shapes prune the body.
    pub operation: Option<usize>,
    /// Buffering for this route.
    pub buffering: Buffering,
}

impl Duty {
    /// Whether the body may have to be rewritten (so it must arrive uncompressed).
    pub fn may_rewrite(&self) -> bool {
        !self.rules.is_empty() || self.operation.is_some()
    }
}

/// A body rewrite: the schema allowlist first, then field rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// Field rules for this status.
    pub rules: Vec<usize>,
    /// Documented response shapes for this status (empty: no pruning).
    pub shape: Vec<usize>,
    /// How the body's type says it is framed.
    pub framing: Framing,
}

/// How a body owed a rewrite is read, from its `Content-Type`. A client parses JSON out of
/// more than JSON-labelled bodies (`fetch().json()` and `JSON.parse` ignore the label, NDJSON
/// readers split lines), so labels do not exempt a body from the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Labelled JSON (`application/json`, `+json`): must be JSON, else withheld.
    Json,
    /// Unlabelled, text, or another type that can carry JSON: rewritten when it is JSON by
    /// content (its first byte after whitespace opens an object or array), passed otherwise.
    Sniffed,
    /// Newline-delimited JSON (`application/x-ndjson`, `application/jsonl`): each line is
    /// rewritten.
    Lines,
}

impl Rewrite {
    /// Whether the first bytes of the body already show it is not JSON, so it passes without
    /// being buffered (sniffed bodies only; `prefix` may be any leading part of the body).
    pub fn passes_unread(&self, prefix: &[u8]) -> bool {
        self.framing == Framing::Sniffed
            && prefix
                .iter()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .is_some_and(|b| !matches!(b, b'{' | b'[' | 0xEF))
    }
}

/// Types that cannot carry JSON a client would parse: their bodies pass untouched.
fn cannot_carry_json(essence: &str) -> bool {
    let (ty, sub) = essence.split_once('/').unwrap_or((essence, ""));
    matches!(ty, "image" | "audio" | "video" | "font" | "model")
        || matches!(sub, "pdf" | "zip" | "gzip" | "x-tar" | "wasm" | "vnd.ms-excel" | "msword")
}

/// Script types: a JSON object inside a script (JSONP) is read by the page that loads it.
fn is_script(essence: &str) -> bool {
    matches!(
        essence,
        "application/javascript"
            | "text/javascript"
            | "application/x-javascript"
            | "application/ecmascript"
            | "text/ecmascript"
    )
}

/// What happens to a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyPlan {
    /// Forward it as is.
    Untouched,
    /// Buffer it and rewrite it.
    Rewrite(Rewrite),
    /// An upstream 5xx: replace the body with a generic problem for this status.
    Replace(u16),
    /// Replace the response with a 502 (the cause is logged).
    Withhold(&'static str),
}

/// Why a body could not be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteError {
    /// It is not JSON, though its type says so.
    NotJson,
}

/// The preset, in the order headers are set.
pub const PRESET: [(&str, &str); 3] = [
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];
/// The CSP set on JSON responses.
pub const JSON_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// Headers removed by default.
pub const DEFAULT_REMOVE: [&str; 6] =
    ["server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-runtime", "x-version"];

/// Compiled response hardening.
#[derive(Debug, Clone)]
pub struct ResponsePolicy {
    set: Vec<(String, String)>,
    json_csp: Option<String>,
    no_store_when_authenticated: bool,
    remove: Vec<String>,
    /// `set` plus the JSON CSP: what api-guard's own (JSON) responses carry.
    local: Vec<(String, String)>,
    rules: Vec<FieldRule>,
    hash_key: redact::HashKey,
    /// Replace upstream 5xx bodies with a generic problem.
    pub safe_errors: bool,
}

fn value_ok(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// One field rule (`here` is its JSON path).
#[inline(never)]
fn compile_rule(r: &FieldRuleConfig, here: &str, routes: &[&str]) -> Result<FieldRule, ConfigError> {
    if r.select.is_empty() {
        return Err(ConfigError::new(format!("{here}.select"), "must list at least one selector"));
    }
    let selectors = r
        .select
        .iter()
        .enumerate()
        .map(|(j, s)| Selector::parse(s).map_err(|e| ConfigError::new(format!("{here}.select[{j}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let action = match r.action {
        FieldActionConfig::Remove => Action::Remove,
        FieldActionConfig::Mask { keep_last } => Action::Mask { keep_last },
        FieldActionConfig::Hash => Action::Hash,
    };
    let route_ids = match &r.routes {
        Some(names) => Some(
            names
                .iter()
                .enumerate()
                .map(|(j, n)| {
                    routes.iter().position(|x| x == n).ok_or_else(|| {
                        ConfigError::new(format!("{here}.routes[{j}]"), format!("no route is named '{n}'"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    Ok(FieldRule {
        selectors,
        action,
        unless_scopes: r.unless_scopes.clone(),
        routes: route_ids,
        statuses: r.statuses.clone(),
    })
}

/// The key of the hash action: required when a rule hashes.
#[inline(never)]
fn hash_key(c: &ResponseConfig, at: &str, rules: &[FieldRule]) -> Result<Vec<u8>, ConfigError> {
    match &c.hash_key {
        Some(k) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(k.trim_end_matches('='))
            .ok()
            .filter(|k| k.len() >= 16)
            .ok_or_else(|| {
                ConfigError::new(format!("{at}.hash_key"), "must be base64url of at least 16 bytes")
            }),
        None if rules.iter().any(|r| r.action == Action::Hash) => {
            Err(ConfigError::new(format!("{at}.hash_key"), "is required when a rule uses the hash action"))
        }
        None => Ok(Vec::new()),
    }
}

/// Header names and values, in the order they are set.
type Headers = Vec<(String, String)>;

/// The security headers set on every answer (the presets, as configured, then the rest), and
/// the `content-security-policy` of JSON answers.
#[inline(never)]
fn security_headers(c: &ResponseConfig, at: &str) -> Result<(Headers, Option<String>), ConfigError> {
    for (name, value) in &c.security_headers {
        let lower = name.to_ascii_lowercase();
        if !media::is_token(&lower) || lower.starts_with("access-control-") {
            return Err(ConfigError::new(
                format!("{at}.security_headers.{name}"),
                "must be a header name (CORS headers belong to `cors`)",
            ));
        }
        if value.as_deref().is_some_and(|v| !value_ok(v)) {
            return Err(ConfigError::new(
                format!("{at}.security_headers.{name}"),
                "value must be printable ASCII",
            ));
        }
    }
    let pick = |name: &str, default: &str| -> Option<String> {
        match c.security_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, v)) => v.clone(),
            None => Some(default.to_string()),
        }
    };
    let mut set: Headers =
        PRESET.iter().filter_map(|(n, d)| pick(n, d).map(|v| (n.to_string(), v))).collect();
    let json_csp = pick("content-security-policy", JSON_CSP);
    for (name, value) in &c.security_headers {
        let lower = name.to_ascii_lowercase();
        let preset = PRESET.iter().any(|(n, _)| *n == lower) || lower == "content-security-policy";
        if let (false, Some(v)) = (preset, value) {
            set.push((lower, v.clone()));
        }
    }
    Ok((set, json_csp))
}

/// The headers removed from every answer (`remove_headers`, else the defaults).
#[inline(never)]
fn remove_headers(c: &ResponseConfig, at: &str) -> Result<Vec<String>, ConfigError> {
    match &c.remove_headers {
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let lower = h.to_ascii_lowercase();
                if media::is_token(&lower) && !lower.starts_with("access-control-") && lower != "content-type"
                {
                    Ok(lower)
                } else {
                    Err(ConfigError::new(
                        format!("{at}.remove_headers[{i}]"),
                        "must be a header name api-guard may remove",
                    ))
                }
            })
            .collect(),
        None => Ok(DEFAULT_REMOVE.iter().map(|s| s.to_string()).collect()),
    }
}

impl ResponsePolicy {
    /// Compiles the configuration (`at` is its JSON path); `routes` are the route names. Each
    /// part is a function of its own: V8 compiles several small functions in far less time
    /// than one large one.
    pub fn compile(c: &ResponseConfig, at: &str, routes: &[&str]) -> Result<ResponsePolicy, ConfigError> {
        let rules = c
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(r, &format!("{at}.rules[{i}]"), routes))
            .collect::<Result<Vec<_>, _>>()?;
        let hash_key = hash_key(c, at, &rules)?;
        let (set, json_csp) = security_headers(c, at)?;
        let remove = remove_headers(c, at)?;
        let mut local = set.clone();
        if let Some(csp) = &json_csp {
            local.push(("content-security-policy".into(), csp.clone()));
        }
        Ok(ResponsePolicy {
            local,
            set,
            json_csp,
            no_store_when_authenticated: c.no_store_when_authenticated.unwrap_or(true),
            remove,
            rules,
            hash_key: redact::HashKey::new(&hash_key),
            safe_errors: c.safe_errors.unwrap_or(true),
        })
    }

    /// Whether any field rule is configured.
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The field rules that apply to this caller on this route (decided with the request,
    /// where the verified token is known).
    pub fn active_rules(&self, route: Option<usize>, scopes: &[&str]) -> Vec<usize> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.routes.as_ref().is_none_or(|ids| route.is_some_and(|x| ids.contains(&x))))
            .filter(|(_, r)| {
                r.unless_scopes.is_empty() || !r.unless_scopes.iter().all(|s| scopes.contains(&s.as_str()))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Of the active rules, those for this response status.
    pub fn rules_for_status(&self, active: &[usize], status: u16) -> Vec<usize> {
        active
            .iter()
            .copied()
            .filter(|i| {
                self.rules.get(*i).is_some_and(|r| r.statuses.as_ref().is_none_or(|s| s.contains(&status)))
            })
            .collect()
    }

    /// The rules `ids`, as the streaming rewrite takes them.
    pub fn rewrite_rules(&self, ids: &[usize]) -> Vec<super::json_rewrite::Rule<'_>> {
        ids.iter()
            .filter_map(|i| self.rules.get(*i))
            .map(|r| super::json_rewrite::Rule { selectors: &r.selectors, action: &r.action })
            .collect()
    }

    /// The key for hash actions.
    pub fn hash_key(&self) -> &redact::HashKey {
        &self.hash_key
    }

    /// Applies field rules to a parsed JSON body.
    pub fn apply(&self, rules: &[usize], body: &mut serde_json::Value) {
        for r in rules.iter().filter_map(|i| self.rules.get(*i)) {
            redact::apply_all(body, &r.selectors, &r.action, &self.hash_key);
        }
    }

    /// Headers for api-guard's own responses (denials are JSON and already `no-store`).
    pub fn local_headers(&self) -> &[(String, String)] {
        &self.local
    }

    /// The header changes for one response: `upstream` are the upstream's headers;
    /// `authenticated` says whether the request presented a verified token.
    pub fn ops(&self, upstream: &[(String, Vec<u8>)], authenticated: bool) -> Vec<HeaderOp> {
        let mut ops: Vec<HeaderOp> = self
            .remove
            .iter()
            .filter(|r| upstream.iter().any(|(n, _)| n == *r))
            .map(|r| HeaderOp::Remove(r.clone()))
            .collect();
        ops.extend(self.set.iter().map(|(n, v)| HeaderOp::Set(n.clone(), v.clone())));
        let is_json = upstream
            .iter()
            .find(|(n, _)| n == "content-type")
            .and_then(|(_, v)| media::essence(v))
            .is_some_and(|e| media::is_json(&e));
        if let (true, Some(csp)) = (is_json, &self.json_csp) {
            ops.push(HeaderOp::Set("content-security-policy".into(), csp.clone()));
        }
        if authenticated && self.no_store_when_authenticated {
            ops.push(HeaderOp::Set("cache-control".into(), "no-store".into()));
        }
        ops
    }
}

/// The response status, from the upstream's `:status` (0 when absent or malformed).
pub fn status(upstream: &[(String, Vec<u8>)]) -> u16 {
    upstream
        .iter()
        .find(|(n, _)| n == ":status")
        .and_then(|(_, s)| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Decides, from the upstream's response headers, what happens to its body: `active` are the
/// caller's field rules, `shape` the documented response shapes for this status (empty when
/// the schema allowlist does not apply).
pub fn plan_body(
    policy: Option<&ResponsePolicy>,
    active: &[usize],
    shape: Vec<usize>,
    upstream: &[(String, Vec<u8>)],
) -> BodyPlan {
    let header = |name: &str| upstream.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
    let status = status(upstream);
    if policy.is_some_and(|p| p.safe_errors) && (500..600).contains(&status) {
        return BodyPlan::Replace(status);
    }
    let rules = policy.map(|p| p.rules_for_status(active, status)).unwrap_or_default();
    if rules.is_empty() && shape.is_empty() {
        return BodyPlan::Untouched;
    }
    let essence = header("content-type").and_then(media::essence);
    let framing = match essence.as_deref() {
        Some(e) if media::is_json(e) => Framing::Json,
        Some(
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines",
        ) => Framing::Lines,
        Some(e) if cannot_carry_json(e) => return BodyPlan::Untouched,
        Some(e) if is_script(e) => return BodyPlan::Withhold("script"),
        Some("application/json-seq") => return BodyPlan::Withhold("json-seq"),
        _ => Framing::Sniffed,
    };
    // A compressed body cannot be rewritten here: never pass it on.
    if header("content-encoding").is_some_and(|e| !e.eq_ignore_ascii_case(b"identity")) {
        return BodyPlan::Withhold("encoded");
    }
    BodyPlan::Rewrite(Rewrite { rules, shape, framing })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> ResponsePolicy {
        ResponsePolicy::compile(&serde_json::from_str(json).unwrap(), "response", &["users"]).unwrap()
    }

    fn set_value<'a>(ops: &'a [HeaderOp], name: &str) -> Option<&'a str> {
        ops.iter().find_map(|o| match o {
            HeaderOp::Set(n, v) if n == name => Some(v.as_str()),
            _ => None,
        })
    }

    #[test]
    fn preset_removal_and_overrides() {
        let up: Vec<(String, Vec<u8>)> = vec![
            ("server".into(), b"Apache/2.4.1 (Unix) PHP/5.3".to_vec()),
            ("x-powered-by".into(), b"PHP/5.3".to_vec()),
            ("content-type".into(), b"application/json; charset=utf-8".to_vec()),
        ];
        let ops = policy("{}").ops(&up, true);
        assert!(ops.contains(&HeaderOp::Remove("server".into())));
        assert!(ops.contains(&HeaderOp::Remove("x-powered-by".into())));
        assert_eq!(set_value(&ops, "strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
        assert_eq!(set_value(&ops, "x-content-type-options"), Some("nosniff"));
        assert_eq!(set_value(&ops, "content-security-policy"), Some(JSON_CSP));
        assert_eq!(set_value(&ops, "cache-control"), Some("no-store"));
        // Not JSON, not authenticated: no CSP, no cache-control.
        let html: Vec<(String, Vec<u8>)> = vec![("content-type".into(), b"text/html".to_vec())];
        let ops = policy("{}").ops(&html, false);
        assert_eq!(set_value(&ops, "content-security-policy"), None);
        assert_eq!(set_value(&ops, "cache-control"), None);
        // Overrides and additions.
        let p = policy(
            r#"{"security_headers": {"Strict-Transport-Security": null, "Referrer-Policy": "same-origin",
                           "Permissions-Policy": "geolocation=()"}, "no_store_when_authenticated": false,
                           "remove_headers": ["x-backend"]}"#,
        );
        let up2: Vec<(String, Vec<u8>)> =
            vec![("server".into(), b"x".to_vec()), ("x-backend".into(), b"db-3".to_vec())];
        let ops = p.ops(&up2, true);
        assert_eq!(set_value(&ops, "strict-transport-security"), None);
        assert_eq!(set_value(&ops, "referrer-policy"), Some("same-origin"));
        assert_eq!(set_value(&ops, "permissions-policy"), Some("geolocation=()"));
        assert_eq!(set_value(&ops, "cache-control"), None);
        assert!(ops.contains(&HeaderOp::Remove("x-backend".into())));
        assert!(!ops.contains(&HeaderOp::Remove("server".into())), "an explicit list replaces the default");
    }

    #[test]
    fn rules_apply_by_route_status_and_scope() {
        let p = policy(
            r#"{"hash_key": "MDEyMzQ1Njc4OWFiY2RlZg", "rules": [
                {"select": ["$..password"], "action": {"type": "remove"}},
                {"select": ["$.email"], "action": {"type": "hash"}, "unless_scopes": ["users:pii"]},
                {"select": ["$.card"], "action": {"type": "mask", "keep_last": 4}, "routes": ["users"], "statuses": [200]}]}"#,
        );
        assert_eq!(p.active_rules(Some(0), &[]), vec![0, 1, 2]);
        assert_eq!(p.active_rules(Some(0), &["users:pii"]), vec![0, 2]);
        assert_eq!(p.active_rules(None, &[]), vec![0, 1]);
        assert_eq!(p.rules_for_status(&[0, 1, 2], 404), vec![0, 1]);
        let body =
            br#"{"email":"a@b.c","password":"p","card":"4111111111111111","nested":[{"password":"q"}]}"#;
        let mut out: serde_json::Value = serde_json::from_slice(body).unwrap();
        p.apply(&[0, 1, 2], &mut out);
        assert_eq!(out["card"], "************1111");
        assert!(out["email"].as_str().unwrap().starts_with("hmac-sha256:"));
        assert!(!out.to_string().contains("password"));
    }

    #[test]
    fn upstream_failures_are_replaced_unless_turned_off() {
        let h = |status: &str, ct: &str| -> Vec<(String, Vec<u8>)> {
            vec![
                (":status".into(), status.as_bytes().to_vec()),
                ("content-type".into(), ct.as_bytes().to_vec()),
            ]
        };
        let p = policy("{}");
        assert_eq!(plan_body(Some(&p), &[], vec![], &h("503", "text/html")), BodyPlan::Replace(503));
        assert_eq!(plan_body(Some(&p), &[], vec![], &h("404", "text/html")), BodyPlan::Untouched);
        let off = policy(r#"{"safe_errors": false}"#);
        assert_eq!(plan_body(Some(&off), &[], vec![], &h("500", "text/html")), BodyPlan::Untouched);
        // Without a `response` section, only the schema allowlist can rewrite.
        assert_eq!(plan_body(None, &[], vec![], &h("500", "text/html")), BodyPlan::Untouched);
        assert_eq!(
            plan_body(None, &[], vec![3], &h("200", "application/json")),
            BodyPlan::Rewrite(Rewrite { rules: vec![], shape: vec![3], framing: Framing::Json })
        );
        let mut gz = h("200", "application/json");
        gz.push(("content-encoding".into(), b"gzip".to_vec()));
        assert_eq!(plan_body(None, &[], vec![3], &gz), BodyPlan::Withhold("encoded"));
        // Any label that can carry JSON is judged by content; types that cannot pass; scripts
        // (JSONP) and JSON text sequences are withheld.
        let sniffed = BodyPlan::Rewrite(Rewrite { rules: vec![], shape: vec![3], framing: Framing::Sniffed });
        for ct in ["text/csv", "text/plain", "text/html", "application/octet-stream", "application/xml", ""] {
            assert_eq!(plan_body(None, &[], vec![3], &h("200", ct)), sniffed, "{ct:?}");
        }
        let mut unlabelled = h("200", "");
        unlabelled.retain(|(n, _)| n != "content-type");
        assert_eq!(plan_body(None, &[], vec![3], &unlabelled), sniffed);
        let lines = BodyPlan::Rewrite(Rewrite { rules: vec![], shape: vec![3], framing: Framing::Lines });
        assert_eq!(plan_body(None, &[], vec![3], &h("200", "application/x-ndjson")), lines);
        for ct in ["image/png", "video/mp4", "font/woff2", "application/pdf", "application/zip"] {
            assert_eq!(plan_body(None, &[], vec![3], &h("200", ct)), BodyPlan::Untouched, "{ct}");
        }
        for ct in ["application/javascript", "text/javascript; charset=utf-8"] {
            assert_eq!(plan_body(None, &[], vec![3], &h("200", ct)), BodyPlan::Withhold("script"), "{ct}");
        }
        assert_eq!(
            plan_body(None, &[], vec![3], &h("200", "application/json-seq")),
            BodyPlan::Withhold("json-seq")
        );
        let BodyPlan::Rewrite(plan) = sniffed else { unreachable!() };
        assert!(plan.passes_unread(b"  id,name\n1,a"));
        assert!(plan.passes_unread(b"<html>"));
        for json in [&b" {\"a\":1}"[..], b"[1]", b"\xEF\xBB\xBF{}", b"   ", b""] {
            assert!(!plan.passes_unread(json), "{json:?}");
        }
        let rendering = super::super::denial::Rendering {
            type_base: "urn:x:".into(),
            realm: "api".into(),
            local_headers: Vec::new(),
            resource_metadata: None,
            dpop_algs: None,
        };
        let body = super::super::denial::safe_error(500, &rendering, "id-1");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["status"].as_u64(), v["request_id"].as_str()),
            (Some("urn:x:upstream-error"), Some(500), Some("id-1"))
        );
    }

    #[test]
    fn routes_override_buffering_field_by_field() {
        let global: ResponseConfig = serde_json::from_str(r#"{"max_body_bytes": 10}"#).unwrap();
        let route: RouteResponseConfig = serde_json::from_str(r#"{"oversize": "pass"}"#).unwrap();
        assert_eq!(
            Buffering::resolve(Some(&global), Some(&route)),
            Buffering { max_body_bytes: 10, oversize: Oversize::Pass }
        );
        assert_eq!(
            Buffering::resolve(Some(&global), None),
            Buffering { max_body_bytes: 10, oversize: Oversize::Fail }
        );
        assert_eq!(Buffering::resolve(None, None), Buffering::default());
    }

    #[test]
    fn bad_settings_name_the_field() {
        for (json, path) in [
            (r#"{"security_headers": {"bad header": "x"}}"#, "response.security_headers.bad header"),
            (
                r#"{"security_headers": {"access-control-allow-origin": "*"}}"#,
                "response.security_headers.access-control-allow-origin",
            ),
            (r#"{"security_headers": {"x-a": "line\nbreak"}}"#, "response.security_headers.x-a"),
            (r#"{"remove_headers": ["content-type"]}"#, "response.remove_headers[0]"),
            (r#"{"rules": [{"select": ["$..x"], "action": {"type": "hash"}}]}"#, "response.hash_key"),
            (r#"{"hash_key": "c2hvcnQ", "rules": []}"#, "response.hash_key"),
            (
                r#"{"rules": [{"select": ["$[?(@.x)]"], "action": {"type": "remove"}}]}"#,
                "response.rules[0].select[0]",
            ),
            (
                r#"{"rules": [{"select": ["$.a"], "action": {"type": "remove"}, "routes": ["nope"]}]}"#,
                "response.rules[0].routes[0]",
            ),
        ] {
            let e = ResponsePolicy::compile(&serde_json::from_str(json).unwrap(), "response", &["users"])
                .unwrap_err();
            assert_eq!(e.path, path);
        }
    }
}
