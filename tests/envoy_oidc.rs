//! End to end with a real OpenID provider: npm's `oidc-provider` on loopback issues RFC 9068
//! JWT access tokens (client_credentials with a resource indicator); Envoy fetches its JWKS
//! through a cluster; the provider rotates its signing key (new key signs, old key published,
//! then old key removed) and api-guard follows without an Envoy restart.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::idp::Idp;
use support::{Client, Envoy, EnvoyOptions, Upstream};

fn kid(token: &str) -> String {
    use base64::Engine;
    let h =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&h).unwrap()["kid"].as_str().unwrap().to_string()
}

/// The orders policy against the provider on `port`, with `budget` as
/// `jwt.verification_budget` if given.
fn policy(port: u16, budget: Option<Value>) -> String {
    let mut p = json!({
        "jwt": {
            "providers": {"oidc": {
                "issuer": format!("http://127.0.0.1:{port}"),
                "audiences": ["api://orders"],
                "algorithms": ["RS256"],
                "token_type": "at+jwt",
                "remote_jwks": {
                    "http_uri": {"uri": format!("http://127.0.0.1:{port}/jwks"), "cluster": "idp", "timeout_ms": 2000},
                    "cache_duration_seconds": 300,
                    "min_refetch_interval_seconds": 1
                },
                "claim_to_headers": [{"claim": "client_id", "header": "x-client-id"}]
            }},
            "default": {"type": "jwt", "providers": ["oidc"], "scopes": ["orders:read"]}
        },
        "routes": [{"name": "write", "match": {"prefix": "/orders", "methods": ["POST"]},
                    "auth": {"type": "jwt", "providers": ["oidc"], "scopes": ["orders:write"]}}]
    });
    if let Some(b) = budget {
        p["jwt"]["verification_budget"] = b;
    }
    p.to_string()
}

#[test]
fn tokens_from_a_real_provider_and_key_rotation_without_restart() {
    let mut idp = Idp::start(0, &["rsa-1"]);
    let port = idp.port;
    let upstream = Upstream::start();
    let config = policy(port, None);
    let opts = EnvoyOptions { clusters: vec![("idp".into(), port)], ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&config, upstream.port, opts).unwrap_or_else(|l| panic!("{l}"));
    let api = Client::new(envoy.port);
    let call =
        |path: &str, t: &str| api.request("GET", path, &[("authorization", &format!("Bearer {t}"))], b"");

    // 1. A token from the provider works; the scope rule is enforced.
    let old = idp.token("orders:read");
    assert_eq!(kid(&old), "rsa-1");
    let r = call("/orders/1", &old);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(upstream.seen_path("/orders/1")[0].header("x-client-id"), Some("orders-client"));
    let r = api.request(
        "POST",
        "/orders",
        &[("authorization", &format!("Bearer {old}")), ("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(r.status, 403);

    // 2. Rotation: a new key signs, the old one is still published.
    drop(idp);
    idp = Idp::start(port, &["rsa-2", "rsa-1"]);
    std::thread::sleep(Duration::from_millis(1100));
    let new = idp.token("orders:read");
    assert_eq!(kid(&new), "rsa-2");
    let r = call("/orders/2", &new);
    assert_eq!(r.status, 200, "the new key was not picked up: {}", r.text());
    assert_eq!(call("/orders/3", &old).status, 200, "the old key is still published");

    // 3. The old key is removed: its tokens stop working, the new ones keep working. Removal
    // reaches the module at the next refresh: when the cache duration ends, or, as here, when a
    // token with an unknown kid makes it refetch (at most once a second).
    drop(idp);
    let _idp = Idp::start(port, &["rsa-2"]);
    let probe = {
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"RS256","typ":"at+jwt","kid":"probe"}"#);
        let rest = new.split_once('.').unwrap().1;
        format!("{header}.{rest}")
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(call("/probe", &probe).status, 401);
        if call("/orders/4", &old).status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the removed key was never dropped");
    }
    assert_eq!(call("/orders/5", &new).status, 200);
    assert!(upstream.seen_path("/orders/4").is_empty());
    assert_eq!(envoy.denied("keys_unavailable"), 0);
}

/// Attack tokens made from a genuine one: distinct forgeries (its signature's first two
/// characters replaced), tokens that are not JWTs, tokens naming a key the provider never had,
/// and `alg: none`; each with the cause api-guard must give it.
fn attack(genuine: &str, i: usize) -> (String, &'static str) {
    use base64::Engine;
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let (signed, sig) = genuine.rsplit_once('.').unwrap();
    let payload = signed.split_once('.').unwrap().1;
    match i % 4 {
        0 | 1 => {
            let n = i / 4 * 2 + i % 4;
            let mut forged: Vec<u8> = sig.bytes().collect();
            forged[0] = B64[n % 64];
            forged[1] = B64[(n / 64 + 1) % 64];
            if forged == sig.as_bytes() {
                forged[2] = if forged[2] == b'A' { b'B' } else { b'A' };
            }
            (format!("{signed}.{}", String::from_utf8(forged).unwrap()), "signature")
        }
        2 if i % 8 == 2 => (format!("not-a-jwt-{i}"), "malformed"),
        2 => (
            format!(
                "{}.{payload}.{sig}",
                b64(&format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"gone-{i}"}}"#))
            ),
            "unknown_key",
        ),
        _ => (format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"at+jwt"}"#)), "algorithm"),
    }
}

/// What the attacker's requests were answered: (signature checks failed, refused unchecked
/// for the budget, refused for a cheap cause) by cause.
#[derive(Default, Debug)]
struct Tally {
    checked: u64,
    budget: u64,
    cheap: std::collections::BTreeMap<&'static str, u64>,
}

impl Tally {
    fn count(&mut self, cause: &str, r: &support::Response, what: &str) {
        match (cause, r.status) {
            ("signature", 401) => self.checked += 1,
            ("signature", 429) => {
                assert!(r.text().contains("verification-budget"), "{what}: {}", r.text());
                self.budget += 1;
            }
            (cause, 401) => {
                let cause: &'static str = match cause {
                    "malformed" => "malformed",
                    "unknown_key" => "unknown_key",
                    _ => "algorithm",
                };
                *self.cheap.entry(cause).or_default() += 1;
            }
            _ => panic!("{what} ({cause}): {} {}", r.status, r.text()),
        }
        assert!(r.header("www-authenticate").is_some() || r.status == 429, "{what}");
    }
}

