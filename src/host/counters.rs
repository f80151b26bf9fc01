//! The rate-limit counters of one configuration: the core's table (`policy::ratelimit::table`)
//! in the host's shared data, or in the VM's memory where the host has none. Host reads and
//! writes only; what is counted, and how, is the core's.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};

use super::abi::{self, LogLevel};
use crate::policy::capabilities::Capabilities;
use crate::policy::ratelimit::table::{MemoryStore, Store, StoreError, Table};
use crate::policy::ratelimit::Limiter;
use crate::policy::Policy;

/// The host's shared data as the table's store.
struct HostStore;

impl Store for HostStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        abi::get_shared(key).map_err(|_| StoreError::Unavailable)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        abi::set_shared_cas(key, value, cas).map_err(|e| match e.0 {
            abi::CAS_MISMATCH => StoreError::Conflict,
            _ => StoreError::Unavailable,
        })
    }
}

/// Where this configuration's buckets live.
pub struct Counters {
    /// The table; its salt is re-read on every tick, so VMs that started at once and wrote
    /// different salts agree within one tick.
    table: RefCell<Table>,
    namespace: String,
    /// The VM's own store, where the host has no shared data.
    memory: Option<MemoryStore>,
}

/// A random salt from the platform's random source (WASI `random_get`, through std's hasher
/// keys).
fn random_salt() -> [u8; 16] {
    let word = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    let mut salt = [0u8; 16];
    let (a, b) = salt.split_at_mut(8);
    a.copy_from_slice(&word().to_le_bytes());
    b.copy_from_slice(&word().to_le_bytes());
    salt
}

impl Counters {
    /// The counters for `policy` (none without `rate_limits`). With shared data: the salt the
    /// VMs share (written by the first), and every slot created before any request.
    pub fn new(policy: &Policy, caps: &Capabilities, namespace: &str) -> Option<Counters> {
        let limits = policy.rate_limits.as_ref()?;
        if !caps.shared_data {
            let table = Table::new(namespace, limits.slots, random_salt());
            return Some(Counters {
                table: RefCell::new(table),
                namespace: namespace.to_string(),
                memory: Some(MemoryStore::default()),
            });
        }
        let key = Table::salt_key(namespace);
        let stored = || HostStore.get(&key).ok().flatten().and_then(|(v, _)| Table::parse_salt(&v));
        let salt = match stored() {
            Some(s) => s,
            None => {
                let _ = HostStore.set(&key, &random_salt(), 0);
                stored().unwrap_or_else(random_salt)
            }
        };
        let table = Table::new(namespace, limits.slots, salt);
        match table.create_slots(&HostStore) {
            Ok(0) => {}
            Ok(n) => abi::log(LogLevel::Info, &format!("api-guard: rate limits: {n} counter slots created")),
            Err(_) => abi::log(
                LogLevel::Warn,
                "api-guard: rate limits: the host refused shared data; limits apply their failure mode",
            ),
        }
        Some(Counters { table: RefCell::new(table), namespace: namespace.to_string(), memory: None })
    }

    /// Adopts the shared salt if another VM's write replaced this VM's (on every tick).
    pub fn refresh(&self) {
        if self.memory.is_some() {
            return;
        }
        let stored = HostStore.get(&Table::salt_key(&self.namespace)).ok().flatten();
        if let Some(salt) = stored.and_then(|(v, _)| Table::parse_salt(&v)) {
            if salt != self.table.borrow().salt() {
                let slots = self.table.borrow().slots();
                *self.table.borrow_mut() = Table::new(&self.namespace, slots, salt);
            }
        }
    }

    /// Runs `judge` with this request's limiter, at the WASI clock's time.
    pub fn with_limiter<R>(&self, judge: impl FnOnce(&Limiter<'_>) -> R) -> R {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let table = self.table.borrow();
        let store: &dyn Store = match &self.memory {
            Some(m) => m,
            None => &HostStore,
        };
        judge(&Limiter::new(&table, store, now_us))
    }
}
