//! The only place that calls the host.
//!
//! The Proxy-Wasm SDK's own wrappers `panic!` on any status they do not expect, and hosts
//! differ in what they return (APISIX answers `Unimplemented` to calls Envoy supports), so a
//! panic there would kill the VM. These wrappers declare the ABI imports directly and turn
//! every status into a `Result`; callers decide how to degrade. Buffers the host returns are
//! parsed with bounds checks and never assumed to be UTF-8.

use std::ptr::null_mut;

/// A Proxy-Wasm status other than `Ok` (e.g. 1 NotFound, 2 BadArgument, 12 Unimplemented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

/// Header map kinds (ABI `proxy_map_type_t`).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum MapType {
    /// Request headers.
    RequestHeaders = 0,
    /// Response headers.
    ResponseHeaders = 2,
    /// Headers of an HTTP call's response.
    HttpCallResponseHeaders = 6,
}

/// Buffer kinds (ABI `proxy_buffer_type_t`).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum BufferType {
    /// The request body.
    RequestBody = 0,
    /// The response body.
    ResponseBody = 1,
    /// The body of an HTTP call's response.
    HttpCallResponseBody = 4,
    /// The message of a gRPC call's response.
    GrpcReceiveBuffer = 5,
    /// The plugin configuration.
    PluginConfiguration = 7,
}

/// Log levels (ABI `proxy_log_level_t`).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum LogLevel {
    /// Info.
    Info = 2,
    /// Warn.
    Warn = 3,
    /// Error.
    Error = 4,
    /// Critical.
    Critical = 5,
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_set_header_map_pairs(map_type: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

// Natively the host is `fake`: a Proxy-Wasm host in a thread-local, behind the same raw ABI
// functions, so the host layer's state machine runs in native tests through these very
// wrappers (statuses, map encoding, buffer ownership included).
#[cfg(not(target_arch = "wasm32"))]
pub mod fake {
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A header map as (name, raw value) pairs.
    pub type Map = Vec<(String, Vec<u8>)>;

    /// A local response: status, headers, body.
    pub type Local = (u32, Map, Vec<u8>);

    /// What the fake host holds and what the filter did to it.
    #[derive(Debug, Default)]
    pub struct FakeHost {
        /// Header maps by ABI map type (0 request, 2 response, 6 call response).
        pub maps: HashMap<u32, Map>,
        /// Buffers by ABI buffer type (0 request body, 1 response body, 4 call body, 7 config).
        pub buffers: HashMap<u32, Vec<u8>>,
        /// Properties by NUL-joined path.
        pub properties: HashMap<String, Vec<u8>>,
        /// Log lines (level, message).
        pub logs: Vec<(u32, String)>,
        /// The local response sent, if any: status, headers, body.
        pub local: Option<Local>,
        /// The details string of that local response (Envoy's response code details).
        pub details: Option<String>,
        /// Counters by id: name and value.
        pub metrics: Vec<(String, i64)>,
        /// Every value recorded (gauges set, histogram samples), in order: id and value.
        pub records: Vec<(u32, u64)>,
        /// Shared data: value and CAS.
        pub shared: HashMap<String, (Vec<u8>, u32)>,
        /// Streams resumed (0 request, 1 response).
        pub resumed: Vec<u32>,
        /// HTTP calls made: upstream and headers.
        pub calls: Vec<(String, Map)>,
        /// gRPC calls made: upstream, service, method, message and timeout (ms). Their tokens
        /// follow the HTTP calls' (1000 + the call's number).
        pub grpc_calls: Vec<GrpcCall>,
        /// Header edits one at a time (replace or remove), in order: map type and name.
        pub edits: Vec<(u32, String)>,
        /// Calls answered `Unimplemented`, by ABI function name (a profile's missing calls).
        pub unimplemented: Vec<&'static str>,
    }

    /// A gRPC call the fake host recorded: upstream, service, method, message, timeout (ms).
    pub type GrpcCall = (Vec<u8>, String, String, Vec<u8>, u32);

    thread_local! {
        static HOST: RefCell<FakeHost> = RefCell::new(FakeHost::default());
    }

    /// Runs `f` on this thread's fake host.
    pub fn with<R>(f: impl FnOnce(&mut FakeHost) -> R) -> R {
        HOST.with(|h| f(&mut h.borrow_mut()))
    }

    /// Starts over with an empty host.
    pub fn reset() {
        with(|h| *h = FakeHost::default());
    }

    /// A counter's value by name (0 when never defined).
    pub fn counter(name: &str) -> i64 {
        with(|h| h.metrics.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v))
    }

    /// The values recorded in the metric named `name`, in order.
    pub fn samples(name: &str) -> Vec<u64> {
        with(|h| {
            let ids: Vec<usize> =
                h.metrics.iter().enumerate().filter(|(_, (n, _))| n == name).map(|(i, _)| i).collect();
            h.records.iter().filter(|(id, _)| ids.contains(&(*id as usize))).map(|(_, v)| *v).collect()
        })
    }

    pub(super) fn missing(h: &FakeHost, call: &'static str) -> bool {
        h.unimplemented.contains(&call)
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::missing_safety_doc, clippy::too_many_arguments)]
mod native {
    use super::fake::{missing, with};
    use super::{decode_map, encode_map};

