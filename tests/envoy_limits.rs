//! Request limits through the real Envoy 1.40 with the built module. Every denial test also
//! checks the recording upstream: a denied request must never reach it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use support::client::chunked;
use support::{Client, Envoy, EnvoyOptions, Upstream};

const CONFIG: &str = r#"{
  "limits": {"max_body_bytes": 64, "max_header_count": 20, "max_header_bytes": 2048},
  "routes": [
    {"name": "upload", "match": {"prefix": "/upload", "methods": ["POST", "PUT"]},
     "limits": {"max_body_bytes": 4096, "allowed_content_types": ["application/octet-stream"]}},
    {"name": "items", "match": {"path": "/items/{id}"},
     "limits": {"allowed_methods": ["GET", "HEAD"]}}
  ],
  "host": {"hold_headers_for_body": true}
}"#;

type Setup = support::Gateway;

fn setup(config: &str) -> Setup {
    support::Gateway::start(config)
}

/// A JSON string of exactly `n` bytes (`n` ≥ 2): bodies are JSON-checked, so sizes are
/// tested with valid JSON.
fn json_of(n: usize) -> Vec<u8> {
    format!("\"{}\"", "a".repeat(n - 2)).into_bytes()
}

/// `n` bytes of a JSON string split in two chunks of `a` and `n - a` bytes.
fn json_chunks(a: usize, n: usize) -> (Vec<u8>, Vec<u8>) {
    let whole = json_of(n);
    let (x, y) = whole.split_at(a);
    (x.to_vec(), y.to_vec())
}

