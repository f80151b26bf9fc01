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

use super::abi;

/// How long a held request may go without a body callback before the host is checked.
pub const PATIENCE_MS: u64 = 1000;

/// The log line that names the missing setting.
pub const MISSING_SETTING: &str = "api-guard: request bodies are not delivered to the filter while its headers are held: set `allow_on_headers_stop_iteration: true` on this Envoy wasm filter (or, to stream bodies to the upstream before they are judged, `\"host\": {\"hold_headers_for_body\": false}`); requests that need their body judged fail with 500 until then";

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
    /// The host was seen not to deliver bodies to held requests.
    pub broken: bool,
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

    /// The request had a body callback, was decided, or ended.
    pub fn release(&mut self, context: u32) {
        self.entries.retain(|e| e.context != context);
    }

    /// Whether anything is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
}
