//! The one-pass body check (`policy::openapi::quick`) held to the tree check it stands in
//! for: it may only ever say "valid" where the tree check (serde_json, then the JSON Schema
//! validator and the shape walk) finds the body valid. Run over every schema and instance of
//! the JSON Schema Test Suite (draft 2020-12 and draft 4, each instance written compactly,
//! pretty and with every string escaped), and over mutations of the example API's order and
//! of the petstore's pet. Each run also counts how many valid bodies the pass decided on its
//! own, and fails if that falls: a pass that is never sure would be correct and useless.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod bodygen;

use api_guard::policy::authz::NoState;
use api_guard::policy::openapi::quick::Quick;
use api_guard::policy::openapi::schema::{Dialect, SchemaSet};
use api_guard::policy::{config, BodyPlan, Policy, RequestHead};
use bodygen::{escaped, variant, Rng};
use serde_json::{json, Value};

#[derive(Default)]
struct Tally {
    /// Instances the validator finds valid.
    valid: usize,
    /// Of those, the ones the pass decided on its own.
    decided: usize,
    /// The pass said "valid" where the validator did not.
    wrong: Vec<String>,
}

fn suite(draft: &str, dialect: Dialect, tally: &mut Tally) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/json-schema-test-suite/tests")
        .join(draft);
    // The required tests and the optional ones (formats, the ECMA-262 dialect), every file.
    let mut files = Vec::new();
    let mut dirs = vec![dir];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    for path in files {
        let groups: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for group in groups.as_array().unwrap() {
            let mut set = SchemaSet::deferred(dialect);
            let Ok(id) = set.compile("") else { continue };
            if set.finish(group["schema"].clone()).is_err() {
                continue;
            }
            for test in group["tests"].as_array().unwrap() {
                let data = &test["data"];
                let mut errors = Vec::new();
                set.validate(id, data, "", 100, &mut errors);
                let valid = errors.is_empty();
                let quick = Quick::new(&set, Some(id), None);
                let texts = [
                    serde_json::to_string(data).unwrap(),
                    serde_json::to_string_pretty(data).unwrap(),
                    escaped(data),
                ];
                let said: Vec<bool> = texts.iter().map(|t| quick.valid(t.as_bytes())).collect();
                for (t, s) in texts.iter().zip(&said) {
                    if *s && !valid {
                        tally.wrong.push(format!(
                            "{draft}/{file} / {} / {}: {t}",
                            group["description"].as_str().unwrap_or(""),
                            test["description"].as_str().unwrap_or("")
                        ));
                    }
                }
                if valid {
                    tally.valid += 1;
                    tally.decided += usize::from(said[0]);
                }
            }
        }
    }
}

#[test]
fn the_pass_never_finds_valid_what_the_validator_refuses_in_the_schema_suite() {
    let mut t2020 = Tally::default();
    suite("draft2020-12", Dialect::Oas31, &mut t2020);
    let mut t4 = Tally::default();
    suite("draft4", Dialect::Oas30, &mut t4);
    for (name, t) in [("draft2020-12", &t2020), ("draft4", &t4)] {
        println!("{name}: {} valid instances, {} decided by the one-pass check", t.valid, t.decided);
        assert!(
            t.wrong.is_empty(),
            "{name}: the pass accepted what the validator refuses:\n{}",
            t.wrong.join("\n")
        );
    }
    // Most of the suite exercises keywords the pass hands on; the plain ones it must decide.
    assert!(t2020.decided > 300 && t4.decided > 150, "{} / {}", t2020.decided, t4.decided);
}

/// A policy over `doc` and the body target of `method path` with a JSON body.
fn target(doc: Value, method: &str, path: &str) -> (Policy, api_guard::policy::body::BodyTarget) {
    let cfg = json!({"openapi": {"document": doc, "reject_unknown_fields": true}});
    let policy = config::parse(cfg.to_string().as_bytes()).unwrap();
    let headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("content-length".into(), b"10".to_vec()),
    ];
    let plan = policy
        .check_head(&RequestHead { headers: &headers, end_of_stream: None }, &NoState, 0)
        .outcome
        .unwrap();
    let BodyPlan::Check(c) = plan.body else { panic!("no body plan") };
    let t = c.validate.unwrap();
    (policy, t)
}

fn mutations(
    policy: &Policy,
    t: api_guard::policy::body::BodyTarget,
    seed: &Value,
    rounds: usize,
    rng_seed: u64,
) -> (usize, usize, usize) {
    let mut rng = Rng::new(rng_seed);
    let (mut valid, mut decided, mut refused) = (0, 0, 0);
    for i in 0..rounds {
        let text = variant(&mut rng, seed, i);
        let (quick, tree) = (policy.check_body_quick(t, &text), policy.check_body_tree(t, &text));
        assert!(
            !quick || tree.is_ok(),
            "the pass accepted a body the tree check refuses: {}\n{tree:?}",
            String::from_utf8_lossy(&text)
        );
        assert_eq!(policy.check_body(t, &text).is_ok(), tree.is_ok());
        if tree.is_ok() {
            valid += 1;
            decided += usize::from(quick);
        } else {
            refused += 1;
        }
    }
    (valid, decided, refused)
}

#[test]
fn the_pass_agrees_with_the_tree_check_on_mutated_orders_and_pets() {
    let example: Value = serde_json::from_slice(
        &std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/api/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    let order: Value = serde_json::from_slice(
        &std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/api/order.json"))
            .unwrap(),
    )
    .unwrap();
    let (policy, t) = target(example, "POST", "/api/orders");
    let (quick, tree) = (
        policy.check_body_quick(t, order.to_string().as_bytes()),
        policy.check_body_tree(t, order.to_string().as_bytes()),
    );
    assert!(quick && tree.is_ok(), "the example order: {quick} {tree:?}");
    let (valid, decided, refused) = mutations(&policy, t, &order, 20_000, 0x0bde);
    println!("orders: {valid} valid ({decided} decided by the pass), {refused} refused");
    assert!(refused > 5_000 && valid > 800, "{valid} {refused}");
    // The order's schema uses only keywords the pass follows: it decides every valid one.
    assert_eq!(decided, valid);

    let petstore: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi/petstore.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (policy, t) = target(petstore, "POST", "/v1/pets");
    let pet = json!({"name": "Rex", "status": "available", "tags": [{"label": "good-dog"}], "owner": {"email": "a@example.com"}});
    let (valid, decided, refused) = mutations(&policy, t, &pet, 20_000, 0x9e7);
    println!("pets: {valid} valid ({decided} decided by the pass), {refused} refused");
    assert!(refused > 2_000 && valid > 800, "{valid} {refused}");
}
