//! Observability through the real Envoy and a real Prometheus: labelled series in
//! `/stats/prometheus` with the right counts, key-set health gauges that move with an IdP
//! outage, the denial reason in `%RESPONSE_CODE_DETAILS%`, and the shipped dashboard queries
//! and alert expressions evaluated by Debian's `prometheus` scraping the test Envoy.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::jwks_server::{JwksServer, Mode};
use support::{repo_root, token, Client, Envoy, EnvoyOptions, Upstream};

fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for: {what}");
}

/// The value of the one Prometheus-format line of `metric` whose labels include `labels`.
fn sample(prom: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines: Vec<&str> = prom
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .collect();
    match lines.as_slice() {
        [one] => one.rsplit(' ').next()?.parse().ok(),
        [] => None,
        many => panic!("{} lines for {metric} {labels:?}: {many:?}", many.len()),
    }
}

struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Debian's prometheus scraping Envoy's admin `/stats/prometheus` every second, with the
    /// shipped alert rules loaded.
    fn start(admin_port: u16) -> Prometheus {
        let dir = support::unique_dir("prometheus");
        let rules = repo_root().join("examples/observability/alerts.yaml");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{}']\nscrape_configs:\n  - job_name: envoy\n    metrics_path: /stats/prometheus\n    static_configs: [{{targets: ['127.0.0.1:{admin_port}']}}]\n",
            rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        // Prometheus cannot report a port it picked: take a free one, retry if it was taken.
        for _ in 0..5 {
            let port = support::free_port();
            let mut child = Command::new("prometheus")
                .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
                .spawn()
                .expect("prometheus (Debian package `prometheus`; `make prometheus` installs it)");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if get(port, "/-/ready").is_some_and(|(s, _)| s == 200) {
                    return Prometheus { child, port };
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "prometheus did not start: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
    }

    /// An instant query: the result vector.
    fn query(&self, expr: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", urlencode(expr));
        let (status, body) = get(self.port, &path).expect("prometheus answers");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!((status, v["status"].as_str()), (200, Some("success")), "{expr}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A GET on loopback: status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.to_string()))
}

/// Every dashboard query and alert expression, evaluated by a real Prometheus scraping a real
/// Envoy through an IdP outage, its recovery, and traffic of each kind the panels show.
#[test]
fn labelled_metrics_key_set_health_access_log_dashboard_and_alerts() {
    let jwks = JwksServer::start(Mode::Status(503));
    let upstream = Upstream::start();
    let config = json!({
        "jwt": {
            "providers": {"idp": {
                "issuer": "https://issuer.test",
                "audiences": ["api://orders"],
                "algorithms": ["RS256"],
                "remote_jwks": {
                    "http_uri": {"uri": format!("http://127.0.0.1:{}/jwks", jwks.port), "cluster": "idp", "timeout_ms": 500},
                    "cache_duration_seconds": 600,
                    "min_refetch_interval_seconds": 1
                }
            }},
            "default": {"type": "jwt", "providers": ["idp"]}
        },
        "routes": [
            {"name": "health", "match": {"path": "/health"}, "auth": {"type": "public"}},
            {"name": "orders", "match": {"prefix": "/orders"}}
        ],
        "response": {"rules": [{"select": ["$.secret"], "action": {"type": "remove"}}]},
        "metrics": {"decision_latency": true}
    })
    .to_string();
    let opts = EnvoyOptions { clusters: vec![("idp".into(), jwks.port)], ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&config, upstream.port, opts).unwrap_or_else(|l| panic!("{l}"));
    let client = Client::new(envoy.port);
    let prometheus = Prometheus::start(envoy.admin_port);
    eventually("Prometheus scrapes Envoy", 15, || !prometheus.query("up == 1").is_empty());
    let bearer = |t: &str| format!("Bearer {t}");
    let good = token("rs256");

    // The outage: no key set. JWT routes answer 503; the health gauges say so.
    assert_eq!(client.get("/health").status, 200);
    for _ in 0..3 {
        let r = client.request("GET", "/orders/1", &[("authorization", &bearer(&good))], b"");
        assert_eq!(r.status, 503, "{}", r.text());
        std::thread::sleep(Duration::from_millis(1100));
    }
    eventually("stale gauge and failed fetches in /stats/prometheus", 10, || {
        let (_, prom) = envoy.admin("/stats/prometheus").unwrap();
        sample(&prom, "api_guard_jwks_stale", &[("provider", "idp")]) == Some(1.0)
            && sample(&prom, "api_guard_jwks_keys", &[("provider", "idp")]) == Some(0.0)
            && sample(&prom, "api_guard_jwks_fetches_total", &[("provider", "idp"), ("outcome", "status")])
                .is_some_and(|n| n >= 2.0)
    });
    // Refused requests go on while Prometheus watches, so it sees the counter rise.
    let mut refused = 3;
    eventually("Prometheus scraped the outage", 20, || {
        let r = client.request("GET", "/orders/1", &[("authorization", &bearer(&good))], b"");
        refused += usize::from(r.status == 503);
        std::thread::sleep(Duration::from_millis(500));
        !prometheus.query("max by (provider) (api_guard_jwks_stale) == 1").is_empty()
            && !prometheus
                .query(
                    r#"sum by (route) (rate(api_guard_requests_total{reason="keys_unavailable"}[1m])) > 0"#,
                )
                .is_empty()
    });

    // Recovery: the key set loads, the gauges follow.
    jwks.set(Mode::Serve(std::fs::read(repo_root().join("tests/fixtures/jwt/jwks.json")).unwrap()));
    eventually("a token verifies once the key set is back", 15, || {
        let status = client.request("GET", "/orders/1", &[("authorization", &bearer(&good))], b"").status;
        refused += usize::from(status == 503);
        status == 200
    });
    eventually("fresh gauges", 10, || {
        let (_, prom) = envoy.admin("/stats/prometheus").unwrap();
        sample(&prom, "api_guard_jwks_stale", &[("provider", "idp")]) == Some(0.0)
            && sample(&prom, "api_guard_jwks_keys", &[("provider", "idp")]).is_some_and(|n| n >= 1.0)
            && sample(&prom, "api_guard_jwks_fetches_total", &[("provider", "idp"), ("outcome", "ok")])
                .is_some_and(|n| n >= 1.0)
    });

    // Traffic of each kind: denials by reason and cause, and a withheld response.
    for _ in 0..4 {
        assert_eq!(client.get("/orders/2").status, 401);
    }
    for _ in 0..3 {
        let r = client.request("GET", "/orders/3", &[("authorization", &bearer(&token("expired")))], b"");
        assert_eq!(r.status, 401);
    }
    for _ in 0..2 {
        let r = client.request(
            "GET",
            "/orders/4",
            &[("authorization", &bearer(&token("wrong_key_same_kid")))],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    assert_eq!(client.request("TRACE", "/health", &[], b"").status, 405);
    // Two compressed answers owed a rewrite, apart, so Prometheus sees the counter rise.
    for _ in 0..2 {
        let withheld = client.request(
            "GET",
            "/orders/5",
            &[
                ("authorization", &bearer(&good)),
                ("x-test-echo", "1"),
                ("x-test-echo-body", r#"{"secret":"s"}"#),
                ("x-test-echo-type", "application/json"),
                ("x-test-reply-headers", "content-encoding: gzip"),
            ],
            b"",
        );
        assert_eq!(withheld.status, 502, "{}", withheld.text());
        std::thread::sleep(Duration::from_millis(2100));
    }
    // Forged tokens until the client's verification budget (20 failures) is spent: 429.
    // Each forgery differs (one signature character), so none is a known-bad cache hit; one
    // connection carries them, where the budget answers 429 once spent.
    let mut budget = 0;
    let mut conn = client.connect();
    let (signed, signature) = good.rsplit_once('.').unwrap();
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ".chars().filter(|c| signature.chars().nth(100) != Some(*c)).take(24)
    {
        let mut forged: Vec<char> = signature.chars().collect();
        forged[100] = c;
        let forged = format!("{signed}.{}", forged.into_iter().collect::<String>());
        let r = conn.request("GET", "/orders/6", &[("authorization", &bearer(&forged))], b"").unwrap();
        budget += usize::from(r.status == 429);
    }
    assert!(budget >= 1, "the budget never refused");

    // The labelled series, with their counts.
    support::envoy::settle_counters();
    let (_, prom) = envoy.admin("/stats/prometheus").unwrap();
    let requests = |labels: &[(&str, &str)]| sample(&prom, "api_guard_requests_total", labels);
    let denied = |reason: &str, cause: &str, route: &str| {
        requests(&[("decision", "denied"), ("reason", reason), ("cause", cause), ("route", route)])
    };
    assert_eq!(denied("token_missing", "none", "orders"), Some(4.0), "{prom}");
    assert_eq!(denied("token_invalid", "expired", "orders"), Some(3.0));
    assert!(denied("token_invalid", "signature", "orders").is_some_and(|n| n >= 2.0));
    assert_eq!(denied("verification_budget", "none", "orders"), Some(budget as f64), "{prom}");
    assert_eq!(denied("keys_unavailable", "none", "orders"), Some(refused as f64));
    assert_eq!(denied("method_not_allowed", "none", "health"), Some(1.0));
    assert_eq!(denied("response_withheld", "encoded", "orders"), Some(2.0), "{prom}");
    assert_eq!(requests(&[("decision", "allowed"), ("route", "health")]), Some(1.0));
    assert!(requests(&[("decision", "allowed"), ("route", "orders")]).is_some_and(|n| n >= 1.0));
    assert!(prom.contains("# TYPE api_guard_requests_total counter"));
    // The provider whose token was judged; `none` where there was no token.
    assert_eq!(
        requests(&[("reason", "token_invalid"), ("cause", "expired"), ("provider", "idp")]),
        Some(3.0)
    );
    assert_eq!(requests(&[("reason", "keys_unavailable"), ("provider", "idp")]), Some(refused as f64));
    assert_eq!(requests(&[("reason", "token_missing"), ("provider", "none")]), Some(4.0));
    assert!(requests(&[("decision", "allowed"), ("route", "orders"), ("provider", "idp")])
        .is_some_and(|n| n >= 1.0));
    assert_eq!(requests(&[("decision", "allowed"), ("route", "health"), ("provider", "none")]), Some(1.0));
    // No label carries request data: every route label is a configured name.
    for l in prom.lines().filter(|l| l.starts_with("api_guard_requests_total{")) {
        assert!(l.contains("route=\"orders\"") || l.contains("route=\"health\""), "{l}");
    }

    // The access log: the reason for each local answer, `via_upstream` for the upstream's.
    let expected = [
        ("/orders/2", "api_guard.token_missing"),
        ("/orders/3", "api_guard.token_invalid"),
        ("/orders/1", "api_guard.keys_unavailable"),
        ("/health", "api_guard.method_not_allowed"),
        ("/orders/5", "api_guard.response_withheld"),
        ("/orders/6", "api_guard.verification_budget"),
        ("/health", "via_upstream"),
    ];
    let logged = |access: &str, path: &str, details: &str| {
        access.lines().any(|l| l.contains(&format!(" {path} ")) && l.ends_with(&format!(" {details}")))
    };
    // Envoy writes the access log in batches: wait for the last line.
    eventually("the access log is written", 20, || {
        let access = std::fs::read_to_string(envoy.dir().join("access.log")).unwrap_or_default();
        logged(&access, "/orders/6", "api_guard.verification_budget")
    });
    let access = std::fs::read_to_string(envoy.dir().join("access.log")).unwrap();
    for (path, details) in expected {
        assert!(logged(&access, path, details), "no `{details}` for {path} in:\n{access}");
    }
    // The log line: method, route, cause; still no header value.
    let log = envoy.log();
    let line =
        log.lines().find(|l| l.contains("\"reason\":\"token-invalid\"") && l.contains("expired")).unwrap();
    assert!(line.contains("\"method\":\"GET\"") && line.contains("\"route\":\"orders\""), "{line}");

    // A real Prometheus: every dashboard query evaluates; those for the traffic above have
    // series. (Verification overload had none here: its alert is tested by promtool.)
    let dashboard: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("examples/observability/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    // A `rate` needs two scrapes of a series, and Envoy hands histograms to its sinks only on
    // its stats flush (every 5 s): wait until every query can have a series.
    eventually("Prometheus scraped the traffic twice and the latency histogram", 30, || {
        exprs.iter().all(|e| !prometheus.query(e).is_empty())
    });
    for p in panels {
        let title = p["title"].as_str().unwrap();
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let result = prometheus.query(expr);
            assert!(!result.is_empty(), "panel `{title}`: `{expr}` has no series");
        }
    }
    // Every alert rule loaded and evaluates; those for what happened above have series.
    let (_, rules) = get(prometheus.port, "/api/v1/rules").unwrap();
    let rules: Value = serde_json::from_str(&rules).unwrap();
    let loaded: Vec<&Value> = rules["data"]["groups"][0]["rules"].as_array().unwrap().iter().collect();
    assert_eq!(loaded.len(), 8, "{rules}");
    for r in &loaded {
        assert_eq!(r["health"], "ok", "{r}");
        let expr = r["query"].as_str().unwrap();
        let result = prometheus.query(expr);
        let name = r["name"].as_str().unwrap();
        let happened = ["ApiGuardKeysUnavailable", "ApiGuardResponsesWithheld"];
        if happened.contains(&name) {
            assert!(!result.is_empty(), "{name}: `{expr}` has no series after its condition happened");
        }
    }
}

#[test]
fn decision_latency_is_a_histogram_per_phase_with_microsecond_buckets() {
    let upstream = Upstream::start();
    let policy = |latency: bool| {
        json!({
            "jwt": {"providers": {"idp": {
                "issuer": "https://issuer.test", "audiences": ["api://orders"], "algorithms": ["RS256"],
                "local_jwks": serde_json::from_slice::<Value>(
                    &std::fs::read(repo_root().join("tests/fixtures/jwt/jwks.json")).unwrap()).unwrap()}},
                "default": {"type": "jwt", "providers": ["idp"]}},
            "metrics": {"decision_latency": latency}
        })
        .to_string()
    };
    let bearer = format!("Bearer {}", token("rs256"));
    for latency in [true, false] {
        let envoy = Envoy::start(&policy(latency), upstream.port);
        let client = Client::new(envoy.port);
        for _ in 0..5 {
            assert_eq!(client.request("GET", "/orders", &[("authorization", &bearer)], b"").status, 200);
        }
        for _ in 0..2 {
            assert_eq!(client.get("/orders").status, 401);
        }
        let metric = "api_guard_decision_duration_microseconds";
        if !latency {
            // Envoy merges histograms on its stats flush (every 5 s): wait one out.
            std::thread::sleep(Duration::from_secs(6));
            let (_, prom) = envoy.admin("/stats/prometheus").unwrap();
            assert!(!prom.contains(metric), "measured without being asked:\n{prom}");
            assert!(sample(&prom, "api_guard_requests_total", &[("decision", "allowed")]) == Some(5.0));
            continue;
        }
        let count = format!("{metric}_count");
        eventually("seven request-phase samples", 20, || {
            let (_, prom) = envoy.admin("/stats/prometheus").unwrap();
            sample(&prom, &count, &[("phase", "request")]) == Some(7.0)
        });
        let (_, prom) = envoy.admin("/stats/prometheus").unwrap();
        let bucket = format!("{metric}_bucket");
        // The shipped bucket settings apply (Envoy's defaults have no 5, 25 or 100000 bucket
        // boundary), and the allowed requests' responses were timed too.
        for le in ["5", "25", "100000"] {
            assert!(
                sample(&prom, &bucket, &[("phase", "request"), ("le", le)]).is_some(),
                "no le={le}:\n{prom}"
            );
        }
        assert_eq!(sample(&prom, &bucket, &[("phase", "request"), ("le", "+Inf")]), Some(7.0));
        assert!(sample(&prom, &count, &[("phase", "response")]).is_some_and(|n| n >= 5.0), "{prom}");
        let sum = sample(&prom, &format!("{metric}_sum"), &[("phase", "request")]).unwrap();
        assert!(sum > 0.0, "request-phase time summed to {sum}");
    }
}
