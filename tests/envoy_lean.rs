//! The lean module (built without the `openapi` feature: `make wasm-lean`) in the real Envoy.
//! A policy with an `openapi` section is refused at load, naming it, where the full module
//! loads it. The example policy without that section is run through both modules side by
//! side: every request of a varied set (each fixture token, CORS, limits, body checks, claim
//! headers, response rules) gets the same answer from both (status, body, every header but
//! the per-request ones), and the same requests reach the two upstreams, with the same
//! headers and bodies.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::Value;
use support::{Client, EnvoyOptions, Gateway, Recorded, Response};

fn example() -> Value {
    serde_json::from_slice(&std::fs::read(support::repo_root().join("examples/policy.json")).unwrap())
        .unwrap()
}

fn lean() -> EnvoyOptions {
    EnvoyOptions { module: Some(support::envoy::lean_wasm_path()), ..EnvoyOptions::default() }
}

#[test]
fn the_lean_module_refuses_an_openapi_section_at_load() {
    let upstream = support::Upstream::start();
    let policy = example().to_string();
    let log = match support::Envoy::start_with(&policy, upstream.port, lean()) {
        Ok(_) => panic!("the lean module loaded a policy with an openapi section"),
        Err(log) => log,
    };
    assert!(
        log.contains("invalid api-guard configuration at `openapi.document`: this is the lean build of api-guard, without OpenAPI validation"),
        "{log}"
    );
    // The same policy is the full module's example: the refusal is the lean build's.
    let full = support::Envoy::start(&policy, upstream.port);
    assert_eq!(Client::new(full.port).get("/api/health").status, 200);
}

/// What a request may differ by between two Envoys: its id, the clock and Envoy's timing.
const PER_REQUEST: [&str; 3] = ["date", "x-request-id", "x-envoy-upstream-service-time"];

