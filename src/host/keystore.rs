//! The per-VM home of remote key sets: one [`KeyCache`] per remote provider, shared by the
//! root context (background refresh on `on_tick`) and HTTP contexts (fetch on demand, e.g. an
//! unknown `kid`). Fetched key sets are also written to the host's shared data, so other
//! worker VMs adopt them instead of fetching again.
//!
//! The cache rules themselves live in [`crate::policy::jwt::jwks`]; this module only moves
//! bytes between them and the host.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use super::abi::{self, BufferType, LogLevel, MapType};
use super::capabilities::Capabilities;
use super::metrics::Metrics;
use crate::policy::authz::VerifyState;
use crate::policy::jwt::budget::{FailureBudget, Throttle};
use crate::policy::jwt::cache::{SharedSlot, TokenCache, METRIC_SHARED_HITS};
use crate::policy::jwt::jwks::{self, Availability, KeyCache, RemoteSpec, MAX_JWKS_BYTES};
use crate::policy::jwt::{ProviderKeys, Verified};
use crate::policy::Policy;

/// One remote provider's cache.
struct Entry {
    name: String,
    spec: RemoteSpec,
    cache: KeyCache,
}

/// Remote key sets of one VM, indexed like the policy's providers.
#[derive(Default)]
pub struct KeyStore {
    entries: Vec<Option<Entry>>,
}

/// The token-cache tier the worker VMs share through the host's shared data (only where the
/// host has it, and the cache is on).
#[derive(Debug)]
pub struct SharedTokens {
    /// Names this plugin configuration's slots ([`crate::policy::jwt::cache::shared_namespace`]).
    pub namespace: String,
    /// How many slots (the cache size).
    pub slots: usize,
}

/// A token by provider and place in the request (address and length of its text).
type TokenPlace = (usize, *const u8, usize);

/// Names the request's client (its budget key) and connection, for the failed-verification
/// budget (called at most once, and only when a token needs a signature check).
pub type ClientFn<'a> = dyn Fn() -> (Option<String>, Option<u64>) + 'a;

/// The verification state at one instant, for the policy: key sets (read-only) and the
/// token cache.
pub struct View<'s> {
    store: &'s KeyStore,
    tokens: &'s RefCell<TokenCache>,
    now: i64,
    /// The failed-verification budget and how to name this request's client; the client is
    /// looked up only when a token needs checking (a cached token costs no host call).
    budget: Option<(&'s RefCell<FailureBudget>, &'s ClientFn<'s>)>,
    client: OnceCell<(Option<String>, Option<u64>)>,
    /// The shared tier, and the counters for its hits.
    shared: Option<(&'s SharedTokens, &'s Metrics)>,
    /// The slot the last shared-tier lookup computed, by (provider, token's place): the write
    /// after that token's check reuses it instead of hashing the token again.
    last_slot: RefCell<Option<(TokenPlace, SharedSlot)>>,
}

impl<'s> View<'s> {
    fn client(&self) -> (Option<&str>, Option<u64>) {
        let (key, connection) = self.client.get_or_init(|| self.budget.map_or((None, None), |(_, f)| f()));
        (key.as_deref(), *connection)
    }

    /// Adds the token-cache tier the worker VMs share (`None`: this VM's cache only).
    pub fn with_shared(self, shared: Option<&'s SharedTokens>, metrics: &'s Metrics) -> View<'s> {
        View { shared: shared.map(|s| (s, metrics)), ..self }
    }

    fn slot(&self, provider: usize, token: &str) -> Option<SharedSlot> {
        let (s, _) = self.shared?;
        let at = (provider, token.as_ptr(), token.len());
        if let Some((_, slot)) = self.last_slot.borrow().as_ref().filter(|(k, _)| *k == at) {
            return Some(slot.clone());
        }
        let slot = SharedSlot::new(&s.namespace, s.slots, provider, token)?;
        *self.last_slot.borrow_mut() = Some((at, slot.clone()));
        Some(slot)
    }
}

