//! The configuration document, as users write it.
//!
//! These types mirror the JSON exactly and do nothing else: every struct denies unknown fields
//! (a typo such as `max_body_byte` must not silently drop a limit), and every choice is a typed
//! enum. [`parse`] turns the bytes into a compiled [`Policy`]; all semantic checks happen
//! there, once, at load time. Defaults are documented on each field and in the README.

use std::fmt;

use std::collections::BTreeMap;

use serde::Deserialize;

use super::jwt::alg::Alg;

use super::method::Method;
use super::Policy;

mod reader;
mod tables;

/// The whole api-guard configuration. An empty document (or no configuration at all) is
/// valid and means the documented safe defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Ignored. Lets editors find the schema (`examples/config.schema.json`).
    #[serde(default, rename = "$schema")]
    pub schema: Option<String>,
    /// Request limits applied to every request. Routes may override individual fields.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Routes, matched in order; the first route whose `match` selects the request applies.
    /// Requests that match no route get the global settings.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// How denials are rendered.
    #[serde(default)]
    pub problem: ProblemConfig,
    /// Request header carrying the request id echoed in denials and logs.
    /// Default `x-request-id`. A missing or malformed id is replaced by a generated one.
    #[serde(default)]
    pub request_id_header: Option<String>,
    /// JWT validation: providers, and the requirement for requests whose route sets none.
    pub jwt: Option<JwtConfig>,
    /// Facts about the gateway that the module cannot detect itself.
    #[serde(default)]
    pub host: HostConfig,
    /// Request validation from the API's OpenAPI document: only documented operations pass,
    /// and their parameters and bodies are checked.
    pub openapi: Option<OpenApiConfig>,
    /// CORS for every route that sets none of its own. Absent: no CORS handling (browsers
    /// then refuse cross-origin reads themselves).
    pub cors: Option<CorsConfig>,
    /// Response hardening: security headers and headers that reveal the stack.
    pub response: Option<ResponseConfig>,
    /// Path forms that upstreams read in more than one way, refused (400 `invalid-path`)
    /// unless allowed here.
    #[serde(default)]
    pub paths: PathsConfig,
    /// What api-guard measures beyond its counters.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Rate limits: named policies, and which of them apply where.
    pub rate_limits: Option<RateLimitsConfig>,
    /// API keys for machine clients, stored as SHA-256 digests only.
    pub api_keys: Option<ApiKeysConfig>,
    /// RFC 9728 protected-resource metadata, served at its well-known path and named in every
    /// Bearer challenge.
    pub protected_resource: Option<ProtectedResourceConfig>,
}

/// RFC 9728 protected-resource metadata (`protected_resource`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProtectedResourceConfig {
    /// This API's resource identifier: its `https` URL, no query or fragment (`http` only for
    /// localhost). The document is served at `/.well-known/oauth-protected-resource` followed
    /// by this URL's path.
    pub resource: String,
    /// Issuer URLs of the authorization servers whose tokens this API takes. Default: the
    /// `jwt` providers' issuers.
    pub authorization_servers: Option<Vec<String>>,
    /// Scopes to advertise. Default: every scope a requirement of this policy names.
    pub scopes_supported: Option<Vec<String>>,
    /// A human-readable name of the API.
    pub resource_name: Option<String>,
    /// An `https` URL of the API's documentation for developers.
    pub resource_documentation: Option<String>,
}

/// API keys (`api_keys`): each key is stored as the SHA-256 of its text, never the text.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// The request header the key is read from. Default `x-api-key`. It is removed before the
    /// request goes upstream.
    pub header: Option<String>,
    /// A request header the key's consumer name is sent upstream in (a client's own copy is
    /// removed first). Default none.
    pub consumer_header: Option<String>,
    /// The keys. Removing an entry revokes its key.
    pub keys: Vec<ApiKeyConfig>,
}

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who the key belongs to: the caller's subject (`sub`) for rate limits, claim headers and
    /// metrics.
    pub consumer: String,
    /// The SHA-256 of the key's text, as 64 hexadecimal digits (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// The key's first characters (e.g. `ak_live_3f`), to tell keys apart in the configuration
    /// without revealing them; a key that does not start with it does not match. Default none.
    pub prefix: Option<String>,
    /// Scopes the key grants (for `auth.scopes` and the scope-waived field rules). Default none.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Rate limits (`rate_limits`).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Named limits. A name is 1 to 64 letters, digits, `-` or `_`; it names the policy in
    /// metrics and in the `RateLimit-Policy` and `RateLimit` response fields.
    pub policies: BTreeMap<String, RateLimitPolicyConfig>,
    /// Policies for routes that set no `rate_limits` of their own, and for requests that match
    /// no route, checked in this order. Default none.
    #[serde(default)]
    pub default: Vec<String>,
    /// Slots in the table of counters (16 to 1048576), shared by every policy: each slot holds
    /// one caller's bucket while it is not full. Size it above the number of callers active
    /// within a window; when both of a caller's slots are taken, it shares a bucket with
    /// another caller (counted more, never less; `api_guard_rate_limit_total` with
    /// `decision="shared"`). Default 8192.
    pub table_size: Option<u32>,
    /// The rate-limit service that counts `global` policies across gateway instances (Envoy
    /// only: its RLS v3 API over gRPC).
    pub service: Option<RateLimitServiceConfig>,
}

/// A rate-limit service speaking Envoy's RLS v3 API (`rate_limits.service`), e.g. Envoy's
/// reference service or Limitador.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimitServiceConfig {
    /// The Envoy cluster of the service (HTTP/2, as every gRPC cluster).
    pub cluster: String,
    /// The RLS domain the descriptors are sent in (the service's namespace for these limits).
    pub domain: String,
    /// How long a request waits for the service, in milliseconds (1 to 10000); past it, the
    /// policy's `failure_mode` applies. Default 100.
    pub timeout_ms: Option<u32>,
}

