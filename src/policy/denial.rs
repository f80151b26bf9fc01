//! Denials: the closed set of reasons api-guard refuses a request for, and the one function
//! that turns a reason into the response, the metric and the log line.
//!
//! Every denial has the same shape: an RFC 9457 `application/problem+json` body with a stable
//! `type` per reason, a `title`, the `status`, a fixed `detail`, and the request id. Nothing in
//! the body or the log line comes from the request except the (validated) request id, so a
//! denial can never echo a secret back.

use serde::Serialize;

/// Why a request was refused. Closed: adding a reason means adding its row to every mapping
/// below, which the compiler enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The path is not absolute, has a broken escape, or encodes a slash, backslash or NUL.
    InvalidPath,
    /// Too many request headers, or too many header bytes.
    HeadersTooLarge,
    /// The method is not allowed for this route.
    MethodNotAllowed,
    /// A credential was sent as a query parameter.
    CredentialInQuery,
    /// The body is larger than allowed (declared or counted).
    BodyTooLarge,
    /// The body's `Content-Type` is missing or not allowed.
    UnsupportedMediaType,
    /// A token is required and none was sent.
    TokenMissing,
    /// The token is malformed, unverifiable, expired or otherwise not acceptable.
    TokenInvalid,
    /// The token lacks a required scope.
    InsufficientScope,
    /// The caller may not use this route (a claim condition, a binding, or a `deny` rule).
    AccessDenied,
    /// The keys needed to check the token could not be loaded (the issuer is unreachable).
    KeysUnavailable,
    /// The client sent too many tokens that failed verification; its unverified tokens are
    /// refused unchecked until its window ends (see `jwt::budget`).
    VerificationBudget,
    /// The gateway has run as many signature checks this second as it may for an over-budget
    /// address's fresh connections (`jwt.verification_budget.max_checks_per_second`): overload,
    /// not the client's fault.
    VerificationOverload,
    /// A header spelled with underscores names a header the gateway sets (`x_user` for
    /// `x-user`): CGI-style upstreams read both as one.
    AmbiguousHeader,
    /// A method override (`X-HTTP-Method-Override`, `_method`, ...) names another method than
    /// the request's, which frameworks would execute instead of the one judged.
    MethodOverride,
    /// A JSON body is not well-formed, or breaks a JSON shape limit.
    InvalidJson,
    /// The API description documents no operation at this path.
    UnknownOperation,
    /// A parameter or the body does not match the operation's description.
    InvalidRequest,
    /// The operation is deprecated and the policy refuses deprecated operations.
    DeprecatedOperation,
    /// A CORS preflight that the policy does not allow, or a request from an origin that
    /// may not use this method.
    CorsRejected,
    /// The upstream's response could not be redacted (too large, compressed, or not the JSON
    /// it claimed to be), so it was withheld.
    ResponseWithheld,
    /// The gateway lacks a setting the policy needs to be enforced (Envoy's
    /// `allow_on_headers_stop_iteration`), so the request was failed rather than let through
    /// unchecked or left to hang.
    HostMisconfigured,
    /// The caller is over a rate limit (`rate_limits`).
    RateLimited,
    /// A rate limit could not be counted and its policy fails closed.
    RateLimitUnavailable,
    /// The route takes an API key and none was sent.
    ApiKeyMissing,
    /// The API key sent is not one of `api_keys` (unknown or revoked).
    ApiKeyInvalid,
    /// A DPoP-bound token came without a good proof (RFC 9449 `invalid_dpop_proof`).
    DpopProofInvalid,
}

impl Reason {
    /// Every reason, for metric registration and tests.
    pub const ALL: [Reason; 27] = [
        Reason::InvalidPath,
        Reason::HeadersTooLarge,
        Reason::MethodNotAllowed,
        Reason::CredentialInQuery,
        Reason::BodyTooLarge,
        Reason::UnsupportedMediaType,
        Reason::TokenMissing,
        Reason::TokenInvalid,
        Reason::InsufficientScope,
        Reason::AccessDenied,
        Reason::KeysUnavailable,
        Reason::VerificationBudget,
        Reason::VerificationOverload,
        Reason::AmbiguousHeader,
        Reason::MethodOverride,
        Reason::InvalidJson,
        Reason::UnknownOperation,
        Reason::InvalidRequest,
        Reason::DeprecatedOperation,
        Reason::CorsRejected,
        Reason::ResponseWithheld,
        Reason::HostMisconfigured,
        Reason::RateLimited,
        Reason::RateLimitUnavailable,
        Reason::ApiKeyMissing,
        Reason::ApiKeyInvalid,
        Reason::DpopProofInvalid,
    ];

