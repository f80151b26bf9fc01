//! The limits through the whole request path: keys, plans, routes, headers and refusals.

use std::cell::RefCell;

use super::table::{MemoryStore, Table};
use super::Limiter;
use crate::policy::config::parse;
use crate::policy::denial::Reason;
use crate::policy::jwt::jwks::Availability;
use crate::policy::jwt::state::VerifyState;
use crate::policy::{Policy, RequestHead};

const NOW_US: u64 = 1_800_000_000_000_000;

/// A request's state with the counters and a fixed client address.
struct Counted<'a> {
    limiter: &'a Limiter<'a>,
    client: Option<&'a str>,
}

impl VerifyState for Counted<'_> {
    fn lookup(&self, _: usize) -> Availability {
        Availability::Unavailable
    }
    fn client_key(&self) -> Option<String> {
        self.client.map(str::to_string)
    }
    fn limiter(&self) -> Option<&Limiter<'_>> {
        Some(self.limiter)
    }
}

struct Harness {
    policy: Policy,
    table: Table,
    store: MemoryStore,
    now_us: RefCell<u64>,
}

impl Harness {
    fn new(doc: &str) -> Harness {
        let policy = parse(doc.as_bytes()).expect("policy compiles");
        let slots = policy.rate_limits.as_ref().map_or(16, |r| r.slots);
        Harness {
            policy,
            table: Table::new("test", slots, [9; 16]),
            store: MemoryStore::default(),
            now_us: RefCell::new(NOW_US),
        }
    }

    /// The status and the response fields of one request.
    fn send(&self, path: &str, headers: &[(&str, &str)], client: &str) -> (u16, Vec<(String, String)>) {
        let mut all: Vec<(String, Vec<u8>)> =
            vec![(":method".into(), b"GET".to_vec()), (":path".into(), path.as_bytes().to_vec())];
        all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())));
        let head = RequestHead { headers: &all, end_of_stream: Some(true) };
        let limiter = Limiter::new(&self.table, &self.store, *self.now_us.borrow());
        let state = Counted { limiter: &limiter, client: Some(client) };
        let d = self.policy.check_head(&head, &state, (*self.now_us.borrow() / 1_000_000) as i64);
        self.answer(d.outcome)
    }

    /// The status and headers a decision's outcome goes out with (a denial as rendered).
    fn answer(
        &self,
        outcome: Result<crate::policy::Admission, crate::policy::denial::Denial>,
    ) -> (u16, Vec<(String, String)>) {
        match outcome {
            Ok(a) => (200, a.response_headers),
            Err(denial) => {
                let out = crate::policy::denial::render(
                    &denial,
                    &self.policy.rendering,
                    &crate::policy::denial::RequestTag { route: "", method: None, request_id: "r" },
                    None,
                );
                assert_eq!(out.reason, denial.reason);
                (out.response.status, out.response.headers)
            }
        }
    }

    fn statuses(&self, n: usize, path: &str, headers: &[(&str, &str)], client: &str) -> Vec<u16> {
        (0..n).map(|_| self.send(path, headers, client).0).collect()
    }
}

