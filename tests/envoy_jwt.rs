//! JWT validation through the real Envoy: valid tokens reach the upstream with verified claims
//! and without the token; every token in the attack corpus is refused with the right status
//! and challenge, never reaches the upstream, and never appears in the module's log lines
//! (the wasm log component runs at trace level for this).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::{json, Value};
use support::{Client, Envoy, EnvoyOptions, Upstream};

fn fixture(name: &str) -> Value {
    support::fixture(&format!("jwt/{name}"))
}

use support::token;

fn config() -> String {
    // One entry the module cannot use: skipped with a warning, the rest of the set still loads.
    let mut jwks = fixture("jwks.json");
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "odd"}));
    json!({
        "jwt": {
            "providers": {
                "idp": {
                    "issuer": "https://issuer.test",
                    "audiences": ["api://orders"],
                    "algorithms": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
                    "local_jwks": jwks,
                    "token_type": "at+jwt",
                    "claim_to_headers": [{"claim": "sub", "header": "x-user"}, {"claim": "roles", "header": "x-roles"}]
                }
            },
            "default": {"type": "jwt", "providers": ["idp"]},
            "realm": "orders",
            // The attack corpus alone fails more than the default 20 checks; the budget has
            // its own test below.
            "verification_budget": {"max_failures": 1000}
        },
        "routes": [
            {"name": "health", "match": {"path": "/health"}, "auth": {"type": "public"}},
            {"name": "write", "match": {"path": "/orders", "methods": ["POST"]},
             "auth": {"type": "jwt", "providers": ["idp"], "scopes": ["orders:write"]}},
            {"name": "admin", "match": {"prefix": "/admin"},
             "auth": {"type": "jwt", "providers": ["idp"], "scopes": ["orders:admin"]}},
            {"name": "users", "match": {"path": "/users/{id}"},
             "auth": {"type": "jwt", "providers": ["idp"], "bind": [{"param": "id", "claim": "sub"}]}}
        ]
    })
    .to_string()
}

type Setup = support::Gateway;

fn setup() -> Setup {
    support::Gateway::start_with(
        &config(),
        EnvoyOptions { wasm_log_level: Some("trace"), ..EnvoyOptions::default() },
    )
}

fn get(s: &Setup, path: &str, token: Option<&str>) -> support::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    s.client.request("GET", path, &headers, b"")
}

#[test]
fn valid_tokens_pass_with_claims_and_without_the_token() {
    let s = setup();
    for name in ["rs256", "ps256", "es256", "es384", "eddsa", "claims_rich"] {
        let r = s.client.request(
            "GET",
            &format!("/ok/{name}"),
            &[("authorization", &format!("Bearer {}", token(name))), ("x-user", "spoofed-admin")],
            b"",
        );
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let seen = s.upstream.seen_path(&format!("/ok/{name}"));
        assert_eq!(seen.len(), 1, "{name}");
        let want = if name == "claims_rich" { "user-7" } else { "user-42" };
        assert_eq!(seen[0].header("x-user"), Some(want), "{name}: {:?}", seen[0].headers);
        assert!(seen[0].header("authorization").is_none(), "the token was forwarded");
        assert_eq!(seen[0].headers.iter().filter(|(n, _)| n == "x-user").count(), 1, "spoofed copy kept");
    }
    assert_eq!(s.upstream.seen_path("/ok/claims_rich")[0].header("x-roles"), Some("admin,user"));
    assert_eq!(s.envoy.allowed(), 6);
}

#[test]
fn missing_tokens_get_401_with_a_bare_challenge() {
    let s = setup();
    let r = get(&s, "/orders/1", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"orders\""));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["type"], "urn:api-guard:problem:token-missing");
    let r = s.client.request("GET", "/orders/1", &[("authorization", "Basic dXNlcjpwYXNz")], b"");
    assert_eq!(r.status, 401);
    assert_eq!(get(&s, "/health", None).status, 200);
    assert_eq!(s.upstream.requests().len(), 1, "only /health may arrive");
    assert!(
        s.envoy
            .log()
            .contains("jwt.providers.idp: key-set entries skipped: keys[4]: curve P-521 is not supported"),
        "no warning for the unusable key-set entry"
    );
}

