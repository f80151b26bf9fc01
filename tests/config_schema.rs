//! The published JSON Schema of the configuration (`examples/config.schema.json`) is generated
//! from the Rust types; this test fails when the two drift apart. `make schema` regenerates it.
//! It also checks that every example policy compiles.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg(feature = "schema")]

use std::path::PathBuf;

use api_guard::policy::config::{self, Config};
use serde_json::{json, Map, Value};

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

/// The published schema rewritten as JSON Schema draft 4, which Kong requires for a filter's
/// `config_schema` (`kong-config/api_guard.meta.json`).
fn draft4(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, x) in map {
                match (k.as_str(), x) {
                    ("$schema", _) => {
                        out.insert(k.clone(), json!("http://json-schema.org/draft-04/schema#"));
                    }
                    ("$id", _) => {
                        out.insert("id".into(), x.clone());
                    }
                    ("$defs", Value::Object(defs)) => {
                        out.insert(
                            "definitions".into(),
                            Value::Object(defs.iter().map(|(n, d)| (n.clone(), draft4(d))).collect()),
                        );
                    }
                    ("$ref", Value::String(r)) => {
                        out.insert(k.clone(), json!(r.replace("#/$defs/", "#/definitions/")));
                    }
                    ("const", _) => {
                        out.insert("enum".into(), json!([x]));
                    }
                    ("exclusiveMinimum", Value::Number(n)) => {
                        out.insert("minimum".into(), Value::Number(n.clone()));
                        out.insert("exclusiveMinimum".into(), json!(true));
                    }
                    // Rust integer and float widths are not draft 4 formats.
                    ("format", Value::String(f))
                        if f.starts_with("uint") || f.starts_with("int") || f == "double" || f == "float" => {
                    }
                    ("properties" | "patternProperties", Value::Object(props)) => {
                        out.insert(
                            k.clone(),
                            Value::Object(props.iter().map(|(n, d)| (n.clone(), draft4(d))).collect()),
                        );
                    }
                    (_, Value::Bool(b))
                        if k != "additionalProperties"
                            && k != "uniqueItems"
                            && k != "default"
                            && k != "readOnly"
                            && k != "writeOnly"
                            && k != "deprecated" =>
                    {
                        // A boolean schema (`items: true`): draft 4 has none.
                        out.insert(k.clone(), if *b { json!({}) } else { json!({"not": {}}) });
                    }
                    _ => {
                        out.insert(k.clone(), draft4(x));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(list) => Value::Array(list.iter().map(draft4).collect()),
        other => other.clone(),
    }
}

fn kong_meta() -> String {
    let schema: Value = serde_json::from_str(&generated()).unwrap();
    serde_json::to_string_pretty(&json!({"config_schema": draft4(&schema)})).unwrap() + "\n"
}

#[test]
fn kong_meta_schema_matches_the_rust_types() {
    let path = root().join("kong-config/api_guard.meta.json");
    let want = kong_meta();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(have == want, "{} is stale: run `make schema` and commit it", path.display());
}

/// Kong validates a filter's `config` against the meta schema: the example policy and the
/// configs in kong-config/kong.yml pass, broken ones do not. (Checked with boon in draft 4
/// mode, the dialect Kong registers the schema under.)
#[test]
fn kong_meta_schema_accepts_good_configs_and_refuses_bad_ones() {
    let meta: Value = serde_json::from_str(&kong_meta()).unwrap();
    let mut compiler = boon::Compiler::new();
    compiler.set_default_draft(boon::Draft::V4);
    let mut schema = meta["config_schema"].clone();
    schema.as_object_mut().unwrap().remove("$schema");
    compiler.add_resource("urn:kong-meta", schema).unwrap();
    let mut schemas = boon::Schemas::new();
    let index = compiler.compile("urn:kong-meta", &mut schemas).unwrap_or_else(|e| panic!("{e:#}"));
    let valid = |v: &Value| schemas.validate(v, index).is_ok();

    let example: Value =
        serde_json::from_slice(&std::fs::read(root().join("examples/policy.json")).unwrap()).unwrap();
    assert!(valid(&example), "{:#}", schemas.validate(&example, index).unwrap_err());
    let kong = std::fs::read_to_string(root().join("kong-config/kong.yml")).unwrap();
    let mut configs = 0;
    let lines: Vec<&str> = kong.lines().collect();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.trim() == "config:") {
        // The JSON block (YAML accepts JSON) indented below `config:`.
        let indent = line.len() - line.trim_start().len();
        let text: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .copied()
            .collect();
        let text = text.join("\n");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("kong.yml config: {e}: {text}"));
        assert!(valid(&v), "kong.yml: {:#}", schemas.validate(&v, index).unwrap_err());
        config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("kong.yml: {e}"));
        configs += 1;
    }
    assert!(configs >= 3, "{configs} configs in kong.yml");
    for bad in [
        json!({"limits": {"max_body_bytez": 1}}),
        json!({"limits": {"max_body_bytes": "1k"}}),
        json!({"limits": {"allowed_methods": ["FETCH"]}}),
        json!({"response": {"oversize": "drop"}}),
        json!({"jwt": {"providers": {"a": {"issuer": "x"}}}}),
    ] {
        assert!(!valid(&bad), "the meta schema accepted {bad}");
        assert!(config::parse(bad.to_string().as_bytes()).is_err(), "the parser accepted {bad}");
    }
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
