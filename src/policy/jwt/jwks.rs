//! Remote key sets: when to fetch, what to keep, and what a request may expect.
//!
//! One [`KeyCache`] per remote provider, per VM. It holds the last good key set and decides,
//! from the clock alone:
//!
//! - **when to fetch**: at start, when the keys are older than `cache_duration`, and on an
//!   unknown `kid` (key rotation), but never more often than `min_refetch_interval`, so junk
//!   tokens cannot turn into a flood of fetches;
//! - **what to keep**: a failed, timed-out, non-200, oversized (over 64 KiB) or unparseable
//!   response never replaces a good key set. Stale keys keep serving until `max_stale`, so a
//!   revoked key cannot live forever when the issuer stays down;
//! - **what a request gets**: the keys, or "loading" (the host may fetch and retry), or
//!   "unavailable" (503: never a pass without keys).

use std::rc::Rc;

use super::alg::Alg;
use super::keys::KeySet;
use crate::policy::json;

/// Largest key-set response accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// How a remote key set is fetched and cached (compiled from `remote_jwks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSpec {
    /// The key-set URL, for logs.
    pub uri: String,
    /// The Envoy cluster that serves the URL, if configured.
    pub cluster: Option<String>,
    /// The URL's `host:port` (default port filled in): the target on hosts without clusters
    /// (Kong, APISIX), and on Envoy when no cluster is named.
    pub host_port: String,
    /// `:authority` of the request.
    pub authority: String,
    /// `:path` of the request.
    pub path: String,
    /// `:scheme` of the request.
    pub scheme: String,
    /// Request timeout, in milliseconds.
    pub timeout_ms: u64,
    /// How long fetched keys are fresh, in seconds.
    pub cache_duration: i64,
    /// Shortest time between two fetches, in seconds.
    pub min_refetch_interval: i64,
    /// How long stale keys keep serving while fetches fail, in seconds.
    pub max_stale: i64,
    /// The provider's algorithms: a fetched key none of them can use is not prepared.
    pub algorithms: Vec<Alg>,
    /// Where this is a discovery document's URL: the issuer it must name exactly. Its
    /// `jwks_uri` then replaces this spec's URL ([`RemoteSpec::discovered`]).
    pub discover: Option<String>,
}

/// Why a fetch result was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    /// No response (connection failure or timeout).
    NoResponse,
    /// A status other than 200.
    Status(u16),
    /// A body over [`MAX_JWKS_BYTES`].
    TooLarge,
    /// Not a usable JWKS.
    Invalid,
    /// A discovery document that is not JSON, names another issuer, or no usable `jwks_uri`.
    Discovery,
}

impl FetchError {
    /// A short stable name for logs.
    pub fn name(self) -> &'static str {
        match self {
            FetchError::NoResponse => "no_response",
            FetchError::Status(_) => "status",
            FetchError::TooLarge => "too_large",
            FetchError::Invalid => "invalid",
            FetchError::Discovery => "discovery",
        }
    }
}

/// What a request can expect from a remote provider's keys right now.
#[derive(Debug, Clone)]
pub enum Availability {
    /// Keys are loaded. `refetch` says whether an unknown `kid` may trigger a fetch now.
    Ready {
        /// The key set.
        keys: Rc<KeySet>,
        /// Whether a fetch may start now.
        refetch: bool,
    },
    /// No keys yet, but a fetch may start now (the request can wait for it).
    Loading,
    /// No usable keys and no fetch may start: refuse with 503.
    Unavailable,
}

/// The cache state of one remote key set.
#[derive(Debug, Clone, Default)]
pub struct KeyCache {
    keys: Option<Rc<KeySet>>,
    /// When the current keys were fetched (Unix seconds).
    fetched_at: i64,
    /// When the last fetch started.
    last_attempt: Option<i64>,
    in_flight: bool,
    /// Consecutive failures, for logs and backoff.
    pub failures: u32,
}