use crate::policy::test_tokens::hs256;

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn a_route_wide_limit_counts_every_caller_together_and_answers_429() {
    let h = Harness::new(
        r#"{"rate_limits":{"policies":{"shared":{"requests":3,"window_seconds":60,"key":{"type":"route"}}}},
            "routes":[{"name":"r","match":{"prefix":"/"},"rate_limits":["shared"]}]}"#,
    );
    assert_eq!(h.statuses(2, "/a", &[], "192.0.2.1"), [200, 200]);
    let (status, headers) = h.send("/a", &[], "192.0.2.2");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "ratelimit-policy"), Some(r#""shared";q=3;w=60"#));
    assert_eq!(header(&headers, "ratelimit"), Some(r#""shared";r=0;t=60"#));
    let (status, headers) = h.send("/a", &[], "192.0.2.3");
    assert_eq!(status, 429);
    assert_eq!(header(&headers, "retry-after"), Some("20"));
    assert_eq!(header(&headers, "content-type"), Some("application/problem+json"));
    assert_eq!(header(&headers, "ratelimit"), Some(r#""shared";r=0;t=60"#));
    // Twenty seconds later one request has refilled.
    *h.now_us.borrow_mut() += 20_000_000;
    assert_eq!(h.statuses(2, "/a", &[], "192.0.2.3"), [200, 429]);
}

#[test]
fn an_api_key_consumer_is_counted_as_its_subject_whatever_its_address() {
    use sha2::{Digest, Sha256};
    let sha = |k: &str| Sha256::digest(k.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let h = Harness::new(&format!(
        r#"{{"api_keys":{{"keys":[{{"consumer":"batch","sha256":"{}"}},{{"consumer":"ci","sha256":"{}"}}]}},
            "rate_limits":{{"policies":{{"per-consumer":{{"requests":2,"window_seconds":60,"key":{{"type":"claim","claim":"sub"}}}}}},
            "default":["per-consumer"]}}}}"#,
        sha("key-batch"),
        sha("key-ci")
    ));
    let batch = [("x-api-key", "key-batch")];
    assert_eq!(h.send("/a", &batch, "192.0.2.1").0, 200);
    assert_eq!(h.send("/a", &batch, "192.0.2.2").0, 200);
    assert_eq!(h.send("/a", &batch, "192.0.2.3").0, 429, "another address escaped the consumer's limit");
    assert_eq!(h.statuses(2, "/a", &[("x-api-key", "key-ci")], "192.0.2.1"), [200, 200]);
    // A refused key spends nothing.
    assert_eq!(h.send("/a", &[("x-api-key", "key-nobody")], "192.0.2.9").0, 401);
}

#[test]
fn client_addresses_count_apart() {
    let h = Harness::new(
        r#"{"rate_limits":{"policies":{"ip":{"requests":2,"window_seconds":10,"key":{"type":"client_address"},"headers":false}},
            "default":["ip"]}}"#,
    );
    assert_eq!(h.statuses(3, "/x", &[], "192.0.2.1"), [200, 200, 429]);
    assert_eq!(h.statuses(3, "/x", &[], "192.0.2.2"), [200, 200, 429]);
    let (_, headers) = h.send("/x", &[], "192.0.2.9");
    assert!(header(&headers, "ratelimit").is_none(), "headers off: {headers:?}");
}

#[test]
fn a_trusted_header_keys_the_bucket_and_its_absence_falls_back_to_the_address() {
    let h = Harness::new(
        r#"{"rate_limits":{"policies":{"tenant":{"requests":1,"window_seconds":60,
            "key":{"type":"header","name":"X-Tenant","trusted":true}}},"default":["tenant"]}}"#,
    );
    assert_eq!(h.statuses(2, "/", &[("x-tenant", "a")], "192.0.2.1"), [200, 429]);
    assert_eq!(h.statuses(1, "/", &[("x-tenant", "b")], "192.0.2.1"), [200]);
    assert_eq!(h.statuses(2, "/", &[], "192.0.2.1"), [200, 429]);
}

