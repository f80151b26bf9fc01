//! The root context: loads the configuration and creates HTTP contexts.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::abi::{self, BufferType, LogLevel};
use super::capabilities::Capabilities;
use super::http::HttpFilter;
use super::metrics::Metrics;
use crate::policy::{config, Policy};

/// Largest configuration accepted, so a host bug cannot make us parse unbounded input.
const MAX_CONFIG_BYTES: usize = 16 * 1024 * 1024;

/// Holds the compiled policy; one per plugin configuration.
#[derive(Default)]
pub struct Root {
    state: Option<Shared>,
}

/// What every HTTP context of this root shares.
#[derive(Clone)]
pub struct Shared {
    /// The compiled policy.
    pub policy: Rc<Policy>,
    /// Counter ids.
    pub metrics: Rc<Metrics>,
    /// What the host can do.
    pub caps: Capabilities,
}

impl Context for Root {}

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
            Ok((policy, doc.host.hold_headers_for_body))
        });
        match parsed {
            Ok((policy, hold)) => {
                let caps = Capabilities::detect(hold);
                abi::log(
                    LogLevel::Info,
                    &format!(
                        "api-guard: configuration loaded ({} routes, host {:?})",
                        policy.routes.len(),
                        caps.kind
                    ),
                );
                // Keep already-defined metrics across reconfiguration.
                let metrics = match &self.state {
                    Some(s) => Rc::clone(&s.metrics),
                    None => Rc::new(Metrics::define()),
                };
                self.state = Some(Shared { policy: Rc::new(policy), metrics, caps });
                true
            }
            Err(e) => {
                // One line that names the field; the previous configuration (if any) stays.
                abi::log(LogLevel::Error, &format!("api-guard: {e}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Without a configuration there is nothing to enforce with: the host then fails the
        // request closed, since on_configure returned false.
        self.state.as_ref().map(|s| Box::new(HttpFilter::new(s.clone())) as Box<dyn HttpContext>)
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
