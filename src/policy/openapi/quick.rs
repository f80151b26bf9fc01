//! A JSON request body judged in one pass over its bytes, without building a tree.
//!
//! Parsing a body into a `serde_json::Value` (a map and a string allocation per member, a
//! keyed hash per name), validating the tree and dropping it cost several times what reading
//! the bytes does. Here the body is read once with [`Cursor`]; at each value the schemas that
//! apply are asked, through the validator's own compiled schemas (`boon::Schemas::quick_*`),
//! whether it can still be valid, and the object shapes whether each member may be sent.
//!
//! The answer is only ever "valid" or "not sure": a body that breaks a rule, is not JSON as
//! `serde_json` reads it, or meets a schema keyword this pass does not follow is handed to the
//! tree check ([`super::ApiSpec::check_body`]), which gives the verdict and its errors. So a
//! refusal always comes from the tree check, and a "valid" here must be one it would give
//! (`tests/quick_body.rs` holds the two to that on the JSON Schema Test Suite and on mutated
//! bodies).

use boon::{Scalar, SchemaIndex, Schemas, Type};
use serde_json::Number;

use super::schema::{SchemaId, SchemaSet};
use super::shape::Shapes;
use crate::policy::json_cursor::Cursor;

/// Nesting beyond which the pass gives up (below serde_json's limit, so never more lenient).
const MAX_DEPTH: usize = 100;