/// An attacker and innocent clients behind one address, as a NAT or an office gateway shows
/// them: the attacker floods forged, malformed, unknown-key and `alg: none` tokens on
/// kept-alive connections, then one forgery per new connection; the innocent clients' tokens
/// (fresh from the provider, never seen before) pass throughout, on new connections and on a
/// kept-alive one of their own. Nothing the attacker sent reaches the upstream, each refusal
/// keeps its own cause, and signature checks stop at the budget on the attacker's connections.
#[test]
fn an_attacker_cannot_lock_out_the_clients_behind_its_address() {
    let idp = Idp::start(0, &["rsa-1"]);
    let upstream = Upstream::start();
    let budget = json!({"max_failures": 20, "window_seconds": 300});
    let opts = EnvoyOptions { clusters: vec![("idp".into(), idp.port)], ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&policy(idp.port, Some(budget)), upstream.port, opts)
        .unwrap_or_else(|l| panic!("{l}"));
    let api = Client::new(envoy.port);
    let fresh: Vec<String> = (0..40).map(|_| idp.token("orders:read")).collect();
    let genuine = idp.token("orders:read");
    let bearer = |t: &str| format!("Bearer {t}");

    let mut attacker = [api.connect(), api.connect()];
    let mut neighbour = api.connect();
    let mut tally = Tally::default();
    let mut innocent = fresh.iter();
    let mut passed = 0;
    for i in 0..400 {
        let (t, cause) = attack(&genuine, i);
        let what = format!("attack {i}");
        let r = attacker[i % 2]
            .request("GET", &format!("/attack/{i}"), &[("authorization", &bearer(&t))], b"")
            .unwrap_or_else(|| panic!("{what}: the connection closed"));
        tally.count(cause, &r, &what);
        if i % 20 == 19 {
            let t = innocent.next().unwrap();
            let r = if i % 40 == 19 {
                api.request("GET", &format!("/orders/innocent/{i}"), &[("authorization", &bearer(t))], b"")
            } else {
                neighbour
                    .request("GET", &format!("/orders/innocent/{i}"), &[("authorization", &bearer(t))], b"")
                    .unwrap()
            };
            assert_eq!(r.status, 200, "innocent request after attack {i}: {}", r.text());
            passed += 1;
        }
    }
    assert_eq!(passed, 20);
    // The attacker stopped costing signature checks at its budget.
    assert_eq!(tally.checked, 20, "{tally:?}");
    assert_eq!(tally.budget, 200 - 20, "{tally:?}");
    // A new connection per forgery buys the attacker a check each (bounded per VM by
    // max_checks_per_second), and still locks out nobody.
    for i in 400..420 {
        let (t, cause) = attack(&genuine, i * 4);
        let r = api.request("GET", &format!("/attack/{i}"), &[("authorization", &bearer(&t))], b"");
        assert_eq!((cause, r.status), ("signature", 401), "{}", r.text());
        let t = innocent.next().unwrap();
        let r = api.request("GET", &format!("/orders/innocent/{i}"), &[("authorization", &bearer(t))], b"");
        assert_eq!(r.status, 200, "innocent request after attack {i}: {}", r.text());
    }
    assert!(upstream.seen_path("/attack").is_empty(), "an attacker request reached the upstream");
    assert_eq!(upstream.seen_path("/orders/innocent").len(), 40);
    assert_eq!(envoy.token_invalid("signature"), 20 + 20);
    assert_eq!(envoy.denied("verification_budget"), 180);
    for (cause, n) in &tally.cheap {
        let all: Vec<(&str, u64)> = ["malformed", "unknown_key", "algorithm", "token_type", "signature"]
            .iter()
            .map(|c| (*c, envoy.token_invalid(c)))
            .collect();
        assert_eq!(envoy.token_invalid(cause), *n, "{cause}: {all:?}");
    }
    assert_eq!(tally.cheap.values().sum::<u64>(), 200);
}

