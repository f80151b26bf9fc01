//! `api-guard render`: a host configuration with a policy embedded, escaped the way that host
//! reads it. The policy is checked for that host first (as `check` does); a policy the module
//! would refuse there is not rendered.
//!
//! The shipped `envoy-config/envoy.yaml`, `remote-jwks.yaml`, `istio-wasmplugin.yaml`,
//! `envoy-gateway.yaml` and `examples/apisix/route.json` are this command's output for the
//! policy they carry (a test renders each again and compares).

use api_guard::policy::capabilities::HostKind;
use api_guard::policy::jwt::ProviderKeys;
use api_guard::policy::load;
use api_guard::policy::telemetry;
use api_guard::policy::Policy;
use serde_json::Value;

use crate::{source, usage, Exit};

const USAGE: &str = "usage: api-guard render envoy|istio|envoy-gateway|kong|apisix POLICY [--module PATH] [--image REF] [--upstream HOST:PORT]";

/// Where the module is, and what the gateway forwards to.
pub struct Options {
    /// The module file (Envoy's `vm_config.code.local.filename`, APISIX's `file`).
    pub module: String,
    /// The OCI image (Istio, Envoy Gateway).
    pub image: Option<String>,
    /// The upstream `host:port`.
    pub upstream: String,
}

/// Runs `render` with its arguments.
pub fn run(args: &[String]) -> Exit {
    let mut positional = Vec::new();
    let mut options = Options {
        module: "target/wasm32-wasip1/release/api_guard.wasm".into(),
        image: None,
        upstream: "127.0.0.1:10001".into(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let slot = match arg.as_str() {
            "--module" => &mut options.module,
            "--upstream" => &mut options.upstream,
            "--image" => options.image.get_or_insert_with(String::new),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Exit::Ok;
            }
            a if a.starts_with('-') => return usage(USAGE, &format!("unknown option `{a}`")),
            a => {
                positional.push(a.to_string());
                continue;
            }
        };
        match it.next() {
            Some(v) => *slot = v.clone(),
            None => return usage(USAGE, &format!("{arg} takes a value")),
        }
    }
    let [target, file] = positional.as_slice() else { return usage(USAGE, "give a target and a policy") };
    let host = match target.as_str() {
        "envoy" | "istio" | "envoy-gateway" => HostKind::Envoy,
        "kong" => HostKind::Kong,
        "apisix" => HostKind::Apisix,
        t => return usage(USAGE, &format!("unknown target `{t}`")),
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return usage(USAGE, &format!("cannot read {file}: {e}")),
    };
    let policy = match policy_of(&text, host) {
        Ok(p) => p,
        Err(problem) => {
            println!("{file}: error: {problem}");
            return Exit::Refused;
        }
    };
    let (policy, keys) = policy;
    print!("{}", render(target, &policy, &keys, &options));
    Exit::Ok
}

/// The one policy in `text` (a policy file, or a host file that carries one), checked for
/// `host`, with `host.kind` set where the host does not identify itself; and the endpoints of
/// its remote key sets, read off the compiled policy.
pub fn policy_of(text: &str, host: HostKind) -> Result<(Value, Vec<KeyHost>), String> {
    let found =
        source::policies(text).map_err(|e| format!("line {}: not YAML or JSON: {}", e.line, e.message))?;
    let [one] = found.as_slice() else {
        return Err(format!("{} policies here; render takes one", found.len()));
    };
    let mut policy: Value = if one.bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&one.bytes)
            .map_err(|e| format!("not valid JSON: {e} (run `api-guard check`)"))?
    };
    // `$schema` is for editors; a gateway's copy does without it.
    if let Some(p) = policy.as_object_mut() {
        p.remove("$schema");
    }
    let kind = match host {
        HostKind::Kong => Some("kong"),
        HostKind::Apisix => Some("apisix"),
        _ => None,
    };
    if let (Some(kind), Some(p)) = (kind, policy.as_object_mut()) {
        let h = p.entry("host").or_insert_with(|| Value::Object(Default::default()));
        if let Some(h) = h.as_object_mut() {
            h.entry("kind").or_insert_with(|| Value::String(kind.into()));
        }
    }
    let loaded = load::load(policy.to_string().as_bytes(), || host)
        .map_err(|e| format!("{}: {} (run `api-guard check`)", e.path, e.message))?;
    if loaded.caps.kind != host {
        return Err(format!("`host.kind` names {}, not {}", loaded.caps.kind.name(), host.name()));
    }
    Ok((policy, key_hosts(&loaded.policy)))
}

/// The rendered file for `target`.
pub fn render(target: &str, policy: &Value, keys: &[KeyHost], o: &Options) -> String {
    match target {
        "envoy" => envoy(policy, keys, o),
        "istio" => istio(policy, keys, o),
        "envoy-gateway" => envoy_gateway(policy, o),
        "kong" => kong(policy, o),
        _ => apisix(policy, o),
    }
}

/// `value` as JSON laid out for reading, every line but the first indented by `n` spaces: an
/// array or object that fits on its line stays on it, anything longer opens one member per line.
fn indented(value: &Value, n: usize) -> String {
    let mut out = String::new();
    layout(value, n, n, &mut out);
    out
}