/// One named limit.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicyConfig {
    /// Requests allowed per window (1 to 1000000), refilled continuously. Required, except
    /// for a `global` policy, whose limit is the service's.
    pub requests: Option<u32>,
    /// The window, in seconds (1 to 2592000, 30 days). Required, except for a `global` policy.
    pub window_seconds: Option<u32>,
    /// Requests an idle caller may send at once (1 to 1000000). Default `requests`.
    pub burst: Option<u32>,
    /// What callers are told apart by.
    pub key: RateKeyConfig,
    /// Limits picked by a claim of the verified token (e.g. `plan: gold`), instead of
    /// `requests`, `window_seconds` and `burst`, for callers whose claim names a plan.
    pub plans: Option<RatePlansConfig>,
    /// Send the `RateLimit-Policy` and `RateLimit` fields on allowed and refused answers.
    /// Default true.
    pub headers: Option<bool>,
    /// When the counters cannot be read or written (for a `global` policy: the service is
    /// down, slow past `timeout_ms`, or answers what cannot be read): `fail_open` (the request
    /// passes, counted as an error) or `fail_closed` (503 with `Retry-After: 1`). Default
    /// `fail_open`.
    pub failure_mode: Option<FailureModeConfig>,
    /// Counted by `rate_limits.service` across every gateway instance instead of in this
    /// process: each request sends the descriptor `policy` = the policy's name, `key` = what
    /// the caller is counted by, and the service's limits for them apply. `requests`,
    /// `window_seconds`, `burst` and `plans` are then the service's to set. Default false.
    pub global: Option<bool>,
}

/// What a rate limit's callers are told apart by.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RateKeyConfig {
    /// A claim of the verified token (`sub`, `client_id`, `azp`, or a path such as
    /// `org.tenant`). A request without it (no token, or a token without the claim) is counted
    /// by its client address.
    Claim {
        /// The claim's name or path.
        claim: String,
    },
    /// The client address (an IPv4 address, or an IPv6 /64), read as
    /// `jwt.verification_budget.client_header` says where that is set.
    ClientAddress,
    /// A request header set by a proxy of yours (a request without it is counted by its
    /// client address).
    Header {
        /// The header's name.
        name: String,
        /// Must be true: you confirm that a proxy of yours sets this header and drops the
        /// client's copy (a client can otherwise pick its own bucket).
        #[serde(default)]
        trusted: bool,
    },
    /// The route: one bucket for every caller of it (requests that match no route share one).
    Route,
}

/// Limits by a claim's value.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RatePlansConfig {
    /// The claim whose value names the plan (a name or a path such as `org.plan`).
    pub claim: String,
    /// Plan (the claim's value, a string or a whole number) → its limit. A caller whose claim
    /// names no plan here gets the policy's own limit.
    pub limits: BTreeMap<String, RatePlanConfig>,
}

/// One plan's limit.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RatePlanConfig {
    /// Requests allowed per window (1 to 1000000).
    pub requests: u32,
    /// The window, in seconds. Default the policy's.
    pub window_seconds: Option<u32>,
    /// Requests an idle caller may send at once. Default `requests`.
    pub burst: Option<u32>,
}

/// What applies when a limit cannot be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureModeConfig {
    /// Let the request through.
    FailOpen,
    /// Refuse it with 503.
    FailClosed,
}

/// Optional metrics.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Record api-guard's own time per request phase (request: headers, body and a resumed
    /// decision; response: headers and body) in the histogram
    /// `api_guard_decision_duration_microseconds{phase}`. Default `false`: it reads the clock
    /// twice per callback and records two samples per request, host calls that `make bench`
    /// row `W-hml` prices.
    #[serde(default)]
    pub decision_latency: bool,
}

/// Response hardening.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    /// Security headers set on every response. Each preset header can be given another value,
    /// or `null` to leave it out; other headers can be added.
    #[serde(default)]
    pub security_headers: BTreeMap<String, Option<String>>,
    /// `Cache-Control: no-store` on responses to requests that presented a verified token,
    /// so shared caches never keep a caller's data. Default true.
    pub no_store_when_authenticated: Option<bool>,
    /// Response headers removed because they reveal the stack. Default: `server`,
    /// `x-powered-by`, `x-aspnet-version`, `x-aspnetmvc-version`, `x-runtime`, `x-version`.
    pub remove_headers: Option<Vec<String>>,
    /// Field rules applied to JSON response bodies, in order.
    #[serde(default)]
    pub rules: Vec<FieldRuleConfig>,
    /// Key for `hash` actions, base64url (at least 16 bytes). Required when a rule hashes.
    /// Never logged.
    pub hash_key: Option<String>,
    /// Largest response body buffered for field rules and the schema allowlist. Default
    /// 1048576. A route can override it.
    pub max_body_bytes: Option<u64>,
    /// A body over `max_body_bytes` where rules apply: `fail` (default: 502 problem, nothing
    /// unredacted leaves) or `pass` (forward it as is). A route can override it.
    #[serde(default)]
    pub oversize: Oversize,
    /// Replace the body of upstream 5xx responses (stack traces, SQL errors) with a generic
    /// problem+json that keeps the status and the request id. Default true.
    pub safe_errors: Option<bool>,
}

/// What to do with a response body too large to redact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Oversize {
    /// Answer 502 instead.
    #[default]
    Fail,
    /// Forward the body unredacted.
    Pass,
}

/// One field rule.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FieldRuleConfig {
    /// JSONPath-subset selectors: `$.a.b`, `$..password`, `$.items[*].card.number`,
    /// `$.users[*]['e-mail']`.
    pub select: Vec<String>,
    /// What happens to selected values.
    pub action: FieldActionConfig,
    /// The rule is waived for callers whose verified token has every one of these scopes.
    #[serde(default)]
    pub unless_scopes: Vec<String>,
    /// Only on these routes (names). Default: every request.
    pub routes: Option<Vec<String>>,
    /// Only for these response statuses. Default: every status.
    pub statuses: Option<Vec<u16>>,
}

/// A field rule's action.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldActionConfig {
    /// Remove the member.
    Remove,
    /// Replace all but the last `keep_last` characters (at most half) with `*`.
    Mask {
        /// Characters kept at the end. Default 0.
        #[serde(default)]
        keep_last: usize,
    },
    /// Replace the value with a keyed HMAC-SHA256 (`hash_key`).
    Hash,
}

