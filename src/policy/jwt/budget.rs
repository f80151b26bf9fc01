//! The failed-verification budget: how many tokens that fail their signature (or the claim
//! checks after it) one client may send in a window before its unknown tokens are refused
//! unchecked.
//!
//! A forged token costs the gateway a full signature check (an RS256 check costs 30 to 60 times
//! what a cached token does), so without a limit a client can turn junk tokens into CPU
//! load (OWASP API4). Tokens already verified and cached are not affected: a client over its
//! budget keeps using the tokens it has, and only tokens that would need a new check are
//! refused, with 429 and `Retry-After`. Cheap rejections (malformed, wrong `alg`, unknown
//! issuer or key) cost no signature check and are not counted.
//!
//! Clients are told apart by address. IPv6 clients are grouped by /64, the block a single
//! subscriber usually holds, so rotating through one's own addresses does not reset the count.
//! The table is bounded: when it is full, expired windows are dropped first, then the window
//! that started earliest.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Most clients tracked at once per VM.
pub const MAX_CLIENTS: usize = 4096;

/// The budget's rules, compiled from `jwt.verification_budget`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRules {
    /// Failed verifications allowed per client per window.
    pub max_failures: u32,
    /// Window length in seconds.
    pub window: i64,
    /// Take the client address from this request header (its first comma-separated value)
    /// instead of the connection's peer address.
    pub client_header: Option<String>,
}

/// Failure counts per client, for one VM.
#[derive(Debug)]
pub struct FailureBudget {
    max_failures: u32,
    window: i64,
    capacity: usize,
    /// Client key → (window start, failures in it).
    clients: HashMap<String, (i64, u32)>,
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
            clients: HashMap::new(),
        }
    }

    /// `None` if `client` may have a token checked now; else the seconds until it may.
    pub fn refusal(&self, client: &str, now: i64) -> Option<i64> {
        let (start, count) = self.clients.get(client)?;
        let end = start.saturating_add(self.window);
        (now < end && *count >= self.max_failures).then(|| (end - now).max(1))
    }

    /// Counts a failed verification by `client`.
    pub fn record(&mut self, client: &str, now: i64) {
        let window = self.window;
        if let Some((start, count)) = self.clients.get_mut(client) {
            if now >= start.saturating_add(window) {
                (*start, *count) = (now, 1);
            } else {
                *count = count.saturating_add(1);
            }
            return;
        }
        if self.clients.len() >= self.capacity {
            self.clients.retain(|_, (start, _)| now < start.saturating_add(window));
        }
        if self.clients.len() >= self.capacity {
            let oldest = self.clients.iter().min_by_key(|(_, (start, _))| *start).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.clients.remove(&k);
            }
        }
        self.clients.insert(client.to_string(), (now, 1));
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

    fn rules(max: u32, window: i64) -> BudgetRules {
        BudgetRules { max_failures: max, window, client_header: None }
    }

    #[test]
    fn refuses_after_the_budget_until_the_window_ends() {
        let mut b = FailureBudget::new(&rules(3, 10));
        for _ in 0..3 {
            assert_eq!(b.refusal("a", 100), None);
            b.record("a", 100);
        }
        assert_eq!(b.refusal("a", 100), Some(10));
        assert_eq!(b.refusal("a", 109), Some(1));
        assert_eq!(b.refusal("b", 100), None, "another client is not affected");
        assert_eq!(b.refusal("a", 110), None, "a new window");
        b.record("a", 110);
        assert_eq!(b.refusal("a", 110), None, "the count started over");
    }

    #[test]
    fn the_table_stays_bounded_and_drops_the_oldest_window() {
        let mut b = FailureBudget::with_capacity(&rules(1, 10), 3);
        b.record("a", 100);
        b.record("b", 101);
        b.record("c", 102);
        b.record("d", 103);
        assert_eq!(b.len(), 3);
        assert_eq!(b.refusal("a", 103), None, "the earliest window was dropped");
        assert_eq!(b.refusal("d", 103), Some(10));
        // Expired windows go first.
        b.record("e", 112);
        assert_eq!(b.len(), 2, "b and c expired at 111 and 112");
        assert!(b.refusal("d", 112).is_some());
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
