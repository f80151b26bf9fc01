//! Rate limits: named limits per route, keyed by who the caller is, counted in one table the
//! worker VMs share (OWASP API4, unrestricted resource consumption).
//!
//! A policy is `requests` per `window_seconds` with a `burst` ([`bucket`]), applied to the
//! routes that name it and keyed by what the operator chooses ([`KeySource`]): a verified
//! token's claim (the subject, a client or tenant id), the client address (as the
//! failed-verification budget reads it, so a trusted proxy's header is honoured the same
//! way), a header a proxy of the operator's sets (only when the operator says it is trusted),
//! or the route itself (one limit for everyone). A claim can also pick the limit (`plans`:
//! `plan: gold` gets more than `plan: free`). Keys never come from what the client asserts
//! unverified: a claim is read from a verified token only, and a request without it (no
//! token, or a token without the claim) is counted by its client address instead, so leaving
//! the token out does not escape the limit.
//!
//! Limits are checked after authorization: a request refused for its token costs no one's
//! quota (forged tokens have their own bound, `jwt::budget`). Every policy of a route is
//! checked in order; the first refusal answers 429 `rate-limited` with `Retry-After`.
//! Answers carry the `RateLimit-Policy` and `RateLimit` fields of
//! draft-ietf-httpapi-ratelimit-headers-10 ([`fields`]) where the policy asks for them.
//!
//! Counting is [`table`]'s: exact across the worker VMs of one process where the host has
//! shared data, per VM where it has none (`load` says so). A `global` policy is counted by a
//! rate-limit service instead, across every gateway instance: [`RateLimits::check`] asks for
//! the call ([`Call`], the RLS v3 request of [`rls`]) once the local policies passed, and
//! [`RateLimits::conclude`] reads its answer (or its absence, under the failure mode).

pub mod bucket;
pub mod fields;
pub mod rls;
pub mod table;

use std::cell::RefCell;

use serde_json::{Map, Value};

use super::config::{
    ConfigError, FailureModeConfig, RateKeyConfig, RateLimitPolicyConfig, RateLimitServiceConfig,
    RateLimitsConfig,
};
use super::denial::{Denial, Fields, Reason};
use super::http::RequestHead;
use bucket::{Rate, MAX_REQUESTS, MAX_WINDOW_SECONDS};
use table::{Store, StoreError, Table};

/// Default number of slots in the table.
pub const DEFAULT_SLOTS: u32 = 8192;
/// Fewest and most slots.
pub const SLOTS_RANGE: (u32, u32) = (16, 1 << 20);

/// What a bucket is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A claim of the verified token (a path into its claims); its client address without one.
    Claim(Vec<String>),
    /// The client address (IPv4, or the IPv6 /64), as the verification budget reads it.
    ClientAddress,
    /// A request header the operator's own proxy sets (lower-case name); the client address
    /// where the request has none.
    Header(String),
    /// The route: one bucket for every caller.
    Route,
}

/// What applies when the counters cannot be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Let the request through (counted as an error).
    Open,
    /// Refuse it with 503 and `Retry-After: 1`.
    Closed,
}

/// Limits picked by a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plans {
    /// The claim's path.
    pub claim: Vec<String>,
    /// Claim value → limit.
    pub rates: Vec<(String, Rate)>,
}

/// One compiled policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Its configured name (metrics, the header fields).
    pub name: String,
    /// The limit when no plan applies.
    pub rate: Rate,
    /// What its buckets are keyed by.
    pub key: KeySource,
    /// Limits by a claim's value.
    pub plans: Option<Plans>,
    /// Whether answers carry the `RateLimit-Policy` and `RateLimit` fields.
    pub headers: bool,
    /// What applies when counting fails.
    pub failure: FailureMode,
    /// Counted by the rate-limit service (`rate` and `plans` are then unused).
    pub global: bool,
}

