//! Requests whose headers are held while their body is judged.
//!
//! Holding needs the host to keep delivering body callbacks to a filter that paused the
//! headers. Envoy does so only when the filter's config sets `allow_on_headers_stop_iteration:
//! true`; without it a paused request gets no body callback and would hang until a timeout.
//! The module cannot read that setting, so it watches: a held request that has had no body
//! callback for [`PATIENCE_MS`] while the host has received its body (the `request.total_size`
//! property grew by the declared `Content-Length`, or grew at all for a body of unknown length)
//! is proof the setting is missing. Waiting for the whole declared body keeps a filter earlier
//! in the chain that buffers (and so delivers the body only once complete) from looking like
//! a missing setting while a slow client is still sending. That request, and from
//! then on every request this VM would hold, fails at once with a 500 problem
//! (`host-misconfigured`) and an error line naming the setting. A client that is merely slow
//! to send its body leaves `request.total_size` unchanged and is left alone.
//!
//! Response headers paused for a body rewrite depend on the same setting, and a bodyless
//! request (a `GET`) never tells. The response side cannot be measured the same way (the host
//! has no count of upstream bytes), so it is made safe instead: until a body callback has been
//! seen to arrive while headers were paused (proof the setting is there), a response paused
//! for longer than [`PATIENCE_MS`] is resumed by the root, its headers leave, and its body is
//! rewritten as it passes (a body that cannot be rewritten is emptied, never sent). If the
//! body then arrives at once, it had been waiting in the host: the setting is missing, it is
//! logged once, and from then on response headers are not paused on this VM. A response is
//! thus never held longer than about a second and a half, whatever the Envoy config says.

use super::abi;

/// How long a held request may go without a body callback before the host is checked.
pub const PATIENCE_MS: u64 = 1000;

/// The log line that names the missing setting.
pub const MISSING_SETTING: &str = "api-guard: request bodies are not delivered to the filter while its headers are held: set `allow_on_headers_stop_iteration: true` on this Envoy wasm filter (or, to stream bodies to the upstream before they are judged, `\"host\": {\"hold_headers_for_body\": false}`); requests that need their body judged fail with 500 until then";

/// The log line for the same setting found missing on the response side.
pub const MISSING_SETTING_RESPONSE: &str = "api-guard: response bodies are not delivered to the filter while its headers are paused: set `allow_on_headers_stop_iteration: true` on this Envoy wasm filter; until then rewritten responses send their headers before their body is judged, and a body that cannot be rewritten is emptied instead of answered with 502; requests whose body must be judged fail with 500";

/// A body callback this soon after the watch resumed a response means its body had been
/// waiting in the host.
const PROMPT_MS: u64 = 100;

#[derive(Debug, Clone)]
struct Entry {
    context: u32,
    since_ms: u64,
    /// `request.total_size` when the headers were held (`None` where the host lacks it).
    size_at_hold: Option<u64>,
    /// The declared body length, if any.
    declared: Option<u64>,
    request_id: String,
    route: Option<usize>,
}

/// The held requests of one VM and what has been learnt about the host.
#[derive(Debug, Default)]
pub struct Held {
    entries: Vec<Entry>,
    /// Responses whose headers are paused for a rewrite: context, since when.
    responses: Vec<(u32, u64)>,
    /// Responses the watch resumed: context, when.
    resumed: Vec<(u32, u64)>,
    /// The host was seen not to deliver bodies while headers are paused.
    pub broken: bool,
    /// The host was seen to deliver a body while headers were paused.
    pub delivers: bool,
}

/// What a response body callback learns from the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// The response was not watched (its headers left, or were never paused).
    Unwatched,
    /// Its headers are still paused: the host delivers bodies to paused headers.
    WhilePaused,
    /// The watch resumed it: its headers have left. `first_broken` when this callback is the
    /// one that shows the setting missing.
    Resumed {
        /// This callback is the proof the setting is missing (log it).
        first_broken: bool,
    },
}

/// A held request the host does not deliver the body of, for the root to fail.
#[derive(Debug, Clone)]
pub struct Stuck {
    /// Its HTTP context.
    pub context: u32,
    /// Its request id, for the problem and the log line.
    pub request_id: String,
    /// Its route, for the log line.
    pub route: Option<usize>,
}

