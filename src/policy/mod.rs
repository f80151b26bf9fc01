//! The pure policy core.
//!
//! Nothing here imports `proxy_wasm` (a test enforces it). The host layer hands over plain data
//! (the request head as header pairs, body sizes) and gets back decision values; everything a
//! request is judged by lives below this module and is unit-tested natively and as wasm.
//!
//! - [`config`]: the JSON document and [`config::parse`], which compiles it into a [`Policy`].
//! - [`path`]: request-target normalisation; [`route`]: the route matcher.
//! - [`limits`]: header, method, query-credential, body-size and content-type limits.
//! - [`jwt`]: token extraction, parsing, signature and claim checks; [`authz`]: per-route
//!   requirements (providers, scopes, claim conditions, path bindings).
//! - [`denial`]: the closed set of reasons and the single mapping to problem+json, metric and log.
//! - [`request_id`]: request ids echoed in denials; [`telemetry`]: metric names and their labels.
//! - [`capabilities`]: what each gateway can do; [`load`]: whether a configuration loads on
//!   one (the module's `on_configure` and the command line's `check`).

pub mod apikey;
pub mod authz;
pub mod body;
pub mod capabilities;
pub mod config;
pub mod cors;
pub mod denial;
pub mod digest;
pub mod http;
pub mod json;
pub mod json_cursor;
pub mod json_limits;
pub mod json_rewrite;
pub mod jwt;
pub mod limits;
pub mod load;
pub mod media;
pub mod method;
pub mod method_override;
pub mod multipart;
#[cfg(feature = "openapi")]
pub mod openapi;
/// The lean build (without the `openapi` feature) refuses the `openapi` section at load.
#[cfg(not(feature = "openapi"))]
#[path = "openapi_absent.rs"]
pub mod openapi;
pub mod path;
pub mod ratelimit;
pub mod redact;
pub mod reply;
pub mod request_id;
pub mod resource_metadata;
pub mod response;
pub mod route;
pub mod telemetry;
#[cfg(test)]
pub mod test_tokens;

use authz::{JwtPolicy, Requirement, VerifyState};
use config::{Config, ConfigError};
use denial::{Denial, Reason, Rendering};
pub use http::{HeaderOp, RequestHead};
use limits::{BodyFacts, RequestLimits};
use method::Method;
use route::{MatchRules, PathPattern, RouteMatcher, RouteTable};

/// Default problem `type` prefix.
pub const DEFAULT_TYPE_BASE: &str = "urn:api-guard:problem:";
/// Default request id header.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";

/// A compiled route: its name and resolved settings.
#[derive(Debug, Clone)]
pub struct Route {
    /// The configured name.
    pub name: String,
    /// Resolved limits.
    pub limits: RequestLimits,
    /// Who may call it.
    pub auth: Requirement,
    /// Its own CORS policy, replacing the top-level one.
    pub cors: Option<cors::CorsPolicy>,
    /// Response body buffering.
    pub buffering: response::Buffering,
    /// Its rate limit policies (indexes into `rate_limits.policies`), in order.
    pub rate_limits: Vec<usize>,
}

/// The compiled configuration: everything a request is checked against, ready to use.
#[derive(Debug)]
pub struct Policy {
    /// Limits for requests that match no route.
    pub global: RequestLimits,
    /// Routes in configuration order (indexes match `table`).
    pub routes: Vec<Route>,
    table: RouteTable,
    /// JWT providers and settings, if configured.
    pub jwt: Option<JwtPolicy>,
    /// Requirement for requests whose route has none (or that match no route).
    pub default_auth: Requirement,
    /// How denials are rendered.
    pub rendering: Rendering,
    /// Lower-cased request id header name.
    pub request_id_header: String,
    /// The compiled OpenAPI document, if configured.
    pub api: Option<openapi::ApiSpec>,
    /// CORS for routes without their own.
    pub cors: Option<cors::CorsPolicy>,
    /// Response hardening, if configured.
    pub response: Option<response::ResponsePolicy>,
    /// Response body buffering for requests that match no route.
    pub buffering: response::Buffering,
    /// Which ambiguous path forms are accepted (`paths`).
    pub paths: path::PathRules,
    /// Whether the host forwards a rewritten `:path`. Where it does, an admitted request whose
    /// path is not in normal form goes upstream with the normal form (the path the decision
    /// was made on); where it does not, such a request is refused. Set by the host layer.
    pub rewrite_path: bool,
    /// Whether the host layer times each phase into the decision-latency histogram
    /// (`metrics.decision_latency`).
    pub decision_latency: bool,
    /// Rate limits, if configured.
    pub rate_limits: Option<ratelimit::RateLimits>,
    /// API keys, if configured.
    pub api_keys: Option<apikey::ApiKeys>,
    /// RFC 9728 protected-resource metadata, if configured.
    pub resource_metadata: Option<resource_metadata::ResourceMetadata>,
}

/// What to do with an admitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The body plan.
    pub body: BodyPlan,
    /// Request header changes to make before forwarding.
    pub headers: Vec<HeaderOp>,
    /// Headers to add to the response (e.g. `Deprecation`).
    pub response_headers: Vec<(String, String)>,
    /// Answer the request here with this response instead of forwarding it (an allowed CORS
    /// preflight).
    pub respond: Option<denial::LocalResponse>,
    /// Whether the request presented a verified token (its response must not be cached by
    /// shared caches).
    pub authenticated: bool,
    /// The provider of the (first) verified token, for the `provider` label of the request
    /// counter.
    pub provider: Option<usize>,
    /// What the response is owed: field rules, the schema allowlist, buffering.
    pub response: response::Duty,
}

/// What to do with the body of an admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// No body follows.
    None,
    /// Check the body as it arrives (see [`body`]).
    Check(body::BodyCheck),
}

/// The decision on a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadDecision {
    /// Index of the matched route, if any.
    pub route: Option<usize>,
    /// Admitted, or denied.
    pub outcome: Result<Admission, Denial>,
    /// When denied for want of a key set, or waiting for the rate-limit service: the
    /// decision, suspended where it stopped ([`Wait`] says for what). The host may make the
    /// call and resume it ([`Policy::resume_head`], [`Policy::resume_limits`]); otherwise it
    /// sends the denial.
    pub suspended: Option<Suspended>,
    /// On a CORS route: the CORS headers every response to this request carries (empty when
    /// the request is not cross-origin or its origin is not allowed; `Vary: Origin` is added
    /// regardless). `None` when no CORS policy applies.
    pub cors: Option<Vec<(String, String)>>,
    /// Under a report-only policy: the denial that enforcement would have sent.
    pub shadow: Option<Denial>,
}

