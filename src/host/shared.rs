//! What every HTTP context of one root context shares: the compiled policy, counters, the
//! host's capabilities, the verification state (key sets, token cache, budget), the clock and
//! the held-request watch. Its own module so the root context (which makes filters) and the
//! filters (which use it) do not import each other.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::abi::{self, LogLevel};
use super::counters::Counters;

use super::held::Held;
use super::keystore;
use super::metrics::Metrics;
use crate::policy::capabilities::Capabilities;
use crate::policy::denial;
use crate::policy::jwt::state::State;
use crate::policy::telemetry::Decision;
use crate::policy::Policy;

/// What every HTTP context of this root shares.
#[derive(Clone)]
pub struct Shared {
    /// The compiled policy.
    pub policy: Rc<Policy>,
    /// Counter ids.
    pub metrics: Rc<Metrics>,
    /// What the host can do.
    pub caps: Capabilities,
    /// This VM's verification state: remote key sets, verified tokens, failed verifications.
    pub verify: Rc<RefCell<State>>,
    /// Wall-clock seconds, refreshed on every tick where the host has timers, so requests do
    /// not each pay a host call for the time (half a second of staleness is far inside any skew).
    pub clock: Rc<Cell<Option<i64>>>,
    /// Requests held for their body, watched for a host that does not deliver it.
    pub held: Rc<RefCell<Held>>,
    /// The rate-limit counters, where the policy has limits.
    pub counters: Option<Rc<Counters>>,
}

/// Wall-clock time in Unix seconds, from WASI's clock (every host provides it, unlike the
/// Proxy-Wasm time call, which APISIX lacks). A clock before 1970 reads as 0.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Shared {
    /// Counts a denial (its reason, cause, provider and route) and writes its log line: the one
    /// place a rendered denial is accounted for, whether it is then sent or a body is emptied.
    pub fn account(&self, out: &denial::Rendered, route: Option<usize>) {
        self.metrics.request(
            Decision::Denied,
            Some(out.reason),
            out.cause,
            out.provider,
            route,
            &self.policy,
        );
        abi::log(LogLevel::Info, &out.log_line);
    }

    /// The current time in Unix seconds: the tick-refreshed value, or the WASI clock.
    pub fn now(&self) -> i64 {
        self.clock.get().unwrap_or_else(now_unix)
    }

    /// Takes in a key-set response for provider `index` (from whichever context sent the
    /// request). A changed key set empties the token cache, so a removed key cannot live on.
    /// `true` when the answer was a discovery document and the key set is to be fetched next.
    pub fn complete_fetch(&self, index: usize, body_size: usize) -> bool {
        keystore::complete(&self.verify, index, body_size, self.now(), &self.caps, &self.metrics)
    }
}