    /// HTTP status of the denial.
    pub fn status(self) -> u16 {
        match self {
            Reason::InvalidPath => 400,
            Reason::HeadersTooLarge => 431,
            Reason::MethodNotAllowed => 405,
            Reason::CredentialInQuery => 400,
            Reason::BodyTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::TokenMissing | Reason::TokenInvalid => 401,
            Reason::ApiKeyMissing | Reason::ApiKeyInvalid | Reason::DpopProofInvalid => 401,
            Reason::InsufficientScope | Reason::AccessDenied | Reason::CorsRejected => 403,
            Reason::KeysUnavailable | Reason::VerificationOverload => 503,
            Reason::VerificationBudget | Reason::RateLimited => 429,
            Reason::RateLimitUnavailable => 503,
            Reason::ResponseWithheld => 502,
            Reason::HostMisconfigured => 500,
            Reason::InvalidJson | Reason::InvalidRequest => 400,
            Reason::AmbiguousHeader | Reason::MethodOverride => 400,
            Reason::UnknownOperation => 404,
            Reason::DeprecatedOperation => 410,
        }
    }

    /// Stable identifier: the end of the problem `type` URI, and (with `_`) the metric and
    /// log name.
    pub fn slug(self) -> &'static str {
        match self {
            Reason::InvalidPath => "invalid-path",
            Reason::HeadersTooLarge => "headers-too-large",
            Reason::MethodNotAllowed => "method-not-allowed",
            Reason::CredentialInQuery => "credential-in-query",
            Reason::BodyTooLarge => "body-too-large",
            Reason::UnsupportedMediaType => "unsupported-media-type",
            Reason::TokenMissing => "token-missing",
            Reason::TokenInvalid => "token-invalid",
            Reason::InsufficientScope => "insufficient-scope",
            Reason::AccessDenied => "access-denied",
            Reason::KeysUnavailable => "keys-unavailable",
            Reason::VerificationBudget => "verification-budget",
            Reason::VerificationOverload => "verification-overload",
            Reason::AmbiguousHeader => "ambiguous-header",
            Reason::MethodOverride => "method-override",
            Reason::InvalidJson => "invalid-json",
            Reason::UnknownOperation => "unknown-operation",
            Reason::InvalidRequest => "invalid-request",
            Reason::DeprecatedOperation => "deprecated-operation",
            Reason::CorsRejected => "cors-rejected",
            Reason::ResponseWithheld => "response-withheld",
            Reason::HostMisconfigured => "host-misconfigured",
            Reason::RateLimited => "rate-limited",
            Reason::RateLimitUnavailable => "rate-limit-unavailable",
            Reason::ApiKeyMissing => "api-key-missing",
            Reason::ApiKeyInvalid => "api-key-invalid",
            Reason::DpopProofInvalid => "dpop-proof-invalid",
        }
    }

    /// Short, human-readable summary (RFC 9457 `title`).
    pub fn title(self) -> &'static str {
        match self {
            Reason::InvalidPath => "Invalid request path",
            Reason::HeadersTooLarge => "Request header fields too large",
            Reason::MethodNotAllowed => "Method not allowed",
            Reason::CredentialInQuery => "Credentials in query string",
            Reason::BodyTooLarge => "Request body too large",
            Reason::UnsupportedMediaType => "Unsupported media type",
            Reason::TokenMissing => "Authentication required",
            Reason::TokenInvalid => "Invalid token",
            Reason::InsufficientScope => "Insufficient scope",
            Reason::AccessDenied => "Access denied",
            Reason::KeysUnavailable => "Token keys unavailable",
            Reason::VerificationBudget => "Too many invalid tokens",
            Reason::VerificationOverload => "Token verification busy",
            Reason::AmbiguousHeader => "Ambiguous request header",
            Reason::MethodOverride => "Method override refused",
            Reason::InvalidJson => "Invalid JSON body",
            Reason::UnknownOperation => "Unknown operation",
            Reason::InvalidRequest => "Invalid request",
            Reason::DeprecatedOperation => "Operation retired",
            Reason::CorsRejected => "Cross-origin request refused",
            Reason::ResponseWithheld => "Response withheld",
            Reason::HostMisconfigured => "Gateway misconfigured",
            Reason::RateLimited => "Too many requests",
            Reason::RateLimitUnavailable => "Rate limit unavailable",
            Reason::ApiKeyMissing => "API key required",
            Reason::ApiKeyInvalid => "Invalid API key",
            Reason::DpopProofInvalid => "Invalid DPoP proof",
        }
    }

    /// Explanation for the client (RFC 9457 `detail`). Fixed text: never request data.
    pub fn detail(self) -> &'static str {
        match self {
            Reason::InvalidPath => {
                "The request path is malformed or encodes a slash, backslash or control character."
            }
            Reason::HeadersTooLarge => "The request carries too many header fields or too many header bytes.",
            Reason::MethodNotAllowed => "The method is not allowed for this resource; see the Allow header.",
            Reason::CredentialInQuery => {
                "Credentials must not be sent in the query string; send them in a header instead."
            }
            Reason::BodyTooLarge => "The request body is larger than this API accepts.",
            Reason::UnsupportedMediaType => {
                "The request body's Content-Type is missing or not accepted here."
            }
            Reason::TokenMissing => "This resource requires a bearer token.",
            Reason::TokenInvalid => "The bearer token is malformed, expired, or cannot be verified.",
            Reason::InsufficientScope => "The bearer token does not grant the scope this resource requires.",
            Reason::AccessDenied => "The caller is not allowed to use this resource.",
            Reason::KeysUnavailable => {
                "The keys needed to check the token are not available yet; retry later."
            }
            Reason::VerificationBudget => {
                "Too many tokens from this client failed verification; retry later, with a valid token."
            }
            Reason::VerificationOverload => {
                "The gateway is checking as many new tokens as it can; retry in a second."
            }
            Reason::AmbiguousHeader => {
                "A request header spelled with underscores names a header this gateway sets; do not send it."
            }
            Reason::MethodOverride => {
                "The request asks to be treated as another method; send that method instead."
            }
            Reason::InvalidJson => {
                "The body is not well-formed JSON or exceeds a JSON shape limit; see errors."
            }
            Reason::UnknownOperation => "This API documents no operation at this path.",
            Reason::InvalidRequest => "The request does not match the API description; see errors.",
            Reason::DeprecatedOperation => "This operation is deprecated and no longer served.",
            Reason::CorsRejected => {
                "The request's origin, method or headers are not allowed by this API's CORS policy."
            }
            Reason::ResponseWithheld => {
                "The upstream response could not be checked for sensitive fields, so it was withheld."
            }
            Reason::HostMisconfigured => {
                "The gateway is missing a setting this API's checks need; its operator has been told in the gateway's log."
            }
            Reason::RateLimited => {
                "This client has sent more requests than its limit allows; retry after the time in Retry-After."
            }
            Reason::RateLimitUnavailable => "The gateway cannot count requests against this API's limits; retry later.",
            Reason::ApiKeyMissing => "This resource requires an API key.",
            Reason::ApiKeyInvalid => "The API key is not one this API accepts.",
            Reason::DpopProofInvalid => {
                "The DPoP proof is missing, malformed, not for this request, stale, or already used."
            }
        }
    }
}

