//! JWT validation to RFC 7519, RFC 8725 and RFC 9068, split the way Envoy's `jwt_authn` is:
//!
//! - [`extract`]: where a token comes from;
//! - [`token`]: parsing a compact JWS without trusting it;
//! - [`alg`] and [`keys`]: the algorithm allowlist, key selection and signature check;
//! - [`claims`]: `iss`, `aud`, `exp`, `nbf`, `iat`, lifetime and `typ`;
//! - [`jwks`], [`cache`], [`budget`] and [`state`]: remote key sets, the verified-token cache,
//!   the failed-verification budget, and the per-VM [`state::State`] that holds them;
//! - this module: a [`Provider`] compiled from config, and [`Provider::verify`], which runs the
//!   steps in order and says why a token failed.
//!
//! Header parameters that name keys elsewhere (`jku`, `x5u`, `jwk`, `x5c`) are never used:
//! keys come only from the provider's configured key set. A `crit` header is refused, since
//! api-guard understands no extensions (RFC 7515 §4.1.11).

pub mod alg;
pub mod budget;
pub mod cache;
pub mod claims;
pub mod dpop;
pub mod ecdsa;
pub mod extract;
pub mod jwks;
pub mod keys;
pub mod rsa;
pub mod state;
pub mod token;

use serde_json::{Map, Value};

use alg::{Alg, KeyKind};
use claims::{ClaimError, ClaimRules};
use std::rc::Rc;

use extract::Source;
use jwks::RemoteSpec;
use keys::KeySet;
use token::ParseError;

use super::config::{ConfigError, ProviderConfig, RemoteJwksConfig};

/// Default largest token, in bytes: room for IdP tokens with many group or role claims
/// (10–20 KB is seen), well inside Envoy's default 60 KiB request-header limit.
pub const DEFAULT_MAX_TOKEN_BYTES: u32 = 32_768;
/// Default clock skew, in seconds.
pub const DEFAULT_CLOCK_SKEW: u32 = 60;

/// Why a token was not accepted. All of these are answered `401 invalid_token`; the variant
/// goes to the metric and the log, never to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// The token could not be parsed.
    Malformed(ParseError),
    /// `alg` missing, unknown, `none`, or not allowed for this provider.
    Algorithm,
    /// A `crit` header parameter.
    Critical,
    /// `kid` is not a string.
    KeyId,
    /// No key of the set fits the token's `kid` and `alg`.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// A registered claim is wrong.
    Claims(ClaimError),
    /// The provider's remote keys are not available (503, not 401).
    KeysUnavailable,
    /// Not checked: the client has spent its failed-verification budget (429, not 401);
    /// it may try again in this many seconds.
    Budget(u32),
    /// Not checked: the VM has run as many signature checks this second as it may (503).
    Overload,
    /// The token is bound to a TLS client certificate (`cnf.x5t#S256`) other than the
    /// connection's, or its thumbprint is not one.
    CertificateMismatch,
    /// The token is bound to a TLS client certificate and the connection presented none.
    NoClientCertificate,
    /// The provider requires certificate-bound tokens and this one is not bound.
    NotCertificateBound,
    /// A DPoP-bound token (`cnf.jkt`) sent with the Bearer scheme (RFC 9449 §7.1).
    DpopBoundAsBearer,
    /// The DPoP scheme with a token that is not DPoP-bound.
    DpopUnbound,
    /// The provider requires DPoP and the token came as a Bearer token.
    DpopRequired,
    /// The introspection endpoint says the token is not active (unknown, expired, revoked).
    Inactive,
    /// The introspection endpoint gave no usable answer (503, not 401).
    IntrospectionUnavailable,
}

