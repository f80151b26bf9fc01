//! The verification state of one VM, and the view one request checks its tokens through.
//!
//! [`State`] owns everything token checks remember between requests: the remote key sets
//! ([`KeyCache`] per remote provider), the verified-token cache ([`TokenCache`]) and the
//! failed-verification budget ([`FailureBudget`]). A request reads and updates it through a
//! [`View`] (the [`VerifyState`] that [`crate::policy::Policy::check_head`] is given). The host keeps one
//! `State` per VM and supplies only what it alone has: the time, the client's name (asked at
//! most once, and only when a token needs a signature check) and its shared data
//! ([`SharedData`], the tier of verified tokens and key sets the worker VMs share). Key-set
//! fetches are data both ways: [`State::start_fetch`] says what to send,
//! [`State::complete_fetch`] takes what came back.
//!
//! Tests and benchmarks drive this same type; nothing of it is re-implemented on the host side.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use super::budget::{BudgetRules, FailureBudget, Throttle};
use super::cache::{SharedSlot, TokenCache};
use super::jwks::{self, Availability, FetchError, KeyCache, RemoteSpec};
use super::keys::KeySet;
use super::{Provider, ProviderKeys, Verified};

/// The host's shared data (one store for all worker VMs), as verification uses it.
pub trait SharedData {
    /// The value stored under `key`, if any.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores `value` under `key`. A lost race with another VM's write only costs a check.
    fn set(&self, key: &str, value: &[u8]);
}

/// A host without shared data: each VM keeps its own state only.
pub struct NoSharedData;

impl SharedData for NoSharedData {
    fn get(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
    fn set(&self, _: &str, _: &[u8]) {}
}

/// What token checks read and update between requests: remote key sets, the verified-token
/// cache (both tiers), known-bad tokens and the failure budget. [`View`] is the real one.
pub trait VerifyState {
    /// The state of provider `index`'s remote keys now (local keys never go through this).
    fn lookup(&self, index: usize) -> Availability;
    /// A cached verification of `token` by `provider`, if any is still valid.
    fn cached(&self, _provider: usize, _token: &str) -> Option<Rc<Verified>> {
        None
    }
    /// Caches a verification until `until` (Unix seconds).
    fn remember(&self, _provider: usize, _token: &str, _verified: &Rc<Verified>, _until: i64) {}
    /// A verification of `token` by `provider` that another worker VM shared, made with the
    /// key set whose fingerprint is `keys` (asked only when [`VerifyState::cached`] missed).
    fn shared(&self, _provider: usize, _token: &str, _keys: u64) -> Option<Rc<Verified>> {
        None
    }
    /// Shares a verification made with the key set `keys` with the other worker VMs.
    fn share(&self, _provider: usize, _token: &str, _keys: u64, _verified: &Verified, _until: i64) {}
    /// Whether a token of this request may have its signature checked now: not when its
    /// client is over budget on this connection, or the VM is out of checks this second (see
    /// [`super::budget`]).
    fn may_verify(&self) -> Result<(), Throttle> {
        Ok(())
    }
    /// A token of this request's client failed its signature.
    fn verification_failed(&self) {}
    /// Whether `token` recently failed its signature for `provider` (refused again unchecked).
    fn known_bad(&self, _provider: usize, _token: &str) -> bool {
        false
    }
    /// Remembers that `token` failed its signature for `provider`.
    fn remember_bad(&self, _provider: usize, _token: &str) {}
    /// The request's client key (an IPv4 address or IPv6 /64), as the budget reads it.
    fn client_key(&self) -> Option<String> {
        None
    }
    /// The rate-limit counters this request is judged against; `None` where none are kept
    /// (offline tools), and limits are then not counted.
    fn limiter(&self) -> Option<&crate::policy::ratelimit::Limiter<'_>> {
        None
    }
    /// The SHA-256 of the DER of the TLS client certificate the connection presented, where
    /// the host exposes it (asked only for certificate-bound tokens).
    fn client_certificate(&self) -> Option<[u8; 32]> {
        None
    }
    /// Whether a DPoP proof (its replay key) was presented before; records it until `until`
    /// either way. Without state every proof is new.
    fn dpop_replayed(&self, _key: [u8; 32], _until: i64) -> bool {
        false
    }
}

