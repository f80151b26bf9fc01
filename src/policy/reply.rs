//! The response phases: what an upstream's answer becomes on its way to the client.
//!
//! One decision per phase, as for requests: [`Policy::response_head`] takes the upstream's
//! headers and says which header edits to make and what the body is owed;
//! [`Policy::response_body`] takes each body callback and says whether to let it pass, keep
//! buffering, replace it, or withhold it. The host reads, asks once, and applies; what the
//! request phase decided for the response travels in [`Owed`].

use super::config::Oversize;
use super::denial;
use super::http::HeaderOp;
use super::response::{self, Duty, Framing, Rewrite};
use super::telemetry::UPSTREAM_ERRORS_REPLACED;
use super::{cors, Policy};

/// What the request phase leaves for the response phases, carried by the host from one to
/// the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owed {
    /// Field rules, the schema allowlist and buffering for this route and caller.
    pub duty: Duty,
    /// The request's CORS headers, on a CORS route (see [`super::HeadDecision::cors`]).
    pub cors: Option<Vec<(String, String)>>,
    /// Whether the request presented a verified token (its answer must not be cached).
    pub authenticated: bool,
    /// The provider of that token, for the request counter's `provider` label.
    pub provider: Option<usize>,
    /// Headers of the matched operation (`Deprecation`, `Sunset`).
    pub headers: Vec<(String, String)>,
}

/// What the host can do with response bodies (from its capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyHost {
    /// Whether the host can replace a response body (APISIX cannot).
    pub can_replace: bool,
    /// The most the host buffers of a response body for the filter, where it stops short of
    /// the whole body (Kong's response body buffers).
    pub buffer_limit: Option<u64>,
}

/// What a response body is owed, decided with its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyWork {
    /// Nothing: it passes as it comes.
    Pass,
    /// Buffer it whole and rewrite it.
    Rewrite(Rewrite),
    /// An upstream 5xx: buffer it whole and send a generic problem for this status instead.
    Replace(u16),
}

/// The decision on a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadPlan {
    /// Edits to the response headers, in order.
    pub ops: Vec<HeaderOp>,
    /// What the body is owed.
    pub body: BodyWork,
    /// The body cannot go out at all (the cause names why, e.g. `encoded`, `script`): the
    /// response is replaced by a `response-withheld` problem.
    pub withhold: Option<&'static str>,
}

impl HeadPlan {
    /// Whether the headers should wait for the body (its length changes, or the response is
    /// replaced): where the host can hold them.
    pub fn hold(&self) -> bool {
        self.body != BodyWork::Pass
    }
}

/// One response body callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyChunk {
    /// The bytes the host holds for the filter so far (buffered, since the body is held).
    pub size: u64,
    /// Whether this is the whole body.
    pub end_of_stream: bool,
}

/// The decision on a response body callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyStep {
    /// Let it pass; nothing more is owed.
    Pass,
    /// Keep buffering: the work needs the whole body.
    Hold,
    /// Send these bytes instead of the body; `metric` is the counter the replacement bumps.
    Replace {
        /// The new body.
        body: Vec<u8>,
        /// The counter to bump (safe errors), if any.
        metric: Option<&'static str>,
    },
    /// The body must not go out (the cause names why).
    Withhold(&'static str),
}

impl Owed {
    /// Whether the response phases have anything to do for this exchange.
    pub fn anything(&self, policy: &Policy) -> bool {
        self.reads_upstream_head(policy) || !self.headers.is_empty()
    }

    /// Whether the decision needs the upstream's response headers.
    pub fn reads_upstream_head(&self, policy: &Policy) -> bool {
        self.cors.is_some() || policy.response.is_some() || self.duty.operation.is_some()
    }
}

