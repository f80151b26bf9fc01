//! Counters, defined once per VM at configure time and shared by every HTTP context.

use std::collections::HashMap;

use super::abi;
use crate::policy::denial::{
    Reason, METRIC_ALLOWED, METRIC_DENIED, METRIC_PREFLIGHT, METRIC_REPORT_ONLY, METRIC_SAFE_ERRORS,
};

/// Counter ids by name. A counter the host refused to define is simply absent.
#[derive(Debug, Default)]
pub struct Metrics {
    ids: HashMap<&'static str, u32>,
}

impl Metrics {
    /// Defines every decision counter: allowed, denied, and one per denial reason.
    pub fn define() -> Metrics {
        let names = [METRIC_ALLOWED, METRIC_DENIED, METRIC_PREFLIGHT, METRIC_REPORT_ONLY, METRIC_SAFE_ERRORS]
            .into_iter()
            .chain(Reason::ALL.iter().map(|r| r.metric()));
        let ids = names.filter_map(|n| abi::define_counter(n).ok().map(|id| (n, id))).collect();
        Metrics { ids }
    }

    /// Adds one to a counter.
    pub fn bump(&self, name: &str) {
        if let Some(id) = self.ids.get(name) {
            abi::increment(*id);
        }
    }
}
