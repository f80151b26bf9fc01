//! Where buckets live: a fixed number of slots in a store every worker VM sees (the host's
//! shared data, updated by compare-and-swap), or in the VM's own memory where the host has
//! none.
//!
//! Shared data has no eviction, and a key per client would let anyone who can vary the key
//! (addresses, headers) grow the host's memory without bound. So the table is a fixed number
//! of slots, and a bucket key has two candidate slots, picked by a keyed hash (SHA-256 with a
//! random salt the VMs share, so a client cannot aim its keys at another client's slots). A
//! slot holds one key's fingerprint and its bucket state. A key takes a candidate that is free
//! or whose bucket is full (a full bucket is what a new key starts with: its owner loses
//! nothing). When both candidates hold other keys whose buckets are not full, the request is
//! charged to the fuller of the two: the limit is then shared, which can only count more,
//! never less, so filling the table can never reset anyone's count. That is counted
//! ([`Outcome::shared`]) so a table too small for the traffic is seen.

use std::cell::RefCell;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::bucket::{self, Rate, Take};

/// Value layout version.
const VERSION: u8 = 1;
/// Version, fingerprint, bucket state.
const SLOT_BYTES: usize = 1 + 16 + 8;
/// Compare-and-swap attempts before a store is taken as failing.
const ATTEMPTS: usize = 16;

/// Why a store could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Another writer changed the entry since it was read.
    Conflict,
    /// The store refused the call.
    Unavailable,
}

/// A key-value store with compare-and-swap: the host's shared data, or [`MemoryStore`].
pub trait Store {
    /// The value under `key` and its version, if any.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;
    /// Writes `value` under `key` if its version is still `cas` (0: whatever it is).
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError>;
}

/// A store in the VM's own memory (hosts without shared data, tests).
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        let mut entries = self.entries.borrow_mut();
        let version = entries.get(key).map_or(0, |(_, v)| *v);
        if cas != 0 && cas != version {
            return Err(StoreError::Conflict);
        }
        entries.insert(key.to_string(), (value.to_vec(), version.wrapping_add(1).max(1)));
        Ok(())
    }
}

/// One slot's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    fingerprint: [u8; 16],
    tat: u64,
}

impl Slot {
    const EMPTY: Slot = Slot { fingerprint: [0; 16], tat: 0 };

    fn encode(self) -> [u8; SLOT_BYTES] {
        let mut out = [0u8; SLOT_BYTES];
        let (version, rest) = out.split_at_mut(1);
        let (fp, tat) = rest.split_at_mut(16);
        version.copy_from_slice(&[VERSION]);
        fp.copy_from_slice(&self.fingerprint);
        tat.copy_from_slice(&self.tat.to_le_bytes());
        out
    }

    /// A damaged or foreign value reads as empty: it holds nobody's count.
    fn decode(raw: &[u8]) -> Slot {
        let parse = || {
            let (&version, rest) = raw.split_first()?;
            let (fp, tat) = rest.split_at_checked(16)?;
            (version == VERSION && tat.len() == 8).then_some(())?;
            Some(Slot { fingerprint: fp.try_into().ok()?, tat: u64::from_le_bytes(tat.try_into().ok()?) })
        };
        parse().unwrap_or(Slot::EMPTY)
    }
}

/// The table of one configuration: its slots' names and the salt of its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    prefix: String,
    slots: u32,
    salt: [u8; 16],
}

/// What one request took from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The bucket arithmetic's answer.
    pub take: Take,
    /// Both candidate slots held other clients' unfinished buckets, so the request was counted
    /// in one of theirs.
    pub shared: bool,
}

impl Table {
    /// The table of `slots` slots named by `namespace` (a digest of the configuration), hashed
    /// with `salt`.
    pub fn new(namespace: &str, slots: u32, salt: [u8; 16]) -> Table {
        Table { prefix: format!("api_guard.ratelimit.{namespace}."), slots: slots.max(1), salt }
    }

    /// The store key holding the salt the worker VMs share, for `namespace`.
    pub fn salt_key(namespace: &str) -> String {
        format!("api_guard.ratelimit.{namespace}.salt")
    }

    /// The salt in a stored value, if it is one.
    pub fn parse_salt(raw: &[u8]) -> Option<[u8; 16]> {
        raw.try_into().ok()
    }

    /// This table's salt.
    pub fn salt(&self) -> [u8; 16] {
        self.salt
    }

