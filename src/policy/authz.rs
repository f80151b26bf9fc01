//! Who may call a route: compiled requirements (public, deny, or a verified JWT with scopes,
//! claim conditions and path-parameter bindings), and the one function that judges a request
//! against them. Missing or invalid tokens become 401s, insufficient scope or failed
//! conditions 403s (see [`super::denial`]).

use std::rc::Rc;

use serde_json::Value;

use super::apikey::ApiKeys;
use super::config::{AuthConfig, ConfigError, JwtConfig, VerificationBudgetConfig};
use super::denial::{Denial, Reason};
use super::http::{HeaderOp, RequestHead};
use super::jwt::budget::{BudgetRules, ClientSource, Throttle};
use super::jwt::claims::ClaimError;
use super::jwt::extract::{self, Source};
use super::jwt::jwks::Availability;
pub use super::jwt::state::{NoState, VerifyState};
use super::jwt::{self, Provider, ProviderKeys, TokenError, Verified};
use super::route::PathPattern;

/// A claim condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The claim equals the value.
    Equals(Value),
    /// The claim equals one of the values.
    OneOf(Vec<Value>),
    /// The claim is an array holding the value, or a space-delimited string holding the word.
    Contains(Value),
}

/// A condition on one claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimCondition {
    /// Claim path.
    pub path: Vec<String>,
    /// What must hold.
    pub condition: Condition,
}

/// A path parameter that must equal a claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Template parameter name.
    pub param: String,
    /// Claim path.
    pub path: Vec<String>,
}

/// The JWT part of a requirement.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtRule {
    /// Indexes into [`JwtPolicy::providers`].
    pub providers: Vec<usize>,
    /// One token per provider (`true`) or one from any (`false`).
    pub require_all: bool,
    /// Scopes that must all be granted.
    pub scopes: Vec<String>,
    /// The `scope` value of a 403 challenge (the scopes, space-joined).
    pub scope_challenge: String,
    /// Claim conditions.
    pub claims: Vec<ClaimCondition>,
    /// Parameter bindings.
    pub bind: Vec<Binding>,
}

/// A compiled requirement.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    /// No token needed.
    Public,
    /// Always refused.
    Deny,
    /// A verified JWT.
    Jwt(JwtRule),
    /// An API key from `api_keys`, granting these scopes (all of them).
    ApiKey(Vec<String>),
}

/// All JWT settings, compiled.
#[derive(Debug, Clone, Default)]
pub struct JwtPolicy {
    /// Providers, in name order.
    pub providers: Vec<Provider>,
    /// Requirement for routes without their own.
    pub default: Option<Requirement>,
    /// `WWW-Authenticate` realm.
    pub realm: String,
    /// Verified-token cache size per VM.
    pub token_cache_size: usize,
    /// The failed-verification budget; `None` when turned off.
    pub budget: Option<BudgetRules>,
    /// Headers removed from every request before anything is forwarded (claim and payload
    /// headers), so a client cannot pose as a verified caller.
    pub scrub_headers: Vec<String>,
}

/// Default signature checks per second per VM for over-budget addresses on fresh connections:
/// about a tenth of a core for RS256 under V8, room for the users behind an attacker's address
/// while bounding an attacker that opens a connection per forgery.
pub const DEFAULT_MAX_CHECKS_PER_SECOND: u32 = 1000;

