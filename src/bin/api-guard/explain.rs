//! `api-guard explain`: what a policy does with one request, by the module's own decision
//! code (`Policy::check_head`, `Policy::finish_body`, `denial::render`) at a fixed instant, with
//! no network: a remote key set is read from a file.
//!
//! The module checks in a fixed order and stops at the first refusal, so the step a denial's
//! reason belongs to is where it stopped: the steps before it passed, the ones after it were
//! not reached.

use std::cell::RefCell;

use api_guard::policy::authz::Requirement;
use api_guard::policy::body::BodyInspector;
use api_guard::policy::capabilities::HostKind;
use api_guard::policy::denial::{self, Denial, Reason};
use api_guard::policy::jwt::state::{NoSharedData, View};
use api_guard::policy::jwt::ProviderKeys;
use api_guard::policy::load;
use api_guard::policy::method::Method;
use api_guard::policy::{BodyPlan, HeaderOp, Policy, RequestHead};

use crate::check::{host_choice, HostChoice};
use crate::{source, usage, Exit};

const USAGE: &str = "usage: api-guard explain POLICY METHOD URL [-H 'name: value']... [--body FILE] [--jwks [PROVIDER=]FILE] [--at UNIX-SECONDS] [--client ADDRESS] [--host envoy|kong|apisix]";

/// The steps, in the order the module takes them.
const STEPS: [&str; 9] =
    ["path", "headers", "cors", "method", "query", "inventory", "token", "parameters", "body"];

/// The step a head-phase denial stopped at.
fn step_of(reason: Reason) -> usize {
    match reason {
        Reason::InvalidPath => 0,
        Reason::HeadersTooLarge | Reason::AmbiguousHeader | Reason::MethodOverride => 1,
        Reason::CorsRejected => 2,
        Reason::MethodNotAllowed => 3,
        // The declared body (length, type) is judged with the query, before the description.
        Reason::CredentialInQuery | Reason::BodyTooLarge | Reason::UnsupportedMediaType => 4,
        Reason::UnknownOperation | Reason::DeprecatedOperation => 5,
        Reason::TokenMissing
        | Reason::TokenInvalid
        | Reason::InsufficientScope
        | Reason::AccessDenied
        | Reason::KeysUnavailable
        | Reason::VerificationBudget
        | Reason::VerificationOverload
        | Reason::RateLimited
        | Reason::RateLimitUnavailable
        | Reason::ApiKeyMissing
        | Reason::ApiKeyInvalid
        | Reason::DpopProofInvalid => 6,
        Reason::InvalidRequest => 7,
        Reason::InvalidJson | Reason::ResponseWithheld | Reason::HostMisconfigured => 8,
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

/// Runs `explain` with its arguments.
pub fn run(args: &[String]) -> Exit {
    let mut positional = Vec::new();
    let mut headers = Vec::new();
    let mut body_file = None;
    let mut jwks = Vec::new();
    let mut at = None;
    let mut client = "127.0.0.1".to_string();
    let mut host = HostChoice::Auto;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().cloned().ok_or_else(|| format!("{arg} takes {what}"));
        let step = match arg.as_str() {
            "-H" | "--header" => value("a header, 'name: value'").map(|h| headers.push(h)),
            "--body" => value("a file").map(|f| body_file = Some(f)),
            "--jwks" => value("a key-set file").map(|f| jwks.push(f)),
            "--at" => value("Unix seconds").and_then(|t| {
                t.parse::<i64>().map(|t| at = Some(t)).map_err(|_| "--at takes Unix seconds".into())
            }),
            "--client" => value("an address").map(|c| client = c),
            "--host" => value("a host").and_then(|h| {
                host_choice(&h).map(|h| host = h).ok_or_else(|| "--host takes envoy, kong or apisix".into())
            }),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Exit::Ok;
            }
            a if a.starts_with('-') && positional.len() != 2 => Err(format!("unknown option `{a}`")),
            a => {
                positional.push(a.to_string());
                Ok(())
            }
        };
        if let Err(problem) = step {
            return usage(USAGE, &problem);
        }
    }
    let [file, method, url] = positional.as_slice() else {
        return usage(USAGE, "give the policy, a method and a URL");
    };
    let mut request = match request(method, url, &headers) {
        Ok(r) => r,
        Err(problem) => return usage(USAGE, &problem),
    };
    if let Some(f) = &body_file {
        match std::fs::read(f) {
            Ok(bytes) => request.body = Some(bytes),
            Err(e) => return usage(USAGE, &format!("cannot read {f}: {e}")),
        }
    }
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return usage(USAGE, &format!("cannot read {file}: {e}")),
    };
    let embedded = match source::policies(&text) {
        Ok(found) if found.len() == 1 => found.into_iter().next(),
        Ok(found) if found.is_empty() => None,
        Ok(_) => return usage(USAGE, &format!("{file} holds more than one policy; explain takes one")),
        Err(e) => {
            println!("{file}:{}: error: not YAML or JSON: {}", e.line, e.message);
            return Exit::Refused;
        }
    };
    let Some(embedded) = embedded else {
        println!("{file}: error: no api-guard policy found");
        return Exit::Refused;
    };
    let kind = match (embedded.host, host) {
        (Some(h), _) | (None, HostChoice::Named(h)) => h,
        (None, HostChoice::Auto) => HostKind::Envoy,
    };
    let loaded = match load::load(&embedded.bytes, || kind.as_detected()) {
        Ok(l) => l,
        Err(e) => {
            println!("{file}: error: {}: {} (run `api-guard check {file}`)", e.path, e.message);
            return Exit::Refused;
        }
    };
    let now = at.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
    });
    let policy = &loaded.policy;
    let state = RefCell::new(policy.verification_state(None, None));
    if let Err(problem) = load_key_sets(policy, &state, &jwks, now, loaded.caps.clusters) {
        println!("error: {problem}");
        return Exit::Refused;
    }
    explain(policy, &state, &request, now, &client);
    Exit::Ok
}

