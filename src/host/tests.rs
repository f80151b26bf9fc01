//! The host layer's state machine, natively, against the fake host behind the ABI seam
//! (`abi::fake`): each callback's reads, the one core decision, and what it applied to the
//! host: local responses, header edits, body replacements, counters.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::Action;
use serde_json::json;

use super::abi::fake;
use super::http::HttpFilter;
use super::root::Root;

const TOKENS: &str = include_str!("../../tests/fixtures/jwt/tokens.json");
const JWKS: &str = include_str!("../../tests/fixtures/jwt/jwks.json");

fn token(name: &str) -> String {
    let t: serde_json::Value = serde_json::from_str(TOKENS).unwrap();
    format!("Bearer {}", t[name].as_str().unwrap())
}

/// A fresh fake host configured with `policy` (plus `host.kind`); the root context.
fn configure(kind: &str, mut policy: serde_json::Value) -> Root {
    fake::reset();
    policy["host"] = json!({"kind": kind});
    let bytes = policy.to_string().into_bytes();
    let size = bytes.len();
    fake::with(|h| h.buffers.insert(7, bytes));
    let mut root = Root::new(1);
    assert!(root.on_configure(size), "refused: {:?}", fake::with(|h| h.logs.clone()));
    root
}

fn jwt_policy() -> serde_json::Value {
    json!({
        "jwt": {"providers": {"idp": {"issuer": "https://issuer.test", "audiences": ["api://orders"],
                "algorithms": ["RS256"], "local_jwks": serde_json::from_str::<serde_json::Value>(JWKS).unwrap(),
                "claim_to_headers": [{"claim": "sub", "header": "x-user"}]}},
                "default": {"type": "jwt", "providers": ["idp"]}},
        "response": {"rules": [{"select": ["$..password"], "action": {"type": "remove"}}]}
    })
}

fn request(root: &Root, id: u32, headers: &[(&str, &str)]) -> (HttpFilter, Action) {
    let mut map: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/orders".to_vec()),
        (":authority".into(), b"api.test".to_vec()),
    ];
    for (n, v) in headers {
        map.retain(|(k, _)| k != n);
        map.push(((*n).to_string(), v.as_bytes().to_vec()));
    }
    fake::with(|h| {
        h.local = None;
        h.maps.insert(0, map);
    });
    let mut filter = HttpFilter::new(root.shared().unwrap(), id);
    let action = filter.on_http_request_headers(3, true);
    (filter, action)
}