/// Compiles `jwt.verification_budget` (absent: the defaults).
fn compile_budget(cfg: VerificationBudgetConfig) -> Result<Option<BudgetRules>, ConfigError> {
    let at = "jwt.verification_budget";
    let max_failures = cfg.max_failures.unwrap_or(20);
    let window = cfg.window_seconds.unwrap_or(10);
    if !(1..=3600).contains(&window) {
        return Err(ConfigError::new(format!("{at}.window_seconds"), "must be between 1 and 3600"));
    }
    let client = match cfg.client_header {
        Some(h)
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            return Err(ConfigError::new(format!("{at}.client_header"), "must be a header name"));
        }
        Some(h) => ClientSource::Header {
            name: h.to_ascii_lowercase(),
            trusted_hops: cfg.trusted_hops.unwrap_or(0) as usize,
        },
        None if cfg.trusted_hops.is_some() => {
            return Err(ConfigError::new(format!("{at}.trusted_hops"), "needs client_header"));
        }
        None => ClientSource::Peer,
    };
    if cfg.trusted_hops.is_some_and(|n| n > 16) {
        return Err(ConfigError::new(format!("{at}.trusted_hops"), "must be at most 16"));
    }
    let max_checks_per_second = cfg.max_checks_per_second.unwrap_or(DEFAULT_MAX_CHECKS_PER_SECOND);
    Ok((max_failures > 0 || max_checks_per_second > 0).then_some(BudgetRules {
        max_failures,
        window: i64::from(window),
        client,
        max_checks_per_second,
    }))
}

fn split_path(s: &str) -> Vec<String> {
    s.split('.').map(str::to_string).collect()
}