/// The request head from the command line.
fn request(method: &str, url: &str, headers: &[String]) -> Result<Request, String> {
    let (authority, target) = match url.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
            None => (rest, "/"),
        },
        None if url.starts_with('/') => ("localhost", url),
        None => return Err(format!("`{url}` is neither a URL nor a path")),
    };
    let mut all = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), target.as_bytes().to_vec()),
        (":authority".to_string(), authority.as_bytes().to_vec()),
        (":scheme".to_string(), url.split_once("://").map_or("http", |(s, _)| s).as_bytes().to_vec()),
    ];
    for h in headers {
        let Some((name, value)) = h.split_once(':') else {
            return Err(format!("-H `{h}`: write 'name: value'"));
        };
        all.push((name.trim().to_ascii_lowercase(), value.trim().as_bytes().to_vec()));
    }
    Ok(Request { method: method.to_string(), target: target.to_string(), headers: all, body: None })
}

/// Gives remote providers their key sets from files (`PROVIDER=FILE`, or `FILE` for all).
fn load_key_sets(
    policy: &Policy,
    state: &RefCell<api_guard::policy::jwt::state::State>,
    jwks: &[String],
    now: i64,
    clusters: bool,
) -> Result<(), String> {
    let providers = policy.jwt.as_ref().map_or(&[][..], |j| j.providers.as_slice());
    for spec in jwks {
        let (name, file) = match spec.split_once('=') {
            Some((n, f)) if providers.iter().any(|p| p.name == n) => (Some(n), f),
            _ => (None, spec.as_str()),
        };
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        let mut used = false;
        for (i, p) in providers.iter().enumerate() {
            if !matches!(p.keys, ProviderKeys::Remote(_)) || name.is_some_and(|n| n != p.name) {
                continue;
            }
            let mut s = state.borrow_mut();
            s.start_fetch(i, now, clusters);
            s.complete_fetch(i, Some(200), Some(&bytes), now, &NoSharedData).map_err(|e| {
                format!("{file}: not a usable key set for provider `{}` ({})", p.name, e.name())
            })?;
            used = true;
        }
        if !used {
            return Err(format!("--jwks {spec}: no provider with remote_jwks takes it"));
        }
    }
    Ok(())
}

