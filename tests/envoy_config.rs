//! The shipped Envoy configuration is a tested artefact: `envoy --mode validate` accepts it
//! (which loads the module and runs its configuration check), it carries the example policy
//! verbatim, and the same file with a broken policy is refused with the field named.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::process::Command;

use support::envoy::envoy_bin;
use support::repo_root;

/// The JSON held in the `value: |` block scalar of envoy.yaml.
fn embedded_policy(yaml: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| !l.trim_end().ends_with("value: |")).skip(1);
    let first = lines.next().expect("no `value: |` block in envoy.yaml");
    let indent = first.len() - first.trim_start().len();
    let mut out = vec![first[indent..].to_string()];
    for l in lines {
        if l.len() - l.trim_start().len() < indent && !l.trim().is_empty() {
            break;
        }
        out.push(l.get(indent..).unwrap_or("").to_string());
    }
    out.join("\n")
}

fn validate(yaml_path: &std::path::Path) -> (bool, String) {
    let out = Command::new(envoy_bin())
        .current_dir(repo_root())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(yaml_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn shipped_envoy_yaml_validates_and_carries_the_example_policy() {
    support::envoy::wasm_path();
    let path = repo_root().join("envoy-config/envoy.yaml");
    let (ok, log) = validate(&path);
    assert!(ok, "envoy --mode validate refused envoy-config/envoy.yaml:\n{log}");
    assert!(log.contains("api-guard: configuration loaded (4 routes, 6 documented operations"), "{log}");

    let yaml = std::fs::read_to_string(&path).unwrap();
    let embedded: serde_json::Value = serde_json::from_str(&embedded_policy(&yaml)).unwrap();
    let mut example: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("examples/policy.json")).unwrap()).unwrap();
    example.as_object_mut().unwrap().remove("$schema");
    assert_eq!(embedded, example, "envoy-config/envoy.yaml and examples/policy.json differ");
}

#[test]
fn a_broken_policy_fails_validation_with_the_field_named() {
    support::envoy::wasm_path();
    let yaml = std::fs::read_to_string(repo_root().join("envoy-config/envoy.yaml")).unwrap();
    let broken = yaml.replacen("\"max_body_bytes\": 4096", "\"max_body_bytes\": \"4k\"", 1);
    assert_ne!(broken, yaml);
    let path = std::env::temp_dir().join(format!("api-guard-broken-{}.yaml", std::process::id()));
    std::fs::write(&path, broken).unwrap();
    let (ok, log) = validate(&path);
    std::fs::remove_file(&path).ok();
    assert!(!ok, "a broken policy passed validation");
    assert!(log.contains("invalid api-guard configuration at `routes[1].limits.max_body_bytes`"), "{log}");
}

/// The capability seam decides what a host can enforce. Run in Envoy with the APISIX profile
/// (`host.kind`), a policy that needs response bodies rewritten is refused at load, naming the
/// field, instead of forwarding unredacted data; the same policy loads with the Envoy profile.
#[test]
fn a_host_that_cannot_rewrite_bodies_refuses_response_rewrites() {
    let upstream = support::Upstream::start();
    let rules = serde_json::json!({"rules": [{"select": ["$..password"], "action": {"type": "remove"}}]});
    for (policy, field) in [
        (serde_json::json!({"host": {"kind": "apisix"}, "response": rules}), "response.rules"),
        (
            serde_json::json!({"host": {"kind": "apisix"}, "openapi": {"document": support::fixture("openapi/petstore.json"), "response_allowlist": true}}),
            "openapi.response_allowlist",
        ),
    ] {
        let log = match support::Envoy::start_with(&policy.to_string(), upstream.port, Default::default()) {
            Ok(_) => panic!("the APISIX profile accepted {field}"),
            Err(log) => log,
        };
        assert!(
            log.contains(&format!("invalid api-guard configuration at `{field}`: this host (APISIX) cannot rewrite response bodies")),
            "{log}"
        );
    }
    let envoy = support::Envoy::start(
        &serde_json::json!({"host": {"kind": "envoy"}, "response": rules}).to_string(),
        upstream.port,
    );
    let r = support::Client::new(envoy.port).request(
        "POST",
        "/x",
        &[("content-type", "application/json"), ("x-test-echo", "1")],
        br#"{"password":"p","a":1}"#,
    );
    assert_eq!(r.text(), r#"{"a":1}"#);
}

/// Every Envoy bootstrap shipped in envoy-config/ (remote JWKS with its cluster, per-listener
/// policies sharing a VM, ...) passes `envoy --mode validate`, which loads the module and
/// compiles each embedded policy.
#[test]
fn every_shipped_envoy_bootstrap_validates() {
    support::envoy::wasm_path();
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("envoy-config")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("static_resources:") {
            continue;
        }
        let (ok, log) = validate(&path);
        assert!(ok, "{} refused:\n{log}", path.display());
        let filters = text.matches("envoy.filters.http.wasm").count();
        // Envoy loads each filter's configuration twice in validate mode (once to check it,
        // once for the listener).
        assert!(
            log.matches("api-guard: configuration loaded").count() >= filters,
            "{}: not every api-guard filter loaded:\n{log}",
            path.display()
        );
        // Each carries the tag extraction that turns api-guard's metric names into labels.
        assert!(
            text.contains(&api_guard::policy::telemetry::stats_config_yaml(0)),
            "{}: no (or stale) stats_config for api-guard's labels",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} bootstraps found");
}

/// The JSON block that follows `key:` in a manifest (written as JSON, which YAML accepts).
fn json_block(yaml: &str, key: &str) -> serde_json::Value {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != key);
    let head = lines.next().unwrap_or_else(|| panic!("no `{key}` block"));
    let indent = head.len() - head.trim_start().len();
    let block: Vec<&str> =
        lines.take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent).collect();
    serde_json::from_str(&block.join("\n")).unwrap()
}

/// The Istio and Envoy Gateway manifests carry a configuration api-guard accepts, and pull the
/// image `make oci` builds for this version: the lean module's, since their policies have no
/// `openapi` section.
#[test]
fn kubernetes_manifests_carry_valid_policies_and_this_version() {
    let version = env!("CARGO_PKG_VERSION");
    for (file, key, image) in [
        ("istio-wasmplugin.yaml", "pluginConfig:", format!("oci://registry.example.com/api-guard:{version}")),
        ("envoy-gateway.yaml", "config:", format!("registry.example.com/api-guard:{version}")),
    ] {
        let yaml = std::fs::read_to_string(repo_root().join("envoy-config").join(file)).unwrap();
        let policy = json_block(&yaml, key);
        let doc = api_guard::policy::config::parse_document(policy.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        api_guard::policy::Policy::compile(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(policy.get("openapi").is_none(), "{file}: the lean module would refuse its policy");
        let image = format!("{image}-lean");
        assert!(yaml.contains(&format!("url: {image}\n")), "{file} does not pull {image}");
    }
    // Istio: a remote key set's `outbound|443||host` cluster needs the host registered and
    // TLS originated to it, or every JWT route fails closed as pasted.
    let istio = std::fs::read_to_string(repo_root().join("envoy-config/istio-wasmplugin.yaml")).unwrap();
    for needed in
        ["kind: ServiceEntry", "hosts: [\"idp.example.com\"]", "kind: DestinationRule", "mode: SIMPLE"]
    {
        assert!(istio.contains(needed), "istio-wasmplugin.yaml lacks `{needed}`");
    }
}