impl JwtPolicy {
    /// Compiles the `jwt` section.
    pub fn compile(cfg: &JwtConfig) -> Result<JwtPolicy, ConfigError> {
        let mut policy = JwtPolicy {
            realm: cfg.realm.clone().unwrap_or_else(|| "api".to_string()),
            ..JwtPolicy::default()
        };
        if policy.realm.is_empty()
            || !policy.realm.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::new(
                "jwt.realm",
                "must be printable ASCII without quotes or backslashes",
            ));
        }
        policy.token_cache_size = cfg.token_cache_size.unwrap_or(1024) as usize;
        if policy.token_cache_size > 1_000_000 {
            return Err(ConfigError::new("jwt.token_cache_size", "must be at most 1000000"));
        }
        policy.budget = compile_budget(cfg.verification_budget.as_ref().cloned().unwrap_or_default())?;
        if cfg.providers.is_empty() {
            return Err(ConfigError::new("jwt.providers", "must define at least one provider"));
        }
        for (name, p) in &cfg.providers {
            policy.providers.push(Provider::compile(name, p, &format!("jwt.providers.{name}"))?);
        }
        // An introspection answer lives in the token cache: without one, every request would
        // ask again, and the answer could not reach the decision it resumes.
        let introspects = policy.providers.iter().any(|p| matches!(p.keys, ProviderKeys::Introspect(_)));
        if policy.token_cache_size == 0 && introspects {
            return Err(ConfigError::new(
                "jwt.token_cache_size",
                "must be at least 1 with an introspecting provider (answers are cached there)",
            ));
        }
        for p in &policy.providers {
            for h in p.claim_headers.iter().map(|c| &c.header).chain(p.payload_header.iter()) {
                if !policy.scrub_headers.contains(h) {
                    policy.scrub_headers.push(h.clone());
                }
            }
        }
        let default = match &cfg.default {
            Some(a) => policy.requirement(a, None, "jwt.default")?,
            None => Requirement::Deny,
        };
        policy.default = Some(default);
        Ok(policy)
    }

    /// Query parameter names that providers read tokens from.
    pub fn token_params(&self) -> impl Iterator<Item = &str> {
        self.providers.iter().flat_map(|p| p.sources.iter()).filter_map(|s| match s {
            Source::Param(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Compiles a requirement; `template` is the route's path pattern (for `bind`).
    pub fn requirement(
        &self,
        cfg: &AuthConfig,
        template: Option<&PathPattern>,
        at: &str,
    ) -> Result<Requirement, ConfigError> {
        compile_requirement(Some(self), cfg, template, at)
    }
}

/// Compiles a requirement; without a `jwt` section only `public` and `deny` are possible.
pub fn compile_requirement(
    jwt: Option<&JwtPolicy>,
    cfg: &AuthConfig,
    template: Option<&PathPattern>,
    at: &str,
) -> Result<Requirement, ConfigError> {
    let AuthConfig::Jwt { providers, require_all, scopes, claims, bind } = cfg else {
        return Ok(match cfg {
            AuthConfig::Public => Requirement::Public,
            // Whether `api_keys` exists is checked where the policy is compiled.
            AuthConfig::ApiKey { scopes } => {
                check_scopes(scopes, &format!("{at}.scopes"))?;
                Requirement::ApiKey(scopes.clone())
            }
            _ => Requirement::Deny,
        });
    };
    let Some(jwt) = jwt else {
        return Err(ConfigError::new(
            format!("{at}.type"),
            "`jwt` needs a top-level `jwt` section with providers",
        ));
    };
    if providers.is_empty() {
        return Err(ConfigError::new(format!("{at}.providers"), "must name at least one provider"));
    }
    let mut idx = Vec::new();
    for (i, name) in providers.iter().enumerate() {
        match jwt.providers.iter().position(|p| p.name == *name) {
            Some(n) => idx.push(n),
            None => {
                return Err(ConfigError::new(
                    format!("{at}.providers[{i}]"),
                    format!("provider '{name}' is not configured in jwt.providers"),
                ))
            }
        }
    }
    check_scopes(scopes, &format!("{at}.scopes"))?;
    let mut conditions = Vec::new();
    for (i, c) in claims.iter().enumerate() {
        let condition = match (&c.equals, &c.one_of, &c.contains) {
            (Some(v), None, None) => Condition::Equals(v.clone()),
            (None, Some(v), None) if !v.is_empty() => Condition::OneOf(v.clone()),
            (None, None, Some(v)) => Condition::Contains(v.clone()),
            _ => {
                return Err(ConfigError::new(
                    format!("{at}.claims[{i}]"),
                    "needs exactly one of `equals`, `one_of` (non-empty) and `contains`",
                ))
            }
        };
        if c.claim.is_empty() {
            return Err(ConfigError::new(format!("{at}.claims[{i}].claim"), "must not be empty"));
        }
        conditions.push(ClaimCondition { path: split_path(&c.claim), condition });
    }
    let mut bindings = Vec::new();
    for (i, b) in bind.iter().enumerate() {
        let known = template.is_some_and(|t| t.params().contains(&b.param.as_str()));
        if !known {
            return Err(ConfigError::new(
                format!("{at}.bind[{i}].param"),
                format!("'{}' is not a parameter of this route's `match.path` template", b.param),
            ));
        }
        bindings.push(Binding { param: b.param.clone(), path: split_path(&b.claim) });
    }
    Ok(Requirement::Jwt(JwtRule {
        providers: idx,
        require_all: *require_all,
        scope_challenge: scopes.join(" "),
        scopes: scopes.clone(),
        claims: conditions,
        bind: bindings,
    }))
}

/// Refuses a scope that is not a scope token (RFC 6749 §3.3): it could not be granted, and
/// could not go into a challenge's `scope` either.
pub(crate) fn check_scopes(scopes: &[String], at: &str) -> Result<(), ConfigError> {
    for (i, s) in scopes.iter().enumerate() {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
            return Err(ConfigError::new(format!("{at}[{i}]"), "must be a scope token (RFC 6749 §3.3)"));
        }
    }
    Ok(())
}

/// The scopes a token grants: `scope` (space-delimited, RFC 8693 / RFC 9068) and `scp`
/// (an array, or a space-delimited string, as some providers send it).
pub(crate) fn granted_scopes(claims: &serde_json::Map<String, Value>) -> Vec<&str> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split(' ').filter(|w| !w.is_empty())),
            Some(Value::Array(a)) => out.extend(a.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out
}

fn holds(condition: &Condition, value: Option<&Value>) -> bool {
    let Some(v) = value else { return false };
    match condition {
        Condition::Equals(want) => v == want,
        Condition::OneOf(list) => list.contains(v),
        Condition::Contains(want) => match v {
            Value::Array(items) => items.contains(want),
            Value::String(s) => want.as_str().is_some_and(|w| s.split(' ').any(|x| x == w)),
            _ => false,
        },
    }
}

/// A refusal, with a hint: fetching this provider's keys and asking again may change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The denial to send if nothing else happens.
    pub denial: Denial,
    /// A callout whose answer may change it: a remote provider's keys (missing, or lacking the
    /// token's `kid` and refetchable now), an opaque token's introspection, the rate-limit
    /// service (the request is otherwise admitted so far).
    pub wait: Option<Box<crate::policy::Wait>>,
}