impl TokenError {
    /// A short stable name for logs and for the `cause` label (see [`CAUSES`]).
    pub fn name(self) -> &'static str {
        match self {
            TokenError::Malformed(ParseError::TooLarge) => "too_large",
            TokenError::Malformed(_) | TokenError::KeyId => "malformed",
            TokenError::Algorithm => "algorithm",
            TokenError::Critical => "crit",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Signature => "signature",
            TokenError::Claims(ClaimError::Expired) => "expired",
            TokenError::Claims(ClaimError::MissingExpiration) => "exp_missing",
            TokenError::Claims(ClaimError::NotYetValid) => "not_yet_valid",
            TokenError::Claims(ClaimError::IssuedInFuture) => "iat_in_future",
            TokenError::Claims(ClaimError::Lifetime) => "lifetime_too_long",
            TokenError::Claims(ClaimError::Malformed) => "claim_type",
            TokenError::Claims(ClaimError::Issuer) => "issuer",
            TokenError::Claims(ClaimError::Audience) => "audience",
            TokenError::Claims(ClaimError::TokenType) => "token_type",
            TokenError::KeysUnavailable => "keys_unavailable",
            TokenError::Budget(_) => "verification_budget",
            TokenError::Overload => "verification_overload",
            TokenError::CertificateMismatch => "certificate_mismatch",
            TokenError::NoClientCertificate => "no_client_certificate",
            TokenError::NotCertificateBound => "not_certificate_bound",
            TokenError::DpopBoundAsBearer => "dpop_bound_as_bearer",
            TokenError::DpopUnbound => "dpop_unbound",
            TokenError::DpopRequired => "dpop_required",
            TokenError::Inactive => "inactive",
            TokenError::IntrospectionUnavailable => "introspection_unavailable",
        }
    }

    /// Whether finding this cost a signature check (what the failed-verification budget counts).
    pub fn cost_a_signature(self) -> bool {
        self == TokenError::Signature
    }
}

/// Every cause of a `401 invalid_token` (the `cause` label of its counter).
pub const CAUSES: &[&str] = &[
    "too_large",
    "malformed",
    "algorithm",
    "crit",
    "unknown_key",
    "signature",
    "expired",
    "exp_missing",
    "not_yet_valid",
    "iat_in_future",
    "lifetime_too_long",
    "claim_type",
    "issuer",
    "audience",
    "token_type",
    "certificate_mismatch",
    "no_client_certificate",
    "not_certificate_bound",
    "dpop_bound_as_bearer",
    "dpop_unbound",
    "dpop_required",
    "inactive",
];

/// A token that passed every check that costs no signature: its parts, its `alg` and `kid`.
#[derive(Debug, Clone)]
pub struct Inspected<'t> {
    token: token::Untrusted<'t>,
    alg: Alg,
    kid: Option<String>,
}

/// A claim copied into an upstream header.
#[derive(Debug, Clone)]
pub struct ClaimHeader {
    /// Claim path (split on `.`).
    pub path: Vec<String>,
    /// Lower-case header name.
    pub header: String,
}

/// A provider, compiled: everything needed to verify its tokens.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Config name.
    pub name: String,
    /// Allowed algorithms.
    pub algorithms: Vec<Alg>,
    /// Where the keys come from.
    pub keys: ProviderKeys,
    /// Registered-claim rules.
    pub rules: ClaimRules,
    /// Token locations.
    pub sources: Vec<Source>,
    /// Claims to forward.
    pub claim_headers: Vec<ClaimHeader>,
    /// Keep the token upstream.
    pub forward: bool,
    /// Header for the verified payload.
    pub payload_header: Option<String>,
    /// Token size cap.
    pub max_token_bytes: usize,
    /// Only certificate-bound tokens (RFC 8705) are accepted.
    pub require_certificate_bound: bool,
    /// DPoP rules, where DPoP is on.
    pub dpop: Option<dpop::DpopRules>,
}

/// Where a provider's keys come from.
#[derive(Debug, Clone)]
pub enum ProviderKeys {
    /// Inline keys, compiled at load.
    Local(Rc<KeySet>),
    /// A key set fetched from a URL and cached per VM.
    Remote(Box<RemoteSpec>),
    /// No keys: opaque tokens, asked about at an RFC 7662 introspection endpoint.
    Introspect(Box<IntrospectSpec>),
}

/// Where and how opaque tokens are introspected (compiled from `introspection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectSpec {
    /// The endpoint: URL parts, cluster, timeout.
    pub target: RemoteSpec,
    /// The `Authorization` header value (HTTP Basic with the client's credentials).
    pub authorization: String,
    /// Longest reuse of an active answer, seconds.
    pub cache_seconds: i64,
    /// Reuse of an inactive answer, seconds.
    pub inactive_seconds: i64,
}

