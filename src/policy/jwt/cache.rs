//! The verified-token cache: repeated tokens skip signature work.
//!
//! Keyed by a 128-bit keyed hash of (provider, token) — two SipHash-1-3 instances with random
//! per-VM keys, so an attacker cannot aim for a collision — and bounded in entries. An entry
//! never outlives the token: it expires at the token's `exp` plus the provider's clock skew
//! (or after [`NO_EXP_TTL`] when the token has no `exp`), and only tokens that passed every
//! check are cached.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;

use super::Verified;

/// How long a token without `exp` stays cached, seconds.
pub const NO_EXP_TTL: i64 = 60;

/// A bounded cache of verified tokens.
#[derive(Debug)]
pub struct TokenCache {
    max_entries: usize,
    keys: (RandomState, RandomState),
    entries: HashMap<u128, (i64, Rc<Verified>)>,
    order: VecDeque<u128>,
}

impl TokenCache {
    /// An empty cache holding at most `max_entries` tokens (0 disables it).
    pub fn new(max_entries: usize) -> TokenCache {
        TokenCache {
            max_entries,
            keys: (RandomState::new(), RandomState::new()),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn key(&self, provider: usize, token: &str) -> u128 {
        let a = self.keys.0.hash_one((provider, token));
        let b = self.keys.1.hash_one((provider, token));
        (u128::from(a) << 64) | u128::from(b)
    }

    /// The cached verification of `token` for `provider`, if still valid at `now`.
    pub fn get(&self, provider: usize, token: &str, now: i64) -> Option<Rc<Verified>> {
        if self.max_entries == 0 {
            return None;
        }
        match self.entries.get(&self.key(provider, token)) {
            Some((until, v)) if now < *until => Some(Rc::clone(v)),
            _ => None,
        }
    }

    /// Caches a verified token until `until` (Unix seconds).
    pub fn put(&mut self, provider: usize, token: &str, verified: Rc<Verified>, until: i64, now: i64) {
        if self.max_entries == 0 || until <= now {
            return;
        }
        let key = self.key(provider, token);
        if self.entries.len() >= self.max_entries {
            // Drop expired entries first, then the oldest, so the bound always holds.
            self.entries.retain(|_, (u, _)| *u > now);
            self.order.retain(|k| self.entries.contains_key(k));
            while self.entries.len() >= self.max_entries {
                let Some(oldest) = self.order.pop_front() else { break };
                self.entries.remove(&oldest);
            }
        }
        if self.entries.insert(key, (until, verified)).is_none() {
            self.order.push_back(key);
        }
    }

    /// Forgets every entry (a key set changed: a removed key must not live on in the cache).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(sub: &str) -> Rc<Verified> {
        let claims = serde_json::json!({ "sub": sub }).as_object().cloned().unwrap_or_default();
        Rc::new(Verified { claims, payload: Vec::new() })
    }

    #[test]
    fn hits_until_expiry_and_per_provider() {
        let mut c = TokenCache::new(10);
        c.put(0, "t", v("a"), 100, 0);
        assert_eq!(c.get(0, "t", 99).map(|x| x.claims["sub"].clone()), Some("a".into()));
        assert!(c.get(0, "t", 100).is_none(), "expired at `until`");
        assert!(c.get(1, "t", 50).is_none(), "another provider");
        assert!(c.get(0, "u", 50).is_none());
        c.put(0, "late", v("b"), 10, 20);
        assert!(c.get(0, "late", 5).is_none(), "already-expired entries are not stored");
    }

    #[test]
    fn stays_bounded() {
        let mut c = TokenCache::new(3);
        for i in 0..10 {
            c.put(0, &format!("t{i}"), v("x"), 1000, 0);
            assert!(c.len() <= 3);
        }
        assert!(c.get(0, "t9", 1).is_some());
        assert!(c.get(0, "t0", 1).is_none());
        let off = TokenCache::new(0);
        assert!(off.get(0, "t", 0).is_none());
    }
}