/// The callout a token refusal waits for: the keys of `fetch`, else the introspection.
fn waiting(
    fetch: Option<usize>,
    introspect: Option<Box<(usize, String)>>,
) -> Option<Box<crate::policy::Wait>> {
    let wait = fetch
        .map(crate::policy::Wait::Keys)
        .or(introspect.map(|b| crate::policy::Wait::Introspect(b.0, b.1)));
    wait.map(Box::new)
}

impl From<Denial> for Refusal {
    fn from(denial: Denial) -> Refusal {
        Refusal { denial, wait: None }
    }
}

/// What an authorized request carries upstream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grant {
    /// Header changes (claim headers, token removal).
    pub headers: Vec<HeaderOp>,
    /// Verified tokens, by provider index.
    pub tokens: Vec<(usize, Rc<Verified>)>,
}

/// Verifies a token with the provider's keys, local or remote, through the token cache.
fn verify_with(
    provider: &Provider,
    index: usize,
    token: &str,
    state: &dyn VerifyState,
    now: i64,
    fetch: &mut Option<usize>,
    introspect: &mut Option<Box<(usize, String)>>,
) -> Result<Rc<Verified>, TokenError> {
    if let Some(v) = state.cached(index, token) {
        return Ok(v);
    }
    if let ProviderKeys::Introspect(_) = &provider.keys {
        // An opaque token: its answer is cached (positive until the token's `exp` or the cache
        // limit, negative briefly); otherwise the host asks the endpoint and the decision
        // resumes from here, finding the answer in the cache.
        if state.known_bad(index, token) {
            return Err(TokenError::Inactive);
        }
        // Another worker's answer, where the workers share a cache.
        if let Some(v) = state.shared(index, token, jwt::cache::INTROSPECTED) {
            return Ok(v);
        }
        if token.len() > provider.max_token_bytes {
            return Err(TokenError::Malformed(jwt::token::ParseError::TooLarge));
        }
        introspect.get_or_insert_with(|| Box::new((index, token.to_string())));
        return Err(TokenError::IntrospectionUnavailable);
    }
    let remote = match &provider.keys {
        ProviderKeys::Local(_) | ProviderKeys::Introspect(_) => None,
        ProviderKeys::Remote(_) => Some(state.lookup(index)),
    };
    let set = match (&provider.keys, &remote) {
        (ProviderKeys::Local(set), _) => Some(set),
        (_, Some(Availability::Ready { keys, .. })) => Some(keys),
        _ => None,
    };
    if let Some(v) = set.and_then(|s| state.shared(index, token, s.fingerprint)) {
        return Ok(v);
    }
    // Every check that costs no signature comes first and keeps its own cause; none of them
    // touches the failed-verification budget.
    let inspected = provider.inspect(token, now)?;
    let keys = match (set, &remote) {
        (Some(set), _) => set,
        (_, Some(Availability::Loading)) => {
            fetch.get_or_insert(index);
            return Err(TokenError::KeysUnavailable);
        }
        _ => return Err(TokenError::KeysUnavailable),
    };
    let key = match provider.key(&inspected, keys) {
        Ok(key) => key,
        Err(e) => {
            if matches!(remote, Some(Availability::Ready { refetch: true, .. })) {
                fetch.get_or_insert(index);
            }
            return Err(e);
        }
    };
    // The same forgery again: refused without another signature check.
    if state.known_bad(index, token) {
        return Err(TokenError::Signature);
    }
    // Only now may the token cost a signature check: a client that keeps sending tokens that
    // fail one is refused before it can spend more.
    state.may_verify().map_err(|t| match t {
        Throttle::Budget(seconds) => TokenError::Budget(seconds),
        Throttle::Overload => TokenError::Overload,
    })?;
    let verified = provider.check_signature(inspected, key);
    if matches!(verified, Err(e) if e.cost_a_signature()) {
        state.verification_failed();
        state.remember_bad(index, token);
    }
    let verified = Rc::new(verified?);
    // Cache until the token expires (plus skew), never longer.
    let until = match verified.claims.get("exp").and_then(Value::as_f64) {
        Some(exp) if exp.is_finite() && exp.abs() < 9.0e18 => {
            (exp as i64).saturating_add(provider.rules.skew)
        }
        _ => now.saturating_add(jwt::cache::NO_EXP_TTL),
    };
    state.remember(index, token, &verified, until);
    if let Some(set) = set {
        state.share(index, token, set.fingerprint, &verified, until);
    }
    Ok(verified)
}

