//! JSON Schema validation through `boon`, set up the way OpenAPI needs it.
//!
//! - OpenAPI 3.1 schemas are JSON Schema 2020-12; OpenAPI 3.0 schemas are a draft 4 dialect
//!   plus `nullable`, which [`normalize_30`] rewrites into draft 4 (`type: [t, "null"]`).
//! - The whole document is one schema resource, so `#/components/...` references resolve as
//!   written; nothing outside it is ever loaded.
//! - Formats are asserted (a request validator that ignores `format: uuid` surprises users),
//!   including OpenAPI's `int32`, `int64` and `byte`.
//! - Errors become `{pointer, keyword, message}` entries whose messages describe the rule,
//!   never the value sent (so `writeOnly` and `format: password` values are never echoed).

use std::error::Error;

use boon::{Compiler, Draft, ErrorKind, Format, SchemaIndex, Schemas, UrlLoader, ValidationError};
use serde_json::Value;

use crate::policy::denial::ProblemError;
use crate::policy::json::pointer_token;

/// The resource URL the document is registered under (never fetched).
pub const DOC_URL: &str = "urn:api-guard:openapi";

/// Which JSON Schema dialect the document's schemas use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAPI 3.0: draft 4 with `nullable`.
    Oas30,
    /// OpenAPI 3.1: JSON Schema 2020-12.
    Oas31,
}

struct NoRemote;

impl UrlLoader for NoRemote {
    fn load(&self, url: &str) -> Result<Value, Box<dyn Error>> {
        Err(format!("references outside the document are not supported ({url})").into())
    }
}

fn int_format(v: &Value, lo: i64, hi: i64) -> Result<(), Box<dyn Error>> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) if (lo..=hi).contains(&i) => Ok(()),
            // Non-integers are the `type` keyword's business; out-of-range integers are ours.
            None if n.is_f64() => Ok(()),
            _ => Err("out of range".into()),
        },
        _ => Ok(()),
    }
}

fn byte_format(v: &Value) -> Result<(), Box<dyn Error>> {
    use base64::Engine;
    match v {
        Value::String(s) => {
            base64::engine::general_purpose::STANDARD.decode(s).map(|_| ()).map_err(|_| "not base64".into())
        }
        _ => Ok(()),
    }
}

/// Names one schema of a [`SchemaSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaId(usize);

/// The document's schemas, named by JSON pointers into the document. A set made with
/// [`SchemaSet::deferred`] only records the pointers while the rest of the document is read;
/// [`SchemaSet::finish`] then hands the document itself to the validator (no copy of it exists
/// at any time), compiles every recorded schema and drops the compiler with the document: the
/// compiled schemas keep what they check on their own.
pub struct SchemaSet {
    compiler: Option<Compiler>,
    dialect: Dialect,
    /// Pointers recorded before [`SchemaSet::finish`], in [`SchemaId`] order.
    pending: Vec<String>,
    /// [`SchemaId`] → compiled schema.
    slots: Vec<SchemaIndex>,
    /// The compiled schemas.
    pub schemas: Schemas,
}

impl std::fmt::Debug for SchemaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SchemaSet({} schemas)", self.schemas.size())
    }
}

fn compiler_for(doc: Value, dialect: Dialect) -> Result<Compiler, String> {
    let mut compiler = Compiler::new();
    compiler.set_default_draft(match dialect {
        Dialect::Oas30 => Draft::V4,
        Dialect::Oas31 => Draft::V2020_12,
    });
    compiler.enable_format_assertions();
    compiler.use_loader(Box::new(NoRemote));
    compiler
        .register_format(Format { name: "int32", func: |v| int_format(v, i32::MIN.into(), i32::MAX.into()) });
    compiler.register_format(Format { name: "int64", func: |v| int_format(v, i64::MIN, i64::MAX) });
    compiler.register_format(Format { name: "byte", func: byte_format });
    compiler.add_resource(DOC_URL, doc).map_err(|e| e.to_string())?;
    Ok(compiler)
}

fn location(pointer: &str) -> String {
    format!("{DOC_URL}#{}", encode_fragment(pointer))
}

