//! The shipped Kong files, read the way Kong reads them: every kong.conf property is one Kong
//! injects into a block where the directive exists, and no request runs two api-guard
//! policies (Kong runs a service's filter chain and then its route's, and a plugin as well).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

fn read(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kong-config").join(name)).unwrap()
}

/// ngx_wasm_module's directives by context (its docs/DIRECTIVES.md), and the nginx core ones
/// the file sets. Kong writes `nginx_wasm_<d>` into `wasm{}` and `nginx_http_<d>` into `http{}`.
const WASM_BLOCK: &[&str] = &[
    "compiler",
    "backtraces",
    "shm_kv",
    "shm_queue",
    "resolver",
    "resolver_timeout",
    "resolver_add",
    "socket_buffer_reuse",
    "socket_buffer_size",
    "socket_connect_timeout",
    "socket_large_buffers",
    "socket_read_timeout",
    "socket_send_timeout",
    "tls_no_verify_warn",
    "tls_trusted_certificate",
    "tls_verify_cert",
    "tls_verify_host",
];
const HTTP_BLOCK: &[&str] = &[
    "proxy_wasm_isolation",
    "proxy_wasm_lua_resolver",
    "proxy_wasm_request_headers_in_access",
    "wasm_socket_buffer_reuse",
    "wasm_socket_buffer_size",
    "wasm_socket_connect_timeout",
    "wasm_socket_large_buffers",
    "wasm_socket_read_timeout",
    "wasm_socket_send_timeout",
    "wasm_response_body_buffers",
    "client_body_buffer_size",
];

#[test]
fn every_kong_conf_property_names_a_directive_at_its_level() {
    let mut seen = 0;
    for line in read("kong.conf").lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, _) = line.split_once('=').unwrap_or_else(|| panic!("not a property: {line}"));
        let key = key.trim();
        let known = match key {
            "wasm" | "wasm_filters_path" | "wasm_filters" => true,
            k => match (k.strip_prefix("nginx_wasm_"), k.strip_prefix("nginx_http_")) {
                (Some(d), _) => WASM_BLOCK.contains(&d),
                (_, Some(d)) => HTTP_BLOCK.contains(&d),
                _ => false,
            },
        };
        assert!(known, "kong.conf: `{key}` injects a directive that does not exist at that level");
        seen += 1;
    }
    assert!(seen >= 6, "{seen} properties");
}

#[test]
fn no_request_runs_two_policies() {
    let yml = read("kong.yml");
    let lines: Vec<&str> = yml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    // Service entries sit at indent 2 (`  - name:`); their own keys at 4.
    for l in &lines {
        assert!(!(l.trim() == "filter_chains:" && indent(l) == 4), "a service-level filter chain: {l}");
    }
    // Routes with a chain of their own, and routes with the plugin.
    let mut chained = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() == "filter_chains:" {
            let name = lines[..i]
                .iter()
                .rev()
                .find(|p| p.trim_start().starts_with("- name:") && indent(p) < indent(l));
            chained.push(name.unwrap().trim_start().trim_start_matches("- name:").trim().to_string());
        }
    }
    let plugin_routes: Vec<String> =
        lines.iter().filter_map(|l| l.trim().strip_prefix("route:").map(|r| r.trim().to_string())).collect();
    assert!(!plugin_routes.is_empty() && chained.len() >= 2, "{chained:?} {plugin_routes:?}");
    for r in &plugin_routes {
        assert!(!chained.contains(r), "route {r} has a filter chain and the plugin");
    }
}