/// DPoP proofs remembered per VM at most (a proof lives `max_age_seconds`; past this many at
/// once, the ones closest to expiry are forgotten first).
pub const MAX_PROOFS: usize = 16_384;

impl State {
    /// Takes in an introspection answer about `token` for provider `index`: an active one is
    /// cached like a verified token (until it says), an inactive one remembered as bad for
    /// `inactive_seconds`; an unusable answer leaves nothing, so the request is refused 503.
    pub fn introspected(
        &mut self,
        index: usize,
        token: &str,
        answer: Result<(Verified, i64), super::TokenError>,
        inactive_seconds: i64,
        now: i64,
        shared: &dyn SharedData,
    ) {
        match answer {
            Ok((verified, until)) => {
                // The other workers take it from the shared tier instead of asking again.
                let slot = self
                    .shared_tokens
                    .as_ref()
                    .and_then(|(ns, slots)| SharedSlot::new(ns, *slots, index, token));
                if let Some(slot) = slot {
                    shared.set(&slot.key, &slot.encode(super::cache::INTROSPECTED, until, &verified));
                }
                self.tokens.put(index, token, Rc::new(verified), until, now);
            }
            Err(super::TokenError::IntrospectionUnavailable) => {}
            Err(_) => self.tokens.put_bad_for(index, token, now, inactive_seconds),
        }
    }

    /// Records a proof; `true` if it was seen before and has not expired.
    pub fn proof_seen(&mut self, key: [u8; 32], until: i64, now: i64) -> bool {
        if self.proofs.get(&key).is_some_and(|&u| u >= now) {
            return true;
        }
        if self.proofs.len() >= MAX_PROOFS {
            self.proofs.retain(|_, u| *u >= now);
            while self.proofs.len() >= MAX_PROOFS {
                let Some(oldest) = self.proofs.iter().min_by_key(|(_, u)| **u).map(|(k, _)| *k) else {
                    break;
                };
                self.proofs.remove(&oldest);
            }
        }
        self.proofs.insert(key, until);
        false
    }
}

/// No state: remote key sets unavailable, no cache (policies without remote keys, tests).
pub struct NoState;

impl VerifyState for NoState {
    fn lookup(&self, _: usize) -> Availability {
        Availability::Unavailable
    }
}

/// One remote provider's key set.
#[derive(Debug)]
struct Remote {
    name: String,
    spec: RemoteSpec,
    cache: KeyCache,
}

impl Remote {
    /// The shared-data key of this key set. It names the URL and the upstream as well as the
    /// provider: plugin configurations that share a VM may reuse a provider name for another
    /// key set, and must never adopt each other's keys.
    fn shared_key(&self) -> String {
        format!(
            "api_guard.jwks.{}|{}|{}",
            self.name,
            self.spec.cluster.as_deref().unwrap_or(""),
            self.spec.uri
        )
    }
}

/// What a completed fetch brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// A key set of this many keys.
    Keys(usize),
    /// The discovery document: the key set it names is to be fetched next, at once.
    Discovered,
}

/// A key-set request for the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The cluster, or `host:port` where the host has no clusters.
    pub upstream: String,
    /// The request's headers, pseudo-headers first.
    pub headers: Vec<(String, String)>,
    /// How long to wait, milliseconds.
    pub timeout_ms: u32,
}

/// The verification state of one VM.
#[derive(Debug)]
pub struct State {
    /// Remote key sets, indexed like the policy's providers (`None`: local keys).
    remotes: Vec<Option<Remote>>,
    tokens: TokenCache,
    /// DPoP proofs seen, until they expire anyway: replay key → until (Unix seconds).
    proofs: std::collections::HashMap<[u8; 32], i64>,
    /// The shared tier's namespace (a digest of the configuration) and slot count, where the
    /// host has shared data and the cache is on.
    shared_tokens: Option<(String, usize)>,
    budget: Option<FailureBudget>,
}