/// What one body is checked against.
pub struct Quick<'a> {
    /// The body's compiled schema, if it has one.
    pub schema: Option<(&'a Schemas, SchemaIndex)>,
    /// The shapes and the body's root shape, when walking them can refuse anything; with
    /// whether undeclared members are refused.
    pub shapes: Option<(&'a Shapes, usize, bool)>,
}

impl<'a> Quick<'a> {
    /// The check of a body with schema `id` of `set` and the shape `shape`.
    pub fn new(
        set: &'a SchemaSet,
        id: Option<SchemaId>,
        shapes: Option<(&'a Shapes, usize, bool)>,
    ) -> Quick<'a> {
        Quick { schema: id.and_then(|id| set.index(id)).map(|i| (&set.schemas, i)), shapes }
    }

    /// Whether `body` is certainly valid: JSON that `serde_json` reads, that the schema takes
    /// and whose members the shapes let through. `false` means not sure.
    pub fn valid(&self, body: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(body) else { return false };
        let mut w = Walk {
            c: Cursor::new(text),
            roots: Vec::new(),
            applying: Vec::new(),
            shape: Vec::new(),
            names: Vec::new(),
        };
        if let Some((_, root)) = self.schema {
            w.roots.push(root);
        }
        if let Some((_, root, _)) = self.shapes {
            w.shape.push(root);
        }
        w.c.ws();
        if !self.value(&mut w, 0, 0, 0) {
            return false;
        }
        w.c.ws();
        w.c.i == w.c.s.len()
    }

    /// One value: `w.roots[roots..]` are its schemas, `w.shape[shape..]` its shapes.
    fn value<'s>(&self, w: &mut Walk<'s>, roots: usize, shape: usize, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let schemas = self.schema.map(|(s, _)| s);
        match w.c.peek() {
            Some(b'{') => self.object(w, roots, shape, depth),
            Some(b'[') => self.array(w, roots, shape, depth),
            Some(b'"') => {
                let Ok(text) = w.c.string() else { return false };
                scalar(schemas, w, roots, Scalar::String(&text))
            }
            Some(b't') => w.c.literal(b"true").is_ok() && scalar(schemas, w, roots, Scalar::Bool(true)),
            Some(b'f') => w.c.literal(b"false").is_ok() && scalar(schemas, w, roots, Scalar::Bool(false)),
            Some(b'n') => w.c.literal(b"null").is_ok() && scalar(schemas, w, roots, Scalar::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = w.c.i;
                if w.c.number().is_err() {
                    return false;
                }
                let Some(n) = w.c.text.get(start..w.c.i).and_then(number) else { return false };
                scalar(schemas, w, roots, Scalar::Number(&n))
            }
            _ => false,
        }
    }

    /// Pushes the schemas that apply at a container of kind `kind` whose roots are
    /// `w.roots[roots..]` onto `w.applying`, and asks `own` of their own keywords. Returns
    /// where they start, or `None` when not sure.
    fn enter(
        &self,
        w: &mut Walk<'_>,
        roots: usize,
        kind: Type,
        own: fn(&Schemas, &[SchemaIndex]) -> bool,
    ) -> Option<usize> {
        let applying = w.applying.len();
        if let Some((schemas, _)) = self.schema {
            if !schemas.quick_expand(w.roots.get(roots..).unwrap_or(&[]), kind, &mut w.applying)
                || !own(schemas, w.applying.get(applying..).unwrap_or(&[]))
            {
                return None;
            }
        }
        Some(applying)
    }

    fn object<'s>(&self, w: &mut Walk<'s>, roots: usize, shape: usize, depth: usize) -> bool {
        let Some(applying) = self.enter(w, roots, Type::Object, Schemas::quick_object) else { return false };
        let names = w.names.len();
        let place = match (self.shapes, w.shape.len() > shape) {
            (Some((shapes, _, _)), true) => Some(shapes.place(&w.shape, shape)),
            _ => None,
        };
        w.c.i += 1;
        w.c.ws();
        if !w.c.eat(b'}') {
            loop {
                w.c.ws();
                let Ok(name) = w.c.string() else { return false };
                let (child_roots, child_shape) = (w.roots.len(), w.shape.len());
                if let Some((schemas, _)) = self.schema {
                    let here = w.applying.get(applying..).unwrap_or(&[]);
                    if !schemas.quick_member(here, &name, &mut w.roots) {
                        return false;
                    }
                }
                if let (Some((shapes, _, unknown)), Some(place)) = (self.shapes, &place) {
                    if !shapes.admit(place, &mut w.shape, &name, unknown) {
                        return false;
                    }
                }
                w.c.ws();
                if !w.c.eat(b':') {
                    return false;
                }
                w.c.ws();
                if !self.value(w, child_roots, child_shape, depth + 1) {
                    return false;
                }
                w.roots.truncate(child_roots);
                w.shape.truncate(child_shape);
                w.names.push(name);
                match w.c.more(b'}') {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => return false,
                }
            }
        }
        let ok = self.schema.is_none_or(|(schemas, _)| {
            schemas.quick_required(
                w.applying.get(applying..).unwrap_or(&[]),
                w.names.get(names..).unwrap_or(&[]),
            )
        });
        w.names.truncate(names);
        w.applying.truncate(applying);
        ok
    }

    fn array<'s>(&self, w: &mut Walk<'s>, roots: usize, shape: usize, depth: usize) -> bool {
        let Some(applying) = self.enter(w, roots, Type::Array, Schemas::quick_array) else { return false };
        let child_shape = w.shape.len();
        if let (Some((shapes, _, _)), true) = (self.shapes, w.shape.len() > shape) {
            shapes.items(&mut w.shape, shape);
        }
        w.c.i += 1;
        w.c.ws();
        let mut len = 0;
        if !w.c.eat(b']') {
            loop {
                w.c.ws();
                let child_roots = w.roots.len();
                if let Some((schemas, _)) = self.schema {
                    schemas.quick_item(w.applying.get(applying..).unwrap_or(&[]), len, &mut w.roots);
                }
                if !self.value(w, child_roots, child_shape, depth + 1) {
                    return false;
                }
                w.roots.truncate(child_roots);
                len += 1;
                match w.c.more(b']') {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => return false,
                }
            }
        }
        let ok = self
            .schema
            .is_none_or(|(schemas, _)| schemas.quick_length(w.applying.get(applying..).unwrap_or(&[]), len));
        w.shape.truncate(child_shape);
        w.applying.truncate(applying);
        ok
    }
}

/// The pass's working stacks (each value's entries sit above its parent's).
struct Walk<'s> {
    c: Cursor<'s>,
    /// The schemas of the values being read.
    roots: Vec<SchemaIndex>,
    /// The schemas that apply at the containers being read (roots expanded).
    applying: Vec<SchemaIndex>,
    /// The shapes of the values being read.
    shape: Vec<usize>,
    /// The member names of the objects being read.
    names: Vec<std::borrow::Cow<'s, str>>,
}

fn scalar(schemas: Option<&Schemas>, w: &mut Walk<'_>, roots: usize, v: Scalar<'_>) -> bool {
    match (schemas, w.roots.get(roots..)) {
        (Some(schemas), Some(here)) if !here.is_empty() => schemas.quick_scalar(here, v, &mut w.applying),
        _ => true,
    }
}

