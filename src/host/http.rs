//! The HTTP context: turns request callbacks into core calls and carries out the decisions.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::abi::{self, LogLevel, MapType};
use super::root::Shared;
use crate::policy::authz::HeaderOp;
use crate::policy::denial::{self, Denial, METRIC_ALLOWED, METRIC_DENIED};
use crate::policy::limits::BodyCounter;
use crate::policy::{request_id, BodyPlan, RequestHead};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for request headers.
    Start,
    /// Counting the body; `holding` when headers are held until the body is judged.
    Body { counter: BodyCounter, holding: bool },
    /// Admitted.
    Allowed,
    /// Denied; a local response was sent.
    Denied,
}

/// One per HTTP stream.
pub struct HttpFilter {
    shared: Shared,
    stage: Stage,
    route: Option<usize>,
    request_id: String,
}

impl HttpFilter {
    /// A filter for one stream.
    pub fn new(shared: Shared) -> HttpFilter {
        HttpFilter { shared, stage: Stage::Start, route: None, request_id: String::new() }
    }

    fn allow(&mut self) {
        self.stage = Stage::Allowed;
        self.shared.metrics.bump(METRIC_ALLOWED);
    }

    fn deny(&mut self, denial: &Denial) -> Action {
        let policy = &self.shared.policy;
        let out = denial::render(denial, &policy.rendering, policy.route_name(self.route), &self.request_id);
        self.stage = Stage::Denied;
        self.shared.metrics.bump(METRIC_DENIED);
        self.shared.metrics.bump(out.metric);
        abi::log(LogLevel::Info, &out.log_line);
        if let Err(e) =
            abi::send_local_response(out.response.status, &out.response.headers, &out.response.body)
        {
            abi::log(LogLevel::Error, &format!("api-guard: host refused local response (status {})", e.0));
        }
        Action::Pause
    }
}

/// Wall-clock time in Unix seconds, from WASI's clock (every host provides it, unlike the
/// Proxy-Wasm time call, which APISIX lacks). A clock before 1970 reads as 0.
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = abi::get_headers(MapType::RequestHeaders).unwrap_or_default();
        let caps = self.shared.caps;
        let head = RequestHead {
            headers: &headers,
            end_of_stream: caps.headers_end_of_stream.then_some(end_of_stream),
        };
        let policy = std::rc::Rc::clone(&self.shared.policy);
        self.request_id = request_id::resolve(head.header(&policy.request_id_header));
        let decision = policy.check_head(&head, now_unix());
        self.route = decision.route;
        let admission = match decision.outcome {
            Err(denial) => return self.deny(&denial),
            Ok(a) => a,
        };
        for op in &admission.headers {
            let applied = match op {
                HeaderOp::Remove(name) => abi::remove_header(MapType::RequestHeaders, name),
                HeaderOp::Set(name, value) => abi::set_header(MapType::RequestHeaders, name, value),
            };
            if let Err(e) = applied {
                // Forwarding without the scrub or the verified claims could let a spoofed header
                // through: fail closed.
                abi::log(
                    LogLevel::Error,
                    &format!("api-guard: cannot rewrite request headers (host status {})", e.0),
                );
                return self.deny(&Denial::new(crate::policy::denial::Reason::AccessDenied));
            }
        }
        match admission.body {
            BodyPlan::None => {
                self.allow();
                Action::Continue
            }
            BodyPlan::Count { limit, declared } => {
                // A declared length was checked already and the host's framing enforces it;
                // an unknown length is counted, holding the headers where the host allows.
                let holding = declared.is_none() && caps.hold_headers_for_body;
                self.stage = Stage::Body { counter: BodyCounter::new(limit), holding };
                if holding {
                    Action::Pause
                } else {
                    Action::Continue
                }
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Stage::Body { mut counter, holding } = self.stage else {
            return if self.stage == Stage::Denied { Action::Pause } else { Action::Continue };
        };
        // While buffering the host reports the total buffered; otherwise each chunk.
        let counted =
            if holding { counter.set_total(body_size as u64) } else { counter.add(body_size as u64) };
        if let Err(denial) = counted {
            return self.deny(&denial);
        }
        self.stage = Stage::Body { counter, holding };
        if end_of_stream {
            self.allow();
            return Action::Continue;
        }
        if holding {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}
