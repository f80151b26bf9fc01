//! Request bodies for a schema, for the tests that hold the one-pass body check to the tree
//! check: an instance drawn from the schema (most of them valid, some not: patterns and
//! cross-member rules are not solved), structural changes to it, and spellings of it.
#![allow(dead_code)]

use serde_json::{json, Map, Value};

#[path = "../support/rng.rs"]
mod rng;
pub use rng::Rng;

/// Follows `$ref`s inside `doc` (at most a few, so cycles end).
fn resolve<'d>(doc: &'d Value, mut s: &'d Value) -> &'d Value {
    for _ in 0..8 {
        let Some(r) = s.get("$ref").and_then(Value::as_str) else { break };
        match r.strip_prefix('#').and_then(|p| doc.pointer(&p.replace("%7B", "{").replace("%7D", "}"))) {
            Some(t) => s = t,
            None => break,
        }
    }
    s
}

fn string_for(s: &Value, rng: &mut Rng) -> Value {
    let sample = match s.get("format").and_then(Value::as_str) {
        Some("date-time") => "2024-05-01T12:00:00Z",
        Some("date") => "2024-05-01",
        Some("time") => "12:00:00Z",
        Some("email") => "a@example.com",
        Some("uuid") => "123e4567-e89b-12d3-a456-426614174000",
        Some("uri" | "url" | "iri") => "https://example.com/x",
        Some("uri-reference") => "/x",
        Some("ipv4") => "192.0.2.1",
        Some("ipv6") => "2001:db8::1",
        Some("hostname") => "example.com",
        Some("byte") => "aGVsbG8=",
        _ => "",
    };
    if !sample.is_empty() {
        return json!(sample);
    }
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = s.get("maxLength").and_then(Value::as_u64).map_or(min + 4, |m| m as usize);
    let len = (min + rng.below(4)).min(max.max(min)).min(64);
    json!("ab\u{e9}x".chars().cycle().take(len).collect::<String>())
}

fn number_for(s: &Value, integer: bool, rng: &mut Rng) -> Value {
    let lo = s.get("minimum").and_then(Value::as_f64).unwrap_or(0.0);
    let hi = s.get("maximum").and_then(Value::as_f64).unwrap_or(lo + 100.0);
    let mut n = lo + ((hi - lo).max(0.0) * (rng.below(100) as f64) / 100.0).floor();
    if s.get("exclusiveMinimum")
        .is_some_and(|e| e.as_bool() == Some(true) || e.as_f64().is_some_and(|m| n <= m))
    {
        n += 1.0;
    }
    if integer || rng.below(2) == 0 {
        if n >= 0.0 {
            json!(n as u64)
        } else {
            json!(n as i64)
        }
    } else {
        json!(n + 0.5)
    }
}

/// An instance of schema `s` of document `doc`.
pub fn generate(doc: &Value, s: &Value, rng: &mut Rng, depth: usize) -> Value {
    let s = resolve(doc, s);
    let Some(obj) = s.as_object() else {
        return json!(1);
    };
    if let Some(Value::Array(options)) = obj.get("enum") {
        if let Some(v) = options.get(rng.below(options.len().max(1))) {
            return v.clone();
        }
    }
    if let Some(c) = obj.get("const") {
        return c.clone();
    }
    if let Some(Value::Array(all)) = obj.get("allOf") {
        let mut merged = Map::new();
        let mut other = None;
        for branch in all {
            match generate(doc, branch, rng, depth + 1) {
                Value::Object(m) => merged.extend(m),
                v => other = other.or(Some(v)),
            }
        }
        let mut own = obj.clone();
        own.remove("allOf");
        if let Value::Object(m) = generate(doc, &Value::Object(own), rng, depth + 1) {
            merged.extend(m);
        }
        return if merged.is_empty() {
            other.unwrap_or(Value::Object(merged))
        } else {
            Value::Object(merged)
        };
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(options)) = obj.get(key) {
            if let Some(pick) = options.get(rng.below(options.len().max(1))) {
                return generate(doc, pick, rng, depth + 1);
            }
        }
    }
    if obj.get("nullable") == Some(&json!(true)) && rng.below(8) == 0 {
        return Value::Null;
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => {
            ts.get(rng.below(ts.len().max(1))).and_then(Value::as_str).unwrap_or("string")
        }
        _ if obj.contains_key("properties") => "object",
        _ if obj.contains_key("items") => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut m = Map::new();
            if depth > 6 {
                return Value::Object(m);
            }
            let required: Vec<&str> = obj
                .get("required")
                .and_then(Value::as_array)
                .map_or(vec![], |r| r.iter().filter_map(Value::as_str).collect());
            if let Some(Value::Object(props)) = obj.get("properties") {
                for (name, p) in props {
                    let p_res = resolve(doc, p);
                    if p_res.get("readOnly") == Some(&json!(true)) {
                        continue;
                    }
                    if required.contains(&name.as_str()) || rng.below(2) == 0 {
                        m.insert(name.clone(), generate(doc, p, rng, depth + 1));
                    }
                }
            }
            for r in required {
                m.entry(r.to_string()).or_insert_with(|| json!("x"));
            }
            if let Some(extra @ Value::Object(_)) = obj.get("additionalProperties") {
                if rng.below(2) == 0 {
                    m.insert("extra_member".into(), generate(doc, extra, rng, depth + 1));
                }
            }
            Value::Object(m)
        }
        "array" => {
            let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
            let n = if depth > 6 { min } else { min + rng.below(3) };
            let items = obj.get("items").cloned().unwrap_or(json!({}));
            Value::Array((0..n.min(8)).map(|_| generate(doc, &items, rng, depth + 1)).collect())
        }
        "integer" => number_for(s, true, rng),
        "number" => number_for(s, false, rng),
        "boolean" => json!(rng.below(2) == 0),
        "null" => Value::Null,
        _ => string_for(s, rng),
    }
}

