//! The counters of one configuration: the core's tables (`policy::ratelimit::table`) in the
//! host's shared data, or in the VM's memory where the host has none: one for rate limits, one
//! for the DPoP proofs seen (each proof may be taken once, so a replay to another worker is
//! refused too). Host reads and writes only; what is counted, and how, is the core's.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};

use super::abi::{self, LogLevel};
use crate::policy::capabilities::Capabilities;
use crate::policy::ratelimit::bucket::Rate;
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

/// Slots of the DPoP proof table: proofs live a minute by default, so this holds the proofs of
/// about 68 requests a second before two proofs share a slot (a shared slot is never taken
/// for a replay: the per-VM memory of proofs still catches those).
pub const PROOF_SLOTS: u32 = 4096;

/// One table and where it lives.
struct Shelf {
    /// The table; its salt is re-read on every tick, so VMs that started at once and wrote
    /// different salts agree within one tick.
    table: RefCell<Table>,
    namespace: String,
    /// The VM's own store, where the host has no shared data.
    memory: Option<MemoryStore>,
}

/// Where this configuration's buckets live.
pub struct Counters {
    limits: Option<Shelf>,
    proofs: Option<Shelf>,
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

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Shelf {
    /// A table of `slots` named by `namespace`. With shared data: the salt the VMs share
    /// (written by the first), and every slot created before any request.
    fn new(namespace: &str, slots: u32, caps: &Capabilities, what: &str) -> Shelf {
        if !caps.shared_data {
            let table = Table::new(namespace, slots, random_salt());
            return Shelf {
                table: RefCell::new(table),
                namespace: namespace.to_string(),
                memory: Some(MemoryStore::default()),
            };
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
        let table = Table::new(namespace, slots, salt);
        match table.create_slots(&HostStore) {
            Ok(0) => {}
            Ok(n) => abi::log(LogLevel::Info, &format!("api-guard: {what}: {n} counter slots created")),
            Err(_) => abi::log(
                LogLevel::Warn,
                &format!("api-guard: {what}: the host refused shared data; counted as the failure mode says"),
            ),
        }
        Shelf { table: RefCell::new(table), namespace: namespace.to_string(), memory: None }
    }

    /// Adopts the shared salt if another VM's write replaced this VM's.
    fn refresh(&self) {
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

    fn store(&self) -> &dyn Store {
        match &self.memory {
            Some(m) => m,
            None => &HostStore,
        }
    }
}

impl Counters {
    /// The counters for `policy`: none without `rate_limits` or a DPoP provider. Proofs are
    /// kept here only where the host has shared data (the core remembers them per VM anyway).
    pub fn new(policy: &Policy, caps: &Capabilities, namespace: &str) -> Option<Counters> {
        let limits = policy.rate_limits.as_ref().map(|l| Shelf::new(namespace, l.slots, caps, "rate limits"));
        let dpop = policy.jwt.iter().flat_map(|j| j.providers.iter()).any(|p| p.dpop.is_some());
        let proofs = (dpop && caps.shared_data)
            .then(|| Shelf::new(&format!("{namespace}.dpop"), PROOF_SLOTS, caps, "DPoP proofs"));
        (limits.is_some() || proofs.is_some()).then_some(Counters { limits, proofs })
    }

    /// Adopts the shared salts if another VM's write replaced this VM's (on every tick).
    pub fn refresh(&self) {
        for shelf in [&self.limits, &self.proofs].into_iter().flatten() {
            shelf.refresh();
        }
    }

    /// Runs `judge` with this request's limiter (none without rate limits), at the WASI
    /// clock's time.
    pub fn with_limiter<R>(&self, judge: impl FnOnce(Option<&Limiter<'_>>) -> R) -> R {
        let Some(shelf) = &self.limits else { return judge(None) };
        let table = shelf.table.borrow();
        judge(Some(&Limiter::with_clock(&table, shelf.store(), &now_us)))
    }

    /// Whether another worker VM took the DPoP proof `key` before, for as long as it lives
    /// (`seconds`); takes it either way. A table that cannot say (the host refused, or two
    /// proofs share a slot) answers no: the per-VM memory of proofs stands.
    pub fn proof_taken(&self, key: &[u8; 32], seconds: i64) -> bool {
        let Some(shelf) = &self.proofs else { return false };
        let window = u32::try_from(seconds.clamp(1, 3600)).unwrap_or(1);
        let once = Rate { requests: 1, window_seconds: window, burst: 1 };
        match shelf.table.borrow().take(shelf.store(), once, key, now_us()) {
            Ok(o) => !o.shared && !o.take.allowed,
            Err(_) => false,
        }
    }
}
