//! The fuzz targets' bodies, shared by `cargo fuzz` (`fuzz/fuzz_targets/`, `make fuzz-smoke`)
//! and the corpus replay in `make test` (`tests/fuzz_corpus.rs`), so every saved input stays a
//! regression case. Each target feeds attacker-controlled bytes to one part of the policy core
//! and checks what must hold: no panic, and where an independent answer exists, agreement.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use api_guard::policy::authz::{NoState, VerifyState};
use api_guard::policy::json_limits::{scan, JsonLimits, JsonScanner};
use api_guard::policy::jwt::budget::{BudgetRules, ClientSource, FailureBudget, Throttle};
use api_guard::policy::jwt::cache::TokenCache;
use api_guard::policy::jwt::jwks::Availability;
use api_guard::policy::jwt::Verified;
use api_guard::policy::response::BodyPlan as ResponsePlan;
use api_guard::policy::{config, BodyPlan, Policy, RequestHead};
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000;
const JWKS: &str = include_str!("../tests/fixtures/jwt/jwks.json");
const HMAC: &str = include_str!("../tests/fixtures/jwt/hmac.json");
const PETSTORE: &str = include_str!("../tests/fixtures/openapi/petstore.json");

thread_local! {
    static JWT: Policy = config::parse(json!({
        "jwt": {"providers": {
            "idp": {"issuer": "https://issuer.test", "audiences": ["api://orders"],
                    "algorithms": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
                    "local_jwks": serde_json::from_str::<Value>(JWKS).unwrap(),
                    "claim_to_headers": [{"claim": "sub", "header": "x-user"}, {"claim": "roles", "header": "x-roles"}]},
            "hs": {"issuer": "https://hs.test", "audiences": ["api://orders"], "algorithms": ["HS256", "HS384"],
                   "local_jwks": serde_json::from_str::<Value>(HMAC).unwrap()}},
            "default": {"type": "jwt", "providers": ["idp", "hs"], "scopes": ["orders:read"]}}
    }).to_string().as_bytes()).unwrap();
    static STATE: Stateful = Stateful::new();
    static GUARD: Policy = config::parse(json!({
        "routes": [{"name": "admin", "match": {"prefix": "/admin"}, "auth": {"type": "deny"}},
                   {"name": "public", "match": {"prefix": "/public"}, "auth": {"type": "public"}}]
    }).to_string().as_bytes()).unwrap();
    static FOLDING: Policy = config::parse(json!({
        "paths": {"case_insensitive": true, "format_suffix": true},
        "routes": [{"name": "admin", "match": {"prefix": "/admin"}, "auth": {"type": "deny"}},
                   {"name": "public", "match": {"prefix": "/public"}, "auth": {"type": "public"}}]
    }).to_string().as_bytes()).unwrap();
    static API: Policy = config::parse(json!({
        "openapi": {"document": serde_json::from_str::<Value>(PETSTORE).unwrap(),
                    "reject_unknown_fields": true, "response_allowlist": true},
        "routes": [{"name": "pets", "match": {"prefix": "/v1/pets"}, "auth": {"type": "public"}},
                   {"name": "user", "match": {"path": "/users/{id}", "methods": ["GET", "PUT"]}, "auth": {"type": "public"}}],
        "cors": {"allowed_origins": ["https://app.example", "https://*.example.org"]},
        "response": {"hash_key": "MDEyMzQ1Njc4OWFiY2RlZg", "rules": [
            {"select": ["$..password", "$.tags[*].x"], "action": {"type": "remove"}},
            {"select": ["$.owner.email"], "action": {"type": "mask", "keep_last": 3}},
            {"select": ["$..id", "$['e\"q']"], "action": {"type": "hash"}}]}
    }).to_string().as_bytes()).unwrap();
}

/// The verification state a host keeps, small enough that a fuzz run fills and churns it:
/// the token cache with its known-forgery entries, and the failed-verification budget with its
/// capacity. Clients, connections and the clock vary from input to input.
struct Stateful {
    cache: RefCell<TokenCache>,
    budget: RefCell<FailureBudget>,
    calls: Cell<u64>,
    client: Cell<u8>,
    connection: Cell<u64>,
    now: Cell<i64>,
}

const FUZZ_CACHE: usize = 64;
const FUZZ_CLIENTS: usize = 16;

impl Stateful {
    fn new() -> Stateful {
        let rules = BudgetRules {
            max_failures: 3,
            window: 10,
            client: ClientSource::Peer,
            max_checks_per_second: 50,
        };
        Stateful {
            cache: RefCell::new(TokenCache::new(FUZZ_CACHE)),
            budget: RefCell::new(FailureBudget::with_capacity(&rules, FUZZ_CLIENTS)),
            calls: Cell::new(0),
            client: Cell::new(0),
            connection: Cell::new(0),
            now: Cell::new(NOW),
        }
    }

    /// The next request: a client of 40, a connection of 7, the clock a second on every 100.
    fn next(&self, data: &[u8]) {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        self.client.set((data.len() % 40) as u8);
        self.connection.set((n % 7) + 1);
        self.now.set(NOW + (n / 100) as i64);
    }
}

