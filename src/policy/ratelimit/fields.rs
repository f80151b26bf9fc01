//! The `RateLimit-Policy` and `RateLimit` response fields of
//! draft-ietf-httpapi-ratelimit-headers-10, as HTTP structured fields (RFC 9651): each a list
//! of one item per policy, the policy's name as a string with integer parameters.
//!
//! `RateLimit-Policy: "per-user";q=100;w=60` says the quota (`q`, requests) and its window
//! (`w`, seconds); `RateLimit: "per-user";r=42;t=17` says what is left (`r`) and the seconds
//! until the quota is whole again (`t`). Names are letters, digits, `-` and `_` (checked at
//! load), so they need no escaping inside the string.

use super::bucket::{Rate, Take};
use super::LimitPolicy;

/// The fields for the policies a request was checked against (with what it took from each,
/// `None` where counting failed and the request passed under `fail_open`): only policies with
/// `headers` on; nothing when none is.
pub fn render(seen: &[(&LimitPolicy, Rate, Option<Take>)]) -> Vec<(String, String)> {
    let shown = || seen.iter().filter(|(p, _, _)| p.headers);
    let policy: Vec<String> = shown()
        .map(|(p, rate, _)| format!("\"{}\";q={};w={}", p.name, rate.requests, rate.window_seconds))
        .collect();
    if policy.is_empty() {
        return Vec::new();
    }
    let state: Vec<String> = shown()
        .filter_map(|(p, _, take)| take.map(|t| format!("\"{}\";r={};t={}", p.name, t.remaining, t.reset)))
        .collect();
    let mut out = vec![("ratelimit-policy".to_string(), policy.join(", "))];
    if !state.is_empty() {
        out.push(("ratelimit".to_string(), state.join(", ")));
    }
    out
}
