//! Micro-benchmarks of the policy core: plain timed loops, so the same file runs natively
//! (`cargo bench --bench core`) and as wasm32-wasip1 under Node's V8, the engine Envoy uses
//! (`make bench-core`). Prints one line per case: the median of 5 runs, per operation.

// Bench code: a failed unwrap is a broken bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Instant;

use api_guard::policy::authz::NoState;
use api_guard::policy::jwt::keys::KeySet;
use api_guard::policy::jwt::state::{NoSharedData, View};
use api_guard::policy::jwt::ProviderKeys;
use api_guard::policy::{config, Policy, RequestHead};
use serde_json::{json, Value};

/// Counts live heap bytes, to report what a compiled policy keeps.
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only adds bookkeeping.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size(), std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.dealloc(p, l)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const OPENAPI: &str = include_str!("../examples/api/openapi.json");
const ORDER: &str = include_str!("../examples/api/order.json");
const TOKENS: &str = include_str!("../tests/fixtures/jwt/tokens.json");
const JWKS: &str = include_str!("../tests/fixtures/jwt/jwks.json");
const NOW: i64 = 1_800_000_000;

/// Times `f` (median of 5 runs of `iters` calls). `BENCH_FILTER=text` runs only the lines whose
/// name contains `text`.
fn time(name: &str, iters: u32, mut f: impl FnMut()) {
    if std::env::var("BENCH_FILTER").is_ok_and(|only| !name.contains(&only)) {
        return;
    }
    for _ in 0..iters.min(20) {
        f(); // warm up
    }
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
        })
        .collect();
    runs.sort_by(|a, b| a.total_cmp(b));
    println!("{name:<44} {:>10.2} µs/op", runs[2]);
}

fn main() {
    // Single shots, before anything else loads a key: the first EC key of each curve in a VM
    // also builds the generator's window table.
    if std::env::var("BENCH_FILTER").is_err() {
        let jwks: Value = serde_json::from_str(JWKS).unwrap();
        for crv in ["P-256", "P-384"] {
            let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["crv"] == crv).unwrap();
            let set = json!({"keys": [jwk]});
            let t = Instant::now();
            black_box(KeySet::from_jwks(&set).unwrap());
            println!(
                "{:<44} {:>10.2} ms (once per VM)",
                format!("first {crv} key: generator table + key table"),
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    let tokens: Value = serde_json::from_str(TOKENS).unwrap();
    let cfg = json!({
        "jwt": {"providers": {"idp": {
            "issuer": "https://issuer.test", "audiences": ["api://orders"],
            "algorithms": ["RS256", "PS256", "ES256", "ES384", "EdDSA"], "token_type": "at+jwt",
            "local_jwks": serde_json::from_str::<Value>(JWKS).unwrap(),
            "claim_to_headers": [{"claim": "sub", "header": "x-user"}]
        }}, "default": {"type": "jwt", "providers": ["idp"], "scopes": ["orders:read"]}},
        "routes": [{"name": "users", "match": {"path": "/users/{id}"}, "auth": {"type": "public"}}]
    });
    let policy: Policy = config::parse(cfg.to_string().as_bytes()).unwrap();
    let provider = &policy.jwt.as_ref().unwrap().providers[0];
    let ProviderKeys::Local(keys) = &provider.keys else { panic!() };

    println!(
        "api-guard core micro-benchmarks ({})",
        if cfg!(target_arch = "wasm32") { "wasm32-wasip1" } else { "native" }
    );
    for (alg, name, iters) in [
        ("RS256", "rs256", 200),
        ("PS256", "ps256", 200),
        ("ES256", "es256", 200),
        ("ES384", "es384", 100),
        ("EdDSA", "eddsa", 200),
    ] {
        let t = tokens[name].as_str().unwrap();
        time(&format!("verify {alg} (parse + signature + claims)"), iters, || {
            black_box(provider.verify(black_box(t), keys, NOW).unwrap());
        });
    }
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    for (crv, iters) in [("P-256", 20), ("P-384", 10)] {
        let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["crv"] == crv).unwrap();
        let set = json!({"keys": [jwk]});
        time(&format!("prepare a {crv} key (window table)"), iters, || {
            black_box(KeySet::from_jwks(black_box(&set)).unwrap());
        });
    }
    // The RSA signature check alone (no token parsing, no claims): what the arithmetic costs.
    {
        use api_guard::policy::jwt::rsa::{Hash, RsaVerifier};
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap();
        let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kty"] == "RSA").unwrap();
        let key =
            RsaVerifier::new(&b64(jwk["n"].as_str().unwrap()), &b64(jwk["e"].as_str().unwrap())).unwrap();
        let token = tokens["rs256"].as_str().unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = b64(sig);
        assert!(key.verify(Hash::Sha256, input.as_bytes(), &sig));
        time(&format!("RSA-{} PKCS#1 v1.5 signature check only (RS256)", key.bits()), 200, || {
            black_box(key.verify(Hash::Sha256, black_box(input.as_bytes()), black_box(&sig)));
        });
    }
    let t = tokens["rs256"].as_str().unwrap();
    let forged = tokens["wrong_key_same_kid"].as_str().unwrap();
    time("verify RS256, forged signature", 200, || {
        black_box(provider.verify(black_box(forged), keys, NOW).unwrap_err());
    });
    time("reject alg:none (no crypto)", 20_000, || {
        black_box(
            provider
                .verify(black_box(tokens["alg_none_with_signature"].as_str().unwrap()), keys, NOW)
                .unwrap_err(),
        );
    });

    let headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/orders/17?page=2".to_vec()),
        (":authority".into(), b"api.example.com".to_vec()),
        ("authorization".into(), format!("Bearer {t}").into_bytes()),
        ("user-agent".into(), b"bench/1.0".to_vec()),
        ("accept".into(), b"application/json".to_vec()),
    ];
    let head = RequestHead { headers: &headers, end_of_stream: Some(true) };
    time("check_head, RS256 token, no cache", 200, || {
        black_box(policy.check_head(&head, &NoState, NOW).outcome.unwrap());
    });
    // The VM's verification state, read through a view per request, as the host does.
    let state = RefCell::new(policy.verification_state(None, None));
    time("check_head, RS256 token, cache hit", 20_000, || {
        let view = View::new(&state, NOW, &NoSharedData);
        black_box(policy.check_head(&head, &view, NOW).outcome.unwrap());
    });
    let public: Vec<(String, Vec<u8>)> =
        vec![(":method".into(), b"GET".to_vec()), (":path".into(), b"/users/42".to_vec())];
    let head = RequestHead { headers: &public, end_of_stream: Some(true) };
    time("check_head, public route (limits, routing)", 50_000, || {
        black_box(policy.check_head(&head, &NoState, NOW).outcome.unwrap());
    });

    request_validation();
    response_rewrite();
}