impl Policy {
    /// Judges a response head: `upstream` are the upstream's headers (empty when
    /// [`Owed::reads_upstream_head`] says they are not needed), `end_of_stream` whether no
    /// body follows.
    pub fn response_head(
        &self,
        owed: &Owed,
        upstream: &[(String, Vec<u8>)],
        end_of_stream: bool,
        host: BodyHost,
    ) -> HeadPlan {
        let mut ops = self.response.as_ref().map(|r| r.ops(upstream, owed.authenticated)).unwrap_or_default();
        if let Some(ours) = &owed.cors {
            ops.extend(cors::response_ops(upstream, ours));
        }
        let mut body = BodyWork::Pass;
        let mut withhold = None;
        if !end_of_stream && owed.reads_upstream_head(self) {
            match self.plan_response(&owed.duty, upstream) {
                response::BodyPlan::Untouched => {}
                response::BodyPlan::Rewrite(plan) => {
                    // The length changes with the rewrite.
                    ops.push(HeaderOp::Remove("content-length".into()));
                    body = BodyWork::Rewrite(plan);
                }
                response::BodyPlan::Withhold(cause) => withhold = Some(cause),
                // Without body replacement (APISIX) an upstream failure's body passes as sent
                // (said once at load).
                response::BodyPlan::Replace(_) if !host.can_replace => {}
                response::BodyPlan::Replace(status) => {
                    // An upstream failure: its body (stack traces, SQL) never leaves.
                    ops.push(HeaderOp::Remove("content-length".into()));
                    ops.push(HeaderOp::Set("content-type".into(), "application/problem+json".into()));
                    body = BodyWork::Replace(status);
                }
            }
        }
        ops.extend(owed.headers.iter().map(|(n, v)| HeaderOp::Set(n.clone(), v.clone())));
        HeadPlan { ops, body, withhold }
    }

