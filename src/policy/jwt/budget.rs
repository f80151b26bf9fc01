//! The failed-verification budget and the verification capacity: what bounds the signature
//! checks forged tokens can cost, without refusing a client that sent none.
//!
//! A forged token costs the gateway a full signature check (an RS256 check costs 30 to 60 times
//! what a cached token does), so without a limit a client can turn junk tokens into CPU load
//! (OWASP API4). Everything that costs no signature (size, shape, `alg`, `iss`, `kid`, the
//! time claims) is checked first and never counts here; a forgery seen before is refused from
//! the known-bad cache, also without a check. What is left is bounded two ways:
//!
//! - **Standing, per client and connection.** A client (an address, see [`client_key`]) that
//!   has sent `max_failures` failing tokens in the window is *over budget*. Its tokens that
//!   would need a check are refused unchecked (429) only on the connections that carried one
//!   of those failures, or on every connection where the host names none. A user behind the
//!   same NAT or office address on a connection of its own is not refused for the attacker's
//!   failures; an attacker on a kept-alive connection pays no signature after the budget, and
//!   one that opens a new connection per forgery pays a connection for every check.
//! - **Capacity, per VM.** Checks asked for by over-budget addresses on fresh connections (a
//!   neighbour behind the attacker's address, or the attacker opening a connection per
//!   forgery) share `max_checks_per_second` per second; past it such a token is refused with
//!   503 (overload, `Retry-After: 1`): the gateway is out of verification capacity for that
//!   address, which is not the client's fault. Clients in good standing are never limited
//!   here, and cached tokens never count.
//!
//! Tables are bounded: when the client table is full, expired windows are dropped first, then
//! the window that started earliest; each client keeps the last [`MAX_MARKED_CONNECTIONS`]
//! connections that carried its failures.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Most clients tracked at once per VM.
pub const MAX_CLIENTS: usize = 4096;
/// Connections remembered per client as having carried a failed verification.
pub const MAX_MARKED_CONNECTIONS: usize = 32;

/// Where the client's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSource {
    /// The host's client address: the peer, or on Envoy the address it computed from
    /// `x-forwarded-for` under `xff_num_trusted_hops` / `use_remote_address`.
    Peer,
    /// A request header the operator's trusted proxies write: its comma-separated values (all
    /// header lines, in order) are read from the right, skipping `trusted_hops` of them, as
    /// Envoy's `xff_num_trusted_hops` does. A request without a usable value counts as its
    /// peer, so leaving the header out does not escape the budget.
    Header {
        /// Header name, lower-case.
        name: String,
        /// Values skipped from the right (proxies of the operator's own behind the one that
        /// saw the client).
        trusted_hops: usize,
    },
}

/// The budget's rules, compiled from `jwt.verification_budget`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRules {
    /// Failed verifications allowed per client per window (0: no per-client budget).
    pub max_failures: u32,
    /// Window length in seconds.
    pub window: i64,
    /// How clients are told apart.
    pub client: ClientSource,
    /// Signature checks per second per VM for over-budget addresses on fresh connections (0:
    /// no limit).
    pub max_checks_per_second: u32,
}

/// Why a signature check was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The client is over its budget on this connection; it may try again in this many seconds.
    Budget(u32),
    /// The VM has run as many checks this second as it may.
    Overload,
}

/// One client's standing.
#[derive(Debug, Clone, Default)]
struct Standing {
    /// Window start (Unix seconds).
    start: i64,
    /// Failures in the window.
    failures: u32,
    /// Connections that carried a failure in the window, oldest first.
    marked: Vec<u64>,
}

/// Failure counts per client and the checks run this second, for one VM.
#[derive(Debug)]
pub struct FailureBudget {
    max_failures: u32,
    window: i64,
    capacity: usize,
    max_checks: u32,
    /// Client key → standing.
    clients: HashMap<String, Standing>,
    /// (second, checks run in it).
    checks: (i64, u32),
}

impl FailureBudget {
    /// An empty table for `rules`.
    pub fn new(rules: &BudgetRules) -> FailureBudget {
        FailureBudget::with_capacity(rules, MAX_CLIENTS)
    }

    /// An empty table holding at most `capacity` clients.
    pub fn with_capacity(rules: &BudgetRules, capacity: usize) -> FailureBudget {
        FailureBudget {
            max_failures: rules.max_failures,
            window: rules.window.max(1),
            capacity: capacity.max(1),
            max_checks: rules.max_checks_per_second,
            clients: HashMap::new(),
            checks: (i64::MIN, 0),
        }
    }

    /// `Some(seconds until the window ends)` if `client` is over its budget now.
    fn over_budget(&self, client: &str, now: i64) -> Option<(i64, &Standing)> {
        let s = self.clients.get(client)?;
        let end = s.start.saturating_add(self.window);
        (self.max_failures > 0 && now < end && s.failures >= self.max_failures)
            .then(|| ((end - now).max(1), s))
    }