/// Request validation from an OpenAPI 3.0.x or 3.1.x document.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenApiConfig {
    /// The OpenAPI document, as JSON (`api-guard import-openapi` converts YAML). Only references
    /// inside the document (`#/...`) are followed. Read without its annotations
    /// (descriptions, examples, `x-` extensions: `openapi::read`).
    #[serde(deserialize_with = "super::openapi::read::document")]
    pub document: serde_json::Value,
    /// Requests for a path the document does not describe (404) or a method it does not list
    /// for that path (405 with `Allow`): `deny` (default) or `allow` (pass them unchecked).
    #[serde(default)]
    pub unknown_operations: UnknownOperations,
    /// Refuse object members that the schema does not declare, even where it does not say
    /// `additionalProperties: false` (mass assignment, OWASP API3). Schemas without
    /// `properties` (free-form objects) stay open. Default false.
    #[serde(default)]
    pub reject_unknown_fields: bool,
    /// Refuse query parameters the operation does not document (400, pointer
    /// `/query/<name>`). Members of an exploded `form` object parameter and `name[...]` keys of
    /// a `deepObject` one count as documented. Default false: undocumented ones pass, as
    /// OpenAPI itself does not forbid them.
    #[serde(default)]
    pub reject_unknown_query_parameters: bool,
    /// Templates that differ only in their parameter names and define the same method
    /// (`GET /a/{id}` and `GET /a/{key}`), which OpenAPI forbids: `refuse` (default) refuses
    /// the document at load, naming both; `first` lets the one listed first in the document
    /// judge that method's requests (requests meant for the other are then judged by the
    /// first one's rules).
    #[serde(default)]
    pub ambiguous_templates: AmbiguousTemplates,
    /// Operations marked `deprecated: true`.
    #[serde(default)]
    pub deprecated: DeprecatedConfig,
    /// Most entries in a denial's `errors` array. Default 10.
    pub max_errors: Option<u32>,
    /// `multipart/form-data` bodies: most parts. Default 100.
    pub max_multipart_parts: Option<u32>,
    /// `multipart/form-data` bodies: largest part in bytes. Default: the body limit.
    pub max_multipart_part_bytes: Option<u64>,
    /// Remove members of JSON response bodies that the operation's response schema for the
    /// status (exact code, then `2XX`-style range, then `default`) does not declare, and
    /// `writeOnly` members, at any depth (excessive data exposure, OWASP API3). Responses
    /// whose status has no documented JSON schema are left as they are. Default false.
    #[serde(default)]
    pub response_allowlist: bool,
}

/// What to do with templates a request cannot tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AmbiguousTemplates {
    /// Refuse the document at load, naming both templates.
    #[default]
    Refuse,
    /// The template listed first judges the method's requests.
    First,
}

/// What to do with requests the document does not describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnknownOperations {
    /// Refuse: 404 for an unknown path, 405 with `Allow` for an unlisted method.
    #[default]
    Deny,
    /// Let them through without validation.
    Allow,
}

/// Deprecated operations.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DeprecatedConfig {
    /// `allow` (default) serves them; `warn` serves them with `Deprecation` (RFC 9745) and,
    /// when a date is known, `Sunset` (RFC 8594) headers; `deny` answers 410.
    #[serde(default)]
    pub action: DeprecatedAction,
    /// When the operations were deprecated (RFC 3339, e.g. `2026-01-01T00:00:00Z`). Required
    /// for `warn`, unless every deprecated operation sets `x-deprecated-at`.
    pub date: Option<String>,
    /// When they stop being served (RFC 3339). An operation's `x-sunset` overrides it.
    pub sunset: Option<String>,
}

/// The action for deprecated operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeprecatedAction {
    /// Serve them as usual.
    #[default]
    Allow,
    /// Serve them, adding `Deprecation` and `Sunset` response headers.
    Warn,
    /// Refuse them with 410.
    Deny,
}

/// JWT validation settings.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Token issuers, by name. A token is matched to a provider by its `iss`.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The requirement for requests whose route has no `auth` (or that match no route).
    /// Default `{"type": "deny"}`: with JWT configured, nothing passes unless a rule says so.
    pub default: Option<AuthConfig>,
    /// `realm` of `WWW-Authenticate` challenges. Default `api`.
    pub realm: Option<String>,
    /// Most verified tokens cached per VM, so repeated tokens skip signature work. Entries
    /// expire with the token. Default 1024; 0 turns the cache off.
    pub token_cache_size: Option<u32>,
    /// How many tokens failing their signature (or the claim checks after it) one client may
    /// send per window before its unverified tokens are refused unchecked (429). On by
    /// default: 20 per 10 seconds, clients told apart by peer address.
    pub verification_budget: Option<VerificationBudgetConfig>,
}

/// Ambiguous path forms to accept (`paths`). Each is refused by default because common
/// upstreams read it as another path.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    /// Accept `;` in path segments (matrix parameters). Risk: Java servlet containers (Tomcat,
    /// Jetty, Spring) strip `;...` from each segment, so `/public/..;/admin` is `/admin` there
    /// while api-guard matched `/public/..;/admin`. Default false.
    pub allow_path_parameters: Option<bool>,
    /// Accept an encoded `%` (`%25`). Risk: an upstream or a second proxy that decodes again
    /// reads `%252e%252e` as `..`. Default false.
    pub allow_encoded_percent: Option<bool>,
    /// The upstream routes paths case-insensitively (ASP.NET Core, IIS, Express by default):
    /// route literals then match in either case (`/Admin/x` is the `/admin` route), and the
    /// path goes upstream as sent. Default false (OpenAPI paths are case-sensitive).
    pub case_insensitive: Option<bool>,
    /// The upstream routes `/admin.json` as `/admin` (Rails' `(.:format)`, Spring's suffix
    /// patterns before 5.3): a format suffix on the last segment is then dropped before
    /// matching, so `/admin.json` is the `/admin` route. Default false.
    pub format_suffix: Option<bool>,
}