/// A number as `serde_json` reads it into a value (`-0` and fractions as `f64`, integers as
/// `u64` or `i64` while they fit): its own parser, but for the common small whole number.
fn number(text: &str) -> Option<Number> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.parse::<u64>() {
            return Some(Number::from(n));
        }
    }
    serde_json::from_slice::<Number>(text.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::openapi::schema::Dialect;
    use serde_json::json;

    /// What the pass says of each body against schema `/s` of `doc`, beside the tree check.
    fn judge(doc: serde_json::Value, dialect: Dialect, bodies: &[&str]) -> Vec<(bool, bool)> {
        let mut set = SchemaSet::new(doc, dialect).unwrap();
        let id = set.compile("/s").unwrap();
        bodies
            .iter()
            .map(|b| {
                let quick = Quick::new(&set, Some(id), None).valid(b.as_bytes());
                let tree = serde_json::from_str::<serde_json::Value>(b).is_ok_and(|v| {
                    let mut errors = Vec::new();
                    set.validate(id, &v, "", 10, &mut errors);
                    errors.is_empty()
                });
                (quick, tree)
            })
            .collect()
    }

    #[test]
    fn decides_plain_schemas_and_hands_on_the_rest() {
        let doc = json!({
            "s": {"type": "object", "required": ["n", "tags"], "additionalProperties": false,
                  "properties": {"n": {"type": "integer", "minimum": 1},
                                 "tags": {"type": "array", "maxItems": 2, "items": {"$ref": "#/t"}},
                                 "note": {"type": ["string", "null"], "maxLength": 3}}},
            "t": {"type": "string", "pattern": "^[a-z]+$"}
        });
        let bodies = [
            r#"{"n": 1, "tags": ["a", "bc"], "note": null}"#,
            r#" {"tags":[],"n":2,"note":"\u00e9\ud83d\ude00x"} "#,
            r#"{"n": 0, "tags": []}"#,
            r#"{"n": 1.0, "tags": []}"#,
            r#"{"n": 1, "tags": ["A"]}"#,
            r#"{"n": 1, "tags": ["a", "b", "c"]}"#,
            r#"{"n": 1}"#,
            r#"{"n": 1, "tags": [], "x": 1}"#,
            r#"{"n": 1, "tags": [], "note": "abcd"}"#,
            r#"{"n": 1, "tags": []} x"#,
            r#"{"n": 1, "tags": [],}"#,
            r#"{"n": 1e400, "tags": []}"#,
            r#"{"n": 1, "tags": ["\ud800"]}"#,
        ];
        let got = judge(doc.clone(), Dialect::Oas30, &bodies);
        // Valid bodies are decided by the pass; every other one is left to the tree check.
        let want = [true, true, false, false, false, false, false, false, false, false, false, false, false];
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), want);
        assert!(got.iter().all(|(quick, tree)| !quick || *tree));
        // Draft 4 takes `1.0` as no integer; 2020-12 does, and so does the pass there.
        assert_eq!(judge(doc, Dialect::Oas31, &[r#"{"n": 1.0, "tags": []}"#]), [(true, true)]);
        // Keywords the pass does not follow: not sure, even for a valid body. An `anyOf` with
        // two branches open to an object is one; with one (the other refuses objects by its
        // type: the nullable reference of 3.1 documents) it is that branch.
        let any = json!({"s": {"anyOf": [{"type": "object"}, {"required": ["a"]}]}});
        assert_eq!(judge(any, Dialect::Oas31, &["{}"]), [(false, true)]);
        let nullable = json!({"s": {"oneOf": [{"$ref": "#/o"}, {"type": "null"}]}, "o": {"type": "object", "required": ["a"]}});
        assert_eq!(
            judge(nullable, Dialect::Oas31, &[r#"{"a": 1}"#, "{}", "null", "1"]),
            [(true, true), (false, false), (true, true), (false, false)]
        );
        // Two branches open to a string: not the pass's to pick, so the scalar is judged by the
        // validator itself (a `oneOf` both branches pass is refused).
        let two = json!({"s": {"oneOf": [{"type": "string"}, {"maxLength": 5}]}});
        assert_eq!(judge(two, Dialect::Oas31, &[r#""abc""#, r#""abcdef""#]), [(false, false), (true, true)]);
        // A scalar under `oneOf` is judged by the validator itself, with the value built.
        let one = json!({"s": {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}});
        assert_eq!(
            judge(one, Dialect::Oas31, &[r#"{"a": 1}"#, r#"{"a": true}"#]),
            [(true, true), (false, false)]
        );
    }
}
