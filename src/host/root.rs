//! The root context: loads the configuration, creates HTTP contexts, and refreshes remote key
//! sets in the background where the host has timers.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::abi::{self, BufferType, LogLevel};
use super::capabilities::{Capabilities, HostKind};
use super::held::{self, Held};
use super::http::HttpFilter;
use super::keystore;
use super::metrics::Metrics;
use super::shared::{now_unix, Shared};
use crate::policy::denial::{self, Denial, Reason};
use crate::policy::jwt::budget::ClientSource;
use crate::policy::jwt::cache::shared_namespace;
use crate::policy::jwt::keys::KeySet;
use crate::policy::jwt::ProviderKeys;
use crate::policy::{config, Policy};

/// Largest configuration accepted, so a host bug cannot make us parse unbounded input.
const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;
/// How often the root context looks at remote key sets.
const TICK_MS: u32 = 500;

/// Holds the compiled policy; one per plugin configuration.
#[derive(Default)]
pub struct Root {
    /// This root context's id, to act as itself again after acting in a request's context.
    id: u32,
    state: Option<Shared>,
    /// Key-set requests in flight from this context: call token → provider index.
    pending: HashMap<u32, usize>,
}

/// Names the key-set entries a provider left out (never key material): a warning for those
/// it could not use, an info line for those none of its algorithms needs.
pub fn log_skipped(provider: &str, set: &KeySet) {
    if !set.skipped.is_empty() {
        abi::log(
            LogLevel::Warn,
            &format!("api-guard: provider '{provider}': key-set entries skipped: {}", set.skipped.join("; ")),
        );
    }
    if !set.unused.is_empty() {
        abi::log(
            LogLevel::Info,
            &format!(
                "api-guard: provider '{provider}': key-set entries not prepared (no allowed algorithm uses them): {}",
                set.unused.join("; ")
            ),
        );
    }
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        // The VM is stopping: what was counted since the last tick still reaches the host.
        if let Some(state) = &self.state {
            state.metrics.flush();
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let (Some(index), Some(state)) = (self.pending.remove(&token_id), &self.state) else { return };
        state.complete_fetch(index, body_size);
    }
}

/// Resumes the paused responses past their patience and fails the held requests whose body
/// the host has received but not delivered (see [`held`]): each such request gets a 500
/// problem in its own context, and the missing setting is named in the log once per VM.
/// Returns whether it acted in another context.
fn watch_held(state: &Shared) -> bool {
    if state.held.borrow().is_empty() {
        return false;
    }
    let overdue = state.held.borrow_mut().overdue_responses(held::now_ms());
    for context in overdue {
        if abi::set_effective_context(context).is_ok() {
            if let Err(e) = abi::resume_response() {
                abi::log(
                    LogLevel::Error,
                    &format!("api-guard: cannot resume response (host status {})", e.0),
                );
            }
        }
    }
    let was_broken = state.held.borrow().broken;
    let mut read = |context: u32| {
        abi::set_effective_context(context).ok()?;
        held::request_total_size()
    };
    let stuck = state.held.borrow_mut().stuck(held::now_ms(), &mut read);
    if stuck.is_empty() {
        return true;
    }
    if !was_broken {
        abi::log(LogLevel::Error, held::MISSING_SETTING);
    }
    let policy = &state.policy;
    for s in stuck {
        if abi::set_effective_context(s.context).is_err() {
            continue;
        }
        let out = denial::render(
            &Denial::new(Reason::HostMisconfigured),
            &policy.rendering,
            policy.route_name(s.route),
            &s.request_id,
            None,
        );
        state.account(&out);
        if let Err(e) =
            abi::send_local_response(out.response.status, &out.response.headers, &out.response.body)
        {
            abi::log(LogLevel::Error, &format!("api-guard: host refused local response (status {})", e.0));
        }
    }
    true
}