/// Behind a trusted load balancer that pools its connections: Envoy is told to trust one hop
/// of `x-forwarded-for` (`use_remote_address`, `xff_num_trusted_hops: 1`), and api-guard's
/// client is the address Envoy computed. Fifty attacker addresses and ten innocent ones share
/// the balancer's two connections; each attacker address is stopped at its own budget, every
/// innocent first-seen token passes, nothing of the attackers' reaches the upstream.
#[test]
fn behind_a_trusted_proxy_each_client_is_the_address_it_forwarded() {
    let idp = Idp::start(0, &["rsa-1"]);
    let upstream = Upstream::start();
    let budget = json!({"max_failures": 5, "window_seconds": 300});
    let opts = EnvoyOptions {
        clusters: vec![("idp".into(), idp.port)],
        hcm: vec!["use_remote_address: true", "xff_num_trusted_hops: 1"],
        ..EnvoyOptions::default()
    };
    let envoy = Envoy::start_with(&policy(idp.port, Some(budget)), upstream.port, opts)
        .unwrap_or_else(|l| panic!("{l}"));
    let api = Client::new(envoy.port);
    let fresh: Vec<String> = (0..30).map(|_| idp.token("orders:read")).collect();
    let genuine = idp.token("orders:read");
    let bearer = |t: &str| format!("Bearer {t}");
    let mut pool = [api.connect(), api.connect()];
    let mut tally = Tally::default();
    let mut innocent = fresh.iter();
    let mut n = 0;
    for round in 0..8 {
        for a in 0..50 {
            let (t, cause) = attack(&genuine, (round * 50 + a) * 4);
            let from = format!("198.51.100.{}", a + 1);
            let what = format!("attacker {from} round {round}");
            let r = pool[n % 2]
                .request(
                    "GET",
                    &format!("/attack/{from}/{round}"),
                    &[("authorization", &bearer(&t)), ("x-forwarded-for", &from)],
                    b"",
                )
                .unwrap_or_else(|| panic!("{what}: the connection closed"));
            n += 1;
            tally.count(cause, &r, &what);
            assert_eq!(r.status, if round < 5 { 401 } else { 429 }, "{what}: {}", r.text());
        }
        for c in 0..3 {
            let from = format!("203.0.113.{}", round * 3 + c + 1);
            let t = innocent.next().unwrap();
            let r = pool[n % 2]
                .request(
                    "GET",
                    &format!("/orders/{from}"),
                    &[("authorization", &bearer(t)), ("x-forwarded-for", &from)],
                    b"",
                )
                .unwrap();
            n += 1;
            assert_eq!(r.status, 200, "innocent {from}: {}", r.text());
        }
    }
    assert_eq!((tally.checked, tally.budget), (250, 150));
    assert!(upstream.seen_path("/attack").is_empty(), "an attacker request reached the upstream");
    assert_eq!(upstream.seen_path("/orders/203.0.113.").len(), 24);
}