    /// Its number of slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    fn slot_key(&self, slot: u32) -> String {
        format!("{}{slot}", self.prefix)
    }

    /// The fingerprint of `key` and its two candidate slots.
    fn locate(&self, key: &[u8]) -> ([u8; 16], [u32; 2]) {
        let digest: [u8; 32] = Sha256::new().chain_update(self.salt).chain_update(key).finalize().into();
        let (fp, rest) = digest.split_at(16);
        let word = |i: usize| {
            let b = rest.get(i..i + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).unwrap_or_default();
            u32::from_le_bytes(b) % self.slots
        };
        let mut fingerprint: [u8; 16] = fp.try_into().unwrap_or_default();
        // The all-zero fingerprint marks an empty slot.
        if fingerprint == [0; 16] {
            fingerprint[0] = 1;
        }
        let (a, mut b) = (word(0), word(4));
        if b == a && self.slots > 1 {
            b = (a + 1) % self.slots;
        }
        (fingerprint, [a, b])
    }

    /// Creates the slots the store lacks, as empty ones (shared data cannot create an entry
    /// only if it is absent, so a slot first written under traffic by two VMs at once could lose
    /// one count; written before traffic, it cannot). Returns how many it created.
    pub fn create_slots(&self, store: &dyn Store) -> Result<u32, StoreError> {
        let mut created = 0;
        for slot in 0..self.slots {
            let key = self.slot_key(slot);
            if store.get(&key)?.is_none() {
                store.set(&key, &Slot::EMPTY.encode(), 0)?;
                created += 1;
            }
        }
        Ok(created)
    }

    /// Takes one request for bucket `key` under `rate` at `now_us` (microseconds).
    pub fn take(
        &self,
        store: &dyn Store,
        rate: Rate,
        key: &[u8],
        now_us: u64,
    ) -> Result<Outcome, StoreError> {
        self.take_at(store, rate, key, &|| now_us)
    }

    /// [`Table::take`] with the time read from `clock` after each slot is read: a bucket
    /// another worker VM updated is never judged at a time before that update (a request whose
    /// time was read first would find the bucket ahead of its "now", and be refused for it).
    pub fn take_at(
        &self,
        store: &dyn Store,
        rate: Rate,
        key: &[u8],
        clock: &dyn Fn() -> u64,
    ) -> Result<Outcome, StoreError> {
        let (fingerprint, candidates) = self.locate(key);
        for _ in 0..ATTEMPTS {
            match self.try_take(store, rate, fingerprint, candidates, clock) {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Unavailable)
    }

    fn try_take(
        &self,
        store: &dyn Store,
        rate: Rate,
        fingerprint: [u8; 16],
        candidates: [u32; 2],
        clock: &dyn Fn() -> u64,
    ) -> Result<Outcome, StoreError> {
        let mut seen: Vec<(String, Slot, u32)> = Vec::with_capacity(2);
        let mut now_us = 0;
        for slot in candidates {
            let key = self.slot_key(slot);
            let (slot, cas) = store.get(&key)?.map_or((Slot::EMPTY, 0), |(v, cas)| (Slot::decode(&v), cas));
            now_us = clock();
            if slot.fingerprint == fingerprint {
                return write(store, &key, fingerprint, rate.take(slot.tat, now_us), cas, false);
            }
            seen.push((key, slot, cas));
        }
        // Not held: take a free slot (empty, or a full bucket), else share the fuller one.
        let free = seen.iter().find(|(_, s, _)| s.fingerprint == [0; 16] || bucket::is_full(s.tat, now_us));
        if let Some((key, _, cas)) = free {
            return write(store, key, fingerprint, rate.take(0, now_us), *cas, false);
        }
        let fuller = seen.iter().max_by_key(|(_, s, _)| s.tat).ok_or(StoreError::Unavailable)?;
        let (key, slot, cas) = fuller;
        write(store, key, slot.fingerprint, rate.take(slot.tat, now_us), *cas, true)
    }
}