    const OK: u32 = 0;
    const NOT_FOUND: u32 = 1;
    const UNIMPLEMENTED: u32 = 12;

    fn text(p: *const u8, n: usize) -> String {
        // SAFETY: the wrappers pass pointers and lengths of live buffers.
        String::from_utf8_lossy(unsafe { bytes(p, n) }).into_owned()
    }

    unsafe fn bytes<'a>(p: *const u8, n: usize) -> &'a [u8] {
        if p.is_null() || n == 0 {
            &[]
        } else {
            // SAFETY: as `text`.
            unsafe { std::slice::from_raw_parts(p, n) }
        }
    }

    /// Hands `data` to the caller as `proxy_on_memory_allocate` would: a heap block of
    /// exactly its length, which `take` turns back into a `Vec`.
    unsafe fn give(data: Vec<u8>, out: *mut *mut u8, size: *mut usize) -> u32 {
        let len = data.len();
        let ptr = Box::into_raw(data.into_boxed_slice()).cast::<u8>();
        // SAFETY: the wrappers pass valid out-pointers.
        unsafe {
            *out = ptr;
            *size = len;
        }
        OK
    }

    pub unsafe fn proxy_log(level: u32, p: *const u8, n: usize) -> u32 {
        let line = text(p, n);
        with(|h| h.logs.push((level, line)));
        OK
    }
    pub unsafe fn proxy_set_buffer_bytes(t: u32, start: usize, len: usize, p: *const u8, n: usize) -> u32 {
        // SAFETY: as `text`.
        let new = unsafe { bytes(p, n) }.to_vec();
        with(|h| {
            if missing(h, "proxy_set_buffer_bytes") {
                return UNIMPLEMENTED;
            }
            let buf = h.buffers.entry(t).or_default();
            let start = start.min(buf.len());
            let end = start.saturating_add(len).min(buf.len());
            buf.splice(start..end, new);
            OK
        })
    }
    pub unsafe fn proxy_get_buffer_bytes(
        t: u32,
        start: usize,
        max: usize,
        out: *mut *mut u8,
        size: *mut usize,
    ) -> u32 {
        let Some(data) = with(|h| {
            h.buffers.get(&t).map(|b| {
                b.get(start.min(b.len())..start.saturating_add(max).min(b.len())).unwrap_or_default().to_vec()
            })
        }) else {
            return NOT_FOUND;
        };
        // SAFETY: valid out-pointers.
        unsafe { give(data, out, size) }
    }
    pub unsafe fn proxy_get_header_map_pairs(t: u32, out: *mut *mut u8, size: *mut usize) -> u32 {
        let data = with(|h| encode_map(h.maps.get(&t).map_or(&[][..], Vec::as_slice)));
        // SAFETY: valid out-pointers.
        unsafe { give(data, out, size) }
    }
    pub unsafe fn proxy_get_property(p: *const u8, n: usize, out: *mut *mut u8, size: *mut usize) -> u32 {
        let key = text(p, n);
        match with(|h| h.properties.get(&key).cloned()) {
            // SAFETY: valid out-pointers.
            Some(v) => unsafe { give(v, out, size) },
            None => NOT_FOUND,
        }
    }
    pub unsafe fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_len: usize,
        body: *const u8,
        body_len: usize,
        headers: *const u8,
        headers_len: usize,
        _: i32,
    ) -> u32 {
        // SAFETY: as `text`.
        let (body, headers) = unsafe { (bytes(body, body_len).to_vec(), bytes(headers, headers_len)) };
        let headers = decode_map(headers).unwrap_or_default();
        let details = text(details, details_len);
        with(|h| {
            h.local = Some((status, headers, body));
            h.details = Some(details);
        });
        OK
    }
    pub unsafe fn proxy_define_metric(_: u32, p: *const u8, n: usize, id: *mut u32) -> u32 {
        let name = text(p, n);
        let index = with(|h| {
            h.metrics.push((name, 0));
            h.metrics.len() - 1
        });
        // SAFETY: valid out-pointer.
        unsafe { *id = u32::try_from(index).unwrap_or(u32::MAX) };
        OK
    }
    pub unsafe fn proxy_record_metric(id: u32, value: u64) -> u32 {
        with(|h| match h.metrics.get_mut(id as usize) {
            Some(m) => {
                h.records.push((id, value));
                m.1 = i64::try_from(value).unwrap_or(i64::MAX);
                OK
            }
            None => NOT_FOUND,
        })
    }
    pub unsafe fn proxy_increment_metric(id: u32, by: i64) -> u32 {
        with(|h| match h.metrics.get_mut(id as usize) {
            Some(m) => {
                m.1 += by;
                OK
            }
            None => NOT_FOUND,
        })
    }
    pub unsafe fn proxy_continue_stream(t: u32) -> u32 {
        with(|h| h.resumed.push(t));
        OK
    }
    pub unsafe fn proxy_set_effective_context(_: u32) -> u32 {
        OK
    }
    pub unsafe fn proxy_set_tick_period_milliseconds(_: u32) -> u32 {
        with(|h| if missing(h, "proxy_set_tick_period_milliseconds") { UNIMPLEMENTED } else { OK })
    }
    pub unsafe fn proxy_set_property(p: *const u8, n: usize, v: *const u8, vn: usize) -> u32 {
        let key = text(p, n);
        // SAFETY: as `text`.
        let value = unsafe { bytes(v, vn) }.to_vec();
        with(|h| h.properties.insert(key, value));
        OK
    }
    pub unsafe fn proxy_set_header_map_pairs(t: u32, p: *const u8, n: usize) -> u32 {
        // SAFETY: as `text`.
        let pairs = decode_map(unsafe { bytes(p, n) }).unwrap_or_default();
        with(|h| {
            if missing(h, "proxy_set_header_map_pairs") {
                return UNIMPLEMENTED;
            }
            h.maps.insert(t, pairs);
            OK
        })
    }
    pub unsafe fn proxy_get_shared_data(
        p: *const u8,
        n: usize,
        out: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32 {
        let key = text(p, n);
        match with(|h| {
            if missing(h, "proxy_get_shared_data") {
                Err(UNIMPLEMENTED)
            } else {
                Ok(h.shared.get(&key).cloned())
            }
        }) {
            Ok(Some((v, c))) => {
                // SAFETY: valid out-pointers.
                unsafe { *cas = c };
                // SAFETY: valid out-pointers.
                unsafe { give(v, out, size) }
            }
            Ok(None) => NOT_FOUND,
            Err(s) => s,
        }
    }
    pub unsafe fn proxy_set_shared_data(p: *const u8, n: usize, v: *const u8, vn: usize, cas: u32) -> u32 {
        let key = text(p, n);
        // SAFETY: as `text`.
        let value = unsafe { bytes(v, vn) }.to_vec();
        with(|h| {
            if missing(h, "proxy_set_shared_data") {
                return UNIMPLEMENTED;
            }
            let current = h.shared.get(&key).map_or(0, |(_, c)| *c);
            if cas != 0 && cas != current {
                return 8; // CasMismatch
            }
            h.shared.insert(key, (value, current + 1));
            OK
        })
    }
    pub unsafe fn proxy_replace_header_map_value(
        t: u32,
        k: *const u8,
        kn: usize,
        v: *const u8,
        vn: usize,
    ) -> u32 {
        let name = text(k, kn);
        // SAFETY: as `text`.
        let value = unsafe { bytes(v, vn) }.to_vec();
        with(|h| {
            h.edits.push((t, name.clone()));
            let map = h.maps.entry(t).or_default();
            map.retain(|(n, _)| *n != name);
            map.push((name, value));
        });
        OK
    }
    pub unsafe fn proxy_remove_header_map_value(t: u32, k: *const u8, kn: usize) -> u32 {
        let name = text(k, kn);
        with(|h| {
            h.edits.push((t, name.clone()));
            h.maps.entry(t).or_default().retain(|(n, _)| *n != name);
        });
        OK
    }

    /// The SDK's own import for HTTP calls (it keeps the token to route the answer).
    #[no_mangle]
    pub unsafe extern "C" fn proxy_http_call(
        up: *const u8,
        up_len: usize,
        headers: *const u8,
        headers_len: usize,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: u32,
        token: *mut u32,
    ) -> u32 {
        let upstream = text(up, up_len);
        // SAFETY: as `text`.
        let headers = decode_map(unsafe { bytes(headers, headers_len) }).unwrap_or_default();
        let n = with(|h| {
            h.calls.push((upstream, headers));
            h.calls.len()
        });
        // SAFETY: valid out-pointer.
        unsafe { *token = u32::try_from(n).unwrap_or(u32::MAX) };
        OK
    }

    /// The SDK's own import for gRPC calls (it keeps the token to route the answer).
    #[no_mangle]
    pub unsafe extern "C" fn proxy_grpc_call(
        up: *const u8,
        up_len: usize,
        service: *const u8,
        service_len: usize,
        method: *const u8,
        method_len: usize,
        _: *const u8,
        _: usize,
        message: *const u8,
        message_len: usize,
        timeout: u32,
        token: *mut u32,
    ) -> u32 {
        // SAFETY: as `text`.
        let call = unsafe {
            (
                bytes(up, up_len).to_vec(),
                text(service, service_len),
                text(method, method_len),
                bytes(message, message_len).to_vec(),
                timeout,
            )
        };
        let n = with(|h| {
            if missing(h, "proxy_grpc_call") {
                return None;
            }
            h.grpc_calls.push(call);
            Some(h.grpc_calls.len())
        });
        // The SDK's wrapper survives InternalFailure (10), not Unimplemented.
        let Some(n) = n else { return 10 };
        // SAFETY: valid out-pointer.
        unsafe { *token = 1000 + u32::try_from(n).unwrap_or(u32::MAX - 1000) };
        OK
    }
}
#[cfg(not(target_arch = "wasm32"))]
use native::*;