/// The failed-verification budget (`jwt.verification_budget`).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VerificationBudgetConfig {
    /// Failed verifications allowed per client per window. Default 20; 0 turns the budget off.
    pub max_failures: Option<u32>,
    /// Window length in seconds (1 to 3600). Default 10.
    pub window_seconds: Option<u32>,
    /// A request header naming the client address (e.g. `x-forwarded-for` appended to by a
    /// trusted proxy), used instead of the host's client address; read from the right. Only
    /// for gateways behind a proxy that writes it: a client can send any value otherwise.
    pub client_header: Option<String>,
    /// Values of `client_header` skipped from the right: proxies of your own between the one
    /// that saw the client and the gateway (as Envoy's `xff_num_trusted_hops`). Default 0.
    pub trusted_hops: Option<u32>,
    /// Signature checks per VM per second for clients over their budget on connections that
    /// carried none of their failures; past it their new tokens get 503 with `Retry-After: 1`.
    /// Clients in good standing are never limited by it. Default 1000; 0: no limit.
    pub max_checks_per_second: Option<u32>,
}

/// One token issuer. Where a field means what one of Envoy's `jwt_authn` `JwtProvider` fields
/// means it has the same name (`issuer`, `audiences`, `local_jwks`, `remote_jwks.http_uri`,
/// `from_headers`); protobuf wrappers are not copied (a key set is an object, a timeout is
/// `timeout_ms`), and their spellings are refused with the api-guard one suggested.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The `iss` value, compared exactly.
    pub issuer: String,
    /// Accepted `aud` values; the token's `aud` must hold at least one.
    pub audiences: Vec<String>,
    /// Algorithms accepted from this issuer. The token's `alg` only selects among these, and
    /// must fit the key's type. HMAC algorithms need `oct` keys and cannot be mixed with
    /// asymmetric ones.
    #[serde(default)]
    pub algorithms: Vec<Alg>,
    /// The issuer's keys, inline, as a JWKS object (`{"keys": [...]}`). Exactly one of
    /// `local_jwks` and `remote_jwks` is required.
    pub local_jwks: Option<serde_json::Value>,
    /// Opaque tokens, judged by the issuer's RFC 7662 introspection endpoint instead of a
    /// signature: an alternative to `local_jwks`, `remote_jwks` and `discovery`.
    pub introspection: Option<IntrospectionConfig>,
    /// Find the key set through the issuer's discovery document (OpenID Connect Discovery, or
    /// RFC 8414 with `uri`) instead of naming it: an alternative to `remote_jwks`.
    pub discovery: Option<DiscoveryConfig>,
    /// Where to fetch the issuer's keys, and how long to keep them.
    pub remote_jwks: Option<RemoteJwksConfig>,
    /// Token locations, tried in order. Default: `Authorization: Bearer`.
    pub from_headers: Option<Vec<HeaderSourceConfig>>,
    /// Cookies that may carry the token.
    pub from_cookies: Option<Vec<String>>,
    /// Query parameters that may carry the token. Off by default: tokens in URLs end up in
    /// logs. Names listed here are exempt from the query-credential check.
    pub from_params: Option<Vec<String>>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 60.
    pub clock_skew_seconds: Option<u32>,
    /// Whether `exp` is required. Default `true`.
    pub require_expiration: Option<bool>,
    /// Longest accepted token lifetime (`exp - iat`), if set.
    pub max_lifetime_seconds: Option<u32>,
    /// Required `typ` header, e.g. `at+jwt` (RFC 9068) so ID tokens are refused as access
    /// tokens. Compared case-insensitively, `application/` prefix ignored.
    pub token_type: Option<String>,
    /// Claims copied into upstream request headers. Client-sent copies of these headers are
    /// always removed first.
    pub claim_to_headers: Option<Vec<ClaimToHeaderConfig>>,
    /// Keep the token in the request sent upstream. Default `false` (as Envoy): the header
    /// that carried it is removed.
    pub forward: Option<bool>,
    /// Header that receives the verified payload (base64url JSON), if set.
    pub forward_payload_header: Option<String>,
    /// Largest token accepted, in bytes. Default 32768.
    pub max_token_bytes: Option<u32>,
    /// Refuse tokens that are not bound to the client's TLS certificate (RFC 8705
    /// `cnf.x5t#S256`). Default `false`: a bound token is always checked against the
    /// connection's certificate, an unbound one passes. Needs a host that exposes the client
    /// certificate (Envoy).
    #[serde(default)]
    pub require_certificate_bound: bool,
    /// DPoP (RFC 9449): tokens bound to a key the client proves it holds. Off when absent;
    /// a DPoP-bound token (`cnf.jkt`) sent as a Bearer token is refused either way.
    pub dpop: Option<DpopConfig>,
}

/// A provider's DPoP settings (`dpop`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DpopConfig {
    /// `required`: only DPoP-bound tokens with a proof; `allowed`: Bearer tokens pass too.
    pub mode: DpopMode,
    /// Algorithms a proof may be signed with. Default `ES256`, `ES384`, `RS256`, `PS256`,
    /// `EdDSA`.
    pub algorithms: Option<Vec<Alg>>,
    /// How far a proof's `iat` may be from now, in seconds (1–3600). Default 60.
    pub max_age_seconds: Option<u32>,
    /// The public origin clients address (`https://api.example.com`), where the gateway is
    /// behind another proxy; proofs' `htu` is compared with it. Default: the request's own
    /// scheme and authority.
    pub origin: Option<String>,
}

/// Whether DPoP is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DpopMode {
    /// Only DPoP-bound tokens, each with a proof.
    Required,
    /// DPoP-bound tokens with a proof, and Bearer tokens.
    Allowed,
}

/// A remote key set (JWKS URL).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RemoteJwksConfig {
    /// The request.
    pub http_uri: HttpUriConfig,
    /// How long fetched keys are fresh before a background refresh. Default 600.
    pub cache_duration_seconds: Option<u32>,
    /// Shortest time between two fetches, also for unknown-`kid` refetches (key rotation).
    /// Default 30.
    pub min_refetch_interval_seconds: Option<u32>,
    /// How long the last good keys keep serving while every refresh fails. Default 86400.
    pub max_stale_seconds: Option<u32>,
}

