//! The HTTP context: turns request callbacks into core calls and carries out the decisions.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::abi::{self, LogLevel, MapType};
use super::shared::Shared;
use super::{held, keystore};
use crate::policy::body::{BodyCheck, BodyInspector};
use crate::policy::capabilities::Capabilities;
use crate::policy::denial::{self, Denial, LocalResponse, Reason, RequestTag};
use crate::policy::http::{apply_header_ops, HeaderOp};
use crate::policy::jwt::budget::{self, ClientSource};
use crate::policy::jwt::state::View;
use crate::policy::method::Method;
use crate::policy::ratelimit::rls;
use crate::policy::ratelimit::Limiter;
use crate::policy::reply::{BodyChunk, BodyHost, BodyStep, BodyWork, Owed};
use crate::policy::telemetry::{self, Decision, Phase};
use crate::policy::{request_id, Admission, BodyPlan, RequestHead, Suspended, Wait};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for request headers.
    Start,
    /// Headers paused while a key set is fetched or the rate-limit service is asked (the call
    /// with this token); body bytes buffered meanwhile.
    Awaiting { token: u32, buffered: u64, end_of_stream: bool },
    /// Following the body (see `HttpFilter::body`); `buffering` when the host keeps it whole
    /// (headers held, or a final validation needs every byte).
    Body { buffering: bool },
    /// Admitted.
    Allowed,
    /// Denied; a local response was sent.
    Denied,
    /// Answered here (an allowed CORS preflight); a local response was sent.
    Answered,
}

/// A suspended decision to go on with, and what its callout brought.
enum Resume {
    /// The key set was fetched (or could not be).
    Keys(Suspended),
    /// The rate-limit service answered this message (`None`: it did not, in time or at all).
    Limits(Suspended, Option<Vec<u8>>),
}

/// One per HTTP stream.
pub struct HttpFilter {
    shared: Shared,
    /// This stream's context id (for the held-request watch).
    context: u32,
    stage: Stage,
    route: Option<usize>,
    request_id: String,
    /// The request's method, where it is one api-guard knows (for log lines).
    method: Option<Method>,
    /// The request head, kept only while a decision waits for a callout.
    headers: Vec<(String, Vec<u8>)>,
    /// The decision waiting for a callout (with `Stage::Awaiting`), saying for what.
    waiting: Option<Suspended>,
    end_of_stream: Option<bool>,
    /// The body check and its state, while the body arrives.
    body: Option<(BodyCheck, BodyInspector)>,
    /// What the request phase decided for the response (CORS headers, field rules, the
    /// operation's headers).
    owed: Owed,
    /// What the response body is owed, once its headers were judged.
    work: BodyWork,
    /// The response headers have left (not paused, or resumed by the watch): a body that
    /// cannot be rewritten is emptied, since a local response can no longer replace it.
    headers_left: bool,
    /// The response body is being withheld after its headers left: every chunk is emptied.
    emptying: bool,
    /// Nanoseconds spent in each phase's callbacks so far (`metrics.decision_latency`).
    spent_ns: [u64; 2],
}

/// The request's client (its budget key, see [`budget::client_of`]) and the host's name for
/// its connection. Host reads only; which value names the client is the core's rule.
fn client_and_connection(
    headers: &[(String, Vec<u8>)],
    source: &ClientSource,
    caps: &Capabilities,
) -> (Option<String>, Option<u64>) {
    let peer = || {
        let raw = (!caps.client_address.is_empty()).then(|| abi::get_property(caps.client_address));
        raw.and_then(|r| r.ok().flatten()).and_then(|r| String::from_utf8(r).ok())
    };
    let client = budget::client_of(source, headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())), peer);
    let connection = caps
        .connection_id
        .and_then(|(path, format)| abi::get_property(path).ok().flatten().and_then(|raw| format.parse(&raw)));
    (client, connection)
}

/// The SHA-256 of the connection's TLS client certificate, from the host's hex digest.
fn client_certificate(caps: &Capabilities) -> Option<[u8; 32]> {
    if caps.client_certificate.is_empty() {
        return None;
    }
    let hex = abi::get_property(caps.client_certificate).ok().flatten()?;
    crate::policy::digest::from_hex(&hex)
}

