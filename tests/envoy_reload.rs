//! Configuration reloads through Envoy's listener discovery (LDS from a watched file): a broken
//! api-guard policy is refused by Envoy (the module's `on_configure` says no, naming the
//! field) and the previous policy keeps serving; a good one takes over without a restart.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::envoy::{cluster_yaml, listener_yaml, wasm_filter_yaml, wasm_path};
use support::{Client, Envoy, EnvoyOptions, Upstream};

/// The listener binds port 0 (Envoy picks a free one); a later version of it with the same
/// address keeps the socket it has, so the port stays the same across reloads.
fn listener(policy: &str) -> String {
    let filters = wasm_filter_yaml(&wasm_path().display().to_string(), policy, true);
    let entry = listener_yaml(&filters, "route: { cluster: upstream }", "");
    let typed = entry.replacen(
        "  - name: main",
        "  - \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n    name: main",
        1,
    );
    format!("resources:\n{typed}\n")
}

/// Replaces the watched file in one rename, as Envoy's file watch expects.
fn publish(dir: &Path, text: &str) {
    let tmp = dir.join("lds.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("lds.yaml")).unwrap();
}

fn stat(envoy: &Envoy, name: &str) -> u64 {
    let (_, body) = envoy.admin(&format!("/stats?filter={name}")).unwrap_or_default();
    body.lines()
        .filter_map(|l| l.split_once(": "))
        .find(|(k, _)| k.trim() == name)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_for(envoy: &Envoy, name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while stat(envoy, name) < at_least {
        assert!(Instant::now() < deadline, "{name} never reached {at_least}:\n{}", envoy.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_broken_reload_is_refused_and_the_previous_policy_keeps_serving() {
    let upstream = Upstream::start();
    let dir = support::unique_dir("lds");
    let strict = json!({"jwt": support::jwt_rs256_required()}).to_string();
    publish(&dir, &listener(&strict));
    let bootstrap = format!(
        r#"node: {{ id: api-guard-test, cluster: api-guard-test }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
dynamic_resources:
  lds_config:
    resource_api_version: V3
    path_config_source: {{ path: {lds} }}
static_resources:
  clusters:
{clusters}"#,
        lds = dir.join("lds.yaml").display(),
        clusters = cluster_yaml("upstream", upstream.port),
    );
    let envoy = Envoy::start_yaml(&bootstrap, &EnvoyOptions::default())
        .unwrap_or_else(|log| panic!("Envoy did not start:\n{log}"));
    let port = envoy.port;
    let client = Client::new(port);
    assert_eq!(client.request("GET", "/orders", &[], b"").status, 401, "the first policy is not in force");
    let ok = stat(&envoy, "listener_manager.lds.update_success");

    // A broken policy: Envoy rejects the update; the strict policy still answers.
    let broken = json!({"jwt": support::jwt_rs256_required(), "limits": {"max_body_bytez": 1}}).to_string();
    publish(&dir, &listener(&broken));
    wait_for(&envoy, "listener_manager.lds.update_rejected", 1);
    assert!(
        envoy.log().contains("invalid api-guard configuration at `limits.max_body_bytez`"),
        "the refusal does not name the field:\n{}",
        envoy.log()
    );
    for _ in 0..5 {
        assert_eq!(client.request("GET", "/orders", &[], b"").status, 401, "the broken reload took effect");
    }
    assert_eq!(
        client.request("GET", "/orders", &[("authorization", &support::bearer("rs256"))], b"").status,
        200
    );

    // A good policy takes over without a restart.
    let open = json!({"limits": {"max_body_bytes": 1024}}).to_string();
    publish(&dir, &listener(&open));
    wait_for(&envoy, "listener_manager.lds.update_success", ok + 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client.request("GET", "/orders", &[], b"");
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the new policy never served: {}", r.status);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_dir_all(&dir).ok();
}
