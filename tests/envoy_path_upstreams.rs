//! The path-confusion corpus (`tests/fixtures/paths/confusion.txt`: the forms of the
//! path-confusion issue, Orange Tsai's "Breaking Parser Logic", Spring Security's
//! `StrictHttpFirewall` list, the Envoy and Istio normalisation bypasses) sent through the real
//! Envoy to real upstream frameworks, Flask (Werkzeug) and Express, with `/admin` denied and
//! `/public` public and no default deny. No form reaches a framework that serves it as
//! `/admin`, and none of the forwarded targets is `/admin` to the servlet, double-decoding,
//! Go and trimming models of `fuzz/targets.rs` either. Every legitimate form
//! (`legitimate.txt`) is admitted and served as public, in the normal form it was judged in.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;
#[path = "../fuzz/targets.rs"]
#[allow(unused)]
mod targets;

use std::process::Command;

use serde_json::{json, Value};
use support::{repo_root, start_helper, Client, Envoy, EnvoyOptions, Helper};

/// A framework's test application (`tests/upstreams/`), killed on drop.
struct App {
    name: &'static str,
    helper: Helper,
}

impl App {
    fn flask() -> App {
        let tools = repo_root().join(".tools/flask");
        assert!(tools.join("flask").is_dir(), "run `make path-upstreams` (installs Flask into .tools/flask)");
        let mut cmd = Command::new("python3");
        cmd.arg(repo_root().join("tests/upstreams/flask_app.py")).env("PYTHONPATH", tools);
        App { name: "flask", helper: start_helper("flask", &mut cmd, "") }
    }

    fn express() -> App {
        let dir = repo_root().join("tests/upstreams");
        assert!(dir.join("node_modules/express").is_dir(), "run `make path-upstreams` (npm express)");
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("express_app.mjs"));
        App { name: "express", helper: start_helper("express", &mut cmd, "") }
    }

    fn port(&self) -> u16 {
        self.helper.port
    }

    /// The request targets that reached the application, as they arrived.
    fn seen(&self) -> Vec<String> {
        let r = Client::new(self.port()).get("/__seen");
        serde_json::from_slice::<Vec<String>>(&r.body).unwrap()
    }
}

fn lines(file: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(repo_root().join("tests/fixtures/paths").join(file))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (target, source) = l.split_once('\t').unwrap_or((l, ""));
            (target.to_string(), source.to_string())
        })
        .collect()
}

fn policy(paths: Value) -> String {
    json!({
        "paths": paths,
        "routes": [
            {"name": "admin", "match": {"prefix": "/admin"}, "auth": {"type": "deny"}},
            {"name": "public", "match": {"prefix": "/public"}, "auth": {"type": "public"}}
        ]
    })
    .to_string()
}

/// What one run found: targets api-guard refused, Envoy refused, and the framework served.
#[derive(Default, Debug)]
struct Tally {
    guard: usize,
    envoy: usize,
    served: Vec<(String, String)>,
}

/// Sends the corpus through an Envoy in front of `app`; panics on any target a framework or
/// model serves as `/admin`, and on any legitimate target not served as public.
fn run(app: &App, paths: Value, hcm: Vec<&'static str>) -> Tally {
    let declared = |name: &str| paths[name].as_bool().unwrap_or(false);
    let (case_insensitive, format_suffix) = (declared("case_insensitive"), declared("format_suffix"));
    let views = |raw: &str| targets::folding_views(raw, case_insensitive, format_suffix);
    let opts = EnvoyOptions { hcm, ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&policy(paths.clone()), app.port(), opts).unwrap();
    let api = Client::new(envoy.port);
    let before = app.seen().len();
    let mut tally = Tally::default();
    for (target, source) in lines("confusion.txt") {
        let r = api.get(&target);
        let from_guard = r.header("content-type") == Some("application/problem+json");
        if from_guard {
            assert!(matches!(r.status, 400 | 403), "{target}: {} {}", r.status, r.text());
            tally.guard += 1;
            continue;
        }
        let Ok(answer) = serde_json::from_slice::<Value>(&r.body) else {
            // Envoy's own refusal (a raw space, a fragment): never forwarded.
            assert!(r.status >= 400, "{target}: {} {}", r.status, r.text());
            tally.envoy += 1;
            continue;
        };
        let served = answer["served"].as_str().unwrap_or("").to_string();
        let raw = answer["raw"].as_str().unwrap_or("").to_string();
        assert_ne!(
            served, "admin",
            "{} served {target:?} ({source}) as /admin, forwarded as {raw:?}, with paths {paths}",
            app.name
        );
        for view in views(&raw) {
            assert!(
                view != "/admin" && !view.starts_with("/admin/"),
                "{target:?} ({source}) was forwarded as {raw:?}, which an upstream model serves as {view:?}"
            );
        }
        tally.served.push((target, raw));
    }
    // What reached the framework is exactly what api-guard admitted.
    let seen = app.seen();
    let reached: Vec<&String> = seen.iter().skip(before).collect();
    let admitted: Vec<&String> = tally.served.iter().map(|(_, raw)| raw).collect();
    assert_eq!(reached, admitted, "{}: refused targets reached the upstream", app.name);

    for (target, what) in lines("legitimate.txt") {
        let r = api.get(&target);
        assert_eq!(r.status, 200, "{} refused legitimate {target:?} ({what}): {}", app.name, r.text());
        let answer = r.json();
        assert_eq!(answer["served"], "public", "{target:?} ({what}): {answer}");
        let (path, query) = api_guard::policy::path::split_target(&target);
        let normal = api_guard::policy::path::normalize(path).unwrap();
        let judged = if target.contains('?') { format!("{normal}?{query}") } else { normal };
        assert_eq!(answer["raw"], judged.as_str(), "{target:?}: forwarded in the form it was judged in");
    }
    println!("{} with paths {paths}: {tally:?}", app.name);
    tally
}

/// Werkzeug routes case-sensitively, without suffixes: the defaults hold with Envoy's defaults
/// and with the HCM settings the shipped configurations set.
#[test]
fn flask_never_serves_a_refused_form_as_admin() {
    let flask = App::flask();
    let t = run(&flask, json!({}), vec![]);
    assert!(t.guard > 40 && !t.served.is_empty(), "{t:?}");
    assert_eq!(t.guard + t.envoy + t.served.len(), lines("confusion.txt").len());
    run(&flask, json!({}), vec!["normalize_path: true", "merge_slashes: true"]);
    // Declaring a case-insensitive, suffix-routing upstream costs a strict one nothing legitimate.
    run(&flask, json!({"case_insensitive": true, "format_suffix": true}), vec![]);
}

/// Express routes case-insensitively by default: with `paths.case_insensitive` nothing it
/// serves as `/admin` gets through; without it, `/Admin/x` does (why the setting exists).
#[test]
fn express_never_serves_a_refused_form_as_admin_once_its_case_rule_is_declared() {
    let express = App::express();
    run(&express, json!({"case_insensitive": true}), vec![]);
    let envoy = Envoy::start(&policy(json!({})), express.port());
    let r = Client::new(envoy.port).get("/Admin/x");
    assert_eq!(
        (r.status, r.json()["served"].clone()),
        (200, json!("admin")),
        "undeclared, Express serves it"
    );
}
