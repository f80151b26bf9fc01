//! Object shapes: which members a schema declares, which are `readOnly`, and so which members
//! of a request body are unknown (mass assignment, OWASP API3) or must not be sent.
//!
//! JSON Schema lets undeclared members through unless a schema says
//! `additionalProperties: false`, and treats `readOnly` as an annotation. An API gateway
//! should refuse both on request. The shapes are compiled once from the document into a
//! graph (references become edges, so recursive schemas are fine) and walked with the body.
//!
//! A member counts as declared if any schema that applies at its place declares it, through
//! `$ref`, `allOf`, `anyOf` and `oneOf` alike: a union, which never refuses a member that one
//! of the alternatives documents.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::policy::denial::ProblemError;

#[derive(Debug, Clone, Default)]
struct Node {
    /// Declared member names.
    known: BTreeSet<String>,
    /// Members whose schema says `readOnly: true`.
    read_only: BTreeSet<String>,
    /// Any member is allowed (free-form object, `additionalProperties`, patterns).
    open: bool,
    /// Schemas of declared members.
    props: BTreeMap<String, Vec<usize>>,
    /// Schemas of undeclared members (`additionalProperties: {...}`).
    extra: Vec<usize>,
    /// Schemas of array items.
    items: Vec<usize>,
    /// Schemas that apply at the same place (`$ref`, `allOf`, `anyOf`, `oneOf`).
    same: Vec<usize>,
}

/// The compiled shapes of a document.
#[derive(Debug, Clone, Default)]
pub struct Shapes {
    nodes: Vec<Node>,
    memo: HashMap<String, usize>,
}

/// Follows a `#/...` reference inside `doc`.
pub fn resolve_ref<'d>(doc: &'d Value, reference: &str) -> Option<(&'d Value, String)> {
    let pointer = reference.strip_prefix('#')?;
    let pointer = super::params::decode(pointer, false);
    doc.pointer(&pointer).map(|v| (v, pointer))
}

impl Shapes {
    /// The node for the schema at `pointer` in `doc`, compiling it (and what it reaches) once.
    pub fn node(&mut self, doc: &Value, pointer: &str) -> usize {
        if let Some(&i) = self.memo.get(pointer) {
            return i;
        }
        let index = self.nodes.len();
        self.nodes.push(Node::default());
        self.memo.insert(pointer.to_string(), index);
        let node = self.build(doc, pointer);
        if let Some(slot) = self.nodes.get_mut(index) {
            *slot = node;
        }
        index
    }