#[test]
fn the_attack_corpus_never_reaches_the_upstream_nor_the_log() {
    let s = setup();
    let corpus = [
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "wrong_iss",
        "wrong_aud",
        "no_exp",
        "id_token",
        "no_typ",
        "unknown_kid",
        "wrong_key_same_kid",
        "alg_none",
        "alg_None",
        "alg_NONE",
        "alg_nOnE",
        "alg_none_with_signature",
        "hs256_with_rsa_public_key",
        "hs256_with_rsa_modulus",
        "hs256",
        "es256_zero_signature",
        "stripped_signature",
        "two_segments",
        "four_segments",
        "jwe_five_segments",
        "bad_base64",
        "padded_base64",
        "kid_path_traversal",
        "kid_sql",
        "jku_attacker",
        "x5u_attacker",
        "jwk_embedded_attacker",
        "crit_unknown",
        "crit_empty",
        "duplicate_claims",
        "duplicate_header",
        "payload_not_object",
        "header_not_json",
        "alg_key_type_mismatch",
        "exp_as_string",
        "exp_huge",
    ];
    for name in corpus {
        let t = token(name);
        let r = get(&s, &format!("/attack/{name}"), Some(&t));
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"orders\", error=\"invalid_token\""),
            "{name}"
        );
        assert!(!r.text().contains(&t), "{name}: the token was echoed");
    }
    assert!(s.upstream.seen_path("/attack").is_empty(), "an attack token reached the upstream");
    assert_eq!(s.envoy.denied("token_invalid"), corpus.len() as u64);

    // A 1 MB token: refused (by Envoy's own header limit before the module, or by the
    // module's size cap), and the VM is still alive afterwards.
    let huge = format!("{}.{}.{}", "a".repeat(350_000), "b".repeat(350_000), "c".repeat(350_000));
    if let Some(r) = s.client.send(&[format!(
        "GET /attack/huge HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {huge}\r\nconnection: close\r\n\r\n"
    )
    .into_bytes()])
    {
        assert!(r.status == 401 || r.status == 431, "huge token got {}", r.status);
    }
    let big = format!("{}.{}.{}", "a".repeat(4000), "b".repeat(4000), "c".repeat(1000));
    assert_eq!(get(&s, "/attack/big", Some(&big)).status, 401);
    // Signatures one byte too long or too short, for every algorithm (an Ed25519 signature of
    // 65 bytes once panicked inside the verifier and killed the VM; found by fuzz/ target jwt).
    for name in ["rs256", "ps256", "es256", "es384", "eddsa"] {
        let t = token(name);
        let (signed, sig) = t.rsplit_once('.').unwrap();
        let mid = sig.len() / 2;
        for forged in [
            format!("{signed}.{}z{}", &sig[..mid], &sig[mid..]),
            format!("{signed}.{sig}AAAA"),
            format!("{signed}.{}", &sig[..sig.len() - 4]),
        ] {
            let r = get(&s, &format!("/attack/length-{name}"), Some(&forged));
            assert_eq!(r.status, 401, "{name}: {}", r.text());
        }
    }
    assert!(s.upstream.seen_path("/attack").is_empty());
    assert_eq!(get(&s, "/alive", Some(&token("rs256"))).status, 200);

    // No token (nor any long fragment of one) in any module log line, at trace level.
    let log = s.envoy.log();
    let module_lines: Vec<&str> = log.lines().filter(|l| l.contains("[wasm]")).collect();
    assert!(module_lines.iter().any(|l| l.contains("token-invalid")), "no denial lines logged");
    for name in corpus.iter().chain(["rs256"].iter()) {
        let t = token(name);
        for part in t.split('.').filter(|p| p.len() >= 16) {
            assert!(!module_lines.iter().any(|l| l.contains(part)), "{name}: token text in the log");
        }
    }
}

