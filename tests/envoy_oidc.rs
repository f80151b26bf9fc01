//! End to end with a real OpenID provider: npm's `oidc-provider` on loopback issues RFC 9068
//! JWT access tokens (client_credentials with a resource indicator); Envoy fetches its JWKS
//! through a cluster; the provider rotates its signing key (new key signs, old key published,
//! then old key removed) and api-guard follows without an Envoy restart.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Client, Envoy, EnvoyOptions, Upstream};

struct Idp {
    port: u16,
    child: Child,
}

/// Private signing keys for the provider, from the test fixtures; the first one signs.
fn keys(names: &[&str]) -> std::path::PathBuf {
    let all: Value = serde_json::from_slice(
        &std::fs::read(support::repo_root().join("tests/fixtures/jwt/keys.private.json")).unwrap(),
    )
    .unwrap();
    let list: Vec<Value> = names
        .iter()
        .map(|n| {
            let mut k = all[*n].clone();
            k["alg"] = json!("RS256");
            k["use"] = json!("sig");
            k
        })
        .collect();
    let path = support::unique_dir("idp").join("keys.json");
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
    path
}

impl Idp {
    /// Starts the provider on `port` (0: a port the system picks) and waits for its
    /// "listening" line, which names the port it bound. Restarting on a port just freed can
    /// find it still taken, or taken by a test running alongside: that is retried a few times;
    /// any other failure reports the provider's exit status and its stderr.
    fn start(port: u16, key_names: &[&str]) -> Idp {
        let mut last = String::new();
        for _ in 0..10 {
            match Idp::try_start(port, key_names) {
                Ok(idp) => return idp,
                Err(report) if report.contains("EADDRINUSE") => {
                    last = report;
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(report) => panic!("oidc-provider did not start: {report}"),
            }
        }
        panic!("oidc-provider did not start: {last}")
    }

    fn try_start(port: u16, key_names: &[&str]) -> Result<Idp, String> {
        use std::io::{BufRead, Read};
        let dir = support::repo_root().join("tests/idp");
        assert!(dir.join("node_modules/oidc-provider").exists(), "run `make idp` (npm ci in tests/idp)");
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg("server.mjs")
            .arg(port.to_string())
            .arg(keys(key_names))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start node");
        // The provider prints one line once it listens; EOF first means it exited.
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        let bound = line
            .strip_prefix("idp listening on http://127.0.0.1:")
            .and_then(|p| p.trim().parse::<u16>().ok());
        match bound {
            Some(port) => {
                // Keep draining its output so the provider never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                if let Some(mut e) = child.stderr.take() {
                    std::thread::spawn(move || std::io::copy(&mut e, &mut std::io::sink()));
                }
                Ok(Idp { port, child })
            }
            None => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                Err(format!("{status}; stdout: {line:?}; stderr: {err}"))
            }
        }
    }

    /// An access token for the orders API, via client_credentials + resource indicator.
    fn token(&self, scope: &str) -> String {
        let r = Client::new(self.port).request(
            "POST",
            "/token",
            &[
                (
                    "authorization",
                    "Basic b3JkZXJzLWNsaWVudDpvcmRlcnMtY2xpZW50LXNlY3JldC1mb3ItdGVzdHMtb25seQ==",
                ),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            format!("grant_type=client_credentials&resource=api%3A%2F%2Forders&scope={scope}").as_bytes(),
        );
        assert_eq!(r.status, 200, "token endpoint: {}", r.text());
        r.json()["access_token"].as_str().unwrap().to_string()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kid(token: &str) -> String {
    use base64::Engine;
    let h =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&h).unwrap()["kid"].as_str().unwrap().to_string()
}

#[test]
fn tokens_from_a_real_provider_and_key_rotation_without_restart() {
    let mut idp = Idp::start(0, &["rsa-1"]);
    let port = idp.port;
    let upstream = Upstream::start();
    let config = json!({
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
    })
    .to_string();
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
    assert_eq!(envoy.counter("api_guard_denied_keys_unavailable_total"), 0);
}