/// Takes ownership of a buffer the host allocated through `proxy_on_memory_allocate`
/// (the SDK's allocator, which hands out `Vec<u8>` storage of exactly `size` bytes).
fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: the host wrote `size` bytes into memory from `proxy_on_memory_allocate(size)`,
    // which allocated a `Vec<u8>` with capacity `size` and forgot it.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// Writes a log line. Errors are ignored: there is nowhere else to report them.
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: pointer and length describe a live string.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// Reads a whole buffer (`Ok(None)` when the host has none).
pub fn get_buffer(buffer_type: BufferType, max: usize) -> Result<Option<Vec<u8>>, HostError> {
    get_buffer_range(buffer_type, 0, max)
}

/// Reads up to `max` bytes of a buffer from `start` (`Ok(None)` when the host has none).
pub fn get_buffer_range(
    buffer_type: BufferType,
    start: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: out-pointers are valid for the duration of the call.
    let status = unsafe { proxy_get_buffer_bytes(buffer_type as u32, start, max, &mut data, &mut size) };
    match status {
        OK => Ok(Some(take(data, size))),
        NOT_FOUND => Ok(None),
        s => Err(HostError(s)),
    }
}

/// Replaces `size` bytes of a buffer from `start` with `data` (the whole body: 0 and its size).
pub fn set_buffer(buffer_type: BufferType, start: usize, size: usize, data: &[u8]) -> Result<(), HostError> {
    // SAFETY: pointer and length describe a live slice.
    let status =
        unsafe { proxy_set_buffer_bytes(buffer_type as u32, start, size, data.as_ptr(), data.len()) };
    match status {
        OK => Ok(()),
        s => Err(HostError(s)),
    }
}