#[test]
fn scopes_and_bindings_get_403() {
    let s = setup();
    let r = s.client.request(
        "POST",
        "/orders",
        &[
            ("authorization", &format!("Bearer {}", token("scope_read"))),
            ("content-type", "application/json"),
        ],
        b"{}",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"orders\", error=\"insufficient_scope\", scope=\"orders:write\"")
    );
    assert_eq!(r.json()["type"], "urn:api-guard:problem:insufficient-scope");
    let r = s.client.request(
        "POST",
        "/orders",
        &[("authorization", &format!("Bearer {}", token("rs256"))), ("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(r.status, 200);
    // `scp` arrays count as scopes.
    assert_eq!(get(&s, "/admin/x", Some(&token("scp_array"))).status, 200);
    assert_eq!(get(&s, "/admin/x", Some(&token("rs256"))).status, 403);
    // Ownership: only user-42 may read /users/user-42.
    assert_eq!(get(&s, "/users/user-42", Some(&token("rs256"))).status, 200);
    let r = get(&s, "/users/user-43", Some(&token("rs256")));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["type"], "urn:api-guard:problem:access-denied");
    assert!(r.header("www-authenticate").is_none());
    assert!(s.upstream.seen_path("/users/user-43").is_empty());
    assert_eq!(s.upstream.seen_path("/orders").len(), 1);
}

#[test]
fn a_client_over_its_failure_budget_gets_429_for_new_tokens_and_keeps_its_cached_one() {
    let upstream = Upstream::start();
    let mut cfg: Value = serde_json::from_str(&config()).unwrap();
    cfg["jwt"]["verification_budget"] =
        json!({"max_failures": 5, "window_seconds": 60, "client_header": "x-client-ip"});
    let envoy = Envoy::start(&cfg.to_string(), upstream.port);
    let client = Client::new(envoy.port);
    // One kept-alive connection: the budget refuses unchecked on the connections that carried
    // the client's failures (a new connection from the same address is checked).
    let conn = std::cell::RefCell::new(client.connect());
    let send_raw = |path: &str, token: &str, from: Option<&str>| {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend(from.map(|ip| ("x-client-ip", ip)));
        conn.borrow_mut().request("GET", path, &headers, b"").expect("the connection closed")
    };
    let send = |path: &str, name: &str, from: Option<&str>| send_raw(path, &token(name), from);
    // Distinct forgeries (the same one again is remembered and costs no check).
    let forged = |i: usize| {
        let t = token("wrong_key_same_kid");
        let (head, sig) = t.rsplit_once('.').unwrap();
        let c = ["A", "B", "C", "D", "E", "F", "G"][i];
        format!("{head}.{c}{}", &sig[1..])
    };
    // Without the header the peer address (127.0.0.1) is the client.
    assert_eq!(send("/cached", "rs256", None).status, 200);
    for i in 0..5 {
        let r = send_raw(&format!("/forged/{i}"), &forged(i), None);
        assert_eq!(r.status, 401, "{}", r.text());
    }
    // A known forgery is refused for its own cause, budget or not.
    assert_eq!(send_raw("/forged/again", &forged(0), None).status, 401);
    let r = send_raw("/forged/over", &forged(5), None);
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u32 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.header("www-authenticate"), None);
    assert!(r.text().contains("verification-budget"), "{}", r.text());
    // A genuine token not seen before is refused unchecked on this connection; the cached one
    // still passes. On a connection of its own, the same address's new token is checked.
    assert_eq!(send("/new", "es256", None).status, 429);
    assert_eq!(send("/cached", "rs256", None).status, 200);
    let auth = format!("Bearer {}", token("ps256"));
    assert_eq!(client.request("GET", "/neighbour", &[("authorization", &auth)], b"").status, 200);
    // Clients named by the header have budgets of their own; leaving it out is the peer.
    assert_eq!(send("/other", "es256", Some("198.51.100.20, 10.0.0.1")).status, 200);
    assert_eq!(send("/other-forged", "wrong_key_same_kid", Some("198.51.100.20")).status, 401);
    assert!(upstream.seen_path("/forged").is_empty() && upstream.seen_path("/new").is_empty());
    assert_eq!(upstream.seen_path("/cached").len(), 2);
    assert_eq!(upstream.seen_path("/neighbour").len(), 1);
    assert_eq!(envoy.denied("verification_budget"), 2);
    assert_eq!(envoy.token_invalid("signature"), 7);
}