impl HeadDecision {
    /// The remote provider whose key set, once fetched, may change a denial.
    pub fn fetch_keys(&self) -> Option<usize> {
        match self.suspended.as_ref().map(|s| &s.wait) {
            Some(Wait::Keys(provider)) => Some(*provider),
            _ => None,
        }
    }
}

/// What a suspended decision waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The key set of this remote provider.
    Keys(usize),
    /// The rate-limit service's answer to this call (the request is otherwise admitted).
    Limits(Box<ratelimit::Call>),
    /// The introspection endpoint's answer about this opaque token of this provider.
    Introspect(usize, String),
}

/// A request-head decision waiting for a callout (a key-set fetch, a rate-limit call): what
/// was judged before the token check, kept so [`Policy::resume_head`] and
/// [`Policy::resume_limits`] go on from the token check without judging the rest again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspended {
    /// What it waits for.
    pub wait: Wait,
    route: Option<usize>,
    cors: Option<Vec<(String, String)>>,
    /// Route template values, and the documented operation with its values.
    params: Vec<(String, String)>,
    found: Option<(usize, Vec<(String, String)>)>,
    forward_path: Option<String>,
}

/// What the checks before the token check established, for the checks after it.
struct Judged<'a> {
    route: Option<usize>,
    params: &'a [(String, &'a str)],
    found: Option<&'a openapi::Found<'a>>,
    forward_path: Option<&'a str>,
    query: &'a str,
    /// The limits' verdict, where the rate-limit service's answer already gave it.
    concluded: Option<&'a Result<ratelimit::Allowance, Denial>>,
}

/// How the checks before the token check ended, when they did not refuse.
enum Prelude<'p> {
    /// Answered here (an allowed preflight).
    Answer(Box<Admission>),
    /// On to the token check, with the documented operation if any.
    Judge(Option<openapi::Found<'p>>),
}

fn owned(params: &[(String, &str)]) -> Vec<(String, String)> {
    params.iter().map(|(k, v)| (k.clone(), (*v).to_string())).collect()
}

fn borrowed(params: &[(String, String)]) -> Vec<(String, &str)> {
    params.iter().map(|(k, v)| (k.clone(), v.as_str())).collect()
}

/// How credentials and the document change a route's limits.
struct Exemptions<'a> {
    /// Query parameters providers read tokens from (lower-cased).
    token_params: &'a [String],
    /// The API key's header, when there are keys.
    api_key_header: Option<&'a str>,
    /// An OpenAPI document says which media types each operation takes.
    document_decides_media: bool,
}

impl Exemptions<'_> {
    /// Parameters a provider reads tokens from are not "credentials in the query", the API
    /// key's header name is one (`?x-api-key=`), and with an OpenAPI document the document
    /// says which media types each operation takes (415 for others: the default allowlist
    /// would refuse the documented `image/png` or `text/csv` body of a real API), unless
    /// `allowed_content_types` is set (`explicit_media`).
    fn apply(&self, mut l: RequestLimits, explicit_media: bool) -> RequestLimits {
        l.query_credentials.retain(|n| !self.token_params.contains(n));
        if let Some(header) = self.api_key_header {
            if !l.query_credentials.is_empty() && !l.query_credentials.iter().any(|n| n == header) {
                l.query_credentials.push(header.to_string());
            }
        }
        if self.document_decides_media && !explicit_media {
            l.content_types = vec![media::MediaRange::Any];
        }
        l
    }
}

/// An API-key requirement needs the keys.
fn needs_keys(r: &Requirement, has_keys: bool, at: &str) -> Result<(), ConfigError> {
    match (r, has_keys) {
        (Requirement::ApiKey(_), false) => {
            Err(ConfigError::new(at, "`api_key` needs a top-level `api_keys` section with the keys"))
        }
        _ => Ok(()),
    }
}

/// What compiling one route needs from the rest of the policy.
struct RouteContext<'a> {
    config: &'a Config,
    jwt: Option<&'a JwtPolicy>,
    exemptions: &'a Exemptions<'a>,
    /// A route's `auth` when it says none.
    default_auth: &'a Requirement,
    rate_limits: Option<&'a ratelimit::RateLimits>,
}

impl RouteContext<'_> {
    /// Every route, with its matcher (a name used twice is refused).
    #[inline(never)]
    fn routes(&self) -> Result<(Vec<RouteMatcher>, Vec<Route>), ConfigError> {
        let mut routes = Vec::with_capacity(self.config.routes.len());
        let mut matchers = Vec::with_capacity(self.config.routes.len());
        for (i, r) in self.config.routes.iter().enumerate() {
            if routes.iter().any(|x: &Route| x.name == r.name) {
                return Err(ConfigError::new(
                    format!("routes[{i}].name"),
                    format!("route name '{}' is used twice", r.name),
                ));
            }
            let (matcher, route) = self.route(r, &format!("routes[{i}]"))?;
            matchers.push(matcher);
            routes.push(route);
        }
        Ok((matchers, routes))
    }

    /// One route (`at` is `routes[i]`): its matcher and what it enforces. Out of line so the
    /// policy's compile stays functions of a size V8 compiles quickly.
    #[inline(never)]
    fn route(&self, r: &config::RouteConfig, at: &str) -> Result<(RouteMatcher, Route), ConfigError> {
        let config = self.config;
        if r.name.is_empty() {
            return Err(ConfigError::new(format!("{at}.name"), "must not be empty"));
        }
        let path = match (&r.matcher.path, &r.matcher.prefix) {
            (Some(p), None) => PathPattern::template(p)
                .map_err(|e| ConfigError::new(format!("{at}.match.path"), e.to_string()))?,
            (None, Some(p)) => PathPattern::prefix(p)
                .map_err(|e| ConfigError::new(format!("{at}.match.prefix"), e.to_string()))?,
            _ => {
                return Err(ConfigError::new(
                    format!("{at}.match"),
                    "needs exactly one of `path` and `prefix`",
                ))
            }
        };
        let methods = match &r.matcher.methods {
            Some(list) if list.is_empty() => {
                return Err(ConfigError::new(
                    format!("{at}.match.methods"),
                    "must list at least one method (omit it to select all)",
                ))
            }
            Some(list) => Some(list.iter().copied().collect()),
            None => None,
        };
        let auth = match &r.auth {
            Some(a) => authz::compile_requirement(self.jwt, a, Some(&path), &format!("{at}.auth"))?,
            None => self.default_auth.clone(),
        };
        needs_keys(&auth, self.exemptions.api_key_header.is_some(), &format!("{at}.auth.type"))?;
        let limits = self.exemptions.apply(
            RequestLimits::compile(&config.limits, Some(&r.limits), &format!("{at}.limits"))?,
            config.limits.allowed_content_types.is_some() || r.limits.allowed_content_types.is_some(),
        );
        let cors =
            r.cors.as_ref().map(|c| cors::CorsPolicy::compile(c, &format!("{at}.cors"))).transpose()?;
        let buffering = response::Buffering::resolve(config.response.as_ref(), Some(&r.response));
        let rate_limits = match (self.rate_limits, &r.rate_limits) {
            (Some(rl), Some(names)) => rl.resolve(names, &format!("{at}.rate_limits"))?,
            (Some(rl), None) => rl.default.clone(),
            (None, Some(names)) if names.is_empty() => Vec::new(),
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    format!("{at}.rate_limits"),
                    "names policies, but there is no `rate_limits` section to define them",
                ))
            }
            (None, None) => Vec::new(),
        };
        Ok((
            RouteMatcher { path, methods },
            Route { name: r.name.clone(), limits, auth, cors, buffering, rate_limits },
        ))
    }
}