impl SchemaSet {
    /// A set over the (already normalised) document that compiles each schema when it is
    /// named.
    pub fn new(doc: Value, dialect: Dialect) -> Result<SchemaSet, String> {
        let compiler = compiler_for(doc, dialect)?;
        Ok(SchemaSet {
            compiler: Some(compiler),
            dialect,
            pending: Vec::new(),
            slots: Vec::new(),
            schemas: Schemas::new(),
        })
    }

    /// A set that records the schemas named until [`SchemaSet::finish`] gives it the document.
    pub fn deferred(dialect: Dialect) -> SchemaSet {
        SchemaSet { compiler: None, dialect, pending: Vec::new(), slots: Vec::new(), schemas: Schemas::new() }
    }

    /// Names the schema at `pointer` (an RFC 6901 pointer into the document): compiled now,
    /// or, in a deferred set, by [`SchemaSet::finish`].
    pub fn compile(&mut self, pointer: &str) -> Result<SchemaId, String> {
        match self.compiler.as_mut() {
            Some(compiler) => {
                let index = compiler
                    .compile(&location(pointer), &mut self.schemas)
                    .map_err(|e| describe_compile_error(&e))?;
                self.slots.push(index);
                Ok(SchemaId(self.slots.len() - 1))
            }
            None => {
                self.pending.push(pointer.to_string());
                Ok(SchemaId(self.pending.len() - 1))
            }
        }
    }

    /// Compiles every schema a deferred set recorded, from `doc`, which it consumes. An error
    /// names the pointer of the schema at fault.
    pub fn finish(&mut self, doc: Value) -> Result<(), (String, String)> {
        let mut compiler = compiler_for(doc, self.dialect).map_err(|e| (String::new(), e))?;
        for pointer in std::mem::take(&mut self.pending) {
            let index = compiler
                .compile(&location(&pointer), &mut self.schemas)
                .map_err(|e| (pointer.clone(), describe_compile_error(&e)))?;
            self.slots.push(index);
        }
        self.compiler = None;
        Ok(())
    }

    /// The validator's index of schema `id`, for [`super::quick`] (`None`: not compiled).
    pub fn index(&self, id: SchemaId) -> Option<SchemaIndex> {
        self.slots.get(id.0).copied().filter(|i| self.schemas.contains(*i))
    }

    /// Validates `value`; failures are appended to `out` (at most `max` entries in all), with
    /// pointers under `prefix`.
    pub fn validate(
        &self,
        id: SchemaId,
        value: &Value,
        prefix: &str,
        max: usize,
        out: &mut Vec<ProblemError>,
    ) {
        let Some(&index) = self.slots.get(id.0).filter(|i| self.schemas.contains(**i)) else {
            out.push(ProblemError {
                pointer: prefix.to_string(),
                keyword: "schema".into(),
                message: "no schema".into(),
            });
            return;
        };
        if let Err(e) = self.schemas.validate(value, index) {
            collect(&e, prefix, max, out);
        }
    }
}

/// Percent-encodes what a URL fragment cannot hold as is.
fn encode_fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for b in pointer.bytes() {
        if b.is_ascii_alphanumeric() || b"/~-._!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn describe_compile_error(e: &boon::CompileError) -> String {
    // The error names the schema URL; show it as a pointer into the document. For a schema
    // the metaschema refuses, say where inside it and which keyword.
    let text = match e {
        boon::CompileError::ValidationError { src, .. } => {
            let mut leaves = Vec::new();
            collect(src, "", 3, &mut leaves);
            let what: Vec<String> =
                leaves.iter().map(|l| format!("at '{}': {} ({})", l.pointer, l.message, l.keyword)).collect();
            format!("is not a valid schema: {}", what.join("; "))
        }
        other => other.to_string(),
    };
    text.replace(&format!("{DOC_URL}#"), "#")
}

