//! The smallest Rust Proxy-Wasm HTTP filter: it does nothing. `make bench` loads it to measure
//! what any wasm filter costs in Envoy, so api-guard's own cost can be told apart. With the
//! plugin configuration `headers` it also reads the request headers once (one host call, the
//! least any header-inspecting filter does), with `headers+metric` it also counts the
//! request in a metric, and with `headers+metric+latency` it also reads the clock before and
//! after and records the difference in a histogram, to show what those calls alone cost.
//! With `bodies` it holds the whole request body and reads it once, and holds the answer
//! (its headers paused, `content-length` removed) and puts its body back unchanged: what the
//! host charges any filter that judges a request body and rewrites a response body.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};

#[derive(Default, Clone, Copy)]
struct Root {
    read_headers: bool,
    metric: Option<u32>,
    histogram: Option<u32>,
    /// Hold the request body and read it.
    request_body: bool,
    /// Hold the answer: headers paused, `content-length` removed, body held to its end.
    hold_response: bool,
    /// Read the held answer's body and put it back.
    replace_response: bool,
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
        // `bodies` is all three; each alone shows its own share.
        let bodies = has(b"bodies");
        self.request_body = bodies || has(b"request-body");
        self.hold_response = bodies || has(b"hold-response") || has(b"replace-response");
        self.replace_response = bodies || has(b"replace-response");
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
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
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
        // A filter that judges the body holds the headers until it has (as api-guard does).
        if self.0.request_body && !end_of_stream {
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !self.0.request_body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        std::hint::black_box(self.get_http_request_body(0, size));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if !self.0.hold_response || end_of_stream {
            return Action::Continue;
        }
        self.set_http_response_header("content-length", None);
        Action::Pause
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !self.0.hold_response {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        if !self.0.replace_response {
            return Action::Continue;
        }
        if let Some(body) = self.get_http_response_body(0, size) {
            self.set_http_response_body(0, size, &body);
        }
        Action::Continue
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}