#[test]
fn claims_key_and_pick_plans_only_from_verified_tokens() {
    // HS256 tokens from the RFC 7515 key, so the claims are verified ones.
    let doc = r#"{"jwt":{"providers":{"idp":{"issuer":"https://idp","audiences":["api"],
        "algorithms":["HS256"],
        "local_jwks":{"keys":[{"kty":"oct","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}}},
        "default":{"type":"jwt","providers":["idp"]}},
        "routes":[{"name":"open","match":{"prefix":"/open"},"auth":{"type":"public"}}],
        "rate_limits":{"policies":{"user":{"requests":2,"window_seconds":60,"key":{"type":"claim","claim":"sub"},
          "plans":{"claim":"plan","limits":{"gold":{"requests":5}}}}},"default":["user"]}}"#;
    let h = Harness::new(doc);
    let token = |sub: &str, plan: &str| {
        hs256(
            b"secret-secret-secret-secret-secret",
            &format!(r#"{{"iss":"https://idp","aud":"api","sub":"{sub}","plan":"{plan}","exp":1900000000}}"#),
        )
    };
    let alice = format!("Bearer {}", token("alice", "free"));
    let bob = format!("Bearer {}", token("bob", "gold"));
    let auth = |t: &str| vec![("authorization", t.to_string())];
    let send = |t: &str, ip: &str| {
        let a = auth(t);
        let pairs: Vec<(&str, &str)> = a.iter().map(|(n, v)| (*n, v.as_str())).collect();
        h.send("/", &pairs, ip)
    };
    // Alice from two addresses is one caller: her subject is the key.
    assert_eq!(send(&alice, "192.0.2.1").0, 200);
    assert_eq!(send(&alice, "192.0.2.2").0, 200);
    assert_eq!(send(&alice, "192.0.2.3").0, 429);
    // Bob's plan gives him five, and Alice's refusals cost him nothing.
    let (status, headers) = send(&bob, "192.0.2.1");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "ratelimit-policy"), Some(r#""user";q=5;w=60"#));
    for _ in 0..4 {
        assert_eq!(send(&bob, "192.0.2.1").0, 200);
    }
    assert_eq!(send(&bob, "192.0.2.1").0, 429);
    // A refused token costs no quota; without a token (a public route), the address is the
    // key, here one Alice has not used.
    assert_eq!(h.statuses(3, "/", &[("authorization", "Bearer x.y.z")], "198.51.100.7"), [401, 401, 401]);
    assert_eq!(h.statuses(3, "/open", &[], "198.51.100.7"), [200, 200, 429]);
}

#[test]
fn bad_configurations_are_refused_with_the_field() {
    let cases = [
        (
            r#"{"rate_limits":{"policies":{"a":{"requests":0,"window_seconds":1,"key":{"type":"route"}}}}}"#,
            "rate_limits.policies.a.requests",
        ),
        (
            r#"{"rate_limits":{"policies":{"a":{"requests":1,"window_seconds":0,"key":{"type":"route"}}}}}"#,
            "rate_limits.policies.a.window_seconds",
        ),
        (
            r#"{"rate_limits":{"policies":{"a b":{"requests":1,"window_seconds":1,"key":{"type":"route"}}}}}"#,
            "rate_limits.policies.a b",
        ),
        (
            r#"{"rate_limits":{"policies":{"a":{"requests":1,"window_seconds":1,"key":{"type":"header","name":"x-k"}}}}}"#,
            "rate_limits.policies.a.key.trusted",
        ),
        (r#"{"rate_limits":{"policies":{},"default":["nope"]}}"#, "rate_limits.default[0]"),
        (r#"{"rate_limits":{"policies":{},"table_size":3}}"#, "rate_limits.table_size"),
        (r#"{"routes":[{"name":"r","match":{"prefix":"/"},"rate_limits":["x"]}]}"#, "routes[0].rate_limits"),
        (
            r#"{"rate_limits":{"policies":{"a":{"requests":1,"window_seconds":1,"key":{"type":"route"},
            "plans":{"claim":"plan","limits":{"gold":{"requests":2000000}}}}}}}"#,
            "rate_limits.policies.a.plans.limits.gold.requests",
        ),
        (
            r#"{"rate_limits":{"policies":{"a":{"window_seconds":1,"key":{"type":"route"}}}}}"#,
            "rate_limits.policies.a.requests",
        ),
        (
            r#"{"rate_limits":{"policies":{"a":{"global":true,"key":{"type":"route"}}}}}"#,
            "rate_limits.policies.a.global",
        ),
        (
            r#"{"rate_limits":{"service":{"cluster":"rl","domain":"d"},
            "policies":{"a":{"global":true,"requests":5,"key":{"type":"route"}}}}}"#,
            "rate_limits.policies.a.requests",
        ),
        (
            r#"{"rate_limits":{"service":{"cluster":"rl","domain":"d","timeout_ms":0},"policies":{}}}"#,
            "rate_limits.service.timeout_ms",
        ),
        (
            r#"{"rate_limits":{"service":{"cluster":"","domain":"d"},"policies":{}}}"#,
            "rate_limits.service.cluster",
        ),
    ];
    for (doc, path) in cases {
        let e = parse(doc.as_bytes()).expect_err(doc);
        assert_eq!(e.path, path, "{doc}: {e}");
    }
}