/// The document as request validation sees it. OpenAPI gives `required` a direction: a
/// `readOnly` property listed in `required` is required in responses only, and a `writeOnly`
/// one in requests only (3.0.3 Schema Object, `readOnly`/`writeOnly`; 3.1 keeps the rule).
/// Schemas are only validated against requests here, so every `required` list loses the
/// names whose property is `readOnly` (declared in the same object, or in an `allOf` branch
/// it builds on). Sending such a member is still refused, by the shape check (mass assignment).
pub fn request_view(doc: &mut Value) {
    let mut edits: Vec<(String, Vec<String>)> = Vec::new();
    collect_read_only_required(doc, doc, &mut String::new(), &mut edits);
    for (pointer, names) in edits {
        let Some(Value::Object(schema)) = doc.pointer_mut(&pointer) else { continue };
        if let Some(Value::Array(list)) = schema.get_mut("required") {
            list.retain(|n| !n.as_str().is_some_and(|n| names.iter().any(|x| x == n)));
            // An empty list is no requirement, and draft 4 refuses one.
            if list.is_empty() {
                schema.remove("required");
            }
        }
    }
}

fn collect_read_only_required<'a>(
    doc: &'a Value,
    v: &'a Value,
    at: &mut String,
    out: &mut Vec<(String, Vec<String>)>,
) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(required)) = map.get("required") {
                let read_only = |name: &str| {
                    let declares = |schema: &Value| {
                        schema
                            .get("properties")
                            .and_then(|p| p.get(name))
                            .is_some_and(|p| super::shape::has_flag(doc, p, "readOnly"))
                    };
                    // A branch, through its reference (borrowed: this runs over every schema).
                    let resolve = |s: &'a Value| -> Option<&'a Value> {
                        match s.get("$ref").and_then(Value::as_str) {
                            Some(r) => super::shape::resolve_ref(doc, r).map(|(t, _)| t),
                            None => Some(s),
                        }
                    };
                    declares(v)
                        || map
                            .get("allOf")
                            .and_then(Value::as_array)
                            .is_some_and(|branches| branches.iter().filter_map(resolve).any(declares))
                };
                let names: Vec<String> = required
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|n| read_only(n))
                    .map(str::to_string)
                    .collect();
                if !names.is_empty() {
                    out.push((at.clone(), names));
                }
            }
            for (k, child) in map {
                let len = at.len();
                at.push('/');
                at.push_str(&pointer_token(k));
                collect_read_only_required(doc, child, at, out);
                at.truncate(len);
            }
        }
        Value::Array(list) => {
            for (i, child) in list.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                collect_read_only_required(doc, child, at, out);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// Rewrites OpenAPI 3.0 `nullable: true` into draft 4: `type: t` becomes `type: [t, "null"]`
/// (and a `null` is added to an `enum`, as OpenAPI 3.0.3 intends). Two slips real documents
/// make, which the draft 4 metaschema refuses but which mean nothing, are mended the same
/// way: an empty `required` list (draft 4 wants at least one name; no name means none is
/// required) is dropped, and an `enum` listing a value twice lists it once.
pub fn normalize_30(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("required").is_some_and(|r| r.as_array().is_some_and(Vec::is_empty)) {
                map.remove("required");
            }
            if let Some(Value::Array(list)) = map.get_mut("enum") {
                let mut seen: Vec<Value> = Vec::with_capacity(list.len());
                list.retain(|x| {
                    let new = !seen.contains(x);
                    if new {
                        seen.push(x.clone());
                    }
                    new
                });
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert(
                        "type".into(),
                        Value::Array(vec![Value::String(t), Value::String("null".into())]),
                    );
                }
                if let Some(Value::Array(list)) = map.get_mut("enum") {
                    if !list.contains(&Value::Null) {
                        list.push(Value::Null);
                    }
                }
            }
            for child in map.values_mut() {
                normalize_30(child);
            }
        }
        Value::Array(list) => list.iter_mut().for_each(normalize_30),
        _ => {}
    }
}

fn push(out: &mut Vec<ProblemError>, max: usize, pointer: String, keyword: &str, message: String) {
    if out.len() < max {
        out.push(ProblemError { pointer, keyword: keyword.to_string(), message });
    }
}