/// A header of map `map` (0 request, 2 response) as the host holds it now.
fn header(map: u32, name: &str) -> Option<String> {
    fake::with(|h| {
        h.maps
            .get(&map)
            .and_then(|m| m.iter().find(|(n, _)| n == name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    })
}

fn request_header(name: &str) -> Option<String> {
    header(0, name)
}

#[test]
fn a_request_without_a_token_is_answered_here_and_counted() {
    let mut root = configure("envoy", jwt_policy());
    let (_, action) = request(&root, 2, &[]);
    assert_eq!(action, Action::Pause);
    let (status, headers, body) = fake::with(|h| h.local.clone()).expect("no local response");
    assert_eq!(status, 401);
    assert!(headers.iter().any(|(n, v)| n == "www-authenticate" && v.starts_with(b"Bearer realm=")));
    assert!(headers.iter().any(|(n, _)| n == "strict-transport-security"), "hardening headers on a denial");
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["type"], "urn:api-guard:problem:token-missing");
    // The reason for the access log, and one labelled series counted once the tick flushes.
    assert_eq!(fake::with(|h| h.details.clone()).as_deref(), Some("api_guard.token_missing"));
    let series = "api_guard_requests_total.decision.denied.reason.token_missing.cause.none.provider.none.route.unmatched";
    assert_eq!(fake::counter(series), 0, "batched until the tick");
    root.on_tick();
    assert_eq!(fake::counter(series), 1);
    let log = fake::with(|h| h.logs.iter().find(|(_, l)| l.contains("api_guard_denied")).cloned())
        .expect("log line");
    let log: serde_json::Value = serde_json::from_str(&log.1).unwrap();
    assert_eq!(log["method"], "GET");
    assert!(log["route"].is_null(), "{log}");
}

#[test]
fn an_admitted_request_goes_on_without_its_token_and_with_its_claims_only() {
    let root = configure("envoy", jwt_policy());
    let (_, action) = request(&root, 2, &[("authorization", &token("rs256")), ("x-user", "admin")]);
    assert_eq!(action, Action::Continue, "{:?}", fake::with(|h| h.local.clone()));
    assert_eq!(request_header("authorization"), None);
    assert_eq!(request_header("x-user").as_deref(), Some("user-42"), "the verified claim, not the client's");
}

#[test]
fn where_removal_does_not_reach_the_upstream_the_value_is_emptied() {
    let root = configure("kong", jwt_policy());
    let (_, action) = request(&root, 2, &[("authorization", &token("rs256"))]);
    assert_eq!(action, Action::Continue);
    assert_eq!(request_header("authorization").as_deref(), Some(""), "Kong forwards removed headers");
}

fn respond(filter: &mut HttpFilter, headers: &[(&str, &str)], body: &[u8]) -> (Action, Action) {
    let map = headers.iter().map(|(n, v)| ((*n).to_string(), v.as_bytes().to_vec())).collect();
    fake::with(|h| {
        h.maps.insert(2, map);
        h.buffers.insert(1, body.to_vec());
    });
    let head = filter.on_http_response_headers(headers.len(), false);
    let first = filter.on_http_response_body(body.len() / 2, false);
    let last = filter.on_http_response_body(body.len(), true);
    assert!(first == Action::Pause || first == Action::Continue);
    (head, last)
}

fn response_header(name: &str) -> Option<String> {
    header(2, name)
}

#[test]
fn a_response_owed_a_rewrite_is_held_rewritten_and_loses_its_length() {
    let root = configure("envoy", jwt_policy());
    let (mut filter, _) = request(&root, 2, &[("authorization", &token("rs256"))]);
    let body = br#"{"id":1,"password":"hunter2"}"#;
    let (head, last) = respond(
        &mut filter,
        &[(":status", "200"), ("content-type", "application/json"), ("content-length", "29")],
        body,
    );
    assert_eq!(head, Action::Pause, "Envoy: headers wait for the rewritten body");
    assert_eq!(last, Action::Continue);
    assert_eq!(fake::with(|h| h.buffers[&1].clone()), br#"{"id":1}"#.to_vec());
    assert_eq!(response_header("content-length"), None);
    assert_eq!(
        response_header("cache-control").as_deref(),
        Some("no-store"),
        "authenticated answers are not cached"
    );
}

#[test]
fn a_body_withheld_after_its_headers_left_is_emptied_never_answered_late() {
    let root = configure("kong", jwt_policy());
    let (mut filter, _) = request(&root, 2, &[("authorization", &token("rs256"))]);
    let (head, _) = respond(
        &mut filter,
        &[(":status", "200"), ("content-type", "application/json")],
        br#"{"password":"hunter2""#,
    );
    assert_eq!(head, Action::Continue, "Kong sends response heads at once");
    assert!(fake::with(|h| h.local.is_none()), "a local response after the head left traps Kong's instance");
    assert!(fake::with(|h| h.buffers[&1].is_empty()), "the secret went out");
    let logs = fake::with(|h| h.logs.clone());
    assert!(
        logs.iter().any(|(_, l)| l.contains(r#""reason":"response-withheld","cause":"not-json""#)),
        "{logs:?}"
    );
}

#[test]
fn an_allowed_preflight_is_answered_here() {
    let mut policy = jwt_policy();
    policy["cors"] =
        json!({"allowed_origins": ["https://app.example"], "allowed_headers": ["authorization"]});
    let root = configure("envoy", policy);
    let (_, action) = request(
        &root,
        2,
        &[
            (":method", "OPTIONS"),
            ("origin", "https://app.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ],
    );
    assert_eq!(action, Action::Pause);
    let (status, headers, _) = fake::with(|h| h.local.clone()).expect("not answered");
    assert_eq!(status, 204);
    assert!(headers.iter().any(|(n, v)| n == "access-control-allow-origin" && v == b"https://app.example"));
}

#[test]
fn a_request_waits_for_its_key_set_and_other_workers_adopt_it() {
    let mut policy = jwt_policy();
    let idp = &mut policy["jwt"]["providers"]["idp"];
    idp.as_object_mut().unwrap().remove("local_jwks");
    idp["remote_jwks"] =
        json!({"http_uri": {"uri": "http://idp.test/jwks", "cluster": "idp", "timeout_ms": 500}});
    let root = configure("envoy", policy);
    let (mut filter, action) = request(&root, 2, &[("authorization", &token("rs256"))]);
    assert_eq!(action, Action::Pause, "held for the key set");
    let (upstream, headers) = fake::with(|h| h.calls.last().cloned()).expect("no fetch");
    assert_eq!(upstream, "idp");
    assert!(headers.iter().any(|(n, v)| n == ":path" && v == b"/jwks"), "{headers:?}");
    fake::with(|h| {
        h.maps.insert(6, vec![(":status".into(), b"200".to_vec())]);
        h.buffers.insert(4, JWKS.as_bytes().to_vec());
    });
    filter.on_http_call_response(1, 1, JWKS.len(), 0);
    assert_eq!(fake::with(|h| h.resumed.clone()), vec![0], "resumed once the keys came");
    assert_eq!(request_header("x-user").as_deref(), Some("user-42"));
    assert!(fake::with(|h| h.shared.keys().any(|k| k.starts_with("api_guard.jwks.idp|idp|"))));
    // Another worker VM of the same configuration adopts the set on its tick: no fetch.
    let calls = fake::with(|h| h.calls.len());
    let size = fake::with(|h| h.buffers[&7].len());
    let mut other = Root::new(9);
    assert!(other.on_configure(size));
    other.on_tick();
    let (_, action) = request(&other, 3, &[("authorization", &token("rs256"))]);
    assert_eq!(action, Action::Continue);
    assert_eq!(fake::with(|h| h.calls.len()), calls, "the other worker fetched nothing");
}

#[test]
fn decision_latency_is_one_sample_per_phase_and_only_when_asked_for() {
    let request_series = "api_guard_decision_duration_microseconds.phase.request";
    let response_series = "api_guard_decision_duration_microseconds.phase.response";
    for enabled in [false, true] {
        let mut policy = jwt_policy();
        policy["metrics"] = json!({"decision_latency": enabled});
        let root = configure("envoy", policy);
        for id in 2..5 {
            let (mut filter, _) = request(&root, id, &[("authorization", &token("rs256"))]);
            respond(&mut filter, &[(":status", "200"), ("content-type", "application/json")], br#"{"id":1}"#);
            filter.on_log();
        }
        // A denial answered here has no response phase of its own in this host.
        let (mut denied, _) = request(&root, 5, &[]);
        denied.on_log();
        let (req, resp) = (fake::samples(request_series), fake::samples(response_series));
        if enabled {
            assert_eq!(req.len(), 4, "{req:?}");
            assert_eq!(resp.len(), 3, "{resp:?}");
            // A verified RS256 token takes measurable time, and no sample is 0.
            assert!(req.iter().chain(&resp).all(|&us| us > 0), "{req:?} {resp:?}");
        } else {
            assert!(req.is_empty() && resp.is_empty(), "measured without being asked");
            assert!(fake::with(|h| h.metrics.iter().all(|(n, _)| !n.contains("decision_duration"))));
        }
    }
}

#[test]
fn a_global_limit_waits_for_the_rate_limit_service_and_applies_its_answer() {
    use crate::policy::ratelimit::rls;
    let mut policy = jwt_policy();
    policy["rate_limits"] = json!({"service": {"cluster": "rls", "domain": "edge", "timeout_ms": 70},
        "policies": {"per-user": {"global": true, "key": {"type": "claim", "claim": "sub"}, "failure_mode": "fail_closed"}},
        "default": ["per-user"]});
    let root = configure("envoy", policy);
    // Allowed: the request waits, then resumes with the service's fields on the response.
    let (mut filter, action) = request(&root, 2, &[("authorization", &token("rs256"))]);
    assert_eq!(action, Action::Pause, "held for the service");
    let (upstream, service, method, message, timeout) =
        fake::with(|h| h.grpc_calls.last().cloned()).expect("no call");
    assert_eq!(upstream, rls::grpc_service("rls"));
    assert_eq!((service.as_str(), method.as_str(), timeout), (rls::SERVICE, rls::METHOD, 70));
    assert_eq!(message, rls::encode_request("edge", &[vec![("policy", "per-user"), ("key", "c:user-42")]]));
    let ok = [0x08, 1, 0x12, 14, 0x08, 1, 0x12, 4, 0x08, 5, 0x10, 2, 0x18, 4, 0x22, 2, 0x08, 60];
    fake::with(|h| h.buffers.insert(5, ok.to_vec()));
    filter.on_grpc_call_response(1001, 0, ok.len());
    assert_eq!(fake::with(|h| h.resumed.clone()), vec![0], "resumed once the service answered");
    assert_eq!(request_header("x-user").as_deref(), Some("user-42"));
    assert!(fake::with(|h| h.local.is_none()));
    // The service down (gRPC 14): fail_closed answers 503, nothing is resumed.
    let (mut filter, _) = request(&root, 3, &[("authorization", &token("rs256"))]);
    filter.on_grpc_call_response(1002, 14, 0);
    let (status, headers, _) = fake::with(|h| h.local.clone()).expect("no local response");
    assert_eq!(status, 503);
    assert!(headers.iter().any(|(n, v)| n == "retry-after" && v == b"1"));
    assert_eq!(fake::with(|h| h.resumed.len()), 1);
    // A refused token costs no call.
    let calls = fake::with(|h| h.grpc_calls.len());
    let (_, _) = request(&root, 4, &[("authorization", "Bearer x.y.z")]);
    assert_eq!(fake::with(|h| h.local.clone()).map(|l| l.0), Some(401));
    assert_eq!(fake::with(|h| h.grpc_calls.len()), calls);
}
