//! The smallest Rust Proxy-Wasm HTTP filter: it does nothing. `make bench` loads it to measure
//! what any wasm filter costs in Envoy, so api-guard's own cost can be told apart. With the
//! plugin configuration `headers` it also reads the request headers once (one host call, the
//! least any header-inspecting filter does), with `headers+metric` it also counts the
//! request in a metric, and with `headers+metric+latency` it also reads the clock before and
//! after and records the difference in a histogram, to show what those calls alone cost.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};

#[derive(Default, Clone, Copy)]
struct Root {
    read_headers: bool,
    metric: Option<u32>,
    histogram: Option<u32>,
}
struct Pass(Root);

impl Context for Root {}
impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        self.read_headers = config.starts_with(b"headers");
        let has = |part: &[u8]| config.split(|b| *b == b'+').any(|p| p == part);
        if has(b"metric") {
            self.metric = hostcalls::define_metric(MetricType::Counter, "empty_filter_requests").ok();
        }
        if has(b"latency") {
            self.histogram = hostcalls::define_metric(MetricType::Histogram, "empty_filter_us").ok();
        }
        true
    }
    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Pass(*self)))
    }
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
impl Context for Pass {}
impl HttpContext for Pass {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let start = self.0.histogram.and_then(|_| hostcalls::get_current_time().ok());
        if self.0.read_headers {
            std::hint::black_box(self.get_http_request_headers_bytes());
        }
        if let Some(id) = self.0.metric {
            let _ = hostcalls::increment_metric(id, 1);
        }
        if let (Some(id), Some(start), Ok(end)) = (self.0.histogram, start, hostcalls::get_current_time()) {
            let us = end.duration_since(start).map_or(0, |d| d.as_micros() as u64);
            let _ = hostcalls::record_metric(id, us);
        }
        Action::Continue
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}