/// Largest introspection answer read.
const MAX_INTROSPECTION_BYTES: usize = 64 * 1024;

impl HttpFilter {
    /// A filter for one stream.
    pub fn new(shared: Shared, context: u32) -> HttpFilter {
        HttpFilter {
            shared,
            context,
            stage: Stage::Start,
            route: None,
            request_id: String::new(),
            method: None,
            headers: Vec::new(),
            waiting: None,
            end_of_stream: None,
            body: None,
            owed: Owed::default(),
            work: BodyWork::Pass,
            headers_left: false,
            emptying: false,
            spent_ns: [0; 2],
        }
    }

    /// Runs one callback's work, adding its time to `phase` where the policy measures it.
    fn timed<R>(&mut self, phase: Phase, work: impl FnOnce(&mut Self) -> R) -> R {
        if !self.shared.policy.decision_latency {
            return work(self);
        }
        let start = abi::monotonic_ns();
        let out = work(self);
        if let (Some(start), Some(end), Some(spent)) =
            (start, abi::monotonic_ns(), self.spent_ns.get_mut(phase as usize))
        {
            *spent = spent.saturating_add(end.saturating_sub(start));
        }
        out
    }

    fn allow(&mut self) {
        self.release();
        self.stage = Stage::Allowed;
        self.count(Decision::Allowed);
    }