/// The compiled `rate_limits.service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// What `proxy_grpc_call` takes as the upstream (a serialized `GrpcService` naming the
    /// cluster, see [`rls::grpc_service`]).
    pub upstream: String,
    /// The cluster's name.
    pub cluster: String,
    /// The RLS domain.
    pub domain: String,
    /// The wait for an answer, in milliseconds.
    pub timeout_ms: u32,
}

/// A call to the rate-limit service that a request waits for: the global policies it asks
/// about, the encoded request, and what the local policies already said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The global policies, in the order of the request's descriptors.
    pub policies: Vec<usize>,
    /// The `RateLimitRequest` bytes.
    pub message: Vec<u8>,
    local: Vec<(usize, Rate, Option<bucket::Take>)>,
}

/// The compiled `rate_limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Policies in name order (indexes are what routes hold).
    pub policies: Vec<LimitPolicy>,
    /// Policies for routes that name none, and requests that match no route.
    pub default: Vec<usize>,
    /// Slots in the table.
    pub slots: u32,
    /// The service for global policies.
    pub service: Option<Service>,
}

/// What happened to one policy's count, for its counters (`api_guard_rate_limit_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Within the limit.
    Allowed,
    /// Over it: refused.
    Limited,
    /// The counters could not be used; the failure mode applied.
    Error,
    /// Counted in a bucket shared with another key (the table was full at its slots).
    Shared,
}

impl Event {
    /// Every event, for tests and metric registration.
    pub const ALL: [Event; 4] = [Event::Allowed, Event::Limited, Event::Error, Event::Shared];

    /// The `decision` label value.
    pub fn name(self) -> &'static str {
        match self {
            Event::Allowed => "allowed",
            Event::Limited => "limited",
            Event::Error => "error",
            Event::Shared => "shared",
        }
    }
}

/// The counters a request is judged against: the table, the store it lives in, and the time.
/// The host makes one per request; the events it gathers are the host's to count.
pub struct Limiter<'a> {
    table: &'a Table,
    store: &'a dyn Store,
    now_us: u64,
    /// Reads the time (Unix microseconds) when a bucket is judged; `now_us` where absent.
    clock: Option<&'a dyn Fn() -> u64>,
    events: RefCell<Vec<(usize, Event)>>,
}

impl<'a> Limiter<'a> {
    /// Counters in `store` through `table`, at `now_us` (Unix microseconds).
    pub fn new(table: &'a Table, store: &'a dyn Store, now_us: u64) -> Limiter<'a> {
        Limiter { table, store, now_us, clock: None, events: RefCell::new(Vec::new()) }
    }

    /// Counters judged at the time `clock` reads as each bucket is read (the host's wall
    /// clock, where other worker VMs update the same buckets).
    pub fn with_clock(table: &'a Table, store: &'a dyn Store, clock: &'a dyn Fn() -> u64) -> Limiter<'a> {
        // The time is read per bucket, as each is judged (`now_us` stands only without a clock).
        Limiter { table, store, now_us: 0, clock: Some(clock), events: RefCell::new(Vec::new()) }
    }

    /// What happened to each policy checked, in order: (policy index, event).
    pub fn events(&self) -> Vec<(usize, Event)> {
        self.events.borrow().clone()
    }

    fn note(&self, policy: usize, event: Event) {
        self.events.borrow_mut().push((policy, event));
    }
}

/// Who is asking, as the limits see it.
pub struct Caller<'a> {
    /// Claims of the request's verified token, if any.
    pub claims: Option<&'a Map<String, Value>>,
    /// The client address key, asked only where a policy needs it.
    pub client: &'a dyn Fn() -> Option<String>,
    /// The request head.
    pub head: &'a RequestHead<'a>,
    /// The matched route's index (`None`: no route matched).
    pub route: Option<usize>,
}

/// What the limits decided for an allowed request: the fields its response carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowance {
    /// Response headers (`RateLimit-Policy`, `RateLimit`), empty where no policy asks.
    pub headers: Vec<(String, String)>,
}