/// The JWT providers and the API keys. Like each step of [`Policy::compile`] below, a function
/// of its own: V8 compiles several small functions in far less time than one large one.
#[inline(never)]
fn credentials(config: &Config) -> Result<(Option<JwtPolicy>, Option<apikey::ApiKeys>), ConfigError> {
    let jwt = config.jwt.as_ref().map(JwtPolicy::compile).transpose()?;
    let api_keys = config.api_keys.as_ref().map(apikey::ApiKeys::compile).transpose()?;
    if let Some(i) =
        jwt.iter().flat_map(|j| j.providers.iter()).position(|p| p.name == apikey::PROVIDER_LABEL)
    {
        let name = jwt.as_ref().and_then(|j| j.providers.get(i)).map_or("", |p| p.name.as_str());
        return Err(ConfigError::new(
            format!("jwt.providers.{name}"),
            "`api_key` is the name metrics give API-key callers: name this provider otherwise",
        ));
    }
    Ok((jwt, api_keys))
}

/// The problem type prefix and the request id header.
#[inline(never)]
fn naming(config: &Config) -> Result<(String, String), ConfigError> {
    let type_base = config.problem.type_base.clone().unwrap_or_else(|| DEFAULT_TYPE_BASE.to_string());
    if !is_uri_prefix(&type_base) {
        return Err(ConfigError::new(
            "problem.type_base",
            "must be an absolute URI prefix (scheme, ':', then no spaces, quotes or control characters)",
        ));
    }
    let request_id_header = config
        .request_id_header
        .clone()
        .unwrap_or_else(|| DEFAULT_REQUEST_ID_HEADER.to_string())
        .to_ascii_lowercase();
    if request_id_header.is_empty()
        || !request_id_header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::new("request_id_header", "must be a header name ([A-Za-z0-9_-]+)"));
    }
    Ok((type_base, request_id_header))
}

/// The RFC 9728 document, from what the policy's credentials advertise.
#[inline(never)]
fn resource_metadata(
    cfg: &config::ProtectedResourceConfig,
    jwt: Option<&JwtPolicy>,
    default_auth: &Requirement,
    routes: &[Route],
) -> Result<resource_metadata::ResourceMetadata, ConfigError> {
    let providers = jwt.iter().flat_map(|j| j.providers.iter());
    let issuers: Vec<&str> = providers.clone().map(|p| p.rules.issuer.as_str()).collect();
    let query = providers.flat_map(|p| p.sources.iter()).any(|s| matches!(s, jwt::extract::Source::Param(_)));
    let requirements = std::iter::once(default_auth).chain(routes.iter().map(|r: &Route| &r.auth));
    let mut scopes: Vec<&str> = Vec::new();
    for r in requirements {
        if let Requirement::Jwt(rule) = r {
            for s in &rule.scopes {
                if !scopes.contains(&s.as_str()) {
                    scopes.push(s);
                }
            }
        }
    }
    let all: Vec<&jwt::Provider> = jwt.iter().flat_map(|j| j.providers.iter()).collect();
    let mut dpop_algs: Vec<&str> = Vec::new();
    for a in all.iter().filter_map(|p| p.dpop.as_ref()).flat_map(|d| d.algorithms.iter()) {
        if !dpop_algs.contains(&a.as_str()) {
            dpop_algs.push(a.as_str());
        }
    }
    let facts = resource_metadata::Advertised {
        issuers,
        scopes,
        query,
        dpop_required: !all.is_empty() && all.iter().all(|p| p.dpop.as_ref().is_some_and(|d| d.required)),
        dpop_algs,
        certificate_bound: all.iter().any(|p| p.require_certificate_bound),
    };
    resource_metadata::ResourceMetadata::compile(cfg, &facts)
}

/// The DPoP proof algorithms any provider takes, for `WWW-Authenticate`.
#[inline(never)]
fn dpop_algs(jwt: Option<&JwtPolicy>) -> Option<String> {
    let mut algs: Vec<&str> = Vec::new();
    let dpop = jwt.iter().flat_map(|j| j.providers.iter()).filter_map(|p| p.dpop.as_ref());
    for a in dpop.flat_map(|d| d.algorithms.iter()) {
        if !algs.contains(&a.as_str()) {
            algs.push(a.as_str());
        }
    }
    (!algs.is_empty()).then(|| algs.join(" "))
}

