//! What the module counts, and how its metric names carry labels.
//!
//! Proxy-Wasm metrics have names, not labels. As Istio's stats filter does, each series' labels
//! are written into its name (`api_guard_requests_total.decision.denied.reason.token_invalid
//! .cause.expired.provider.idp.route.orders`), and the gateway's tag extraction ([`STATS_TAGS`], which
//! `api-guard render` writes into every Envoy bootstrap as `stats_config.stats_tags`) turns them
//! back into labels: `/stats/prometheus` then shows
//! `api_guard_requests_total{decision="denied",reason="token_invalid",cause="expired",route="orders"}`.
//!
//! Every label value comes from the configuration or from a closed set, never from the request:
//! decisions, reasons and causes are enums; routes and providers are configured names. So the
//! number of series is bounded by the configuration (routes × the reasons that can happen on
//! them), whatever the traffic.

use super::denial::Reason;

/// Requests judged, by decision, reason, cause, provider and route.
pub const REQUESTS: &str = "api_guard_requests_total";
/// Denials a report-only policy did not send, by reason and route.
pub const REPORT_ONLY: &str = "api_guard_report_only_total";
/// Upstream 5xx bodies replaced by a generic problem.
pub const UPSTREAM_ERRORS_REPLACED: &str = "api_guard_upstream_errors_replaced_total";
/// Verified tokens taken from the cache the worker VMs share.
pub const SHARED_TOKEN_HITS: &str = "api_guard_shared_token_cache_hits_total";
/// A remote key set's usable keys, by provider (0 before the first good fetch).
pub const JWKS_KEYS: &str = "api_guard_jwks_keys";
/// Seconds since a remote key set was last fetched successfully, by provider (0 before).
pub const JWKS_AGE: &str = "api_guard_jwks_age_seconds";
/// 1 while a remote key set is missing or older than its `cache_duration_seconds` (every
/// refresh since has failed), by provider.
pub const JWKS_STALE: &str = "api_guard_jwks_stale";
/// Rate limit checks, by policy and decision (`allowed`, `limited`, `error`, `shared`).
pub const RATE_LIMIT: &str = "api_guard_rate_limit_total";
/// Key-set fetches, by provider and outcome ([`FETCH_OUTCOMES`]).
pub const JWKS_FETCHES: &str = "api_guard_jwks_fetches_total";
/// Introspection calls by provider and outcome (`active`, `inactive`, an error's name).
pub const INTROSPECTIONS: &str = "api_guard_introspections_total";

/// The decision-latency histogram (`metrics.decision_latency`): api-guard's own time in one
/// phase of a request, by phase, in microseconds (Envoy histograms take whole numbers, so a
/// `_seconds` histogram would read 0).
pub const DECISION_DURATION: &str = "api_guard_decision_duration_microseconds";

/// The buckets of [`DECISION_DURATION`] in microseconds, for Envoy's
/// `stats_config.histogram_bucket_settings` (its default buckets suit milliseconds).
pub const DECISION_BUCKETS: [u32; 14] =
    [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 100_000, 1_000_000];

/// A phase of a request, as the `phase` label of [`DECISION_DURATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Request headers, request body and a decision resumed after a key-set fetch.
    Request,
    /// Response headers and body.
    Response,
}

impl Phase {
    /// Both phases, in order.
    pub const ALL: [Phase; 2] = [Phase::Request, Phase::Response];

    /// The name of this phase's histogram series.
    pub fn series(self) -> String {
        let phase = match self {
            Phase::Request => "request",
            Phase::Response => "response",
        };
        format!("{DECISION_DURATION}.phase.{phase}")
    }
}

/// The outcomes a key-set fetch is counted under.
pub const FETCH_OUTCOMES: [&str; 5] = ["ok", "no_response", "status", "too_large", "invalid"];

/// The value of a label that does not apply (no reason for an allowed request, no cause for
/// most reasons).
pub const NONE: &str = "none";
/// The `route` of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Forwarded.
    Allowed,
    /// Refused.
    Denied,
    /// An allowed CORS preflight, answered here.
    Preflight,
}