/// What [`RateLimits::check`] found for a request within its local limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Allowed: no global policy applies.
    Done(Allowance),
    /// Allowed so far; the service must be asked about the global policies.
    Ask(Box<Call>),
}

const MAX_TIMEOUT_MS: u32 = 10_000;
const DEFAULT_TIMEOUT_MS: u32 = 100;

// Load-time helpers out of line: TurboFan compiles several small functions faster than one
// large one (docs/architecture.md, "Code size is start-up time").
#[inline(never)]
fn compile_service(s: &RateLimitServiceConfig) -> Result<Service, ConfigError> {
    let at = "rate_limits.service";
    // The cluster name goes into a one-byte protobuf length (see `rls::grpc_service`).
    if s.cluster.is_empty() || s.cluster.len() > 120 || !s.cluster.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            format!("{at}.cluster"),
            "must be a cluster name of 1 to 120 characters",
        ));
    }
    if s.domain.is_empty() {
        return Err(ConfigError::new(format!("{at}.domain"), "must not be empty"));
    }
    let timeout_ms = s.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ConfigError::new(
            format!("{at}.timeout_ms"),
            format!("must be from 1 to {MAX_TIMEOUT_MS}"),
        ));
    }
    let upstream = String::from_utf8(rls::grpc_service(&s.cluster))
        .map_err(|_| ConfigError::new(format!("{at}.cluster"), "must be a cluster name"))?;
    Ok(Service { upstream, cluster: s.cluster.clone(), domain: s.domain.clone(), timeout_ms })
}

impl RateLimits {
    /// Compiles `rate_limits`.
    pub fn compile(cfg: &RateLimitsConfig) -> Result<RateLimits, ConfigError> {
        let mut policies = Vec::new();
        for (name, p) in &cfg.policies {
            policies.push(compile_policy(name, p)?);
        }
        let service = cfg.service.as_ref().map(compile_service).transpose()?;
        if let (Some(p), None) = (policies.iter().find(|p| p.global), &service) {
            return Err(ConfigError::new(
                format!("rate_limits.policies.{}.global", p.name),
                "a global policy is counted by a rate-limit service: set rate_limits.service",
            ));
        }
        let names: Vec<&str> = cfg.policies.keys().map(String::as_str).collect();
        let default = resolve(&names, &cfg.default, "rate_limits.default")?;
        let slots = cfg.table_size.unwrap_or(DEFAULT_SLOTS);
        if !(SLOTS_RANGE.0..=SLOTS_RANGE.1).contains(&slots) {
            return Err(ConfigError::new(
                "rate_limits.table_size",
                format!("must be from {} to {}", SLOTS_RANGE.0, SLOTS_RANGE.1),
            ));
        }
        Ok(RateLimits { policies, default, slots, service })
    }

    /// The policy indexes of a route's `rate_limits` list (names checked).
    pub fn resolve(&self, names: &[String], at: &str) -> Result<Vec<usize>, ConfigError> {
        let known: Vec<&str> = self.policies.iter().map(|p| p.name.as_str()).collect();
        resolve(&known, names, at)
    }