/// Milliseconds since the Unix epoch (WASI's clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The host's count of request bytes so far (headers and body), for the current context.
pub fn request_total_size() -> Option<u64> {
    let raw = abi::get_property(&["request", "total_size"]).ok()??;
    // Envoy encodes integer properties as 8 little-endian bytes.
    let bytes: [u8; 8] = raw.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

impl Held {
    /// A request's headers are now held (call from its own context).
    pub fn hold(&mut self, context: u32, declared: Option<u64>, request_id: &str, route: Option<usize>) {
        self.release(context);
        self.entries.push(Entry {
            context,
            since_ms: now_ms(),
            size_at_hold: request_total_size(),
            declared,
            request_id: request_id.to_string(),
            route,
        });
    }

    /// The request was decided, or the stream ended: nothing of it is watched any more.
    pub fn release(&mut self, context: u32) {
        self.entries.retain(|e| e.context != context);
        self.responses.retain(|(c, _)| *c != context);
        self.resumed.retain(|(c, _)| *c != context);
    }

    /// A request body callback: if the request was held, the host delivers held bodies.
    pub fn request_body(&mut self, context: u32) {
        if self.entries.iter().any(|e| e.context == context) {
            self.delivers = true;
        }
        self.entries.retain(|e| e.context != context);
    }

    /// Whether response headers may be paused for a rewrite: not once the host was seen not
    /// to deliver bodies to paused headers. Watched unless the host was seen to deliver them.
    pub fn pause_response(&mut self, context: u32, now_ms: u64) -> bool {
        if self.broken {
            return false;
        }
        if !self.delivers {
            self.responses.push((context, now_ms));
        }
        true
    }

    /// A response body callback (call before acting on it).
    pub fn response_body(&mut self, context: u32, now_ms: u64) -> ResponseBody {
        if let Some(i) = self.responses.iter().position(|(c, _)| *c == context) {
            self.responses.swap_remove(i);
            self.delivers = true;
            return ResponseBody::WhilePaused;
        }
        let Some(i) = self.resumed.iter().position(|(c, _)| *c == context) else {
            return ResponseBody::Unwatched;
        };
        let (_, at) = self.resumed.swap_remove(i);
        let first_broken = now_ms.saturating_sub(at) < PROMPT_MS && !self.broken && !self.delivers;
        if first_broken {
            self.broken = true;
        }
        ResponseBody::Resumed { first_broken }
    }

    /// The paused responses past their patience, for the root to resume; each is watched for
    /// how soon its body follows. None once the host was seen to deliver bodies.
    pub fn overdue_responses(&mut self, now_ms: u64) -> Vec<u32> {
        if self.delivers {
            self.responses.clear();
            return Vec::new();
        }
        let mut out = Vec::new();
        self.responses.retain(|&(context, since)| {
            let due = now_ms.saturating_sub(since) >= PATIENCE_MS;
            if due {
                out.push(context);
            }
            !due
        });
        self.resumed.extend(out.iter().map(|&c| (c, now_ms)));
        out
    }

    /// Whether anything is watched.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.responses.is_empty()
    }

    /// The held requests past their patience that the host has received more of than their
    /// headers (checked through `read_size`, which reads `request.total_size` in a request's
    /// context): they are removed and returned, and the host is marked broken.
    pub fn stuck(&mut self, now_ms: u64, read_size: &mut dyn FnMut(u32) -> Option<u64>) -> Vec<Stuck> {
        let mut out = Vec::new();
        self.entries.retain(|e| {
            if now_ms.saturating_sub(e.since_ms) < PATIENCE_MS {
                return true;
            }
            let grew = match (e.size_at_hold, read_size(e.context)) {
                (Some(a), Some(b)) => match e.declared {
                    Some(n) => b.saturating_sub(a) >= n.max(1),
                    None => b > a,
                },
                _ => false,
            };
            if grew {
                out.push(Stuck { context: e.context, request_id: e.request_id.clone(), route: e.route });
            }
            !grew
        });
        if !out.is_empty() {
            self.broken = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(held: &mut Held, context: u32, since_ms: u64, size: Option<u64>) {
        held.entries.push(Entry {
            context,
            since_ms,
            size_at_hold: size,
            declared: None,
            request_id: String::new(),
            route: None,
        });
    }

    #[test]
    fn only_requests_whose_bytes_arrived_unseen_are_stuck() {
        let mut held = Held::default();
        entry(&mut held, 1, 0, Some(100)); // body bytes arrived, no callback: stuck
        entry(&mut held, 2, 0, Some(100)); // a slow client: nothing arrived yet
        entry(&mut held, 3, 900, Some(100)); // not past its patience
        entry(&mut held, 4, 0, None); // a host without the property: never judged
        let sizes = |c: u32| match c {
            1 => Some(150),
            2 => Some(100),
            _ => Some(500),
        };
        let stuck = held.stuck(1500, &mut { sizes });
        assert_eq!(stuck.iter().map(|s| s.context).collect::<Vec<_>>(), [1]);
        assert!(held.broken);
        assert_eq!(held.entries.iter().map(|e| e.context).collect::<Vec<_>>(), [2, 3, 4]);
        held.release(2);
        assert_eq!(held.entries.len(), 2);
        // A declared body counts only once all of it has arrived (a buffering filter ahead
        // delivers it then).
        let mut held = Held::default();
        entry(&mut held, 5, 0, Some(100));
        held.entries[0].declared = Some(80);
        assert!(held.stuck(1500, &mut |_| Some(150)).is_empty(), "30 of 80 bytes so far");
        assert_eq!(held.stuck(1500, &mut |_| Some(180)).len(), 1);
    }

    #[test]
    fn a_response_body_while_paused_proves_the_host_and_ends_the_watch() {
        let mut held = Held::default();
        assert!(held.pause_response(7, 0));
        assert_eq!(held.response_body(7, 10), ResponseBody::WhilePaused);
        assert!(held.delivers && !held.broken);
        // Proven: later pauses are not watched, nothing is ever resumed.
        assert!(held.pause_response(8, 20));
        assert!(held.overdue_responses(5000).is_empty());
        assert_eq!(held.response_body(8, 5000), ResponseBody::Unwatched);
    }

    #[test]
    fn an_overdue_response_is_resumed_and_a_prompt_body_shows_the_setting_missing() {
        let mut held = Held::default();
        assert!(held.pause_response(1, 0));
        assert!(held.pause_response(2, 600));
        assert_eq!(held.overdue_responses(999), Vec::<u32>::new());
        assert_eq!(held.overdue_responses(1000), vec![1]);
        assert!(!held.is_empty(), "response 2 is still watched");
        // The body had been waiting in the host: it comes right after the resume.
        assert_eq!(held.response_body(1, 1010), ResponseBody::Resumed { first_broken: true });
        assert!(held.broken);
        // Response 2 is resumed too; told once only.
        assert_eq!(held.overdue_responses(1600), vec![2]);
        assert_eq!(held.response_body(2, 1601), ResponseBody::Resumed { first_broken: false });
        // From now on response headers are not paused at all.
        assert!(!held.pause_response(3, 2000));
        assert!(held.is_empty());
    }

    #[test]
    fn a_slow_upstream_after_a_resume_is_not_taken_for_a_missing_setting() {
        let mut held = Held::default();
        held.pause_response(1, 0);
        assert_eq!(held.overdue_responses(1200), vec![1]);
        assert_eq!(held.response_body(1, 1200 + PROMPT_MS), ResponseBody::Resumed { first_broken: false });
        assert!(!held.broken);
        // Ending the stream forgets it everywhere.
        held.pause_response(2, 0);
        held.release(2);
        assert!(held.is_empty() && held.overdue_responses(9999).is_empty());
    }

    #[test]
    fn a_held_request_body_proves_the_host_for_responses_too() {
        let mut held = Held::default();
        entry(&mut held, 5, 0, Some(1));
        held.request_body(6); // not held: says nothing
        assert!(!held.delivers);
        held.request_body(5);
        assert!(held.delivers && held.is_empty());
    }
}
