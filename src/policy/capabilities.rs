//! The host-capability seam: what each gateway can do, as data.
//!
//! Envoy, Kong (ngx_wasm_module) and APISIX (wasm-nginx-module) implement different parts of
//! the Proxy-Wasm ABI, and a call a host lacks may trap or return `Unimplemented`. The host
//! layer asks these flags instead of assuming, and [`super::load`] refuses at load time what a
//! host cannot enforce. The profiles live in the core so that the command line checks a policy
//! against exactly the profile the module uses; only detecting the running host is the host
//! layer's (`host::root`).

use super::config::{HostConfig, HostKindConfig};

/// Which gateway the module runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// Envoy (proxy-wasm-cpp-host).
    Envoy,
    /// Kong Gateway (ngx_wasm_module), named by the configuration.
    Kong,
    /// Apache APISIX (wasm-nginx-module), named by the configuration.
    Apisix,
    /// A host that did not identify itself; every optional capability is assumed absent.
    Unknown,
}

/// What the host can be relied on to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The detected host.
    pub kind: HostKind,
    /// `end_of_stream` on request headers is true exactly when no body follows.
    /// (ngx_wasm_module always passes false, so there it says nothing.)
    pub headers_end_of_stream: bool,
    /// Returning `Pause` from request headers holds them while body callbacks still run, so a
    /// body can be judged before anything reaches the upstream. On Envoy by default: it needs
    /// the filter's `allow_on_headers_stop_iteration: true`, without which Envoy stops body
    /// callbacks too (`host::held` detects that and fails such requests fast).
    pub hold_headers_for_body: bool,
    /// Returning `Pause` from response headers holds them until the body is rewritten, so a
    /// body that cannot be rewritten is answered with a clean 502. On Envoy (the same
    /// `allow_on_headers_stop_iteration` setting applies; `host::held` watches for it). Elsewhere
    /// response headers leave at once and a withheld body is emptied instead (Kong logs a
    /// warning for every such Pause and sends the headers anyway).
    pub pause_response_headers: bool,
    /// `on_tick` works, so key sets are refreshed in the background. Without it, they are
    /// fetched on demand by the requests that need them.
    pub timers: bool,
    /// Shared data works, so one worker's fetched key set serves the others.
    pub shared_data: bool,
    /// Response bodies can be buffered and replaced (`proxy_set_buffer_bytes`). Without it,
    /// response field rules cannot be enforced, and a configuration with rules is refused.
    pub body_rewrite: bool,
    /// Outbound calls name an upstream cluster (Envoy); elsewhere they name `host:port`.
    pub clusters: bool,
    /// gRPC callouts (`proxy_grpc_call`) work, so a rate-limit service can count global
    /// limits (Envoy). ngx_wasm_module and wasm-nginx-module have none.
    pub grpc_calls: bool,
    /// A whole header map can be replaced in one call (`proxy_set_header_map_pairs`), so many
    /// header edits cost one host call.
    pub set_header_map: bool,
    /// Request body callbacks run only after the filter asks for them by setting the
    /// `wasm_process_req_body` property during request headers (APISIX).
    pub request_body_opt_in: bool,
    /// The property holding the client's address (`ip` or `ip:port`), for the
    /// failed-verification budget; empty where none is known.
    pub client_address: &'static [&'static str],
    /// The property holding the SHA-256 of the TLS client certificate (hex), for
    /// certificate-bound tokens; empty where the host exposes none.
    pub client_certificate: &'static [&'static str],
    /// The property naming the request's downstream connection, and how its value is written;
    /// `None` where the host names none (the budget then judges the whole address).
    pub connection_id: Option<(&'static [&'static str], IdFormat)>,
    /// A `:path` set by the filter is the path sent upstream (Envoy). Elsewhere a request
    /// whose path is not in normal form is refused rather than forwarded as sent.
    pub rewrite_path: bool,
    /// A removed request header is not sent upstream. On Kong it is: ngx_wasm_module marks
    /// the header removed (`hash = 0`) but nginx's proxy module forwards every `headers_in`
    /// entry (`ngx_http_proxy_create_request`); a value set to `""` does go out as empty.
    pub remove_request_header: bool,
    /// The most response-body bytes the host buffers for the filter, where it stops short of
    /// the whole body (Kong: a further Pause is logged as an error and the data passes
    /// unchanged); `None` where a Pause buffers the whole body.
    pub response_buffer_bytes: Option<u64>,
}

/// How a host writes an integer property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdFormat {
    /// 8 bytes, little-endian (Envoy's attributes).
    U64Le,
    /// Decimal text (nginx variables).
    Decimal,
}

impl IdFormat {
    /// The integer in `raw`, if it is one.
    pub fn parse(self, raw: &[u8]) -> Option<u64> {
        match self {
            IdFormat::U64Le => <[u8; 8]>::try_from(raw).ok().map(u64::from_le_bytes),
            IdFormat::Decimal => std::str::from_utf8(raw).ok()?.parse().ok(),
        }
    }
}

