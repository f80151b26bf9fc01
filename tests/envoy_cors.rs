//! CORS through the real Envoy 1.40: every branch of the decision, with the recording upstream
//! proving that preflights and refused requests never reach it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::json;

const APP: &str = "https://app.example.com";

fn config() -> String {
    json!({
        "jwt": support::jwt_rs256_required(),
        "cors": {
            "allowed_origins": [APP, "https://*.partner.example"],
            "allowed_methods": ["GET", "POST", "PUT"],
            "allowed_headers": ["Content-Type", "Authorization", "X-Trace"],
            "exposed_headers": ["X-Request-Id"],
            "allow_credentials": true,
            "max_age": 300,
            "allow_private_network": true
        },
        "routes": [
            {"name": "open-data", "match": {"prefix": "/open"}, "auth": {"type": "public"},
             "cors": {"allowed_origins": ["*"], "refuse_disallowed": "none"}},
            {"name": "shadow", "match": {"prefix": "/shadow"}, "auth": {"type": "public"},
             "cors": {"allowed_origins": [APP], "mode": "report_only"}}
        ]
    })
    .to_string()
}

type Setup = support::Gateway;

fn setup() -> Setup {
    support::Gateway::start(&config())
}

fn preflight(s: &Setup, path: &str, origin: &str, method: &str, headers: &str) -> support::Response {
    let mut h = vec![("origin", origin), ("access-control-request-method", method)];
    if !headers.is_empty() {
        h.push(("access-control-request-headers", headers));
    }
    s.client.request("OPTIONS", path, &h, b"")
}

fn cors_headers(r: &support::Response) -> Vec<String> {
    r.headers.iter().filter(|(n, _)| n.starts_with("access-control-")).map(|(n, _)| n.clone()).collect()
}

#[test]
fn preflights_are_answered_at_the_gateway_and_never_forwarded() {
    let s = setup();
    let r = preflight(&s, "/orders", APP, "PUT", "content-type, x-trace");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST, PUT"));
    assert_eq!(r.header("access-control-allow-headers"), Some("content-type, x-trace"));
    assert_eq!(r.header("access-control-max-age"), Some("300"));
    let vary = r.header("vary").unwrap();
    for v in ["Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"] {
        assert!(vary.contains(v), "{vary}");
    }
    // A subdomain pattern, and Private Network Access.
    let mut h = vec![
        ("origin", "https://eu.partner.example"),
        ("access-control-request-method", "GET"),
        ("access-control-request-private-network", "true"),
    ];
    let r = s.client.request("OPTIONS", "/orders", &h, b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-private-network"), Some("true"));

    // Refused: origin, method, header; 403 problem+json without any CORS header.
    for (origin, method, headers, cause) in [
        ("https://evil.example", "GET", "", "origin"),
        ("https://app.example.com.evil.example", "GET", "", "origin"),
        ("null", "GET", "", "origin"),
        (APP, "DELETE", "", "method"),
        (APP, "PUT", "x-unknown", "header"),
    ] {
        let r = preflight(&s, "/orders", origin, method, headers);
        assert_eq!(r.status, 403, "{origin} {method} {headers}: {}", r.text());
        assert_eq!(r.json()["type"], "urn:api-guard:problem:cors-rejected", "{cause}");
        assert!(cors_headers(&r).is_empty(), "{cause}: {:?}", r.headers);
    }
    h.truncate(2);
    h[0].1 = "https://partner.example";
    assert_eq!(
        s.client.request("OPTIONS", "/orders", &h, b"").status,
        403,
        "the bare suffix is not a subdomain"
    );

    assert!(
        s.upstream.requests().is_empty(),
        "a preflight reached the upstream: {:?}",
        s.upstream.requests()
    );
    assert_eq!(s.envoy.preflights(), 2);
    assert_eq!(s.envoy.denied("cors_rejected"), 6);
}

#[test]
fn actual_requests_get_exact_origin_headers_and_disallowed_unsafe_ones_are_refused() {
    let s = setup();
    let auth = support::bearer("rs256");
    let upstream_cors =
        "access-control-allow-origin: *|access-control-allow-methods: DELETE|vary: Accept-Encoding";
    let r = s.client.request(
        "POST",
        "/orders",
        &[
            ("origin", APP),
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("x-test-reply-headers", upstream_cors),
        ],
        b"{}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP), "the upstream's * must not survive");
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-expose-headers"), Some("x-request-id"));
    assert_eq!(r.header("access-control-allow-methods"), None, "upstream CORS headers are removed");
    assert_eq!(r.header("vary"), Some("Accept-Encoding, Origin"));

    // No Origin: not CORS, but still Vary: Origin; and Vary is not duplicated.
    let r = s.client.request(
        "GET",
        "/orders",
        &[("authorization", &auth), ("x-test-reply-headers", "vary: origin")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(cors_headers(&r).is_empty());
    assert_eq!(r.headers.iter().filter(|(n, _)| n == "vary").count(), 1);
    assert_eq!(r.header("vary"), Some("origin"));

    // A disallowed origin: GET passes without CORS headers; POST is refused and never arrives.
    let evil = [("origin", "https://evil.example"), ("authorization", auth.as_str())];
    let r = s.client.request("GET", "/orders?from=evil", &evil, b"");
    assert_eq!(r.status, 200);
    assert!(cors_headers(&r).is_empty(), "{:?}", r.headers);
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = s.client.request(
        "POST",
        "/orders?from=evil",
        &[evil[0], evil[1], ("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "urn:api-guard:problem:cors-rejected");
    assert_eq!(s.upstream.seen_path("/orders?from=evil").len(), 1, "only the GET may arrive");

    // Same-origin requests carry Origin too, and are not cross-origin.
    let r = s.client.request(
        "POST",
        "/orders?same",
        &[("origin", "http://test"), ("authorization", &auth), ("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // A denial from an allowed origin is readable by the page (it carries the CORS headers).
    let r = s.client.request("GET", "/orders", &[("origin", APP)], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));

    // A route with its own policy: any origin, no credentials, never refused.
    let r = s.client.request("DELETE", "/open/x", &[("origin", "https://anyone.example")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://anyone.example"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[test]
fn report_only_mode_counts_what_it_would_refuse() {
    let s = setup();
    let r = s.client.request(
        "POST",
        "/shadow/x",
        &[("origin", "https://evil.example"), ("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(r.status, 200, "report-only must not refuse");
    assert!(cors_headers(&r).is_empty());
    let r = preflight(&s, "/shadow/x", "https://evil.example", "GET", "");
    assert_ne!(r.status, 403, "report-only must not refuse a preflight");
    assert!(cors_headers(&r).is_empty(), "a refused origin gets no CORS headers even in report-only mode");
    assert_eq!(s.envoy.counter("api_guard_report_only_total"), 2);
    assert_eq!(s.envoy.denied_total(), 0);
    assert!(s.envoy.log().contains("api_guard_report_only_denied"), "the would-be denial is logged");
}