/// A structural change to a JSON value: a member dropped, added or retyped, a scalar changed.
pub fn tweak(rng: &mut Rng, v: &mut Value, depth: usize) {
    let scalars = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(2.5),
        json!(1e300),
        json!(101),
        json!("x"),
        json!(""),
        json!("ABC-1234"),
        json!("cus_abcdefgh"),
        json!("GB"),
        json!("é\u{1F600}"),
        json!([]),
        json!({}),
    ];
    match v {
        Value::Object(m) if !m.is_empty() && (depth > 3 || rng.below(3) > 0) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let Some(k) = keys.get(rng.below(keys.len())).cloned() else { return };
            match rng.below(5) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    let names = ["id", "extra", "status", "note", "gift", "country", "tag", "name"];
                    let name = names.get(rng.below(names.len())).copied().unwrap_or("id");
                    m.insert(name.into(), scalars.get(rng.below(scalars.len())).cloned().unwrap_or_default());
                }
                _ => {
                    if let Some(child) = m.get_mut(&k) {
                        tweak(rng, child, depth + 1);
                    }
                }
            }
        }
        Value::Array(a) if !a.is_empty() && rng.below(4) > 0 => {
            let i = rng.below(a.len());
            match rng.below(4) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let copy = a.get(i).cloned().unwrap_or_default();
                    a.push(copy);
                }
                _ => {
                    if let Some(child) = a.get_mut(i) {
                        tweak(rng, child, depth + 1);
                    }
                }
            }
        }
        _ => *v = scalars.get(rng.below(scalars.len())).cloned().unwrap_or_default(),
    }
}

/// A byte-level change: JSON syntax broken or bent (escapes, whitespace, numbers).
pub fn bend(rng: &mut Rng, text: &mut Vec<u8>) {
    let pieces: [&[u8]; 12] =
        [b" ", b"\n", b",", b"}", b"]", b"\"", b"\\", b"\\u0041", b"-0", b"1e400", b"\xff", b"\\ud800"];
    let at = rng.below(text.len() + 1);
    let piece = pieces.get(rng.below(pieces.len())).copied().unwrap_or(b" ");
    match rng.below(3) {
        0 => {
            text.splice(at..at, piece.iter().copied());
        }
        1 if at < text.len() => {
            text.remove(at);
        }
        _ => {
            text.splice(at..(at + 1).min(text.len()), piece.iter().copied());
        }
    }
}

/// Every string escaped as `\uXXXX`, so the pass decodes what the tree parser decodes.
pub fn escaped(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let mut out = String::from("\"");
            for unit in s.encode_utf16() {
                out.push_str(&format!("\\u{unit:04x}"));
            }
            out.push('"');
            out
        }
        Value::Array(a) => format!("[{}]", a.iter().map(escaped).collect::<Vec<_>>().join(",")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}:{}", escaped(&json!(k)), escaped(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// The `i`-th body of a run over `seed`: changed structurally up to three times, written
/// compactly or escaped, and every fifth one bent at the byte level.
pub fn variant(rng: &mut Rng, seed: &Value, i: usize) -> Vec<u8> {
    let mut v = seed.clone();
    if i % 4 != 0 {
        for _ in 0..=rng.below(3) {
            tweak(rng, &mut v, 0);
        }
    }
    let mut text =
        if i % 2 == 0 { serde_json::to_vec(&v).unwrap_or_default() } else { escaped(&v).into_bytes() };
    if i % 5 == 0 {
        bend(rng, &mut text);
    }
    text
}