    /// What this request's denials and log lines name it by.
    fn tag(&self) -> RequestTag<'_> {
        RequestTag {
            route: self.shared.policy.route_name(self.route),
            method: self.method,
            request_id: &self.request_id,
        }
    }

    /// Counts a request that was not denied.
    fn count(&self, decision: Decision) {
        let (provider, route) = (self.owed.provider, self.route);
        self.shared.metrics.request(decision, None, None, provider, route, &self.shared.policy);
    }

    /// The request is no longer held for its body.
    fn release(&self) {
        if let Ok(mut held) = self.shared.held.try_borrow_mut() {
            held.release(self.context);
        }
    }

    fn deny(&mut self, denial: &Denial) -> Action {
        self.release();
        let policy = &self.shared.policy;
        let out = denial::render(denial, &policy.rendering, &self.tag(), self.owed.cors.as_deref());
        self.stage = Stage::Denied;
        self.headers = Vec::new();
        self.body = None;
        self.shared.account(&out, self.route);
        if let Err(e) = abi::send_local_response(
            out.response.status,
            &out.response.headers,
            &out.response.body,
            &out.response.details,
        ) {
            abi::log(LogLevel::Error, &format!("api-guard: host refused local response (status {})", e.0));
        }
        Action::Pause
    }

    /// Replaces an upstream response that cannot be redacted with a 502 problem, or, once its
    /// headers have left, empties its body (`body_size` bytes buffered so far, and every chunk
    /// after): the body never reaches the client either way.
    fn withhold(&mut self, cause: &'static str, body_size: usize) -> Action {
        self.work = BodyWork::Pass;
        let denial = Denial { cause: Some(cause), ..Denial::new(Reason::ResponseWithheld) };
        if !self.headers_left {
            return self.deny(&denial);
        }
        let policy = &self.shared.policy;
        let out = denial::render(&denial, &policy.rendering, &self.tag(), self.owed.cors.as_deref());
        self.shared.account(&out, self.route);
        self.emptying = true;
        self.empty_body(body_size)
    }

    /// What this host can do with response bodies, as the core asks it.
    fn body_host(&self) -> BodyHost {
        BodyHost {
            can_replace: self.shared.caps.body_rewrite,
            buffer_limit: self.shared.caps.response_buffer_bytes,
        }
    }

    /// Applies response header edits: in one host call where the host can replace the map
    /// (the edited copy of what was read), one at a time elsewhere.
    fn apply_response_ops(&self, upstream: Vec<(String, Vec<u8>)>, ops: &[HeaderOp]) {
        if self.shared.caps.set_header_map && ops.len() > 1 && !upstream.is_empty() {
            let mut edited = upstream;
            apply_header_ops(&mut edited, ops);
            if let Err(e) = abi::set_headers(MapType::ResponseHeaders, &edited) {
                abi::log(
                    LogLevel::Warn,
                    &format!("api-guard: cannot edit response headers (host status {})", e.0),
                );
            }
            // Replacing the map does not drop `Content-Length` on Kong (nginx keeps it outside
            // the header list): a rewritten body would go out under the old length.
            if ops.iter().any(|op| matches!(op, HeaderOp::Remove(n) if n == "content-length")) {
                let _ = abi::remove_header(MapType::ResponseHeaders, "content-length");
            }
            return;
        }
        for op in ops {
            let applied = match op {
                HeaderOp::Remove(name) => abi::remove_header(MapType::ResponseHeaders, name),
                HeaderOp::Set(name, value) => abi::set_header(MapType::ResponseHeaders, name, value),
            };
            if let Err(e) = applied {
                abi::log(
                    LogLevel::Warn,
                    &format!("api-guard: cannot edit response headers (host status {})", e.0),
                );
            }
        }
    }

    /// Empties the buffered response body (the chunk, when not buffering).
    fn empty_body(&self, body_size: usize) -> Action {
        if let Err(e) = abi::set_buffer(abi::BufferType::ResponseBody, 0, body_size, &[]) {
            abi::log(
                LogLevel::Error,
                &format!("api-guard: cannot empty a withheld body (host status {})", e.0),
            );
        }
        Action::Continue
    }

    /// Judges the kept request head: the whole of it (`resume` is `None`), or a decision that
    /// waited for a callout, from where it stopped. A first decision may fetch a missing or
    /// rotated key set (the request waits); a resumed one sends the policy's fallback denial.
    /// A decision that needs the rate-limit service's answer waits for it, whenever it comes.
    /// `buffered`/`body_done` describe body bytes that arrived while waiting.
    fn decide(&mut self, resume: Option<Resume>, buffered: u64, body_done: bool) -> Action {
        let policy = std::rc::Rc::clone(&self.shared.policy);
        let now = self.shared.now();
        let first = resume.is_none();
        let judge = |limiter: Option<&Limiter<'_>>| {
            let head = RequestHead { headers: &self.headers, end_of_stream: self.end_of_stream };
            let rules = policy.jwt.as_ref().and_then(|j| j.budget.as_ref());
            let source = rules.map_or(&ClientSource::Peer, |r| &r.client);
            let client = || client_and_connection(&self.headers, source, &self.shared.caps);
            let certificate = || client_certificate(&self.shared.caps);
            let counters = self.shared.counters.as_deref();
            let taken =
                |key: &[u8; 32], until: i64| counters.is_some_and(|c| c.proof_taken(key, until - now));
            let mut view = View::new(&self.shared.verify, now, keystore::shared_data(&self.shared.caps))
                .with_client(&client)
                .with_certificate(&certificate)
                .with_proofs(&taken);
            if let Some(l) = limiter {
                view = view.with_limiter(l);
            }
            let decision = match &resume {
                None => policy.check_head(&head, &view, now),
                Some(Resume::Keys(s)) => policy.resume_head(s, &head, &view, now),
                Some(Resume::Limits(s, answer)) => {
                    policy.resume_limits(s, answer.as_deref(), &head, &view, now)
                }
            };
            for _ in 0..view.shared_hits() {
                self.shared.metrics.bump(telemetry::SHARED_TOKEN_HITS);
            }
            for (index, event) in limiter.map(Limiter::events).unwrap_or_default() {
                self.shared.metrics.bump(&telemetry::rate_limit(policy.rate_limit_name(index), event));
            }
            decision
        };
        let decision = match &self.shared.counters {
            Some(c) => c.with_limiter(judge),
            None => judge(None),
        };
        self.route = decision.route;
        self.owed.cors = decision.cors;
        if let Some(d) = &decision.shadow {
            let route = telemetry::label_value(policy.route_name(self.route));
            self.shared.metrics.bump(&telemetry::report_only(d.reason, &route));
            let line = denial::report_only_log_line(d, &self.tag());
            abi::log(LogLevel::Info, &line);
        }
        let admission = match (decision.outcome, decision.suspended) {
            (Ok(a), _) => a,
            (Err(denial), Some(suspended)) => match &suspended.wait {
                Wait::Keys(index) if first => {
                    match keystore::fetch(&self.shared.verify, *index, now, &self.shared.caps) {
                        Some(token) => return self.wait_for(token, suspended),
                        None => return self.deny(&denial),
                    }
                }
                Wait::Limits(call) => {
                    let service = policy.rate_limits.as_ref().and_then(|r| r.service.as_ref());
                    let sent = service.map(|s| {
                        abi::grpc_call(&s.upstream, rls::SERVICE, rls::METHOD, &call.message, s.timeout_ms)
                    });
                    match sent {
                        Some(Ok(token)) => return self.wait_for(token, suspended),
                        failed => {
                            if let Some(Err(e)) = failed {
                                abi::log(
                                    LogLevel::Warn,
                                    &format!(
                                        "api-guard: cannot call the rate-limit service (host status {})",
                                        e.0
                                    ),
                                );
                            }
                            return self.decide(Some(Resume::Limits(suspended, None)), buffered, body_done);
                        }
                    }
                }
                Wait::Introspect(index, token) if first => {
                    let call = policy
                        .jwt
                        .as_ref()
                        .and_then(|j| j.providers.get(*index))
                        .and_then(|p| p.introspection_call(token, self.shared.caps.clusters));
                    let sent =
                        call.map(|c| abi::http_call(&c.upstream, &c.headers, Some(&c.body), c.timeout_ms));
                    match sent {
                        Some(Ok(t)) => return self.wait_for(t, suspended),
                        failed => {
                            if let Some(Err(e)) = failed {
                                abi::log(
                                    LogLevel::Warn,
                                    &format!(
                                        "api-guard: cannot call the introspection endpoint (host status {})",
                                        e.0
                                    ),
                                );
                            }
                            return self.deny(&denial);
                        }
                    }
                }
                // Asked already: what stands is the denial (keys or introspection unavailable).
                Wait::Keys(_) | Wait::Introspect(..) => return self.deny(&denial),
            },
            (Err(denial), None) => return self.deny(&denial),
        };
        self.headers = Vec::new();
        self.admit(admission, buffered, body_done)
    }

    /// Pauses the request until the callout with `token` answers.
    fn wait_for(&mut self, token: u32, suspended: Suspended) -> Action {
        self.waiting = Some(suspended);
        self.stage = Stage::Awaiting { token, buffered: 0, end_of_stream: false };
        Action::Pause
    }

    /// Applies an admission: what the response is owed, a local answer (a CORS preflight), the
    /// request header edits, then the body plan. `buffered`/`body_done` describe body bytes
    /// that arrived while a key set was fetched.
    fn admit(&mut self, admission: Admission, buffered: u64, body_done: bool) -> Action {
        self.owed.headers = admission.response_headers;
        self.owed.authenticated = admission.authenticated;
        self.owed.provider = admission.provider;
        self.owed.duty = admission.response;
        if let Some(reply) = admission.respond {
            return self.answer(&reply);
        }
        if let Err(denial) = self.edit_request(&admission.headers) {
            return self.deny(&denial);
        }
        match admission.body {
            BodyPlan::None => {
                self.allow();
                Action::Continue
            }
            BodyPlan::Check(check) => self.follow_body(check, buffered, body_done),
        }
    }

    /// Answers here (an allowed CORS preflight): nothing goes upstream.
    fn answer(&mut self, reply: &LocalResponse) -> Action {
        self.stage = Stage::Answered;
        self.headers = Vec::new();
        self.count(Decision::Preflight);
        if let Err(e) = abi::send_local_response(reply.status, &reply.headers, &reply.body, &reply.details) {
            abi::log(LogLevel::Error, &format!("api-guard: host refused local response (status {})", e.0));
        }
        Action::Pause
    }

    /// Applies the request header edits. Forwarding without the scrub or the verified claims
    /// could let a spoofed header through, so a failed edit is a denial (fail closed).
    fn edit_request(&self, ops: &[HeaderOp]) -> Result<(), Denial> {
        for op in ops {
            let applied = match op {
                HeaderOp::Remove(name) if self.shared.caps.remove_request_header => {
                    abi::remove_header(MapType::RequestHeaders, name)
                }
                // Where a removal does not reach the upstream (Kong behind `proxy_pass`), an
                // emptied value does: the token or a spoofed claim never leaves.
                HeaderOp::Remove(name) => abi::set_header(MapType::RequestHeaders, name, ""),
                HeaderOp::Set(name, value) => abi::set_header(MapType::RequestHeaders, name, value),
            };
            if let Err(e) = applied {
                abi::log(
                    LogLevel::Error,
                    &format!("api-guard: cannot rewrite request headers (host status {})", e.0),
                );
                return Err(Denial::new(Reason::AccessDenied));
            }
        }
        Ok(())
    }

    /// Starts following the body under `check`: asks for it where the host needs asking, holds
    /// the headers where the body could still be refused after they would have gone on, and
    /// judges bytes that already arrived.
    fn follow_body(&mut self, check: BodyCheck, buffered: u64, body_done: bool) -> Action {
        if self.shared.caps.request_body_opt_in {
            // APISIX calls the body callback only when asked, with the whole body.
            if let Err(e) = abi::set_property(&["wasm_process_req_body"], b"on") {
                abi::log(
                    LogLevel::Error,
                    &format!("api-guard: cannot ask for the request body (host status {})", e.0),
                );
                return self.deny(&Denial::new(Reason::AccessDenied));
            }
        }
        // Hold the headers where the host allows whenever the body could still be
        // refused after they would have gone on: an unknown length, or bytes to judge.
        let hold =
            self.shared.caps.hold_headers_for_body && (check.declared.is_none() || check.needs_bytes());
        let buffering = hold || check.needs_whole();
        self.body = Some((check, BodyInspector::new(&check)));
        self.stage = Stage::Body { buffering };
        if buffered > 0 || body_done {
            // Bytes that arrived while the head was judged sit in the host's buffer.
            self.on_body(usize::try_from(buffered).unwrap_or(usize::MAX), body_done, true);
            match self.stage {
                Stage::Allowed => return Action::Continue,
                Stage::Denied => return Action::Pause,
                _ => {}
            }
        }
        if hold {
            // A host seen not to deliver held bodies would hang this request.
            if self.shared.held.borrow().broken {
                return self.deny(&Denial::new(Reason::HostMisconfigured));
            }
            self.shared.held.borrow_mut().hold(self.context, check.declared, &self.request_id, self.route);
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// A body callback: `size` is the chunk's size, or with `buffering` the total buffered.
    fn on_body(&mut self, size: usize, end_of_stream: bool, buffering: bool) -> Action {
        let Some((check, inspector)) = self.body.as_mut() else {
            return Action::Continue;
        };
        let counted = if buffering { inspector.set_total(size as u64) } else { inspector.add(size as u64) };
        if let Err(denial) = counted {
            return self.deny(&denial);
        }
        if check.needs_bytes() {
            // Buffered: read what is new since the last callback. Streaming: the chunk.
            let start = if buffering { usize::try_from(inspector.fed()).unwrap_or(usize::MAX) } else { 0 };
            let want = size.saturating_sub(start);
            if want > 0 {
                let chunk = match abi::get_buffer_range(abi::BufferType::RequestBody, start, want) {
                    Ok(bytes) => bytes.unwrap_or_default(),
                    Err(e) => {
                        // Unread bytes cannot be judged: fail closed.
                        abi::log(
                            LogLevel::Error,
                            &format!("api-guard: cannot read request body (host status {})", e.0),
                        );
                        return self.deny(&Denial::new(Reason::AccessDenied));
                    }
                };
                if let Err(denial) = inspector.feed(&chunk) {
                    return self.deny(&denial);
                }
            }
        }
        if !end_of_stream {
            return if buffering { Action::Pause } else { Action::Continue };
        }
        match self.shared.policy.finish_body(check, inspector) {
            Ok(()) => {
                self.body = None;
                self.allow();
                Action::Continue
            }
            Err(denial) => self.deny(&denial),
        }
    }
}

/// The callbacks' work, each timed by the trait methods below.
impl HttpFilter {
    fn call_response(&mut self, token_id: u32, body_size: usize) {
        let Stage::Awaiting { token, buffered, end_of_stream } = self.stage else { return };
        if token != token_id {
            return;
        }
        let Some(suspended) = self.waiting.take() else { return };
        if let Wait::Introspect(provider, token) = &suspended.wait {
            let (status, body) = keystore::call_answer(MAX_INTROSPECTION_BYTES, body_size);
            let policy = std::rc::Rc::clone(&self.shared.policy);
            if let Some(p) = policy.jwt.as_ref().and_then(|j| j.providers.get(*provider)) {
                let answer = p.introspected(status, body.as_deref(), self.shared.now());
                if let Err(e) = &answer {
                    self.shared.metrics.bump(&telemetry::introspections(&p.name, e.name()));
                } else {
                    self.shared.metrics.bump(&telemetry::introspections(&p.name, "active"));
                }
                let (shared, now) = (keystore::shared_data(&self.shared.caps), self.shared.now());
                self.shared.verify.borrow_mut().introspected(
                    *provider,
                    token,
                    answer,
                    p.inactive_seconds(),
                    now,
                    shared,
                );
            }
            self.resume_with(Resume::Keys(suspended), buffered, end_of_stream);
            return;
        }
        let Wait::Keys(provider) = suspended.wait else {
            self.waiting = Some(suspended);
            return;
        };
        if self.shared.complete_fetch(provider, body_size) {
            // The discovery document came: this request waits on for the key set it names.
            let now = self.shared.now();
            if let Some(token) = keystore::fetch(&self.shared.verify, provider, now, &self.shared.caps) {
                self.waiting = Some(suspended);
                self.stage = Stage::Awaiting { token, buffered, end_of_stream };
                return;
            }
        }
        self.resume_with(Resume::Keys(suspended), buffered, end_of_stream);
    }

    fn grpc_response(&mut self, token_id: u32, status: u32, size: usize) {
        let Stage::Awaiting { token, buffered, end_of_stream } = self.stage else { return };
        if token != token_id {
            return;
        }
        let Some(suspended) = self.waiting.take() else { return };
        if !matches!(suspended.wait, Wait::Limits(_)) {
            self.waiting = Some(suspended);
            return;
        }
        let answer = if status == 0 {
            abi::get_buffer(abi::BufferType::GrpcReceiveBuffer, size).ok().flatten()
        } else {
            // Counted per policy as an error; the status says why (14 unavailable, 4 timeout).
            abi::log(
                LogLevel::Warn,
                &format!("api-guard: rate-limit service call failed (gRPC status {status})"),
            );
            None
        };
        self.resume_with(Resume::Limits(suspended, answer), buffered, end_of_stream);
    }

    /// Goes on with a decision whose callout answered, and resumes the request if it passes.
    fn resume_with(&mut self, resume: Resume, buffered: u64, end_of_stream: bool) {
        if self.decide(Some(resume), buffered, end_of_stream) == Action::Continue {
            if let Err(e) = abi::resume_request() {
                abi::log(LogLevel::Error, &format!("api-guard: cannot resume request (host status {})", e.0));
            }
        }
    }

    fn request_headers(&mut self, end_of_stream: bool) -> Action {
        self.headers = abi::get_headers(MapType::RequestHeaders).unwrap_or_default();
        self.end_of_stream = self.shared.caps.headers_end_of_stream.then_some(end_of_stream);
        let id_header = &self.shared.policy.request_id_header;
        let id = self.headers.iter().find(|(n, _)| n == id_header).map(|(_, v)| v.as_slice());
        self.request_id = request_id::resolve(id);
        let head = RequestHead { headers: &self.headers, end_of_stream: None };
        self.method = Method::parse(head.header_str(":method"));
        self.decide(None, 0, false)
    }

    fn request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // The host delivers the body: nothing to watch any more.
        if let Ok(mut held) = self.shared.held.try_borrow_mut() {
            held.request_body(self.context);
        }
        match self.stage {
            Stage::Awaiting { token, .. } => {
                // Buffer (Pause) until the decision; the host then reports the total so far.
                self.stage = Stage::Awaiting { token, buffered: body_size as u64, end_of_stream };
                Action::Pause
            }
            Stage::Body { buffering } => self.on_body(body_size, end_of_stream, buffering),
            Stage::Denied | Stage::Answered => Action::Pause,
            Stage::Start | Stage::Allowed => Action::Continue,
        }
    }

    fn response_headers(&mut self, end_of_stream: bool) -> Action {
        let policy = std::rc::Rc::clone(&self.shared.policy);
        if self.stage != Stage::Allowed || !self.owed.anything(&policy) {
            return Action::Continue;
        }
        // One read of the upstream's headers, where the decision needs them; one decision.
        let upstream = if self.owed.reads_upstream_head(&policy) {
            abi::get_headers(MapType::ResponseHeaders).unwrap_or_default()
        } else {
            Vec::new()
        };
        let plan = policy.response_head(&self.owed, &upstream, end_of_stream, self.body_host());
        if let Some(cause) = plan.withhold {
            return self.withhold(cause, 0);
        }
        let hold = plan.hold();
        self.apply_response_ops(upstream, &plan.ops);
        self.work = plan.body;
        // Paused only where the host keeps delivering the body to paused headers (watched
        // until proven: `host::held`); otherwise the headers leave and the body is judged as
        // it passes.
        if hold
            && self.shared.caps.pause_response_headers
            && self.shared.held.borrow_mut().pause_response(self.context, held::now_ms())
        {
            return Action::Pause;
        }
        self.headers_left = true;
        Action::Continue
    }

    fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.emptying {
            return self.empty_body(body_size);
        }
        if self.work == BodyWork::Pass {
            return Action::Continue;
        }
        if let Ok(mut watch) = self.shared.held.try_borrow_mut() {
            if let held::ResponseBody::Resumed { first_broken } =
                watch.response_body(self.context, held::now_ms())
            {
                self.headers_left = true;
                if first_broken {
                    abi::log(LogLevel::Error, held::MISSING_SETTING_RESPONSE);
                }
            }
        }
        let policy = std::rc::Rc::clone(&self.shared.policy);
        let chunk = BodyChunk { size: body_size as u64, end_of_stream };
        let mut read = |start: usize, len: usize| {
            abi::get_buffer_range(abi::BufferType::ResponseBody, start, len)
                .ok()
                .map(Option::unwrap_or_default)
        };
        match policy.response_body(
            &self.owed,
            &self.work,
            chunk,
            self.body_host(),
            &self.request_id,
            &mut read,
        ) {
            BodyStep::Pass => {
                self.work = BodyWork::Pass;
                Action::Continue
            }
            BodyStep::Hold => Action::Pause,
            BodyStep::Replace { body, metric } => {
                self.work = BodyWork::Pass;
                if abi::set_buffer(abi::BufferType::ResponseBody, 0, body_size, &body).is_err() {
                    return self.withhold("unwritable", body_size);
                }
                if let Some(m) = metric {
                    self.shared.metrics.bump(m);
                }
                Action::Continue
            }
            BodyStep::Withhold(cause) => self.withhold(cause, body_size),
        }
    }
}

impl Context for HttpFilter {
    fn on_done(&mut self) -> bool {
        self.release();
        true
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        self.timed(Phase::Request, |f| f.call_response(token_id, body_size));
    }

    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        self.timed(Phase::Request, |f| f.grpc_response(token_id, status_code, response_size));
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.timed(Phase::Request, |f| f.request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.timed(Phase::Request, |f| f.request_body(body_size, end_of_stream))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.timed(Phase::Response, |f| f.response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.timed(Phase::Response, |f| f.response_body(body_size, end_of_stream))
    }

    /// The stream is over: each phase that ran adds its time to the decision-latency
    /// histogram (microseconds, rounded up so that a phase that ran never reads 0).
    fn on_log(&mut self) {
        if !self.shared.policy.decision_latency {
            return;
        }
        for (phase, ns) in Phase::ALL.into_iter().zip(self.spent_ns) {
            if ns > 0 {
                self.shared.metrics.latency(phase, ns.div_ceil(1000));
            }
        }
    }
}