/// RFC 8705 §3: a token bound to a TLS client certificate (`cnf.x5t#S256`, the base64url
/// SHA-256 of its DER) is good only on a connection that presented that certificate. Checked
/// on every request, cached tokens too: the binding is to the connection, not the token.
// Out of line, like `bound_to_key` and `authorize_key`: paths most requests skip, kept out of
// `authorize`, which V8 compiles in far less time as several small functions.
#[inline(never)]
fn bound_to_connection(provider: &Provider, v: &Verified, state: &dyn VerifyState) -> Result<(), TokenError> {
    use base64::Engine;
    let Some(thumbprint) = v.claims.get("cnf").and_then(|c| c.get("x5t#S256")) else {
        return if provider.require_certificate_bound {
            Err(TokenError::NotCertificateBound)
        } else {
            Ok(())
        };
    };
    let want = thumbprint
        .as_str()
        .and_then(|t| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t).ok())
        .filter(|d| d.len() == 32)
        .ok_or(TokenError::CertificateMismatch)?;
    match state.client_certificate() {
        Some(have) if have[..] == want[..] => Ok(()),
        Some(_) => Err(TokenError::CertificateMismatch),
        None => Err(TokenError::NoClientCertificate),
    }
}

/// Why a token fails its DPoP binding: the token itself (`invalid_token`), or its proof.
enum Bound {
    Token(TokenError),
    Proof(jwt::dpop::ProofError),
}

/// RFC 9449 §7: a DPoP-bound token (`cnf.jkt`) comes with the DPoP scheme and one proof, made
/// for this request by the key it is bound to, never seen before; under the Bearer scheme it
/// is refused, whether or not this provider takes DPoP.
#[inline(never)]
fn bound_to_key(
    provider: &Provider,
    found: &extract::Found<'_>,
    v: &Verified,
    head: &RequestHead<'_>,
    state: &dyn VerifyState,
    now: i64,
) -> Result<(), Bound> {
    use jwt::dpop::ProofError;
    let jkt = v.claims.get("cnf").and_then(|c| c.get("jkt"));
    let dpop_scheme =
        matches!(found.source, Source::Header { prefix, .. } if prefix.eq_ignore_ascii_case("dpop "));
    let rules = match (jkt, dpop_scheme, &provider.dpop) {
        (Some(_), false, _) => return Err(Bound::Token(TokenError::DpopBoundAsBearer)),
        (None, true, _) => return Err(Bound::Token(TokenError::DpopUnbound)),
        (None, false, Some(rules)) if rules.required => return Err(Bound::Token(TokenError::DpopRequired)),
        (None, false, _) => return Ok(()),
        // The DPoP scheme is a source only of providers that take DPoP.
        (Some(_), true, None) => return Err(Bound::Token(TokenError::DpopUnbound)),
        (Some(_), true, Some(rules)) => rules,
    };
    let mut proofs = head.headers.iter().filter(|(n, _)| n == "dpop");
    let (Some((_, proof)), None) = (proofs.next(), proofs.next()) else {
        return Err(Bound::Proof(ProofError::Missing));
    };
    let proof = std::str::from_utf8(proof).map_err(|_| Bound::Proof(ProofError::Malformed))?;
    let target = head.header_str(":path");
    let request = jwt::dpop::Request {
        method: head.header_str(":method"),
        scheme: head.header_str(":scheme"),
        authority: head.header_str(":authority"),
        path: target.split(['?', '#']).next().unwrap_or(""),
    };
    let checked = jwt::dpop::check_proof(rules, proof, found.token, &request, now).map_err(Bound::Proof)?;
    if jkt.and_then(Value::as_str) != Some(checked.thumbprint.as_str()) {
        return Err(Bound::Proof(ProofError::KeyMismatch));
    }
    // Recorded only once everything else holds: a bad proof cannot burn a good one's `jti`.
    if state.dpop_replayed(checked.replay_key, checked.until) {
        return Err(Bound::Proof(ProofError::Replay));
    }
    Ok(())
}

