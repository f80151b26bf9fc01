//! `api-guard check`: every policy a file holds, compiled for its host exactly as the module
//! compiles it (`policy::load::load`), errors and notes with the file's line numbers.

use api_guard::policy::capabilities::HostKind;
use api_guard::policy::config;
use api_guard::policy::jwt::ProviderKeys;
use api_guard::policy::load::{self, Level, Loaded};

use crate::source::{self, Embedded};
use crate::{usage, Exit};

/// Which host to check for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostChoice {
    /// The host the file is for, else the policy's `host.kind`, else Envoy (which the module
    /// detects by itself).
    Auto,
    /// This host.
    Named(HostKind),
}

/// `--host NAME` in the words users type.
pub fn host_choice(name: &str) -> Option<HostChoice> {
    Some(match name {
        "auto" => HostChoice::Auto,
        "envoy" | "istio" | "envoy-gateway" => HostChoice::Named(HostKind::Envoy),
        "kong" => HostChoice::Named(HostKind::Kong),
        "apisix" => HostChoice::Named(HostKind::Apisix),
        _ => return None,
    })
}

const USAGE: &str = "usage: api-guard check POLICY... [--host envoy|kong|apisix|auto]";

/// Runs `check` with its arguments.
pub fn run(args: &[String]) -> Exit {
    let mut files = Vec::new();
    let mut host = HostChoice::Auto;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--host" => match it.next().and_then(|h| host_choice(h)) {
                Some(h) => host = h,
                None => return usage(USAGE, "--host takes envoy, kong, apisix or auto"),
            },
            "-h" | "--help" => {
                println!("{USAGE}\n\nCompiles each policy as the module does on that host; exit 0 ok, 1 refused, 2 usage.");
                return Exit::Ok;
            }
            a if a.starts_with('-') => return usage(USAGE, &format!("unknown option `{a}`")),
            a => files.push(a.to_string()),
        }
    }
    if files.is_empty() {
        return usage(USAGE, "name a policy file");
    }
    let mut worst = Exit::Ok;
    for file in &files {
        match check_file(file, host) {
            Exit::Ok => {}
            Exit::Usage => return Exit::Usage,
            Exit::Refused => worst = Exit::Refused,
        }
    }
    worst
}

fn check_file(file: &str, choice: HostChoice) -> Exit {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("api-guard: cannot read {file}: {e}");
            return Exit::Usage;
        }
    };
    let found = match source::policies(&text) {
        Ok(found) => found,
        Err(e) => {
            println!("{file}:{}: error: not YAML or JSON: {}", e.line, e.message);
            return Exit::Refused;
        }
    };
    if found.is_empty() && source::registers_module(&text) {
        println!("{file}: ok: registers the api-guard module with APISIX; the policies are the routes' `plugins.api_guard.conf`");
        return Exit::Ok;
    }
    if found.is_empty() {
        println!("{file}: error: no api-guard policy found (an `envoy.filters.http.wasm` filter, a Kong `api_guard` filter or plugin, an APISIX `plugins.api_guard.conf`, or a policy itself)");
        return Exit::Refused;
    }
    let mut worst = Exit::Ok;
    for e in &found {
        let host = match (e.host, choice) {
            (Some(file_host), HostChoice::Named(h)) if h != file_host => {
                eprintln!(
                    "api-guard: {file} is an {} (for {}): --host {} does not apply to it",
                    source::kind_name(e.host),
                    file_host.name(),
                    h.name().to_lowercase()
                );
                return Exit::Usage;
            }
            (Some(h), _) | (None, HostChoice::Named(h)) => h,
            (None, HostChoice::Auto) => HostKind::Envoy,
        };
        if check_one(file, e, host, choice) == Exit::Refused {
            worst = Exit::Refused;
        }
    }
    worst
}

