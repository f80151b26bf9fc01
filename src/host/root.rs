//! The root context: loads the configuration, creates HTTP contexts, and refreshes remote key
//! sets in the background where the host has timers.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::abi::{self, BufferType, LogLevel};
use super::counters::Counters;
use super::held::{self, Held};
use super::http::HttpFilter;
use super::keystore;
use super::metrics::Metrics;
use super::shared::{now_unix, Shared};
use crate::policy::capabilities::HostKind;
use crate::policy::denial::{self, Denial, Reason, RequestTag};
use crate::policy::jwt::cache::shared_namespace;
use crate::policy::load::{self, Level, Loaded, Note};
use crate::policy::telemetry;

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

/// Logs what [`load`] noted, one line each.
pub fn log_notes(notes: &[Note]) {
    for n in notes {
        let level = match n.level {
            Level::Warn => LogLevel::Warn,
            Level::Info => LogLevel::Info,
        };
        abi::log(level, &format!("api-guard: {}: {}", n.path, n.message));
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
        if state.complete_fetch(index, body_size) {
            if let Some(token) = keystore::fetch(&state.verify, index, state.now(), &state.caps) {
                self.pending.insert(token, index);
            }
        }
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
            &RequestTag { route: policy.route_name(s.route), method: None, request_id: &s.request_id },
            None,
        );
        state.account(&out, s.route);
        if let Err(e) = abi::send_local_response(
            out.response.status,
            &out.response.headers,
            &out.response.body,
            &out.response.details,
        ) {
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
        // Named before the bytes go (the load drops them before compiling).
        let namespace = shared_namespace(&bytes);
        let loaded = load::load_owned(bytes, || {
            // Envoy answers the `plugin_vm_id` property from a root context; other hosts either
            // lack it or refuse property reads outside a request, and get the cautious profile.
            match abi::get_property(&["plugin_vm_id"]) {
                Ok(Some(_)) => HostKind::Envoy,
                _ => HostKind::Unknown,
            }
        });
        let Loaded { policy, caps, notes } = match loaded {
            Ok(l) => l,
            Err(e) => {
                // One line that names the field; the previous configuration (if any) stays.
                abi::log(LogLevel::Error, &format!("api-guard: {e}"));
                return false;
            }
        };
        log_notes(&notes);
        // Keep already-defined metrics and still-valid key sets across reconfiguration.
        let (metrics, previous) = match self.state.take() {
            Some(s) => (s.metrics, Rc::try_unwrap(s.verify).ok().map(RefCell::into_inner)),
            None => (Rc::new(Metrics::default()), None),
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
        // Workers share verified tokens where the host has shared data, in slots named by
        // this configuration.
        let counters = Counters::new(&policy, &caps, &namespace).map(Rc::new);
        let namespace = caps.shared_data.then_some(namespace);
        let verify = policy.verification_state(previous, namespace);
        self.state = Some(Shared {
            policy: Rc::new(policy),
            metrics,
            caps,
            verify: Rc::new(RefCell::new(verify)),
            clock,
            held: Rc::new(RefCell::new(Held::default())),
            counters,
        });
        true
    }

    fn on_tick(&mut self) {
        let Some(state) = &self.state else { return };
        if watch_held(state) {
            // Calls after this (key fetches, metrics) are the root's own again.
            let _ = abi::set_effective_context(self.id);
        }
        let now = now_unix();
        state.clock.set(Some(now));
        if let Some(c) = &state.counters {
            c.refresh();
        }
        if !state.verify.borrow().has_remote() {
            state.metrics.flush();
            return;
        }
        // Key-set health, as the core sees it (gauges are set, not batched).
        for h in state.verify.borrow().health(now) {
            let m = &state.metrics;
            m.set_gauge(&telemetry::key_set(telemetry::JWKS_KEYS, h.provider), h.keys as u64);
            m.set_gauge(&telemetry::key_set(telemetry::JWKS_AGE, h.provider), h.age_seconds.unsigned_abs());
            m.set_gauge(&telemetry::key_set(telemetry::JWKS_STALE, h.provider), u64::from(h.stale));
        }
        state.metrics.flush();
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
