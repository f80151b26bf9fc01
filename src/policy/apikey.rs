//! API keys for machine clients: which consumer a presented key belongs to.
//!
//! The configuration holds only each key's SHA-256, so a leaked configuration (or a log of
//! it) gives no one a key. A presented key is hashed once and compared with every stored
//! digest in constant time, each comparison touching every byte, so the time taken says
//! nothing about how close a guess came. A key's consumer becomes the caller's subject
//! (`sub`) and its scopes the caller's `scope`, so rate limits, claim conditions and the
//! scope-waived field rules read an API-key caller the way they read a token's.

use std::rc::Rc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::config::{ApiKeysConfig, ConfigError};
use super::jwt::Verified;

/// The header a key is read from when the configuration names none.
pub const DEFAULT_HEADER: &str = "x-api-key";

/// The `provider` label of requests judged by an API key (JWT providers may not take it).
pub const PROVIDER_LABEL: &str = "api_key";

/// The compiled `api_keys` section.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    /// The (lower-cased) header the key is read from.
    pub header: String,
    /// The header the consumer's name is sent upstream in.
    pub consumer_header: Option<String>,
    keys: Vec<Key>,
}

/// One stored key.
#[derive(Debug, Clone)]
struct Key {
    digest: [u8; 32],
    prefix: Option<String>,
    /// The caller as the rest of the policy reads it: `sub` and `scope`.
    caller: Rc<Verified>,
}