#[test]
fn a_token_one_worker_verified_is_not_checked_again_by_the_other() {
    // Two workers, each with its own VM; exact balancing hands a new connection to the worker
    // with fewer open ones, so idle connections steer the two requests to different workers.
    let upstream = Upstream::start();
    let opts = EnvoyOptions { concurrency: 2, ..EnvoyOptions::default() };
    let yaml = support::envoy::bootstrap(upstream.port, &config(), &opts).replacen(
        "    filter_chains:",
        "    connection_balance_config: { exact_balance: {} }\n    filter_chains:",
        1,
    );
    let envoy = Envoy::start_yaml(&yaml, &opts).unwrap_or_else(|l| panic!("{l}"));
    let settle = || std::thread::sleep(std::time::Duration::from_millis(300));
    let auth = format!("Bearer {}", token("rs256"));
    let send = || Client::new(envoy.port).request("GET", "/orders", &[("authorization", &auth)], b"");
    let idle_x = std::net::TcpStream::connect(("127.0.0.1", envoy.port)).unwrap();
    settle();
    let first = send(); // worker Y: verifies the token and shares it
    assert_eq!(first.status, 200, "{}", first.text());
    settle(); // its connection is gone from Y's count before the next one is placed
    let idle_y = std::net::TcpStream::connect(("127.0.0.1", envoy.port)).unwrap();
    settle();
    drop(idle_x);
    settle();
    let second = send(); // worker X: takes it from shared data
    assert_eq!(second.status, 200, "{}", second.text());
    drop(idle_y);
    let users: Vec<String> =
        upstream.requests().iter().map(|r| r.header("x-user").unwrap_or_default().to_string()).collect();
    assert_eq!(users, ["user-42", "user-42"]);
    assert_eq!(envoy.counter("api_guard_shared_token_cache_hits_total"), 1, "{}", envoy.log());
}

