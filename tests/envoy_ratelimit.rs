//! Rate limits through the real Envoy 1.40 with the built module, with two worker threads
//! (each its own VM): per-subject limits for two users (one limited, the other not), a
//! limit picked by a plan claim, a route-wide limit, the client address as the key, and the
//! counts exact across both workers under concurrent load. Tokens are signed here with the
//! `rsa` crate (an RSA implementation the module does not use) from the fixture keys; the
//! `RateLimit-Policy` and `RateLimit` fields are parsed with PyPI's `http-sf`, an independent
//! structured-fields parser. Every refused request is checked against the recording upstream.
//!
//! Global limits: two Envoy processes share one limit through a real rate-limit service,
//! Limitador counting in Redis (Debian's `redis-server`), behind the RLS v3 API
//! (`tests/rls`, built by `make rls-server`); Redis and then the service are killed mid-run
//! and restored, under both failure modes.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::json;
use support::rls::{self, Redis};
use support::rs256_token as token;
use support::{Envoy, EnvoyOptions, Gateway};

fn policy() -> String {
    json!({
        "jwt": support::jwt_rs256_required(),
        "rate_limits": {
            "policies": {
                "per-user": {"requests": 5, "window_seconds": 3600, "key": {"type": "claim", "claim": "sub"},
                             "plans": {"claim": "plan", "limits": {"gold": {"requests": 15}}}},
                "everyone": {"requests": 7, "window_seconds": 3600, "key": {"type": "route"}},
                "per-address": {"requests": 4, "window_seconds": 3600, "key": {"type": "client_address"},
                                "headers": false}
            },
            "default": ["per-user"]
        },
        "routes": [
            {"name": "status", "match": {"prefix": "/status"}, "auth": {"type": "public"},
             "rate_limits": ["everyone"]},
            {"name": "signup", "match": {"prefix": "/signup"}, "auth": {"type": "public"},
             "rate_limits": ["per-address"]},
            {"name": "free", "match": {"prefix": "/free"}, "auth": {"type": "public"}, "rate_limits": []}
        ]
    })
    .to_string()
}

