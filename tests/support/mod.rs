//! Test harness: a real Envoy with the freshly built module, an upstream that records what
//! reaches it, and a raw HTTP/1.1 client that can send anything (chunked bodies, garbage).
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod envoy;
pub mod idp;
pub mod jwks_server;
pub mod rls;
pub mod rng;
pub mod upstream;

pub use client::{Client, Response};
pub use envoy::{Envoy, EnvoyOptions};
pub use rng::Rng;
pub use upstream::{Recorded, Upstream};

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A JSON fixture, by path under `tests/fixtures`.
pub fn fixture(path: &str) -> serde_json::Value {
    let bytes = std::fs::read(repo_root().join("tests/fixtures").join(path)).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A token minted into `tests/fixtures/jwt/tokens.json`, by name.
pub fn token(name: &str) -> String {
    fixture("jwt/tokens.json")[name].as_str().unwrap().to_string()
}

/// A recording upstream, an Envoy with the module in front of it, and a client of that Envoy:
/// what most integration tests start with.
pub struct Gateway {
    pub upstream: Upstream,
    pub envoy: Envoy,
    pub client: Client,
}

impl Gateway {
    /// Starts one with `config` as the policy.
    pub fn start(config: &str) -> Gateway {
        Gateway::start_with(config, EnvoyOptions::default())
    }

    /// Starts one with `config` and Envoy options.
    pub fn start_with(config: &str, opts: EnvoyOptions) -> Gateway {
        let upstream = Upstream::start();
        let envoy = Envoy::start_with(config, upstream.port, opts).unwrap_or_else(|log| panic!("{log}"));
        let client = Client::new(envoy.port);
        Gateway { upstream, envoy, client }
    }
}

/// `Bearer <token>` for a token minted into `tests/fixtures/jwt/tokens.json`.
pub fn bearer(name: &str) -> String {
    format!("Bearer {}", fixture("jwt/tokens.json")[name].as_str().unwrap())
}

/// A `jwt` section with one RS256 provider (the fixture keys, issuer `https://issuer.test`,
/// audience `api://orders`) required by default.
pub fn jwt_rs256_required() -> serde_json::Value {
    serde_json::json!({
        "providers": {"idp": {"issuer": "https://issuer.test", "audiences": ["api://orders"],
                              "algorithms": ["RS256"], "local_jwks": fixture("jwt/jwks.json")}},
        "default": {"type": "jwt", "providers": ["idp"]}
    })
}

/// An RS256 token for the fixture issuer (`iss` `https://issuer.test`, `aud` `api://orders`,
/// a far `exp`) with `claims` added or replacing those, signed with the fixture key `rsa-1`
/// by the `rsa` crate (an RSA implementation the module does not use).
pub fn rs256_token(claims: serde_json::Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use rsa::pkcs1v15::SigningKey;
    use rsa::signature::{SignatureEncoding, Signer};
    use rsa::{BigUint, RsaPrivateKey};
    let keys = fixture("jwt/keys.private.json");
    let k = &keys["rsa-1"];
    let int = |name: &str| BigUint::from_bytes_be(&B64.decode(k[name].as_str().unwrap()).unwrap());
    let key = RsaPrivateKey::from_components(int("n"), int("e"), int("d"), vec![int("p"), int("q")]).unwrap();
    let mut payload =
        serde_json::json!({"iss": "https://issuer.test", "aud": "api://orders", "exp": 2_001_001_001u64});
    for (n, v) in claims.as_object().unwrap() {
        payload[n] = v.clone();
    }
    let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "rsa-1"});
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()));
    let sig = SigningKey::<rsa::sha2::Sha256>::new(key).sign(input.as_bytes()).to_vec();
    format!("{input}.{}", B64.encode(sig))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port that was free a moment ago on 127.0.0.1. Another process may take it before the
/// caller binds it: prefer letting the server bind port 0 and asking it which port it got
/// (as [`Envoy`] does); a caller that must name a port up front retries on a failed bind.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A new, empty directory under the system's temp dir that no other test, thread or process
/// uses: named by `prefix`, the process id and a per-process counter, and made with
/// `create_dir` (which fails if the name exists, so a stale directory from an earlier run
/// with the same process id is skipped, never shared).
pub fn unique_dir(prefix: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("api-guard-{prefix}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}

/// A helper process (a test upstream written in another language), killed on drop.
pub struct Helper {
    pub child: Child,
    /// The port it listens on, as it printed it.
    pub port: u16,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd`, which binds a port of its own and prints it on its first line of stdout
/// after `prefix` (nothing picks a port for another process to bind).
pub fn start_helper(name: &str, cmd: &mut Command, prefix: &str) -> Helper {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().strip_prefix(prefix).and_then(|p| p.parse().ok());
    let port = port.unwrap_or_else(|| panic!("{name} did not start: {line:?}"));
    Helper { child, port }
}