impl Policy {
    /// Compiles a parsed document, checking every value once. It takes the document by value
    /// so that an OpenAPI document moves into its compiled form instead of being copied (a
    /// large one is tens of megabytes as a tree, and a wasm memory never shrinks).
    pub fn compile(mut config: Config) -> Result<Policy, ConfigError> {
        let (jwt, api_keys) = credentials(&config)?;
        // Parameters a provider reads tokens from are not "credentials in the query" there.
        let token_params: Vec<String> =
            jwt.iter().flat_map(|j| j.token_params()).map(str::to_ascii_lowercase).collect();
        let exemptions = Exemptions {
            token_params: &token_params,
            api_key_header: api_keys.as_ref().map(|k| k.header.as_str()),
            document_decides_media: config.openapi.is_some(),
        };
        let global_media = config.limits.allowed_content_types.is_some();
        let global = exemptions.apply(RequestLimits::compile(&config.limits, None, "limits")?, global_media);
        // With keys and no `jwt`, a route without `auth` takes an API key: configuring
        // credentials never leaves the rest open.
        let default_auth = match (&jwt, &api_keys) {
            (Some(j), _) => j.default.clone().unwrap_or(Requirement::Deny),
            (None, Some(_)) => Requirement::ApiKey(Vec::new()),
            (None, None) => Requirement::Public,
        };
        needs_keys(&default_auth, api_keys.is_some(), "jwt.default.type")?;
        let rate_limits = config.rate_limits.as_ref().map(ratelimit::RateLimits::compile).transpose()?;
        let ctx = RouteContext {
            config: &config,
            jwt: jwt.as_ref(),
            exemptions: &exemptions,
            default_auth: &default_auth,
            rate_limits: rate_limits.as_ref(),
        };
        let (matchers, routes) = ctx.routes()?;
        let (type_base, request_id_header) = naming(&config)?;

        let realm = jwt.as_ref().map_or_else(|| "api".to_string(), |j| j.realm.clone());
        let match_rules = MatchRules {
            case_insensitive: config.paths.case_insensitive.unwrap_or(false),
            format_suffix: config.paths.format_suffix.unwrap_or(false),
        };
        // A document that declares matrix-style path parameters (`/items/;id=3`) makes `;`
        // part of the API, unless the policy says otherwise.
        let allow_path_parameters = config
            .paths
            .allow_path_parameters
            .unwrap_or_else(|| config.openapi.as_ref().is_some_and(|o| declares_matrix_path(&o.document)));
        let api = config
            .openapi
            .as_mut()
            .map(|o| {
                let document = std::mem::take(&mut o.document);
                openapi::ApiSpec::compile(o, document, match_rules)
            })
            .transpose()?;
        let cors = config.cors.as_ref().map(|c| cors::CorsPolicy::compile(c, "cors")).transpose()?;
        let names: Vec<&str> = routes.iter().map(|r: &Route| r.name.as_str()).collect();
        let response = config
            .response
            .as_ref()
            .map(|c| response::ResponsePolicy::compile(c, "response", &names))
            .transpose()?;
        let resource_metadata = config
            .protected_resource
            .as_ref()
            .map(|cfg| resource_metadata(cfg, jwt.as_ref(), &default_auth, &routes))
            .transpose()?;
        let dpop_algs = dpop_algs(jwt.as_ref());
        Ok(Policy {
            global,
            routes,
            table: RouteTable::with_rules(matchers, match_rules),
            jwt,
            default_auth,
            rendering: Rendering {
                type_base,
                realm,
                local_headers: response.as_ref().map(|r| r.local_headers().to_vec()).unwrap_or_default(),
                resource_metadata: resource_metadata.as_ref().map(|m| m.url.clone()),
                dpop_algs,
            },
            request_id_header,
            api,
            cors,
            response,
            buffering: response::Buffering::resolve(config.response.as_ref(), None),
            paths: path::PathRules {
                allow_path_parameters,
                allow_encoded_percent: config.paths.allow_encoded_percent.unwrap_or(false),
            },
            rewrite_path: true,
            decision_latency: config.metrics.decision_latency,
            rate_limits,
            api_keys,
            resource_metadata,
        })
    }

    /// A rate limit policy's configured name.
    pub fn rate_limit_name(&self, index: usize) -> &str {
        self.rate_limits.as_ref().and_then(|r| r.policies.get(index)).map_or("", |p| p.name.as_str())
    }

    /// The rate limit policies that apply to a matched route (or to requests that match none).
    pub fn rate_limits_for(&self, route: Option<usize>) -> &[usize] {
        match route.and_then(|i| self.routes.get(i)) {
            Some(r) => &r.rate_limits,
            None => self.rate_limits.as_ref().map_or(&[], |rl| rl.default.as_slice()),
        }
    }

    /// The settings that apply to a matched route (or the global ones).
    pub fn limits_for(&self, route: Option<usize>) -> &RequestLimits {
        route.and_then(|i| self.routes.get(i)).map_or(&self.global, |r| &r.limits)
    }

    /// The name of a matched route, `""` for none.
    pub fn route_name(&self, route: Option<usize>) -> &str {
        route.and_then(|i| self.routes.get(i)).map_or("", |r| r.name.as_str())
    }

    /// The `provider` label of a caller judged by provider `index` (a JWT provider's name, or
    /// `api_key`).
    pub fn provider_label(&self, index: usize) -> Option<&str> {
        if index == authz::API_KEY_PROVIDER {
            return Some(apikey::PROVIDER_LABEL);
        }
        self.jwt.as_ref()?.providers.get(index).map(|p| p.name.as_str())
    }

    /// The requirement for a matched route (or the default).
    pub fn auth_for(&self, route: Option<usize>) -> &Requirement {
        route.and_then(|i| self.routes.get(i)).map_or(&self.default_auth, |r| &r.auth)
    }

    /// The CORS policy for a matched route (or the top-level one).
    pub fn cors_for(&self, route: Option<usize>) -> Option<&cors::CorsPolicy> {
        match route.and_then(|i| self.routes.get(i)) {
            Some(Route { cors: Some(c), .. }) => Some(c),
            _ => self.cors.as_ref(),
        }
    }

