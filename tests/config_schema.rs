//! The published JSON Schema of the configuration (`examples/config.schema.json`) is generated
//! from the Rust types; this test fails when the two drift apart. `make schema` regenerates it.
//! It also checks that every example policy compiles.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg(feature = "schema")]

use std::path::PathBuf;

use api_guard::policy::config::{self, Config};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated() -> String {
    let mut schema = schemars::schema_for!(Config);
    schema.insert("$id".into(), "urn:api-guard:config-schema".into());
    schema.insert("title".into(), "api-guard configuration".into());
    serde_json::to_string_pretty(&schema).unwrap() + "\n"
}

#[test]
fn published_schema_matches_the_rust_types() {
    let path = root().join("examples/config.schema.json");
    let want = generated();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(have == want, "{} is stale: run `make schema` and commit it", path.display());
}

#[test]
fn schema_is_strict_where_the_parser_is() {
    let v: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    // Every object type in the schema refuses unknown properties, like the parser.
    let mut objects = 0;
    let mut stack = vec![&v];
    while let Some(node) = stack.pop() {
        if let Some(map) = node.as_object() {
            if map.get("type") == Some(&serde_json::json!("object")) && map.contains_key("properties") {
                objects += 1;
                assert_eq!(map.get("additionalProperties"), Some(&serde_json::json!(false)), "{node}");
            }
            stack.extend(map.values());
        } else if let Some(list) = node.as_array() {
            stack.extend(list.iter());
        }
    }
    assert!(objects >= 6, "only {objects} object types found");
    // Methods are an enum, not free strings.
    assert!(
        v["$defs"]["Method"]["enum"].as_array().is_some_and(|e| e.len() == 9),
        "{}",
        v["$defs"]["Method"]
    );
}

#[test]
fn example_policies_compile() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".json") && name != "config.schema.json" {
            let bytes = std::fs::read(&path).unwrap();
            config::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
    }
    assert!(n >= 1, "no example policies found");
}
