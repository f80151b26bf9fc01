//! RFC 9728 protected-resource metadata: the document that tells a client (an MCP client, an
//! AI agent, any OAuth client that starts from a 401) which authorization servers issue tokens
//! for this API and which scopes it knows, served at its well-known path, and the
//! `resource_metadata` parameter that points to it from every Bearer challenge.
//!
//! The document is built once at load: answering it costs one local response.

use serde_json::{json, Map, Value};

use super::config::{ConfigError, ProtectedResourceConfig};
use super::denial::LocalResponse;
use super::method::Method;

/// The well-known path segment (RFC 9728 §3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What the rest of the policy says that the document advertises.
#[derive(Debug, Clone, Default)]
pub struct Advertised<'a> {
    /// The JWT providers' issuers (the default authorization servers).
    pub issuers: Vec<&'a str>,
    /// Every scope a requirement names (the default `scopes_supported`).
    pub scopes: Vec<&'a str>,
    /// Whether a provider reads tokens from the query string.
    pub query: bool,
    /// The DPoP proof algorithms accepted (none: no provider takes DPoP).
    pub dpop_algs: Vec<&'a str>,
    /// Whether every provider requires DPoP-bound tokens.
    pub dpop_required: bool,
    /// Whether a provider requires certificate-bound tokens.
    pub certificate_bound: bool,
}

/// The compiled `protected_resource` section.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    /// The path the document is served at: the well-known path, then the resource's own
    /// path (RFC 9728 §3.1).
    pub path: String,
    /// The document's URL, for `resource_metadata` in challenges.
    pub url: String,
    body: Vec<u8>,
}

/// The origin and path of an `https` URL without query or fragment (`http` only for a
/// loopback host, as RFC 8252 allows for local use).
fn split_resource(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() {
            h
        } else {
            authority
        }
    });
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    let scheme_ok = scheme == "https" || (scheme == "http" && loopback);
    let clean = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'@' | b'\\'));
    (scheme_ok && !host.is_empty() && clean(authority) && clean(path))
        .then(|| url.split_at(scheme.len() + 3 + end))
}

impl ResourceMetadata {
    /// Compiles the section with what the rest of the policy says (`facts`).
    pub fn compile(
        cfg: &ProtectedResourceConfig,
        facts: &Advertised<'_>,
    ) -> Result<ResourceMetadata, ConfigError> {
        let (issuers, scopes, query) = (&facts.issuers, &facts.scopes, facts.query);
        let (origin, path) = split_resource(&cfg.resource).ok_or_else(|| {
            ConfigError::new(
                "protected_resource.resource",
                "must be this API's https URL, with no query or fragment (http only for localhost)",
            )
        })?;
        let path = path.trim_end_matches('/');
        let served = format!("{WELL_KNOWN}{path}");
        let mut doc = Map::new();
        doc.insert("resource".into(), json!(cfg.resource));
        let servers: Vec<&str> = match &cfg.authorization_servers {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => {
                let mut v: Vec<&str> = Vec::new();
                for i in issuers {
                    if !v.contains(i) {
                        v.push(i);
                    }
                }
                v
            }
        };
        if let Some(i) = servers.iter().position(|s| split_resource(s).is_none()) {
            return Err(ConfigError::new(
                format!("protected_resource.authorization_servers[{i}]"),
                "must be an issuer's https URL (http only for localhost)",
            ));
        }
        if !servers.is_empty() {
            doc.insert("authorization_servers".into(), json!(servers));
        }
        let scopes: Vec<&str> = match &cfg.scopes_supported {
            Some(list) => {
                super::authz::check_scopes(list, "protected_resource.scopes_supported")?;
                list.iter().map(String::as_str).collect()
            }
            None => scopes.clone(),
        };
        if !scopes.is_empty() {
            doc.insert("scopes_supported".into(), json!(scopes));
        }
        let mut methods = vec!["header"];
        if query {
            methods.push("query");
        }
        doc.insert("bearer_methods_supported".into(), json!(methods));
        if !facts.dpop_algs.is_empty() {
            doc.insert("dpop_signing_alg_values_supported".into(), json!(facts.dpop_algs));
            doc.insert("dpop_bound_access_tokens_required".into(), json!(facts.dpop_required));
        }
        if facts.certificate_bound {
            doc.insert("tls_client_certificate_bound_access_tokens".into(), json!(true));
        }
        if let Some(name) = &cfg.resource_name {
            doc.insert("resource_name".into(), json!(name));
        }
        if let Some(d) = &cfg.resource_documentation {
            if split_resource(d).is_none() {
                return Err(ConfigError::new(
                    "protected_resource.resource_documentation",
                    "must be an https URL (http only for localhost)",
                ));
            }
            doc.insert("resource_documentation".into(), json!(d));
        }
        Ok(ResourceMetadata {
            url: format!("{origin}{served}"),
            path: served,
            body: Value::Object(doc).to_string().into_bytes(),
        })
    }

