//! The verified-token cache: repeated tokens skip signature work.
//!
//! Keyed by a 128-bit keyed hash of (provider, token) — two SipHash-1-3 instances with random
//! per-VM keys, so an attacker cannot aim for a collision — and bounded in entries. An entry
//! never outlives the token: it expires at the token's `exp` plus the provider's clock skew
//! (or after [`NO_EXP_TTL`] when the token has no `exp`), and only tokens that passed every
//! check are cached.
//!
//! Tokens that failed their signature are kept too ([`TokenCache::put_bad`]), by the same
//! keyed hash and as many entries, for [`BAD_TTL`] seconds: the same forged token sent again
//! is refused without another signature check, in bounded memory.
//!
//! Behind it, where the host has shared data, sits a second tier the worker VMs share
//! ([`SharedSlot`]): a token one worker verified is not checked again by the others. It is
//! a fixed number of slots (the cache size), so it stays bounded in the host's memory (shared
//! data has no eviction); a slot holds one token's SHA-256, the fingerprint of the key set that
//! verified it, its expiry and its payload, and is read only when all of them match. Slots are
//! named by a digest of the whole plugin configuration, so two configurations (other issuers,
//! audiences or claim rules) never read each other's tokens.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::rc::Rc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Verified;

/// Format of a shared slot's value (changed if the layout ever does).
const SHARED_VERSION: u8 = 1;
/// Version, digest, key-set fingerprint, expiry.
const SHARED_HEADER: usize = 1 + 32 + 8 + 8;

/// How long a token without `exp` stays cached, seconds.
pub const NO_EXP_TTL: i64 = 60;

/// How long a token that failed its signature is refused without a check, seconds.
pub const BAD_TTL: i64 = 300;

/// A bounded cache of verified tokens, and of tokens known to be forged.
#[derive(Debug)]
pub struct TokenCache {
    max_entries: usize,
    keys: (RandomState, RandomState),
    entries: HashMap<u128, (i64, Rc<Verified>)>,
    order: VecDeque<u128>,
    /// Tokens that failed their signature: hash → until.
    bad: HashMap<u128, i64>,
    bad_order: VecDeque<u128>,
}

impl TokenCache {
    /// An empty cache holding at most `max_entries` tokens (0 disables it).
    pub fn new(max_entries: usize) -> TokenCache {
        TokenCache {
            max_entries,
            keys: (RandomState::new(), RandomState::new()),
            entries: HashMap::new(),
            order: VecDeque::new(),
            bad: HashMap::new(),
            bad_order: VecDeque::new(),
        }
    }

    /// Whether `token` failed its signature for `provider` recently (see [`BAD_TTL`]).
    pub fn is_bad(&self, provider: usize, token: &str, now: i64) -> bool {
        self.max_entries != 0 && self.bad.get(&self.key(provider, token)).is_some_and(|until| now < *until)
    }

    /// Remembers that `token` failed its signature for `provider`. Bounded like the verified
    /// entries: the oldest is dropped first, so a flood of distinct forgeries costs memory
    /// only up to the bound.
    pub fn put_bad(&mut self, provider: usize, token: &str, now: i64) {
        self.put_bad_for(provider, token, now, BAD_TTL);
    }

    /// [`Self::put_bad`] for `seconds` instead of [`BAD_TTL`] (an inactive introspected token).
    pub fn put_bad_for(&mut self, provider: usize, token: &str, now: i64, seconds: i64) {
        if self.max_entries == 0 {
            return;
        }
        let key = self.key(provider, token);
        while self.bad.len() >= self.max_entries {
            let Some(oldest) = self.bad_order.pop_front() else { break };
            self.bad.remove(&oldest);
        }
        if self.bad.insert(key, now.saturating_add(seconds)).is_none() {
            self.bad_order.push_back(key);
        }
    }