impl Decision {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Preflight => "preflight",
        }
    }
}

/// The labels extracted from metric names: Envoy `stats_config.stats_tags` entries (tag name,
/// regex whose first group is cut from the name and whose second is the value). Envoy matches
/// each regex against the whole name, so each skips the label pairs before its own. Label
/// values never hold a `.`, so each regex is unambiguous.
pub const STATS_TAGS: [(&str, &str); 8] = [
    ("decision", r"^(?:wasmcustom\.)?api_guard_\w+(?:\.\w+\.[\w-]+)*?(\.decision\.([a-z_]+))"),
    ("reason", r"^(?:wasmcustom\.)?api_guard_\w+(?:\.\w+\.[\w-]+)*?(\.reason\.([a-z_]+))"),
    ("cause", r"^(?:wasmcustom\.)?api_guard_\w+(?:\.\w+\.[\w-]+)*?(\.cause\.([a-z0-9_]+))"),
    ("route", r"^(?:wasmcustom\.)?api_guard_\w+(?:\.\w+\.[\w-]+)*?(\.route\.([A-Za-z0-9_-]+))"),
    ("provider", r"^(?:wasmcustom\.)?api_guard_\w+(?:\.\w+\.[\w-]+)*?(\.provider\.([A-Za-z0-9_-]+))"),
    ("outcome", r"^(?:wasmcustom\.)?api_guard_\w+(?:\.\w+\.[\w-]+)*?(\.outcome\.([a-z_]+))"),
    ("phase", r"^(?:wasmcustom\.)?api_guard_\w+(?:\.\w+\.[\w-]+)*?(\.phase\.([a-z_]+))"),
    ("policy", r"^(?:wasmcustom\.)?api_guard_\w+(?:\.\w+\.[\w-]+)*?(\.policy\.([A-Za-z0-9_-]+))"),
];

/// A configured name as a label value: letters, digits, `_` and `-` kept, anything else `_`
/// (so it can never carry a `.` into the name).
pub fn label_value(name: &str) -> String {
    if name.is_empty() {
        return UNMATCHED.into();
    }
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// A reason as a label value (`token_invalid`).
pub fn reason_label(reason: Reason) -> String {
    reason.slug().replace('-', "_")
}

/// The labels of one `requests_total` series.
#[derive(Debug, Clone, Copy)]
pub struct RequestLabels<'a> {
    /// What happened.
    pub decision: Decision,
    /// The denial's reason.
    pub reason: Option<Reason>,
    /// The denial's finer cause.
    pub cause: Option<&'a str>,
    /// The configured name of the provider whose token was judged (`None`: no token).
    pub provider: Option<&'a str>,
    /// The matched route's configured name (`""`: none matched).
    pub route: &'a str,
}

/// The name of a `requests_total` series.
pub fn requests(l: &RequestLabels<'_>) -> String {
    format!(
        "{REQUESTS}.decision.{}.reason.{}.cause.{}.provider.{}.route.{}",
        l.decision.name(),
        l.reason.map_or_else(|| NONE.to_string(), reason_label),
        l.cause.map_or_else(|| NONE.to_string(), cause_label),
        l.provider.map_or_else(|| NONE.to_string(), label_value),
        label_value(l.route)
    )
}