impl State {
    /// The state for a policy's `providers`: key sets of remote providers (kept from
    /// `previous` where the provider's key-set URL did not change, so a reconfiguration does
    /// not drop good keys), an empty token cache of `cache_size` entries (a new configuration
    /// may change claims rules) and, under `budget`'s rules, an empty failure budget.
    /// `shared_namespace` names this configuration's shared token slots where the host has
    /// shared data ([`super::cache::shared_namespace`]). See
    /// [`crate::policy::Policy::verification_state`].
    pub fn new(
        providers: &[Provider],
        cache_size: usize,
        budget: Option<&BudgetRules>,
        previous: Option<State>,
        shared_namespace: Option<String>,
    ) -> State {
        let mut previous: Vec<Remote> =
            previous.map(|p| p.remotes.into_iter().flatten().collect()).unwrap_or_default();
        let remotes = providers
            .iter()
            .map(|p| match &p.keys {
                ProviderKeys::Remote(spec) => {
                    let kept = previous.iter().position(|e| e.name == p.name && e.spec == **spec);
                    let cache = kept.map(|i| previous.swap_remove(i).cache).unwrap_or_default();
                    Some(Remote { name: p.name.clone(), spec: (**spec).clone(), cache })
                }
                ProviderKeys::Local(_) | ProviderKeys::Introspect(_) => None,
            })
            .collect();
        State {
            remotes,
            tokens: TokenCache::new(cache_size),
            proofs: std::collections::HashMap::new(),
            shared_tokens: shared_namespace.filter(|_| cache_size > 0).map(|n| (n, cache_size)),
            budget: budget.map(FailureBudget::new),
        }
    }

    /// Whether any provider uses remote keys.
    pub fn has_remote(&self) -> bool {
        self.remotes.iter().any(Option::is_some)
    }

    /// The name of provider `index`, if its keys are remote.
    pub fn provider_name(&self, index: usize) -> Option<&str> {
        Some(self.remotes.get(index)?.as_ref()?.name.as_str())
    }

    /// Provider `index`'s current remote key set, if one is loaded.
    pub fn keys(&self, index: usize) -> Option<&Rc<KeySet>> {
        self.remotes.get(index)?.as_ref()?.cache.keys()
    }

    /// How many tokens this VM's cache holds.
    pub fn cached_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// How many clients the budget is tracking.
    pub fn budgeted_clients(&self) -> usize {
        self.budget.as_ref().map_or(0, FailureBudget::len)
    }