/// Reads a header map as (lower-cased name, raw value) pairs.
pub fn get_headers(map: MapType) -> Result<Vec<(String, Vec<u8>)>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: out-pointers are valid for the duration of the call.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    match status {
        OK => Ok(decode_map(&take(data, size)).unwrap_or_default()),
        s => Err(HostError(s)),
    }
}

/// Reads a property (`Ok(None)` when absent).
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
    let key = path.join("\0");
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: pointer and length describe a live string; out-pointers are valid.
    let status = unsafe { proxy_get_property(key.as_ptr(), key.len(), &mut data, &mut size) };
    match status {
        OK => Ok(Some(take(data, size))),
        NOT_FOUND => Ok(None),
        s => Err(HostError(s)),
    }
}

/// Replaces a whole header map (one host call instead of one per header).
pub fn set_headers(map: MapType, pairs: &[(String, Vec<u8>)]) -> Result<(), HostError> {
    let data = encode_map(pairs);
    // SAFETY: pointer and length describe a live buffer.
    let s = unsafe { proxy_set_header_map_pairs(map as u32, data.as_ptr(), data.len()) };
    if s == OK {
        Ok(())
    } else {
        Err(HostError(s))
    }
}

/// Sets a property (on APISIX, an nginx variable).
pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), HostError> {
    let key = path.join("\0");
    // SAFETY: pointers and lengths describe live buffers.
    let status = unsafe { proxy_set_property(key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
    if status == OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

/// Sends a local response and stops the stream.
pub fn send_local_response(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    details: &str,
) -> Result<(), HostError> {
    let map = encode_map(headers);
    // SAFETY: all pointers and lengths describe live buffers.
    let s = unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    };
    if s == OK {
        Ok(())
    } else {
        Err(HostError(s))
    }
}

/// Defines a counter, returning its id.
pub fn define_counter(name: &str) -> Result<u32, HostError> {
    define_metric(0, name)
}

/// Defines a gauge, returning its id.
pub fn define_gauge(name: &str) -> Result<u32, HostError> {
    define_metric(1, name)
}

/// `kind`: the ABI's metric type (0 counter, 1 gauge, 2 histogram).
fn define_metric(kind: u32, name: &str) -> Result<u32, HostError> {
    let mut id = 0u32;
    // SAFETY: pointer and length describe a live string; out-pointer is valid.
    let s = unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    if s == OK {
        Ok(id)
    } else {
        Err(HostError(s))
    }
}

/// Defines a histogram, returning its id.
pub fn define_histogram(name: &str) -> Result<u32, HostError> {
    define_metric(2, name)
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u32;
}

/// Nanoseconds on the host's monotonic clock (WASI), or `None` where it has none. Called
/// directly because `std::time::Instant` panics when the host refuses the clock.
#[cfg(target_arch = "wasm32")]
pub fn monotonic_ns() -> Option<u64> {
    const MONOTONIC: u32 = 1;
    let mut t = 0u64;
    // SAFETY: the out-pointer is valid for the call.
    (unsafe { clock_time_get(MONOTONIC, 1, &mut t) } == 0).then_some(t)
}

/// Nanoseconds on a monotonic clock (natively: since the first call).
#[cfg(not(target_arch = "wasm32"))]
pub fn monotonic_ns() -> Option<u64> {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u64::try_from(START.get_or_init(std::time::Instant::now).elapsed().as_nanos()).ok()
}

/// Sets a gauge, or adds a sample to a histogram. Errors are ignored: a metric must never
/// fail a request.
pub fn record(id: u32, value: u64) {
    // SAFETY: plain values.
    let _ = unsafe { proxy_record_metric(id, value) };
}

/// Sets a header (replacing every existing value).
pub fn set_header(map: MapType, name: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: pointers and lengths describe live strings.
    let s = unsafe {
        proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    };
    if s == OK {
        Ok(())
    } else {
        Err(HostError(s))
    }
}

/// Removes a header (every value). Removing an absent header is not an error.
pub fn remove_header(map: MapType, name: &str) -> Result<(), HostError> {
    // SAFETY: pointer and length describe a live string.
    let s = unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) };
    if s == OK || s == NOT_FOUND {
        Ok(())
    } else {
        Err(HostError(s))
    }
}

