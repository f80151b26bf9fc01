//! Certificate-bound access tokens (RFC 8705 §3) through the real Envoy 1.40 with the built
//! module, on a TLS listener that asks for (but does not require) client certificates. The CA
//! and the client certificates are made here by `openssl`, and each token's
//! `cnf.x5t#S256` is the SHA-256 of its client certificate's DER as `openssl dgst` computes
//! it, not the module's hash. Requests are sent by `curl` over TLS: a bound token passes only
//! on a connection with its own certificate; with another one, with none, or (on a provider
//! that requires binding) an unbound token, it is refused as `invalid_token` with its own
//! cause, and the recording upstream sees none of them. The real OpenID provider
//! (`oidc-provider` with its `mTLS.certificateBoundAccessTokens` feature) binds tokens too,
//! computing the thumbprint itself.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::json;
use support::{Envoy, EnvoyOptions, Upstream};

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A CA, a server certificate and two client certificates (`alice`, `bob`) in `dir`.
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=api-guard test CA", "-days", "2"]);
    openssl(dir, &ca);
    for name in ["server", "alice", "bob"] {
        let (key, csr, pem, subj) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("/CN={name}"));
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
            ],
        );
    }
}

/// `cnf.x5t#S256` of a certificate: base64url of the SHA-256 of its DER (RFC 8705 §3.1).
fn thumbprint(dir: &Path, pem: &str) -> String {
    openssl(dir, &["x509", "-in", pem, "-outform", "DER", "-out", &format!("{pem}.der")]);
    let digest = openssl(dir, &["dgst", "-sha256", "-binary", &format!("{pem}.der")]);
    assert_eq!(digest.len(), 32);
    B64.encode(digest)
}

/// An Envoy with `config`, its listener on TLS (client certificates asked for, checked
/// against the test CA, not required).
fn tls_envoy(dir: &Path, upstream: u16, config: &str, opts: EnvoyOptions) -> Envoy {
    let file = |n: &str| support::envoy::yaml_string(&dir.join(n).display().to_string());
    let tls = format!(
        "    filter_chains:\n    - transport_socket:\n        name: envoy.transport_sockets.tls\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n          require_client_certificate: false\n          common_tls_context:\n            tls_certificates: [{{ certificate_chain: {{ filename: {} }}, private_key: {{ filename: {} }} }}]\n            validation_context: {{ trusted_ca: {{ filename: {} }} }}\n      filters:\n",
        file("server.pem"),
        file("server.key"),
        file("ca.pem")
    );
    let yaml = support::envoy::bootstrap(upstream, config, &opts);
    assert!(yaml.contains("    filter_chains:\n    - filters:\n"));
    let yaml = yaml.replacen("    filter_chains:\n    - filters:\n", &tls, 1);
    Envoy::start_yaml(&yaml, &opts).unwrap_or_else(|log| panic!("{log}"))
}

/// `GET path` over TLS with `token`, presenting `cert` (a name in `dir`) or no certificate;
/// the status and the body.
fn curl(dir: &Path, port: u16, path: &str, token: &str, cert: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.current_dir(dir)
        .args(["-sk", "-o", "-", "-w", "\n%{http_code}", "-H"])
        .arg(format!("authorization: Bearer {token}"));
    if let Some(c) = cert {
        cmd.args(["--cert", &format!("{c}.pem"), "--key", &format!("{c}.key")]);
    }
    cmd.arg(format!("https://127.0.0.1:{port}{path}"));
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap_or_else(|_| panic!("curl: {text} {}", String::from_utf8_lossy(&out.stderr))),
        body.to_string(),
    )
}

fn dir() -> PathBuf {
    let d = support::unique_dir("mtls");
    certificates(&d);
    d
}