/// `text` with every UUID (a request id Envoy made) replaced by `<id>`.
fn without_ids(text: &str) -> String {
    let b = text.as_bytes();
    let is_uuid = |w: &[u8]| {
        w.len() == 36
            && w.iter().enumerate().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    *c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b.get(i..i + 36).is_some_and(is_uuid) {
            out.push_str("<id>");
            i += 36;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Headers by lower-case name, sorted, without the per-request ones.
fn kept(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut kept: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| !PER_REQUEST.contains(&n.as_str()))
        .collect();
    kept.sort();
    kept
}

fn answer(r: &Response) -> (u16, Vec<(String, String)>, String) {
    (r.status, kept(&r.headers), without_ids(&r.text()))
}

fn arrived(r: &Recorded) -> (String, String, Vec<(String, String)>, Vec<u8>) {
    (r.method.clone(), r.path.clone(), kept(&r.headers), r.body.clone())
}

#[test]
fn the_lean_module_answers_as_the_full_module_does() {
    let mut policy = example();
    policy.as_object_mut().unwrap().remove("openapi");
    let policy = policy.to_string();
    let full = Gateway::start(&policy);
    let lean = Gateway::start_with(&policy, lean());

    let tokens = support::fixture("jwt/tokens.json");
    let bearer = |name: &str| format!("Bearer {}", tokens[name].as_str().unwrap());
    let rs256 = bearer("rs256");
    let order = br#"{"item":"book","quantity":2,"shipping":{"street":"1 Main Street","city":"Springfield"}}"#;
    let nested = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let big = vec![b'a'; 70_000];
    type Req<'a> = (&'a str, String, Vec<(&'a str, String)>, Vec<u8>);
    let mut requests: Vec<Req> = Vec::new();
    let mut names: Vec<&String> = tokens.as_object().unwrap().keys().collect();
    names.sort();
    for name in names {
        requests.push(("GET", "/api/orders".into(), vec![("authorization", bearer(name))], Vec::new()));
    }
    let json = || ("content-type", "application/json".to_string());
    let echo = || ("x-test-echo", "1".to_string());
    for (method, path, headers, body) in [
        ("GET", "/api/orders", vec![], Vec::new()),
        ("GET", "/api/orders", vec![("authorization", "Basic dXNlcjpwYXNz".to_string())], Vec::new()),
        ("GET", "/api/orders?access_token=abc", vec![], Vec::new()),
        ("GET", "/api/health", vec![], Vec::new()),
        ("GET", "/api/elsewhere", vec![("authorization", rs256.clone())], Vec::new()),
        ("GET", "/api/users/user-42", vec![("authorization", rs256.clone())], Vec::new()),
        ("GET", "/api/users/user-7", vec![("authorization", rs256.clone())], Vec::new()),
        ("DELETE", "/api/users/user-42", vec![("authorization", rs256.clone())], Vec::new()),
        ("TRACE", "/api/orders", vec![("authorization", rs256.clone())], Vec::new()),
        // A client's own copy of a claim header, and headers the response section removes.
        (
            "GET",
            "/api/orders",
            vec![
                ("authorization", rs256.clone()),
                ("x-user", "admin".into()),
                ("x-test-reply-headers", "x-powered-by: php|server: upstream".into()),
            ],
            Vec::new(),
        ),
        // CORS: a preflight from an allowed origin, one from another, a simple request.
        (
            "OPTIONS",
            "/api/orders",
            vec![
                ("origin", "https://app.example".into()),
                ("access-control-request-method", "POST".into()),
                ("access-control-request-headers", "authorization, content-type".into()),
            ],
            Vec::new(),
        ),
        (
            "OPTIONS",
            "/api/orders",
            vec![("origin", "https://evil.example".into()), ("access-control-request-method", "POST".into())],
            Vec::new(),
        ),
        (
            "GET",
            "/api/orders",
            vec![("authorization", rs256.clone()), ("origin", "https://shop.app.example".into())],
            Vec::new(),
        ),
        // Bodies: one the response rules mask on its way back, one without the scope, and
        // the limits.
        ("POST", "/api/orders", vec![("authorization", rs256.clone()), json(), echo()], order.to_vec()),
        (
            "POST",
            "/api/orders",
            vec![("authorization", bearer("scope_read")), json(), echo()],
            order.to_vec(),
        ),
        (
            "POST",
            "/api/orders",
            vec![("authorization", rs256.clone()), ("content-type", "text/plain".into())],
            order.to_vec(),
        ),
        ("POST", "/api/orders", vec![("authorization", rs256.clone()), json()], br#"{"item":"#.to_vec()),
        ("POST", "/api/orders", vec![("authorization", rs256.clone()), json()], nested.into_bytes()),
        ("POST", "/api/orders", vec![("authorization", rs256.clone()), json()], big),
        (
            "POST",
            "/api/uploads/a.png",
            vec![("authorization", rs256.clone()), ("content-type", "image/png".into())],
            b"\x89PNG".to_vec(),
        ),
    ] {
        requests.push((method, path.into(), headers, body));
    }

    let mut statuses = std::collections::BTreeMap::new();
    let mut masked = false;
    for (method, path, headers, body) in &requests {
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let before = (full.upstream.requests().len(), lean.upstream.requests().len());
        let a = full.client.request(method, path, &h, body);
        let b = lean.client.request(method, path, &h, body);
        assert_eq!(
            answer(&a),
            answer(&b),
            "{method} {path} {headers:?}: the two modules answered differently"
        );
        let (fa, la) = (full.upstream.requests(), lean.upstream.requests());
        let fa: Vec<_> = fa[before.0..].iter().map(arrived).collect();
        let la: Vec<_> = la[before.1..].iter().map(arrived).collect();
        assert_eq!(fa, la, "{method} {path} {headers:?}: different requests reached the upstreams");
        *statuses.entry(a.status).or_insert(0) += 1;
        masked |= a.status == 200 && a.text().contains("\"street\"") && !a.text().contains("1 Main Street");
    }
    // The set exercised both doors: requests let through, and refusals of several kinds.
    for status in [200, 204, 401, 403, 405, 413, 415] {
        assert!(statuses.contains_key(&status), "no {status} among {statuses:?}");
    }
    assert!(masked, "no response had its street masked");
    assert!(
        full.upstream.requests().iter().all(|r| r.header("x-user") != Some("admin")),
        "a client's claim header reached the upstream"
    );
}