fn explain(
    policy: &Policy,
    state: &RefCell<api_guard::policy::jwt::state::State>,
    request: &Request,
    now: i64,
    client: &str,
) {
    let mut headers = request.headers.clone();
    if let Some(body) = &request.body {
        if !headers.iter().any(|(n, _)| n == "content-length" || n == "transfer-encoding") {
            headers.push(("content-length".into(), body.len().to_string().into_bytes()));
        }
    }
    let head = RequestHead { headers: &headers, end_of_stream: Some(request.body.is_none()) };
    let client_fn = || (Some(client.to_string()), Some(1));
    let view = View::new(state, now, &NoSharedData).with_client(&client_fn);
    let decision = policy.check_head(&head, &view, now);
    println!("request    {} {}   (at {now})", request.method, request.target);
    let route = decision.route;
    match route {
        Some(i) => println!("route      {} (routes[{i}])", policy.route_name(route)),
        None => println!("route      none matched: the top-level settings apply"),
    }
    println!("requires   {}", requirement(policy, policy.auth_for(route)));
    if let Some(d) = &decision.shadow {
        println!("report-only: CORS would refuse it ({}); enforcement is off for it", d.reason.slug());
    }
    let cors = decision.cors.clone();
    let fetch = decision.fetch_keys();
    let (stopped, denial, admission) = match decision.outcome {
        Err(d) => {
            if let Some(provider) = fetch {
                let name = policy
                    .jwt
                    .as_ref()
                    .and_then(|j| j.providers.get(provider))
                    .map_or("", |p| p.name.as_str());
                println!("note       the key set of provider `{name}` is not loaded: the module fetches it first (give it here with --jwks FILE); if that fails it answers as below");
            }
            (Some(step_of(d.reason)), Some(d), None)
        }
        Ok(a) => (None, None, Some(a)),
    };
    // The body, as the module follows it once the head is admitted.
    let mut body_denial = None;
    if let Some(a) = &admission {
        if let (BodyPlan::Check(check), Some(body)) = (&a.body, &request.body) {
            let mut inspector = BodyInspector::new(check);
            let fed =
                if check.needs_bytes() { inspector.feed(body) } else { inspector.add(body.len() as u64) };
            body_denial = fed.and_then(|()| policy.finish_body(check, &mut inspector)).err();
        }
    }
    let stopped = stopped.or(body_denial.as_ref().map(|_| STEPS.len() - 1));
    let denial = denial.or(body_denial);
    for (i, name) in STEPS.iter().enumerate() {
        let what = match stopped {
            Some(s) if i == s => denial.as_ref().map_or("refused".to_string(), refused),
            Some(s) if i > s => "not reached".to_string(),
            _ if admission.as_ref().is_some_and(|a| a.respond.is_some()) && i > 2 => {
                "not reached (a preflight is answered here)".to_string()
            }
            _ => passed(policy, route, i, request, admission.as_ref().map(|a| &a.body)),
        };
        println!("{:>2} {name:<11} {what}", i + 1);
    }
    match (denial, admission) {
        (Some(d), _) => {
            let tag = denial::RequestTag {
                route: policy.route_name(route),
                method: Method::parse(&request.method),
                request_id: "explain",
            };
            let out = denial::render(&d, &policy.rendering, &tag, cors.as_deref());
            let problem: serde_json::Value = serde_json::from_slice(&out.response.body).unwrap_or_default();
            println!(
                "decision   denied: {} {}",
                out.response.status,
                problem.get("type").and_then(|t| t.as_str()).unwrap_or("")
            );
            for (n, v) in &out.response.headers {
                println!("           {n}: {v}");
            }
            println!("           {}", String::from_utf8_lossy(&out.response.body));
        }
        (None, Some(a)) => {
            if let Some(reply) = &a.respond {
                println!(
                    "decision   answered here: {} (an allowed CORS preflight; nothing goes upstream)",
                    reply.status
                );
                for (n, v) in &reply.headers {
                    println!("           {n}: {v}");
                }
                return;
            }
            println!("decision   forwarded to the upstream");
            for op in &a.headers {
                match op {
                    HeaderOp::Remove(n) => println!("           request header removed: {n}"),
                    HeaderOp::Set(n, v) => println!("           request header set: {n}: {v}"),
                }
            }
            for (n, v) in &a.response_headers {
                println!("           response header added: {n}: {v}");
            }
            if a.authenticated {
                println!("           authenticated: its response is marked no-store for shared caches");
            }
            if let (BodyPlan::Check(_), None) = (&a.body, &request.body) {
                println!("           a body would be checked as it arrives (give one with --body FILE)");
            }
        }
        (None, None) => {}
    }
}

fn refused(d: &Denial) -> String {
    let mut s = format!("refused: {}", d.reason.slug());
    if let Some(c) = d.cause {
        s.push_str(&format!(" ({c})"));
    }
    for e in d.errors.iter().take(3) {
        s.push_str(&format!("\n{:15}{}", "", serde_json::to_string(e).unwrap_or_default()));
    }
    s
}

/// What a step that passed checked, or that the policy has nothing for it.
fn passed(
    policy: &Policy,
    route: Option<usize>,
    step: usize,
    request: &Request,
    body: Option<&BodyPlan>,
) -> String {
    match step {
        2 if policy.cors_for(route).is_none() => "no CORS policy here".into(),
        4 if !request.target.contains('?') => "ok (no query)".into(),
        5 if policy.api.is_none() => "no API description".into(),
        6 => match policy.auth_for(route) {
            Requirement::Public => "public: no token needed".into(),
            _ => "ok".into(),
        },
        7 if policy.api.is_none() => "no API description".into(),
        8 => match (body, &request.body) {
            (Some(BodyPlan::Check(_)), Some(b)) => format!("ok ({} bytes)", b.len()),
            (_, None) => "no body".into(),
            _ => "not checked".into(),
        },
        _ => "ok".into(),
    }
}

fn requirement(policy: &Policy, r: &Requirement) -> String {
    match r {
        Requirement::Public => "nothing (public)".into(),
        Requirement::Deny => "nothing passes (deny)".into(),
        Requirement::ApiKey(scopes) if scopes.is_empty() => "an API key from api_keys".into(),
        Requirement::ApiKey(scopes) => format!("an API key from api_keys granting {}", scopes.join(", ")),
        Requirement::Jwt(rule) => {
            let names: Vec<&str> = rule
                .providers
                .iter()
                .filter_map(|&i| policy.jwt.as_ref()?.providers.get(i).map(|p| p.name.as_str()))
                .collect();
            let mut s = format!(
                "a verified JWT from {} {}",
                if rule.require_all { "each of" } else { "one of" },
                names.join(", ")
            );
            if !rule.scopes.is_empty() {
                s.push_str(&format!(", scopes {}", rule.scopes.join(" ")));
            }
            if !rule.claims.is_empty() {
                s.push_str(&format!(", {} claim conditions", rule.claims.len()));
            }
            if !rule.bind.is_empty() {
                s.push_str(&format!(", {} path bindings", rule.bind.len()));
            }
            s
        }
    }
}