/// Adds `by` to a counter. Errors are ignored: a metric must never fail a request.
pub fn increment(id: u32, by: u64) {
    let by = i64::try_from(by).unwrap_or(i64::MAX);
    // SAFETY: plain values.
    let _ = unsafe { proxy_increment_metric(id, by) };
}

fn status(s: u32) -> Result<(), HostError> {
    if s == OK {
        Ok(())
    } else {
        Err(HostError(s))
    }
}

/// Sends an HTTP request to `upstream` (an Envoy cluster, or `host:port`); the answer arrives
/// in `on_http_call_response` of the calling context, with the returned token.
///
/// This is the one call that goes through the SDK's wrapper: the SDK must record the token to
/// route the answer back to the calling context. The wrapper panics on statuses other than
/// Ok, BadArgument and InternalFailure; every supported host answers `proxy_http_call` with
/// one of those.
pub fn http_call(
    upstream: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout_ms: u32,
) -> Result<u32, HostError> {
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    proxy_wasm::hostcalls::dispatch_http_call(
        upstream,
        pairs,
        body,
        Vec::new(),
        std::time::Duration::from_millis(u64::from(timeout_ms)),
    )
    .map_err(|s| HostError(s as u32))
}

/// Sends a unary gRPC call to `upstream` (a serialized `GrpcService`); the answer arrives in
/// `on_grpc_call_response` of the calling context, with the returned token. Through the SDK's
/// wrapper, as [`http_call`], for the same reason; Envoy answers `proxy_grpc_call` with Ok,
/// ParseFailure or InternalFailure for a serialized service.
pub fn grpc_call(
    upstream: &str,
    service: &str,
    method: &str,
    message: &[u8],
    timeout_ms: u32,
) -> Result<u32, HostError> {
    proxy_wasm::hostcalls::dispatch_grpc_call(
        upstream,
        service,
        method,
        Vec::new(),
        Some(message),
        std::time::Duration::from_millis(u64::from(timeout_ms)),
    )
    .map_err(|s| HostError(s as u32))
}