/// A decision to refuse a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Why.
    pub reason: Reason,
    /// For [`Reason::MethodNotAllowed`]: the `Allow` header value.
    pub allow: Option<Box<str>>,
    /// For [`Reason::InsufficientScope`]: the scopes the resource requires.
    pub scope: Option<Box<str>>,
    /// A finer cause for the log line only (e.g. `expired` for an invalid token).
    pub cause: Option<&'static str>,
    /// What exactly failed validation (the problem's `errors` member); empty for most reasons.
    pub errors: Vec<ProblemError>,
    /// Seconds for `Retry-After`, where the denial knows when to come back.
    pub retry_after: Option<u32>,
    /// The JWT provider whose token was judged (index into the policy's providers), for the
    /// `provider` label of the request counter; `None` where no token was. (`u16` keeps the
    /// denial small: it travels in every `Result` of the request path.)
    pub provider: Option<u16>,
    /// Further fields the response carries (a rate limit's `RateLimit-Policy` and
    /// `RateLimit`), already formatted by the rule that refused. Boxed: most denials have
    /// none, and a denial travels in every `Result` of the request path.
    pub headers: Option<Box<Fields>>,
}

/// Response fields a denial carries besides its own (see [`Denial::headers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, String)>);

/// One entry of a problem's `errors` array: where, which rule, and why, in words that never
/// repeat the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemError {
    /// RFC 6901 pointer into the request seen as `{"path":…, "query":…, "header":…,
    /// "body":…}`: `/body/items/0/price`, `/query/limit`.
    pub pointer: String,
    /// The rule that failed: a JSON Schema keyword, `required`, or a JSON limit's name.
    pub keyword: String,
    /// What was expected.
    pub message: String,
}