impl VerifyState for View<'_> {
    fn lookup(&self, index: usize) -> Availability {
        match self.store.entries.get(index) {
            Some(Some(e)) => e.cache.availability(&e.spec, self.now),
            _ => Availability::Unavailable,
        }
    }

    fn cached(&self, provider: usize, token: &str) -> Option<Rc<Verified>> {
        self.tokens.try_borrow().ok()?.get(provider, token, self.now)
    }

    fn remember(&self, provider: usize, token: &str, verified: &Rc<Verified>, until: i64) {
        if let Ok(mut t) = self.tokens.try_borrow_mut() {
            t.put(provider, token, Rc::clone(verified), until, self.now);
        }
    }

    fn shared(&self, provider: usize, token: &str, keys: u64) -> Option<Rc<Verified>> {
        let slot = self.slot(provider, token)?;
        let (value, _) = abi::get_shared(&slot.key).ok()??;
        let (verified, until) = slot.decode(&value, keys, self.now)?;
        let verified = Rc::new(verified);
        // This VM keeps it too: the next request with it costs no host call.
        self.remember(provider, token, &verified, until);
        if let Some((_, metrics)) = self.shared {
            metrics.bump(METRIC_SHARED_HITS);
        }
        Some(verified)
    }

    fn share(&self, provider: usize, token: &str, keys: u64, verified: &Verified, until: i64) {
        if let Some(slot) = self.slot(provider, token) {
            // A lost race with another VM's write only costs that VM's token a check later.
            let _ = abi::set_shared(&slot.key, &slot.encode(keys, until, verified));
        }
    }

    fn may_verify(&self) -> Result<(), Throttle> {
        let Some((budget, _)) = self.budget else { return Ok(()) };
        let (client, connection) = self.client();
        match budget.try_borrow_mut() {
            Ok(mut b) => b.admit(client, connection, self.now),
            Err(_) => Ok(()),
        }
    }

    fn verification_failed(&self) {
        if let (Some((budget, _)), (Some(client), connection)) = (self.budget, self.client()) {
            if let Ok(mut b) = budget.try_borrow_mut() {
                b.record(client, connection, self.now);
            }
        }
    }

    fn known_bad(&self, provider: usize, token: &str) -> bool {
        self.tokens.try_borrow().is_ok_and(|t| t.is_bad(provider, token, self.now))
    }

    fn remember_bad(&self, provider: usize, token: &str) {
        if let Ok(mut t) = self.tokens.try_borrow_mut() {
            t.put_bad(provider, token, self.now);
        }
    }
}

/// The shared-data key of a provider's key set. It names the URL and the upstream as well as
/// the provider: plugin configurations that share a VM may reuse a provider name for another
/// key set, and must never adopt each other's keys.
fn shared_key(e: &Entry) -> String {
    format!("api_guard.jwks.{}|{}|{}", e.name, e.spec.cluster.as_deref().unwrap_or(""), e.spec.uri)
}

impl KeyStore {
    /// An empty store for the policy's remote providers, keeping the caches of providers
    /// whose key-set URL did not change (a reconfiguration does not drop good keys).
    pub fn for_policy(policy: &Policy, previous: Option<KeyStore>) -> KeyStore {
        let mut previous: Vec<Entry> =
            previous.map(|p| p.entries.into_iter().flatten().collect()).unwrap_or_default();
        let entries = policy
            .jwt
            .iter()
            .flat_map(|j| j.providers.iter())
            .map(|p| match &p.keys {
                ProviderKeys::Remote(spec) => {
                    let kept = previous.iter().position(|e| e.name == p.name && e.spec == *spec);
                    let cache = kept.map(|i| previous.swap_remove(i).cache).unwrap_or_default();
                    Some(Entry { name: p.name.clone(), spec: spec.clone(), cache })
                }
                ProviderKeys::Local(_) => None,
            })
            .collect();
        KeyStore { entries }
    }

    /// Whether any provider uses remote keys.
    pub fn has_remote(&self) -> bool {
        self.entries.iter().any(Option::is_some)
    }

    /// The view the policy reads at `now`.
    pub fn view<'s>(&'s self, tokens: &'s RefCell<TokenCache>, now: i64) -> View<'s> {
        View {
            store: self,
            tokens,
            now,
            budget: None,
            client: OnceCell::new(),
            shared: None,
            last_slot: RefCell::new(None),
        }
    }