    /// Checks and counts `policies` (indexes) for `caller`. The first local policy over its
    /// limit refuses the request; where counting fails, the policy's failure mode applies.
    /// When every local policy allowed it and global ones apply, the answer is the call to make
    /// ([`Checked::Ask`]), which [`RateLimits::conclude`] finishes.
    pub fn check(
        &self,
        policies: &[usize],
        caller: &Caller<'_>,
        limiter: &Limiter<'_>,
    ) -> Result<Checked, Denial> {
        let mut seen: Vec<(usize, Rate, Option<bucket::Take>)> = Vec::new();
        let mut ask: Vec<(usize, String)> = Vec::new();
        let mut client: Option<Option<String>> = None;
        let mut client_key = || client.get_or_insert_with(|| (caller.client)()).clone();
        for &index in policies {
            let Some(policy) = self.policies.get(index) else { continue };
            let (plan, rate) = policy.pick(caller.claims);
            let who = policy.caller_key(caller, &mut client_key);
            if policy.global {
                ask.push((index, who));
                continue;
            }
            let key = format!("{index}/{plan}/{who}");
            let fixed = || limiter.now_us;
            let clock: &dyn Fn() -> u64 = limiter.clock.unwrap_or(&fixed);
            match limiter.table.take_at(limiter.store, rate, key.as_bytes(), clock) {
                Ok(o) => {
                    if o.shared {
                        limiter.note(index, Event::Shared);
                    }
                    seen.push((index, rate, Some(o.take)));
                    if !o.take.allowed {
                        limiter.note(index, Event::Limited);
                        return Err(self.limited(&seen, o.take.retry_after));
                    }
                    limiter.note(index, Event::Allowed);
                }
                Err(StoreError::Conflict | StoreError::Unavailable) => {
                    limiter.note(index, Event::Error);
                    if policy.failure == FailureMode::Closed {
                        return Err(unavailable());
                    }
                    seen.push((index, rate, None));
                }
            }
        }
        let Some(service) = self.service.as_ref().filter(|_| !ask.is_empty()) else {
            return Ok(Checked::Done(Allowance { headers: self.render(&seen) }));
        };
        let descriptors: Vec<Vec<(&str, &str)>> = ask
            .iter()
            .map(|(i, who)| {
                let name = self.policies.get(*i).map_or("", |p| p.name.as_str());
                vec![("policy", name), ("key", who.as_str())]
            })
            .collect();
        let message = rls::encode_request(&service.domain, &descriptors);
        Ok(Checked::Ask(Box::new(Call {
            policies: ask.into_iter().map(|(i, _)| i).collect(),
            message,
            local: seen,
        })))
    }

    /// Finishes a [`Call`] with the service's answer (`None`: no answer came, in time or at
    /// all). An answer that cannot be read, or is neither OK nor OVER_LIMIT, counts as no
    /// answer: each global policy's failure mode applies.
    pub fn conclude(
        &self,
        call: &Call,
        answer: Option<&[u8]>,
        limiter: &Limiter<'_>,
    ) -> Result<Allowance, Denial> {
        let mut seen = call.local.clone();
        let response =
            answer.and_then(|a| rls::decode_response(a).ok()).filter(|r| r.overall != rls::Code::Unknown);
        let Some(response) = response else {
            let mut closed = false;
            for &index in &call.policies {
                limiter.note(index, Event::Error);
                closed |= self.policies.get(index).is_some_and(|p| p.failure == FailureMode::Closed);
            }
            return if closed { Err(unavailable()) } else { Ok(Allowance { headers: self.render(&seen) }) };
        };
        let mut refusal = None;
        for (k, &index) in call.policies.iter().enumerate() {
            let status = response.statuses.get(k);
            // Without per-descriptor statuses, the overall code speaks for each.
            let code = status.and_then(|s| s.code).unwrap_or(response.overall);
            let over = code == rls::Code::OverLimit;
            limiter.note(index, if over { Event::Limited } else { Event::Allowed });
            let reset = status.and_then(|s| s.reset);
            if let Some((requests, window)) = status.and_then(|s| s.limit) {
                let take = bucket::Take {
                    allowed: !over,
                    tat: 0,
                    remaining: status.map_or(0, |s| s.remaining),
                    reset: reset.unwrap_or(window),
                    retry_after: 0,
                };
                seen.push((index, Rate { requests, window_seconds: window, burst: requests }, Some(take)));
            }
            if over && refusal.is_none() {
                refusal = Some(reset.unwrap_or(1).max(1));
            }
        }
        match refusal {
            Some(retry_after) => Err(self.limited(&seen, retry_after)),
            None => Ok(Allowance { headers: self.render(&seen) }),
        }
    }

    fn render(&self, seen: &[(usize, Rate, Option<bucket::Take>)]) -> Vec<(String, String)> {
        let named: Vec<(&LimitPolicy, Rate, Option<bucket::Take>)> =
            seen.iter().filter_map(|(i, r, t)| Some((self.policies.get(*i)?, *r, *t))).collect();
        fields::render(&named)
    }