impl VerifyState for Stateful {
    fn lookup(&self, _: usize) -> Availability {
        Availability::Unavailable
    }
    fn cached(&self, provider: usize, token: &str) -> Option<Rc<Verified>> {
        self.cache.borrow().get(provider, token, self.now.get())
    }
    fn remember(&self, provider: usize, token: &str, verified: &Rc<Verified>, until: i64) {
        self.cache.borrow_mut().put(provider, token, Rc::clone(verified), until, self.now.get());
    }
    fn may_verify(&self) -> Result<(), Throttle> {
        let client = format!("198.51.100.{}", self.client.get());
        self.budget.borrow_mut().admit(Some(&client), Some(self.connection.get()), self.now.get())
    }
    fn verification_failed(&self) {
        let client = format!("198.51.100.{}", self.client.get());
        self.budget.borrow_mut().record(&client, Some(self.connection.get()), self.now.get());
    }
    fn known_bad(&self, provider: usize, token: &str) -> bool {
        self.cache.borrow().is_bad(provider, token, self.now.get())
    }
    fn remember_bad(&self, provider: usize, token: &str) {
        self.cache.borrow_mut().put_bad(provider, token, self.now.get());
    }
}

fn head(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
}

/// The configuration parser and compiler: any bytes, never a panic.
pub fn config(data: &[u8]) {
    let _ = config::parse(data);
}

/// A token in the Authorization header (and a cookie-less, query-less request): never a
/// panic, and random bytes never verify.
pub fn jwt(data: &[u8]) {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(data);
    let headers = head(&[(":method", b"GET"), (":path", b"/orders"), ("authorization", &value)]);
    JWT.with(|p| {
        STATE.with(|state| {
            // Stateless, and through the state a host keeps (cache, known forgeries, budget): the
            // same oracle holds for both, and the state stays within its bounds.
            let stateless =
                p.check_head(&RequestHead { headers: &headers, end_of_stream: Some(true) }, &NoState, NOW);
            state.next(data);
            let d = p.check_head(
                &RequestHead { headers: &headers, end_of_stream: Some(true) },
                state,
                state.now.get(),
            );
            assert!(
                state.cache.borrow().bad_len() <= FUZZ_CACHE,
                "the known-forgery cache outgrew its bound"
            );
            assert!(state.budget.borrow().len() <= FUZZ_CLIENTS, "the budget table outgrew its bound");
            // The same oracle for both: the state adds refusals (budget, overload) and cached
            // passes of what verified before, never a pass of something else.
            let passed = stateless.outcome.is_ok() || d.outcome.is_ok();
            // Only tokens signed by the fixture keys can pass, and only as RFC 6750 §2.1 writes
            // them (`Bearer`, one or more spaces, the token; HTTP's own trailing whitespace): a
            // fuzzer that finds anything else has found a forgery or a leniency.
            if passed {
                let exact = data.iter().position(|b| *b != b' ').map_or(&data[..0], |i| &data[i..]);
                let end = exact.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(0, |i| i + 1);
                let exact = &exact[..end];
                let tokens: Value =
                    serde_json::from_str(include_str!("../tests/fixtures/jwt/tokens.json")).unwrap();
                let known = tokens
                    .as_object()
                    .unwrap()
                    .values()
                    .any(|t| t.as_str().is_some_and(|t| t.as_bytes() == exact));
                assert!(known, "an unknown token verified: {:?}", String::from_utf8_lossy(data));
            }
        })
    });
}

/// The streaming JSON scanner: the same verdict for the whole body and for any split, and never
/// accepting what serde_json refuses.
pub fn json_limits(data: &[u8]) {
    let whole = scan(JsonLimits::default(), data);
    let cut = data.first().map_or(0, |b| usize::from(*b)) % (data.len() + 1);
    let mut s = JsonScanner::new(JsonLimits::default());
    let split = s.feed(&data[..cut]).and_then(|()| s.feed(&data[cut..])).and_then(|()| s.finish());
    assert_eq!(whole.is_ok(), split.is_ok(), "split at {cut} changed the verdict");
    if whole.is_ok() {
        // RFC 8259 grammar is the scanner's rule; serde_json also refuses numbers beyond a
        // double's range (`1e400`), which the scanner leaves to the schema validator.
        if let Err(e) = serde_json::from_slice::<Value>(data) {
            assert!(e.to_string().contains("number out of range"), "the scanner accepted invalid JSON: {e}");
        }
    }
}

/// OpenAPI request validation of a JSON body (and the same bytes as a form body): never a panic.
pub fn schema(data: &[u8]) {
    API.with(|p| {
        for (method, path, ct) in [
            (&b"POST"[..], &b"/v1/pets"[..], &b"application/json"[..]),
            (b"PUT", b"/v1/pets/1", b"application/x-www-form-urlencoded"),
            (b"POST", b"/v1/pets/1/photos", b"multipart/form-data; boundary=x"),
        ] {
            let len = data.len().to_string();
            let headers = head(&[
                (":method", method),
                (":path", path),
                ("content-type", ct),
                ("content-length", len.as_bytes()),
            ]);
            let d =
                p.check_head(&RequestHead { headers: &headers, end_of_stream: Some(false) }, &NoState, NOW);
            if let Ok(a) = d.outcome {
                if let BodyPlan::Check(c) = a.body {
                    if let Some(t) = c.validate {
                        let _ = p.check_body(t, data);
                    }
                }
            }
        }
    });
}