impl KeyCache {
    /// The current keys, if any.
    pub fn keys(&self) -> Option<&Rc<KeySet>> {
        self.keys.as_ref()
    }

    /// When the current keys were fetched.
    pub fn fetched_at(&self) -> i64 {
        self.fetched_at
    }

    fn may_start(&self, spec: &RemoteSpec, now: i64) -> bool {
        !self.in_flight
            && self.last_attempt.is_none_or(|t| now.saturating_sub(t) >= spec.min_refetch_interval)
    }

    /// What a request can expect now.
    pub fn availability(&self, spec: &RemoteSpec, now: i64) -> Availability {
        match &self.keys {
            Some(keys)
                if now.saturating_sub(self.fetched_at)
                    <= spec.cache_duration.saturating_add(spec.max_stale) =>
            {
                Availability::Ready { keys: Rc::clone(keys), refetch: self.may_start(spec, now) }
            }
            _ if self.may_start(spec, now) => Availability::Loading,
            _ => Availability::Unavailable,
        }
    }

    /// Whether a background fetch is due: no keys, or keys past `cache_duration`.
    pub fn due(&self, spec: &RemoteSpec, now: i64) -> bool {
        let stale = self.keys.is_none() || now.saturating_sub(self.fetched_at) >= spec.cache_duration;
        stale && self.may_start(spec, now)
    }

    /// Records that a fetch started.
    pub fn start(&mut self, now: i64) {
        self.in_flight = true;
        self.last_attempt = Some(now);
    }

    /// Records that a discovery document arrived: the key set may be fetched at once.
    pub fn discovered(&mut self) {
        self.in_flight = false;
        self.last_attempt = None;
    }

    /// Records that a fetch could not even be sent.
    pub fn abort(&mut self) {
        self.in_flight = false;
        self.failures = self.failures.saturating_add(1);
    }

    /// Records a fetch result. Only a 200 with a usable JWKS of at most 64 KiB replaces the
    /// keys; anything else keeps the last good set. Returns the number of keys loaded.
    pub fn complete(
        &mut self,
        spec: &RemoteSpec,
        status: Option<u16>,
        body: Option<&[u8]>,
        now: i64,
    ) -> Result<usize, FetchError> {
        self.in_flight = false;
        let result = match (status, body) {
            (None, _) => Err(FetchError::NoResponse),
            (Some(200), Some(b)) if b.len() > MAX_JWKS_BYTES => Err(FetchError::TooLarge),
            (Some(200), Some(b)) => json::parse(b)
                .ok()
                .and_then(|doc| KeySet::from_jwks_for(&doc, &spec.algorithms).ok())
                .ok_or(FetchError::Invalid),
            (Some(200), None) => Err(FetchError::Invalid),
            (Some(s), _) => Err(FetchError::Status(s)),
        };
        match result {
            Ok(set) => {
                let n = set.keys.len();
                self.keys = Some(Rc::new(set));
                self.fetched_at = now;
                self.failures = 0;
                Ok(n)
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                Err(e)
            }
        }
    }

    /// Installs keys another VM fetched (shared data), if they are newer than ours.
    pub fn adopt(&mut self, spec: &RemoteSpec, body: &[u8], fetched_at: i64) -> bool {
        if fetched_at <= self.fetched_at && self.keys.is_some() {
            return false;
        }
        let Ok(doc) = json::parse(body) else { return false };
        match KeySet::from_jwks_for(&doc, &spec.algorithms) {
            Ok(set) => {
                self.keys = Some(Rc::new(set));
                self.fetched_at = fetched_at;
                true
            }
            Err(_) => false,
        }
    }
}