fn num(n: &serde_json::Number) -> String {
    n.to_string()
}

/// Flattens a validation error tree into entries, leaves first. `anyOf`/`oneOf` failures are
/// reported once at their place: listing every branch's complaints helps nobody.
fn collect(e: &ValidationError<'_, '_>, prefix: &str, max: usize, out: &mut Vec<ProblemError>) {
    if out.len() >= max {
        return;
    }
    let at = format!("{prefix}{}", e.instance_location);
    let (keyword, message): (&str, String) = match &e.kind {
        ErrorKind::Group | ErrorKind::Schema { .. } | ErrorKind::Reference { .. } | ErrorKind::AllOf => {
            for c in &e.causes {
                collect(c, prefix, max, out);
            }
            return;
        }
        ErrorKind::Required { want } => {
            for name in want {
                push(out, max, format!("{at}/{}", pointer_token(name)), "required", "is required".into());
            }
            return;
        }
        ErrorKind::AdditionalProperties { got } => {
            for name in got {
                push(
                    out,
                    max,
                    format!("{at}/{}", pointer_token(name)),
                    "additionalProperties",
                    "is not a documented property".into(),
                );
            }
            return;
        }
        ErrorKind::Type { want, .. } => {
            let names: Vec<String> = want.iter().map(|t| t.to_string()).collect();
            ("type", format!("must be of type {}", names.join(" or ")))
        }
        ErrorKind::Enum { want } => {
            let shown: Vec<String> = want.iter().take(10).map(|v| v.to_string()).collect();
            if want.len() <= 10 && want.iter().all(|v| !v.is_object() && !v.is_array()) {
                ("enum", format!("must be one of {}", shown.join(", ")))
            } else {
                ("enum", "must be one of the documented values".into())
            }
        }
        ErrorKind::Const { .. } => ("const", "must equal the documented constant".into()),
        ErrorKind::Format { want, .. } => ("format", format!("must be a valid {want}")),
        ErrorKind::MinProperties { want, .. } => {
            ("minProperties", format!("must have at least {want} properties"))
        }
        ErrorKind::MaxProperties { want, .. } => {
            ("maxProperties", format!("must have at most {want} properties"))
        }
        ErrorKind::Dependency { missing, .. } | ErrorKind::DependentRequired { missing, .. } => {
            ("dependentRequired", format!("also requires {}", missing.join(", ")))
        }
        ErrorKind::MinItems { want, .. } => ("minItems", format!("must have at least {want} items")),
        ErrorKind::MaxItems { want, .. } => ("maxItems", format!("must have at most {want} items")),
        ErrorKind::Contains | ErrorKind::MinContains { .. } | ErrorKind::MaxContains { .. } => {
            ("contains", "must contain the documented number of matching items".into())
        }
        ErrorKind::UniqueItems { .. } => ("uniqueItems", "items must be unique".into()),
        ErrorKind::AdditionalItems { .. } => ("additionalItems", "has more items than documented".into()),
        ErrorKind::MinLength { want, .. } => {
            ("minLength", format!("must be at least {want} characters long"))
        }
        ErrorKind::MaxLength { want, .. } => ("maxLength", format!("must be at most {want} characters long")),
        ErrorKind::Pattern { want, .. } => ("pattern", format!("must match the pattern {want}")),
        ErrorKind::Minimum { want, .. } => ("minimum", format!("must be at least {}", num(want))),
        ErrorKind::Maximum { want, .. } => ("maximum", format!("must be at most {}", num(want))),
        ErrorKind::ExclusiveMinimum { want, .. } => {
            ("exclusiveMinimum", format!("must be greater than {}", num(want)))
        }
        ErrorKind::ExclusiveMaximum { want, .. } => {
            ("exclusiveMaximum", format!("must be less than {}", num(want)))
        }
        ErrorKind::MultipleOf { want, .. } => ("multipleOf", format!("must be a multiple of {}", num(want))),
        ErrorKind::Not => ("not", "must not match the excluded schema".into()),
        ErrorKind::AnyOf => ("anyOf", "must match at least one of the documented alternatives".into()),
        ErrorKind::OneOf(_) => ("oneOf", "must match exactly one of the documented alternatives".into()),
        ErrorKind::FalseSchema => ("false", "is not allowed here".into()),
        ErrorKind::PropertyName { .. } => ("propertyNames", "has a property name that is not allowed".into()),
        ErrorKind::ContentEncoding { .. } | ErrorKind::ContentMediaType { .. } | ErrorKind::ContentSchema => {
            ("content", "has content that does not match its documented encoding".into())
        }
        ErrorKind::RefCycle { .. } => {
            ("$ref", "cannot be checked: the schema references itself in a cycle".into())
        }
    };
    push(out, max, at, keyword, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(doc: Value, dialect: Dialect) -> SchemaSet {
        SchemaSet::new(doc, dialect).unwrap()
    }

    /// (valid?) for each value against `{"pattern": p}` (and `patternProperties`).
    fn matches(p: &str, values: &[&str]) -> Vec<bool> {
        let doc = json!({"s": {"type": "string", "pattern": p},
                         "o": {"type": "object", "patternProperties": {p: {"type": "integer"}}}});
        let mut s = set(doc, Dialect::Oas31);
        let (i, o) = (s.compile("/s").unwrap(), s.compile("/o").unwrap());
        values
            .iter()
            .map(|v| {
                let mut out = Vec::new();
                s.validate(i, &json!(v), "", 10, &mut out);
                // A member whose name matches must be an integer.
                let mut named = Vec::new();
                s.validate(o, &json!({*v: "x"}), "", 10, &mut named);
                assert_eq!(
                    out.is_empty(),
                    !named.is_empty(),
                    "pattern and patternProperties disagree on {v:?}"
                );
                out.is_empty()
            })
            .collect()
    }

    #[test]
    fn patterns_are_ecma_262() {
        // Lookahead, as real documents write it.
        assert_eq!(matches("^(?!-)[a-z-]{1,8}$", &["ab-c", "-ab", "abcdefghi"]), [true, false, false]);
        // Lookbehind and back-references.
        assert_eq!(matches("(?<=\\$)[0-9]+", &["$12", "12"]), [true, false]);
        assert_eq!(matches("^(a|b)\\1$", &["aa", "ab"]), [true, false]);
        // ECMA `\\d` and `\\w` are ASCII only; `\\p{L}` needs the `u` flag, which applies.
        assert_eq!(matches("^\\d+$", &["42", "٤٢"]), [true, false]);
        assert_eq!(matches("^\\p{L}+$", &["ключ", "k1"]), [true, false]);
        // Unicode property names by their long and short spellings (the pattern engine's name
        // tables): scripts, script extensions, general categories, binary properties.
        assert_eq!(matches("^\\p{Script=Greek}+$", &["αβ", "ab"]), [true, false]);
        assert_eq!(matches("^\\p{sc=Cyrl}+$", &["ключ", "key"]), [true, false]);
        assert_eq!(matches("^\\p{scx=Hira}$", &["ー", "a"]), [true, false]);
        assert_eq!(matches("^\\p{General_Category=Uppercase_Letter}$", &["Ä", "ä"]), [true, false]);
        assert_eq!(matches("^\\p{Nd}$", &["٤", "x"]), [true, false]);
        assert_eq!(matches("^\\p{ASCII_Hex_Digit}+$", &["c0ffee", "coffee"]), [true, false]);
        assert_eq!(matches("^\\P{Alphabetic}$", &["1", "z"]), [true, false]);
        // Annex B syntax a browser accepts without `u` (a class escape before `-`) compiles.
        assert_eq!(matches("^[\\w-.]+$", &["a-b.c", "a b"]), [true, false]);
        // Not anchored unless the pattern says so (`RegExp.prototype.test`).
        assert_eq!(matches("b", &["abc"]), [true]);
    }

    #[test]
    fn invalid_patterns_are_load_errors() {
        for p in ["(", "[z-a]", "a{2,1}", "\\p{Nope}("] {
            let doc = json!({"s": {"type": "string", "pattern": p}});
            let mut s = set(doc, Dialect::Oas31);
            let e = s.compile("/s").unwrap_err();
            assert!(e.contains("pattern"), "{p}: {e}");
        }
    }

    /// A pattern that backtracks exponentially (`(a+)+$` on `aaa…a!`) gives up within its
    /// bound (linear in the string's length) and the value is refused, instead of spinning for
    /// 2^40 steps; ordinary values still match.
    #[test]
    fn a_catastrophic_pattern_is_bounded_and_fails_closed() {
        let evil = format!("{}!", "a".repeat(40));
        assert_eq!(matches("^(a+)+$", &[&evil, "aaaa"]), [false, true]);
        let doc = json!({"s": {"type": "array", "items": {"type": "string", "pattern": "^(a+)+$"}}});
        let mut s = set(doc, Dialect::Oas31);
        let i = s.compile("/s").unwrap();
        // Many such values in one body: each bounded, each refused.
        let mut out = Vec::new();
        s.validate(i, &json!(vec![evil.clone(); 50]), "", 100, &mut out);
        assert!(!out.is_empty());
        let mut ok = Vec::new();
        // A pattern that backtracks once per character stays well within the bound.
        s.validate(i, &json!(["aaa", "a", "a".repeat(5000)]), "", 10, &mut ok);
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn resolves_references_and_reports_without_values() {
        let doc = json!({
            "components": {"schemas": {
                "Pet": {"type": "object", "required": ["name", "id"],
                        "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"},
                                       "secret": {"type": "string", "format": "password", "minLength": 12},
                                       "tag": {"$ref": "#/components/schemas/Tag"},
                                       "n": {"type": "integer", "format": "int32"}}},
                "Tag": {"type": "string", "format": "uuid"}}},
            "wrap": {"$ref": "#/components/schemas/Pet"}
        });
        let mut s = set(doc, Dialect::Oas31);
        let i = s.compile("/wrap").unwrap();
        let mut out = Vec::new();
        let bad = json!({"name": "AB", "tag": "nope", "secret": "hunter2", "n": 3_000_000_000_i64});
        s.validate(i, &bad, "/body", 10, &mut out);
        let got: Vec<(&str, &str)> = out.iter().map(|e| (e.pointer.as_str(), e.keyword.as_str())).collect();
        for want in [
            ("/body/id", "required"),
            ("/body/name", "pattern"),
            ("/body/tag", "format"),
            ("/body/secret", "minLength"),
            ("/body/n", "format"),
        ] {
            assert!(got.contains(&want), "{want:?} not in {got:?}");
        }
        for e in &out {
            assert!(
                !e.message.contains("hunter2") && !e.message.contains("nope") && !e.message.contains("AB"),
                "{e:?}"
            );
        }
        let mut few = Vec::new();
        s.validate(i, &bad, "/body", 2, &mut few);
        assert_eq!(few.len(), 2);
        let mut none = Vec::new();
        s.validate(i, &json!({"name": "ok", "id": 1}), "/body", 10, &mut none);
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn openapi_30_nullable_becomes_draft4() {
        let mut doc =
            json!({"s": {"type": "string", "nullable": true, "enum": ["a"]}, "t": {"type": "string"}});
        normalize_30(&mut doc);
        let mut s = set(doc, Dialect::Oas30);
        let i = s.compile("/s").unwrap();
        let t = s.compile("/t").unwrap();
        let check = |idx, v: Value| {
            let mut out = Vec::new();
            s.validate(idx, &v, "", 10, &mut out);
            out.is_empty()
        };
        assert!(check(i, Value::Null));
        assert!(check(i, json!("a")));
        assert!(!check(i, json!("b")));
        assert!(!check(t, Value::Null));
    }

    #[test]
    fn outside_references_and_bad_schemas_are_compile_errors() {
        let mut s =
            set(json!({"a": {"$ref": "https://example.com/x.json"}, "b": {"type": 5}}), Dialect::Oas31);
        assert!(s.compile("/a").is_err());
        let e = s.compile("/b").unwrap_err();
        assert!(e.contains("/type"), "{e}");
    }
}
