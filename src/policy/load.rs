//! Whether a configuration loads on a host: parse, compile, then refuse what that host cannot
//! enforce and note what it enforces differently.
//!
//! The module's `on_configure` and the command line's `check` both call [`load`], so a policy
//! the command line accepts for a host is one the module accepts there: the same parse, the
//! same compile, the same capability profile ([`Capabilities`]).

use super::capabilities::{Capabilities, HostKind};
use super::config::{self, ConfigError};
use super::jwt::budget::ClientSource;
use super::jwt::keys::KeySet;
use super::jwt::ProviderKeys;
use super::Policy;

/// How much a [`Note`] matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something is enforced less, or differently, than the configuration may suggest.
    Warn,
    /// Worth knowing; nothing is weakened.
    Info,
}

/// A remark about a configuration that loads (the module logs it once at load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// How much it matters.
    pub level: Level,
    /// The field it is about (`.` for the whole document).
    pub path: String,
    /// What it means, in the user's words.
    pub message: String,
}

impl Note {
    fn warn(path: &str, message: String) -> Note {
        Note { level: Level::Warn, path: path.to_string(), message }
    }
}

/// A configuration compiled for a host.
#[derive(Debug)]
pub struct Loaded {
    /// The compiled policy, adjusted to the host (`rewrite_path`).
    pub policy: Policy,
    /// The host profile it was checked against.
    pub caps: Capabilities,
    /// What the operator should know (in document order).
    pub notes: Vec<Note>,
}

/// Parses and compiles `bytes` for the host the configuration names (`host.kind`), else the
/// one `detected` returns (called only then). A construct the host cannot enforce is an error
/// naming its field, never a silently weaker policy.
pub fn load(bytes: &[u8], detected: impl FnOnce() -> HostKind) -> Result<Loaded, ConfigError> {
    compile(config::parse_document(bytes)?, detected)
}

/// [`load`] for a configuration the caller no longer needs: its bytes are dropped once read,
/// before the compile, so a VM's memory (which keeps its peak) does not hold the text and the
/// compile's work at once.
pub fn load_owned(bytes: Vec<u8>, detected: impl FnOnce() -> HostKind) -> Result<Loaded, ConfigError> {
    let doc = config::parse_document(&bytes)?;
    drop(bytes);
    compile(doc, detected)
}

fn compile(doc: config::Config, detected: impl FnOnce() -> HostKind) -> Result<Loaded, ConfigError> {
    let host = &doc.host.clone();
    let mut policy = Policy::compile(doc)?;
    let caps = Capabilities::for_config(host, detected);
    policy.rewrite_path = caps.rewrite_path;
    // Rewrites this host cannot carry out would forward unredacted data: refuse them.
    if let (Some(field), false) = (policy.rewrites_responses(), caps.body_rewrite) {
        return Err(ConfigError::new(
            field,
            format!(
                "this host ({}) cannot rewrite response bodies, so it cannot be enforced; remove it or run on a host that can",
                caps.kind.name()
            ),
        ));
    }
    // A provider that takes only certificate-bound tokens could never admit one here.
    if caps.client_certificate.is_empty() {
        if let Some(p) =
            policy.jwt.iter().flat_map(|j| j.providers.iter()).find(|p| p.require_certificate_bound)
        {
            return Err(ConfigError::new(
                format!("jwt.providers.{}.require_certificate_bound", p.name),
                format!(
                    "this host ({}) does not show filters the client's TLS certificate, so no token could be checked against it",
                    caps.kind.name()
                ),
            ));
        }
    }
    let mut notes = Vec::new();
    if caps.kind == HostKind::Envoy && host.hold_headers_for_body == Some(false) {
        notes.push(Note::warn(
            "host.hold_headers_for_body",
            "false: request bodies stream to the upstream before they are judged, so the upstream sees the head (and bytes) of a request whose body is then refused".into(),
        ));
    }
    if policy.response.as_ref().is_some_and(|r| r.safe_errors) && !caps.body_rewrite {
        notes.push(Note::warn(
            "response.safe_errors",
            format!(
                "this host ({}) cannot replace response bodies; upstream 5xx bodies pass as sent",
                caps.kind.name()
            ),
        ));
    }
    if policy.decision_latency && caps.kind == HostKind::Apisix {
        notes.push(Note::warn(
            "metrics.decision_latency",
            "APISIX records no metrics (wasm-nginx-module's metric calls do nothing), so nothing is measured there".into(),
        ));
    }
    // Key-set entries that cannot verify anything (an unknown curve) or that no allowed
    // algorithm uses are left out rather than failing the whole set.
    for p in policy.jwt.iter().flat_map(|j| j.providers.iter()) {
        if let ProviderKeys::Local(set) = &p.keys {
            notes.extend(key_set_notes(&p.name, set));
        }
    }
    if policy.jwt.as_ref().and_then(|j| j.budget.as_ref()).is_some_and(|rules| {
        rules.max_failures > 0 && rules.client == ClientSource::Peer && caps.client_address.is_empty()
    }) {
        // Nothing tells clients apart: one shared count would let any client lock out every
        // other's new tokens, so only the per-VM capacity applies.
        notes.push(Note::warn(
            "jwt.verification_budget.max_failures",
            "off: this host reports no client address (set client_header)".into(),
        ));
    }
    if let Some(p) = policy.rate_limits.as_ref().and_then(|r| r.policies.iter().find(|p| p.global)) {
        if !caps.grpc_calls {
            return Err(ConfigError::new(
                format!("rate_limits.policies.{}.global", p.name),
                format!(
                    "this host ({}) has no gRPC callouts to reach a rate-limit service: only local limits work here",
                    caps.kind.name()
                ),
            ));
        }
    }
    if policy.rate_limits.is_some() && !caps.shared_data {
        notes.push(Note::warn(
            "rate_limits",
            format!(
                "this host ({}) has no shared data: each worker counts on its own, so a limit of N allows up to N per worker process",
                caps.kind.name()
            ),
        ));
    }
    Ok(Loaded { policy, caps, notes })
}