/// An introspection request for the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectCall {
    /// The cluster, or `host:port` where the host has no clusters.
    pub upstream: String,
    /// Headers, pseudo-headers first.
    pub headers: Vec<(String, String)>,
    /// `token=…` (form-encoded).
    pub body: Vec<u8>,
    /// Milliseconds.
    pub timeout_ms: u32,
}

/// Default remote-JWKS cache duration, seconds.
pub const DEFAULT_CACHE_DURATION: u32 = 600;
/// Default shortest interval between two fetches, seconds.
pub const DEFAULT_MIN_REFETCH: u32 = 30;
/// Default bound on serving stale keys, seconds.
pub const DEFAULT_MAX_STALE: u32 = 86_400;

fn remote_spec(cfg: &RemoteJwksConfig, algorithms: &[Alg], at: &str) -> Result<RemoteSpec, ConfigError> {
    let uri = &cfg.http_uri.uri;
    let (scheme, authority, path, host_port) = jwks::split_url(uri).ok_or_else(|| {
        ConfigError::new(format!("{at}.http_uri.uri"), "must be an absolute http:// or https:// URL")
    })?;
    if cfg.http_uri.cluster.as_ref().is_some_and(String::is_empty) {
        return Err(ConfigError::new(format!("{at}.http_uri.cluster"), "must not be empty"));
    }
    let timeout_ms = u64::from(cfg.http_uri.timeout_ms.unwrap_or(5000));
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(format!("{at}.http_uri.timeout_ms"), "must be between 1 and 60000"));
    }
    let cache_duration = i64::from(cfg.cache_duration_seconds.unwrap_or(DEFAULT_CACHE_DURATION));
    let min_refetch_interval = i64::from(cfg.min_refetch_interval_seconds.unwrap_or(DEFAULT_MIN_REFETCH));
    if cache_duration < 1 || min_refetch_interval < 1 {
        return Err(ConfigError::new(
            at.to_string(),
            "cache and refetch intervals must be at least 1 second",
        ));
    }
    Ok(RemoteSpec {
        uri: uri.clone(),
        cluster: cfg.http_uri.cluster.clone(),
        host_port,
        authority: authority.to_string(),
        path: path.to_string(),
        scheme: scheme.to_string(),
        timeout_ms,
        cache_duration,
        min_refetch_interval,
        max_stale: i64::from(cfg.max_stale_seconds.unwrap_or(DEFAULT_MAX_STALE)),
        algorithms: algorithms.to_vec(),
        discover: None,
    })
}

/// A verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Its claims.
    pub claims: Map<String, Value>,
    /// Its raw payload (JSON bytes).
    pub payload: Vec<u8>,
}