    fn limited(&self, seen: &[(usize, Rate, Option<bucket::Take>)], retry_after: u32) -> Denial {
        let headers = self.render(seen);
        Denial {
            retry_after: Some(retry_after),
            headers: (!headers.is_empty()).then(|| Box::new(Fields(headers))),
            ..Denial::new(Reason::RateLimited)
        }
    }
}

fn unavailable() -> Denial {
    Denial {
        retry_after: Some(1),
        cause: Some("counters_unavailable"),
        ..Denial::new(Reason::RateLimitUnavailable)
    }
}

impl LimitPolicy {
    /// The plan (its index, `usize::MAX` for none) and the limit that applies to `claims`.
    fn pick(&self, claims: Option<&Map<String, Value>>) -> (usize, Rate) {
        let chosen = self.plans.as_ref().and_then(|plans| {
            let value = super::jwt::claim(claims?, &plans.claim)?;
            let text = scalar(value)?;
            plans.rates.iter().position(|(v, _)| *v == text).and_then(|i| Some((i, plans.rates.get(i)?.1)))
        });
        chosen.unwrap_or((usize::MAX, self.rate))
    }

    /// What the caller is counted by, each kind of key with its own prefix, so a subject can
    /// never name an address's bucket. (A local bucket's key adds the policy and plan.)
    fn caller_key(&self, caller: &Caller<'_>, client: &mut dyn FnMut() -> Option<String>) -> String {
        let who = match &self.key {
            KeySource::Claim(path) => caller
                .claims
                .and_then(|c| super::jwt::claim(c, path))
                .and_then(scalar)
                .map(|v| format!("c:{v}")),
            KeySource::Header(name) => caller
                .head
                .header(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(|v| format!("h:{}", v.trim())),
            KeySource::ClientAddress => None,
            KeySource::Route => Some(format!("r:{}", caller.route.map_or(usize::MAX, |r| r))),
        };
        // Without its key, a request counts by its address; without one, all such requests
        // share one bucket (nothing tells them apart, and none may go uncounted).
        who.unwrap_or_else(|| format!("a:{}", client().unwrap_or_default()))
    }
}

/// A claim value as a key: strings and whole numbers; anything else is no key.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn resolve(known: &[&str], names: &[String], at: &str) -> Result<Vec<usize>, ConfigError> {
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let index = known.iter().position(|k| k == name).ok_or_else(|| {
            ConfigError::new(
                format!("{at}[{i}]"),
                format!("no policy named '{name}' in rate_limits.policies"),
            )
        })?;
        if out.contains(&index) {
            return Err(ConfigError::new(format!("{at}[{i}]"), format!("'{name}' is listed twice")));
        }
        out.push(index);
    }
    Ok(out)
}

fn compile_rate(requests: u32, window: u32, burst: Option<u32>, at: &str) -> Result<Rate, ConfigError> {
    if !(1..=MAX_REQUESTS).contains(&requests) {
        return Err(ConfigError::new(format!("{at}.requests"), format!("must be from 1 to {MAX_REQUESTS}")));
    }
    if !(1..=MAX_WINDOW_SECONDS).contains(&window) {
        return Err(ConfigError::new(
            format!("{at}.window_seconds"),
            format!("must be from 1 to {MAX_WINDOW_SECONDS} (30 days)"),
        ));
    }
    let burst = burst.unwrap_or(requests);
    if !(1..=MAX_REQUESTS).contains(&burst) {
        return Err(ConfigError::new(format!("{at}.burst"), format!("must be from 1 to {MAX_REQUESTS}")));
    }
    Ok(Rate { requests, window_seconds: window, burst })
}

fn claim_path(claim: &str, at: &str) -> Result<Vec<String>, ConfigError> {
    if claim.is_empty() || claim.split('.').any(str::is_empty) {
        return Err(ConfigError::new(at, "must be a claim name, or a path such as `org.plan`"));
    }
    Ok(claim.split('.').map(str::to_string).collect())
}

