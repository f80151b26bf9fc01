//! Response hardening through the real Envoy 1.40: the security-header preset on upstream
//! responses and on api-guard's own denials, stack-revealing headers removed, `no-store` on
//! authenticated responses, and overrides.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::{json, Value};
use support::{Client, Envoy, Upstream};

fn config(response: Value) -> String {
    json!({
        "jwt": support::jwt_rs256_required(),
        "routes": [{"name": "public", "match": {"prefix": "/public"}, "auth": {"type": "public"}}],
        "response": response
    })
    .to_string()
}

const LEAKY: &str = "server: Apache/2.4.1 (Unix)|x-powered-by: PHP/5.3.3|x-aspnet-version: 4.0.30319";

#[test]
fn security_headers_are_set_and_stack_headers_removed() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(json!({})), upstream.port);
    let client = Client::new(envoy.port);

    let r = client.request("GET", "/public/x", &[("x-test-reply-headers", LEAKY)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("content-security-policy"), Some("default-src 'none'; frame-ancestors 'none'"));
    assert_eq!(r.header("x-powered-by"), None);
    assert_eq!(r.header("x-aspnet-version"), None);
    assert!(r.header("server").is_none_or(|s| !s.contains("Apache")), "{:?}", r.header("server"));
    assert_eq!(r.header("cache-control"), None, "anonymous responses keep their caching");

    // An authenticated response must not be stored by shared caches.
    let bearer = support::bearer("rs256");
    let r = client.request(
        "GET",
        "/orders",
        &[("authorization", &bearer), ("x-test-reply-headers", "cache-control: public, max-age=600")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // api-guard's own denials carry the preset too.
    let r = client.request("GET", "/orders", &[], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
    assert_eq!(r.header("content-security-policy"), Some("default-src 'none'; frame-ancestors 'none'"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn each_preset_header_can_be_changed_or_dropped() {
    let upstream = Upstream::start();
    let response = json!({
        "security_headers": {"Strict-Transport-Security": null, "Referrer-Policy": "same-origin", "Permissions-Policy": "camera=()"},
        "remove_headers": ["x-backend"]
    });
    let envoy = Envoy::start(&config(response), upstream.port);
    let client = Client::new(envoy.port);
    let r = client.request(
        "GET",
        "/public/x",
        &[("x-test-reply-headers", "x-backend: db-3|x-powered-by: PHP")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), None);
    assert_eq!(r.header("referrer-policy"), Some("same-origin"));
    assert_eq!(r.header("permissions-policy"), Some("camera=()"));
    assert_eq!(r.header("x-backend"), None);
    assert_eq!(r.header("x-powered-by"), Some("PHP"), "an explicit list replaces the default one");
}

#[test]
fn upstream_failures_never_show_their_bodies() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(json!({})), upstream.port);
    let client = Client::new(envoy.port);
    let trace = "Traceback (most recent call last):\n  File \"/srv/app/db.py\", line 12\npsycopg2.OperationalError: password authentication failed for user \"orders_rw\" SQLSTATE 28P01";
    for mode in ["1", "chunked"] {
        let r = client.request(
            "POST",
            "/public/fail",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-test-echo-type", "text/plain"),
                ("x-test-echo", mode),
                ("x-test-status", "500 Internal Server Error"),
                ("x-request-id", "req-abc-123"),
            ],
            trace.as_bytes(),
        );
        assert_eq!(r.status, 500);
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{:?} {}",
            r.headers,
            r.text()
        );
        let text = r.text();
        assert!(
            !text.contains("Traceback") && !text.contains("orders_rw") && !text.contains("SQLSTATE"),
            "{text}"
        );
        let v = r.json();
        assert_eq!(v["type"], "urn:api-guard:problem:upstream-error");
        assert_eq!(v["status"], 500);
        assert_eq!(v["request_id"], "req-abc-123");
    }
    assert_eq!(envoy.counter("api_guard_upstream_errors_replaced_total"), 2);

    // Turned off, the upstream's body passes (and 4xx bodies always do).
    let envoy = Envoy::start(&config(json!({"safe_errors": false})), upstream.port);
    let client = Client::new(envoy.port);
    let r = client.request(
        "POST",
        "/public/fail",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-test-echo-type", "text/plain"),
            ("x-test-echo", "1"),
            ("x-test-status", "503 Service Unavailable"),
        ],
        trace.as_bytes(),
    );
    assert_eq!(r.status, 503);
    assert!(r.text().contains("Traceback"));
}