/// Compiles a provider's `introspection` section.
fn introspect_spec(
    cfg: &super::config::IntrospectionConfig,
    at: &str,
) -> Result<IntrospectSpec, ConfigError> {
    use base64::Engine;
    let as_remote = super::config::RemoteJwksConfig {
        http_uri: super::config::HttpUriConfig {
            uri: cfg.uri.clone(),
            cluster: cfg.cluster.clone(),
            timeout_ms: Some(cfg.timeout_ms.unwrap_or(2000)),
        },
        cache_duration_seconds: None,
        min_refetch_interval_seconds: None,
        max_stale_seconds: None,
    };
    let target = remote_spec(&as_remote, &[], at)
        .map_err(|e| ConfigError::new(e.path.replace(".http_uri.", "."), e.message))?;
    if cfg.client_id.is_empty() || cfg.client_id.contains(':') {
        return Err(ConfigError::new(format!("{at}.client_id"), "must be a client id without `:`"));
    }
    if cfg.client_secret.is_empty() {
        return Err(ConfigError::new(format!("{at}.client_secret"), "must not be empty"));
    }
    let cache_seconds = cfg.cache_seconds.unwrap_or(300);
    if !(1..=3600).contains(&cache_seconds) {
        return Err(ConfigError::new(format!("{at}.cache_seconds"), "must be from 1 to 3600"));
    }
    let inactive = cfg.inactive_cache_seconds.unwrap_or(10);
    if !(1..=300).contains(&inactive) {
        return Err(ConfigError::new(format!("{at}.inactive_cache_seconds"), "must be from 1 to 300"));
    }
    // RFC 7617 with RFC 6749 §2.3.1's form-encoding of the id and secret.
    let credentials = format!("{}:{}", form_encode(&cfg.client_id), form_encode(&cfg.client_secret));
    let authorization = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
    Ok(IntrospectSpec {
        target,
        authorization,
        cache_seconds: i64::from(cache_seconds),
        inactive_seconds: i64::from(inactive),
    })
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => char::from(b).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Provider {
    /// The request asking the endpoint about `token`, where this provider introspects.
    pub fn introspection_call(&self, token: &str, clusters: bool) -> Option<IntrospectCall> {
        let ProviderKeys::Introspect(spec) = &self.keys else { return None };
        let t = &spec.target;
        Some(IntrospectCall {
            upstream: t.upstream(clusters).to_string(),
            headers: vec![
                (":method".into(), "POST".into()),
                (":path".into(), t.path.clone()),
                (":authority".into(), t.authority.clone()),
                (":scheme".into(), t.scheme.clone()),
                ("authorization".into(), spec.authorization.clone()),
                ("content-type".into(), "application/x-www-form-urlencoded".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: format!("token={}&token_type_hint=access_token", form_encode(token)).into_bytes(),
            timeout_ms: u32::try_from(t.timeout_ms).unwrap_or(u32::MAX),
        })
    }

    /// An introspection answer (RFC 7662 §2.2) as the token's verified claims, with when to
    /// stop reusing it; `Err(Inactive)` for an inactive token, another error for an answer
    /// that is not usable or names another issuer or audience.
    pub fn introspected(
        &self,
        status: Option<u16>,
        body: Option<&[u8]>,
        now: i64,
    ) -> Result<(Verified, i64), TokenError> {
        let ProviderKeys::Introspect(spec) = &self.keys else {
            return Err(TokenError::IntrospectionUnavailable);
        };
        let (Some(200), Some(body)) = (status, body) else {
            return Err(TokenError::IntrospectionUnavailable);
        };
        let Ok(Value::Object(claims)) = crate::policy::json::parse(body) else {
            return Err(TokenError::IntrospectionUnavailable);
        };
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(TokenError::Inactive);
        }
        let skew = self.rules.skew;
        let exp = claims.get("exp").and_then(Value::as_i64);
        if exp.is_some_and(|e| e.saturating_add(skew) <= now) {
            return Err(TokenError::Claims(ClaimError::Expired));
        }
        if claims.get("nbf").and_then(Value::as_i64).is_some_and(|n| n.saturating_sub(skew) > now) {
            return Err(TokenError::Claims(ClaimError::NotYetValid));
        }
        if claims.get("iss").is_some_and(|i| i.as_str() != Some(self.rules.issuer.as_str())) {
            return Err(TokenError::Claims(ClaimError::Issuer));
        }
        let ours = |a: &Value| a.as_str().is_some_and(|a| self.rules.audiences.iter().any(|x| x == a));
        let aud_ok = match claims.get("aud") {
            None => true,
            Some(Value::Array(list)) => list.iter().any(ours),
            Some(a) => ours(a),
        };
        if !aud_ok {
            return Err(TokenError::Claims(ClaimError::Audience));
        }
        let until = now.saturating_add(spec.cache_seconds).min(exp.unwrap_or(i64::MAX));
        let payload = Value::Object(claims.clone()).to_string().into_bytes();
        Ok((Verified { claims, payload }, until))
    }

    /// How long an inactive answer is reused, seconds (introspecting providers only).
    pub fn inactive_seconds(&self) -> i64 {
        match &self.keys {
            ProviderKeys::Introspect(spec) => spec.inactive_seconds,
            _ => 0,
        }
    }
}

/// Compiles a provider's `dpop` section.
fn dpop_rules(cfg: &super::config::DpopConfig, at: &str) -> Result<dpop::DpopRules, ConfigError> {
    let algorithms = cfg
        .algorithms
        .clone()
        .unwrap_or_else(|| vec![Alg::ES256, Alg::ES384, Alg::RS256, Alg::PS256, Alg::EdDSA]);
    if let Some(i) = algorithms.iter().position(|a| a.key_kind() == alg::KeyKind::Secret) {
        return Err(ConfigError::new(
            format!("{at}.algorithms[{i}]"),
            "a DPoP proof is signed with a public key: HMAC cannot be one",
        ));
    }
    if algorithms.is_empty() {
        return Err(ConfigError::new(format!("{at}.algorithms"), "must list at least one algorithm"));
    }
    let max_age = cfg.max_age_seconds.unwrap_or(60);
    if !(1..=3600).contains(&max_age) {
        return Err(ConfigError::new(format!("{at}.max_age_seconds"), "must be from 1 to 3600"));
    }
    let origin = match &cfg.origin {
        Some(o) => {
            let (scheme, rest) = o.split_once("://").unwrap_or(("", ""));
            if !matches!(scheme, "https" | "http") || rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
                return Err(ConfigError::new(
                    format!("{at}.origin"),
                    "must be an origin: scheme and host, e.g. https://api.example.com",
                ));
            }
            Some(o.clone())
        }
        None => None,
    };
    Ok(dpop::DpopRules {
        required: cfg.mode == super::config::DpopMode::Required,
        algorithms,
        max_age: i64::from(max_age),
        origin,
    })
}

pub(crate) fn header_name(name: &str, at: String) -> Result<String, ConfigError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ConfigError::new(at, "must be a header name ([A-Za-z0-9_-]+)"));
    }
    Ok(name.to_ascii_lowercase())
}