#[inline(never)]
fn compile_policy(name: &str, p: &RateLimitPolicyConfig) -> Result<LimitPolicy, ConfigError> {
    let at = format!("rate_limits.policies.{name}");
    // The name is a metric label and a structured-field string: keep it to what both carry.
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::new(at, "a policy name must be 1 to 64 letters, digits, '-' or '_'"));
    }
    let global = p.global.unwrap_or(false);
    let rate = if global {
        // The service holds a global policy's limits: a number here would only mislead.
        let set = [
            ("requests", p.requests.is_some()),
            ("window_seconds", p.window_seconds.is_some()),
            ("burst", p.burst.is_some()),
            ("plans", p.plans.is_some()),
        ];
        if let Some((field, _)) = set.iter().find(|(_, is_set)| *is_set) {
            return Err(ConfigError::new(
                format!("{at}.{field}"),
                "a global policy's limits are the rate-limit service's: set them there",
            ));
        }
        Rate { requests: 1, window_seconds: 1, burst: 1 }
    } else {
        let Some(requests) = p.requests else {
            return Err(ConfigError::new(format!("{at}.requests"), "must be set (requests per window)"));
        };
        let Some(window) = p.window_seconds else {
            return Err(ConfigError::new(
                format!("{at}.window_seconds"),
                "must be set (the window, in seconds)",
            ));
        };
        compile_rate(requests, window, p.burst, &at)?
    };
    let key = match &p.key {
        RateKeyConfig::Claim { claim } => KeySource::Claim(claim_path(claim, &format!("{at}.key.claim"))?),
        RateKeyConfig::ClientAddress => KeySource::ClientAddress,
        RateKeyConfig::Header { name, trusted } => {
            if !trusted {
                return Err(ConfigError::new(
                    format!("{at}.key.trusted"),
                    "a header is whatever the client sends: set true only where a proxy of yours sets it and drops the client's copy",
                ));
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(ConfigError::new(
                    format!("{at}.key.name"),
                    "must be a header name ([A-Za-z0-9_-]+)",
                ));
            }
            KeySource::Header(name.to_ascii_lowercase())
        }
        RateKeyConfig::Route => KeySource::Route,
    };
    let plans = match &p.plans {
        None => None,
        Some(plans) => {
            let claim = claim_path(&plans.claim, &format!("{at}.plans.claim"))?;
            if plans.limits.is_empty() {
                return Err(ConfigError::new(format!("{at}.plans.limits"), "must name at least one plan"));
            }
            let mut rates = Vec::new();
            for (value, l) in &plans.limits {
                let window = l.window_seconds.unwrap_or(rate.window_seconds);
                rates.push((
                    value.clone(),
                    compile_rate(l.requests, window, l.burst, &format!("{at}.plans.limits.{value}"))?,
                ));
            }
            Some(Plans { claim, rates })
        }
    };
    let failure = match p.failure_mode {
        None | Some(FailureModeConfig::FailOpen) => FailureMode::Open,
        Some(FailureModeConfig::FailClosed) => FailureMode::Closed,
    };
    Ok(LimitPolicy {
        name: name.to_string(),
        rate,
        key,
        plans,
        headers: p.headers.unwrap_or(true),
        failure,
        global,
    })
}

/// The route → policies map of a configuration's routes (each route's own list, else the
/// default), for [`super::Policy`].
pub fn route_lists(
    limits: &RateLimits,
    routes: &[Option<Vec<String>>],
) -> Result<Vec<Vec<usize>>, ConfigError> {
    let mut lists = Vec::new();
    for (i, own) in routes.iter().enumerate() {
        lists.push(match own {
            Some(names) => limits.resolve(names, &format!("routes[{i}].rate_limits"))?,
            None => limits.default.clone(),
        });
    }
    Ok(lists)
}

#[cfg(test)]
mod tests;
