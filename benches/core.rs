//! Micro-benchmarks of the policy core: plain timed loops, so the same file runs natively
//! (`cargo bench --bench core`) and as wasm32-wasip1 under Node's V8, the engine Envoy uses
//! (`make bench-core`). Prints one line per case: the median of 5 runs, per operation.

// Bench code: a failed unwrap is a broken bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;

use api_guard::policy::authz::{NoState, VerifyState};
use api_guard::policy::jwt::cache::TokenCache;
use api_guard::policy::jwt::jwks::Availability;
use api_guard::policy::jwt::{ProviderKeys, Verified};
use api_guard::policy::{config, Policy, RequestHead};
use serde_json::{json, Value};

const TOKENS: &str = include_str!("../tests/fixtures/jwt/tokens.json");
const JWKS: &str = include_str!("../tests/fixtures/jwt/jwks.json");
const NOW: i64 = 1_800_000_000;

fn time(name: &str, iters: u32, mut f: impl FnMut()) {
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

struct Cache(RefCell<TokenCache>, Cell<i64>);

impl VerifyState for Cache {
    fn lookup(&self, _: usize) -> Availability {
        Availability::Unavailable
    }
    fn cached(&self, p: usize, t: &str) -> Option<Rc<Verified>> {
        self.0.borrow().get(p, t, self.1.get())
    }
    fn remember(&self, p: usize, t: &str, v: &Rc<Verified>, until: i64) {
        self.0.borrow_mut().put(p, t, Rc::clone(v), until, self.1.get());
    }
}

fn main() {
    let tokens: Value = serde_json::from_str(TOKENS).unwrap();
    let cfg = json!({
        "jwt": {"providers": {"idp": {
            "issuer": "https://issuer.test", "audiences": ["api://orders"],
            "algorithms": ["RS256", "PS256", "ES256", "EdDSA"], "token_type": "at+jwt",
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
    for (alg, name, iters) in
        [("RS256", "rs256", 200), ("PS256", "ps256", 200), ("ES256", "es256", 100), ("EdDSA", "eddsa", 200)]
    {
        let t = tokens[name].as_str().unwrap();
        time(&format!("verify {alg} (parse + signature + claims)"), iters, || {
            black_box(provider.verify(black_box(t), keys, NOW).unwrap());
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
    let cache = Cache(RefCell::new(TokenCache::new(1024)), Cell::new(NOW));
    time("check_head, RS256 token, cache hit", 20_000, || {
        black_box(policy.check_head(&head, &cache, NOW).outcome.unwrap());
    });
    let public: Vec<(String, Vec<u8>)> =
        vec![(":method".into(), b"GET".to_vec()), (":path".into(), b"/users/42".to_vec())];
    let head = RequestHead { headers: &public, end_of_stream: Some(true) };
    time("check_head, public route (limits, routing)", 50_000, || {
        black_box(policy.check_head(&head, &NoState, NOW).outcome.unwrap());
    });
}