    /// Providers whose background refresh is due.
    pub fn due(&self, now: i64) -> Vec<usize> {
        self.remotes
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().filter(|e| e.cache.due(&e.spec, now)).map(|_| i))
            .collect()
    }

    /// The health of every remote key set at `now`, for its gauges.
    pub fn health(&self, now: i64) -> Vec<KeySetHealth<'_>> {
        self.remotes
            .iter()
            .flatten()
            .map(|r| {
                let keys = r.cache.keys().map_or(0, |k| k.keys.len());
                let age = (keys > 0).then(|| now.saturating_sub(r.cache.fetched_at()).max(0));
                KeySetHealth {
                    provider: &r.name,
                    keys,
                    age_seconds: age.unwrap_or(0),
                    stale: age.is_none_or(|a| a > r.spec.cache_duration),
                }
            })
            .collect()
    }

    /// Starts a fetch of provider `index`'s key set: what to send (to its cluster where the
    /// host has `clusters`). Until [`Self::complete_fetch`] or [`Self::fetch_not_sent`], no other
    /// fetch of it starts.
    pub fn start_fetch(&mut self, index: usize, now: i64, clusters: bool) -> Option<FetchRequest> {
        let e = self.remotes.get_mut(index)?.as_mut()?;
        e.cache.start(now);
        Some(FetchRequest {
            upstream: e.spec.upstream(clusters).to_string(),
            headers: vec![
                (":method".to_string(), "GET".to_string()),
                (":path".to_string(), e.spec.path.clone()),
                (":authority".to_string(), e.spec.authority.clone()),
                (":scheme".to_string(), e.spec.scheme.clone()),
                (
                    "accept".to_string(),
                    if e.spec.discover.is_some() {
                        "application/json"
                    } else {
                        "application/jwk-set+json, application/json"
                    }
                    .to_string(),
                ),
            ],
            timeout_ms: u32::try_from(e.spec.timeout_ms).unwrap_or(u32::MAX),
        })
    }

    /// The host could not send a fetch [`Self::start_fetch`] asked for.
    pub fn fetch_not_sent(&mut self, index: usize) {
        if let Some(Some(e)) = self.remotes.get_mut(index) {
            e.cache.abort();
        }
    }

    /// Takes in the answer to a key-set fetch: its status (`None`: no response) and body (at
    /// most [`jwks::MAX_JWKS_BYTES`] + 1 bytes). A good set replaces the keys, empties the token
    /// cache (a removed key cannot live on in it) and is published to `shared` for the other
    /// VMs; anything else keeps the last good keys. Returns how many keys were loaded.
    pub fn complete_fetch(
        &mut self,
        index: usize,
        status: Option<u16>,
        body: Option<&[u8]>,
        now: i64,
        shared: &dyn SharedData,
    ) -> Result<Fetched, FetchError> {
        let Some(Some(e)) = self.remotes.get_mut(index) else { return Err(FetchError::NoResponse) };
        if e.spec.discover.is_some() {
            let found = match (status, body) {
                (Some(200), Some(b)) => e.spec.discovered(b),
                _ => None,
            };
            return match (found, status) {
                (Some(spec), _) => {
                    e.spec = spec;
                    e.cache.discovered();
                    Ok(Fetched::Discovered)
                }
                (None, failed) => {
                    e.cache.abort();
                    Err(match failed {
                        None => FetchError::NoResponse,
                        Some(200) => FetchError::Discovery,
                        Some(s) => FetchError::Status(s),
                    })
                }
            };
        }
        let n = e.cache.complete(&e.spec, status, body, now)?;
        if let Some(b) = body {
            shared.set(&e.shared_key(), &jwks::encode_shared(now, b));
        }
        self.tokens.clear();
        Ok(Fetched::Keys(n))
    }

    /// The URL provider `index`'s keys come from now (its discovery document's, until read).
    pub fn key_source(&self, index: usize) -> Option<&str> {
        Some(self.remotes.get(index)?.as_ref()?.spec.uri.as_str())
    }

    /// Adopts newer key sets other VMs published to `shared`; returns the providers whose keys
    /// changed (the token cache is then emptied).
    pub fn adopt_shared(&mut self, shared: &dyn SharedData) -> Vec<usize> {
        let mut changed = Vec::new();
        for (i, e) in self.remotes.iter_mut().enumerate() {
            let Some(e) = e else { continue };
            if let Some(bytes) = shared.get(&e.shared_key()) {
                if let Some((at, body)) = jwks::decode_shared(&bytes) {
                    if e.cache.adopt(&e.spec, body, at) {
                        changed.push(i);
                    }
                }
            }
        }
        if !changed.is_empty() {
            self.tokens.clear();
        }
        changed
    }
}

/// How a remote key set is doing, for its gauges ([`crate::policy::telemetry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetHealth<'s> {
    /// The provider.
    pub provider: &'s str,
    /// Usable keys (0 before the first good fetch).
    pub keys: usize,
    /// Seconds since the last good fetch (0 before it).
    pub age_seconds: i64,
    /// Missing, or older than `cache_duration_seconds`: every refresh since has failed.
    pub stale: bool,
}

