//! RFC 9728 protected-resource metadata through the real Envoy 1.40 with the built module,
//! read the way an MCP client reads it: the MCP TypeScript SDK (npm
//! `@modelcontextprotocol/sdk`, `tests/mcp`) makes the first request without a token, takes
//! `resource_metadata` from the 401's challenge, then loads and validates the document with
//! its own schema, from that URL and by its path-aware well-known lookup. The document is
//! answered by the module itself: the recording upstream never sees it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::json;
use support::{Envoy, EnvoyOptions, Gateway, Upstream};

const RESOURCE: &str = "https://api.example.test/v1";
const DOCUMENT: &str = "/.well-known/oauth-protected-resource/v1";

fn policy() -> String {
    let mut jwt = support::jwt_rs256_required();
    jwt["default"]["scopes"] = json!(["orders:read"]);
    json!({
        "jwt": jwt,
        "protected_resource": {"resource": RESOURCE, "resource_name": "Orders API"},
        "routes": [{"name": "admin", "match": {"prefix": "/v1/admin"},
                    "auth": {"type": "jwt", "providers": ["idp"], "scopes": ["orders:admin"]}}]
    })
    .to_string()
}

#[test]
fn an_mcp_client_finds_the_authorization_server_from_the_first_401() {
    let gw = Gateway::start(&policy());
    let script = support::repo_root().join("tests/mcp/discover.mjs");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(gw.envoy.port.to_string())
        .arg(RESOURCE)
        .arg("/v1/orders")
        .output()
        .expect("node runs (make mcp-client)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["status"], 401);
    assert_eq!(seen["resource_metadata_url"], format!("https://api.example.test{DOCUMENT}"));
    let doc = &seen["metadata"];
    assert_eq!(doc["resource"], RESOURCE);
    assert_eq!(doc["authorization_servers"], json!(["https://issuer.test"]));
    assert_eq!(doc["scopes_supported"], json!(["orders:read", "orders:admin"]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert_eq!(doc["resource_name"], "Orders API");
    // The SDK's own well-known lookup, from the resource URL alone, finds the same document.
    assert_eq!(&seen["discovered"], doc, "{seen}");
    assert!(gw.upstream.seen_path("/.well-known").is_empty(), "the document was forwarded");

    // Answered without a token, for GET and HEAD only; other methods are judged as usual.
    let get = gw.client.request("GET", DOCUMENT, &[], b"");
    assert_eq!((get.status, get.header("content-type")), (200, Some("application/json")));
    assert_eq!(get.json(), *doc);
    let head = gw.client.request("HEAD", DOCUMENT, &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        gw.client.request("POST", DOCUMENT, &[("content-type", "application/json")], b"{}").status,
        401
    );
    // Every Bearer challenge names it, insufficient scope too.
    let scoped = gw.client.request("GET", "/v1/admin", &[("authorization", &support::bearer("rs256"))], b"");
    assert_eq!(scoped.status, 403);
    let www = scoped.header("www-authenticate").unwrap();
    assert!(
        www.contains("error=\"insufficient_scope\"")
            && www.contains(&format!("resource_metadata=\"https://api.example.test{DOCUMENT}\"")),
        "{www}"
    );
}

#[test]
fn a_resource_that_is_not_an_https_url_is_refused_at_load_with_the_field() {
    let config = json!({"protected_resource": {"resource": "http://api.example.test"}}).to_string();
    let upstream = Upstream::start();
    let log = match Envoy::start_with(&config, upstream.port, EnvoyOptions::default()) {
        Ok(_) => panic!("Envoy accepted an http resource"),
        Err(log) => log,
    };
    assert!(log.contains("protected_resource.resource") && log.contains("https URL"), "{log}");
}
