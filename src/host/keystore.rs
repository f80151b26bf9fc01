//! Key-set fetches and shared data between the host and the core's verification state
//! ([`crate::policy::jwt::state::State`]): the core says what to fetch and takes in what came
//! back; this module sends, reads and logs. Fetched key sets are also written to the host's
//! shared data, so other worker VMs adopt them instead of fetching again.

use std::cell::RefCell;

use super::abi::{self, BufferType, LogLevel, MapType};
use crate::policy::capabilities::Capabilities;
use crate::policy::jwt::jwks::MAX_JWKS_BYTES;
use crate::policy::jwt::state::{Fetched, NoSharedData, SharedData, State};
use crate::policy::load;
use crate::policy::telemetry;

use super::metrics::Metrics;

/// The host's shared data (Envoy and Kong; APISIX has none).
pub struct HostShared;

impl SharedData for HostShared {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        abi::get_shared(key).ok()?.map(|(value, _)| value)
    }
    fn set(&self, key: &str, value: &[u8]) {
        // A lost race with another VM's write only costs that VM's token a check later.
        let _ = abi::set_shared(key, value);
    }
}

/// The shared data this host has: the host's, or none.
pub fn shared_data(caps: &Capabilities) -> &'static dyn SharedData {
    if caps.shared_data {
        &HostShared
    } else {
        &NoSharedData
    }
}

/// Adopts newer key sets other VMs wrote to shared data, saying which.
pub fn adopt_shared(state: &RefCell<State>, caps: &Capabilities) {
    if !caps.shared_data {
        return;
    }
    let mut state = state.borrow_mut();
    for index in state.adopt_shared(&HostShared) {
        let name = state.provider_name(index).unwrap_or_default();
        abi::log(
            LogLevel::Info,
            &format!("api-guard: jwks for provider '{name}' adopted from another worker"),
        );
    }
}

/// Sends the key-set request for provider `index`; returns the call token.
pub fn fetch(state: &RefCell<State>, index: usize, now: i64, caps: &Capabilities) -> Option<u32> {
    let mut state = state.borrow_mut();
    let request = state.start_fetch(index, now, caps.clusters)?;
    match abi::http_call(&request.upstream, &request.headers, None, request.timeout_ms) {
        Ok(token) => Some(token),
        Err(err) => {
            state.fetch_not_sent(index);
            abi::log(
                LogLevel::Warn,
                &format!(
                    "api-guard: cannot request jwks for provider '{}' from '{}' (host status {})",
                    state.provider_name(index).unwrap_or_default(),
                    request.upstream,
                    err.0
                ),
            );
            None
        }
    }
}

/// The status and body (at most `max` + 1 bytes: a larger body reads as `max` + 1 zeros,
/// never parsed) of the HTTP callout answering now.
pub fn call_answer(max: usize, body_size: usize) -> (Option<u16>, Option<Vec<u8>>) {
    let status = abi::get_headers(MapType::HttpCallResponseHeaders)
        .ok()
        .and_then(|h| h.into_iter().find(|(n, _)| n == ":status"))
        .and_then(|(_, v)| std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u16>().ok()));
    let body = if body_size > max {
        Some(vec![0; max + 1])
    } else {
        abi::get_buffer(BufferType::HttpCallResponseBody, max + 1).ok().flatten()
    };
    (status, body)
}

/// Reads the answer to provider `index`'s key-set fetch (its status and at most 64 KiB + 1 of
/// the body), hands it to the core (which keeps the last good keys on any failure), logs and
/// counts the outcome. `true` when it was the discovery document: the key set it names is
/// to be fetched next.
pub fn complete(
    state: &RefCell<State>,
    index: usize,
    body_size: usize,
    now: i64,
    caps: &Capabilities,
    metrics: &Metrics,
) -> bool {
    let (status, body) = call_answer(MAX_JWKS_BYTES, body_size);
    let mut state = state.borrow_mut();
    let result = state.complete_fetch(index, status, body.as_deref(), now, shared_data(caps));
    let name = state.provider_name(index).unwrap_or_default();
    let outcome = result.as_ref().map_or_else(|e| e.name(), |_| "ok");
    metrics.bump(&telemetry::fetches(name, outcome));
    match result {
        Ok(Fetched::Discovered) => {
            let from = state.key_source(index).unwrap_or_default();
            abi::log(LogLevel::Info, &format!("api-guard: discovery for provider '{name}': keys at {from}"));
            return true;
        }
        Ok(Fetched::Keys(n)) => {
            abi::log(LogLevel::Info, &format!("api-guard: jwks for provider '{name}' loaded ({n} keys)"));
            if let Some(set) = state.keys(index) {
                super::root::log_notes(&load::key_set_notes(name, set));
            }
        }
        Err(err) => abi::log(
            LogLevel::Warn,
            &format!(
                "api-guard: jwks fetch for provider '{name}' failed ({}{}); keeping the last good keys",
                err.name(),
                status.map(|s| format!(", status {s}")).unwrap_or_default()
            ),
        ),
    }
    false
}