fn check_one(file: &str, e: &Embedded, host: HostKind, choice: HostChoice) -> Exit {
    let place = |path: &str, text_line: Option<usize>| match e.line(path, text_line) {
        Some(line) => format!("{file}:{line}"),
        None => file.to_string(),
    };
    let field = |path: &str| match (e.at.as_str(), path) {
        ("", p) => p.to_string(),
        (at, ".") => at.to_string(),
        (at, p) => format!("{at} → {p}"),
    };
    // Without `host.kind`, the module uses what it detects on that host.
    let loaded = match load::load(&e.bytes, || host.as_detected()) {
        Ok(l) => l,
        Err(err) => {
            println!("{}: error: {}: {}", place(&err.path, err.line), field(&err.path), err.message);
            let unnamed = config::parse_document(&e.bytes).is_ok_and(|d| d.host.kind.is_none());
            if unnamed && host.as_detected() != host {
                println!(
                    "{file}: note: the policy names no `host.kind`, and {} does not identify itself to the module, which then runs with the cautious profile of an unidentified host; set \"host\": {{\"kind\": \"{}\"}}",
                    host.name(),
                    host.name().to_lowercase()
                );
            }
            return Exit::Refused;
        }
    };
    let Loaded { policy, caps, notes } = &loaded;
    for n in notes {
        let level = match n.level {
            Level::Warn => "warning",
            Level::Info => "note",
        };
        println!("{}: {level}: {}: {}", place(&n.path, None), field(&n.path), n.message);
    }
    if caps.kind == HostKind::Unknown {
        println!(
            "{file}: warning: no `host.kind`: {} does not identify itself to the module, which then runs with the cautious profile of an unidentified host (no timers, no shared data, no body rewrites); set \"host\": {{\"kind\": \"{}\"}}",
            host.name(),
            host.name().to_lowercase()
        );
    } else if caps.kind != host {
        // host.kind decides the profile, whatever the host.
        println!(
            "{}: note: {}: the policy names {}, so the module uses that profile on any host",
            place("host.kind", None),
            field("host.kind"),
            caps.kind.name()
        );
    } else if e.host.is_none() && choice == HostChoice::Auto && !e.bytes.is_empty() {
        println!(
            "{file}: note: no `host.kind`: checked for Envoy, which the module recognises itself; on Kong or APISIX set `host.kind` (without it the module there runs with the cautious profile of an unidentified host)"
        );
    }
    if caps.clusters {
        for p in policy.jwt.iter().flat_map(|j| j.providers.iter()) {
            let ProviderKeys::Remote(spec) = &p.keys else { continue };
            let cluster = spec.cluster.as_deref().unwrap_or(&spec.host_port);
            let path = format!("jwt.providers.{}.remote_jwks.http_uri.cluster", p.name);
            match &e.clusters {
                Some(defined) if defined.iter().any(|c| c == cluster) => {}
                Some(_) => println!(
                    "{}: warning: {}: this file defines no cluster `{cluster}` (static_resources.clusters): key-set fetches fail, and tokens of `{}` get 503, unless a cluster of that name comes from CDS",
                    place(&path, None),
                    field(&path),
                    p.name
                ),
                None => println!(
                    "{}: note: {}: the Envoy that loads this policy must define the cluster `{cluster}` (a running one lists its clusters at its admin /clusters; `api-guard render envoy` writes one)",
                    place(&path, None),
                    field(&path)
                ),
            }
        }
    }
    if e.stats_tags == Some(false) {
        println!(
            "{file}: note: the bootstrap's stats_config lacks api-guard's stats_tags: its metrics keep their labels in their names (`api-guard render envoy` writes the rules; README, Metrics and logs)"
        );
    }
    let at = if e.at.is_empty() { String::new() } else { format!(" {}:", e.at) };
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    // Without a document, the smaller module serves the policy as well (README, Two builds).
    let api = match &policy.api {
        Some(a) => count(a.operations.len(), "documented operation"),
        None => "no OpenAPI document: the lean module loads it too".to_string(),
    };
    println!(
        "{}:{at} ok for {} ({}, {api})",
        place(".", None),
        caps.kind.name(),
        count(policy.routes.len(), "route")
    );
    Exit::Ok
}