#[test]
fn without_counters_nothing_is_counted_and_nothing_is_refused() {
    // Offline tools (`api-guard explain`) judge without counters.
    let policy = parse(
        br#"{"rate_limits":{"policies":{"a":{"requests":1,"window_seconds":60,"key":{"type":"route"}}},"default":["a"]}}"#,
    )
    .unwrap();
    let all = vec![(":method".to_string(), b"GET".to_vec()), (":path".to_string(), b"/".to_vec())];
    let head = RequestHead { headers: &all, end_of_stream: Some(true) };
    for _ in 0..3 {
        let d = policy.check_head(&head, &crate::policy::authz::NoState, 1_800_000_000);
        assert!(d.outcome.is_ok());
    }
    assert_eq!(Reason::RateLimited.status(), 429);
}

/// A policy with a local and a global limit on one route.
const MIXED: &str = r#"{"rate_limits":{"service":{"cluster":"rls","domain":"edge","timeout_ms":50},
    "policies":{
      "local":{"requests":2,"window_seconds":60,"key":{"type":"client_address"}},
      "shared":{"global":true,"key":{"type":"client_address"},"failure_mode":"fail_closed"},
      "open":{"global":true,"key":{"type":"route"},"headers":false}}},
    "routes":[{"name":"r","match":{"prefix":"/"},"rate_limits":["local","shared","open"]}]}"#;

/// What a request resumed by the service's answer came to: the message sent, the status, the
/// response headers (or the denial's) and the limiter's events.
type Asked = (Vec<u8>, u16, Vec<(String, String)>, Vec<(usize, super::Event)>);

impl Harness {
    /// The call a request waits for, and the decision resumed with `answer`.
    fn ask(&self, client: &str, answer: Option<&[u8]>) -> Asked {
        let all: Vec<(String, Vec<u8>)> =
            vec![(":method".into(), b"GET".to_vec()), (":path".into(), b"/a".to_vec())];
        let head = RequestHead { headers: &all, end_of_stream: Some(true) };
        let now = *self.now_us.borrow();
        let limiter = Limiter::new(&self.table, &self.store, now);
        let state = Counted { limiter: &limiter, client: Some(client) };
        let d = self.policy.check_head(&head, &state, (now / 1_000_000) as i64);
        let s = d.suspended.expect("waits for the service");
        let crate::policy::Wait::Limits(call) = &s.wait else { panic!("waits for keys") };
        let message = call.message.clone();
        // The local policy counted once, before the call; resuming does not count it again.
        let limiter = Limiter::new(&self.table, &self.store, now);
        let state = Counted { limiter: &limiter, client: Some(client) };
        let d = self.policy.resume_limits(&s, answer, &head, &state, (now / 1_000_000) as i64);
        assert!(d.suspended.is_none());
        let events = limiter.events();
        let (status, headers) = self.answer(d.outcome);
        (message, status, headers, events)
    }
}

/// An RLS answer: the overall code, then per descriptor (code, limit per minute, remaining,
/// reset seconds).
fn answer(overall: u8, statuses: &[(u8, u8, u8, u8)]) -> Vec<u8> {
    let mut out = vec![0x08, overall];
    for &(code, limit, remaining, reset) in statuses {
        let status = [0x08, code, 0x12, 4, 0x08, limit, 0x10, 2, 0x18, remaining, 0x22, 2, 0x08, reset];
        out.push(0x12);
        out.push(status.len() as u8);
        out.extend_from_slice(&status);
    }
    out
}