/// A denial's cause as a label value: the code's own names, lower-case with `_`.
fn cause_label(cause: &str) -> String {
    cause.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// The response code details of a local response (`api_guard.token_invalid`,
/// `api_guard.cors_preflight`): Envoy puts them in `%RESPONSE_CODE_DETAILS%`, where an
/// upstream's answer says `via_upstream`.
pub fn details(what: &str) -> String {
    format!("api_guard.{what}")
}

/// The name of a `report_only_total` series.
pub fn report_only(reason: Reason, route: &str) -> String {
    format!("{REPORT_ONLY}.reason.{}.route.{route}", reason_label(reason))
}

/// The name of a rate-limit series: policy, then decision.
pub fn rate_limit(policy: &str, event: super::ratelimit::Event) -> String {
    format!("{RATE_LIMIT}.policy.{}.decision.{}", label_value(policy), event.name())
}

/// The name of a per-provider key-set series (`metric` is one of the `JWKS_` names).
pub fn key_set(metric: &str, provider: &str) -> String {
    format!("{metric}.provider.{}", label_value(provider))
}

/// The name of an introspection-call counter.
pub fn introspections(provider: &str, outcome: &str) -> String {
    format!("{INTROSPECTIONS}.provider.{}.outcome.{outcome}", label_value(provider))
}

/// The name of a key-set fetch counter.
pub fn fetches(provider: &str, outcome: &str) -> String {
    format!("{JWKS_FETCHES}.provider.{}.outcome.{outcome}", label_value(provider))
}

/// The Envoy `stats_config` that turns these names into labels, as YAML at `indent` spaces.
pub fn stats_config_yaml(indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = format!("{pad}stats_config:\n{pad}  stats_tags:\n");
    for (tag, regex) in STATS_TAGS {
        out.push_str(&format!("{pad}  - tag_name: {tag}\n{pad}    regex: '{regex}'\n"));
    }
    let buckets: Vec<String> = DECISION_BUCKETS.iter().map(u32::to_string).collect();
    out.push_str(&format!(
        "{pad}  histogram_bucket_settings:\n{pad}  - match: {{contains: {DECISION_DURATION}}}\n{pad}    buckets: [{}]\n",
        buckets.join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies the tag regexes the way Envoy does (first group cut, second the value), with a
    /// hand-written matcher for their one shape: `\.<tag>\.(<value chars>)`.
    fn extract(name: &str) -> (String, Vec<(String, String)>) {
        let mut rest = name.to_string();
        let mut tags = Vec::new();
        for (tag, _) in STATS_TAGS {
            let marker = format!(".{tag}.");
            if let Some(i) = rest.find(&marker) {
                let after = &rest[i + marker.len()..];
                let value: String = after.chars().take_while(|c| *c != '.').collect();
                tags.push((tag.to_string(), value.clone()));
                rest = format!("{}{}", &rest[..i], &after[value.len()..]);
            }
        }
        (rest, tags)
    }

    #[test]
    fn names_carry_their_labels_and_nothing_else() {
        let n = requests(&RequestLabels {
            decision: Decision::Denied,
            reason: Some(Reason::TokenInvalid),
            cause: Some("expired"),
            provider: Some("corp.idp"),
            route: "orders.v2 api",
        });
        let (base, tags) = extract(&format!("wasmcustom.{n}"));
        assert_eq!(base, "wasmcustom.api_guard_requests_total");
        let want = [
            ("decision", "denied"),
            ("reason", "token_invalid"),
            ("cause", "expired"),
            ("route", "orders_v2_api"),
            ("provider", "corp_idp"),
        ];
        assert_eq!(tags, want.map(|(a, b)| (a.to_string(), b.to_string())));
        let (base, tags) = extract(&format!("wasmcustom.{}", Phase::Response.series()));
        assert_eq!(base, format!("wasmcustom.{DECISION_DURATION}"));
        assert_eq!(tags, [("phase".to_string(), "response".to_string())]);
        let (base, tags) = extract(&format!("wasmcustom.{}", fetches("corp.idp", "no_response")));
        assert_eq!(base, "wasmcustom.api_guard_jwks_fetches_total");
        assert_eq!(tags.len(), 2);
        let (base, tags) = extract(&format!(
            "wasmcustom.{}",
            rate_limit("per-user", super::super::ratelimit::Event::Limited)
        ));
        assert_eq!(base, "wasmcustom.api_guard_rate_limit_total");
        assert_eq!(
            tags,
            [("decision".to_string(), "limited".to_string()), ("policy".to_string(), "per-user".to_string())]
        );
        assert_eq!(label_value(""), UNMATCHED);
    }

    #[test]
    fn every_label_value_fits_its_regex_class() {
        for r in Reason::ALL {
            assert!(reason_label(r).chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{r:?}");
        }
        for o in FETCH_OUTCOMES {
            assert!(o.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        for cause in super::super::jwt::CAUSES {
            assert!(cause.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}