/// Writes a taken request's new state (a refusal changes nothing and writes nothing).
fn write(
    store: &dyn Store,
    key: &str,
    fingerprint: [u8; 16],
    take: Take,
    cas: u32,
    shared: bool,
) -> Result<Outcome, StoreError> {
    if take.allowed {
        store.set(key, &Slot { fingerprint, tat: take.tat }.encode(), cas)?;
    }
    Ok(Outcome { take, shared })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000_000;

    fn rate(n: u32) -> Rate {
        Rate { requests: n, window_seconds: 60, burst: n }
    }

    fn allowed(table: &Table, store: &dyn Store, n: u32, key: &str, times: usize) -> usize {
        (0..times)
            .filter(|_| {
                table.take(store, rate(n), key.as_bytes(), NOW).map(|o| o.take.allowed).unwrap_or(false)
            })
            .count()
    }

    #[test]
    fn a_bucket_is_judged_at_a_time_read_after_it() {
        // Four of five taken at NOW by another worker; this request's time was read half a
        // second earlier, before it lost the race to the slot.
        let store = MemoryStore::default();
        let table = Table::new("ns", 64, [3; 16]);
        let five = Rate { requests: 5, window_seconds: 3600, burst: 5 };
        for _ in 0..4 {
            assert!(table.take(&store, five, b"k", NOW).unwrap().take.allowed);
        }
        let stale = NOW - 500_000;
        // Judged at the stale time, the fifth is refused for half a second: the bucket looks
        // ahead of its "now".
        let copy = MemoryStore::default();
        for _ in 0..4 {
            table.take(&copy, five, b"k", NOW).unwrap();
        }
        let o = table.take(&copy, five, b"k", stale).unwrap();
        assert_eq!((o.take.allowed, o.take.retry_after), (false, 1));
        // Read after the slot, the time is the update's or later: the fifth is allowed.
        let reads = std::cell::Cell::new(0);
        let clock = || {
            reads.set(reads.get() + 1);
            NOW
        };
        assert!(table.take_at(&store, five, b"k", &clock).unwrap().take.allowed);
        assert!(reads.get() >= 1);
        assert!(!table.take_at(&store, five, b"k", &clock).unwrap().take.allowed);
    }

    #[test]
    fn keys_count_apart_and_exactly() {
        let store = MemoryStore::default();
        let table = Table::new("ns", 1024, [7; 16]);
        assert_eq!(allowed(&table, &store, 3, "alice", 10), 3);
        assert_eq!(allowed(&table, &store, 3, "bob", 10), 3);
        assert_eq!(allowed(&table, &store, 3, "alice", 1), 0);
    }

    #[test]
    fn a_full_table_counts_more_never_less() {
        // Two slots: every key's candidates are both of them.
        let store = MemoryStore::default();
        let table = Table::new("ns", 2, [1; 16]);
        assert_eq!(allowed(&table, &store, 5, "a", 2), 2);
        assert_eq!(allowed(&table, &store, 5, "b", 2), 2);
        // "c" finds both slots busy: it shares the fuller bucket (with 3 left), and its
        // requests use up that bucket's owner's remainder too.
        let o = table.take(&store, rate(5), b"c", NOW).unwrap();
        assert!(o.shared && o.take.allowed);
        assert_eq!(allowed(&table, &store, 5, "c", 10), 2);
        // "a" or "b" (whichever was shared) has lost nothing it was owed beyond the sharing,
        // and nobody's count went back to zero.
        let left = allowed(&table, &store, 5, "a", 10) + allowed(&table, &store, 5, "b", 10);
        assert!(left <= 3, "{left}");
    }

    #[test]
    fn a_full_bucket_gives_its_slot_up_without_loss() {
        let store = MemoryStore::default();
        let table = Table::new("ns", 2, [1; 16]);
        assert_eq!(allowed(&table, &store, 5, "a", 1), 1);
        assert_eq!(allowed(&table, &store, 5, "b", 1), 1);
        // A minute later both buckets are full again, so "c" takes a slot of its own.
        let later = NOW + 60_000_000;
        let o = table.take(&store, rate(5), b"c", later).unwrap();
        assert!(!o.shared && o.take.allowed && o.take.remaining == 4);
    }

    #[test]
    fn slots_are_created_once_and_damage_reads_as_empty() {
        let store = MemoryStore::default();
        let table = Table::new("ns", 8, [2; 16]);
        assert_eq!(table.create_slots(&store), Ok(8));
        assert_eq!(table.create_slots(&store), Ok(0));
        assert_eq!(Slot::decode(b"junk"), Slot::EMPTY);
        assert_eq!(Slot::decode(&Slot { fingerprint: [3; 16], tat: 9 }.encode()).tat, 9);
    }

    /// A store whose writes conflict a number of times first (another VM writing between
    /// this VM's read and write).
    struct Contended {
        inner: MemoryStore,
        conflicts: std::cell::Cell<u32>,
    }

    impl Store for Contended {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
            if self.conflicts.get() > 0 {
                self.conflicts.set(self.conflicts.get() - 1);
                // The other writer's request: a real write that moves the version on.
                let (v, c) = self.inner.get(key)?.unwrap_or_default();
                self.inner.set(key, &v, c)?;
                return Err(StoreError::Conflict);
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn conflicts_are_retried_and_endless_ones_fail() {
        let table = Table::new("ns", 64, [4; 16]);
        let store = Contended { inner: MemoryStore::default(), conflicts: std::cell::Cell::new(3) };
        table.create_slots(&store.inner).unwrap();
        assert!(table.take(&store, rate(5), b"k", NOW).unwrap().take.allowed);
        store.conflicts.set(1000);
        assert_eq!(table.take(&store, rate(5), b"k", NOW), Err(StoreError::Unavailable));
    }
}