impl HostKind {
    /// What the module finds running on this host when the configuration names none: Envoy
    /// answers the `plugin_vm_id` property from a root context and is recognised; Kong and
    /// APISIX do not, and their module runs with the profile of an unidentified host.
    pub fn as_detected(self) -> HostKind {
        match self {
            HostKind::Envoy => HostKind::Envoy,
            _ => HostKind::Unknown,
        }
    }

    /// The gateway's name, as its users write it.
    pub fn name(self) -> &'static str {
        match self {
            HostKind::Envoy => "Envoy",
            HostKind::Kong => "Kong",
            HostKind::Apisix => "APISIX",
            HostKind::Unknown => "an unidentified host",
        }
    }
}

impl Capabilities {
    /// The host's profile: the one the configuration names (`host.kind`), else `detected`
    /// (called only when the configuration names none).
    pub fn for_config(host: &HostConfig, detected: impl FnOnce() -> HostKind) -> Capabilities {
        let kind = match host.kind {
            Some(HostKindConfig::Envoy) => HostKind::Envoy,
            Some(HostKindConfig::Kong) => HostKind::Kong,
            Some(HostKindConfig::Apisix) => HostKind::Apisix,
            None => detected(),
        };
        let caps = Capabilities::of(kind, host.hold_headers_for_body.unwrap_or(kind == HostKind::Envoy));
        match (kind, host.response_body_buffer_bytes) {
            (HostKind::Kong, Some(n)) => Capabilities { response_buffer_bytes: Some(n), ..caps },
            _ => caps,
        }
    }

    /// What a host of `kind` can do (`hold` is the configuration's `hold_headers_for_body`).
    pub fn of(kind: HostKind, hold: bool) -> Capabilities {
        match kind {
            HostKind::Envoy => Capabilities {
                kind,
                headers_end_of_stream: true,
                hold_headers_for_body: hold,
                pause_response_headers: true,
                timers: true,
                shared_data: true,
                body_rewrite: true,
                request_body_opt_in: false,
                clusters: true,
                grpc_calls: true,
                set_header_map: true,
                client_address: &["source", "address"],
                client_certificate: &["connection", "sha256_peer_certificate_digest"],
                connection_id: Some((&["connection", "id"], IdFormat::U64Le)),
                rewrite_path: true,
                remove_request_header: true,
                response_buffer_bytes: None,
            },
            // ngx_wasm_module: end_of_stream is always false on headers; timers, shared data
            // (with `nginx_wasm_shm_kv`) and body replacement are implemented.
            HostKind::Kong => Capabilities {
                kind,
                headers_end_of_stream: false,
                hold_headers_for_body: false,
                pause_response_headers: false,
                timers: true,
                shared_data: true,
                body_rewrite: true,
                request_body_opt_in: false,
                clusters: false,
                grpc_calls: false,
                set_header_map: true,
                // ngx_wasm_module maps `source.address` to `$remote_addr`.
                client_address: &["source", "address"],
                // Not implemented there (its property table lists it as such).
                client_certificate: &[],
                // `connection.id` is nginx's `$connection`, as text.
                connection_id: Some((&["connection", "id"], IdFormat::Decimal)),
                // Not relied on: behind `proxy_pass` nginx forwards the request line as sent.
                rewrite_path: false,
                remove_request_header: false,
                // ngx_wasm_module's default `proxy_wasm_response_body_buffers` (4 × 4k).
                response_buffer_bytes: Some(16_384),
            },
            // wasm-nginx-module: no timers, no shared data, `proxy_set_buffer_bytes` is
            // unimplemented (bodies cannot be replaced), request bodies on request only.
            HostKind::Apisix => Capabilities {
                kind,
                headers_end_of_stream: false,
                hold_headers_for_body: false,
                pause_response_headers: false,
                timers: false,
                shared_data: false,
                body_rewrite: false,
                request_body_opt_in: true,
                clusters: false,
                grpc_calls: false,
                set_header_map: false,
                // Properties are nginx variables.
                client_address: &["remote_addr"],
                // nginx's `$ssl_client_fingerprint` is SHA-1, not the SHA-256 RFC 8705 binds.
                client_certificate: &[],
                connection_id: Some((&["connection"], IdFormat::Decimal)),
                rewrite_path: false,
                remove_request_header: true,
                response_buffer_bytes: None,
            },
            // Unknown: nothing optional, and no APISIX-specific property either.
            HostKind::Unknown => Capabilities {
                kind,
                request_body_opt_in: false,
                client_address: &[],
                connection_id: None,
                ..Capabilities::of(HostKind::Apisix, hold)
            },
        }
    }
}