    /// Tokens remembered as forged now.
    pub fn bad_len(&self) -> usize {
        self.bad.len()
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
        self.bad.clear();
        self.bad_order.clear();
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

/// Names the shared slots of one plugin configuration: hex of the first 8 bytes of the
/// configuration's SHA-256.
pub fn shared_namespace(configuration: &[u8]) -> String {
    Sha256::digest(configuration).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The key-set fingerprint shared introspection answers carry (no key set made them).
pub const INTROSPECTED: u64 = u64::from_le_bytes(*b"rfc-7662");

/// Where a token lives in the cache the worker VMs share: a shared-data key and the token's
/// digest (which the slot's value must carry to be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSlot {
    /// The shared-data key.
    pub key: String,
    digest: [u8; 32],
}

impl SharedSlot {
    /// The slot of `token` for `provider`, among `slots` slots named by `namespace` (a digest of
    /// the plugin configuration). `None` when the cache is off.
    pub fn new(namespace: &str, slots: usize, provider: usize, token: &str) -> Option<SharedSlot> {
        if slots == 0 {
            return None;
        }
        let mut h = Sha256::new();
        h.update((provider as u64).to_le_bytes());
        h.update(token.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        let n = digest.iter().take(8).fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let slot = n % slots as u64;
        Some(SharedSlot { key: format!("api_guard.tokens.{namespace}.{slot}"), digest })
    }

    /// The slot's value for a token verified with the key set `keys` (its fingerprint), valid
    /// until `until`.
    pub fn encode(&self, keys: u64, until: i64, verified: &Verified) -> Vec<u8> {
        let mut out = Vec::with_capacity(SHARED_HEADER + verified.payload.len());
        out.push(SHARED_VERSION);
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&keys.to_le_bytes());
        out.extend_from_slice(&until.to_le_bytes());
        out.extend_from_slice(&verified.payload);
        out
    }

    /// The verification a slot's value holds, with its expiry, if it is this token's, was
    /// made with the key set `keys` and is still valid at `now`. Anything else (another
    /// token in the slot, another key set, expired, damaged) is a miss.
    pub fn decode(&self, value: &[u8], keys: u64, now: i64) -> Option<(Verified, i64)> {
        let (&version, rest) = value.split_first()?;
        let (digest, rest) = rest.split_at_checked(32)?;
        let (fingerprint, rest) = rest.split_at_checked(8)?;
        let (until, payload) = rest.split_at_checked(8)?;
        let until = i64::from_le_bytes(until.try_into().ok()?);
        if version != SHARED_VERSION
            || digest != self.digest.as_slice()
            || u64::from_le_bytes(fingerprint.try_into().ok()?) != keys
            || now >= until
        {
            return None;
        }
        let claims: Map<String, Value> = serde_json::from_slice(payload).ok()?;
        Some((Verified { claims, payload: payload.to_vec() }, until))
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

    #[test]
    fn shared_slots_hold_one_token_per_key_set_until_expiry() {
        let ns = shared_namespace(b"{\"jwt\":{}}");
        assert_eq!(ns.len(), 16);
        assert_ne!(ns, shared_namespace(b"{\"jwt\":{} }"), "another configuration, other slots");
        assert!(SharedSlot::new(&ns, 0, 0, "t").is_none(), "cache off");
        let slot = SharedSlot::new(&ns, 64, 0, "token-a").unwrap();
        assert!(slot.key.starts_with(&format!("api_guard.tokens.{ns}.")));
        let verified = Verified {
            claims: serde_json::json!({"sub": "a"}).as_object().cloned().unwrap(),
            payload: br#"{"sub":"a"}"#.to_vec(),
        };
        let value = slot.encode(7, 100, &verified);
        let (back, until) = slot.decode(&value, 7, 99).unwrap();
        assert_eq!(
            (back.claims["sub"].as_str(), until, back.payload),
            (Some("a"), 100, verified.payload.clone())
        );
        assert!(slot.decode(&value, 8, 99).is_none(), "another key set");
        assert!(slot.decode(&value, 7, 100).is_none(), "expired");
        // Another token or provider that lands in the same slot does not read this value.
        let other = (0..10_000)
            .map(|i| SharedSlot::new(&ns, 64, 0, &format!("token-{i}")).unwrap())
            .find(|o| o.key == slot.key && o.digest != slot.digest)
            .unwrap();
        assert!(other.decode(&value, 7, 99).is_none());
        let provider1 = SharedSlot::new(&ns, 64, 1, "token-a").unwrap();
        assert_ne!(provider1.digest, slot.digest);
        assert!(provider1.decode(&value, 7, 99).is_none());
        // Damaged values are misses, never panics.
        for cut in 0..value.len() {
            assert!(slot.decode(&value[..cut], 7, 99).is_none());
        }
        let mut flipped = value.clone();
        flipped[0] ^= 1;
        assert!(slot.decode(&flipped, 7, 99).is_none(), "another layout version");
        let mut junk = value[..SHARED_HEADER].to_vec();
        junk.extend_from_slice(b"not json");
        assert!(slot.decode(&junk, 7, 99).is_none());
    }

    #[test]
    fn forged_tokens_are_remembered_bounded_and_for_a_while() {
        let mut c = TokenCache::new(3);
        c.put_bad(0, "t1", 100);
        assert!(c.is_bad(0, "t1", 100) && !c.is_bad(1, "t1", 100) && !c.is_bad(0, "t2", 100));
        assert!(!c.is_bad(0, "t1", 100 + BAD_TTL), "forgotten after BAD_TTL");
        for i in 0..1000 {
            c.put_bad(0, &format!("flood{i}"), 101);
        }
        assert_eq!(c.bad_len(), 3, "bounded under a flood of distinct tokens");
        assert!(c.is_bad(0, "flood999", 101) && !c.is_bad(0, "t1", 101));
        c.clear();
        assert_eq!(c.bad_len(), 0);
        assert!(!TokenCache::new(0).is_bad(0, "x", 0));
    }
}