/// The denial for provider `provider`'s token failing with `e`.
fn token_denial(e: TokenError, provider: usize) -> Denial {
    let d = match e {
        TokenError::KeysUnavailable => Denial::new(Reason::KeysUnavailable),
        TokenError::IntrospectionUnavailable => {
            Denial { cause: Some("introspection"), ..Denial::new(Reason::KeysUnavailable) }
        }
        TokenError::Budget(seconds) => {
            Denial { retry_after: Some(seconds), ..Denial::new(Reason::VerificationBudget) }
        }
        TokenError::Overload => Denial { retry_after: Some(1), ..Denial::new(Reason::VerificationOverload) },
        e => Denial::invalid_token(e),
    };
    Denial { provider: u16::try_from(provider).ok(), ..d }
}

/// Judges an API-key request: the key (never forwarded) must be one of `api_keys` and grant
/// every scope in `scopes`.
#[inline(never)]
fn authorize_key(
    keys: Option<&ApiKeys>,
    scopes: &[String],
    head: &RequestHead<'_>,
) -> Result<Grant, Refusal> {
    let Some(keys) = keys else { return Err(Denial::new(Reason::AccessDenied).into()) };
    let label = u16::try_from(API_KEY_PROVIDER).ok();
    let Some(presented) = head.header(&keys.header).map(<[u8]>::trim_ascii).filter(|v| !v.is_empty()) else {
        return Err(Denial::new(Reason::ApiKeyMissing).into());
    };
    let Some(caller) = keys.identify(presented) else {
        return Err(Denial { provider: label, ..Denial::new(Reason::ApiKeyInvalid) }.into());
    };
    if !scopes.iter().all(|s| granted_scopes(&caller.claims).contains(&s.as_str())) {
        return Err(Denial {
            provider: label,
            cause: Some("api_key_scope"),
            ..Denial::new(Reason::AccessDenied)
        }
        .into());
    }
    let mut headers = vec![HeaderOp::Remove(keys.header.clone())];
    if let (Some(h), Some(consumer)) = (&keys.consumer_header, ApiKeys::consumer(&caller)) {
        headers.push(HeaderOp::Set(h.clone(), consumer.to_string()));
    }
    Ok(Grant { headers, tokens: vec![(API_KEY_PROVIDER, caller)] })
}

/// The provider index of a caller identified by an API key (no JWT provider has it): the
/// `provider` label reads it as [`super::apikey::PROVIDER_LABEL`].
pub const API_KEY_PROVIDER: usize = u16::MAX as usize;