/// The widest line a rendered policy gets, indentation included.
const WIDTH: usize = 100;

fn layout(value: &Value, indent: usize, column: usize, out: &mut String) {
    let flat = flat(value);
    let members: Vec<(Option<&String>, &Value)> = match value {
        Value::Array(items) if !items.is_empty() => items.iter().map(|v| (None, v)).collect(),
        Value::Object(map) if !map.is_empty() => map.iter().map(|(k, v)| (Some(k), v)).collect(),
        _ => Vec::new(),
    };
    if members.is_empty() || column + flat.len() <= WIDTH {
        out.push_str(&flat);
        return;
    }
    let (open, close) = if value.is_array() { ('[', ']') } else { ('{', '}') };
    let pad = " ".repeat(indent + 2);
    out.push(open);
    for (i, (key, v)) in members.iter().enumerate() {
        out.push('\n');
        out.push_str(&pad);
        let mut at = indent + 2;
        if let Some(k) = key {
            let k = format!("{}: ", Value::String((*k).clone()));
            at += k.len();
            out.push_str(&k);
        }
        layout(v, indent + 2, at, out);
        if i + 1 < members.len() {
            out.push(',');
        }
    }
    out.push('\n');
    out.push_str(&" ".repeat(indent));
    out.push(close);
}

/// One-line JSON with a space after `,` and `:`.
fn flat(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(flat).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), flat(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        v => v.to_string(),
    }
}

/// A remote key set's endpoint: cluster name, host, port, TLS.
pub struct KeyHost {
    cluster: String,
    host: String,
    port: u16,
    tls: bool,
}

fn key_hosts(policy: &Policy) -> Vec<KeyHost> {
    let mut hosts: Vec<KeyHost> = Vec::new();
    for p in policy.jwt.iter().flat_map(|j| j.providers.iter()) {
        let ProviderKeys::Remote(spec) = &p.keys else { continue };
        let (host, port) = spec.host_port.rsplit_once(':').unwrap_or((&spec.host_port, "443"));
        let cluster = spec.cluster.clone().unwrap_or_else(|| spec.host_port.clone());
        if hosts.iter().any(|h| h.cluster == cluster) {
            continue;
        }
        hosts.push(KeyHost {
            cluster,
            host: host.trim_matches(['[', ']']).to_string(),
            port: port.parse().unwrap_or(443),
            tls: spec.scheme == "https",
        });
    }
    hosts
}

fn split_host_port(upstream: &str) -> (&str, &str) {
    upstream.rsplit_once(':').unwrap_or((upstream, "80"))
}

fn envoy(policy: &Value, keys: &[KeyHost], o: &Options) -> String {
    let (up_host, up_port) = split_host_port(&o.upstream);
    let mut clusters = format!(
        "  - name: backend
    connect_timeout: 2s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: {up_host}, port_value: {up_port} }} }} }}
