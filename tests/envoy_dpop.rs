//! DPoP (RFC 9449) through the real Envoy 1.40 with the built module. The access token comes
//! from the real OpenID provider (`oidc-provider` with its `dPoP` feature), bound to a key
//! that npm `dpop` made; the proofs are that library's too (`tests/dpop/proofs.mjs`). A proof
//! for this request passes once; a replayed, stale, other-method, other-URL, hash-less or
//! other-key proof, a missing one, and the token sent as a Bearer token are refused, each with
//! its own cause, and the recording upstream sees none of them. With two worker VMs, a replay
//! is refused whichever worker it reaches (the proofs both take are in shared data).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::{json, Value};
use support::idp::Idp;
use support::{Client, Envoy, EnvoyOptions, Upstream};

fn policy(idp: u16) -> String {
    let issuer = format!("http://127.0.0.1:{idp}");
    json!({"jwt": {
        "providers": {"oidc": {
            "issuer": issuer, "audiences": ["api://orders"], "algorithms": ["RS256"], "token_type": "at+jwt",
            "remote_jwks": {"http_uri": {"uri": format!("{issuer}/jwks"), "cluster": "idp", "timeout_ms": 2000}},
            "dpop": {"mode": "required", "max_age_seconds": 3}
        }},
        "default": {"type": "jwt", "providers": ["oidc"], "scopes": ["orders:read"]}
    }})
    .to_string()
}

#[test]
fn a_dpop_bound_token_passes_only_with_a_fresh_proof_of_its_key() {
    let idp = Idp::start(0, &["rsa-1"]);
    let upstream = Upstream::start();
    // Two workers, each its own VM: a replay must be caught whichever one it reaches.
    let opts =
        EnvoyOptions { concurrency: 2, clusters: vec![("idp".into(), idp.port)], ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&policy(idp.port), upstream.port, opts).unwrap();
    let out = std::process::Command::new("node")
        .arg(support::repo_root().join("tests/dpop/proofs.mjs"))
        // The test client sends `Host: test`: the authority the proofs are made for.
        .args([idp.port.to_string(), "http://test".to_string()])
        .output()
        .expect("node runs (make dpop-client)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = made["token"].as_str().unwrap();
    let proof =
        |name: &str| made["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    let c = Client::new(envoy.port);
    let send = |case: &Value, scheme: &str| {
        let path = case["path"].as_str().unwrap();
        let auth = format!("{scheme} {token}");
        let headers = [("authorization", auth.as_str()), ("dpop", case["proof"].as_str().unwrap())];
        c.request(case["method"].as_str().unwrap(), path, &headers, b"")
    };

    let valid = proof("valid");
    let first = send(&valid, "DPoP");
    assert_eq!(first.status, 200, "{}", first.text());
    let post = proof("post");
    assert_eq!(send(&post, "DPoP").status, 200);
    assert_eq!(upstream.requests().len(), 2);
    let forwarded = &upstream.requests()[0];
    assert_eq!(
        (forwarded.header("authorization"), forwarded.header("dpop")),
        (None, None),
        "token or proof forwarded"
    );

    // Every request first (the proofs are fresh for three seconds), the counters after.
    let mut causes = Vec::new();
    let mut refused = |r: support::Response, slug: &str, cause: &'static str| {
        assert_eq!(r.status, 401, "{cause}: {}", r.text());
        assert_eq!(r.json()["type"], format!("urn:api-guard:problem:{slug}"), "{cause}");
        causes.push(cause);
        r
    };
    let replay = refused(send(&valid, "DPoP"), "dpop-proof-invalid", "dpop_replay");
    // Again on fresh connections, which Envoy spreads over both workers.
    for _ in 0..7 {
        refused(send(&valid, "DPoP"), "dpop-proof-invalid", "dpop_replay");
    }
    refused(send(&proof("stale"), "DPoP"), "dpop-proof-invalid", "dpop_iat");
    refused(send(&proof("wrong_method"), "DPoP"), "dpop-proof-invalid", "dpop_method");
    refused(send(&proof("wrong_url"), "DPoP"), "dpop-proof-invalid", "dpop_url");
    refused(send(&proof("no_ath"), "DPoP"), "dpop-proof-invalid", "dpop_ath");
    refused(send(&proof("wrong_key"), "DPoP"), "dpop-proof-invalid", "dpop_key_mismatch");
    let missing = c.request("GET", "/orders/missing", &[("authorization", &format!("DPoP {token}"))], b"");
    refused(missing, "dpop-proof-invalid", "dpop_missing");
    let bearer = c.request("GET", "/orders/bearer", &[("authorization", &format!("Bearer {token}"))], b"");
    let bearer = refused(bearer, "token-invalid", "dpop_bound_as_bearer");
    // An unbound token where DPoP is required.
    let plain = idp.token("orders:read");
    refused(
        c.request("GET", "/orders/plain", &[("authorization", &format!("Bearer {plain}"))], b""),
        "token-invalid",
        "dpop_required",
    );
    let www = replay.header("www-authenticate").unwrap();
    assert!(
        www.starts_with("DPoP ") && www.contains("error=\"invalid_dpop_proof\"") && www.contains("ES256"),
        "{www}"
    );
    let www = bearer.header("www-authenticate").unwrap();
    assert!(www.contains("Bearer") && www.contains("DPoP algs="), "{www}");
    causes.dedup();
    for cause in causes {
        let want = if cause == "dpop_replay" { 8 } else { 1 };
        assert_eq!(envoy.series(support::envoy::REQUESTS, &[("cause", cause)]), want, "{cause} counted");
    }
    assert_eq!(upstream.requests().len(), 2, "a refused request reached the upstream");
    // Neither the token nor any proof appears in a log line.
    let log = envoy.log();
    assert!(!log.contains(token), "the token was logged");
    for case in made["cases"].as_array().unwrap() {
        let signature = case["proof"].as_str().unwrap().rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a proof was logged");
    }
}