    /// The setting that needs response bodies rewritten, if any: hosts that cannot do it
    /// must refuse the configuration rather than forward unredacted data.
    pub fn rewrites_responses(&self) -> Option<&'static str> {
        if self.response.as_ref().is_some_and(response::ResponsePolicy::has_rules) {
            Some("response.rules")
        } else if self.api.as_ref().is_some_and(openapi::ApiSpec::prunes_responses) {
            Some("openapi.response_allowlist")
        } else {
            None
        }
    }

    /// Decides, from the upstream's response headers, what happens to the body of a response
    /// owed `duty`.
    pub fn plan_response(&self, duty: &response::Duty, upstream: &[(String, Vec<u8>)]) -> response::BodyPlan {
        let shape = match (duty.operation, &self.api) {
            (Some(op), Some(api)) => {
                api.response_shape(op, response::status(upstream)).map(<[usize]>::to_vec).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        response::plan_body(self.response.as_ref(), &duty.rules, shape, upstream)
    }

    /// The body to send for a response owed `plan`, by its framing: `Ok(None)` to send it as
    /// it is (a sniffed body that is not JSON), `Ok(Some(new))` rewritten, `Err` withheld.
    pub fn finish_response(
        &self,
        plan: &response::Rewrite,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, response::RewriteError> {
        match plan.framing {
            response::Framing::Json => self.rewrite_response(plan, body).map(Some),
            response::Framing::Sniffed
                if plan.passes_unread(body) || body.iter().all(u8::is_ascii_whitespace) =>
            {
                Ok(None)
            }
            response::Framing::Sniffed => self.rewrite_response(plan, body).map(Some),
            response::Framing::Lines => {
                let mut out = Vec::with_capacity(body.len());
                for line in body.split_inclusive(|b| *b == b'\n') {
                    let ending = if line.ends_with(b"\r\n") { 2 } else { usize::from(line.ends_with(b"\n")) };
                    let (text, end) = line.split_at(line.len() - ending);
                    if text.iter().all(u8::is_ascii_whitespace) {
                        out.extend_from_slice(line);
                    } else {
                        out.extend(self.rewrite_response(plan, text)?);
                        out.extend_from_slice(end);
                    }
                }
                Ok(Some(out))
            }
        }
    }

    /// Rewrites a whole JSON response body in one pass (see [`json_rewrite`]): members the
    /// document does not declare are pruned, and field rules apply. What is kept is copied as
    /// the upstream sent it.
    pub fn rewrite_response(
        &self,
        plan: &response::Rewrite,
        body: &[u8],
    ) -> Result<Vec<u8>, response::RewriteError> {
        let rules = self.response.as_ref().map(|r| r.rewrite_rules(&plan.rules)).unwrap_or_default();
        let shapes = match (&self.api, plan.shape.is_empty()) {
            (Some(api), false) => Some((api.shapes(), plan.shape.as_slice())),
            _ => None,
        };
        let key = self.response.as_ref().map(response::ResponsePolicy::hash_key);
        json_rewrite::Rewrite { shapes, rules: &rules, key }
            .run(body)
            .map_err(|_| response::RewriteError::NotJson)
    }

    /// Rewrites a whole JSON response body the slow way: as a tree (parse, prune, apply each
    /// rule, serialise). The reference [`Policy::rewrite_response`] is tested against.
    pub fn rewrite_response_tree(
        &self,
        plan: &response::Rewrite,
        body: &[u8],
    ) -> Result<serde_json::Value, response::RewriteError> {
        let mut v: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| response::RewriteError::NotJson)?;
        if let (false, Some(api)) = (plan.shape.is_empty(), &self.api) {
            api.prune_response(&plan.shape, &mut v);
        }
        if let Some(r) = &self.response {
            r.apply(&plan.rules, &mut v);
        }
        Ok(v)
    }

    /// Validates a complete body against its target operation and media type.
    pub fn check_body(&self, target: body::BodyTarget, bytes: &[u8]) -> Result<(), Denial> {
        match &self.api {
            Some(api) => api.check_body(target, bytes),
            None => Ok(()),
        }
    }

    /// Whether the one-pass half of [`Policy::check_body`] alone finds the body valid
    /// (`false` is no verdict): for tests and benchmarks that hold it to the tree half.
    pub fn check_body_quick(&self, target: body::BodyTarget, bytes: &[u8]) -> bool {
        self.api.as_ref().is_some_and(|api| api.check_body_quick(target, bytes))
    }

    /// The tree half of [`Policy::check_body`] alone: the verdict it falls back on.
    pub fn check_body_tree(&self, target: body::BodyTarget, bytes: &[u8]) -> Result<(), Denial> {
        match &self.api {
            Some(api) => api.check_body_tree(target, bytes),
            None => Ok(()),
        }
    }

    /// Judges a whole request body once it has all arrived: what `inspector` followed, then the
    /// validation `check` asks for against the bytes the inspector kept (so the host reads
    /// each byte once).
    pub fn finish_body(
        &self,
        check: &body::BodyCheck,
        inspector: &mut body::BodyInspector,
    ) -> Result<(), Denial> {
        inspector.finish()?;
        match check.validate {
            Some(target) => self.check_body(target, inspector.kept().unwrap_or_default()),
            None => Ok(()),
        }
    }

    /// Judges a request head at time `now` (Unix seconds). Cheap checks run first, so junk
    /// costs little: path, header sizes, method, query, declared body, then the token.
    pub fn check_head(&self, head: &RequestHead<'_>, keys: &dyn VerifyState, now: i64) -> HeadDecision {
        let target = head.header_str(":path");
        let (path, query) = path::split_target(target);
        let refuse_path = |cause: &'static str| HeadDecision {
            route: None,
            outcome: Err(Denial { cause: Some(cause), ..Denial::new(Reason::InvalidPath) }),
            suspended: None,
            cors: None,
            shadow: None,
        };
        let normal = match path::normalize_with(path, self.paths) {
            Ok(p) => p,
            Err(e) => return refuse_path(e.name()),
        };
        // The upstream must see the path the decision is made on.
        let forward_path =
            (normal != path).then(|| match target.split('#').next().unwrap_or("").split_once('?') {
                Some(_) => format!("{normal}?{query}"),
                None => normal.clone(),
            });
        if forward_path.is_some() && !self.rewrite_path {
            return refuse_path("not_normal");
        }
        let method = Method::parse(head.header_str(":method"));
        let matched = self.table.find(method, &normal);
        let route = matched.as_ref().map(|m| m.index);
        let params = matched.map(|m| m.params).unwrap_or_default();
        let limits = self.limits_for(route);
        let cors_policy = self.cors_for(route);
        let verdict = cors_policy.map(|c| c.decide(head, method));
        let cors = verdict.as_ref().map(|v| match v {
            cors::Verdict::Allowed(h) => h.clone(),
            _ => Vec::new(),
        });
        let mut shadow = None;
        let prelude = (|| {
            limits.check_headers(head.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())))?;
            self.check_spellings(head, query)?;
            // The protected-resource metadata is public: answered before CORS and tokens.
            if let Some(doc) = self.resource_metadata.as_ref().and_then(|m| m.answer(method, &normal)) {
                return Ok(Prelude::Answer(Box::new(Admission {
                    body: BodyPlan::None,
                    headers: Vec::new(),
                    response_headers: Vec::new(),
                    respond: Some(doc),
                    authenticated: false,
                    provider: None,
                    response: response::Duty::default(),
                })));
            }
            // CORS comes before everything a preflight cannot satisfy (methods, tokens, the
            // API description): a preflight is answered here, never forwarded.
            let refusal = match &verdict {
                Some(cors::Verdict::PreflightAllowed(h)) => {
                    let respond = denial::LocalResponse {
                        status: 204,
                        headers: h.clone(),
                        body: Vec::new(),
                        details: telemetry::details("cors_preflight"),
                    };
                    return Ok(Prelude::Answer(Box::new(Admission {
                        body: BodyPlan::None,
                        headers: Vec::new(),
                        response_headers: Vec::new(),
                        respond: Some(respond),
                        authenticated: false,
                        provider: None,
                        response: response::Duty::default(),
                    })));
                }
                Some(cors::Verdict::PreflightRefused { cause }) => {
                    Some(Denial { cause: Some(cause), ..Denial::new(Reason::CorsRejected) })
                }
                Some(cors::Verdict::Disallowed { refuse: true }) => {
                    Some(Denial { cause: Some("origin"), ..Denial::new(Reason::CorsRejected) })
                }
                _ => None,
            };
            if let Some(d) = refusal {
                if cors_policy.is_some_and(|c| c.report_only) {
                    shadow = Some(d);
                } else {
                    return Err(d);
                }
            }
            limits.check_method(method)?;
            limits.check_query(query)?;
            let facts = body_facts(head);
            limits.check_body_head(&facts)?;
            let found = match &self.api {
                Some(api) => api.find(method, &normal)?,
                None => None,
            };
            Ok(Prelude::Judge(found))
        })();
        let (outcome, suspended) = match prelude {
            Err(d) => (Err(d), None),
            Ok(Prelude::Answer(a)) => (Ok(*a), None),
            Ok(Prelude::Judge(found)) => {
                let judged = Judged {
                    route,
                    params: &params,
                    found: found.as_ref(),
                    forward_path: forward_path.as_deref(),
                    query,
                    concluded: None,
                };
                match self.finish_head(head, &judged, keys, now) {
                    Ok(a) => (Ok(a), None),
                    Err(r) => {
                        let wait = r.wait.map(|w| *w);
                        let suspended = wait.map(|wait| Suspended {
                            wait,
                            route,
                            cors: cors.clone(),
                            params: owned(&params),
                            found: found.as_ref().map(|f| (f.operation, owned(&f.params))),
                            forward_path: forward_path.clone(),
                        });
                        (Err(r.denial), suspended)
                    }
                }
            }
        };
        HeadDecision { route, outcome, suspended, cors, shadow }
    }

    /// This policy's verification state for a VM ([`jwt::state::State::new`]), keeping the
    /// key sets of `previous` whose providers did not change.
    pub fn verification_state(
        &self,
        previous: Option<jwt::state::State>,
        shared_namespace: Option<String>,
    ) -> jwt::state::State {
        let j = self.jwt.as_ref();
        jwt::state::State::new(
            j.map_or(&[], |j| j.providers.as_slice()),
            j.map_or(0, |j| j.token_cache_size),
            j.and_then(|j| j.budget.as_ref()),
            previous,
            shared_namespace,
        )
    }

    /// Goes on with a suspended decision once its key set was fetched (or could not be):
    /// from the token check, with what was judged before it. `head` is the same request head.
    pub fn resume_head(
        &self,
        suspended: &Suspended,
        head: &RequestHead<'_>,
        keys: &dyn VerifyState,
        now: i64,
    ) -> HeadDecision {
        self.resume(suspended, None, head, keys, now)
    }

    /// Goes on with a decision suspended for the rate-limit service, with its answer (`None`:
    /// none came, in time or at all; the global policies' failure modes apply). The token
    /// check runs again (from the token cache); the local limits are not counted again.
    pub fn resume_limits(
        &self,
        suspended: &Suspended,
        answer: Option<&[u8]>,
        head: &RequestHead<'_>,
        keys: &dyn VerifyState,
        now: i64,
    ) -> HeadDecision {
        let concluded = match (&suspended.wait, &self.rate_limits, keys.limiter()) {
            (Wait::Limits(call), Some(rl), Some(limiter)) => rl.conclude(call, answer, limiter),
            _ => Err(Denial::new(Reason::RateLimitUnavailable)),
        };
        self.resume(suspended, Some(&concluded), head, keys, now)
    }

    fn resume(
        &self,
        suspended: &Suspended,
        concluded: Option<&Result<ratelimit::Allowance, Denial>>,
        head: &RequestHead<'_>,
        keys: &dyn VerifyState,
        now: i64,
    ) -> HeadDecision {
        let params = borrowed(&suspended.params);
        let found = suspended
            .found
            .as_ref()
            .map(|(operation, p)| openapi::Found { operation: *operation, params: borrowed(p) });
        let (_, query) = path::split_target(head.header_str(":path"));
        let judged = Judged {
            route: suspended.route,
            params: &params,
            found: found.as_ref(),
            forward_path: suspended.forward_path.as_deref(),
            query,
            concluded,
        };
        let (outcome, again) = match self.finish_head(head, &judged, keys, now) {
            Ok(a) => (Ok(a), None),
            Err(r) => {
                let wait = r.wait.map(|w| *w);
                (Err(r.denial), wait.map(|wait| Suspended { wait, ..suspended.clone() }))
            }
        };
        HeadDecision {
            route: suspended.route,
            outcome,
            suspended: again,
            cors: suspended.cors.clone(),
            shadow: None,
        }
    }

    /// The request-head checks from the token check on: authorization, then the operation's
    /// parameters, the body plan and the header edits.
    fn finish_head(
        &self,
        head: &RequestHead<'_>,
        judged: &Judged<'_>,
        keys: &dyn VerifyState,
        now: i64,
    ) -> Result<Admission, authz::Refusal> {
        let Judged { route, params, found, forward_path, query, concluded } = *judged;
        let limits = self.limits_for(route);
        let facts = body_facts(head);
        let grant = authz::authorize(
            self.jwt.as_ref(),
            self.api_keys.as_ref(),
            self.auth_for(route),
            head,
            query,
            params,
            keys,
            now,
        )?;
        // Limits count authorized requests only: a refused token spends no one's quota.
        let mut response_headers = Vec::new();
        if let Some(verdict) = concluded {
            response_headers = verdict.clone()?.headers;
        } else if let (Some(rl), Some(limiter)) = (&self.rate_limits, keys.limiter()) {
            let policies = self.rate_limits_for(route);
            if !policies.is_empty() {
                let client = || keys.client_key();
                let caller = ratelimit::Caller {
                    claims: grant.tokens.first().map(|(_, v)| &v.claims),
                    client: &client,
                    head,
                    route,
                };
                match rl.check(policies, &caller, limiter)? {
                    ratelimit::Checked::Done(a) => response_headers = a.headers,
                    ratelimit::Checked::Ask(call) => {
                        // The host makes the call and resumes with its answer, or with none
                        // (`resume_limits`); this denial is only what stands until then.
                        let denial =
                            Denial { retry_after: Some(1), ..Denial::new(Reason::RateLimitUnavailable) };
                        return Err(authz::Refusal { denial, wait: Some(Box::new(Wait::Limits(call))) });
                    }
                }
            }
        }
        // Parameters are judged after authentication: only callers who may use the
        // operation learn what it expects.
        let mut validate = None;
        if let (Some(api), Some(found)) = (&self.api, found) {
            api.check_request(found, query, head)?;
            validate = api.body_target(found.operation, facts.has_body, facts.content_type)?;
            if let Some(op) = api.operations.get(found.operation) {
                response_headers.extend(op.response_headers.iter().cloned());
            }
        }
        let body = if facts.has_body {
            let json = facts
                .content_type
                .and_then(media::essence)
                .filter(|e| media::is_json(e))
                .map(|_| limits.json);
            BodyPlan::Check(body::BodyCheck {
                limit: limits.max_body_bytes,
                declared: facts.content_length,
                json,
                validate,
                form_override: method_override::form_of(
                    head.header_str(":method").as_bytes(),
                    facts.content_type,
                ),
            })
        } else {
            BodyPlan::None
        };
        // Client-sent copies of claim headers never reach the upstream, on any route. Only
        // headers the request actually carries are removed: every host call costs.
        let mut headers: Vec<HeaderOp> = self
            .scrubbed()
            .filter(|h| head.header(h).is_some())
            .map(|h| HeaderOp::Remove(h.clone()))
            .collect();
        let authenticated = !grant.tokens.is_empty();
        let provider = grant.tokens.first().map(|(pi, _)| *pi);
        // Scopes are gathered only where field rules may be waived by them.
        let rules = match self.response.as_ref().filter(|r| r.has_rules()) {
            Some(r) => {
                let scopes: Vec<&str> =
                    grant.tokens.iter().flat_map(|(_, v)| authz::granted_scopes(&v.claims)).collect();
                r.active_rules(route, &scopes)
            }
            None => Vec::new(),
        };
        let operation = match (&self.api, &found) {
            (Some(api), Some(f)) if api.prunes_responses() => Some(f.operation),
            _ => None,
        };
        let buffering = route.and_then(|i| self.routes.get(i)).map_or(self.buffering, |r| r.buffering);
        let response = response::Duty { rules, operation, buffering };
        if response.may_rewrite() && head.header("accept-encoding").is_some() {
            // Rewrites need the body as JSON: ask the upstream for an uncompressed one.
            headers.push(HeaderOp::Remove("accept-encoding".into()));
        }
        headers.extend(grant.headers);
        if let Some(p) = forward_path {
            headers.push(HeaderOp::Set(":path".into(), p.to_string()));
        }
        Ok(Admission { body, headers, response_headers, respond: None, authenticated, provider, response })
    }
}