#[test]
fn a_bound_token_passes_only_with_its_own_certificate() {
    let d = dir();
    let alice = thumbprint(&d, "alice.pem");
    let mut jwt = support::jwt_rs256_required();
    jwt["providers"]["strict"] = jwt["providers"]["idp"].clone();
    jwt["providers"]["strict"]["issuer"] = json!("https://strict.test");
    jwt["providers"]["strict"]["require_certificate_bound"] = json!(true);
    jwt["default"]["providers"] = json!(["idp", "strict"]);
    let upstream = Upstream::start();
    let envoy = tls_envoy(&d, upstream.port, &json!({"jwt": jwt}).to_string(), EnvoyOptions::default());
    let bound = support::rs256_token(json!({"sub": "alice", "cnf": {"x5t#S256": alice}}));
    let unbound = support::rs256_token(json!({"sub": "carol"}));

    assert_eq!(curl(&d, envoy.port, "/bound/alice", &bound, Some("alice")).0, 200);
    assert_eq!(upstream.seen_path("/bound/alice").len(), 1);
    for (path, cert, cause) in
        [("/bound/bob", Some("bob"), "certificate_mismatch"), ("/bound/none", None, "no_client_certificate")]
    {
        let (status, body) = curl(&d, envoy.port, path, &bound, cert);
        assert_eq!(status, 401, "{path}: {body}");
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["type"], "urn:api-guard:problem:token-invalid");
        assert!(upstream.seen_path(path).is_empty(), "{path} reached the upstream");
        let refused =
            envoy.series(support::envoy::REQUESTS, &[("reason", "token_invalid"), ("cause", cause)]);
        assert_eq!(refused, 1, "{cause}");
    }
    // An unbound token still passes where binding is not required, with or without a certificate.
    assert_eq!(curl(&d, envoy.port, "/unbound/1", &unbound, Some("bob")).0, 200);
    assert_eq!(curl(&d, envoy.port, "/unbound/2", &unbound, None).0, 200);
    // A provider that requires binding refuses it.
    let strict = support::rs256_token(json!({"iss": "https://strict.test", "sub": "dave"}));
    assert_eq!(curl(&d, envoy.port, "/strict/1", &strict, Some("alice")).0, 401);
    assert_eq!(
        envoy.series(
            support::envoy::REQUESTS,
            &[("reason", "token_invalid"), ("cause", "not_certificate_bound")]
        ),
        1
    );
    let strict_bound = support::rs256_token(
        json!({"iss": "https://strict.test", "sub": "dave", "cnf": {"x5t#S256": alice}}),
    );
    assert_eq!(curl(&d, envoy.port, "/strict/2", &strict_bound, Some("alice")).0, 200);
}

#[test]
fn tokens_the_openid_provider_bound_to_a_certificate_pass_only_with_it() {
    let d = dir();
    let idp = support::idp::Idp::start(0, &["rsa-1"]);
    let issuer = format!("http://127.0.0.1:{}", idp.port);
    let config = json!({"jwt": {
        "providers": {"oidc": {
            "issuer": issuer, "audiences": ["api://orders"], "algorithms": ["RS256"], "token_type": "at+jwt",
            "remote_jwks": {"http_uri": {"uri": format!("{issuer}/jwks"), "cluster": "idp", "timeout_ms": 2000}},
            "require_certificate_bound": true
        }},
        "default": {"type": "jwt", "providers": ["oidc"], "scopes": ["orders:read"]}
    }})
    .to_string();
    let upstream = Upstream::start();
    let opts = EnvoyOptions { clusters: vec![("idp".into(), idp.port)], ..EnvoyOptions::default() };
    let envoy = tls_envoy(&d, upstream.port, &config, opts);
    let pem = std::fs::read_to_string(d.join("alice.pem")).unwrap();
    let bound = idp.bound_token("orders:read", &pem);
    // The provider's thumbprint is the one openssl computes for the certificate.
    let payload: serde_json::Value =
        serde_json::from_slice(&B64.decode(bound.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(payload["cnf"]["x5t#S256"], thumbprint(&d, "alice.pem"));
    assert_eq!(curl(&d, envoy.port, "/idp/alice", &bound, Some("alice")).0, 200);
    assert_eq!(curl(&d, envoy.port, "/idp/bob", &bound, Some("bob")).0, 401);
    assert_eq!(curl(&d, envoy.port, "/idp/none", &bound, None).0, 401);
    // The same provider's unbound tokens are refused: this provider requires binding.
    assert_eq!(curl(&d, envoy.port, "/idp/unbound", &idp.token("orders:read"), Some("alice")).0, 401);
    assert_eq!(upstream.requests().len(), 1, "only the bound token with its certificate went through");
}