/// An over-budget address's fresh connections share `max_checks_per_second`; past it their
/// new tokens are refused 503 as overload (`Retry-After: 1`, its own counter), not as a client
/// fault; a cached token still passes, and another address is not limited.
#[test]
fn fresh_connections_of_an_over_budget_address_get_503_past_the_capacity() {
    let idp = Idp::start(0, &["rsa-1"]);
    let upstream = Upstream::start();
    let budget = json!({"max_failures": 1, "max_checks_per_second": 2, "client_header": "x-client-ip"});
    let opts = EnvoyOptions { clusters: vec![("idp".into(), idp.port)], ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&policy(idp.port, Some(budget)), upstream.port, opts)
        .unwrap_or_else(|l| panic!("{l}"));
    let api = Client::new(envoy.port);
    let cached = idp.token("orders:read");
    let bearer = |t: &str| format!("Bearer {t}");
    let call = |path: &str, t: &str| api.request("GET", path, &[("authorization", &bearer(t))], b"");
    assert_eq!(call("/orders/cached", &cached).status, 200);
    let overloaded = (0..40)
        .map(|i| call(&format!("/attack/{i}"), &attack(&cached, i * 4).0))
        .find(|r| r.status == 503)
        .expect("never over capacity at 2 checks per second");
    assert_eq!(overloaded.header("retry-after"), Some("1"));
    assert_eq!(overloaded.json()["type"], "urn:api-guard:problem:verification-overload");
    assert_eq!(call("/orders/cached", &cached).status, 200, "a cached token needs no check");
    // Another address, in good standing, is checked at once: the capacity is not its limit.
    for i in 0..5 {
        let t = idp.token("orders:read");
        let r = api.request(
            "GET",
            &format!("/orders/other/{i}"),
            &[("authorization", &bearer(&t)), ("x-client-ip", "203.0.113.4")],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(envoy.denied("verification_overload") >= 1);
    assert!(upstream.seen_path("/attack").is_empty());
    assert_eq!(upstream.seen_path("/orders/cached").len(), 2);
    assert_eq!(upstream.seen_path("/orders/other").len(), 5);
}

/// The policy of the discovery test: provider `oidc` names only its issuer and where its
/// discovery document is (`doc`: a cluster and, optionally, a URL).
fn discovery_policy(issuer: &str, discovery: Value) -> String {
    json!({"jwt": {
        "providers": {"oidc": {
            "issuer": issuer, "audiences": ["api://orders"], "algorithms": ["RS256"], "token_type": "at+jwt",
            "discovery": discovery
        }},
        "default": {"type": "jwt", "providers": ["oidc"], "scopes": ["orders:read"]}
    }})
    .to_string()
}

#[test]
fn the_key_set_is_found_through_discovery_and_another_issuers_document_is_refused() {
    let idp = Idp::start(0, &["rsa-1"]);
    let issuer = format!("http://127.0.0.1:{}", idp.port);
    let upstream = Upstream::start();
    let opts = |clusters: Vec<(String, u16)>| EnvoyOptions { clusters, ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(
        &discovery_policy(&issuer, json!({"cluster": "idp", "timeout_ms": 2000})),
        upstream.port,
        opts(vec![("idp".into(), idp.port)]),
    )
    .unwrap();
    let token = idp.token("orders:read");
    let r = Client::new(envoy.port).request(
        "GET",
        "/orders/1",
        &[("authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let log = envoy.log();
    assert!(log.contains(&format!("discovery for provider 'oidc': keys at {issuer}/jwks")), "{log}");

    // Another provider's document (a mix-up: it names its own issuer) never supplies keys.
    let other = Idp::start(0, &["rsa-2"]);
    let mixed = Envoy::start_with(
        &discovery_policy(
            &issuer,
            json!({"uri": format!("http://127.0.0.1:{}/.well-known/openid-configuration", other.port), "cluster": "other"}),
        ),
        upstream.port,
        opts(vec![("other".into(), other.port)]),
    )
    .unwrap();
    let r = Client::new(mixed.port).request(
        "GET",
        "/orders/2",
        &[("authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:api-guard:problem:keys-unavailable");
    assert!(mixed.log().contains("failed (discovery"), "{}", mixed.log());
    assert!(upstream.seen_path("/orders/2").is_empty());
}

/// The policy of the introspection test: provider `opaque` asks the provider's introspection
/// endpoint (as `orders-client`) about every token it has not seen.
fn introspection_policy(port: u16) -> String {
    let issuer = format!("http://127.0.0.1:{port}");
    json!({"jwt": {
        "providers": {"opaque": {
            "issuer": issuer, "audiences": ["api://opaque"],
            "introspection": {"uri": format!("{issuer}/token/introspection"), "cluster": "idp", "timeout_ms": 2000,
                              "client_id": "orders-client", "client_secret": "orders-client-secret-for-tests-only"},
            "claim_to_headers": [{"claim": "client_id", "header": "x-client-id"}]
        }},
        "default": {"type": "jwt", "providers": ["opaque"], "scopes": ["orders:read"]}
    }})
    .to_string()
}

#[test]
fn opaque_tokens_are_introspected_once_per_cache_lifetime_and_fail_closed() {
    let idp = Idp::start(0, &["rsa-1"]);
    let upstream = Upstream::start();
    // Two workers, each its own VM and cache: the answer is shared between them.
    let opts =
        EnvoyOptions { concurrency: 2, clusters: vec![("idp".into(), idp.port)], ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&introspection_policy(idp.port), upstream.port, opts).unwrap();
    let token = idp.opaque_token("orders:read");
    assert_eq!(token.split('.').count(), 1, "not an opaque token: {token}");
    let before = idp.introspections();
    let bearer = format!("Bearer {token}");
    let statuses: Vec<u16> = (0..20)
        .map(|i| {
            Client::new(envoy.port)
                .request("GET", &format!("/orders/{i}"), &[("authorization", &bearer)], b"")
                .status
        })
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(idp.introspections() - before, 1, "one introspection for twenty requests");
    let seen = upstream.seen_path("/orders/0");
    assert_eq!(seen[0].header("x-client-id"), Some("orders-client"), "the answer's claims are the caller's");
    assert_eq!(seen[0].header("authorization"), None, "the token reached the upstream");

    // An unknown token: inactive, refused, and asked about once per worker however often it
    // is sent.
    let before = idp.introspections();
    for _ in 0..3 {
        let r = Client::new(envoy.port).request(
            "GET",
            "/orders/x",
            &[("authorization", "Bearer not-a-token-it-issued")],
            b"",
        );
        assert_eq!((r.status, r.json()["type"].as_str()), (401, Some("urn:api-guard:problem:token-invalid")));
    }
    // Inactive answers are remembered per worker VM (two workers: at most two calls).
    let asked = idp.introspections() - before;
    assert!((1..=2).contains(&asked), "{asked} calls for one unknown token");
    assert_eq!(envoy.series(support::envoy::REQUESTS, &[("cause", "inactive")]), 3);
    assert!(upstream.seen_path("/orders/x").is_empty());

    // A token revoked before its first use: inactive.
    let revoked = idp.opaque_token("orders:read");
    idp.revoke(&revoked);
    let r = Client::new(envoy.port).request(
        "GET",
        "/orders/revoked",
        &[("authorization", &format!("Bearer {revoked}"))],
        b"",
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(envoy.series(support::envoy::REQUESTS, &[("cause", "inactive")]), 4);
    // No opaque token appears in any log line.
    let log = envoy.log();
    assert!(!log.contains(&token) && !log.contains(&revoked), "an opaque token was logged");

    // The provider down: a token never seen is refused 503, not passed.
    let other = idp.opaque_token("orders:read");
    drop(idp);
    let r = Client::new(envoy.port).request(
        "GET",
        "/orders/down",
        &[("authorization", &format!("Bearer {other}"))],
        b"",
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:api-guard:problem:keys-unavailable");
    assert!(upstream.seen_path("/orders/down").is_empty());
}
