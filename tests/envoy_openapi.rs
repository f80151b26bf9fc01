//! OpenAPI request validation through the real Envoy 1.40, with a pet-store document (server
//! base path, path parameters, enums, nested objects and arrays, form and multipart bodies,
//! a deprecated operation) behind JWT auth. Every valid request reaches the upstream
//! unchanged; every invalid one is refused with the right status and pointer and never
//! reaches it, not even its head, with the configuration a user gets by default (no `host`
//! section: Envoy holds request headers while the body is judged). A filter without Envoy's
//! `allow_on_headers_stop_iteration` fails such requests fast instead of letting them hang.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::json;
use support::client::chunked;
use support::{Client, Envoy, Upstream};

fn config() -> String {
    json!({
        "jwt": support::jwt_rs256_required(),
        "openapi": {
            "document": support::fixture("openapi/petstore.json"),
            "reject_unknown_fields": true,
            "deprecated": {"action": "warn"}
        }
    })
    .to_string()
}

struct Case {
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: String,
}

fn case(method: &'static str, path: &'static str, content_type: Option<&'static str>, body: &str) -> Case {
    Case { method, path, content_type, body: body.to_string() }
}

fn send(client: &Client, c: &Case, auth: bool) -> support::Response {
    let bearer = support::bearer("rs256");
    let mut headers = vec![("cookie", "sid=session-1234")];
    if auth {
        headers.push(("authorization", bearer.as_str()));
    }
    if let Some(ct) = c.content_type {
        headers.push(("content-type", ct));
    }
    client.request(c.method, c.path, &headers, c.body.as_bytes())
}

const PET: &str = r#"{"name":"Rex","status":"available","tags":[{"label":"good-dog"}],"owner":{"email":"a@example.com","address":{"zip":"12345"}}}"#;
const JSON: Option<&str> = Some("application/json");