    /// Judges a response body callback for a body owed `work`. `read(start, len)` reads what
    /// the host holds of the body (`None` when it cannot); it is called only when the bytes
    /// matter: the first few to tell a sniffed body's kind, the whole body once complete.
    pub fn response_body(
        &self,
        owed: &Owed,
        work: &BodyWork,
        chunk: BodyChunk,
        host: BodyHost,
        request_id: &str,
        read: &mut dyn FnMut(usize, usize) -> Option<Vec<u8>>,
    ) -> BodyStep {
        let size = usize::try_from(chunk.size).unwrap_or(usize::MAX);
        match work {
            BodyWork::Pass => BodyStep::Pass,
            BodyWork::Replace(_) if !chunk.end_of_stream => BodyStep::Hold,
            BodyWork::Replace(status) => BodyStep::Replace {
                body: denial::safe_error(*status, &self.rendering, request_id),
                metric: Some(UPSTREAM_ERRORS_REPLACED),
            },
            BodyWork::Rewrite(plan) => {
                if plan.framing == Framing::Sniffed && size > 0 {
                    // A body whose first bytes show it is not JSON passes without being buffered.
                    if plan.passes_unread(&read(0, size.min(64)).unwrap_or_default()) {
                        return BodyStep::Pass;
                    }
                }
                // A host that stops buffering short of the whole body passes the rest
                // unchanged: a body that fills its buffer and is not done is oversize.
                let host_full = !chunk.end_of_stream && host.buffer_limit.is_some_and(|n| chunk.size >= n);
                if chunk.size > owed.duty.buffering.max_body_bytes || host_full {
                    return match owed.duty.buffering.oversize {
                        Oversize::Fail => BodyStep::Withhold("oversize"),
                        Oversize::Pass => BodyStep::Pass,
                    };
                }
                if !chunk.end_of_stream {
                    return BodyStep::Hold;
                }
                let Some(body) = read(0, size) else { return BodyStep::Withhold("unreadable") };
                match self.finish_response(plan, &body) {
                    Ok(None) => BodyStep::Pass,
                    Ok(Some(new)) => BodyStep::Replace { body: new, metric: None },
                    Err(_) => BodyStep::Withhold("not-json"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::config;

    fn policy() -> Policy {
        config::parse(
            br#"{"response": {"max_body_bytes": 64, "rules": [{"select": ["$..password"], "action": {"type": "remove"}}]}}"#,
        )
        .unwrap()
    }

    fn owed(p: &Policy) -> Owed {
        let rules = p.response.as_ref().map(|r| r.active_rules(None, &[])).unwrap_or_default();
        Owed { duty: Duty { rules, operation: None, buffering: p.buffering }, ..Owed::default() }
    }

    fn upstream(status: &str, ct: &str) -> Vec<(String, Vec<u8>)> {
        vec![(":status".into(), status.as_bytes().to_vec()), ("content-type".into(), ct.as_bytes().to_vec())]
    }

    const HOST: BodyHost = BodyHost { can_replace: true, buffer_limit: None };

    fn body(p: &Policy, o: &Owed, work: &BodyWork, bytes: &[u8], eos: bool, host: BodyHost) -> BodyStep {
        let chunk = BodyChunk { size: bytes.len() as u64, end_of_stream: eos };
        let mut read = |start: usize, len: usize| bytes.get(start..start + len).map(<[u8]>::to_vec);
        p.response_body(o, work, chunk, host, "id-1", &mut read)
    }

    #[test]
    fn a_rewritten_body_drops_its_length_and_is_held_until_whole() {
        let p = policy();
        let o = owed(&p);
        let plan = p.response_head(&o, &upstream("200", "application/json"), false, HOST);
        assert!(plan.ops.contains(&HeaderOp::Remove("content-length".into())));
        assert!(plan.hold() && plan.withhold.is_none());
        assert_eq!(body(&p, &o, &plan.body, br#"{"a":1,"pass"#, false, HOST), BodyStep::Hold);
        assert_eq!(
            body(&p, &o, &plan.body, br#"{"a":1,"password":"x"}"#, true, HOST),
            BodyStep::Replace { body: br#"{"a":1}"#.to_vec(), metric: None }
        );
        assert_eq!(body(&p, &o, &plan.body, br#"{"a":"#, true, HOST), BodyStep::Withhold("not-json"));
        // No body: nothing to plan.
        assert_eq!(
            p.response_head(&o, &upstream("200", "application/json"), true, HOST).body,
            BodyWork::Pass
        );
    }

    #[test]
    fn bodies_past_the_limit_or_the_hosts_buffer_are_oversize() {
        let p = policy();
        let o = owed(&p);
        let plan = p.response_head(&o, &upstream("200", "application/json"), false, HOST);
        let big = vec![b' '; 65];
        assert_eq!(body(&p, &o, &plan.body, &big, false, HOST), BodyStep::Withhold("oversize"));
        let kong = BodyHost { can_replace: true, buffer_limit: Some(16) };
        assert_eq!(body(&p, &o, &plan.body, &[b' '; 16], false, kong), BodyStep::Withhold("oversize"));
        assert_eq!(
            body(&p, &o, &plan.body, b"{}", true, kong),
            BodyStep::Replace { body: b"{}".to_vec(), metric: None }
        );
    }

    #[test]
    fn sniffed_scripts_and_failures() {
        let p = policy();
        let o = owed(&p);
        let text = p.response_head(&o, &upstream("200", "text/plain"), false, HOST);
        assert_eq!(
            body(&p, &o, &text.body, b"hello, not json", false, HOST),
            BodyStep::Pass,
            "passes unread"
        );
        let script = p.response_head(&o, &upstream("200", "application/javascript"), false, HOST);
        assert_eq!(script.withhold, Some("script"));
        let safe = config::parse(br#"{"response": {"safe_errors": true}}"#).unwrap();
        let o = owed(&safe);
        let failed = safe.response_head(&o, &upstream("500", "text/html"), false, HOST);
        assert!(failed
            .ops
            .contains(&HeaderOp::Set("content-type".into(), "application/problem+json".into())));
        assert_eq!(body(&safe, &o, &failed.body, b"<trace>", false, HOST), BodyStep::Hold);
        let BodyStep::Replace { body: problem, metric } =
            body(&safe, &o, &failed.body, b"<trace>", true, HOST)
        else {
            panic!("not replaced")
        };
        assert_eq!(metric, Some(UPSTREAM_ERRORS_REPLACED));
        assert!(String::from_utf8(problem).unwrap().contains("\"request_id\":\"id-1\""));
        let apisix = BodyHost { can_replace: false, buffer_limit: None };
        assert_eq!(safe.response_head(&o, &upstream("500", "text/html"), false, apisix).body, BodyWork::Pass);
    }

    #[test]
    fn cors_and_operation_headers_join_the_edits() {
        let p = config::parse(b"{}").unwrap();
        let o = Owed {
            cors: Some(vec![("access-control-allow-origin".into(), "https://app.example".into())]),
            headers: vec![("deprecation".into(), "true".into())],
            ..Owed::default()
        };
        assert!(o.anything(&p) && o.reads_upstream_head(&p));
        let plan = p.response_head(&o, &upstream("200", "application/json"), false, HOST);
        assert!(plan
            .ops
            .contains(&HeaderOp::Set("access-control-allow-origin".into(), "https://app.example".into())));
        assert_eq!(plan.ops.last(), Some(&HeaderOp::Set("deprecation".into(), "true".into())));
        assert!(!Owed::default().anything(&p));
    }
}