/// Asserts the RFC 9457 shape of a denial and returns the parsed body.
fn assert_problem(r: &support::Response, status: u16, slug: &str) -> serde_json::Value {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    assert_eq!(v["type"], format!("urn:api-guard:problem:{slug}"));
    assert_eq!(v["status"], status);
    assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(v["detail"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(v["request_id"].as_str().is_some_and(|t| !t.is_empty()));
    v
}

#[test]
fn allowed_request_reaches_upstream_unchanged() {
    let s = setup(CONFIG);
    let r = s.client.request("POST", "/echo?q=1", &[("content-type", "application/json")], br#"{"a":1}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = s.upstream.seen_path("/echo");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/echo?q=1");
    assert_eq!(seen[0].body, br#"{"a":1}"#);
    assert!(seen[0].complete);
    assert_eq!(s.envoy.allowed(), 1);
}

#[test]
fn declared_body_size_just_under_at_and_over_the_limit() {
    let s = setup(CONFIG);
    let ct = [("content-type", "application/json")];
    assert_eq!(s.client.request("POST", "/under", &ct, &json_of(63)).status, 200);
    assert_eq!(s.client.request("POST", "/at", &ct, &json_of(64)).status, 200);
    let r = s.client.request("POST", "/over", &ct, &json_of(65));
    assert_problem(&r, 413, "body-too-large");
    assert_eq!(s.upstream.seen_path("/under")[0].body.len(), 63);
    assert_eq!(s.upstream.seen_path("/at")[0].body.len(), 64);
    assert!(s.upstream.seen_path("/over").is_empty(), "a 413 reached the upstream");
    assert_eq!(s.envoy.denied("body_too_large"), 1);
}

#[test]
fn chunked_body_without_content_length_is_counted_and_held() {
    let s = setup(CONFIG);
    let head = |p: &str| format!("POST {p} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n");
    // 32 + 31 = 63 bytes in two chunks: allowed, and the upstream gets all of it.
    let (a, b) = json_chunks(32, 63);
    let r = s.client.send(&chunked(&head("/c-under"), &[&a, &b])).unwrap();
    assert_eq!(r.status, 200);
    let seen = s.upstream.seen_path("/c-under");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.len(), 63);
    // 40 + 25 = 65 bytes: refused at the second chunk, and nothing reached the upstream.
    let (a, b) = json_chunks(40, 65);
    let r = s.client.send(&chunked(&head("/c-over"), &[&a, &b])).unwrap();
    assert_problem(&r, 413, "body-too-large");
    assert!(s.upstream.seen_path("/c-over").is_empty(), "a held request reached the upstream");
    // A body far over the limit in one chunk.
    let r = s.client.send(&chunked(&head("/c-big"), &[&json_of(100_000)])).unwrap();
    assert_problem(&r, 413, "body-too-large");
    assert!(s.upstream.seen_path("/c-big").is_empty());
}

#[test]
fn chunked_body_is_cut_off_at_the_limit_when_headers_cannot_be_held() {
    let upstream = Upstream::start();
    let config = CONFIG.replace(r#""hold_headers_for_body": true"#, r#""hold_headers_for_body": false"#);
    let opts = EnvoyOptions { allow_on_headers_stop_iteration: false, ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&config, upstream.port, opts).unwrap();
    let client = Client::new(envoy.port);
    let head = "POST /stream HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n";
    let (a, b) = json_chunks(40, 80);
    let r = client.send(&chunked(head, &[&a, &b])).unwrap();
    assert_problem(&r, 413, "body-too-large");
    // Streaming mode: the upstream may see the head, but never a complete over-limit request.
    assert!(upstream.seen_path("/stream").iter().all(|r| !r.complete && r.body.len() <= 64));
    let (a, b) = json_chunks(30, 60);
    let r = client.send(&chunked(head, &[&a, &b])).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn per_route_limits_override_the_global_ones() {
    let s = setup(CONFIG);
    let octet = [("content-type", "application/octet-stream")];
    // The upload route allows 4 KiB of octet-stream.
    assert_eq!(s.client.request("PUT", "/upload/f", &octet, &[7; 4000]).status, 200);
    let r = s.client.request("PUT", "/upload/f", &octet, &[7; 4097]);
    assert_problem(&r, 413, "body-too-large");
    // ... but not JSON, which the global limits would allow.
    let r = s.client.request("POST", "/upload/f", &[("content-type", "application/json")], b"{}");
    assert_problem(&r, 415, "unsupported-media-type");
    // GET /upload is not selected by the route (methods POST, PUT) and gets the global limits.
    assert_eq!(s.client.get("/upload/f").status, 200);
    // Octet-stream is not allowed outside the route.
    let r = s.client.request("POST", "/other", &octet, &[7; 10]);
    assert_problem(&r, 415, "unsupported-media-type");
    assert_eq!(s.upstream.seen_path("/upload").len(), 2);
    assert!(s.upstream.seen_path("/other").is_empty());
}

#[test]
fn methods_outside_the_allowlist_get_405_with_allow() {
    let s = setup(CONFIG);
    let r = s.client.request("DELETE", "/items/7", &[], b"");
    assert_problem(&r, 405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // The global default refuses TRACE and extension methods.
    let r = s.client.request("TRACE", "/x", &[], b"");
    assert_problem(&r, 405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"));
    let r = s.client.request("PROPFIND", "/x", &[], b"");
    assert_problem(&r, 405, "method-not-allowed");
    assert_eq!(s.client.get("/items/7").status, 200);
    assert_eq!(s.upstream.requests().len(), 1, "only the GET may arrive");
}

#[test]
fn bodies_need_an_allowed_content_type() {
    let s = setup(CONFIG);
    let r = s.client.request("POST", "/ct", &[], b"{}");
    assert_problem(&r, 415, "unsupported-media-type");
    let r = s.client.request("POST", "/ct", &[("content-type", "text/html")], b"<b>");
    assert_problem(&r, 415, "unsupported-media-type");
    let r = s.client.request("POST", "/ct", &[("content-type", "application/json; charset=utf-8")], b"{}");
    assert_eq!(r.status, 200);
    let r = s.client.request("PATCH", "/ct", &[("content-type", "application/merge-patch+json")], b"{}");
    assert_eq!(r.status, 200);
    // No body, no content type needed.
    assert_eq!(s.client.request("POST", "/ct", &[], b"").status, 200);
    assert_eq!(s.upstream.seen_path("/ct").len(), 3);
}

#[test]
fn too_many_or_too_large_headers_get_431() {
    let s = setup(CONFIG);
    let many: Vec<(String, String)> = (0..25).map(|i| (format!("x-h{i}"), "v".to_string())).collect();
    let many_ref: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let r = s.client.request("GET", "/many", &many_ref, b"");
    assert_problem(&r, 431, "headers-too-large");
    let big = "b".repeat(3000);
    let r = s.client.request("GET", "/big", &[("x-big", &big)], b"");
    assert_problem(&r, 431, "headers-too-large");
    let r = s.client.request("GET", "/fine", &many_ref[..10], b"");
    assert_eq!(r.status, 200);
    assert!(s.upstream.seen_path("/many").is_empty());
    assert!(s.upstream.seen_path("/big").is_empty());
    assert_eq!(s.envoy.denied("headers_too_large"), 2);
}

#[test]
fn credentials_in_the_query_string_are_refused_and_never_logged() {
    let s = setup(CONFIG);
    let secret = "s3cr3t-Query-Token-value";
    for q in [
        format!("/q?access_token={secret}"),
        format!("/q?a=1&API_KEY={secret}"),
        format!("/q?x=1;apikey={secret}"),
        format!("/q?access%5Ftoken={secret}"),
        format!("/q?token[]={secret}"),
        format!("/q?jwt={secret}"),
    ] {
        let r = s.client.get(&q);
        let v = assert_problem(&r, 400, "credential-in-query");
        assert!(!r.text().contains(secret), "denial echoed the credential: {v}");
    }
    assert_eq!(s.client.get("/q?tokens=1&page=2").status, 200);
    assert!(s.upstream.requests().iter().all(|r| !r.path.contains(secret)));
    assert_eq!(s.envoy.denied("credential_in_query"), 6);
    let log = s.envoy.log();
    assert!(log.contains("credential-in-query"), "no denial log line");
    assert!(!log.contains(secret), "the credential appeared in Envoy's log");
}

#[test]
fn ambiguous_paths_are_refused_and_paths_are_normalised_before_matching() {
    let s = setup(CONFIG);
    for p in ["/a%2Fb", "/a%5cb", "/a%00b", "/a%zz"] {
        let r = s.client.get(p);
        assert_problem(&r, 400, "invalid-path");
    }
    assert!(s.upstream.requests().is_empty());
    // `/x/../items/7` is the items route, which refuses DELETE.
    let r = s.client.request("DELETE", "/x/../items/7", &[], b"");
    assert_eq!(r.status, 405);
    let r = s.client.request("DELETE", "//items/%37", &[], b"");
    assert_eq!(r.status, 405);
}

#[test]
fn denials_carry_the_request_id_and_metrics_reach_stats_and_prometheus() {
    let s = setup(CONFIG);
    let r = s.client.request("TRACE", "/x", &[("x-request-id", "abc-123")], b"");
    let v = assert_problem(&r, 405, "method-not-allowed");
    // Envoy regenerates x-request-id for external requests unless told otherwise, so the id is
    // either the client's or Envoy's; either way it is a safe token and not empty.
    let id = v["request_id"].as_str().unwrap();
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)), "{id}");
    assert_eq!(s.client.get("/ok").status, 200);
    assert_eq!(s.envoy.denied_total(), 1);
    assert_eq!(s.envoy.denied("method_not_allowed"), 1);
    assert_eq!(s.envoy.allowed(), 1);
    let (status, prom) = s.envoy.admin("/stats/prometheus").unwrap();
    assert_eq!(status, 200);
    // Labels, as the shipped stats_tags extract them from the names.
    let series = |labels: &[&str]| {
        prom.lines()
            .filter(|l| {
                l.starts_with("api_guard_requests_total{") && labels.iter().all(|want| l.contains(want))
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let denied = series(&["decision=\"denied\"", "reason=\"method_not_allowed\"", "cause=\"none\""]);
    assert_eq!(denied.len(), 1, "{prom}");
    assert!(denied[0].ends_with(" 1"), "{denied:?}");
    let allowed = series(&["decision=\"allowed\"", "reason=\"none\""]);
    assert_eq!(allowed.len(), 1, "{prom}");
    assert!(allowed[0].ends_with(" 1"), "{allowed:?}");
    assert!(prom.contains("# TYPE api_guard_requests_total counter"), "{prom}");
    // The log line names reason, route and request id, and no header value.
    let log = s.envoy.log();
    let entry = log.lines().find(|l| l.contains("\"event\":\"api_guard_denied\"")).expect("denial log line");
    assert!(
        entry.contains("\"reason\":\"method-not-allowed\"")
            && entry.contains(&format!("\"request_id\":\"{id}\"")),
        "{entry}"
    );
}

#[test]
fn empty_configuration_means_safe_defaults() {
    let s = setup("");
    assert_eq!(s.client.get("/").status, 200);
    assert_problem(&s.client.get("/?access_token=x"), 400, "credential-in-query");
    assert_problem(&s.client.request("TRACE", "/", &[], b""), 405, "method-not-allowed");
    let r =
        s.client.request("POST", "/", &[("content-type", "application/json")], &vec![b'a'; 1024 * 1024 + 1]);
    assert_problem(&r, 413, "body-too-large");
    assert_eq!(s.upstream.requests().len(), 1);
}

#[test]
fn invalid_configuration_is_refused_with_the_field_named() {
    let upstream = Upstream::start();
    let bad = r#"{"routes":[{"name":"a","match":{"prefix":"/"},"limits":{"max_body_bytez":1}}]}"#;
    let log = match Envoy::start_with(bad, upstream.port, EnvoyOptions::default()) {
        Ok(_) => panic!("Envoy came up with an invalid api-guard configuration"),
        Err(log) => log,
    };
    assert!(
        log.contains("invalid api-guard configuration at `routes[0].limits.max_body_bytez`: unknown field `max_body_bytez`"),
        "log does not name the field:\n{log}"
    );
    let bad = r#"{"routes":[{"name":"a","match":{"path":"/users/{id"}}]}"#;
    let log = Envoy::start_with(bad, upstream.port, EnvoyOptions::default()).err().unwrap();
    assert!(log.contains("at `routes[0].match.path`"), "{log}");
}