impl Provider {
    /// Compiles a provider; `at` is its JSON path (`jwt.providers.NAME`).
    pub fn compile(name: &str, cfg: &ProviderConfig, at: &str) -> Result<Provider, ConfigError> {
        if cfg.issuer.is_empty() {
            return Err(ConfigError::new(format!("{at}.issuer"), "must not be empty"));
        }
        if cfg.audiences.is_empty() || cfg.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::new(
                format!("{at}.audiences"),
                "must list at least one non-empty audience (RFC 8725 §3.9)",
            ));
        }
        if cfg.algorithms.is_empty() && cfg.introspection.is_none() {
            return Err(ConfigError::new(format!("{at}.algorithms"), "must list at least one algorithm"));
        }
        let hmac = cfg.algorithms.iter().filter(|a| a.key_kind() == KeyKind::Secret).count();
        if hmac != 0 && hmac != cfg.algorithms.len() {
            return Err(ConfigError::new(
                format!("{at}.algorithms"),
                "cannot mix HMAC (HS*) with asymmetric algorithms: that is how algorithm confusion starts",
            ));
        }
        let discovered = match (&cfg.introspection, &cfg.discovery) {
            (Some(i), None) if cfg.local_jwks.is_none() && cfg.remote_jwks.is_none() => {
                Some(ProviderKeys::Introspect(Box::new(introspect_spec(i, &format!("{at}.introspection"))?)))
            }
            (Some(_), _) => {
                return Err(ConfigError::new(
                    at.to_string(),
                    "needs exactly one of `local_jwks`, `remote_jwks`, `discovery` and `introspection`",
                ))
            }
            (None, discovery) => match discovery {
                Some(d) if cfg.local_jwks.is_none() && cfg.remote_jwks.is_none() => {
                    let dat = format!("{at}.discovery");
                    if hmac != 0 {
                        return Err(ConfigError::new(
                            dat,
                            "HMAC secrets are never fetched: use local_jwks for HS* algorithms",
                        ));
                    }
                    let uri = d.uri.clone().unwrap_or_else(|| {
                        format!("{}/.well-known/openid-configuration", cfg.issuer.trim_end_matches('/'))
                    });
                    let as_remote = super::config::RemoteJwksConfig {
                        http_uri: super::config::HttpUriConfig {
                            uri,
                            cluster: d.cluster.clone(),
                            timeout_ms: d.timeout_ms,
                        },
                        cache_duration_seconds: d.cache_duration_seconds,
                        min_refetch_interval_seconds: d.min_refetch_interval_seconds,
                        max_stale_seconds: d.max_stale_seconds,
                    };
                    let spec = remote_spec(&as_remote, &cfg.algorithms, &dat)
                        .map_err(|e| ConfigError::new(e.path.replace(".http_uri.", "."), e.message))?;
                    Some(ProviderKeys::Remote(Box::new(RemoteSpec {
                        discover: Some(cfg.issuer.clone()),
                        ..spec
                    })))
                }
                Some(_) => {
                    return Err(ConfigError::new(
                        at.to_string(),
                        "needs exactly one of `local_jwks`, `remote_jwks` and `discovery`",
                    ))
                }
                None => None,
            },
        };
        let keys = match (discovered, &cfg.local_jwks, &cfg.remote_jwks) {
            (Some(keys), _, _) => keys,
            (None, Some(doc), None) => {
                // Judged on the document: the compiled set leaves out keys the algorithms cannot use.
                let has_secret = doc.get("keys").and_then(Value::as_array).is_some_and(|keys| {
                    keys.iter().any(|k| k.get("kty").and_then(Value::as_str) == Some("oct"))
                });
                if hmac == 0 && has_secret {
                    return Err(ConfigError::new(
                        format!("{at}.local_jwks"),
                        "holds a shared secret (oct) for a provider with asymmetric algorithms",
                    ));
                }
                // Every key it keeps fits one of the algorithms; a set left with none is an error.
                let set = KeySet::from_jwks_for(doc, &cfg.algorithms)
                    .map_err(|e| ConfigError::new(format!("{at}.local_jwks"), e.0))?;
                ProviderKeys::Local(Rc::new(set))
            }
            (None, None, Some(remote)) => {
                if hmac != 0 {
                    return Err(ConfigError::new(
                        format!("{at}.remote_jwks"),
                        "HMAC secrets are never fetched: use local_jwks for HS* algorithms",
                    ));
                }
                ProviderKeys::Remote(Box::new(remote_spec(
                    remote,
                    &cfg.algorithms,
                    &format!("{at}.remote_jwks"),
                )?))
            }
            _ => {
                return Err(ConfigError::new(
                    at.to_string(),
                    "needs exactly one of `local_jwks`, `remote_jwks` and `discovery`",
                ))
            }
        };

        let mut sources = Vec::new();
        for (i, h) in cfg.from_headers.iter().flatten().enumerate() {
            let name = header_name(&h.name, format!("{at}.from_headers[{i}].name"))?;
            sources.push(Source::Header { name, prefix: h.value_prefix.clone().unwrap_or_default() });
        }
        for (i, c) in cfg.from_cookies.iter().flatten().enumerate() {
            if c.is_empty() || c.contains([';', '=', ' ']) {
                return Err(ConfigError::new(format!("{at}.from_cookies[{i}]"), "must be a cookie name"));
            }
            sources.push(Source::Cookie(c.clone()));
        }
        for (i, p) in cfg.from_params.iter().flatten().enumerate() {
            if p.is_empty() || p.contains(['&', '=', ';']) {
                return Err(ConfigError::new(format!("{at}.from_params[{i}]"), "must be a parameter name"));
            }
            sources.push(Source::Param(p.clone()));
        }
        if sources.is_empty() {
            sources = extract::default_sources();
        }
        let dpop = cfg.dpop.as_ref().map(|d| dpop_rules(d, &format!("{at}.dpop"))).transpose()?;
        if dpop.is_some() {
            // RFC 9449 §7.1: `Authorization: DPoP <token>`.
            sources.push(Source::Header { name: "authorization".into(), prefix: "DPoP ".into() });
        }

        let mut claim_headers = Vec::new();
        for (i, c) in cfg.claim_to_headers.iter().flatten().enumerate() {
            if c.claim.is_empty() || c.claim.split('.').any(str::is_empty) {
                return Err(ConfigError::new(
                    format!("{at}.claim_to_headers[{i}].claim"),
                    "must be a claim name",
                ));
            }
            let header = header_name(&c.header, format!("{at}.claim_to_headers[{i}].header"))?;
            claim_headers
                .push(ClaimHeader { path: c.claim.split('.').map(str::to_string).collect(), header });
        }
        let payload_header = match &cfg.forward_payload_header {
            Some(h) => Some(header_name(h, format!("{at}.forward_payload_header"))?),
            None => None,
        };
        let max_token_bytes = cfg.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
        if !(256..=1 << 20).contains(&max_token_bytes) {
            return Err(ConfigError::new(format!("{at}.max_token_bytes"), "must be between 256 and 1048576"));
        }
        let token_type = cfg.token_type.as_deref().map(claims::normal_type);
        if token_type.as_deref() == Some("") {
            return Err(ConfigError::new(format!("{at}.token_type"), "must not be empty"));
        }
        Ok(Provider {
            name: name.to_string(),
            algorithms: cfg.algorithms.clone(),
            keys,
            rules: ClaimRules {
                issuer: cfg.issuer.clone(),
                audiences: cfg.audiences.clone(),
                skew: i64::from(cfg.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW)),
                require_expiration: cfg.require_expiration.unwrap_or(true),
                max_lifetime: cfg.max_lifetime_seconds.map(i64::from),
                token_type,
            },
            sources,
            claim_headers,
            forward: cfg.forward.unwrap_or(false),
            payload_header,
            max_token_bytes: max_token_bytes as usize,
            require_certificate_bound: cfg.require_certificate_bound,
            dpop,
        })
    }

    /// Every check that costs no signature, in order: size and shape, `alg` against the
    /// allowlist, `iss`, `crit`, `kid`, then `typ` and the registered claims (`aud`, `exp`,
    /// `nbf`, `iat`, lifetime, claim types). Claims are judged before the signature is: a
    /// token they refuse is refused whatever its signature, so a forgery that fails them costs
    /// no signature check; one that passes them is still checked in full.
    pub fn inspect<'t>(&self, token: &'t str, now: i64) -> Result<Inspected<'t>, TokenError> {
        let t = token::parse(token, self.max_token_bytes).map_err(TokenError::Malformed)?;
        let alg = t
            .header_str("alg")
            .and_then(Alg::parse)
            .filter(|a| self.algorithms.contains(a))
            .ok_or(TokenError::Algorithm)?;
        if t.signature.is_empty() {
            return Err(TokenError::Malformed(ParseError::Segments));
        }
        if t.claims.get("iss").and_then(Value::as_str) != Some(self.rules.issuer.as_str()) {
            return Err(TokenError::Claims(ClaimError::Issuer));
        }
        if t.header.contains_key("crit") {
            return Err(TokenError::Critical);
        }
        let kid = match t.header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(TokenError::KeyId),
        };
        self.rules.check(&t.header, &t.claims, now).map_err(TokenError::Claims)?;
        Ok(Inspected { token: t, alg, kid })
    }

    /// The key of `keys` an inspected token names (no key for its `kid` and `alg`: refused).
    pub fn key<'k>(&self, inspected: &Inspected<'_>, keys: &'k KeySet) -> Result<&'k keys::Key, TokenError> {
        keys.select(inspected.alg, inspected.kid.as_deref()).ok_or(TokenError::UnknownKey)
    }

    /// The signature check: the one step that costs real CPU.
    pub fn check_signature(&self, inspected: Inspected<'_>, key: &keys::Key) -> Result<Verified, TokenError> {
        let t = inspected.token;
        if !inspected.alg.verify(&key.material, t.signing_input.as_bytes(), &t.signature) {
            return Err(TokenError::Signature);
        }
        Ok(Verified { claims: t.claims, payload: t.payload })
    }

    /// Verifies `token` with `keys` at time `now` (Unix seconds): [`Self::inspect`], then
    /// [`Self::key`], then [`Self::check_signature`].
    pub fn verify(&self, token: &str, keys: &KeySet, now: i64) -> Result<Verified, TokenError> {
        let inspected = self.inspect(token, now)?;
        let key = self.key(&inspected, keys)?;
        self.check_signature(inspected, key)
    }
}