/// Resumes a request paused in a request callback.
pub fn resume_request() -> Result<(), HostError> {
    // SAFETY: plain value (stream type 0: the HTTP request).
    status(unsafe { proxy_continue_stream(0) })
}

/// Resumes a response paused in a response callback.
pub fn resume_response() -> Result<(), HostError> {
    // SAFETY: plain value (stream type 1: the HTTP response).
    status(unsafe { proxy_continue_stream(1) })
}

/// Makes later calls act on the HTTP context `id` (from the root context, e.g. a tick).
pub fn set_effective_context(id: u32) -> Result<(), HostError> {
    // SAFETY: plain value.
    status(unsafe { proxy_set_effective_context(id) })
}

/// Asks for `on_tick` every `ms` milliseconds (0 stops it).
pub fn set_tick_period(ms: u32) -> Result<(), HostError> {
    // SAFETY: plain value.
    status(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// Reads a shared-data entry: its value and CAS token (`Ok(None)` when absent).
pub fn get_shared(key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas = 0u32;
    // SAFETY: pointer and length describe a live string; out-pointers are valid.
    let s = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match s {
        OK => Ok(Some((take(data, size), cas))),
        NOT_FOUND => Ok(None),
        s => Err(HostError(s)),
    }
}

/// Writes a shared-data entry. Reads first and sets with the CAS it got, because some hosts
/// refuse a CAS-less write over an existing key.
pub fn set_shared(key: &str, value: &[u8]) -> Result<(), HostError> {
    let cas = get_shared(key)?.map_or(0, |(_, cas)| cas);
    // SAFETY: pointers and lengths describe live buffers.
    status(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

/// The status a host answers a write with when the entry changed since it was read.
pub const CAS_MISMATCH: u32 = 8;

/// Writes a shared-data entry if its CAS token is still `cas` (0: unconditionally).
pub fn set_shared_cas(key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
    // SAFETY: pointers and lengths describe live buffers.
    status(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

/// Serialises header pairs in the ABI's map format: count, (key len, value len)*, then
/// NUL-terminated keys and values.
pub fn encode_map<V: AsRef<[u8]>>(pairs: &[(String, V)]) -> Vec<u8> {
    let mut size = 4;
    for (k, v) in pairs {
        size += 8 + k.len() + v.as_ref().len() + 2;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]) as usize)
}

/// Parses the ABI's map format with bounds checks. Names are lower-cased (lossily, if not
/// UTF-8); values stay raw bytes. `None` if the buffer is malformed.
pub fn decode_map(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = read_u32(bytes, 0)?;
    let mut pos = count.checked_mul(8)?.checked_add(4)?;
    if pos > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for n in 0..count {
        let key_len = read_u32(bytes, 4 + n * 8)?;
        let val_len = read_u32(bytes, 8 + n * 8)?;
        let key = bytes.get(pos..pos.checked_add(key_len)?)?;
        pos = pos.checked_add(key_len)?.checked_add(1)?;
        let value = bytes.get(pos..pos.checked_add(val_len)?)?;
        pos = pos.checked_add(val_len)?.checked_add(1)?;
        out.push((String::from_utf8_lossy(key).to_ascii_lowercase(), value.to_vec()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trip() {
        let pairs = vec![(":path".to_string(), "/a".to_string()), ("X-A".to_string(), String::new())];
        let decoded = decode_map(&encode_map(&pairs)).unwrap();
        assert_eq!(decoded, vec![(":path".to_string(), b"/a".to_vec()), ("x-a".to_string(), Vec::new())]);
    }

    #[test]
    fn malformed_maps_are_rejected_not_panicked_on() {
        let good = encode_map(&[("a".to_string(), "b".to_string())]);
        for cut in 0..good.len() {
            let _ = decode_map(&good[..cut]);
        }
        assert!(decode_map(&[0xff, 0xff, 0xff, 0xff]).is_none());
        let mut big = good.clone();
        big[4] = 0xff;
        assert!(decode_map(&big).is_none());
        // Non-UTF-8 values survive as bytes.
        let mut raw = encode_map(&[("k".to_string(), "v".to_string())]);
        let last = raw.len() - 2;
        raw[last] = 0xff;
        assert_eq!(decode_map(&raw).unwrap()[0].1, vec![0xff]);
    }
}