    /// Whether a token of `client` (if known) on `connection` (if the host names one) may
    /// have its signature checked now; a granted check is counted against the VM's capacity.
    pub fn admit(&mut self, client: Option<&str>, connection: Option<u64>, now: i64) -> Result<(), Throttle> {
        let mut suspect = false;
        if let Some((left, standing)) = client.and_then(|c| self.over_budget(c, now)) {
            match connection {
                Some(id) if !standing.marked.contains(&id) => suspect = true,
                _ => return Err(Throttle::Budget(u32::try_from(left).unwrap_or(u32::MAX))),
            }
        }
        // Clients in good standing are never limited here: only checks an over-budget
        // address asks for on a fresh connection share the per-second capacity.
        if !suspect || self.max_checks == 0 {
            return Ok(());
        }
        let (second, used) = &mut self.checks;
        if *second != now {
            (*second, *used) = (now, 0);
        }
        if *used >= self.max_checks {
            return Err(Throttle::Overload);
        }
        *used += 1;
        Ok(())
    }

    /// Counts a failed verification by `client` on `connection`.
    pub fn record(&mut self, client: &str, connection: Option<u64>, now: i64) {
        let window = self.window;
        if !self.clients.contains_key(client) {
            if self.clients.len() >= self.capacity {
                self.clients.retain(|_, s| now < s.start.saturating_add(window));
            }
            if self.clients.len() >= self.capacity {
                let oldest = self.clients.iter().min_by_key(|(_, s)| s.start).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.clients.remove(&k);
                }
            }
        }
        let s = self.clients.entry(client.to_string()).or_default();
        if s.failures == 0 || now >= s.start.saturating_add(window) {
            *s = Standing { start: now, failures: 0, marked: Vec::new() };
        }
        s.failures = s.failures.saturating_add(1);
        if let Some(id) = connection {
            if !s.marked.contains(&id) {
                if s.marked.len() >= MAX_MARKED_CONNECTIONS {
                    s.marked.remove(0);
                }
                s.marked.push(id);
            }
        }
    }

    /// Clients tracked now.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// The client key of a request: from the header `source` names when it holds a usable
/// address, else from `peer` (the host's client address, asked only then).
pub fn client_of<'h>(
    source: &ClientSource,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    peer: impl FnOnce() -> Option<String>,
) -> Option<String> {
    if let ClientSource::Header { name, trusted_hops } = source {
        let mut values: Vec<&[u8]> = Vec::new();
        for (n, v) in headers {
            if n == name {
                values.extend(v.split(|b| *b == b','));
            }
        }
        let chosen = values.len().checked_sub(trusted_hops + 1).and_then(|i| values.get(i));
        if let Some(key) = chosen.and_then(|v| std::str::from_utf8(v).ok()).and_then(client_key) {
            return Some(key);
        }
    }
    peer().as_deref().and_then(client_key)
}

