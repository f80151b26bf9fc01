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

use super::authz::HeaderOp;
use super::config::{ConfigError, ResponseConfig};
use super::media;

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
}

fn header_name_ok(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn value_ok(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

impl ResponsePolicy {
    /// Compiles the configuration (`at` is its JSON path).
    pub fn compile(c: &ResponseConfig, at: &str) -> Result<ResponsePolicy, ConfigError> {
        for (name, value) in &c.security_headers {
            let lower = name.to_ascii_lowercase();
            if !header_name_ok(&lower) || lower.starts_with("access-control-") {
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
        let mut set: Vec<(String, String)> =
            PRESET.iter().filter_map(|(n, d)| pick(n, d).map(|v| (n.to_string(), v))).collect();
        let json_csp = pick("content-security-policy", JSON_CSP);
        for (name, value) in &c.security_headers {
            let lower = name.to_ascii_lowercase();
            let preset = PRESET.iter().any(|(n, _)| *n == lower) || lower == "content-security-policy";
            if let (false, Some(v)) = (preset, value) {
                set.push((lower, v.clone()));
            }
        }
        let remove = match &c.remove_headers {
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let lower = h.to_ascii_lowercase();
                    if header_name_ok(&lower)
                        && !lower.starts_with("access-control-")
                        && lower != "content-type"
                    {
                        Ok(lower)
                    } else {
                        Err(ConfigError::new(
                            format!("{at}.remove_headers[{i}]"),
                            "must be a header name api-guard may remove",
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => DEFAULT_REMOVE.iter().map(|s| s.to_string()).collect(),
        };
        Ok(ResponsePolicy {
            set,
            json_csp,
            no_store_when_authenticated: c.no_store_when_authenticated.unwrap_or(true),
            remove,
        })
    }

    /// Headers for api-guard's own responses (denials are JSON and already `no-store`).
    pub fn local_headers(&self) -> Vec<(String, String)> {
        let mut out = self.set.clone();
        if let Some(csp) = &self.json_csp {
            out.push(("content-security-policy".into(), csp.clone()));
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> ResponsePolicy {
        ResponsePolicy::compile(&serde_json::from_str(json).unwrap(), "response").unwrap()
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
    fn bad_settings_name_the_field() {
        for (json, path) in [
            (r#"{"security_headers": {"bad header": "x"}}"#, "response.security_headers.bad header"),
            (
                r#"{"security_headers": {"access-control-allow-origin": "*"}}"#,
                "response.security_headers.access-control-allow-origin",
            ),
            (r#"{"security_headers": {"x-a": "line\nbreak"}}"#, "response.security_headers.x-a"),
            (r#"{"remove_headers": ["content-type"]}"#, "response.remove_headers[0]"),
        ] {
            let e = ResponsePolicy::compile(&serde_json::from_str(json).unwrap(), "response").unwrap_err();
            assert_eq!(e.path, path);
        }
    }
}