impl Policy {
    /// The headers only the gateway may set (claim and payload headers, the API-key consumer
    /// header): a client's copies are removed from every request.
    fn scrubbed(&self) -> impl Iterator<Item = &String> + Clone {
        let jwt = self.jwt.iter().flat_map(|j| j.scrub_headers.iter());
        jwt.chain(self.api_keys.iter().filter_map(|k| k.consumer_header.as_ref()))
    }

    /// Refuses what an upstream would read differently from what was judged: a header spelled
    /// with underscores that names one the gateway scrubs or sets (CGI-style servers map
    /// `x_user` and `x-user` to one `HTTP_X_USER`), and a method override naming another
    /// method than the request's.
    fn check_spellings(&self, head: &RequestHead<'_>, query: &str) -> Result<(), Denial> {
        let scrubbed = self.scrubbed();
        for (name, _) in head.headers.iter().filter(|(n, _)| n.contains('_')) {
            let hyphenated = name.replace('_', "-");
            if scrubbed.clone().any(|h| *h == hyphenated) {
                return Err(Denial {
                    cause: Some("underscore_variant"),
                    ..Denial::new(Reason::AmbiguousHeader)
                });
            }
        }
        if let Some(found) =
            method_override::in_head(head.headers, head.header_str(":method").as_bytes(), query)
        {
            return Err(Denial { cause: Some(found.name()), ..Denial::new(Reason::MethodOverride) });
        }
        Ok(())
    }
}