/// Judges a request against `requirement`.
#[allow(clippy::too_many_arguments)]
pub fn authorize(
    jwt: Option<&JwtPolicy>,
    api_keys: Option<&ApiKeys>,
    requirement: &Requirement,
    head: &RequestHead<'_>,
    query: &str,
    params: &[(String, &str)],
    state: &dyn VerifyState,
    now: i64,
) -> Result<Grant, Refusal> {
    let rule = match requirement {
        Requirement::Public => return Ok(Grant::default()),
        Requirement::Deny => return Err(Denial::new(Reason::AccessDenied).into()),
        Requirement::Jwt(rule) => rule,
        Requirement::ApiKey(scopes) => return authorize_key(api_keys, scopes, head),
    };
    let Some(jwt) = jwt else { return Err(Denial::new(Reason::AccessDenied).into()) };
    let mut fetch = None;
    let mut introspect = None;
    let mut grant = Grant::default();
    let mut missing = true;
    let mut failure: Option<(TokenError, usize)> = None;
    for &pi in &rule.providers {
        let Some(provider) = jwt.providers.get(pi) else { continue };
        let Some(found) = extract::find(&provider.sources, head, query) else {
            if rule.require_all {
                return Err(Denial::new(Reason::TokenMissing).into());
            }
            continue;
        };
        missing = false;
        let verified = verify_with(provider, pi, found.token, state, now, &mut fetch, &mut introspect);
        let verified = verified.and_then(|v| bound_to_connection(provider, &v, state).map(|()| v));
        let verified = match verified.map(|v| (bound_to_key(provider, &found, &v, head, state, now), v)) {
            // A verified token whose proof fails: refused here, whatever other providers say.
            Ok((Err(Bound::Proof(e)), _)) => {
                let denial = Denial {
                    cause: Some(e.name()),
                    provider: u16::try_from(pi).ok(),
                    ..Denial::new(Reason::DpopProofInvalid)
                };
                return Err(Refusal { denial, wait: waiting(fetch, introspect) });
            }
            Ok((Err(Bound::Token(e)), _)) => Err(e),
            Ok((Ok(()), v)) => Ok(v),
            Err(e) => Err(e),
        };
        match verified {
            Ok(v) => {
                if !provider.forward {
                    if let Source::Header { name, prefix } = found.source {
                        grant.headers.push(HeaderOp::Remove(name.clone()));
                        // The proof goes with the token it was made for.
                        if prefix.eq_ignore_ascii_case("dpop ") {
                            grant.headers.push(HeaderOp::Remove("dpop".into()));
                        }
                    }
                }
                for ch in &provider.claim_headers {
                    if let Some(value) = jwt::claim(&v.claims, &ch.path).and_then(jwt::claim_header_value) {
                        grant.headers.push(HeaderOp::Set(ch.header.clone(), value));
                    }
                }
                if let Some(h) = &provider.payload_header {
                    use base64::Engine;
                    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&v.payload);
                    grant.headers.push(HeaderOp::Set(h.clone(), encoded));
                }
                grant.tokens.push((pi, v));
                if !rule.require_all {
                    break;
                }
            }
            Err(e) => {
                if rule.require_all {
                    return Err(Refusal { denial: token_denial(e, pi), wait: waiting(fetch, introspect) });
                }
                // An unavailable key set outranks a bad token from another provider: the
                // caller should retry rather than re-authenticate. Any failure outranks another
                // provider's "not my issuer": the provider the token names says why.
                let other_issuer = matches!(failure, Some((TokenError::Claims(ClaimError::Issuer), _)));
                if failure.is_none() || e == TokenError::KeysUnavailable || other_issuer {
                    failure = Some((e, pi));
                }
            }
        }
    }
    if grant.tokens.is_empty() {
        let denial = match failure {
            Some((e, pi)) => token_denial(e, pi),
            None => {
                debug_assert!(missing);
                Denial::new(Reason::TokenMissing)
            }
        };
        return Err(Refusal { denial, wait: waiting(fetch, introspect) });
    }
    let all_claims = || grant.tokens.iter().map(|(_, v)| &v.claims);
    // A refusal after verification names the provider of the (first) verified token.
    let verified = grant.tokens.first().and_then(|(pi, _)| u16::try_from(*pi).ok());
    let refuse = |d: Denial| -> Refusal { Denial { provider: verified, ..d }.into() };
    for scope in &rule.scopes {
        if !all_claims().any(|c| granted_scopes(c).contains(&scope.as_str())) {
            return Err(refuse(Denial::insufficient_scope(rule.scope_challenge.clone())));
        }
    }
    for cond in &rule.claims {
        if !all_claims().any(|c| holds(&cond.condition, jwt::claim(c, &cond.path))) {
            return Err(refuse(Denial::new(Reason::AccessDenied)));
        }
    }
    for b in &rule.bind {
        let value =
            params.iter().find(|(n, _)| *n == b.param).and_then(|(_, v)| super::path::decode_segment(v));
        let ok = value.is_some_and(|p| {
            all_claims().any(|c| match jwt::claim(c, &b.path) {
                Some(Value::String(s)) => *s == p,
                Some(Value::Number(n)) => n.to_string() == p,
                _ => false,
            })
        });
        if !ok {
            return Err(refuse(Denial::new(Reason::AccessDenied)));
        }
    }
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::config::parse;
    use crate::policy::test_tokens::hs256;

    /// A request's state whose connection presented a certificate with this digest, or none.
    struct Tls(Option<[u8; 32]>);

    impl VerifyState for Tls {
        fn lookup(&self, _: usize) -> Availability {
            Availability::Unavailable
        }
        fn client_certificate(&self) -> Option<[u8; 32]> {
            self.0
        }
    }

    fn judge(require: bool, claims: &str, cert: Option<[u8; 32]>) -> Result<(), Option<&'static str>> {
        let doc = format!(
            r#"{{"jwt":{{"providers":{{"idp":{{"issuer":"https://idp","audiences":["api"],"algorithms":["HS256"],
                "require_certificate_bound":{require},
                "local_jwks":{{"keys":[{{"kty":"oct","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}}]}}}}}},
                "default":{{"type":"jwt","providers":["idp"]}}}}}}"#
        );
        let policy = parse(doc.as_bytes()).unwrap();
        let token = hs256(
            b"secret-secret-secret-secret-secret",
            &format!(r#"{{"iss":"https://idp","aud":"api","exp":1900000000{claims}}}"#),
        );
        let headers = vec![(String::from("authorization"), format!("Bearer {token}").into_bytes())];
        let head = RequestHead { headers: &headers, end_of_stream: Some(true) };
        let jwt = policy.jwt.as_ref();
        authorize(jwt, None, &policy.default_auth, &head, "", &[], &Tls(cert), 1_800_000_000)
            .map(|_| ())
            .map_err(|r| r.denial.cause)
    }

    #[test]
    fn a_certificate_bound_token_passes_only_with_its_certificate() {
        use base64::Engine;
        let cert = [7u8; 32];
        let thumb = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cert);
        let bound = format!(r#","cnf":{{"x5t#S256":"{thumb}"}}"#);
        assert_eq!(judge(false, &bound, Some(cert)), Ok(()));
        assert_eq!(judge(false, &bound, Some([8; 32])), Err(Some("certificate_mismatch")));
        assert_eq!(judge(false, &bound, None), Err(Some("no_client_certificate")));
        assert_eq!(
            judge(false, r#","cnf":{"x5t#S256":"short"}"#, Some(cert)),
            Err(Some("certificate_mismatch"))
        );
        assert_eq!(judge(false, r#","cnf":{"x5t#S256":7}"#, Some(cert)), Err(Some("certificate_mismatch")));
        // Unbound tokens pass unless the provider requires binding.
        assert_eq!(judge(false, "", None), Ok(()));
        assert_eq!(judge(true, "", Some(cert)), Err(Some("not_certificate_bound")));
        assert_eq!(judge(true, &bound, Some(cert)), Ok(()));
    }
}