impl Root {
    /// The root context `id`.
    pub fn new(id: u32) -> Root {
        Root { id, ..Root::default() }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
impl Root {
    /// What its HTTP contexts share, once configured (native tests make filters from it
    /// directly: the SDK's trait objects would need every host import).
    pub(crate) fn shared(&self) -> Option<Shared> {
        self.state.clone()
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match abi::get_buffer(BufferType::PluginConfiguration, MAX_CONFIG_BYTES) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                abi::log(
                    LogLevel::Error,
                    &format!("api-guard: cannot read plugin configuration (host status {})", e.0),
                );
                return false;
            }
        };
        let parsed = config::parse_document(&bytes).and_then(|doc| {
            let policy = Policy::compile(&doc)?;
            Ok((policy, doc.host))
        });
        let (mut policy, host) = match parsed {
            Ok(p) => p,
            Err(e) => {
                // One line that names the field; the previous configuration (if any) stays.
                abi::log(LogLevel::Error, &format!("api-guard: {e}"));
                return false;
            }
        };
        let caps = Capabilities::detect(&host);
        policy.rewrite_path = caps.rewrite_path;
        if caps.kind == HostKind::Envoy && host.hold_headers_for_body == Some(false) {
            abi::log(
                LogLevel::Warn,
                "api-guard: host.hold_headers_for_body is false: request bodies stream to the upstream before they are judged, so the upstream sees the head (and bytes) of a request whose body is then refused",
            );
        }
        // Rewrites this host cannot carry out would forward unredacted data: refuse them.
        if let (Some(field), false) = (policy.rewrites_responses(), caps.body_rewrite) {
            abi::log(
                LogLevel::Error,
                &format!(
                    "api-guard: invalid api-guard configuration at `{field}`: this host ({:?}) cannot rewrite response bodies, so it cannot be enforced; remove it or run on a host that can",
                    caps.kind
                ),
            );
            return false;
        }
        if policy.response.as_ref().is_some_and(|r| r.safe_errors) && !caps.body_rewrite {
            abi::log(
                LogLevel::Warn,
                &format!(
                    "api-guard: response.safe_errors: this host ({:?}) cannot replace response bodies; upstream 5xx bodies pass as sent",
                    caps.kind
                ),
            );
        }
        // Key-set entries that cannot verify anything (an unknown curve) or that no allowed
        // algorithm uses are left out rather than failing the whole set; say which, once.
        for p in policy.jwt.iter().flat_map(|j| j.providers.iter()) {
            if let ProviderKeys::Local(set) = &p.keys {
                log_skipped(&p.name, set);
            }
        }
        // Keep already-defined metrics and still-valid key sets across reconfiguration.
        let (metrics, previous) = match self.state.take() {
            Some(s) => (s.metrics, Rc::try_unwrap(s.verify).ok().map(RefCell::into_inner)),
            None => (Rc::new(Metrics::define()), None),
        };
        // A live clock (and key-set refresh) on every tick where the host has timers.
        let clock = Rc::new(Cell::new(None));
        let mut ticking = false;
        if caps.timers {
            match abi::set_tick_period(TICK_MS) {
                Ok(()) => {
                    clock.set(Some(now_unix()));
                    ticking = true;
                }
                Err(e) => abi::log(
                    LogLevel::Warn,
                    &format!("api-guard: no timer (host status {}); key sets load on demand", e.0),
                ),
            }
        }
        // With a tick, counters reach the host as one delta per tick (see metrics.rs).
        metrics.set_batched(ticking);
        abi::log(
            LogLevel::Info,
            &format!(
                "api-guard: configuration loaded ({} routes, {} documented operations, host {:?})",
                policy.routes.len(),
                policy.api.as_ref().map_or(0, |a| a.operations.len()),
                caps.kind
            ),
        );
        if policy.jwt.as_ref().and_then(|j| j.budget.as_ref()).is_some_and(|rules| {
            rules.max_failures > 0 && rules.client == ClientSource::Peer && caps.client_address.is_empty()
        }) {
            // Nothing tells clients apart: one shared count would let any client lock out
            // every other's new tokens, so only the per-VM capacity applies (said once).
            abi::log(
                LogLevel::Warn,
                "api-guard: jwt.verification_budget.max_failures is off: this host reports no client address (set client_header)",
            );
        }
        // Workers share verified tokens where the host has shared data, in slots named by
        // this configuration.
        let namespace = caps.shared_data.then(|| shared_namespace(&bytes));
        let verify = policy.verification_state(previous, namespace);
        self.state = Some(Shared {
            policy: Rc::new(policy),
            metrics,
            caps,
            verify: Rc::new(RefCell::new(verify)),
            clock,
            held: Rc::new(RefCell::new(Held::default())),
        });
        true
    }

    fn on_tick(&mut self) {
        let Some(state) = &self.state else { return };
        if watch_held(state) {
            // Calls after this (key fetches, metrics) are the root's own again.
            let _ = abi::set_effective_context(self.id);
        }
        state.metrics.flush();
        let now = now_unix();
        state.clock.set(Some(now));
        if !state.verify.borrow().has_remote() {
            return;
        }
        keystore::adopt_shared(&state.verify, &state.caps);
        let due = state.verify.borrow().due(now);
        for index in due {
            if let Some(token) = keystore::fetch(&state.verify, index, now, &state.caps) {
                self.pending.insert(token, index);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Without a configuration there is nothing to enforce with: the host then fails the
        // request closed, since on_configure returned false.
        self.state.as_ref().map(|s| Box::new(HttpFilter::new(s.clone(), context_id)) as Box<dyn HttpContext>)
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