#[test]
fn valid_requests_reach_the_upstream_unchanged_and_invalid_ones_never_do() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(), upstream.port);
    let client = Client::new(envoy.port);

    let part = "--XyZ\r\ncontent-disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\ncontent-type: image/png\r\n\r\nPNGDATA";
    let multipart = format!("{part}\r\n--XyZ--\r\n");
    let valid = [
        case("GET", "/v1/pets?limit=5&status=sold&status=pending", None, ""),
        case("GET", "/v1/pets/mine", None, ""),
        case("GET", "/v1/pets/42", None, ""),
        case("POST", "/v1/pets", JSON, PET),
        case("PUT", "/v1/pets/42", Some("application/x-www-form-urlencoded"), "name=Rex&age=3&tags=a&tags=b"),
        case("POST", "/v1/pets/42/photos", Some("multipart/form-data; boundary=XyZ"), &multipart),
        case("GET", "/v1/session", None, ""),
    ];
    for c in &valid {
        let r = send(&client, c, true);
        assert_eq!(r.status, 200, "{} {}: {}", c.method, c.path, r.text());
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), valid.len());
    for (c, s) in valid.iter().zip(&seen) {
        assert_eq!((s.method.as_str(), s.path.as_str()), (c.method, c.path));
        assert_eq!(s.body, c.body.as_bytes(), "{} {} body changed", c.method, c.path);
    }

    // A deprecated operation is served with RFC 9745 / RFC 8594 headers.
    let r = send(&client, &case("DELETE", "/v1/pets/42", None, ""), true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("deprecation"), Some("@1767225600"));
    assert_eq!(r.header("sunset"), Some("Wed, 30 Jun 2027 00:00:00 GMT"));
    let served = upstream.requests().len();

    // (request, status, problem slug, an expected error's pointer and keyword)
    type Expected = (Case, u16, &'static str, Option<(&'static str, &'static str)>);
    let invalid: Vec<Expected> = vec![
        (case("GET", "/v1/dogs", None, ""), 404, "unknown-operation", None),
        (case("GET", "/pets", None, ""), 404, "unknown-operation", None),
        (case("PATCH", "/v1/pets", JSON, "{}"), 405, "method-not-allowed", None),
        (
            case("GET", "/v1/pets?limit=0", None, ""),
            400,
            "invalid-request",
            Some(("/query/limit", "minimum")),
        ),
        (
            case("GET", "/v1/pets?status=lost", None, ""),
            400,
            "invalid-request",
            Some(("/query/status/0", "enum")),
        ),
        (case("GET", "/v1/pets/abc", None, ""), 400, "invalid-request", Some(("/path/petId", "type"))),
        (
            case("POST", "/v1/pets", JSON, r#"{"status":"sold"}"#),
            400,
            "invalid-request",
            Some(("/body/name", "required")),
        ),
        (
            case("POST", "/v1/pets", JSON, r#"{"name":"R","status":"sold","id":7}"#),
            400,
            "invalid-request",
            Some(("/body/id", "readOnly")),
        ),
        (
            case("POST", "/v1/pets", JSON, r#"{"name":"R","status":"sold","role":"admin"}"#),
            400,
            "invalid-request",
            Some(("/body/role", "additionalProperties")),
        ),
        (
            case("POST", "/v1/pets", JSON, r#"{"name":"R","status":"sold","tags":[{"label":"BAD"}]}"#),
            400,
            "invalid-request",
            Some(("/body/tags/0/label", "pattern")),
        ),
        (
            case("POST", "/v1/pets", JSON, r#"{"name":"R","status":"sold","owner":{"address":{"zip":"1"}}}"#),
            400,
            "invalid-request",
            Some(("/body/owner/address/zip", "pattern")),
        ),
        (
            case("POST", "/v1/pets", JSON, r#"{"name":"R","status":"sold","secret":"hunter2"}"#),
            400,
            "invalid-request",
            Some(("/body/secret", "minLength")),
        ),
        (
            case("POST", "/v1/pets", JSON, r#"{"name":"R","status":"sold""#),
            400,
            "invalid-json",
            Some(("/body/status", "json")),
        ),
        (case("POST", "/v1/pets", JSON, ""), 400, "invalid-request", Some(("/body", "required"))),
        (case("POST", "/v1/pets", Some("text/plain"), "x"), 415, "unsupported-media-type", None),
        (
            case("PUT", "/v1/pets/42", Some("application/x-www-form-urlencoded"), "age=x"),
            400,
            "invalid-request",
            None,
        ),
        (
            case("POST", "/v1/pets/42/photos", Some("multipart/form-data; boundary=XyZ"), "not multipart"),
            400,
            "invalid-request",
            Some(("/body", "multipart")),
        ),
        (case("GET", "/v1/pets", JSON, "{}"), 400, "invalid-request", Some(("/body", "requestBody"))),
    ];
    for (c, status, slug, first) in &invalid {
        let r = send(&client, c, true);
        assert_eq!(r.status, *status, "{} {} {}: {}", c.method, c.path, c.body, r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let v = r.json();
        assert_eq!(v["type"], format!("urn:api-guard:problem:{slug}"));
        if let Some((pointer, keyword)) = first {
            let errors = v["errors"].as_array().unwrap();
            assert!(
                errors.iter().any(|e| e["pointer"] == *pointer && e["keyword"] == *keyword),
                "{} {} {}: {errors:?}",
                c.method,
                c.path,
                c.body
            );
        }
        assert!(!r.text().contains("hunter2"), "a password value was echoed");
    }
    let r = send(&client, &case("PATCH", "/v1/pets", JSON, "{}"), true);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));

    // A chunked body is held and judged whole: an invalid one never reaches the upstream.
    let bearer = support::bearer("rs256");
    let head = format!(
        "POST /v1/pets HTTP/1.1\r\nhost: t\r\nauthorization: {bearer}\r\ncontent-type: application/json\r\n"
    );
    let r = client.send(&chunked(&head, &[br#"{"name":"R","#, br#""status":"gone"}"#])).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = client.send(&chunked(&head, &[br#"{"name":"R","#, br#""status":"sold"}"#])).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // Authentication comes before parameters: an anonymous caller learns nothing about them.
    let r = send(&client, &case("GET", "/v1/pets?limit=0", None, ""), false);
    assert_eq!(r.status, 401);

    assert_eq!(upstream.requests().len(), served + 1, "an invalid request reached the upstream");
    assert_eq!(envoy.denied("unknown_operation"), 2);
    assert_eq!(envoy.denied("invalid_request"), 14);
}

/// Envoy's filter without `allow_on_headers_stop_iteration: true` never delivers the body of a
/// held request. The first such request fails with a 500 problem about a second later (not
/// after Envoy's 15 s route timeout), the log names the setting, and from then on such
/// requests fail at once; requests without a body to judge are served as usual; nothing that
/// was refused reached the upstream.
#[test]
fn a_filter_without_the_envoy_setting_fails_fast_instead_of_hanging() {
    let upstream = Upstream::start();
    let opts = support::EnvoyOptions { allow_on_headers_stop_iteration: false, ..Default::default() };
    let envoy = Envoy::start_with(&config(), upstream.port, opts).unwrap_or_else(|l| panic!("{l}"));
    let client = Client::new(envoy.port);
    let post = case("POST", "/v1/pets", JSON, PET);
    for (i, patience) in [(0, 4.0), (1, 0.5)] {
        let started = std::time::Instant::now();
        let r = send(&client, &post, true);
        let took = started.elapsed().as_secs_f64();
        assert_eq!(r.status, 500, "request {i}: {}", r.text());
        assert_eq!(r.json()["type"], "urn:api-guard:problem:host-misconfigured");
        assert!(took < patience, "request {i} took {took:.1} s");
    }
    assert_eq!(send(&client, &case("GET", "/v1/pets/42", None, ""), true).status, 200);
    assert_eq!(upstream.requests().len(), 1, "only the GET may reach the upstream");
    assert_eq!(envoy.denied("host_misconfigured"), 2);
    let log = envoy.log();
    assert_eq!(log.matches("set `allow_on_headers_stop_iteration: true`").count(), 1, "{log}");
}
