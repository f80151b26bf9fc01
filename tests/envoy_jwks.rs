//! Remote key sets through the real Envoy: loading, key rotation without a restart, refetch
//! rate limiting, and every fetch failure keeping the last good keys. Without any keys, a
//! request that needs them gets 503, never a pass.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::jwks_server::{JwksServer, Mode};
use support::{Client, Envoy, EnvoyOptions, Upstream};

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(support::repo_root().join("tests/fixtures/jwt").join(name)).unwrap()
}

use support::token;

struct Setup {
    jwks: JwksServer,
    upstream: Upstream,
    envoy: Envoy,
    client: Client,
}

fn setup(initial: Mode, min_refetch: u32, cache: u32) -> Setup {
    let jwks = JwksServer::start(initial);
    let upstream = Upstream::start();
    let config = json!({
        "jwt": {
            "providers": {"idp": {
                "issuer": "https://issuer.test",
                "audiences": ["api://orders"],
                "algorithms": ["RS256", "ES256"],
                "remote_jwks": {
                    "http_uri": {"uri": format!("http://127.0.0.1:{}/jwks", jwks.port), "cluster": "idp", "timeout_ms": 500},
                    "cache_duration_seconds": cache,
                    "min_refetch_interval_seconds": min_refetch
                }
            }},
            "default": {"type": "jwt", "providers": ["idp"]}
        }
    })
    .to_string();
    let opts = EnvoyOptions { clusters: vec![("idp".into(), jwks.port)], ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&config, upstream.port, opts).unwrap_or_else(|l| panic!("{l}"));
    let client = Client::new(envoy.port);
    Setup { jwks, upstream, envoy, client }
}

fn call(s: &Setup, path: &str, t: &str) -> support::Response {
    s.client.request("GET", path, &[("authorization", &format!("Bearer {t}"))], b"")
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

#[test]
fn keys_load_and_tokens_verify() {
    let s = setup(Mode::Serve(fixture_bytes("jwks.json")), 1, 600);
    // The very first request either finds the keys loaded by the background refresh or
    // fetches them itself and waits: it passes either way.
    assert_eq!(call(&s, "/first", &token("rs256")).status, 200);
    assert_eq!(call(&s, "/es", &token("es256")).status, 200);
    assert_eq!(call(&s, "/bad", &token("wrong_key_same_kid")).status, 401);
    assert_eq!(s.upstream.requests().len(), 2);
    // The fixture set has four keys; the provider accepts RS256 and ES256, so the P-384 and
    // Ed25519 keys are not prepared (and the log says so).
    let log = s.envoy.log();
    assert!(log.contains("jwks for provider 'idp' loaded (2 keys)"), "{log}");
    assert!(
        log.contains("keys[2]: a P-384 key, which none of the provider's algorithms (RS256, ES256) uses"),
        "{log}"
    );
}

#[test]
fn key_rotation_is_followed_without_a_restart() {
    let s = setup(Mode::Serve(fixture_bytes("jwks.json")), 1, 600);
    assert_eq!(call(&s, "/before", &token("rs256")).status, 200);
    // The issuer rotates: rsa-2 signs, rsa-1 is gone.
    s.jwks.set(Mode::Serve(fixture_bytes("jwks-rotated.json")));
    std::thread::sleep(Duration::from_millis(1100)); // past min_refetch_interval
    let r = call(&s, "/after", &token("unknown_kid"));
    assert_eq!(r.status, 200, "a token signed by the new key was refused: {}", r.text());
    assert_eq!(s.upstream.seen_path("/after").len(), 1);
    // The old key no longer verifies once the set without it is loaded.
    eventually("old key refused", || call(&s, "/old", &token("rs256")).status == 401);
    assert!(s.upstream.seen_path("/old").is_empty());
}

#[test]
fn unknown_kids_cannot_turn_into_a_fetch_flood() {
    let s = setup(Mode::Serve(fixture_bytes("jwks.json")), 30, 600);
    assert_eq!(call(&s, "/warm", &token("rs256")).status, 200);
    let before = s.jwks.hits();
    for i in 0..40 {
        assert_eq!(call(&s, &format!("/flood/{i}"), &token("kid_path_traversal")).status, 401);
    }
    // At most one refetch per VM (main thread + one worker) within the interval.
    let extra = s.jwks.hits() - before;
    assert!(extra <= 2, "{extra} key-set fetches for 40 unknown-kid tokens");
    assert!(s.upstream.seen_path("/flood").is_empty());
}

#[test]
fn failed_fetches_keep_the_last_good_keys() {
    // A 1-second cache makes the background refresh run (and fail) constantly.
    let s = setup(Mode::Serve(fixture_bytes("jwks.json")), 1, 1);
    assert_eq!(call(&s, "/ok", &token("rs256")).status, 200);
    let good = fixture_bytes("jwks.json");
    for (i, mode) in [
        Mode::Status(500),
        Mode::Garbage,
        Mode::Huge(10 * 1024 * 1024),
        Mode::Slow(Duration::from_secs(2), good.clone()),
        Mode::Serve(br#"{"keys":[]}"#.to_vec()),
    ]
    .into_iter()
    .enumerate()
    {
        let hits = s.jwks.hits();
        s.jwks.set(mode.clone());
        eventually("a refresh attempt", || s.jwks.hits() > hits + 1);
        let r = call(&s, &format!("/still/{i}"), &token("rs256"));
        assert_eq!(r.status, 200, "{mode:?}: {}", r.text());
    }
    let log = s.envoy.log();
    for cause in ["(status, status 500)", "(invalid", "(too_large"] {
        assert!(log.contains(cause), "no `{cause}` failure logged:\n{log}");
    }
    // Envoy answers a timed-out call with a synthesized 504.
    assert!(
        log.contains("(status, status 504)") || log.contains("(no_response"),
        "no timeout logged:\n{log}"
    );
    assert!(!log.contains("not a key set"), "a response body reached the log");
}

#[test]
fn no_keys_at_all_means_503_never_a_pass() {
    let s = setup(Mode::Status(503), 1, 600);
    let r = call(&s, "/nokeys", &token("rs256"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:api-guard:problem:keys-unavailable");
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(s.upstream.requests().is_empty());
    // Once the issuer recovers, requests pass again without a restart.
    s.jwks.set(Mode::Serve(fixture_bytes("jwks.json")));
    eventually("recovery", || call(&s, "/recovered", &token("rs256")).status == 200);
}
