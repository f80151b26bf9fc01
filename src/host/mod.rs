//! The thin host layer: Proxy-Wasm contexts that translate host callbacks into
//! [`crate::policy`] calls and carry out the decisions. No policy lives here.
//!
//! - [`abi`]: every host call, with every status handled (no SDK wrapper that panics).
//! - [`root`]: configuration loading; [`http`]: the per-stream filter; [`shared`]: what the
//!   filters of one configuration share; [`metrics`]: counters; [`counters`]: the rate-limit
//!   table's store.
//! - [`held`]: requests held for their body, and the check that the host delivers it.

pub mod abi;
pub mod counters;
pub mod held;
pub mod http;
pub mod keystore;
pub mod metrics;
pub mod root;
pub mod shared;
// Natively only: the fake host stands in for the real one there.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

proxy_wasm::main! {{
    // A panic aborts the VM; say why in the host log before it does.
    std::panic::set_hook(Box::new(|info| {
        abi::log(abi::LogLevel::Critical, &format!("api-guard: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|id| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root::Root::new(id))
    });
}}