impl Denial {
    /// A denial with no extra headers.
    pub fn new(reason: Reason) -> Denial {
        Denial {
            reason,
            allow: None,
            scope: None,
            cause: None,
            errors: Vec::new(),
            retry_after: None,
            provider: None,
            headers: None,
        }
    }

    /// A denial listing what failed validation.
    pub fn with_errors(reason: Reason, errors: Vec<ProblemError>) -> Denial {
        Denial { errors, ..Denial::new(reason) }
    }

    /// A 401 `invalid_token`, with the token error as the logged cause.
    pub fn invalid_token(e: super::jwt::TokenError) -> Denial {
        Denial { cause: Some(e.name()), ..Denial::new(Reason::TokenInvalid) }
    }

    /// A 403 `insufficient_scope` naming the required scopes.
    pub fn insufficient_scope(scope: String) -> Denial {
        Denial { scope: Some(scope.into_boxed_str()), ..Denial::new(Reason::InsufficientScope) }
    }
}

/// Settings that shape every denial.
#[derive(Debug, Clone)]
pub struct Rendering {
    /// Prefix of problem `type` URIs.
    pub type_base: String,
    /// `realm` of `WWW-Authenticate` challenges.
    pub realm: String,
    /// Headers every response api-guard answers itself carries (the response hardening
    /// preset, e.g. HSTS and `nosniff`).
    pub local_headers: Vec<(String, String)>,
    /// The RFC 9728 metadata URL every Bearer challenge names (`resource_metadata`).
    pub resource_metadata: Option<String>,
    /// The DPoP proof algorithms accepted (space-separated), where a provider takes DPoP:
    /// token challenges then offer `DPoP algs="…"` too (RFC 9449 §7.1).
    pub dpop_algs: Option<String>,
}

/// The RFC 6750 §3 challenge for an auth denial: no `error` when the token was missing,
/// `invalid_token` when it was bad, `insufficient_scope` with `scope` when it lacked one.
fn challenge(denial: &Denial, rendering: &Rendering) -> Option<String> {
    let realm = &rendering.realm;
    let bearer = |c: String| {
        let c = match &rendering.resource_metadata {
            // RFC 9728 §5.1: where a client that holds no token learns where to get one.
            Some(url) => format!("{c}, resource_metadata=\"{url}\""),
            None => c,
        };
        Some(match &rendering.dpop_algs {
            Some(algs) => format!("{c}, DPoP algs=\"{algs}\""),
            None => c,
        })
    };
    match denial.reason {
        Reason::TokenMissing => bearer(format!("Bearer realm=\"{realm}\"")),
        Reason::TokenInvalid => bearer(format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")),
        // No registered scheme carries API keys; `ApiKey` names what to send (RFC 9110 §11.6.1
        // asks every 401 for a challenge).
        Reason::ApiKeyMissing | Reason::ApiKeyInvalid => Some(format!("ApiKey realm=\"{realm}\"")),
        Reason::DpopProofInvalid => Some(format!(
            "DPoP algs=\"{}\", error=\"invalid_dpop_proof\"",
            rendering.dpop_algs.as_deref().unwrap_or("")
        )),
        Reason::InsufficientScope => bearer(format!(
            "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{}\"",
            denial.scope.as_deref().unwrap_or("")
        )),
        _ => None,
    }
}

/// A complete local response, ready for the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers (besides what the host adds itself).
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
    /// Why, for the gateway's access log (Envoy's `%RESPONSE_CODE_DETAILS%`):
    /// `api_guard.<reason>` ([`super::telemetry::details`]).
    pub details: String,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "<[ProblemError]>::is_empty")]
    errors: &'a [ProblemError],
}