/// The one-pass response rewrite (schema allowlist and field rules) against the whole-tree
/// rewrite: the same verdict on what is JSON, the same document out.
pub fn redact(data: &[u8]) {
    API.with(|p| {
        let headers = head(&[(":method", b"GET"), (":path", b"/v1/pets/7")]);
        let a = p
            .check_head(&RequestHead { headers: &headers, end_of_stream: Some(true) }, &NoState, NOW)
            .outcome
            .unwrap();
        let upstream = head(&[(":status", b"200"), ("content-type", b"application/json")]);
        let ResponsePlan::Rewrite(plan) = p.plan_response(&a.response, &upstream) else {
            panic!("no rewrite planned")
        };
        match (p.rewrite_response(&plan, data), p.rewrite_response_tree(&plan, data)) {
            (Ok(out), Ok(tree)) => assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), tree),
            (Err(_), Err(_)) => {}
            (fast, tree) => panic!("verdicts differ: one-pass {} tree {}", fast.is_ok(), tree.is_ok()),
        }
    });
}

/// Path normalisation, route matching, the OpenAPI inventory and CORS: the bytes as `:path`,
/// origin and method; never a panic.
/// RFC 3986 dot-segment removal and slash merging over an already decoded path, as the
/// upstream models below apply it after their own decoding.
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn decode(s: &str) -> String {
    String::from_utf8_lossy(&api_guard::policy::path::percent_decode(s, false)).into_owned()
}

/// The path common upstreams would serve for a forwarded `target`: a servlet container
/// (`;` parameters stripped per segment, then decoded), a server behind a second decoder
/// (decoded twice), Go's `net/http` (decoded, cleaned), and one that trims each segment.
pub fn upstream_views(target: &str) -> Vec<String> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let servlet: Vec<String> =
        path.split('/').map(|seg| decode(seg.split(';').next().unwrap_or(""))).collect();
    let trimmed: Vec<String> = decode(path).split('/').map(|seg| seg.trim().to_string()).collect();
    vec![
        clean(&servlet.join("/")),
        clean(&decode(&decode(path))),
        clean(&decode(path)),
        clean(&trimmed.join("/")),
    ]
}

/// [`upstream_views`] plus what an upstream declared case-insensitive (`paths.case_insensitive`:
/// each view lower-cased) or suffix-routing (`paths.format_suffix`: without a format suffix on
/// its last segment) serves.
pub fn folding_views(target: &str, case_insensitive: bool, format_suffix: bool) -> Vec<String> {
    let mut out = Vec::new();
    for view in upstream_views(target) {
        let folded = if case_insensitive { view.to_lowercase() } else { view.clone() };
        let trimmed = folded.trim_end_matches('/');
        let last = trimmed.rsplit('/').next().unwrap_or("");
        if let Some(dot) = last.find('.').filter(|i| *i > 0 && format_suffix) {
            out.push(trimmed[..trimmed.len() - last.len() + dot].to_string());
        }
        out.push(folded);
        out.push(view);
    }
    out
}

/// Routes, preflights and the path-confusion differential: a path api-guard admits is never
/// one an upstream model would serve as the denied `/admin`.
pub fn route(data: &[u8]) {
    let cut = data.len() / 2;
    let (path, origin) = data.split_at(cut);
    // The default rules against the strict models; the declared ones against the folding ones.
    let differential = |p: &Policy, views: &dyn Fn(&str) -> Vec<String>| {
        let headers = head(&[(":method", b"GET"), (":path", path)]);
        let d = p.check_head(&RequestHead { headers: &headers, end_of_stream: Some(true) }, &NoState, NOW);
        if let Ok(a) = &d.outcome {
            let sent = String::from_utf8_lossy(path).into_owned();
            let forwarded = a
                .headers
                .iter()
                .find_map(|op| match op {
                    api_guard::policy::http::HeaderOp::Set(n, v) if n == ":path" => Some(v.clone()),
                    _ => None,
                })
                .unwrap_or(sent.clone());
            for served in views(&forwarded) {
                let admin = served == "/admin" || served.starts_with("/admin/");
                assert!(
                    !admin,
                    "{sent:?} was admitted, forwarded as {forwarded:?}, and an upstream serves {served:?}"
                );
            }
        }
    };
    GUARD.with(|p| differential(p, &upstream_views));
    FOLDING.with(|p| differential(p, &|t| folding_views(t, true, true)));
    API.with(|p| {
        for method in [&b"GET"[..], b"OPTIONS", b"PUT"] {
            let headers = head(&[
                (":method", method),
                (":path", path),
                ("origin", origin),
                ("access-control-request-method", origin),
            ]);
            let _ =
                p.check_head(&RequestHead { headers: &headers, end_of_stream: Some(true) }, &NoState, NOW);
        }
    });
}