/// Sends `n` requests at once, each on a connection of its own (so both workers take some);
/// returns the statuses and the responses.
fn burst(gw: &Gateway, n: usize, path: &str, auth: Option<&str>) -> Vec<support::Response> {
    let port = gw.client.port;
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (path, auth) = (path.to_string(), auth.map(str::to_string));
            std::thread::spawn(move || {
                let headers: Vec<(&str, &str)> =
                    auth.as_deref().map(|a| ("authorization", a)).into_iter().collect();
                support::Client::new(port).request("GET", &path, &headers, b"")
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn count(responses: &[support::Response], status: u16) -> usize {
    responses.iter().filter(|r| r.status == status).count()
}

/// Parses a structured-field list with `http-sf` (PyPI), as JSON: `[[name, {param: value}]]`.
fn parse_sf(value: &str) -> serde_json::Value {
    let root = support::repo_root();
    let out = std::process::Command::new("python3")
        .env("PYTHONPATH", root.join(".tools/sf"))
        .args([
            "-c",
            "import sys, json, http_sf\nprint(json.dumps(http_sf.parse(sys.argv[1].encode(), tltype='list')))",
            value,
        ])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "http-sf refused {value:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A worker's accepted connections, from Envoy's per-worker listener counters.
fn worker_connections(envoy: &Envoy) -> Vec<u64> {
    let (_, stats) = envoy.admin("/stats?filter=worker_.\\.downstream_cx_total").unwrap();
    stats
        .lines()
        .filter(|l| l.starts_with("listener.") && !l.contains("admin"))
        .filter_map(|l| l.rsplit_once(": ").and_then(|(_, v)| v.trim().parse().ok()))
        .collect()
}

#[test]
fn limits_count_exactly_across_workers_per_subject_plan_route_and_address() {
    let gw = Gateway::start_with(&policy(), EnvoyOptions { concurrency: 2, ..Default::default() });
    let alice = format!("Bearer {}", token(json!({"sub": "alice", "plan": "free"})));
    let bob = format!("Bearer {}", token(json!({"sub": "bob"})));
    let carol = format!("Bearer {}", token(json!({"sub": "carol", "plan": "gold"})));

    // Alice sends 12 at once: exactly her 5 pass, across both workers.
    let a = burst(&gw, 12, "/orders/alice", Some(&alice));
    assert_eq!(
        (count(&a, 200), count(&a, 429)),
        (5, 7),
        "{:?}",
        a.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // Bob is another subject: Alice's use costs him nothing.
    let b = burst(&gw, 8, "/orders/bob", Some(&bob));
    assert_eq!((count(&b, 200), count(&b, 429)), (5, 3));
    // Carol's plan claim gives her 15.
    let c = burst(&gw, 20, "/orders/carol", Some(&carol));
    assert_eq!((count(&c, 200), count(&c, 429)), (15, 5));
    // A route-wide limit: 7 for every caller of /status together.
    let s = burst(&gw, 10, "/status", None);
    assert_eq!((count(&s, 200), count(&s, 429)), (7, 3));
    // Keyed by address: every request here comes from 127.0.0.1.
    let p = burst(&gw, 6, "/signup", None);
    assert_eq!((count(&p, 200), count(&p, 429)), (4, 2));
    // A route that opts out is never limited.
    assert_eq!(count(&burst(&gw, 10, "/free", None), 200), 10);
    // Both workers took connections, so the exact counts above were shared between VMs.
    let per_worker = worker_connections(&gw.envoy);
    assert!(
        per_worker.len() >= 2 && per_worker.iter().all(|n| *n > 0),
        "connections per worker: {per_worker:?}"
    );

    // Nothing refused reached the upstream: it saw exactly the allowed requests.
    let seen = |prefix: &str| gw.upstream.seen_path(prefix).len();
    assert_eq!(
        (seen("/orders/alice"), seen("/orders/bob"), seen("/orders/carol"), seen("/status"), seen("/signup")),
        (5, 5, 15, 7, 4)
    );

    // A refusal: problem+json, Retry-After, and the fields, as an independent parser reads them.
    let refused = a.iter().find(|r| r.status == 429).unwrap();
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    assert_eq!(refused.json()["type"], "urn:api-guard:problem:rate-limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    // Every answer's fields, should this ever differ (a refusal must name the real wait).
    let fields: Vec<String> = a
        .iter()
        .map(|r| {
            format!(
                "{} retry-after={:?} ratelimit={:?}",
                r.status,
                r.header("retry-after"),
                r.header("ratelimit")
            )
        })
        .collect();
    assert_eq!(retry, 720, "one request refills every 3600 / 5 s: {fields:#?}");
    assert_eq!(
        parse_sf(refused.header("ratelimit-policy").unwrap()),
        json!([["per-user", {"q": 5, "w": 3600}]])
    );
    let state = parse_sf(refused.header("ratelimit").unwrap());
    assert_eq!(state[0][0], "per-user");
    assert_eq!(state[0][1]["r"], 0);
    assert!(state[0][1]["t"].as_u64().unwrap() > 3590);
    // Allowed answers carry the fields too, with what is left: 4, 3, 2, 1, 0 in some order.
    assert_eq!(left_after_each(&a), [0, 1, 2, 3, 4]);
    let gold = c.iter().find(|r| r.status == 200).unwrap();
    assert_eq!(
        parse_sf(gold.header("ratelimit-policy").unwrap()),
        json!([["per-user", {"q": 15, "w": 3600}]])
    );
    // `headers: false` sends none.
    assert!(p.iter().all(|r| r.header("ratelimit").is_none() && r.header("ratelimit-policy").is_none()));

    // A refused token spends no quota: Dave's forged tokens, then his 5.
    let dave = token(json!({"sub": "dave"}));
    let forged = format!("Bearer {}x", &dave[..dave.len() - 1]);
    assert_eq!(count(&burst(&gw, 6, "/orders/dave", Some(&forged)), 401), 6);
    let d = burst(&gw, 6, "/orders/dave", Some(&format!("Bearer {dave}")));
    assert_eq!((count(&d, 200), count(&d, 429)), (5, 1));

    // The counters say the same, by policy, and the denials carry their reason.
    let rl = |policy: &str, decision: &str| {
        gw.envoy.series("api_guard_rate_limit_total", &[("policy", policy), ("decision", decision)])
    };
    assert_eq!((rl("per-user", "allowed"), rl("per-user", "limited")), (5 + 5 + 15 + 5, 7 + 3 + 5 + 1));
    assert_eq!((rl("everyone", "allowed"), rl("everyone", "limited")), (7, 3));
    assert_eq!((rl("per-address", "allowed"), rl("per-address", "limited")), (4, 2));
    assert_eq!(rl("per-user", "shared") + rl("per-user", "error"), 0);
    assert_eq!(gw.envoy.denied("rate_limited"), 7 + 3 + 5 + 3 + 2 + 1);
    let (_, prom) = gw.envoy.admin("/stats/prometheus").unwrap();
    assert!(
        prom.lines().any(|l| l.starts_with("api_guard_rate_limit_total{")
            && l.contains("policy=\"per-user\"")
            && l.contains("decision=\"limited\"")),
        "no labelled rate-limit series in /stats/prometheus"
    );
}

#[test]
fn a_configuration_that_names_an_unknown_policy_is_refused_with_the_field() {
    let config = json!({"rate_limits": {"policies": {}}, "routes": [
        {"name": "r", "match": {"prefix": "/"}, "rate_limits": ["missing"]}]})
    .to_string();
    let upstream = support::Upstream::start();
    let log = match Envoy::start_with(&config, upstream.port, EnvoyOptions::default()) {
        Ok(_) => panic!("Envoy accepted a policy naming an unknown rate limit"),
        Err(log) => log,
    };
    assert!(log.contains("routes[0].rate_limits[0]") && log.contains("no policy named 'missing'"), "{log}");
}

/// An Envoy with the module and a cluster `rls` (HTTP/2) to the rate-limit service.
fn global_envoy(upstream: u16, rls_port: u16, config: &str) -> Envoy {
    let opts =
        EnvoyOptions { concurrency: 2, clusters: vec![("rls".into(), rls_port)], ..Default::default() };
    let yaml = support::envoy::bootstrap(upstream, config, &opts).replacen(
        &support::envoy::cluster_yaml("rls", rls_port),
        &support::envoy::grpc_cluster_yaml("rls", rls_port),
        1,
    );
    Envoy::start_yaml(&yaml, &opts).unwrap_or_else(|log| panic!("{log}"))
}

/// `n` requests one after another, alternating between the two Envoys. (Limitador's Redis
/// storage reads the counters, then increments them, in two steps: requests that arrive at
/// the same instant can all read the same count, so only one at a time is exact.)
fn alternate(ports: [u16; 2], n: usize, path: &str, auth: &str) -> Vec<support::Response> {
    (0..n)
        .map(|i| support::Client::new(ports[i % 2]).request("GET", path, &[("authorization", auth)], b""))
        .collect()
}

#[test]
fn global_limits_are_shared_by_two_envoys_through_limitador_and_redis_and_fail_as_configured() {
    let dir = support::unique_dir("rls");
    let mut redis = Redis::start(&dir);
    // Limitador's own limit definitions: 6 per hour per key for `per-user`, 1000 for `strict`.
    let limits = json!([rls::limit("edge", "per-user", 6, 3600), rls::limit("edge", "strict", 1000, 3600)]);
    let mut service = rls::service(&dir, &redis, &limits);
    let config = json!({
        "jwt": support::jwt_rs256_required(),
        "rate_limits": {
            "service": {"cluster": "rls", "domain": "edge", "timeout_ms": 150},
            "policies": {
                "per-user": {"global": true, "key": {"type": "claim", "claim": "sub"}},
                "strict": {"global": true, "key": {"type": "claim", "claim": "sub"}, "failure_mode": "fail_closed"}
            },
            "default": ["per-user"]
        },
        "routes": [{"name": "strict", "match": {"prefix": "/strict"}, "rate_limits": ["strict"]}]
    })
    .to_string();
    let upstream = support::Upstream::start();
    let a = global_envoy(upstream.port, service.port, &config);
    let b = global_envoy(upstream.port, service.port, &config);
    let ports = [a.port, b.port];
    let bearer = |sub: &str| format!("Bearer {}", token(json!({"sub": sub})));

    // Alice's 16 requests across both Envoys: exactly the service's 6 pass.
    let alice = alternate(ports, 16, "/orders/alice", &bearer("alice"));
    assert_eq!(
        (count(&alice, 200), count(&alice, 429)),
        (6, 10),
        "{:?}",
        alice.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(gw_seen(&upstream, "/orders/alice"), 6, "a refused request reached the upstream");
    // Both Envoys let some through: the count is one across processes, not one per Envoy.
    let per_envoy = |e: &Envoy| {
        e.series("api_guard_rate_limit_total", &[("policy", "per-user"), ("decision", "allowed")])
    };
    support::envoy::settle_counters();
    assert_eq!(per_envoy(&a) + per_envoy(&b), 6);
    // Bob is unaffected.
    assert_eq!(count(&alternate(ports, 4, "/orders/bob", &bearer("bob")), 200), 4);
    // The service's limit and state, as an independent structured-fields parser reads them.
    let refused = alice.iter().find(|r| r.status == 429).unwrap();
    assert_eq!(refused.json()["type"], "urn:api-guard:problem:rate-limited");
    assert_eq!(
        parse_sf(refused.header("ratelimit-policy").unwrap()),
        json!([["per-user", {"q": 6, "w": 3600}]])
    );
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry), "Retry-After {retry}: the window's reset");
    assert_eq!(left_after_each(&alice), [0, 1, 2, 3, 4, 5]);

    // Redis down: Limitador cannot count (the first call fails at once, later ones wait on
    // the dead connection for a second). `per-user` fails open, `strict` closed; each request
    // waits at most the 150 ms timeout, whatever the service does meanwhile.
    drop(redis);
    let started = std::time::Instant::now();
    let open = alternate(ports, 4, "/orders/carol", &bearer("carol"));
    let closed = alternate(ports, 4, "/strict/carol", &bearer("carol"));
    let took = started.elapsed();
    assert_eq!(count(&open, 200), 4, "{:?}", open.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(count(&closed, 503), 4, "{:?}", closed.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(closed[0].header("retry-after"), Some("1"));
    assert_eq!(closed[0].json()["type"], "urn:api-guard:problem:rate-limit-unavailable");
    assert!(took < std::time::Duration::from_millis(8 * 150 + 1500), "took {took:?}");
    assert_eq!(gw_seen(&upstream, "/strict/carol"), 0);
    support::envoy::settle_counters();
    let errors = |policy: &str| {
        [&a, &b]
            .iter()
            .map(|e| e.series("api_guard_rate_limit_total", &[("policy", policy), ("decision", "error")]))
            .sum::<u64>()
    };
    assert_eq!((errors("per-user"), errors("strict")), (4, 4));
    let logs = a.log() + &b.log();
    let failed: Vec<&str> = logs.lines().filter(|l| l.contains("rate-limit service call failed")).collect();
    // 14 (unavailable) from the service at first, then Envoy's own end of the timed-out calls.
    assert!(failed.len() >= 8, "every failed call is logged: {failed:?}");

    // Redis back (empty: it kept nothing): counting resumes, Dave gets exactly 6.
    redis = Redis::start(&dir);
    let mut recovered = false;
    for _ in 0..50 {
        let r = support::Client::new(a.port).request(
            "GET",
            "/strict/probe",
            &[("authorization", &bearer("probe"))],
            b"",
        );
        if r.status == 200 {
            recovered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(recovered, "the service did not recover once Redis was back");
    let dave = alternate(ports, 9, "/orders/dave", &bearer("dave"));
    assert_eq!((count(&dave, 200), count(&dave, 429)), (6, 3));

    // The service itself down: the same failure modes, at once.
    let _ = service.child.kill();
    let _ = service.child.wait();
    assert_eq!(count(&alternate(ports, 2, "/orders/erin", &bearer("erin")), 200), 2);
    assert_eq!(count(&alternate(ports, 2, "/strict/erin", &bearer("erin")), 503), 2);
    // Back on another port would need another cluster; on the same Envoys a new service
    // reaches the same Redis state only through Redis, which is what counts.
    drop(redis);
}

/// The `r` (requests left) of the first `RateLimit` member of each allowed answer, sorted.
fn left_after_each(answers: &[support::Response]) -> Vec<u64> {
    let mut left: Vec<u64> = answers
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| parse_sf(r.header("ratelimit").unwrap())[0][1]["r"].as_u64().unwrap())
        .collect();
    left.sort_unstable();
    left
}

fn gw_seen(upstream: &support::Upstream, prefix: &str) -> usize {
    upstream.seen_path(prefix).len()
}

#[test]
fn a_global_policy_without_a_service_is_refused_with_the_field() {
    let config =
        json!({"rate_limits": {"policies": {"g": {"global": true, "key": {"type": "route"}}}}}).to_string();
    let upstream = support::Upstream::start();
    let log = match Envoy::start_with(&config, upstream.port, EnvoyOptions::default()) {
        Ok(_) => panic!("Envoy accepted a global policy without a service"),
        Err(log) => log,
    };
    assert!(log.contains("rate_limits.policies.g.global") && log.contains("rate_limits.service"), "{log}");
}