/// Whether `a` and `b` are equal, looking at every byte whatever the first difference.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A header value api-guard may set: visible ASCII and spaces, not empty.
fn header_value(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

impl ApiKeys {
    /// Compiles `api_keys`.
    pub fn compile(cfg: &ApiKeysConfig) -> Result<ApiKeys, ConfigError> {
        let header = match &cfg.header {
            Some(h) => super::jwt::header_name(h, "api_keys.header".into())?,
            None => DEFAULT_HEADER.to_string(),
        };
        let consumer_header = cfg
            .consumer_header
            .as_ref()
            .map(|h| super::jwt::header_name(h, "api_keys.consumer_header".into()))
            .transpose()?;
        if consumer_header.as_ref() == Some(&header) {
            return Err(ConfigError::new(
                "api_keys.consumer_header",
                "must differ from `api_keys.header` (the key is removed before the consumer is set)",
            ));
        }
        let mut keys: Vec<Key> = Vec::with_capacity(cfg.keys.len());
        for (i, k) in cfg.keys.iter().enumerate() {
            let at = format!("api_keys.keys[{i}]");
            if !header_value(&k.consumer) {
                return Err(ConfigError::new(
                    format!("{at}.consumer"),
                    "must be a name of visible characters (it is sent as a header value)",
                ));
            }
            let digest = super::digest::from_hex(k.sha256.as_bytes()).ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.sha256"),
                    "must be the key's SHA-256 as 64 hexadecimal digits (never the key itself)",
                )
            })?;
            if let Some(j) = keys.iter().position(|o| o.digest == digest) {
                return Err(ConfigError::new(
                    format!("{at}.sha256"),
                    format!("the same key is listed at api_keys.keys[{j}]"),
                ));
            }
            if let Some(p) = &k.prefix {
                if p.is_empty() || p.len() > 16 || !p.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError::new(
                        format!("{at}.prefix"),
                        "must be 1 to 16 visible characters: the start of the key",
                    ));
                }
            }
            super::authz::check_scopes(&k.scopes, &format!("{at}.scopes"))?;
            let mut claims = Map::new();
            claims.insert("sub".into(), Value::String(k.consumer.clone()));
            if !k.scopes.is_empty() {
                claims.insert("scope".into(), Value::String(k.scopes.join(" ")));
            }
            let payload = Value::Object(claims.clone()).to_string().into_bytes();
            keys.push(Key {
                digest,
                prefix: k.prefix.clone(),
                caller: Rc::new(Verified { claims, payload }),
            });
        }
        Ok(ApiKeys { header, consumer_header, keys })
    }

    /// The caller a presented key stands for (`sub`, `scope`), if it is one of the keys.
    pub fn identify(&self, presented: &[u8]) -> Option<Rc<Verified>> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for k in &self.keys {
            // Every digest is compared, whichever matches.
            if same_digest(&k.digest, &digest) && found.is_none() {
                found = Some(k);
            }
        }
        let k = found?;
        let starts = k.prefix.as_ref().is_none_or(|p| presented.starts_with(p.as_bytes()));
        starts.then(|| Rc::clone(&k.caller))
    }

    /// The consumer of a caller [`ApiKeys::identify`] returned.
    pub fn consumer(caller: &Verified) -> Option<&str> {
        caller.claims.get("sub").and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(json: &str) -> Result<ApiKeys, ConfigError> {
        let cfg: ApiKeysConfig = serde_json::from_str(json).unwrap();
        ApiKeys::compile(&cfg)
    }

    fn sha(s: &str) -> String {
        Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_key_is_known_by_its_digest_only() {
        let json = format!(
            r#"{{"consumer_header":"x-consumer","keys":[
                {{"consumer":"batch","sha256":"{}","scopes":["orders:read"]}},
                {{"consumer":"ci","sha256":"{}","prefix":"ak_ci_"}}]}}"#,
            sha("s3cret-batch-key"),
            sha("ak_ci_0123456789").to_uppercase()
        );
        let k = keys(&json).unwrap();
        assert_eq!(k.header, "x-api-key");
        let batch = k.identify(b"s3cret-batch-key").expect("known key");
        assert_eq!(ApiKeys::consumer(&batch), Some("batch"));
        assert_eq!(batch.claims["scope"], "orders:read");
        assert_eq!(ApiKeys::consumer(&k.identify(b"ak_ci_0123456789").unwrap()), Some("ci"));
        assert!(k.identify(b"s3cret-batch-ke").is_none());
        assert!(k.identify(b"").is_none());
        assert!(k.identify(b"ak_ci_0123456788").is_none());
        // The configuration holds no key text.
        assert!(!format!("{k:?}").contains("s3cret"));
    }

    #[test]
    fn a_prefix_that_the_key_does_not_start_with_does_not_match() {
        let json = format!(r#"{{"keys":[{{"consumer":"a","sha256":"{}","prefix":"ak_"}}]}}"#, sha("zz_key"));
        assert!(keys(&json).unwrap().identify(b"zz_key").is_none());
    }

    /// A policy with two keys (`batch` with `orders:read`, `ci` with none) and three routes.
    fn policy() -> crate::policy::Policy {
        let doc = format!(
            r#"{{"api_keys":{{"consumer_header":"x-consumer","keys":[
                  {{"consumer":"batch","sha256":"{}","scopes":["orders:read"]}},
                  {{"consumer":"ci","sha256":"{}"}}]}},
                "routes":[
                  {{"name":"orders","match":{{"prefix":"/orders"}},"auth":{{"type":"api_key","scopes":["orders:read"]}}}},
                  {{"name":"health","match":{{"prefix":"/health"}},"auth":{{"type":"public"}}}},
                  {{"name":"other","match":{{"prefix":"/other"}}}}]}}"#,
            sha("batch-key-1"),
            sha("ci-key-2")
        );
        crate::policy::config::parse(doc.as_bytes()).expect("policy compiles")
    }

    /// Status, problem type, `WWW-Authenticate`, and the request headers after the edits.
    type Sent = (u16, String, Option<String>, Vec<(String, Vec<u8>)>);

    fn send(p: &crate::policy::Policy, target: &str, headers: &[(&str, &str)]) -> Sent {
        use crate::policy::denial::{render, RequestTag};
        let mut all: Vec<(String, Vec<u8>)> =
            vec![(":method".into(), b"GET".to_vec()), (":path".into(), target.as_bytes().to_vec())];
        all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())));
        let head = crate::policy::RequestHead { headers: &all, end_of_stream: Some(true) };
        let d = p.check_head(&head, &crate::policy::authz::NoState, 1_800_000_000);
        match d.outcome {
            Ok(a) => {
                let mut sent = all.clone();
                crate::policy::http::apply_header_ops(&mut sent, &a.headers);
                (200, String::new(), None, sent)
            }
            Err(denial) => {
                let out = render(
                    &denial,
                    &p.rendering,
                    &RequestTag { route: "", method: None, request_id: "r" },
                    None,
                );
                let www = out
                    .response
                    .headers
                    .iter()
                    .find(|(n, _)| n == "www-authenticate")
                    .map(|(_, v)| v.clone());
                (out.response.status, denial.reason.slug().to_string(), www, Vec::new())
            }
        }
    }

    fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    #[test]
    fn a_known_key_passes_as_its_consumer_and_never_reaches_the_upstream() {
        let p = policy();
        let (status, _, _, sent) =
            send(&p, "/orders/1", &[("x-api-key", " batch-key-1 "), ("x-consumer", "admin")]);
        assert_eq!(status, 200);
        assert_eq!(header(&sent, "x-api-key"), None, "the key went upstream");
        assert_eq!(
            header(&sent, "x-consumer"),
            Some(&b"batch"[..]),
            "the consumer header is the key's, not the client's"
        );
        // A public route takes no key, and a client's consumer header is removed there too.
        let (status, _, _, sent) = send(&p, "/health", &[("x-consumer", "admin")]);
        assert_eq!((status, header(&sent, "x-consumer")), (200, None));
    }

    #[test]
    fn missing_unknown_and_underscoped_keys_are_refused() {
        let p = policy();
        let (status, reason, www, _) = send(&p, "/orders/1", &[]);
        assert_eq!(
            (status, reason.as_str(), www.as_deref()),
            (401, "api-key-missing", Some("ApiKey realm=\"api\""))
        );
        let (status, reason, ..) = send(&p, "/orders/1", &[("x-api-key", "")]);
        assert_eq!((status, reason.as_str()), (401, "api-key-missing"));
        let (status, reason, www, _) = send(&p, "/orders/1", &[("x-api-key", "batch-key-0")]);
        assert_eq!((status, reason.as_str(), www.is_some()), (401, "api-key-invalid", true));
        // `ci` is a valid key without the route's scope.
        let (status, reason, ..) = send(&p, "/orders/1", &[("x-api-key", "ci-key-2")]);
        assert_eq!((status, reason.as_str()), (403, "access-denied"));
        // Without `jwt`, a route with no `auth` of its own takes a key too.
        assert_eq!(send(&p, "/other", &[]).0, 401);
        assert_eq!(send(&p, "/other", &[("x-api-key", "ci-key-2")]).0, 200);
        assert_eq!(send(&p, "/unrouted", &[]).0, 401);
    }

    #[test]
    fn a_key_in_the_query_is_refused_even_when_valid() {
        let p = policy();
        for q in ["/orders/1?api_key=batch-key-1", "/orders/1?x-api-key=batch-key-1"] {
            let (status, reason, ..) = send(&p, q, &[("x-api-key", "batch-key-1")]);
            assert_eq!((status, reason.as_str()), (400, "credential-in-query"), "{q}");
        }
    }

    #[test]
    fn an_api_key_route_without_keys_is_refused_at_load() {
        let e = crate::policy::config::parse(
            br#"{"routes":[{"name":"r","match":{"prefix":"/"},"auth":{"type":"api_key"}}]}"#,
        )
        .expect_err("loaded");
        assert_eq!(e.path, "routes[0].auth.type");
        assert!(e.to_string().contains("api_keys"), "{e}");
        let jwks = include_str!("../../tests/fixtures/jwt/jwks.json");
        let doc = format!(
            r#"{{"api_keys":{{"keys":[]}},"jwt":{{"providers":{{"api_key":{{"issuer":"i","audiences":["a"],"algorithms":["RS256"],"local_jwks":{jwks}}}}}}}}}"#
        );
        let e = crate::policy::config::parse(doc.as_bytes()).expect_err("loaded");
        assert_eq!(e.path, "jwt.providers.api_key");
    }

    #[test]
    fn bad_entries_are_refused_with_their_field() {
        let one = sha("k1");
        for (json, path, words) in [
            (r#"{"keys":[{"consumer":"a","sha256":"abc"}]}"#.to_string(), "api_keys.keys[0].sha256", "64 hexadecimal"),
            (
                r#"{"keys":[{"consumer":"a","sha256":"zz00000000000000000000000000000000000000000000000000000000000000"}]}"#.to_string(),
                "api_keys.keys[0].sha256",
                "64 hexadecimal",
            ),
            (format!(r#"{{"keys":[{{"consumer":"","sha256":"{one}"}}]}}"#), "api_keys.keys[0].consumer", "visible"),
            (
                format!(r#"{{"keys":[{{"consumer":"a","sha256":"{one}"}},{{"consumer":"b","sha256":"{one}"}}]}}"#),
                "api_keys.keys[1].sha256",
                "keys[0]",
            ),
            (format!(r#"{{"keys":[{{"consumer":"a","sha256":"{one}","prefix":""}}]}}"#), "api_keys.keys[0].prefix", "1 to 16"),
            (format!(r#"{{"keys":[{{"consumer":"a","sha256":"{one}","scopes":["a b"]}}]}}"#), "api_keys.keys[0].scopes[0]", "scope token"),
            (r#"{"header":"x key","keys":[]}"#.to_string(), "api_keys.header", "header name"),
            (r#"{"consumer_header":"X-Api-Key","keys":[]}"#.to_string(), "api_keys.consumer_header", "differ"),
        ] {
            let e = keys(&json).expect_err(&json);
            assert_eq!(e.path, path, "{json}");
            assert!(e.to_string().contains(words), "{e}");
        }
    }
}