/// RFC 7662 token introspection (`introspection`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The introspection endpoint's URL.
    pub uri: String,
    /// Envoy cluster that serves it (hosts without clusters use the URL's `host:port`).
    pub cluster: Option<String>,
    /// Request timeout in milliseconds. Default 2000.
    pub timeout_ms: Option<u32>,
    /// The gateway's client id at the authorization server (HTTP Basic authentication).
    pub client_id: String,
    /// Its client secret. Never logged.
    pub client_secret: String,
    /// Longest time an active answer is reused, in seconds (never past the token's `exp`).
    /// Default 300, at most 3600.
    pub cache_seconds: Option<u32>,
    /// How long an inactive answer is reused, in seconds. Default 10, at most 300.
    pub inactive_cache_seconds: Option<u32>,
}

/// OpenID Connect / RFC 8414 discovery (`discovery`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// The discovery document's URL. Default: the issuer followed by
    /// `/.well-known/openid-configuration`; an RFC 8414 server's is
    /// `/.well-known/oauth-authorization-server`.
    pub uri: Option<String>,
    /// Envoy cluster that serves the document and the key set it names. Hosts without
    /// clusters use each URL's `host:port`.
    pub cluster: Option<String>,
    /// Request timeout in milliseconds. Default 5000.
    pub timeout_ms: Option<u32>,
    /// How long fetched keys are fresh before a background refresh. Default 600.
    pub cache_duration_seconds: Option<u32>,
    /// Shortest time between two fetches. Default 30.
    pub min_refetch_interval_seconds: Option<u32>,
    /// How long the last good keys keep serving while every refresh fails. Default 86400.
    pub max_stale_seconds: Option<u32>,
}

/// An outbound HTTP request target.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HttpUriConfig {
    /// The URL (`http://` or `https://`).
    pub uri: String,
    /// Envoy cluster that serves `uri`. Hosts without clusters (Kong, APISIX) use the URL's
    /// `host:port` instead.
    pub cluster: Option<String>,
    /// Request timeout in milliseconds. Default 5000.
    pub timeout_ms: Option<u32>,
}

/// A header token location.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HeaderSourceConfig {
    /// Header name.
    pub name: String,
    /// Prefix before the token, matched case-insensitively (e.g. `Bearer `). Default none.
    pub value_prefix: Option<String>,
}

/// A claim forwarded as a request header.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimToHeaderConfig {
    /// Claim name; dots descend into objects (`realm_access.roles`).
    pub claim: String,
    /// Header name. Strings, numbers and booleans are copied; arrays are joined with `,`.
    pub header: String,
}

/// An authentication and authorization requirement.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// No token needed.
    Public,
    /// Always refused (403).
    Deny,
    /// An API key from `api_keys`.
    ApiKey {
        /// Scopes the key must grant (all of them).
        #[serde(default)]
        scopes: Vec<String>,
    },
    /// A verified JWT from the listed providers.
    Jwt {
        /// Providers whose tokens satisfy this rule.
        providers: Vec<String>,
        /// `false` (default): a token from any one of them; `true`: one from each.
        #[serde(default)]
        require_all: bool,
        /// Scopes the token must hold (all of them), from `scope` (space-delimited) or `scp`.
        #[serde(default)]
        scopes: Vec<String>,
        /// Claim conditions, all of which must hold.
        #[serde(default)]
        claims: Vec<ClaimConditionConfig>,
        /// Path parameters that must equal a claim (`/users/{id}` with `sub == id`).
        #[serde(default)]
        bind: Vec<BindConfig>,
    },
}

/// A condition on a claim. Exactly one of `equals`, `one_of` and `contains`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimConditionConfig {
    /// Claim name; dots descend into objects.
    pub claim: String,
    /// The claim equals this value.
    pub equals: Option<serde_json::Value>,
    /// The claim equals one of these values.
    pub one_of: Option<Vec<serde_json::Value>>,
    /// The claim is an array holding this value, or a space-delimited string holding this word.
    pub contains: Option<serde_json::Value>,
}

/// A path parameter bound to a claim.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BindConfig {
    /// Name of a `{param}` in the route's path template.
    pub param: String,
    /// The claim it must equal (as a string).
    pub claim: String,
}

/// Facts about the gateway that the module cannot detect itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Whether request headers are held while the body is judged, so a refused body's request
    /// never reaches the upstream at all, not even its head. Default: held on Envoy, which
    /// needs `allow_on_headers_stop_iteration: true` on the filter for it (a filter without
    /// it is detected and its held requests fail fast with 500, naming the setting); other
    /// hosts cannot hold. `false` streams bodies on Envoy (the upstream sees the head and the
    /// bytes before a refusal cuts the request off), said as a warning at every load.
    pub hold_headers_for_body: Option<bool>,
    /// The gateway this configuration is for. Absent: detected at load (Envoy is recognised;
    /// any other host gets the most cautious profile). Set it for Kong and APISIX.
    pub kind: Option<HostKindConfig>,
    /// Kong only: how many bytes of a response body the engine buffers for the filter (its
    /// `proxy_wasm_response_body_buffers`, number × size; kong.conf
    /// `nginx_http_wasm_response_body_buffers`). A body owed a rewrite that does not fit
    /// follows the `oversize` rule, since the engine passes the rest unchanged. Default 16384
    /// (the engine's default, 4 × 4k).
    pub response_body_buffer_bytes: Option<u64>,
}

/// A gateway api-guard knows the capabilities of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum HostKindConfig {
    /// Envoy (`envoy.filters.http.wasm`, V8).
    Envoy,
    /// Kong Gateway 3.6–3.9 (ngx_wasm_module).
    Kong,
    /// Apache APISIX (wasm-nginx-module).
    Apisix,
}

