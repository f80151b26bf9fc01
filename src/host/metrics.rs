//! Counters and gauges, shared by every HTTP context of a configuration.
//!
//! Series are named by the core ([`crate::policy::telemetry`]: labels written into the name)
//! and defined with the host the first time they are used, so only series that happen exist,
//! and their number is bounded by the configuration. A counter bumped through the host is one
//! more call across the wasm boundary on every request (`make bench` rows `W-h` and `W-hm`
//! compare an empty filter with and without one). Where the host has timers, increments are
//! therefore counted in the VM and handed to the host as one delta per series on each tick
//! (every 500 ms) and when the VM stops, the way Envoy's own thread-local counters are flushed.
//! Without timers every increment goes to the host at once. Decision-latency samples
//! (`metrics.decision_latency`) go to the host as they are taken.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::abi;
use crate::policy::denial::Reason;
use crate::policy::telemetry::{self, Decision, Phase, RequestLabels};
use crate::policy::Policy;

/// One series and what it has counted since the last flush; `id` is `None` where the host
/// refused to define it (it is then not asked again).
#[derive(Debug)]
struct Counter {
    id: Option<u32>,
    pending: Cell<u64>,
}

impl Counter {
    fn define(name: &str) -> Counter {
        Counter { id: abi::define_counter(name).ok(), pending: Cell::new(0) }
    }
}

/// A `requests_total` series: decision, reason, cause, provider index, route index.
type RequestKey = (Decision, Option<Reason>, Option<&'static str>, Option<usize>, Option<usize>);

/// The series of one VM.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `requests_total` by its labels; the most frequent series, looked up without building
    /// its name.
    requests: RefCell<HashMap<RequestKey, Counter>>,
    /// Every other counter, by its full name.
    named: RefCell<HashMap<String, Counter>>,
    /// Gauges by full name.
    gauges: RefCell<HashMap<String, Option<u32>>>,
    /// Whether increments wait for [`Metrics::flush`] (the host calls it on every tick).
    batched: Cell<bool>,
    /// The decision-latency histograms by phase, once defined (inner `None`: the host
    /// refused).
    latency: RefCell<[Option<Option<u32>>; 2]>,
}

impl Metrics {
    /// Batch increments until the next [`Metrics::flush`] (only once a tick is set up), or
    /// send each at once (flushing what was batched).
    pub fn set_batched(&self, batched: bool) {
        if !batched {
            self.flush();
        }
        self.batched.set(batched);
    }

    fn add(&self, c: &Counter) {
        if self.batched.get() {
            c.pending.set(c.pending.get().saturating_add(1));
        } else if let Some(id) = c.id {
            abi::increment(id, 1);
        }
    }

    /// Counts one request: its decision, the denial's reason and cause, the provider whose
    /// token was judged and its route (indexes into `policy`, which names the series the
    /// first time it is used).
    pub fn request(
        &self,
        decision: Decision,
        reason: Option<Reason>,
        cause: Option<&'static str>,
        provider: Option<usize>,
        route: Option<usize>,
        policy: &Policy,
    ) {
        let key = (decision, reason, cause, provider, route);
        let mut map = self.requests.borrow_mut();
        let c = map.entry(key).or_insert_with(|| {
            let provider = provider.and_then(|i| policy.provider_label(i));
            let labels = RequestLabels { decision, reason, cause, provider, route: policy.route_name(route) };
            Counter::define(&telemetry::requests(&labels))
        });
        self.add(c);
    }

    /// Adds one to the counter named `name` (a [`telemetry`] name).
    pub fn bump(&self, name: &str) {
        let mut map = self.named.borrow_mut();
        if !map.contains_key(name) {
            map.insert(name.to_string(), Counter::define(name));
        }
        if let Some(c) = map.get(name) {
            self.add(c);
        }
    }

    /// Sets the gauge named `name`.
    pub fn set_gauge(&self, name: &str, value: u64) {
        let mut map = self.gauges.borrow_mut();
        if !map.contains_key(name) {
            map.insert(name.to_string(), abi::define_gauge(name).ok());
        }
        if let Some(Some(id)) = map.get(name) {
            abi::record(*id, value);
        }
    }

    /// Records one phase's time in the decision-latency histogram (a sample goes to the host
    /// at once: histograms have no delta to batch).
    pub fn latency(&self, phase: Phase, micros: u64) {
        let mut ids = self.latency.borrow_mut();
        let Some(slot) = ids.get_mut(phase as usize) else { return };
        if let Some(id) = *slot.get_or_insert_with(|| abi::define_histogram(&phase.series()).ok()) {
            abi::record(id, micros);
        }
    }

    /// Hands every batched increment to the host.
    pub fn flush(&self) {
        let send = |c: &Counter| {
            let n = c.pending.replace(0);
            if let (true, Some(id)) = (n > 0, c.id) {
                abi::increment(id, n);
            }
        };
        self.requests.borrow().values().for_each(send);
        self.named.borrow().values().for_each(send);
    }
}