/// Looks up a claim by path (`a.b.c`).
pub fn claim<'c>(claims: &'c Map<String, Value>, path: &[String]) -> Option<&'c Value> {
    let (first, rest) = path.split_first()?;
    let mut v = claims.get(first)?;
    for p in rest {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// The header value for a claim: strings, numbers and booleans as text; arrays of those joined
/// with `,`. `None` for objects, nulls, or values that are not safe in a header.
pub fn claim_header_value(v: &Value) -> Option<String> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    let text = match v {
        Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>()?.join(","),
        other => scalar(other)?,
    };
    // Header values must not carry control characters (no header injection).
    text.bytes().all(|b| b >= 0x20 && b != 0x7f).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn introspecting(extra: &str) -> Result<Provider, ConfigError> {
        let cfg: ProviderConfig = serde_json::from_str(&format!(
            r#"{{"issuer":"https://idp","audiences":["api"],"introspection":{{"uri":"https://idp/introspect",
                "client_id":"gw","client_secret":"s e/cret"{extra}}}}}"#
        ))
        .unwrap();
        Provider::compile("p", &cfg, "jwt.providers.p")
    }

    #[test]
    fn introspection_answers_are_judged_like_tokens() {
        use base64::Engine;
        let p = introspecting("").unwrap();
        let call = p.introspection_call("tok en+/", false).unwrap();
        assert_eq!(call.upstream, "idp:443");
        assert_eq!(call.body, b"token=tok+en%2B%2F&token_type_hint=access_token");
        // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
        let basic = call.headers.iter().find(|(n, _)| n == "authorization").unwrap().1.clone();
        assert_eq!(
            basic,
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("gw:s+e%2Fcret"))
        );
        let now = 1_800_000_000;
        let judge = |body: serde_json::Value| {
            p.introspected(Some(200), Some(body.to_string().as_bytes()), now)
                .map(|(v, until)| (v.claims["sub"].clone(), until))
        };
        assert_eq!(judge(json!({"active": true, "sub": "u", "exp": now + 60})), Ok((json!("u"), now + 60)));
        assert_eq!(
            judge(json!({"active": true, "sub": "u", "aud": ["x", "api"], "iss": "https://idp"})),
            Ok((json!("u"), now + 300))
        );
        assert_eq!(judge(json!({"active": false})), Err(TokenError::Inactive));
        assert_eq!(judge(json!({"active": "true"})), Err(TokenError::Inactive));
        assert_eq!(
            judge(json!({"active": true, "iss": "https://other"})),
            Err(TokenError::Claims(ClaimError::Issuer))
        );
        assert_eq!(
            judge(json!({"active": true, "aud": "other"})),
            Err(TokenError::Claims(ClaimError::Audience))
        );
        assert_eq!(
            judge(json!({"active": true, "exp": now - 120})),
            Err(TokenError::Claims(ClaimError::Expired))
        );
        assert_eq!(
            p.introspected(Some(500), Some(b"{}"), now).map(|_| ()),
            Err(TokenError::IntrospectionUnavailable)
        );
        assert_eq!(
            p.introspected(Some(200), Some(b"not json"), now).map(|_| ()),
            Err(TokenError::IntrospectionUnavailable)
        );
        assert_eq!(p.introspected(None, None, now).map(|_| ()), Err(TokenError::IntrospectionUnavailable));
        for (extra, path) in [
            (r#","cache_seconds":0"#, "jwt.providers.p.introspection.cache_seconds"),
            (r#","inactive_cache_seconds":301"#, "jwt.providers.p.introspection.inactive_cache_seconds"),
            (r#","cluster":"""#, "jwt.providers.p.introspection.cluster"),
        ] {
            assert_eq!(introspecting(extra).map(|_| ()).unwrap_err().path, path, "{extra}");
        }
    }

    #[test]
    fn claim_paths_and_header_values() {
        let c = json!({"sub": "u", "realm_access": {"roles": ["a", "b"]}, "n": 3, "ok": true, "o": {}, "bad": "x\r\ny"});
        let c = c.as_object().unwrap();
        let path = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(claim(c, &path("realm_access.roles")), Some(&json!(["a", "b"])));
        assert_eq!(claim(c, &path("realm_access.nope")), None);
        assert_eq!(claim(c, &path("sub.x")), None);
        assert_eq!(claim_header_value(&json!(["a", "b"])).as_deref(), Some("a,b"));
        assert_eq!(claim_header_value(&json!(3)).as_deref(), Some("3"));
        assert_eq!(claim_header_value(&json!(true)).as_deref(), Some("true"));
        assert_eq!(claim_header_value(&json!({})), None);
        assert_eq!(claim_header_value(&json!([{}])), None);
        assert_eq!(claim_header_value(&c["bad"]), None);
    }
}