/// Request limits. Every field is optional: at the top level an absent field takes its
/// default; in a route an absent field inherits the top-level value.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body in bytes; larger bodies get 413. Default 1048576 (1 MiB).
    pub max_body_bytes: Option<u64>,
    /// Methods accepted; others get 405 with `Allow`.
    /// Default: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS.
    pub allowed_methods: Option<Vec<Method>>,
    /// Media ranges accepted as `Content-Type` of requests that carry a body; others (and a
    /// missing `Content-Type`) get 415. Ranges: `type/subtype`, `type/*`, `type/*+suffix`,
    /// `*/*`. Default: `application/json`, `application/*+json`,
    /// `application/x-www-form-urlencoded`, `multipart/form-data`.
    pub allowed_content_types: Option<Vec<String>>,
    /// Most request headers (pseudo-headers not counted); more get 431. Default 100.
    pub max_header_count: Option<u32>,
    /// Most bytes of header names plus values (pseudo-headers not counted); more get 431.
    /// Default 61440 (Envoy's default request-header limit).
    pub max_header_bytes: Option<u32>,
    /// Credentials in the query string. Default: deny the standard names.
    pub query_credentials: Option<QueryCredentialsConfig>,
    /// Shape limits for JSON request bodies (`application/json`, `application/*+json`),
    /// checked in one pass over the bytes before any schema work; a body over a limit, or not
    /// JSON at all, gets 400. Always on; each field has a default.
    pub json: Option<JsonLimitsConfig>,
}

/// JSON shape limits. An absent field takes the top-level value, then the default.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JsonLimitsConfig {
    /// Deepest nesting of arrays and objects. Default 32.
    pub max_depth: Option<u32>,
    /// Most members in one object. Default 1000.
    pub max_object_keys: Option<u32>,
    /// Most elements in one array. Default 10000.
    pub max_array_length: Option<u32>,
    /// Longest string, member names included, in bytes as sent. Default 65536.
    pub max_string_length: Option<u32>,
    /// Longest number literal, in characters. Default 40.
    pub max_number_length: Option<u32>,
    /// An object naming a member twice: `deny` (default) or `allow`.
    pub duplicate_keys: Option<DuplicateKeys>,
}

/// What to do with an object that names a member twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DuplicateKeys {
    /// Refuse the body (400): a checker and an upstream could read different values.
    Deny,
    /// Accept it.
    Allow,
}

/// What to do with query parameters that carry credentials.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QueryCredentialsConfig {
    /// `deny` (default) refuses the request with 400; `allow` turns the check off.
    #[serde(default)]
    pub action: QueryCredentialsAction,
    /// Parameter names that count as credentials, compared case-insensitively after
    /// percent-decoding. Default: `access_token`, `api_key`, `apikey`, `token`, `jwt`.
    pub names: Option<Vec<String>>,
}

/// The action for credentials found in the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum QueryCredentialsAction {
    /// Refuse the request with 400.
    #[default]
    Deny,
    /// Do not check.
    Allow,
}

/// A route: which requests it selects, and the settings that apply to them.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name, used in logs and metrics.
    pub name: String,
    /// Which requests this route selects.
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    /// Limits overriding the top-level ones, field by field.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Who may call this route. Default: `jwt.default`.
    pub auth: Option<AuthConfig>,
    /// CORS for this route, replacing the top-level `cors` as a whole.
    pub cors: Option<CorsConfig>,
    /// Response body buffering for this route, overriding `response` field by field.
    #[serde(default)]
    pub response: RouteResponseConfig,
    /// Rate limit policies for this route (names from `rate_limits.policies`), replacing
    /// `rate_limits.default`; `[]` for none.
    pub rate_limits: Option<Vec<String>>,
}

/// Per-route response body settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteResponseConfig {
    /// Largest response body buffered for field rules and the schema allowlist.
    pub max_body_bytes: Option<u64>,
    /// A larger body: `fail` (502 problem) or `pass` (forwarded as is, unredacted).
    pub oversize: Option<Oversize>,
}

/// Cross-origin resource sharing (the Fetch standard's CORS protocol).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to read responses: exact origins (`https://app.example.com`,
    /// `http://localhost:3000`), anchored subdomain patterns (`https://*.example.com`, one
    /// leading `*` label, matching one or more labels), or `*` (any origin; not with
    /// credentials). `null` only with `allow_null_origin`.
    pub allowed_origins: Vec<String>,
    /// Accept the origin `null` (sandboxed frames, `file:` pages). Default false: any page can
    /// make its origin `null`.
    #[serde(default)]
    pub allow_null_origin: bool,
    /// Methods allowed cross-origin. Default: GET, HEAD, POST.
    pub allowed_methods: Option<Vec<Method>>,
    /// Request headers allowed cross-origin (besides CORS-safelisted ones). Default none.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers scripts may read (`Access-Control-Expose-Headers`). Default none.
    #[serde(default)]
    pub exposed_headers: Vec<String>,
    /// Allow credentialed requests (cookies, HTTP auth). Default false.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Seconds a browser may cache a preflight (`Access-Control-Max-Age`), at most 86400.
    /// Default 600.
    pub max_age: Option<u32>,
    /// Answer Private Network Access preflights (`Access-Control-Allow-Private-Network`).
    /// Default false.
    #[serde(default)]
    pub allow_private_network: bool,
    /// Which requests from origins not allowed are refused with 403 (browsers already keep the
    /// response from the page; refusing also stops the request's side effects, a CSRF
    /// hardening): `unsafe_methods` (default: all but GET, HEAD, OPTIONS), `all`, `none`.
    #[serde(default)]
    pub refuse_disallowed: RefuseDisallowed,
    /// `enforce` (default), or `report_only`: decisions are logged and counted but nothing is
    /// refused and no preflight is answered that would have been refused.
    #[serde(default)]
    pub mode: CorsMode,
}

/// Which requests from origins not allowed are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefuseDisallowed {
    /// Refuse all but GET, HEAD and OPTIONS.
    #[default]
    UnsafeMethods,
    /// Refuse every request.
    All,
    /// Refuse none; only withhold CORS headers.
    None,
}

/// Whether CORS decisions are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CorsMode {
    /// Refuse what the policy refuses.
    #[default]
    Enforce,
    /// Log and count only.
    ReportOnly,
}