/// A corpus of bad tokens from one client, then genuine tokens never seen before: every bad
/// one is refused 401 for its own cause (counted per cause), none reaches the upstream, and
/// every genuine one passes. Refusals that cost no signature check never spend the
/// failed-verification budget, however many there are.
#[test]
fn bad_tokens_are_refused_for_their_own_cause_and_do_not_lock_out_good_ones() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(), upstream.port);
    let client = Client::new(envoy.port);
    let send = |path: &str, value: &str| client.request("GET", path, &[("authorization", value)], b"");
    let corpus = [
        ("expired", "expired"),
        ("not_yet_valid", "not_yet_valid"),
        ("issued_in_future", "iat_in_future"),
        ("wrong_iss", "issuer"),
        ("wrong_aud", "audience"),
        ("exp_as_string", "claim_type"),
        ("alg_none_with_signature", "algorithm"),
        ("unknown_kid", "unknown_key"),
        ("crit_unknown", "crit"),
        ("bad_base64", "malformed"),
        ("two_segments", "malformed"),
        ("wrong_key_same_kid", "signature"),
    ];
    // Far more cheap refusals than the budget's 20 failures, the same forgery many times.
    for round in 0..5 {
        for (name, cause) in corpus {
            let r = send(&format!("/bad/{round}/{name}"), &format!("Bearer {}", token(name)));
            assert_eq!(r.status, 401, "{name}: {}", r.text());
            assert!(r.header("www-authenticate").unwrap().contains("invalid_token"), "{name} ({cause})");
        }
        // Exactly RFC 6750: a comma after the token makes it malformed, not trimmed away.
        // (A bare `\r` never reaches the filter: Envoy replaces it with a space, as RFC 9112
        // §2.2 allows, which the unit tests of `jwt::extract` cover.)
        let r = send(&format!("/bad/{round}/comma"), &format!("Bearer {},", token("rs256")));
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let big = format!("Bearer {}.{}.{}", "a".repeat(20_000), "b".repeat(20_000), "c".repeat(100));
    assert_eq!(send("/bad/too-large", &big).status, 401);
    for name in ["rs256", "es256", "ps256", "claims_rich", "scope_read"] {
        let r = send(&format!("/good/{name}"), &format!("Bearer {}", token(name)));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    assert!(upstream.seen_path("/bad").is_empty(), "a refused request reached the upstream");
    assert_eq!(upstream.seen_path("/good").len(), 5);
    assert_eq!(envoy.denied("verification_budget"), 0);
    for (cause, n) in [
        ("expired", 5),
        ("not_yet_valid", 5),
        ("iat_in_future", 5),
        ("issuer", 5),
        ("audience", 5),
        ("claim_type", 5),
        ("algorithm", 5),
        ("unknown_key", 5),
        ("crit", 5),
        ("malformed", 15),
        ("signature", 5),
        ("too_large", 1),
    ] {
        assert_eq!(envoy.token_invalid(cause), n, "{cause}");
    }
}

/// Headers the upstream could read as a verified claim, in another spelling, and method
/// overrides: refused, never forwarded. CGI-style servers (PHP-FPM, Rack, WSGI) read `x_user`
/// and `X_USER` as `x-user`; frameworks with method-override support run `_method=DELETE`.
#[test]
fn spoofed_claim_header_spellings_and_method_overrides_never_reach_the_upstream() {
    let s = setup();
    let send =
        |path: &str, method: &str, headers: &[(&str, &str)]| s.client.request(method, path, headers, b"");
    for (name, value) in [("x_user", "admin2"), ("X_USER", "admin4"), ("x_roles", "admin")] {
        let r = send("/health/spoof", "GET", &[(name, value)]);
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert_eq!(r.json()["type"], "urn:api-guard:problem:ambiguous-header");
    }
    // The hyphenated spelling is scrubbed (as before), and other underscore headers pass.
    let r = send("/health", "GET", &[("x-user", "admin"), ("x_trace_id", "t-1")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = s.upstream.seen_path("/health");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-user"), None);
    assert_eq!(seen[0].header("x_trace_id"), Some("t-1"));

    let auth = format!("Bearer {}", token("rs256"));
    for (path, headers) in [
        ("/health/override", vec![("x-http-method-override", "DELETE")]),
        ("/health/override", vec![("x-http-method", "PUT")]),
        ("/health/override", vec![("x-method-override", "delete")]),
        ("/health/override?_method=DELETE", vec![]),
        ("/health/override?a=1&%5Fmethod=PATCH", vec![]),
    ] {
        let r = send(path, "GET", &headers);
        assert_eq!(r.status, 400, "{path} {headers:?}: {}", r.text());
        assert_eq!(r.json()["type"], "urn:api-guard:problem:method-override");
    }
    // An override naming the request's own method changes nothing, and passes.
    let r = send("/orders/same", "GET", &[("authorization", &auth), ("x-http-method-override", "GET")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        s.upstream.seen_path("/health/spoof").is_empty()
            && s.upstream.seen_path("/health/override").is_empty()
    );
    assert_eq!(s.envoy.denied("ambiguous_header"), 3);
    assert_eq!(s.envoy.denied("method_override"), 5);
}