    /// As [`Self::view`], with the failed-verification budget: `client` names the request's
    /// client (a budget key, see [`crate::policy::jwt::budget::client_key`]).
    pub fn view_with_budget<'s>(
        &'s self,
        tokens: &'s RefCell<TokenCache>,
        now: i64,
        budget: &'s RefCell<FailureBudget>,
        client: &'s ClientFn<'s>,
    ) -> View<'s> {
        View { budget: Some((budget, client)), ..self.view(tokens, now) }
    }

    /// Adopts newer key sets other VMs wrote to shared data. Returns whether any changed.
    pub fn adopt_shared(&mut self, caps: &Capabilities) -> bool {
        let mut changed = false;
        if !caps.shared_data {
            return changed;
        }
        for e in self.entries.iter_mut().flatten() {
            if let Ok(Some((bytes, _))) = abi::get_shared(&shared_key(e)) {
                if let Some((at, body)) = jwks::decode_shared(&bytes) {
                    if e.cache.adopt(&e.spec, body, at) {
                        changed = true;
                        abi::log(
                            LogLevel::Info,
                            &format!("api-guard: jwks for provider '{}' adopted from another worker", e.name),
                        );
                    }
                }
            }
        }
        changed
    }

    /// Providers whose background refresh is due.
    pub fn due(&self, now: i64) -> Vec<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().filter(|e| e.cache.due(&e.spec, now)).map(|_| i))
            .collect()
    }

    /// Sends the key-set request for provider `index` (to its cluster where the host has
    /// `clusters`); returns the call token.
    pub fn fetch(&mut self, index: usize, now: i64, clusters: bool) -> Option<u32> {
        let e = self.entries.get_mut(index)?.as_mut()?;
        let headers = vec![
            (":method".to_string(), "GET".to_string()),
            (":path".to_string(), e.spec.path.clone()),
            (":authority".to_string(), e.spec.authority.clone()),
            (":scheme".to_string(), e.spec.scheme.clone()),
            ("accept".to_string(), "application/jwk-set+json, application/json".to_string()),
        ];
        let timeout = u32::try_from(e.spec.timeout_ms).unwrap_or(u32::MAX);
        e.cache.start(now);
        let upstream = e.spec.upstream(clusters);
        match abi::http_call(upstream, &headers, timeout) {
            Ok(token) => Some(token),
            Err(err) => {
                e.cache.abort();
                abi::log(
                    LogLevel::Warn,
                    &format!(
                        "api-guard: cannot request jwks for provider '{}' from '{}' (host status {})",
                        e.name, upstream, err.0
                    ),
                );
                None
            }
        }
    }

    /// Handles the response to a key-set request: reads status and at most 64 KiB + 1 of the
    /// body, updates the cache (keeping the last good keys on any failure), and publishes a
    /// good set to shared data. Returns whether the keys changed.
    pub fn complete(&mut self, index: usize, body_size: usize, now: i64, caps: &Capabilities) -> bool {
        let Some(Some(e)) = self.entries.get_mut(index) else { return false };
        let status = abi::get_headers(MapType::HttpCallResponseHeaders)
            .ok()
            .and_then(|h| h.into_iter().find(|(n, _)| n == ":status"))
            .and_then(|(_, v)| std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u16>().ok()));
        let body = if body_size > MAX_JWKS_BYTES {
            Some(vec![0; MAX_JWKS_BYTES + 1]) // too large: never read, never parsed
        } else {
            abi::get_buffer(BufferType::HttpCallResponseBody, MAX_JWKS_BYTES + 1).ok().flatten()
        };
        match e.cache.complete(&e.spec, status, body.as_deref(), now) {
            Ok(n) => {
                abi::log(
                    LogLevel::Info,
                    &format!("api-guard: jwks for provider '{}' loaded ({n} keys)", e.name),
                );
                if let Some(set) = e.cache.keys() {
                    super::root::log_skipped(&e.name, set);
                }
                if caps.shared_data {
                    if let Some(b) = &body {
                        let _ = abi::set_shared(&shared_key(e), &jwks::encode_shared(now, b));
                    }
                }
                true
            }
            Err(err) => {
                abi::log(
                    LogLevel::Warn,
                    &format!(
                        "api-guard: jwks fetch for provider '{}' failed ({}{}); keeping the last good keys",
                        e.name,
                        err.name(),
                        status.map(|s| format!(", status {s}")).unwrap_or_default()
                    ),
                );
                false
            }
        }
    }
}
