//! The test OpenID provider (npm `oidc-provider`, `tests/idp/server.mjs`, `make idp`):
//! started on a port of its own, tokens from its token endpoint.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::Client;

/// HTTP Basic credentials of `orders-client` (its id and secret in `server.mjs`).
const ORDERS_CLIENT: &str = "Basic b3JkZXJzLWNsaWVudDpvcmRlcnMtY2xpZW50LXNlY3JldC1mb3ItdGVzdHMtb25seQ==";

/// A running provider, killed on drop.
pub struct Idp {
    /// Its port on 127.0.0.1 (the issuer is `http://127.0.0.1:PORT`).
    pub port: u16,
    child: Child,
}

/// Private signing keys for the provider, from the test fixtures; the first one signs.
fn keys(names: &[&str]) -> std::path::PathBuf {
    let all: Value = serde_json::from_slice(
        &std::fs::read(super::repo_root().join("tests/fixtures/jwt/keys.private.json")).unwrap(),
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
    let path = super::unique_dir("idp").join("keys.json");
    std::fs::write(&path, serde_json::to_vec(&list).unwrap()).unwrap();
    path
}

impl Idp {
    /// Starts the provider on `port` (0: a port the system picks) and waits for its
    /// "listening" line, which names the port it bound. Restarting on a port just freed can
    /// find it still taken, or taken by a test running alongside: that is retried a few times;
    /// any other failure reports the provider's exit status and its stderr.
    pub fn start(port: u16, key_names: &[&str]) -> Idp {
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
        let dir = super::repo_root().join("tests/idp");
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
    pub fn token(&self, scope: &str) -> String {
        self.token_as(ORDERS_CLIENT, scope, &[])
    }

    /// An opaque access token (for the resource `api://opaque`): only introspection says what
    /// it is.
    pub fn opaque_token(&self, scope: &str) -> String {
        self.token_for(ORDERS_CLIENT, "api%3A%2F%2Fopaque", scope, &[])
    }

    /// Revokes `token` at the provider's revocation endpoint (RFC 7009).
    pub fn revoke(&self, token: &str) {
        let body = format!("token={token}");
        let headers =
            [("authorization", ORDERS_CLIENT), ("content-type", "application/x-www-form-urlencoded")];
        let r = Client::new(self.port).request("POST", "/token/revocation", &headers, body.as_bytes());
        assert_eq!(r.status, 200, "revocation endpoint: {}", r.text());
    }

    /// How many introspection requests the provider has answered.
    pub fn introspections(&self) -> u64 {
        Client::new(self.port).request("GET", "/test/introspections", &[], b"").json()["count"]
            .as_u64()
            .unwrap()
    }

    /// An access token for `bound-client`, bound by the provider to the client certificate
    /// `pem` (RFC 8705): it carries the `cnf.x5t#S256` the provider computed.
    pub fn bound_token(&self, scope: &str, pem: &str) -> String {
        let encoded: String = pem
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
            .collect();
        let basic = "Basic Ym91bmQtY2xpZW50OmJvdW5kLWNsaWVudC1zZWNyZXQtZm9yLXRlc3RzLW9ubHk=";
        self.token_as(basic, scope, &[("x-client-certificate", &encoded)])
    }

    fn token_as(&self, basic: &str, scope: &str, extra: &[(&str, &str)]) -> String {
        self.token_for(basic, "api%3A%2F%2Forders", scope, extra)
    }

    fn token_for(&self, basic: &str, resource: &str, scope: &str, extra: &[(&str, &str)]) -> String {
        let mut headers =
            vec![("authorization", basic), ("content-type", "application/x-www-form-urlencoded")];
        headers.extend_from_slice(extra);
        let r = Client::new(self.port).request(
            "POST",
            "/token",
            &headers,
            format!("grant_type=client_credentials&resource={resource}&scope={scope}").as_bytes(),
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