/// Names the request's client (its budget key, see [`super::budget::client_key`]) and its
/// connection, for the failed-verification budget.
pub type ClientFn<'a> = dyn Fn() -> (Option<String>, Option<u64>) + 'a;

/// What reads the SHA-256 of the connection's TLS client certificate from the host.
pub type CertificateFn<'a> = dyn Fn() -> Option<[u8; 32]> + 'a;

/// What asks the host whether another worker VM took a DPoP proof (its replay key, until
/// when it lives), taking it either way.
pub type ProofsFn<'a> = dyn Fn(&[u8; 32], i64) -> bool + 'a;

/// A token by provider and place in the request (address and length of its text).
type TokenPlace = (usize, *const u8, usize);

/// One request's view of the VM's verification state at one instant.
pub struct View<'s> {
    state: &'s RefCell<State>,
    now: i64,
    /// Names this request's client; looked up only when a token needs checking (a cached
    /// token costs no host call), and at most once.
    client_fn: Option<&'s ClientFn<'s>>,
    client: OnceCell<(Option<String>, Option<u64>)>,
    certificate_fn: Option<&'s CertificateFn<'s>>,
    certificate: OnceCell<Option<[u8; 32]>>,
    proofs_fn: Option<&'s ProofsFn<'s>>,
    shared: &'s dyn SharedData,
    /// The slot the last shared-tier lookup computed, by (provider, token's place): the write
    /// after that token's check reuses it instead of hashing the token again.
    last_slot: RefCell<Option<(TokenPlace, SharedSlot)>>,
    hits: Cell<u32>,
    shared_hits: Cell<u32>,
    limiter: Option<&'s crate::policy::ratelimit::Limiter<'s>>,
}

impl<'s> View<'s> {
    /// The view of `state` at `now`, with `shared` as the tier the worker VMs share.
    pub fn new(state: &'s RefCell<State>, now: i64, shared: &'s dyn SharedData) -> View<'s> {
        View {
            state,
            now,
            client_fn: None,
            client: OnceCell::new(),
            certificate_fn: None,
            certificate: OnceCell::new(),
            proofs_fn: None,
            shared,
            last_slot: RefCell::new(None),
            hits: Cell::new(0),
            shared_hits: Cell::new(0),
            limiter: None,
        }
    }

    /// Judges the request's rate limits against `limiter`.
    pub fn with_limiter(self, limiter: &'s crate::policy::ratelimit::Limiter<'s>) -> View<'s> {
        View { limiter: Some(limiter), ..self }
    }

    /// Names the request's client for the failed-verification budget.
    pub fn with_client(self, client: &'s ClientFn<'s>) -> View<'s> {
        View { client_fn: Some(client), ..self }
    }

    /// Asks the workers' shared table of DPoP proofs, besides this VM's memory of them.
    pub fn with_proofs(self, proofs: &'s ProofsFn<'s>) -> View<'s> {
        View { proofs_fn: Some(proofs), ..self }
    }

    /// Reads the connection's client certificate digest, for certificate-bound tokens.
    pub fn with_certificate(self, certificate: &'s CertificateFn<'s>) -> View<'s> {
        View { certificate_fn: Some(certificate), ..self }
    }

    /// How many tokens this request took from this VM's cache.
    pub fn hits(&self) -> u32 {
        self.hits.get()
    }

    /// How many tokens this request took from the shared tier (verified by another VM).
    pub fn shared_hits(&self) -> u32 {
        self.shared_hits.get()
    }

    fn client(&self) -> (Option<&str>, Option<u64>) {
        let (key, connection) = self.client.get_or_init(|| self.client_fn.map_or((None, None), |f| f()));
        (key.as_deref(), *connection)
    }

    fn slot(&self, provider: usize, token: &str) -> Option<SharedSlot> {
        let at = (provider, token.as_ptr(), token.len());
        if let Some((_, slot)) = self.last_slot.borrow().as_ref().filter(|(k, _)| *k == at) {
            return Some(slot.clone());
        }
        let slot = {
            let state = self.state.try_borrow().ok()?;
            let (namespace, slots) = state.shared_tokens.as_ref()?;
            SharedSlot::new(namespace, *slots, provider, token)?
        };
        *self.last_slot.borrow_mut() = Some((at, slot.clone()));
        Some(slot)
    }

    /// Runs `f` on the state, unless it is already borrowed (never, in one request's check:
    /// the state is then simply not consulted, which costs a check, never a pass).
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.state.try_borrow_mut().ok().map(|mut s| f(&mut s))
    }
}