fn response_rewrite() {
    // The example policy's own rewrite: the 10 KB order `createOrder` answers with, pruned to
    // the documented members and its street masked (what bench D does per request).
    // Its routes made public: the token check is measured elsewhere.
    let mut example: Value = serde_json::from_str(include_str!("../examples/policy.json")).unwrap();
    for r in example["routes"].as_array_mut().unwrap() {
        r["auth"] = json!({"type": "public"});
    }
    let policy = config::parse(example.to_string().as_bytes()).unwrap();
    let body = include_bytes!("../examples/api/order_created.json").trim_ascii_end();
    let headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/api/orders".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("content-length".into(), b"2".to_vec()),
    ];
    let head = RequestHead { headers: &headers, end_of_stream: Some(false) };
    let upstream: Vec<(String, Vec<u8>)> =
        vec![(":status".into(), b"201".to_vec()), ("content-type".into(), b"application/json".to_vec())];
    let plan = match policy.check_head(&head, &NoState, NOW).outcome {
        Ok(a) => policy.plan_response(&a.response, &upstream),
        Err(d) => panic!("{d:?}"),
    };
    let api_guard::policy::response::BodyPlan::Rewrite(plan) = plan else { panic!("no rewrite: {plan:?}") };
    time(&format!("example policy: prune + mask {} KB order response", body.len() / 1024), 2_000, || {
        black_box(policy.rewrite_response(&plan, black_box(body)).unwrap());
    });

    use api_guard::policy::response::Rewrite;
    let cfg = json!({"response": {
        "hash_key": "MDEyMzQ1Njc4OWFiY2RlZg",
        "rules": [
            {"select": ["$..password"], "action": {"type": "remove"}},
            {"select": ["$.rows[*].card"], "action": {"type": "mask", "keep_last": 4}},
            {"select": ["$.rows[*].email"], "action": {"type": "hash"}}
        ]
    }});
    let policy = api_guard::policy::config::parse(cfg.to_string().as_bytes()).unwrap();
    let rules = policy.response.as_ref().unwrap().active_rules(None, &[]);
    let plan = Rewrite { rules, shape: Vec::new(), framing: api_guard::policy::response::Framing::Json };
    for (label, target) in [("10 KB", 10 * 1024), ("1 MB", 1024 * 1024)] {
        let mut rows = Vec::new();
        let mut size = 0;
        while size < target {
            let row = json!({"id": rows.len(), "email": "ada@example.com", "password": "hunter2", "card": "4111111111111111", "note": "lorem ipsum dolor"});
            size += row.to_string().len() + 1;
            rows.push(row);
        }
        let body = serde_json::to_vec(&json!({ "rows": rows })).unwrap();
        let iters = if target > 100_000 { 20 } else { 2_000 };
        time(&format!("rewrite {label} response (remove, mask, HMAC on every row)"), iters, || {
            black_box(policy.rewrite_response(&plan, black_box(&body)).unwrap());
        });
    }
}