#[derive(Serialize)]
struct DenialLog<'a> {
    event: &'static str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'static str>,
    status: u16,
    /// One of the methods api-guard knows, or null: never the client's own text.
    method: Option<&'static str>,
    /// The matched route's configured name, or null.
    route: Option<&'a str>,
    request_id: &'a str,
}

/// What a denial's response and log line say about its request: all from the configuration,
/// the closed set of methods, and the validated request id; nothing the client wrote.
#[derive(Debug, Clone, Copy)]
pub struct RequestTag<'a> {
    /// The matched route's name (`""` when none matched).
    pub route: &'a str,
    /// The request's method, where it is one api-guard knows.
    pub method: Option<super::method::Method>,
    /// The request id (see [`super::request_id`]).
    pub request_id: &'a str,
}

/// Everything the host needs to carry out a denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The response to send.
    pub response: LocalResponse,
    /// Why (the `reason` label of its counter, see [`super::telemetry`]).
    pub reason: Reason,
    /// The finer cause, if any (the `cause` label).
    pub cause: Option<&'static str>,
    /// The provider whose token was judged, if any (the `provider` label).
    pub provider: Option<usize>,
    /// One JSON log line: reason, status, route, request id. No header values.
    pub log_line: String,
}

/// Maps a denial to its response, metric and log line. The only place that does.
///
/// `tag` names the request (its route, method and validated request id); `cors` are the request's CORS headers on a CORS
/// route (see [`super::HeadDecision::cors`]): an allowed origin may then read the denial (a
/// script can show why), and caches key on the origin either way.
pub fn render(
    denial: &Denial,
    rendering: &Rendering,
    tag: &RequestTag<'_>,
    cors: Option<&[(String, String)]>,
) -> Rendered {
    let request_id = tag.request_id;
    let reason = denial.reason;
    let problem = Problem {
        type_uri: format!("{}{}", rendering.type_base, reason.slug()),
        title: reason.title(),
        status: reason.status(),
        detail: reason.detail(),
        request_id,
        errors: &denial.errors,
    };
    // Serialising these plain structs cannot fail; fall back to an empty body regardless.
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut headers = vec![
        ("content-type".to_string(), "application/problem+json".to_string()),
        ("cache-control".to_string(), "no-store".to_string()),
    ];
    if let Some(allow) = &denial.allow {
        headers.push(("allow".to_string(), allow.to_string()));
    }
    if let Some(c) = challenge(denial, rendering) {
        headers.push(("www-authenticate".to_string(), c));
    }
    match (denial.retry_after, reason) {
        (Some(s), _) => headers.push(("retry-after".to_string(), s.to_string())),
        (None, Reason::KeysUnavailable) => headers.push(("retry-after".to_string(), "5".to_string())),
        _ => {}
    }
    if let Some(extra) = &denial.headers {
        headers.extend(extra.0.iter().cloned());
    }
    if let Some(cors) = cors {
        headers.extend(cors.iter().cloned());
        headers.push(("vary".to_string(), "Origin".to_string()));
    }
    headers.extend(rendering.local_headers.iter().cloned());
    Rendered {
        response: LocalResponse {
            status: reason.status(),
            headers,
            body,
            details: super::telemetry::details(&super::telemetry::reason_label(reason)),
        },
        reason,
        cause: denial.cause,
        provider: denial.provider.map(usize::from),
        log_line: log_line("api_guard_denied", denial, tag),
    }
}

