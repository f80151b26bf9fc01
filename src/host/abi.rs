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
}

// Natively there is no host: the core is tested on its own, and the host layer only has to
// compile (clippy runs on it for both targets). Every call reports `Unimplemented`.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::missing_safety_doc)]
mod native {
    pub unsafe fn proxy_log(_: u32, _: *const u8, _: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_set_buffer_bytes(_: u32, _: usize, _: usize, _: *const u8, _: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_get_buffer_bytes(_: u32, _: usize, _: usize, _: *mut *mut u8, _: *mut usize) -> u32 {
        12
    }
    pub unsafe fn proxy_get_header_map_pairs(_: u32, _: *mut *mut u8, _: *mut usize) -> u32 {
        12
    }
    pub unsafe fn proxy_get_property(_: *const u8, _: usize, _: *mut *mut u8, _: *mut usize) -> u32 {
        12
    }
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn proxy_send_local_response(
        _: u32,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: i32,
    ) -> u32 {
        12
    }
    pub unsafe fn proxy_define_metric(_: u32, _: *const u8, _: usize, _: *mut u32) -> u32 {
        12
    }
    pub unsafe fn proxy_increment_metric(_: u32, _: i64) -> u32 {
        12
    }
    pub unsafe fn proxy_continue_stream(_: u32) -> u32 {
        12
    }
    pub unsafe fn proxy_set_effective_context(_: u32) -> u32 {
        12
    }
    pub unsafe fn proxy_set_tick_period_milliseconds(_: u32) -> u32 {
        12
    }
    pub unsafe fn proxy_set_property(_: *const u8, _: usize, _: *const u8, _: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_set_header_map_pairs(_: u32, _: *const u8, _: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_get_shared_data(
        _: *const u8,
        _: usize,
        _: *mut *mut u8,
        _: *mut usize,
        _: *mut u32,
    ) -> u32 {
        12
    }
    pub unsafe fn proxy_set_shared_data(_: *const u8, _: usize, _: *const u8, _: usize, _: u32) -> u32 {
        12
    }
    pub unsafe fn proxy_replace_header_map_value(
        _: u32,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
    ) -> u32 {
        12
    }
    pub unsafe fn proxy_remove_header_map_value(_: u32, _: *const u8, _: usize) -> u32 {
        12
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
pub fn send_local_response(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<(), HostError> {
    let map = encode_map(headers);
    // SAFETY: all pointers and lengths describe live buffers.
    let s = unsafe {
        proxy_send_local_response(
            u32::from(status),
            null_mut(),
            0,
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
    let mut id = 0u32;
    // SAFETY: pointer and length describe a live string; out-pointer is valid.
    let s = unsafe { proxy_define_metric(0, name.as_ptr(), name.len(), &mut id) };
    if s == OK {
        Ok(id)
    } else {
        Err(HostError(s))
    }
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
pub fn http_call(upstream: &str, headers: &[(String, String)], timeout_ms: u32) -> Result<u32, HostError> {
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    proxy_wasm::hostcalls::dispatch_http_call(
        upstream,
        pairs,
        None,
        Vec::new(),
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