    /// The document, for a GET or HEAD of its path (`path` already normalised).
    pub fn answer(&self, method: Option<Method>, path: &str) -> Option<LocalResponse> {
        if path != self.path || !matches!(method, Some(Method::GET | Method::HEAD)) {
            return None;
        }
        Some(LocalResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "public, max-age=300".into()),
                // Public by design: browser-based clients read it from any origin.
                ("access-control-allow-origin".into(), "*".into()),
            ],
            body: if method == Some(Method::HEAD) { Vec::new() } else { self.body.clone() },
            details: super::telemetry::details("resource_metadata"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(json: &str) -> Result<ResourceMetadata, ConfigError> {
        let cfg: ProtectedResourceConfig = serde_json::from_str(json).unwrap();
        let facts = Advertised {
            issuers: vec!["https://idp.example", "https://idp.example"],
            scopes: vec!["orders:read"],
            ..Advertised::default()
        };
        ResourceMetadata::compile(&cfg, &facts)
    }

    #[test]
    fn the_document_is_served_at_the_path_rfc_9728_derives_from_the_resource() {
        let m = compile(r#"{"resource":"https://api.example/v1/"}"#).unwrap();
        assert_eq!(m.path, "/.well-known/oauth-protected-resource/v1");
        assert_eq!(m.url, "https://api.example/.well-known/oauth-protected-resource/v1");
        let r = m.answer(Some(Method::GET), &m.path).unwrap();
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            doc,
            json!({"resource": "https://api.example/v1/", "authorization_servers": ["https://idp.example"],
                   "scopes_supported": ["orders:read"], "bearer_methods_supported": ["header"]})
        );
        assert!(m.answer(Some(Method::POST), &m.path).is_none());
        assert!(m.answer(Some(Method::GET), "/.well-known/oauth-protected-resource").is_none());
        let cfg: ProtectedResourceConfig =
            serde_json::from_str(r#"{"resource":"https://api.example"}"#).unwrap();
        let facts = Advertised {
            dpop_algs: vec!["ES256"],
            dpop_required: true,
            certificate_bound: true,
            ..Advertised::default()
        };
        let doc: Value =
            serde_json::from_slice(&ResourceMetadata::compile(&cfg, &facts).unwrap().body).unwrap();
        assert_eq!(
            (
                &doc["dpop_signing_alg_values_supported"],
                &doc["dpop_bound_access_tokens_required"],
                &doc["tls_client_certificate_bound_access_tokens"]
            ),
            (&json!(["ES256"]), &json!(true), &json!(true))
        );
        let root = compile(r#"{"resource":"http://localhost:8080","scopes_supported":[]}"#).unwrap();
        assert_eq!(root.path, WELL_KNOWN);
        assert_eq!(root.url, "http://localhost:8080/.well-known/oauth-protected-resource");
    }

    #[test]
    fn resources_that_are_not_https_urls_are_refused() {
        for bad in [
            "http://api.example",
            "https://api.example/x?y=1",
            "https://api.example/#f",
            "api.example",
            "https://",
            "https://u@api.example",
        ] {
            let e = compile(&format!(r#"{{"resource":"{bad}"}}"#)).expect_err(bad);
            assert_eq!(e.path, "protected_resource.resource", "{bad}");
        }
        let e = compile(r#"{"resource":"https://api.example","authorization_servers":["idp"]}"#).unwrap_err();
        assert_eq!(e.path, "protected_resource.authorization_servers[0]");
    }
}