    fn build(&mut self, doc: &Value, pointer: &str) -> Node {
        let mut node = Node::default();
        let Some(Value::Object(schema)) = doc.pointer(pointer) else {
            // `true`, `{}`-like or unresolvable: nothing is known, so nothing is refused.
            node.open = true;
            return node;
        };
        if let Some(Value::String(r)) = schema.get("$ref") {
            match resolve_ref(doc, r) {
                Some((_, target)) => {
                    let n = self.node(doc, &target);
                    node.same.push(n);
                }
                None => node.open = true,
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(list)) = schema.get(key) {
                for i in 0..list.len() {
                    let n = self.node(doc, &format!("{pointer}/{key}/{i}"));
                    node.same.push(n);
                }
            }
        }
        match schema.get("properties") {
            Some(Value::Object(props)) => {
                for (name, sub) in props {
                    let at = format!("{pointer}/properties/{}", name.replace('~', "~0").replace('/', "~1"));
                    if is_read_only(doc, sub) {
                        node.read_only.insert(name.clone());
                    }
                    node.known.insert(name.clone());
                    let n = self.node(doc, &at);
                    node.props.entry(name.clone()).or_default().push(n);
                }
            }
            _ => {
                // No declared members and nothing composed: a free-form object.
                if node.same.is_empty() {
                    node.open = true;
                }
            }
        }
        match schema.get("additionalProperties") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Object(_)) => {
                node.open = true;
                let n = self.node(doc, &format!("{pointer}/additionalProperties"));
                node.extra.push(n);
            }
            Some(_) => node.open = true,
        }
        if schema.contains_key("patternProperties")
            || schema.get("unevaluatedProperties").is_some_and(|v| v != &Value::Bool(false))
        {
            node.open = true;
        }
        if let Some(Value::Object(_)) = schema.get("items") {
            let n = self.node(doc, &format!("{pointer}/items"));
            node.items.push(n);
        }
        node
    }

    /// Every node that applies where `roots` apply.
    fn closure(&self, roots: &[usize]) -> Vec<usize> {
        let mut seen: BTreeSet<usize> = BTreeSet::new();
        let mut todo: Vec<usize> = roots.to_vec();
        while let Some(n) = todo.pop() {
            if seen.insert(n) {
                if let Some(node) = self.nodes.get(n) {
                    todo.extend(node.same.iter().copied());
                }
            }
        }
        seen.into_iter().collect()
    }

    /// Walks a request body: reports `readOnly` members, and with `unknown` undeclared ones.
    pub fn check(
        &self,
        roots: &[usize],
        value: &Value,
        at: &str,
        unknown: bool,
        max: usize,
        out: &mut Vec<ProblemError>,
    ) {
        if out.len() >= max {
            return;
        }
        let nodes: Vec<&Node> = self.closure(roots).into_iter().filter_map(|n| self.nodes.get(n)).collect();
        match value {
            Value::Object(map) => {
                let open = nodes.iter().any(|n| n.open);
                for (name, member) in map {
                    let here = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
                    let known = nodes.iter().any(|n| n.known.contains(name));
                    if nodes.iter().any(|n| n.read_only.contains(name)) {
                        if out.len() < max {
                            out.push(ProblemError {
                                pointer: here.clone(),
                                keyword: "readOnly".into(),
                                message: "is read-only and must not be sent".into(),
                            });
                        }
                        continue;
                    }
                    if unknown && !known && !open {
                        if out.len() < max {
                            out.push(ProblemError {
                                pointer: here,
                                keyword: "additionalProperties".into(),
                                message: "is not a documented property".into(),
                            });
                        }
                        continue;
                    }
                    let next: Vec<usize> = if known {
                        nodes.iter().filter_map(|n| n.props.get(name)).flatten().copied().collect()
                    } else {
                        nodes.iter().flat_map(|n| n.extra.iter().copied()).collect()
                    };
                    if !next.is_empty() {
                        self.check(&next, member, &here, unknown, max, out);
                    }
                }
            }
            Value::Array(list) => {
                let next: Vec<usize> = nodes.iter().flat_map(|n| n.items.iter().copied()).collect();
                if !next.is_empty() {
                    for (i, item) in list.iter().enumerate() {
                        self.check(&next, item, &format!("{at}/{i}"), unknown, max, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether a member's schema (through one level of `$ref`) says `readOnly: true`.
fn is_read_only(doc: &Value, schema: &Value) -> bool {
    let flag = |s: &Value| s.get("readOnly") == Some(&Value::Bool(true));
    if flag(schema) {
        return true;
    }
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| resolve_ref(doc, r)) {
        Some((target, _)) => flag(target),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"components": {"schemas": {
            "Pet": {"type": "object", "properties": {
                "id": {"type": "integer", "readOnly": true},
                "name": {"type": "string"},
                "owner": {"$ref": "#/components/schemas/Owner"},
                "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                "extra": {"type": "object"},
                "parent": {"$ref": "#/components/schemas/Pet"}}},
            "Owner": {"allOf": [{"$ref": "#/components/schemas/Person"}, {"properties": {"since": {"type": "string"}}}]},
            "Person": {"properties": {"first": {"type": "string"}}},
            "Tag": {"type": "object", "properties": {"label": {"type": "string"}}},
            "Map": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Tag"}}
        }}})
    }

    fn errors(pointer: &str, body: Value, unknown: bool) -> Vec<(String, String)> {
        let d = doc();
        let mut s = Shapes::default();
        let root = s.node(&d, pointer);
        let mut out = Vec::new();
        s.check(&[root], &body, "/body", unknown, 10, &mut out);
        out.into_iter().map(|e| (e.pointer, e.keyword)).collect()
    }

    #[test]
    fn finds_unknown_and_read_only_members_through_references() {
        let body = json!({"id": 1, "name": "x", "role": "admin",
            "owner": {"first": "a", "since": "b", "admin": true},
            "tags": [{"label": "l"}, {"label": "m", "hidden": 1}],
            "extra": {"anything": 1},
            "parent": {"parent": {"id": 2}}});
        let mut got = errors("/components/schemas/Pet", body.clone(), true);
        got.sort();
        let mut want = vec![
            ("/body/id".to_string(), "readOnly".to_string()),
            ("/body/role".into(), "additionalProperties".into()),
            ("/body/owner/admin".into(), "additionalProperties".into()),
            ("/body/tags/1/hidden".into(), "additionalProperties".into()),
            ("/body/parent/parent/id".into(), "readOnly".into()),
        ];
        want.sort();
        assert_eq!(got, want);
        // Without the option only read-only members are refused.
        assert_eq!(errors("/components/schemas/Pet", body, false).len(), 2);
        // Free-form maps stay open, but their values are still shaped.
        assert_eq!(
            errors("/components/schemas/Map", json!({"k": {"label": "x", "bad": 1}}), true),
            vec![("/body/k/bad".to_string(), "additionalProperties".to_string())]
        );
    }
}