/// The generic problem that replaces an upstream 5xx body (`response.safe_errors`): nothing
/// of the original, the request id kept so the failure can be found upstream.
pub fn safe_error(status: u16, rendering: &Rendering, request_id: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "type": format!("{}upstream-error", rendering.type_base),
        "title": "Upstream error",
        "status": status,
        "detail": "The service could not handle the request.",
        "request_id": request_id,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The log line for a denial a report-only policy did not send.
pub fn report_only_log_line(denial: &Denial, tag: &RequestTag<'_>) -> String {
    log_line("api_guard_report_only_denied", denial, tag)
}

fn log_line(event: &'static str, denial: &Denial, tag: &RequestTag<'_>) -> String {
    let log = DenialLog {
        event,
        reason: denial.reason.slug(),
        cause: denial.cause,
        status: denial.reason.status(),
        method: tag.method.map(super::method::Method::as_str),
        route: (!tag.route.is_empty()).then_some(tag.route),
        request_id: tag.request_id,
    };
    serde_json::to_string(&log).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_reason_has_distinct_stable_names() {
        let slugs: HashSet<_> = Reason::ALL.iter().map(|r| r.slug()).collect();
        assert_eq!(slugs.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert!((400..600).contains(&r.status()));
            assert!(!r.detail().is_empty() && !r.title().is_empty());
        }
    }

    fn tag<'a>(route: &'a str, request_id: &'a str) -> RequestTag<'a> {
        RequestTag { route, method: Some(super::super::method::Method::GET), request_id }
    }

    fn rendering() -> Rendering {
        Rendering {
            type_base: "urn:api-guard:problem:".into(),
            realm: "api".into(),
            local_headers: Vec::new(),
            resource_metadata: None,
            dpop_algs: None,
        }
    }

    fn www(out: &Rendered) -> Option<&str> {
        out.response.headers.iter().find(|(n, _)| n == "www-authenticate").map(|(_, v)| v.as_str())
    }

    #[test]
    fn bearer_challenges_name_the_resource_metadata_and_api_key_ones_do_not() {
        let with = Rendering {
            resource_metadata: Some("https://api.example/.well-known/oauth-protected-resource".into()),
            ..rendering()
        };
        let out = render(&Denial::new(Reason::TokenMissing), &with, &tag("", "r"), None);
        assert_eq!(
            www(&out),
            Some("Bearer realm=\"api\", resource_metadata=\"https://api.example/.well-known/oauth-protected-resource\"")
        );
        let out = render(&Denial::new(Reason::ApiKeyMissing), &with, &tag("", "r"), None);
        assert_eq!(www(&out), Some("ApiKey realm=\"api\""));
    }

    #[test]
    fn auth_denials_carry_rfc6750_challenges() {
        let missing = render(&Denial::new(Reason::TokenMissing), &rendering(), &tag("", "r"), None);
        assert_eq!(missing.response.status, 401);
        assert_eq!(www(&missing), Some("Bearer realm=\"api\""));
        let invalid = render(
            &Denial::invalid_token(crate::policy::jwt::TokenError::Signature),
            &rendering(),
            &tag("", "r"),
            None,
        );
        assert_eq!(www(&invalid), Some("Bearer realm=\"api\", error=\"invalid_token\""));
        assert!(invalid.log_line.contains("\"cause\":\"signature\""));
        assert!(!String::from_utf8_lossy(&invalid.response.body).contains("signature"));
        let scope = render(&Denial::insufficient_scope("a b".into()), &rendering(), &tag("", "r"), None);
        assert_eq!(scope.response.status, 403);
        assert_eq!(www(&scope), Some("Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"a b\""));
        let denied = render(&Denial::new(Reason::AccessDenied), &rendering(), &tag("", "r"), None);
        assert_eq!(denied.response.status, 403);
        assert_eq!(www(&denied), None);
    }

    #[test]
    fn renders_problem_json() {
        let d = Denial { allow: Some("GET, POST".into()), ..Denial::new(Reason::MethodNotAllowed) };
        let out = render(&d, &rendering(), &tag("users", "req-1"), None);
        assert_eq!(out.response.status, 405);
        let v: serde_json::Value = serde_json::from_slice(&out.response.body).unwrap();
        assert_eq!(v["type"], "urn:api-guard:problem:method-not-allowed");
        assert_eq!(v["title"], "Method not allowed");
        assert_eq!(v["status"], 405);
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v.as_object().unwrap().len(), 5);
        assert!(out.response.headers.contains(&("content-type".into(), "application/problem+json".into())));
        assert!(out.response.headers.contains(&("allow".into(), "GET, POST".into())));
        let log: serde_json::Value = serde_json::from_str(&out.log_line).unwrap();
        assert_eq!(log["reason"], "method-not-allowed");
        assert_eq!(log["route"], "users");
        assert_eq!(log["method"], "GET");
        assert_eq!(out.reason, Reason::MethodNotAllowed);
        assert_eq!(out.response.details, "api_guard.method_not_allowed");
        // No route matched: null, not "".
        let out = render(&d, &rendering(), &tag("", "req-1"), None);
        let log: serde_json::Value = serde_json::from_str(&out.log_line).unwrap();
        assert!(log["route"].is_null(), "{log}");
    }
}