#[test]
fn global_policies_ask_the_service_once_the_local_ones_allow() {
    use super::Event::{Allowed, Error, Limited};
    let h = Harness::new(MIXED);
    let ok = answer(1, &[(1, 10, 7, 30), (1, 100, 99, 60)]);
    let (message, status, headers, events) = h.ask("192.0.2.1", Some(&ok));
    // One descriptor per global policy, in route order: policy name, then the caller's key.
    let want = super::rls::encode_request(
        "edge",
        &[vec![("policy", "shared"), ("key", "a:192.0.2.1")], vec![("policy", "open"), ("key", "r:0")]],
    );
    assert_eq!(message, want);
    assert_eq!(status, 200);
    // The service's limit and state for the global policy; `open` has headers off.
    assert_eq!(header(&headers, "ratelimit-policy"), Some(r#""local";q=2;w=60, "shared";q=10;w=60"#));
    assert_eq!(header(&headers, "ratelimit"), Some(r#""local";r=1;t=30, "shared";r=7;t=30"#));
    // Indexes are name order: local 0, open 1, shared 2.
    assert_eq!(events, [(2, Allowed), (1, Allowed)]);
    // Over the service's limit: 429 with its reset as Retry-After.
    let over = answer(2, &[(2, 10, 0, 42), (1, 100, 98, 60)]);
    let (_, status, headers, events) = h.ask("192.0.2.1", Some(&over));
    assert_eq!(status, 429);
    assert_eq!(header(&headers, "retry-after"), Some("42"));
    assert_eq!(events, [(2, Limited), (1, Allowed)]);
    // The local limit (2) refuses before any call is made.
    let limiter = Limiter::new(&h.table, &h.store, NOW_US);
    let state = Counted { limiter: &limiter, client: Some("192.0.2.1") };
    let all: Vec<(String, Vec<u8>)> =
        vec![(":method".into(), b"GET".to_vec()), (":path".into(), b"/a".to_vec())];
    let d = h.policy.check_head(&RequestHead { headers: &all, end_of_stream: Some(true) }, &state, 0);
    assert!(d.suspended.is_none());
    assert_eq!(d.outcome.err().map(|d| d.reason), Some(Reason::RateLimited));
    // No answer, or garbage: `shared` fails closed (503), and both count an error.
    for bad in [None, Some(&b"\x12\x09"[..]), Some(&[0x08, 0][..])] {
        let (_, status, headers, events) = h.ask("192.0.2.9", bad);
        assert_eq!(status, 503, "{bad:?}");
        assert_eq!(header(&headers, "retry-after"), Some("1"));
        assert_eq!(events, [(2, Error), (1, Error)]);
        *h.now_us.borrow_mut() += 60_000_000;
    }
    // Without statuses, the overall code speaks for every descriptor.
    let (_, status, _, events) = h.ask("192.0.2.10", Some(&[0x08, 2]));
    assert_eq!((status, events), (429, vec![(2, Limited), (1, Limited)]));
}

#[test]
fn a_global_policy_is_refused_where_the_host_has_no_grpc_calls() {
    let doc = r#"{"host":{"kind":"kong"},"rate_limits":{"service":{"cluster":"rls","domain":"d"},
        "policies":{"g":{"global":true,"key":{"type":"route"}}}}}"#;
    let Err(e) = crate::policy::load::load(doc.as_bytes(), || crate::policy::capabilities::HostKind::Kong)
    else {
        panic!("a global policy loaded on Kong")
    };
    assert_eq!(e.path, "rate_limits.policies.g.global");
    assert!(e.to_string().contains("no gRPC callouts"), "{e}");
}
