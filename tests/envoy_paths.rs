//! Path confusion through the real Envoy with its default settings (no `normalize_path`, no
//! `merge_slashes`): forms that common upstreams read as another path are refused, and an
//! admitted request reaches the upstream with the path the decision was made on.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::json;
use support::{Client, Envoy, Upstream};

fn policy() -> String {
    json!({
        "routes": [
            {"name": "admin", "match": {"prefix": "/admin"}, "auth": {"type": "deny"}},
            {"name": "public", "match": {"prefix": "/public"}, "auth": {"type": "public"}}
        ]
    })
    .to_string()
}

#[test]
fn forms_upstreams_read_as_another_path_are_refused() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&policy(), upstream.port);
    let api = Client::new(envoy.port);
    // (path, what a common upstream serves)
    for (path, served_as) in [
        ("/public/..;/admin/x", "Tomcat, Jetty, Spring: /admin/x"),
        ("/admin;x", "servlet containers: /admin"),
        ("/admin;/x", "servlet containers: /admin/x"),
        ("/public;jsessionid=1/../admin", "servlet containers: /admin"),
        ("/public/%252e%252e/admin", "a second decoder: /public/../admin"),
        ("/public/%25%32%65%25%32%65/admin", "a second decoder: /public/../admin"),
        ("/admin%20/x", "servers trimming segments: /admin/x"),
        ("/%20admin/x", "servers trimming segments: /admin/x"),
        ("/public/%2e%2e%2fadmin", "an encoded slash"),
        ("/public/..%5cadmin", "an encoded backslash"),
    ] {
        let r = api.get(path);
        assert_eq!(r.status, 400, "{path} ({served_as}): {}", r.text());
        assert_eq!(r.json()["type"], "urn:api-guard:problem:invalid-path", "{path}");
    }
    for path in ["/public/../admin/x", "/public/%2e%2e/admin", "//admin", "/%61dmin", "/public/./../admin"] {
        assert_eq!(api.get(path).status, 403, "{path}");
    }
    assert!(
        upstream.requests().is_empty(),
        "a refused path reached the upstream: {:?}",
        upstream.requests().iter().map(|r| r.path.clone()).collect::<Vec<_>>()
    );
    assert_eq!(envoy.counter("api_guard_denied_invalid_path_total"), 10);
}

#[test]
fn an_admitted_request_goes_upstream_with_the_path_it_was_judged_on() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&policy(), upstream.port);
    let api = Client::new(envoy.port);
    for (sent, forwarded) in [
        ("/public//a/./b", "/public/a/b"),
        ("/public/x/../%61", "/public/a"),
        ("/public/%7Euser?q=%2e%2e&x=1", "/public/~user?q=%2e%2e&x=1"),
        ("/public/a%20b", "/public/a%20b"),
        ("/public/caf%c3%a9", "/public/caf%C3%A9"),
        ("/public/plain?x", "/public/plain?x"),
    ] {
        let r = api.get(sent);
        assert_eq!(r.status, 200, "{sent}: {}", r.text());
        let seen: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(seen.last().map(String::as_str), Some(forwarded), "{sent}");
    }
}

#[test]
fn path_parameters_and_encoded_percent_can_be_allowed_with_their_risk() {
    let upstream = Upstream::start();
    let mut cfg: serde_json::Value = serde_json::from_str(&policy()).unwrap();
    cfg["paths"] = json!({"allow_path_parameters": true, "allow_encoded_percent": true});
    let envoy = Envoy::start(&cfg.to_string(), upstream.port);
    let api = Client::new(envoy.port);
    assert_eq!(api.get("/public/a;v=1/b").status, 200);
    assert_eq!(api.get("/public/100%25").status, 200);
    assert_eq!(api.get("/public/a%20/b").status, 400, "edge spaces are never allowed");
    let seen: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/public/a;v=1/b", "/public/100%25"]);
}
