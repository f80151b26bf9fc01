//! API keys through the real Envoy 1.40 with the built module: a known key passes as its
//! consumer and never reaches the upstream; missing, unknown, revoked and under-scoped keys
//! and keys in the query are refused with their own problem, and the recording upstream sees
//! none of them; a rate limit keyed by `sub` counts per consumer whatever the address; the
//! request counter carries `provider="api_key"`. The configuration holds SHA-256 digests made
//! here with `sha256sum` (coreutils), not by the module's hash, and no log line may hold a key
//! (the harness checks every line when an Envoy is dropped).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::json;
use support::{Client, Envoy, EnvoyOptions, Gateway, Upstream};

const BATCH: &str = "ak_test_batch_9f8e7d6c5b4a";
const CI: &str = "ak_test_ci_1a2b3c4d5e6f";

/// The SHA-256 of `key` as `sha256sum` prints it.
fn sha256sum(key: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    child.stdin.take().unwrap().write_all(key.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

/// The policy: `batch` (with `orders:read`) and, unless revoked, `ci` (no scopes).
fn policy(with_ci: bool) -> String {
    let mut keys = vec![
        json!({"consumer": "batch", "prefix": "ak_test_", "sha256": sha256sum(BATCH), "scopes": ["orders:read"]}),
    ];
    if with_ci {
        keys.push(json!({"consumer": "ci", "sha256": sha256sum(CI)}));
    }
    json!({
        "api_keys": {"consumer_header": "x-consumer", "keys": keys},
        "rate_limits": {"policies": {"per-consumer": {"requests": 3, "window_seconds": 3600,
                                                       "key": {"type": "claim", "claim": "sub"}}}},
        "routes": [
            {"name": "orders", "match": {"prefix": "/orders"}, "auth": {"type": "api_key", "scopes": ["orders:read"]}},
            {"name": "limited", "match": {"prefix": "/limited"}, "rate_limits": ["per-consumer"]},
            {"name": "other", "match": {"prefix": "/other"}}
        ]
    })
    .to_string()
}

fn get(c: &Client, path: &str, headers: &[(&str, &str)]) -> support::Response {
    c.request("GET", path, headers, b"")
}

#[test]
fn keys_pass_as_their_consumer_and_every_bad_key_is_refused_before_the_upstream() {
    let gw = Gateway::start(&policy(true));
    let c = &gw.client;

    let ok = get(c, "/orders/1", &[("x-api-key", BATCH), ("x-consumer", "admin")]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let seen = gw.upstream.seen_path("/orders/1");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-api-key"), None, "the key reached the upstream");
    assert_eq!(seen[0].header("x-consumer"), Some("batch"), "the client's consumer header was not replaced");

    let refused = |path: &str, headers: &[(&str, &str)], status: u16, slug: &str| {
        let r = get(c, path, headers);
        assert_eq!(r.status, status, "{path} {headers:?}: {}", r.text());
        assert_eq!(r.json()["type"], format!("urn:api-guard:problem:{slug}"));
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert!(gw.upstream.seen_path(path).is_empty(), "{path} reached the upstream");
        r
    };
    let missing = refused("/orders/2", &[], 401, "api-key-missing");
    assert_eq!(missing.header("www-authenticate"), Some("ApiKey realm=\"api\""));
    refused("/orders/3", &[("x-api-key", "ak_test_not_a_key")], 401, "api-key-invalid");
    // A Bearer token is not an API key.
    refused("/orders/4", &[("authorization", &format!("Bearer {BATCH}"))], 401, "api-key-missing");
    // `ci` holds no `orders:read`.
    refused("/orders/5", &[("x-api-key", CI)], 403, "access-denied");
    refused("/orders/6?api_key=ak_test_batch_9f8e7d6c5b4a", &[], 400, "credential-in-query");
    refused(
        "/orders/7?x-api-key=ak_test_batch_9f8e7d6c5b4a",
        &[("x-api-key", BATCH)],
        400,
        "credential-in-query",
    );
    // A route without `auth` takes a key (no `jwt` section), with no scope needed.
    refused("/other/1", &[], 401, "api-key-missing");
    assert_eq!(get(c, "/other/2", &[("x-api-key", CI)]).status, 200);

    // Counted per consumer: batch's three, then 429; ci has its own three.
    let statuses =
        |key: &str| (0..4).map(|_| get(c, "/limited", &[("x-api-key", key)]).status).collect::<Vec<_>>();
    assert_eq!(statuses(BATCH), [200, 200, 200, 429]);
    assert_eq!(statuses(CI), [200, 200, 200, 429]);

    let invalid = gw.envoy.series(
        support::envoy::REQUESTS,
        &[("decision", "denied"), ("reason", "api_key_invalid"), ("provider", "api_key")],
    );
    assert_eq!(invalid, 1, "the refused key's counter");
    let allowed =
        gw.envoy.series(support::envoy::REQUESTS, &[("decision", "allowed"), ("provider", "api_key")]);
    assert!(allowed >= 8, "admitted key requests counted with provider=api_key: {allowed}");
}

#[test]
fn a_key_whose_entry_is_removed_is_refused() {
    let upstream = Upstream::start();
    let before = Envoy::start_with(&policy(true), upstream.port, EnvoyOptions::default()).unwrap();
    assert_eq!(get(&Client::new(before.port), "/other", &[("x-api-key", CI)]).status, 200);
    let after = Envoy::start_with(&policy(false), upstream.port, EnvoyOptions::default()).unwrap();
    let r = get(&Client::new(after.port), "/other", &[("x-api-key", CI)]);
    assert_eq!((r.status, r.json()["type"].as_str()), (401, Some("urn:api-guard:problem:api-key-invalid")));
    assert_eq!(get(&Client::new(after.port), "/other", &[("x-api-key", BATCH)]).status, 200);
}

#[test]
fn a_digest_that_is_not_one_is_refused_at_load_with_the_field() {
    let config = json!({"api_keys": {"keys": [{"consumer": "x", "sha256": BATCH}]}}).to_string();
    let upstream = Upstream::start();
    let log = match Envoy::start_with(&config, upstream.port, EnvoyOptions::default()) {
        Ok(_) => panic!("Envoy accepted a key in place of its digest"),
        Err(log) => log,
    };
    assert!(log.contains("api_keys.keys[0].sha256") && log.contains("never the key itself"), "{log}");
    // The refused configuration's log names the field, not the value.
    assert!(!log.contains(BATCH), "the key text appears in the load log");
}