/// Encodes a fetched key set for shared data: 8 bytes of `fetched_at`, then the JWKS body.
pub fn encode_shared(fetched_at: i64, body: &[u8]) -> Vec<u8> {
    let mut out = fetched_at.to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Decodes [`encode_shared`]'s format.
pub fn decode_shared(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let (head, body) = bytes.split_first_chunk::<8>()?;
    Some((i64::from_le_bytes(*head), body))
}

/// An absolute `http`/`https` URL as a fetch needs it: scheme, authority, path (`/` when
/// empty) and `host:port` with the default port filled in. `None` for anything else, or for
/// user info, spaces or a fragment.
pub fn split_url(uri: &str) -> Option<(&str, &str, &str, String)> {
    let (scheme, rest) = uri.split_once("://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if !matches!(scheme, "http" | "https") || authority.is_empty() || authority.contains('@') {
        return None;
    }
    if !printable(authority) || !printable(path) {
        return None;
    }
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    Some((scheme, authority, if path.is_empty() { "/" } else { path }, host_port))
}

impl RemoteSpec {
    /// The key-set spec a discovery document names: its `jwks_uri` (an absolute http(s) URL),
    /// fetched like this one (cluster, timeout, cache). `None` if the document is not a JSON
    /// object of at most 64 KiB naming exactly the expected issuer and a usable `jwks_uri`.
    pub fn discovered(&self, body: &[u8]) -> Option<RemoteSpec> {
        let issuer = self.discover.as_ref()?;
        if body.len() > MAX_JWKS_BYTES {
            return None;
        }
        let doc = json::parse(body).ok()?;
        if doc.get("issuer").and_then(serde_json::Value::as_str) != Some(issuer.as_str()) {
            return None;
        }
        let uri = doc.get("jwks_uri").and_then(serde_json::Value::as_str)?;
        let (scheme, authority, path, host_port) = split_url(uri)?;
        Some(RemoteSpec {
            uri: uri.to_string(),
            host_port,
            authority: authority.to_string(),
            path: path.to_string(),
            scheme: scheme.to_string(),
            discover: None,
            ..self.clone()
        })
    }

    /// Where the host sends the request: the cluster where the host has clusters and one is
    /// named, else `host:port`.
    pub fn upstream(&self, clusters: bool) -> &str {
        match (&self.cluster, clusters) {
            (Some(c), true) => c,
            _ => &self.host_port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &[u8] = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"}]}"#;

    fn spec() -> RemoteSpec {
        RemoteSpec {
            uri: "http://idp/jwks".into(),
            cluster: Some("idp".into()),
            host_port: "idp:80".into(),
            authority: "idp".into(),
            path: "/jwks".into(),
            scheme: "http".into(),
            timeout_ms: 1000,
            cache_duration: 300,
            min_refetch_interval: 30,
            max_stale: 3600,
            algorithms: Alg::ALL.to_vec(),
            discover: None,
        }
    }

    #[test]
    fn a_discovery_document_supplies_the_key_set_only_for_its_own_issuer() {
        let doc = RemoteSpec { discover: Some("https://idp.example".into()), ..spec() };
        let found = doc
            .discovered(br#"{"issuer":"https://idp.example","jwks_uri":"https://keys.example/oauth/jwks"}"#)
            .expect("a usable document");
        assert_eq!(
            (found.uri.as_str(), found.host_port.as_str(), found.path.as_str()),
            ("https://keys.example/oauth/jwks", "keys.example:443", "/oauth/jwks")
        );
        assert_eq!((found.cluster.as_deref(), found.discover.as_deref()), (Some("idp"), None));
        for bad in [
            &br#"{"issuer":"https://idp.example/","jwks_uri":"https://idp.example/jwks"}"#[..],
            br#"{"issuer":"https://evil.example","jwks_uri":"https://idp.example/jwks"}"#,
            br#"{"issuer":"https://idp.example"}"#,
            br#"{"issuer":"https://idp.example","jwks_uri":"file:///etc/keys"}"#,
            br#"{"issuer":"https://idp.example","jwks_uri":"https://u@idp.example/jwks"}"#,
            br#"{"issuer":"https://idp.example","jwks_uri":7}"#,
            b"not json",
        ] {
            assert!(doc.discovered(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        // A spec that is not a discovery document's never turns into another.
        assert!(spec().discovered(br#"{"issuer":"x","jwks_uri":"https://x/jwks"}"#).is_none());
    }

    #[test]
    fn first_fetch_then_cache_then_refresh() {
        let s = spec();
        let mut c = KeyCache::default();
        assert!(matches!(c.availability(&s, 0), Availability::Loading));
        assert!(c.due(&s, 0));
        c.start(0);
        assert!(!c.due(&s, 1), "one fetch at a time");
        assert!(matches!(c.availability(&s, 1), Availability::Unavailable));
        assert_eq!(c.complete(&s, Some(200), Some(JWKS), 2), Ok(1));
        assert!(matches!(c.availability(&s, 3), Availability::Ready { refetch: false, .. }));
        assert!(matches!(c.availability(&s, 40), Availability::Ready { refetch: true, .. }));
        assert!(!c.due(&s, 200));
        assert!(c.due(&s, 302));
    }

    #[test]
    fn failures_keep_the_last_good_keys_until_max_stale() {
        let s = spec();
        let mut c = KeyCache::default();
        c.start(0);
        c.complete(&s, Some(200), Some(JWKS), 0).unwrap();
        for (status, body, err) in [
            (None, None, FetchError::NoResponse),
            (Some(500), Some(&b"oops"[..]), FetchError::Status(500)),
            (Some(200), Some(&b"<html>"[..]), FetchError::Invalid),
            (Some(200), Some(&br#"{"keys":[]}"#[..]), FetchError::Invalid),
            (Some(200), Some(&br#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#[..]), FetchError::Invalid),
            (Some(200), None, FetchError::Invalid),
        ] {
            c.start(400);
            assert_eq!(c.complete(&s, status, body, 400), Err(err));
            assert!(matches!(c.availability(&s, 400), Availability::Ready { .. }), "{err:?}");
        }
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert_eq!(c.complete(&s, Some(200), Some(&big), 400), Err(FetchError::TooLarge));
        assert_eq!(c.failures, 7);
        // Past cache_duration + max_stale the stale keys stop serving.
        assert!(matches!(c.availability(&s, 300 + 3600 + 1), Availability::Loading));
        c.start(300 + 3600 + 1);
        assert!(matches!(c.availability(&s, 300 + 3600 + 2), Availability::Unavailable));
    }

    #[test]
    fn fetched_keys_are_prepared_for_the_providers_algorithms_only() {
        // The test set's one key is Ed25519: nothing for an RS256 provider, so the fetch is
        // unusable (and the last good keys stay); an EdDSA provider takes it.
        let rs256 = RemoteSpec { algorithms: vec![Alg::RS256], ..spec() };
        let mut c = KeyCache::default();
        assert_eq!(c.complete(&rs256, Some(200), Some(JWKS), 0), Err(FetchError::Invalid));
        assert!(!c.adopt(&rs256, JWKS, 10));
        let eddsa = RemoteSpec { algorithms: vec![Alg::EdDSA], ..spec() };
        assert_eq!(c.complete(&eddsa, Some(200), Some(JWKS), 20), Ok(1));
    }

    #[test]
    fn refetches_are_rate_limited() {
        let s = spec();
        let mut c = KeyCache::default();
        c.start(100);
        c.complete(&s, None, None, 100).unwrap_err();
        assert!(!c.due(&s, 120), "retry only after min_refetch_interval");
        assert!(matches!(c.availability(&s, 120), Availability::Unavailable));
        assert!(c.due(&s, 130));
        c.abort();
        assert_eq!(c.failures, 2);
    }

    #[test]
    fn shared_copies_are_adopted_only_when_newer() {
        let s = spec();
        let mut c = KeyCache::default();
        let shared = encode_shared(50, JWKS);
        let (at, body) = decode_shared(&shared).unwrap();
        assert!(c.adopt(&s, body, at));
        assert_eq!(c.fetched_at(), 50);
        assert!(!c.adopt(&s, body, 40));
        assert!(!c.adopt(&s, b"junk", 60));
        assert!(decode_shared(b"short").is_none());
    }
}