fn order_target(policy: &Policy, len: usize) -> api_guard::policy::body::BodyTarget {
    let headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/api/orders".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("content-length".into(), len.to_string().into_bytes()),
    ];
    let head = RequestHead { headers: &headers, end_of_stream: Some(false) };
    match policy.check_head(&head, &NoState, NOW).outcome.unwrap().body {
        api_guard::policy::BodyPlan::Check(c) => c.validate.unwrap(),
        api_guard::policy::BodyPlan::None => panic!("no body plan"),
    }
}

/// A document with `n` operations (n/2 paths, GET with parameters and POST with a body).
fn big_document(n: usize) -> Value {
    let mut doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let paths = doc["paths"].as_object_mut().unwrap();
    for i in 0..n / 2 {
        paths.insert(
            format!("/r{i}/{{id}}/items"),
            json!({
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}],
                "get": {"operationId": format!("list{i}"), "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                    {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/Status"}}]},
                "post": {"operationId": format!("create{i}"), "requestBody": {"required": true, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}}}
            }),
        );
    }
    doc
}

fn request_validation() {
    use api_guard::policy::json_limits::{scan, JsonLimits};
    let cfg = json!({"openapi": {"document": serde_json::from_str::<Value>(OPENAPI).unwrap(), "reject_unknown_fields": true}});
    let policy = config::parse(cfg.to_string().as_bytes()).unwrap();
    let body = ORDER.trim().as_bytes();
    let target = order_target(&policy, body.len());
    time(&format!("JSON limits scan, {} B order", body.len()), 20_000, || {
        scan(JsonLimits::default(), black_box(body)).unwrap();
    });
    time(&format!("parse {} B order (serde_json::Value)", body.len()), 5_000, || {
        black_box(serde_json::from_slice::<Value>(black_box(body)).unwrap());
    });
    time(&format!("validate {} B order (one pass)", body.len()), 5_000, || {
        policy.check_body(target, black_box(body)).unwrap();
    });
    time(&format!("validate {} B order (tree: parse+schema+shape)", body.len()), 5_000, || {
        policy.check_body_tree(target, black_box(body)).unwrap();
    });

    // 100 KB: the same order with many items (the array bound lifted for the bench).
    let mut doc: Value = serde_json::from_str(OPENAPI).unwrap();
    doc["components"]["schemas"]["Order"]["properties"]["items"].as_object_mut().unwrap().remove("maxItems");
    let cfg = json!({"openapi": {"document": doc, "reject_unknown_fields": true}});
    let big_policy = config::parse(cfg.to_string().as_bytes()).unwrap();
    let mut order: Value = serde_json::from_str(ORDER).unwrap();
    let items = order["items"].as_array().unwrap().clone();
    let mut all = Vec::new();
    while serde_json::to_vec(&all).unwrap().len() < 100 * 1024 {
        all.extend(items.iter().cloned());
    }
    order["items"] = Value::Array(all);
    let big = serde_json::to_vec(&order).unwrap();
    let target = order_target(&big_policy, big.len());
    time(&format!("JSON limits scan, {} KB order", big.len() / 1024), 200, || {
        scan(JsonLimits { max_array_length: 100_000, ..JsonLimits::default() }, black_box(&big)).unwrap();
    });
    time(&format!("validate {} KB order (one pass)", big.len() / 1024), 100, || {
        big_policy.check_body(target, black_box(&big)).unwrap();
    });
    time(&format!("validate {} KB order (tree: parse+schema+shape)", big.len() / 1024), 100, || {
        big_policy.check_body_tree(target, black_box(&big)).unwrap();
    });

    let doc = big_document(200);
    let cfg = json!({"openapi": {"document": doc}}).to_string();
    let before = LIVE.load(std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    let p = config::parse(cfg.as_bytes()).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let kib = LIVE.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before) / 1024;
    println!(
        "{:<44} {:>10.1} ms, {} KiB kept ({} operations)",
        "compile a 200-operation document",
        ms,
        kib,
        p.api.as_ref().unwrap().operations.len()
    );
}