/// A route selector. Exactly one of `path` and `prefix` is required.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// A path template matched against the whole normalised path, e.g. `/users/{id}`;
    /// `{name}` matches one non-empty segment.
    pub path: Option<String>,
    /// A segment-aware path prefix, e.g. `/api` (matches `/api` and `/api/x`, not `/apix`).
    pub prefix: Option<String>,
    /// Methods this route selects. Default: all.
    pub methods: Option<Vec<Method>>,
}

/// How denials are rendered as RFC 9457 problem details.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProblemConfig {
    /// Prefix of every problem `type` URI; the reason's slug is appended
    /// (e.g. `body-too-large`). Default `urn:api-guard:problem:`.
    pub type_base: Option<String>,
}

/// A configuration that cannot be used, with the JSON path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where in the document the problem is, e.g. `routes[1].match.path` (`.` for the root).
    pub path: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
    /// The line of the document the parser stopped at (1-based), where it knows one.
    pub line: Option<usize>,
}

impl ConfigError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { path: path.into(), message: message.into(), line: None }
    }

    fn at_line(self, line: usize) -> ConfigError {
        ConfigError { line: Some(line), ..self }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid api-guard configuration at `{}`: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses and compiles a configuration document.
///
/// Empty or all-whitespace input means the defaults. Otherwise the input must be one JSON
/// object; a JSON string holding such an object is accepted too, because some hosts deliver an
/// object config as a JSON-encoded string.
pub fn parse(bytes: &[u8]) -> Result<Policy, ConfigError> {
    Policy::compile(parse_document(bytes)?)
}

/// Deserialises the document without compiling it.
pub fn parse_document(bytes: &[u8]) -> Result<Config, ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Config::default());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ConfigError::new(".", format!("configuration is not UTF-8 ({e})")))?;
    // A JSON string holding a document: unwrap it once.
    if text.trim_start().starts_with('"') {
        let inner: String = serde_json::from_slice(text.as_bytes())
            .map_err(|e| ConfigError::new(".", format!("configuration is not valid JSON: {e}")))?;
        return parse_document(inner.as_bytes());
    }
    // serde would also read a struct from an array of its fields; the document is an object.
    if !text.trim_start().starts_with('{') {
        return Err(ConfigError::new(".", "configuration must be a JSON object"));
    }
    reader::read::<Config>(text).map_err(|e| {
        let (line, column) = e.position(text);
        match e.is_syntax() {
            // A syntax error has no field: where it is in the text is all there is to say.
            true => ConfigError::new(".", format!("{} at line {line} column {column}", e.message())),
            false => ConfigError::new(e.path(), in_users_words(e.message())),
        }
        .at_line(line)
    })
}

/// Field names another gateway filter uses for something api-guard spells differently: the
/// name, and what to write instead.
const FOREIGN_FIELDS: &[(&str, &str)] = &[
    ("header_name", "`claim_to_headers` entries are `{\"claim\": ..., \"header\": ...}`; write `header`"),
    ("claim_name", "`claim_to_headers` entries are `{\"claim\": ..., \"header\": ...}`; write `claim`"),
    ("inline_string", "write the key set itself as `local_jwks`, an object with `keys`"),
    ("local_jwks.inline_string", "write the key set itself as `local_jwks`, an object with `keys`"),
    ("timeout", "write `timeout_ms`, a whole number of milliseconds (`\"2s\"` is `2000`)"),
    ("forward_payload_header", "verified claims reach the upstream through `claim_to_headers`"),
    ("payload_in_metadata", "verified claims reach the upstream through `claim_to_headers`"),
    ("from_params", "`from_params` is a list of query parameter names"),
];

/// serde's wording (`invalid type: string "x", expected u32`, `unknown variant`) in the words
/// of someone writing the document.
fn in_users_words(raw: &str) -> String {
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let choices = backticked(expected);
        let hint = FOREIGN_FIELDS
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, hint)| format!("; {hint}"))
            .or_else(|| closest(field, &choices).map(|c| format!("; did you mean `{c}`?")))
            .unwrap_or_default();
        let known = match choices.is_empty() {
            true => "no fields are allowed here".to_string(),
            false => format!("the fields here are {}", choices.join(", ")),
        };
        return format!("unknown field `{field}` ({known}){hint}");
    }
    if let Some(rest) = raw.strip_prefix("unknown variant `") {
        let (value, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let choices = backticked(expected);
        let hint = closest(value, &choices).map(|c| format!("; did you mean `{c}`?")).unwrap_or_default();
        return format!("must be one of {}, not `{value}`{hint}", choices.join(", "));
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return format!("`{field}` is required here");
    }
    if let Some(rest) = raw.strip_prefix("duplicate field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return format!("`{field}` is given twice");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = raw.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                return format!("must be {}, not {}", expected_words(expected), found_words(found));
            }
        }
    }
    if let Some(rest) = raw.strip_prefix("invalid length ") {
        if let Some((n, expected)) = rest.split_once(", expected ") {
            // serde also reads an object's fields from a list: it is the list that is wrong.
            if expected.starts_with("struct ") {
                return "must be an object, not a list".into();
            }
            return format!("must have {}, not {n}", expected_words(expected));
        }
    }
    raw.to_string()
}

/// The `a`, `b` names in serde's "expected one of `a`, `b`".
fn backticked(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(|s| format!("`{s}`")).collect()
}