/// The budget key of a client address as hosts report it (`203.0.113.7`, `203.0.113.7:5150`,
/// `[2001:db8::1]:443`, `2001:db8::1`): the IPv4 address, or the IPv6 /64 prefix. `None` for
/// anything that is not an address.
pub fn client_key(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let ip = raw.parse::<IpAddr>().ok().or_else(|| raw.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let [a, b, c, d, ..] = s;
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(max: u32, window: i64, checks: u32) -> BudgetRules {
        BudgetRules { max_failures: max, window, client: ClientSource::Peer, max_checks_per_second: checks }
    }

    #[test]
    fn refuses_after_the_budget_until_the_window_ends() {
        let mut b = FailureBudget::new(&rules(3, 10, 0));
        for _ in 0..3 {
            assert_eq!(b.admit(Some("a"), None, 100), Ok(()));
            b.record("a", None, 100);
        }
        assert_eq!(b.admit(Some("a"), None, 100), Err(Throttle::Budget(10)));
        assert_eq!(b.admit(Some("a"), None, 109), Err(Throttle::Budget(1)));
        assert_eq!(b.admit(Some("b"), None, 100), Ok(()), "another client is not affected");
        assert_eq!(b.admit(None, None, 100), Ok(()), "an unnamed client is not either");
        assert_eq!(b.admit(Some("a"), None, 110), Ok(()), "a new window");
        b.record("a", None, 110);
        assert_eq!(b.admit(Some("a"), None, 110), Ok(()), "the count started over");
    }

    #[test]
    fn an_over_budget_address_is_refused_only_on_the_connections_that_failed() {
        let mut b = FailureBudget::new(&rules(2, 10, 0));
        b.record("a", Some(7), 100);
        b.record("a", Some(8), 100);
        assert_eq!(b.admit(Some("a"), Some(7), 100), Err(Throttle::Budget(10)));
        assert_eq!(b.admit(Some("a"), Some(8), 101), Err(Throttle::Budget(9)));
        assert_eq!(b.admit(Some("a"), Some(9), 101), Ok(()), "the same address on another connection");
        assert_eq!(b.admit(Some("a"), None, 101), Err(Throttle::Budget(9)), "no connection named");
        // A failure on connection 9 marks it too.
        b.record("a", Some(9), 101);
        assert_eq!(b.admit(Some("a"), Some(9), 101), Err(Throttle::Budget(9)));
        // A new window forgets the marks with the count.
        assert_eq!(b.admit(Some("a"), Some(7), 110), Ok(()));
    }

    #[test]
    fn marked_connections_stay_bounded() {
        let mut b = FailureBudget::new(&rules(1, 10, 0));
        for id in 0..(MAX_MARKED_CONNECTIONS as u64 + 5) {
            b.record("a", Some(id), 100);
        }
        let marked = b.clients.get("a").map(|s| s.marked.len());
        assert_eq!(marked, Some(MAX_MARKED_CONNECTIONS));
        assert_eq!(
            b.admit(Some("a"), Some(MAX_MARKED_CONNECTIONS as u64 + 4), 100),
            Err(Throttle::Budget(10))
        );
        assert_eq!(b.admit(Some("a"), Some(0), 100), Ok(()), "the oldest mark was dropped");
    }

    #[test]
    fn capacity_per_second_bounds_only_fresh_connections_of_over_budget_addresses() {
        let mut b = FailureBudget::new(&rules(1, 60, 2));
        b.record("attacker", Some(1), 100);
        // Fresh connections of the over-budget address share two checks a second.
        assert_eq!(b.admit(Some("attacker"), Some(2), 100), Ok(()));
        assert_eq!(b.admit(Some("attacker"), Some(3), 100), Ok(()));
        assert_eq!(b.admit(Some("attacker"), Some(4), 100), Err(Throttle::Overload));
        assert_eq!(b.admit(Some("attacker"), Some(4), 101), Ok(()), "a new second");
        // Clients in good standing are never limited by it.
        for _ in 0..10_000 {
            assert_eq!(b.admit(Some("innocent"), Some(5), 101), Ok(()));
            assert_eq!(b.admit(None, None, 101), Ok(()));
        }
        // Off: no limit.
        let mut off = FailureBudget::new(&rules(1, 60, 0));
        off.record("x", Some(1), 100);
        for id in 2..10_000 {
            assert_eq!(off.admit(Some("x"), Some(id), 100), Ok(()));
        }
    }

    #[test]
    fn the_table_stays_bounded_and_drops_the_oldest_window() {
        let mut b = FailureBudget::with_capacity(&rules(1, 10, 0), 3);
        b.record("a", None, 100);
        b.record("b", None, 101);
        b.record("c", None, 102);
        b.record("d", None, 103);
        assert_eq!(b.len(), 3);
        assert_eq!(b.admit(Some("a"), None, 103), Ok(()), "the earliest window was dropped");
        assert_eq!(b.admit(Some("d"), None, 103), Err(Throttle::Budget(10)));
        // Expired windows go first.
        b.record("e", None, 112);
        assert_eq!(b.len(), 2, "b and c expired at 111 and 112");
        assert!(b.admit(Some("d"), None, 112).is_err());
    }

    #[test]
    fn the_client_comes_from_the_right_of_a_trusted_header() {
        let xff = |hops| ClientSource::Header { name: "x-forwarded-for".into(), trusted_hops: hops };
        let peer = || Some("192.0.2.9:5000".to_string());
        let h: Vec<(&str, &[u8])> = vec![
            ("x-forwarded-for", b"198.51.100.1, 203.0.113.7"),
            ("accept", b"*/*"),
            ("x-forwarded-for", b"10.0.0.2"),
        ];
        assert_eq!(client_of(&xff(0), h.clone(), peer).as_deref(), Some("10.0.0.2"));
        assert_eq!(client_of(&xff(1), h.clone(), peer).as_deref(), Some("203.0.113.7"));
        assert_eq!(client_of(&xff(2), h.clone(), peer).as_deref(), Some("198.51.100.1"));
        assert_eq!(
            client_of(&xff(3), h.clone(), peer).as_deref(),
            Some("192.0.2.9"),
            "too few values: the peer"
        );
        let junk: Vec<(&str, &[u8])> = vec![("x-forwarded-for", b"unknown")];
        assert_eq!(client_of(&xff(0), junk, peer).as_deref(), Some("192.0.2.9"));
        assert_eq!(client_of(&ClientSource::Peer, h, peer).as_deref(), Some("192.0.2.9"));
        assert_eq!(client_of(&ClientSource::Peer, Vec::new(), || None), None);
    }

    #[test]
    fn client_keys_from_host_addresses() {
        assert_eq!(client_key("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(client_key("203.0.113.7:5150").as_deref(), Some("203.0.113.7"));
        assert_eq!(client_key("[2001:db8:1:2:3::1]:443").as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(client_key("2001:db8:1:2:ffff::9").as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(client_key("::ffff:198.51.100.2").as_deref(), Some("198.51.100.2"));
        assert_eq!(client_key(" 192.0.2.1 ").as_deref(), Some("192.0.2.1"));
        for junk in ["", "unknown", "1.2.3", "[::1", "a:b:c"] {
            assert_eq!(client_key(junk), None, "{junk:?}");
        }
    }
}