impl VerifyState for View<'_> {
    fn client_key(&self) -> Option<String> {
        self.client().0.map(str::to_string)
    }

    fn client_certificate(&self) -> Option<[u8; 32]> {
        *self.certificate.get_or_init(|| self.certificate_fn.and_then(|f| f()))
    }

    fn dpop_replayed(&self, key: [u8; 32], until: i64) -> bool {
        // Unconsultable state counts as a replay: a proof is never passed unchecked.
        let here = self.with(|s| s.proof_seen(key, until, self.now)).unwrap_or(true);
        // Every proof is taken in the shared table too, so another worker refuses it later.
        let elsewhere = self.proofs_fn.is_some_and(|f| f(&key, until));
        here || elsewhere
    }

    fn limiter(&self) -> Option<&crate::policy::ratelimit::Limiter<'_>> {
        self.limiter
    }

    fn lookup(&self, index: usize) -> Availability {
        self.with(|s| match s.remotes.get(index) {
            Some(Some(e)) => e.cache.availability(&e.spec, self.now),
            _ => Availability::Unavailable,
        })
        .unwrap_or(Availability::Unavailable)
    }

    fn cached(&self, provider: usize, token: &str) -> Option<Rc<Verified>> {
        let found = self.with(|s| s.tokens.get(provider, token, self.now))??;
        self.hits.set(self.hits.get().saturating_add(1));
        Some(found)
    }

    fn remember(&self, provider: usize, token: &str, verified: &Rc<Verified>, until: i64) {
        self.with(|s| s.tokens.put(provider, token, Rc::clone(verified), until, self.now));
    }

    fn shared(&self, provider: usize, token: &str, keys: u64) -> Option<Rc<Verified>> {
        let slot = self.slot(provider, token)?;
        let value = self.shared.get(&slot.key)?;
        let (verified, until) = slot.decode(&value, keys, self.now)?;
        let verified = Rc::new(verified);
        // This VM keeps it too: the next request with it costs no host call.
        self.remember(provider, token, &verified, until);
        self.shared_hits.set(self.shared_hits.get().saturating_add(1));
        Some(verified)
    }

    fn share(&self, provider: usize, token: &str, keys: u64, verified: &Verified, until: i64) {
        if let Some(slot) = self.slot(provider, token) {
            self.shared.set(&slot.key, &slot.encode(keys, until, verified));
        }
    }

    fn may_verify(&self) -> Result<(), Throttle> {
        self.with(|s| match s.budget.as_mut() {
            Some(b) => {
                let (client, connection) = self.client();
                b.admit(client, connection, self.now)
            }
            None => Ok(()),
        })
        .unwrap_or(Ok(()))
    }

    fn verification_failed(&self) {
        // The client is named only where a budget counts it (naming it may cost host calls).
        self.with(|s| {
            if let Some(b) = s.budget.as_mut() {
                if let (Some(client), connection) = self.client() {
                    b.record(client, connection, self.now);
                }
            }
        });
    }

    fn known_bad(&self, provider: usize, token: &str) -> bool {
        self.with(|s| s.tokens.is_bad(provider, token, self.now)).unwrap_or(false)
    }

    fn remember_bad(&self, provider: usize, token: &str) {
        self.with(|s| s.tokens.put_bad(provider, token, self.now));
    }
}
