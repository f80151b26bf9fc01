//! The HTTP context: turns request callbacks into core calls and carries out the decisions.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::abi::{self, LogLevel, MapType};
use super::root::Shared;
use crate::policy::authz::HeaderOp;
use crate::policy::denial::{self, Denial, Reason, METRIC_ALLOWED, METRIC_DENIED};
use crate::policy::limits::BodyCounter;
use crate::policy::{request_id, Admission, BodyPlan, RequestHead};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for request headers.
    Start,
    /// Headers paused while a key set is fetched; body bytes buffered meanwhile.
    AwaitingKeys { token: u32, provider: usize, buffered: u64, end_of_stream: bool },
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
    /// The request head, kept only while a decision waits for a key set.
    headers: Vec<(String, Vec<u8>)>,
    end_of_stream: Option<bool>,
}

/// Wall-clock time in Unix seconds, from WASI's clock (every host provides it, unlike the
/// Proxy-Wasm time call, which APISIX lacks). A clock before 1970 reads as 0.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl HttpFilter {
    /// A filter for one stream.
    pub fn new(shared: Shared) -> HttpFilter {
        HttpFilter {
            shared,
            stage: Stage::Start,
            route: None,
            request_id: String::new(),
            headers: Vec::new(),
            end_of_stream: None,
        }
    }

    fn allow(&mut self) {
        self.stage = Stage::Allowed;
        self.shared.metrics.bump(METRIC_ALLOWED);
    }

    fn deny(&mut self, denial: &Denial) -> Action {
        let policy = &self.shared.policy;
        let out = denial::render(denial, &policy.rendering, policy.route_name(self.route), &self.request_id);
        self.stage = Stage::Denied;
        self.headers = Vec::new();
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

    /// Judges the kept request head. With `may_fetch`, a missing or rotated key set is
    /// fetched first (the request waits); otherwise the policy's fallback denial applies.
    /// `buffered`/`body_done` describe body bytes that arrived while waiting.
    fn decide(&mut self, may_fetch: bool, buffered: u64, body_done: bool) -> Action {
        let policy = std::rc::Rc::clone(&self.shared.policy);
        let now = self.shared.now();
        let decision = {
            let head = RequestHead { headers: &self.headers, end_of_stream: self.end_of_stream };
            let keys = self.shared.keys.borrow();
            policy.check_head(&head, &keys.view(&self.shared.tokens, now), now)
        };
        self.route = decision.route;
        let admission = match (decision.outcome, decision.fetch_keys) {
            (Ok(a), _) => a,
            (Err(denial), Some(index)) if may_fetch => {
                let token = self.shared.keys.borrow_mut().fetch(index, now);
                return match token {
                    Some(token) => {
                        self.stage =
                            Stage::AwaitingKeys { token, provider: index, buffered: 0, end_of_stream: false };
                        Action::Pause
                    }
                    None => self.deny(&denial),
                };
            }
            (Err(denial), _) => return self.deny(&denial),
        };
        self.headers = Vec::new();
        self.admit(admission, buffered, body_done)
    }

    fn admit(&mut self, admission: Admission, buffered: u64, body_done: bool) -> Action {
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
                return self.deny(&Denial::new(Reason::AccessDenied));
            }
        }
        match admission.body {
            BodyPlan::None => {
                self.allow();
                Action::Continue
            }
            BodyPlan::Count { limit, declared } => {
                let mut counter = BodyCounter::new(limit);
                if let Err(d) = counter.set_total(buffered) {
                    return self.deny(&d);
                }
                if body_done {
                    self.allow();
                    return Action::Continue;
                }
                // A declared length was checked already and the host's framing enforces it;
                // an unknown length is counted, holding the headers where the host allows.
                let holding = declared.is_none() && self.shared.caps.hold_headers_for_body;
                self.stage = Stage::Body { counter, holding };
                if holding {
                    Action::Pause
                } else {
                    Action::Continue
                }
            }
        }
    }
}

impl Context for HttpFilter {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Stage::AwaitingKeys { token, provider, buffered, end_of_stream } = self.stage else { return };
        if token != token_id {
            return;
        }
        self.shared.complete_fetch(provider, body_size);
        if self.decide(false, buffered, end_of_stream) == Action::Continue {
            if let Err(e) = abi::resume_request() {
                abi::log(LogLevel::Error, &format!("api-guard: cannot resume request (host status {})", e.0));
            }
        }
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.headers = abi::get_headers(MapType::RequestHeaders).unwrap_or_default();
        self.end_of_stream = self.shared.caps.headers_end_of_stream.then_some(end_of_stream);
        let id_header = &self.shared.policy.request_id_header;
        let id = self.headers.iter().find(|(n, _)| n == id_header).map(|(_, v)| v.as_slice());
        self.request_id = request_id::resolve(id);
        self.decide(true, 0, false)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.stage {
            Stage::AwaitingKeys { token, provider, .. } => {
                // Buffer (Pause) until the decision; the host then reports the total so far.
                self.stage =
                    Stage::AwaitingKeys { token, provider, buffered: body_size as u64, end_of_stream };
                Action::Pause
            }
            Stage::Body { mut counter, holding } => {
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
            Stage::Denied => Action::Pause,
            Stage::Start | Stage::Allowed => Action::Continue,
        }
    }
}