/// Whether an OpenAPI document declares a path parameter of style `matrix` anywhere.
fn declares_matrix_path(doc: &serde_json::Value) -> bool {
    match doc {
        serde_json::Value::Object(m) => {
            (m.get("in").and_then(|v| v.as_str()) == Some("path")
                && m.get("style").and_then(|v| v.as_str()) == Some("matrix"))
                || m.values().any(declares_matrix_path)
        }
        serde_json::Value::Array(a) => a.iter().any(declares_matrix_path),
        _ => false,
    }
}

/// Whether a body follows, per RFC 9112 §6.3 for HTTP/1 (`Content-Length` > 0 or any
/// `Transfer-Encoding`) and, where the host can tell, its end-of-stream flag (HTTP/2 and 3
/// bodies need no `Content-Length`).
fn body_facts<'a>(head: &RequestHead<'a>) -> BodyFacts<'a> {
    let content_length = head
        .header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok());
    let chunked = head.header("transfer-encoding").is_some();
    let has_body = match content_length {
        Some(n) => n > 0,
        None => chunked || head.end_of_stream == Some(false),
    };
    BodyFacts { has_body, content_length, content_type: head.header("content-type") }
}

fn is_uri_prefix(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && rest.bytes().all(|b| b > 0x20 && b < 0x7f && b != b'"' && b != b'<' && b != b'>')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&str, &str)], eos: Option<bool>) -> Vec<(String, Vec<u8>)> {
        let _ = eos;
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    fn decide(policy: &Policy, pairs: &[(&str, &str)], eos: Option<bool>) -> HeadDecision {
        let headers = head(pairs, eos);
        policy.check_head(
            &RequestHead { headers: &headers, end_of_stream: eos },
            &authz::NoState,
            1_800_000_000,
        )
    }

    fn policy(json: &str) -> Policy {
        config::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn plain_get_is_admitted_without_body() {
        let p = policy("{}");
        let d = decide(&p, &[(":method", "GET"), (":path", "/x?y=1")], Some(true));
        assert_eq!(
            d,
            HeadDecision {
                route: None,
                outcome: Ok(Admission {
                    body: BodyPlan::None,
                    headers: vec![],
                    response_headers: vec![],
                    respond: None,
                    authenticated: false,
                    provider: None,
                    response: response::Duty::default(),
                }),
                suspended: None,
                cors: None,
                shadow: None,
            }
        );
    }

    #[test]
    fn routes_select_their_limits() {
        let p = policy(
            r#"{"limits":{"max_body_bytes":10},
                "routes":[{"name":"upload","match":{"prefix":"/upload","methods":["POST"]},
                           "limits":{"max_body_bytes":1000,"allowed_content_types":["*/*"]}}]}"#,
        );
        let post = |path: &str, len: &str| {
            decide(
                &p,
                &[
                    (":method", "POST"),
                    (":path", path),
                    ("content-length", len),
                    ("content-type", "image/png"),
                ],
                Some(false),
            )
        };
        let d = post("/upload/a", "500");
        assert_eq!(d.route, Some(0));
        assert_eq!(
            d.outcome.unwrap().body,
            BodyPlan::Check(body::BodyCheck {
                limit: 1000,
                declared: Some(500),
                json: None,
                validate: None,
                form_override: None
            })
        );
        assert_eq!(p.route_name(d.route), "upload");
        // Normalisation happens before matching: this is the same route.
        assert_eq!(post("/x/../upload//a", "5").route, Some(0));
        let d = post("/other", "5");
        assert_eq!(d.route, None);
        assert_eq!(d.outcome.unwrap_err().reason, Reason::UnsupportedMediaType);
    }

    #[test]
    fn denials_in_order() {
        let p = policy(r#"{"limits":{"max_header_count":3,"max_body_bytes":4}}"#);
        let cases: &[(&[(&str, &str)], Reason)] = &[
            (&[(":method", "GET"), (":path", "/a%2fb")], Reason::InvalidPath),
            (&[(":method", "GET"), (":path", "relative")], Reason::InvalidPath),
            (&[(":method", "GET")], Reason::InvalidPath),
            (
                &[(":method", "GET"), (":path", "/"), ("a", ""), ("b", ""), ("c", ""), ("d", "")],
                Reason::HeadersTooLarge,
            ),
            (&[(":method", "GET"), (":path", "/a;b")], Reason::InvalidPath),
            (&[(":method", "GET"), (":path", "/%2541")], Reason::InvalidPath),
            (
                &[(":method", "GET"), (":path", "/"), ("x-http-method-override", "DELETE")],
                Reason::MethodOverride,
            ),
            (&[(":method", "GET"), (":path", "/?_method=DELETE")], Reason::MethodOverride),
            (&[(":method", "TRACE"), (":path", "/")], Reason::MethodNotAllowed),
            (&[(":method", "get"), (":path", "/")], Reason::MethodNotAllowed),
            (&[(":method", "GET"), (":path", "/?access_token=abc")], Reason::CredentialInQuery),
            (
                &[
                    (":method", "POST"),
                    (":path", "/"),
                    ("content-length", "5"),
                    ("content-type", "application/json"),
                ],
                Reason::BodyTooLarge,
            ),
            (
                &[(":method", "POST"), (":path", "/"), ("transfer-encoding", "chunked")],
                Reason::UnsupportedMediaType,
            ),
        ];
        for (pairs, want) in cases {
            let d = decide(&p, pairs, Some(false));
            assert_eq!(d.outcome.unwrap_err().reason, *want, "{pairs:?}");
        }
        let d = decide(&p, &[(":method", "TRACE"), (":path", "/")], Some(true));
        assert_eq!(
            d.outcome.unwrap_err().allow.as_deref(),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
        );
    }

    #[test]
    fn body_presence_follows_the_framing() {
        let p = policy("{}");
        let ct = ("content-type", "application/json");
        let plan = |pairs: &[(&str, &str)], eos| decide(&p, pairs, eos).outcome.unwrap().body;
        assert_eq!(
            plan(&[(":method", "POST"), (":path", "/"), ("content-length", "0")], Some(false)),
            BodyPlan::None
        );
        assert_eq!(
            plan(&[(":method", "POST"), (":path", "/"), ("transfer-encoding", "chunked"), ct], None),
            BodyPlan::Check(body::BodyCheck {
                limit: limits::DEFAULT_MAX_BODY_BYTES,
                declared: None,
                json: Some(Default::default()),
                validate: None,
                form_override: None
            })
        );
        // HTTP/2 without content-length: only the end-of-stream flag tells.
        assert!(matches!(plan(&[(":method", "POST"), (":path", "/"), ct], Some(false)), BodyPlan::Check(..)));
        assert_eq!(plan(&[(":method", "POST"), (":path", "/")], Some(true)), BodyPlan::None);
        // A host that cannot tell (always eos=false at headers) is not taken to mean a body.
        assert_eq!(plan(&[(":method", "GET"), (":path", "/")], None), BodyPlan::None);
    }

    #[test]
    fn route_config_errors_name_the_route_field() {
        for (json, path) in [
            (r#"{"routes":[{"name":"a","match":{}}]}"#, "routes[0].match"),
            (r#"{"routes":[{"name":"a","match":{"path":"/a","prefix":"/b"}}]}"#, "routes[0].match"),
            (r#"{"routes":[{"name":"a","match":{"path":"a"}}]}"#, "routes[0].match.path"),
            (r#"{"routes":[{"name":"a","match":{"prefix":"/{x}"}}]}"#, "routes[0].match.prefix"),
            (r#"{"routes":[{"name":"a","match":{"prefix":"/","methods":[]}}]}"#, "routes[0].match.methods"),
            (
                r#"{"routes":[{"name":"a","match":{"prefix":"/"}},{"name":"a","match":{"prefix":"/"}}]}"#,
                "routes[1].name",
            ),
            (r#"{"routes":[{"name":"","match":{"prefix":"/"}}]}"#, "routes[0].name"),
            (
                r#"{"routes":[{"name":"a","match":{"prefix":"/"},"limits":{"max_header_count":0}}]}"#,
                "routes[0].limits.max_header_count",
            ),
            (r#"{"problem":{"type_base":"no scheme"}}"#, "problem.type_base"),
            (r#"{"request_id_header":"bad header"}"#, "request_id_header"),
            (r#"{"routes":[{"name":"a"}]}"#, "routes[0]"),
        ] {
            let e = config::parse(json.as_bytes()).unwrap_err();
            assert_eq!(e.path, path, "{json}: {e}");
        }
    }

    #[test]
    fn problem_settings() {
        let p = policy(
            r#"{"problem":{"type_base":"https://errors.example.com/"},"request_id_header":"X-Trace"}"#,
        );
        assert_eq!(p.rendering.type_base, "https://errors.example.com/");
        assert_eq!(p.request_id_header, "x-trace");
        assert_eq!(policy("{}").rendering.type_base, DEFAULT_TYPE_BASE);
    }
}
