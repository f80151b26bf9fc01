//! Counters, defined once per VM at configure time and shared by every HTTP context.
//!
//! A counter bumped through the host is one more call across the wasm boundary on every request
//! (`make bench` rows `W-h` and `W-hm` compare an empty filter with and without one). Where the
//! host has timers, increments are therefore counted in the VM and handed to the host as one
//! delta per counter on each tick (every 500 ms) and when the VM stops, the way Envoy's own
//! thread-local counters are flushed. Without timers every increment goes to the host at once.

use std::cell::Cell;
use std::collections::HashMap;

use super::abi;
use crate::policy::denial::{
    Reason, METRIC_ALLOWED, METRIC_DENIED, METRIC_PREFLIGHT, METRIC_REPORT_ONLY, METRIC_SAFE_ERRORS,
};
use crate::policy::jwt::cache::METRIC_SHARED_HITS;
use crate::policy::jwt::CAUSES;

/// One defined counter and what it has counted since the last flush.
#[derive(Debug)]
struct Counter {
    id: u32,
    pending: Cell<u64>,
}

/// Counters by name. A counter the host refused to define is simply absent.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: HashMap<&'static str, Counter>,
    /// Whether increments wait for [`Metrics::flush`] (the host calls it on every tick).
    batched: Cell<bool>,
}

impl Metrics {
    /// Defines every decision counter: allowed, denied, one per denial reason, and one per
    /// invalid-token cause.
    pub fn define() -> Metrics {
        let names = [
            METRIC_ALLOWED,
            METRIC_DENIED,
            METRIC_PREFLIGHT,
            METRIC_REPORT_ONLY,
            METRIC_SAFE_ERRORS,
            METRIC_SHARED_HITS,
        ]
        .into_iter()
        .chain(Reason::ALL.iter().map(|r| r.metric()))
        .chain(CAUSES.iter().map(|(_, m)| *m));
        let counters = names
            .filter_map(|n| abi::define_counter(n).ok().map(|id| (n, Counter { id, pending: Cell::new(0) })))
            .collect();
        Metrics { counters, batched: Cell::new(false) }
    }

    /// Batch increments until the next [`Metrics::flush`] (only once a tick is set up), or
    /// send each at once (flushing what was batched).
    pub fn set_batched(&self, batched: bool) {
        if !batched {
            self.flush();
        }
        self.batched.set(batched);
    }

    /// Adds one to a counter.
    pub fn bump(&self, name: &str) {
        if let Some(c) = self.counters.get(name) {
            if self.batched.get() {
                c.pending.set(c.pending.get().saturating_add(1));
            } else {
                abi::increment(c.id, 1);
            }
        }
    }

    /// Hands every batched increment to the host.
    pub fn flush(&self) {
        for c in self.counters.values() {
            let n = c.pending.replace(0);
            if n > 0 {
                abi::increment(c.id, n);
            }
        }
    }
}