/// The choice nearest `word` (a typo: at most a quarter of its letters off), if any.
fn closest(word: &str, choices: &[String]) -> Option<String> {
    let best =
        choices.iter().map(|c| (edit_distance(word, c.trim_matches('`')), c)).min_by_key(|(d, _)| *d)?;
    (best.0 > 0 && best.0 <= (word.len() / 4).max(1)).then(|| best.1.trim_matches('`').to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let value = (prev + usize::from(ca != *cb)).min(above + 1).min(left + 1);
            prev = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = value;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// What serde expected, as a reader of the document says it.
fn expected_words(expected: &str) -> String {
    let words = match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" | "a char" => "a string",
        "a sequence" => "a list",
        "a map" => "an object",
        e if e.starts_with("struct ") => "an object",
        e if e.starts_with("internally tagged enum") => "an object with a `type`",
        e => return e.replace("a sequence", "a list").replace("a map", "an object"),
    };
    words.to_string()
}

/// What the document had instead, in the same words.
fn found_words(found: &str) -> String {
    let value = || found.split('`').nth(1).unwrap_or(found).to_string();
    match found {
        "map" => "an object".into(),
        "sequence" => "a list".into(),
        "null" | "unit value" => "null".into(),
        f if f.starts_with("string ") => format!("the {f}"),
        f if f.starts_with("integer ") || f.starts_with("floating point ") || f.starts_with("boolean ") => {
            value()
        }
        f => f.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(doc: &str) -> ConfigError {
        parse(doc.as_bytes()).expect_err("config should be refused")
    }

    #[test]
    fn empty_means_defaults() {
        for doc in ["", "  \n", "{}", "\"{}\""] {
            assert!(parse(doc.as_bytes()).is_ok(), "{doc:?}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let e = err(r#"{"limits":{"max_body_byte":10}}"#);
        assert_eq!(e.path, "limits.max_body_byte");
        assert!(e.message.contains("unknown field `max_body_byte`"), "{e}");

        let e = err(r#"{"routes":[{"name":"a","match":{"prefix":"/"},"limits":{"nope":1}}]}"#);
        assert_eq!(e.path, "routes[0].limits.nope");
        assert!(e.to_string().contains("`routes[0].limits.nope`"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = err(r#"{"limits":{"max_body_bytes":"big"}}"#);
        assert_eq!(e.path, "limits.max_body_bytes");
        let e = err(r#"{"limits":{"allowed_methods":["FETCH"]}}"#);
        assert_eq!(e.path, "limits.allowed_methods[0]");
        let e = err(r#"{"limits":{"query_credentials":{"action":"maybe"}}}"#);
        assert_eq!(e.path, "limits.query_credentials.action");
        // Inside a kind of an internally tagged enum too, and after its `type`.
        let e = err(r#"{"jwt":{"providers":{},"default":{"providers":"idp","type":"jwt"}}}"#);
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            ("jwt.default.providers", "must be a list, not the string \"idp\"")
        );
        let e =
            err(r#"{"response":{"rules":[{"select":["$.a"],"action":{"type":"mask","keep_last":"4"}}]}}"#);
        assert_eq!(e.path, "response.rules[0].action.keep_last");
    }

    #[test]
    fn not_json_is_refused() {
        let e = err("{not json");
        assert_eq!(e.path, ".");
        assert!(e.message.contains("line 1"), "{e}");
        let e = err("[1,2]");
        assert!(e.message.contains("must be a JSON object"), "{e}");
        assert!(parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn string_wrapped_documents_are_unwrapped() {
        let e = err(r#""{\"limits\":{\"max_body_bytes\":-1}}""#);
        assert_eq!(e.path, "limits.max_body_bytes");
    }

    #[test]
    fn messages_are_in_the_users_words() {
        let cases = [
            (
                r#"{"limits":{"max_body_bytes":"big"}}"#,
                r#"must be a whole number, 0 or more, not the string "big""#,
            ),
            (r#"{"limits":{"max_body_bytes":-1}}"#, "must be a whole number, 0 or more, not -1"),
            (r#"{"limits":{"max_header_count":1.5}}"#, "not 1.5"),
            (r#"{"limits":{"allowed_methods":"GET"}}"#, r#"must be a list, not the string "GET""#),
            (r#"{"limits":[]}"#, "must be an object, not a list"),
            (r#"{"limits":{"query_credentials":{"action":"maybe"}}}"#, "must be one of `deny`"),
            (r#"{"limits":{"max_body_byte":10}}"#, "did you mean `max_body_bytes`?"),
            (r#"{"jwt":{}}"#, "`providers` is required here"),
        ];
        for (doc, words) in cases {
            let e = err(doc);
            assert!(e.message.contains(words), "{doc}: {e}");
            for rust in [
                "expected u",
                "invalid type",
                "invalid value",
                "unknown variant",
                "struct ",
                "sequence",
                " map",
            ] {
                assert!(!e.message.contains(rust), "{doc}: {e}");
            }
            assert!(!e.message.contains(" at line "), "the path says where: {e}");
            assert_eq!(e.line, Some(1), "{doc}");
        }
    }

    #[test]
    fn a_kind_is_named_by_its_name_only() {
        // A variant's index would name the first kind, `public`.
        let e = err(r#"{"routes":[{"name":"a","match":{"prefix":"/"},"auth":{"type":0}}]}"#);
        assert_eq!(e.path, "routes[0].auth.type");
        let e = err(r#"{"limits":{"query_credentials":{"action":0}}}"#);
        assert_eq!(e.path, "limits.query_credentials.action");
        assert!(e.message.starts_with("must be one of `deny`"), "{e}");
        let e = err(r#"{"limits":{"query_credentials":{"action":{"deny":null}}}}"#);
        assert!(e.message.ends_with("not an object"), "{e}");
    }

    #[test]
    fn text_after_the_document_is_refused() {
        let e = err(r#"{"limits":{}} {"limits":{"max_body_bytes":1}}"#);
        assert_eq!(e.path, ".");
        assert!(e.message.contains("trailing characters"), "{e}");
        assert!(parse(b"{\"limits\":{}}\n\t ").is_ok());
    }

    #[test]
    fn other_filters_spellings_get_the_api_guard_one() {
        let jwt = |provider: &str| {
            format!(
                r#"{{"jwt":{{"providers":{{"idp":{{"issuer":"i","audiences":["a"],"algorithms":["RS256"],{provider}}}}}}}}}"#
            )
        };
        let e = err(&jwt(r#""remote_jwks":{"http_uri":{"uri":"http://k","cluster":"c","timeout":"2s"}}"#));
        assert_eq!(e.path, "jwt.providers.idp.remote_jwks.http_uri.timeout");
        assert!(e.message.contains("`timeout_ms`"), "{e}");
        let e = err(&jwt(
            r#""local_jwks":{"keys":[]},"claim_to_headers":[{"header_name":"x-sub","claim_name":"sub"}]"#,
        ));
        assert!(e.message.contains("write `header`"), "{e}");
    }
}