"
    );
    for k in keys {
        let is_ip = k.host.parse::<std::net::IpAddr>().is_ok();
        clusters.push_str(&format!(
            "  - name: {name}
    type: {kind}
    connect_timeout: 2s
    dns_lookup_family: V4_ONLY
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }}
",
            name = yaml_str(&k.cluster),
            kind = if is_ip { "STATIC" } else { "STRICT_DNS" },
            host = k.host,
            port = k.port
        ));
        if k.tls {
            clusters.push_str(&format!(
                "    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: {host}
        common_tls_context:
          validation_context:
            trusted_ca: {{ filename: /etc/ssl/certs/ca-certificates.crt }}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{ exact: {host} }}
",
                host = k.host
            ));
        }
    }
    let key_lines: String = keys
        .iter()
        .map(|k| {
            format!(
                "#   cluster   {:<16} a key-set endpoint ({}:{}{})\n",
                k.cluster,
                k.host,
                k.port,
                if k.tls { ", TLS" } else { "" }
            )
        })
        .collect();
    format!(
        "# api-guard in front of one upstream (rendered by `api-guard render envoy`).
#   listener  127.0.0.1:10000  the API, through api-guard
#   admin     127.0.0.1:9901   /stats, /stats/prometheus, /ready
#   cluster   backend          the upstream, {upstream}
{key_lines}# The module path is relative to where Envoy starts (`make wasm` builds it).
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9901 }} }}
# api-guard writes its labels into its metric names; these rules turn them back into labels
# (`api_guard_requests_total{{decision=\"denied\",reason=\"token_invalid\",...}}`).
{stats}static_resources:
  listeners:
  - name: api
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    # Must be at least the largest max_body_bytes: a chunked body is buffered while it is counted.
    per_connection_buffer_limit_bytes: 2097152
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: api
          # An edge: the client is the connection's peer, whatever x-forwarded-for says (behind
          # N proxies of your own, add xff_num_trusted_hops: N). api-guard's per-client
          # accounting uses the address Envoy computes here.
          use_remote_address: true
          # The path api-guard judges is the path the upstream gets.
          normalize_path: true
          merge_slashes: true
          route_config:
            virtual_hosts:
            - name: api
              domains: [\"*\"]
              routes:
              - match: {{ prefix: \"/\" }}
                route: {{ cluster: backend }}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: api_guard
                # A module that cannot start or traps fails requests closed (503).
                failure_policy: FAIL_CLOSED
                # Lets api-guard hold request headers while it judges a body, so a refused body
                # never reaches the upstream.
                allow_on_headers_stop_iteration: true
                configuration:
                  \"@type\": type.googleapis.com/google.protobuf.StringValue
                  value: |
                    {policy}
                vm_config:
                  vm_id: api_guard
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local:
                      filename: {module}
          - name: envoy.filters.http.router
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{clusters}",
        upstream = o.upstream,
        stats = telemetry::stats_config_yaml(0),
        policy = indented(policy, 20),
        module = o.module,
    )
}

/// The image to pull: `--image`, else this version's tag, the lean module's (`-lean`) when the
/// policy has no `openapi` section (it starts faster and loads any such policy).
fn image(o: &Options, prefix: &str, policy: &Value) -> String {
    let lean = if policy.get("openapi").is_none_or(Value::is_null) { "-lean" } else { "" };
    o.image.clone().unwrap_or_else(|| {
        format!("{prefix}registry.example.com/api-guard:{}{lean}", env!("CARGO_PKG_VERSION"))
    })
}

fn istio(policy: &Value, keys: &[KeyHost], o: &Options) -> String {
    let mut out = format!(
        "# Istio: api-guard on the ingress gateway, pulled by istio-agent from an OCI registry
# (rendered by `api-guard render istio`). `make oci-push REGISTRY=...` publishes the image; pin
# it by digest (`url: oci://…@sha256:…`, printed by `make oci`) in production. Istio passes
# pluginConfig to the module as JSON.
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: api-guard
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  url: {url}
  imagePullPolicy: IfNotPresent
  phase: AUTHN
  failStrategy: FAIL_CLOSE
  pluginConfig:
    {policy}
",
        url = image(o, "oci://", policy),
        policy = indented(policy, 4)
    );
    // A key set's `outbound|port||host` cluster exists only for a host the mesh knows, and TLS
    // to it must be originated.
    for k in keys {
        let name = k.host.replace('.', "-");
        out.push_str(&format!(
            "---
# The key-set host `{host}` (cluster `outbound|{port}||{host}`) registered with the mesh...
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: istio-system
spec:
  hosts: [\"{host}\"]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
    - number: {port}
      name: {proto_lower}
      protocol: {proto}
",
            host = k.host,
            port = k.port,
            proto = if k.tls { "HTTPS" } else { "HTTP" },
            proto_lower = if k.tls { "https" } else { "http" },
        ));
        if k.tls {
            out.push_str(&format!(
                "---
# ...and TLS originated to it: without this the fetch goes out as plaintext to port {port}.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {name}
  namespace: istio-system
spec:
  host: {host}
  trafficPolicy:
    tls:
      mode: SIMPLE
      sni: {host}
",
                host = k.host,
                port = k.port
            ));
        }
    }
    out
}

fn envoy_gateway(policy: &Value, o: &Options) -> String {
    format!(
        "# Envoy Gateway: api-guard on an HTTPRoute, from an OCI image (rendered by
# `api-guard render envoy-gateway`). Envoy Gateway pulls the image, serves the module to Envoy
# (V8, sha256-checked) and passes `config` to the module as JSON text. Pin the image by digest
# in production. A remote key set goes through the Envoy cluster Envoy Gateway made for a
# Backend: name it in `http_uri.cluster`.
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyExtensionPolicy
metadata:
  name: api-guard
  namespace: default
spec:
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: api
  wasm:
  - name: api-guard
    code:
      type: Image
      image:
        url: {url}
      pullPolicy: IfNotPresent
    failOpen: false
    config:
      {policy}
",
        url = image(o, "", policy),
        policy = indented(policy, 6)
    )
}

fn kong(policy: &Value, o: &Options) -> String {
    format!(
        "# Declarative Kong configuration (Kong 3.6+ with `wasm = on`; rendered by
# `api-guard render kong`). api-guard runs as the route's filter chain; Kong checks `config`
# against api_guard.meta.json and hands it to the module as JSON text. Kong runs a service's
# chain and then its route's on the same request: keep one chain per request path.
_format_version: \"3.0\"
services:
  - name: api
    url: http://{upstream}
    routes:
      - name: api
        paths: [\"/\"]
        filter_chains:
          - name: api-guard
            filters:
              - name: api_guard
                config:
                  {policy}
",
        upstream = o.upstream,
        policy = indented(policy, 18)
    )
}

fn apisix(policy: &Value, o: &Options) -> String {
    let route = serde_json::json!({
        "uri": "/*",
        "plugins": {"api_guard": {"conf": policy}},
        "upstream": {"type": "roundrobin", "nodes": {o.upstream.clone(): 1}},
    });
    format!("{}\n", indented(&route, 0))
}

/// A YAML scalar for a cluster name (`outbound|443||host` needs quotes).
fn yaml_str(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}