/// What a provider's key set left out (never key material): a warning for entries it could
/// not use, an info note for those none of its algorithms needs. For inline sets at load and
/// for fetched sets when they arrive.
pub fn key_set_notes(provider: &str, set: &KeySet) -> Vec<Note> {
    let path = format!("jwt.providers.{provider}");
    let mut notes = Vec::new();
    if !set.skipped.is_empty() {
        notes.push(Note::warn(&path, format!("key-set entries skipped: {}", set.skipped.join("; "))));
    }
    if !set.unused.is_empty() {
        notes.push(Note {
            level: Level::Info,
            path,
            message: format!(
                "key-set entries not prepared (no allowed algorithm uses them): {}",
                set.unused.join("; ")
            ),
        });
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(kind: HostKind, doc: &str) -> Result<Loaded, ConfigError> {
        load(doc.as_bytes(), || kind)
    }

    const RULES: &str = r#"{"response":{"rules":[{"select":["$.ssn"],"action":{"type":"remove"}}]}}"#;

    #[test]
    fn response_rules_are_refused_where_bodies_cannot_be_rewritten() {
        assert!(on(HostKind::Envoy, RULES).is_ok());
        assert!(on(HostKind::Kong, RULES).is_ok());
        let e = on(HostKind::Apisix, RULES).expect_err("APISIX cannot rewrite bodies");
        assert_eq!(e.path, "response.rules");
        assert!(e.message.contains("APISIX"), "{e}");
        // The configuration's own host.kind wins over the detected host.
        let named = r#"{"host":{"kind":"apisix"},"response":{"rules":[{"select":["$.a"],"action":{"type":"remove"}}]}}"#;
        assert!(on(HostKind::Envoy, named).is_err());
    }

    #[test]
    fn certificate_bound_only_providers_are_refused_where_the_certificate_is_not_shown() {
        let doc = r#"{"jwt":{"providers":{"mtls":{"issuer":"https://idp","audiences":["api"],"algorithms":["HS256"],
            "require_certificate_bound":true,
            "local_jwks":{"keys":[{"kty":"oct","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}}},
            "default":{"type":"jwt","providers":["mtls"]}}}"#;
        assert!(on(HostKind::Envoy, doc).is_ok());
        for kind in [HostKind::Kong, HostKind::Apisix] {
            let e = on(kind, doc).expect_err("no client certificate there");
            assert_eq!(e.path, "jwt.providers.mtls.require_certificate_bound");
            assert!(e.message.contains("TLS certificate"), "{e}");
        }
    }

    #[test]
    fn the_detected_host_is_asked_only_when_the_configuration_names_none() {
        let mut asked = false;
        let l = load(br#"{"host":{"kind":"kong"}}"#, || {
            asked = true;
            HostKind::Envoy
        })
        .expect("loads");
        assert!(!asked);
        assert_eq!(l.caps.kind, HostKind::Kong);
        assert!(!l.policy.rewrite_path, "Kong forwards the request line as sent");
        assert!(on(HostKind::Envoy, "{}").expect("loads").policy.rewrite_path);
    }

    #[test]
    fn weaker_enforcement_is_noted() {
        let l = on(HostKind::Envoy, r#"{"host":{"hold_headers_for_body":false}}"#).expect("loads");
        assert_eq!(l.notes.len(), 1);
        assert_eq!(l.notes[0].path, "host.hold_headers_for_body");
        let l = on(HostKind::Apisix, r#"{"response":{}}"#).expect("loads");
        assert!(l.notes.iter().any(|n| n.path == "response.safe_errors"), "{:?}", l.notes);
        assert!(on(HostKind::Envoy, r#"{"response":{}}"#).expect("loads").notes.is_empty());
        let latency = r#"{"metrics":{"decision_latency":true}}"#;
        let l = on(HostKind::Apisix, latency).expect("loads");
        assert_eq!(l.notes.iter().map(|n| n.path.as_str()).collect::<Vec<_>>(), ["metrics.decision_latency"]);
        assert!(on(HostKind::Kong, latency).expect("loads").notes.is_empty());
        let limited =
            r#"{"rate_limits":{"policies":{"a":{"requests":1,"window_seconds":1,"key":{"type":"route"}}}}}"#;
        let l = on(HostKind::Apisix, limited).expect("loads");
        assert_eq!(l.notes.iter().map(|n| n.path.as_str()).collect::<Vec<_>>(), ["rate_limits"]);
        assert!(on(HostKind::Envoy, limited).expect("loads").notes.is_empty());
        assert!(on(HostKind::Kong, limited).expect("loads").notes.is_empty());
    }
}
