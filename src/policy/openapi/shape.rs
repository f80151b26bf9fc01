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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use crate::policy::denial::ProblemError;
use crate::policy::json::pointer_token;

/// A declared member: everything a walk needs from one lookup of its name.
#[derive(Debug, Clone, Default)]
struct Member {
    /// Its schema says `readOnly: true`.
    read_only: bool,
    /// Its schema says `writeOnly: true` (never sent back in a response).
    write_only: bool,
    /// Its value's schemas.
    schemas: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Declared members, by name.
    members: HashMap<String, Member, BuildHasherDefault<NameHasher>>,
    /// Whether any declared member is `readOnly`.
    any_read_only: bool,
    /// Any member is allowed (free-form object, `additionalProperties`, patterns).
    open: bool,
    /// Schemas of undeclared members (`additionalProperties: {...}`).
    extra: Vec<usize>,
    /// Schemas of array items.
    items: Vec<usize>,
    /// Schemas that apply at the same place (`$ref`, `allOf`, `anyOf`, `oneOf`).
    same: Vec<usize>,
}

/// FNV-1a over a member name. Member names are looked up once per member of every body
/// walked, and the table is fixed by the document (a name from a body can only probe it), so
/// a short keyed hash buys nothing over a fast one.
#[derive(Debug, Clone, Copy)]
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What the nodes that apply at one place say of one member name.
#[derive(Debug, Clone, Copy, Default)]
struct Verdict {
    /// Some node declares it.
    known: bool,
    /// Some node that declares it says `readOnly`.
    read_only: bool,
    /// Some node that declares it says `writeOnly`.
    write_only: bool,
    /// Some node lets any member through.
    open: bool,
}

impl Verdict {
    /// Why a request must not carry the member, as a keyword and a message: a `readOnly`
    /// member, or, with `unknown`, an undeclared one where no schema lets any member through.
    fn refused_in_request(self, unknown: bool) -> Option<(&'static str, &'static str)> {
        if self.read_only {
            Some(("readOnly", "is read-only and must not be sent"))
        } else if unknown && !self.known && !self.open {
            Some(("additionalProperties", "is not a documented property"))
        } else {
            None
        }
    }
}

/// The compiled shapes of a document.
#[derive(Debug, Clone, Default)]
pub struct Shapes {
    nodes: Vec<Node>,
    memo: HashMap<String, usize>,
    /// Per node, every node that applies with it (itself first); filled by [`Shapes::seal`].
    closures: Vec<Vec<usize>>,
    /// Per node, whether a `readOnly` member is reachable below it.
    reaches_read_only: Vec<bool>,
}

/// Follows a `#/...` reference inside `doc`.
pub fn resolve_ref<'d>(doc: &'d Value, reference: &str) -> Option<(&'d Value, String)> {
    let pointer = reference.strip_prefix('#')?;
    let pointer = crate::policy::path::percent_decode_lossy(pointer, false);
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
                    let at = format!("{pointer}/properties/{}", pointer_token(name));
                    let read_only = has_flag(doc, sub, "readOnly");
                    let write_only = has_flag(doc, sub, "writeOnly");
                    node.any_read_only |= read_only;
                    let n = self.node(doc, &at);
                    let member = node.members.entry(name.clone()).or_default();
                    member.read_only |= read_only;
                    member.write_only |= write_only;
                    member.schemas.push(n);
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

    /// Finishes compilation: the nodes that apply together (through `$ref`, `allOf`, `anyOf`,
    /// `oneOf`) are listed once per node, and each node learns whether a `readOnly` member is
    /// reachable below it, so bodies that cannot break a rule are not walked at all.
    pub fn seal(&mut self) {
        let n = self.nodes.len();
        let mut closures = Vec::with_capacity(n);
        for start in 0..n {
            let mut seen: Vec<usize> = Vec::new();
            let mut todo = vec![start];
            while let Some(x) = todo.pop() {
                if !seen.contains(&x) {
                    seen.push(x);
                    if let Some(node) = self.nodes.get(x) {
                        todo.extend(node.same.iter().copied());
                    }
                }
            }
            closures.push(seen);
        }
        let mut read_only = vec![false; n];
        for (i, ro) in read_only.iter_mut().enumerate() {
            let mut seen: Vec<usize> = Vec::new();
            let mut todo = vec![i];
            while let Some(x) = todo.pop() {
                if seen.contains(&x) {
                    continue;
                }
                seen.push(x);
                let Some(node) = self.nodes.get(x) else { continue };
                if node.any_read_only {
                    *ro = true;
                    break;
                }
                todo.extend(node.same.iter().chain(&node.extra).chain(&node.items).copied());
                todo.extend(node.members.values().flat_map(|m| m.schemas.iter().copied()));
            }
        }
        self.closures = closures;
        self.reaches_read_only = read_only;
    }

    /// Whether walking a body at `root` can find anything: unknown members are refused, or a
    /// `readOnly` member is reachable.
    pub fn worth_walking(&self, root: usize, unknown: bool) -> bool {
        unknown || self.reaches_read_only.get(root).copied().unwrap_or(true)
    }

    /// Walks a request body: reports `readOnly` members, and with `unknown` undeclared ones.
    /// `prefix` starts every pointer.
    pub fn check(
        &self,
        root: usize,
        value: &Value,
        prefix: &str,
        unknown: bool,
        max: usize,
        out: &mut Vec<ProblemError>,
    ) {
        let mut path: Vec<Seg<'_>> = Vec::new();
        self.walk(&[root], value, &mut path, prefix, unknown, max, out);
    }

    /// The nodes that apply together at a place reached through `roots`: usually one root's
    /// precomputed list.
    fn applying<'s>(&'s self, roots: &[usize]) -> std::borrow::Cow<'s, [usize]> {
        match roots {
            [one] => std::borrow::Cow::Borrowed(self.closures.get(*one).map_or(&[][..], Vec::as_slice)),
            _ => {
                let mut m: Vec<usize> = Vec::new();
                for r in roots {
                    for x in self.closures.get(*r).map_or(&[][..], Vec::as_slice) {
                        if !m.contains(x) {
                            m.push(*x);
                        }
                    }
                }
                std::borrow::Cow::Owned(m)
            }
        }
    }

    /// Looks member `name` up once in each node of `ids` (the nodes that apply at one place)
    /// and appends the schemas of its value to `next`: its declared schemas, or, where no node
    /// declares it, those of undeclared members.
    fn lookup(&self, ids: &[usize], name: &str, next: &mut Vec<usize>) -> Verdict {
        let mut v = Verdict::default();
        for n in ids.iter().filter_map(|n| self.nodes.get(*n)) {
            v.open |= n.open;
            if let Some(m) = n.members.get(name) {
                v.known = true;
                v.read_only |= m.read_only;
                v.write_only |= m.write_only;
                next.extend(&m.schemas);
            }
        }
        if !v.known {
            for n in ids.iter().filter_map(|n| self.nodes.get(*n)) {
                next.extend(&n.extra);
            }
        }
        v
    }

    /// The nodes that apply where the schemas `stack[from..]` apply (owned only when there
    /// are several): what [`Shapes::member`] and [`Shapes::admit`] take, found once per
    /// object of a body rather than once per member.
    pub fn place(&self, stack: &[usize], from: usize) -> std::borrow::Cow<'_, [usize]> {
        match stack.get(from..) {
            Some([one]) => std::borrow::Cow::Borrowed(self.closures.get(*one).map_or(&[][..], Vec::as_slice)),
            Some(roots) => std::borrow::Cow::Owned(self.applying(roots).into_owned()),
            None => std::borrow::Cow::Borrowed(&[]),
        }
    }

    /// For a streaming rewrite: whether member `name` of an object at `place` (see
    /// [`Shapes::place`]) is kept (declared, or the object is open, and not `writeOnly`);
    /// if so, the schemas of its value are pushed onto `stack`. Agrees with [`Shapes::prune`].
    pub fn member(&self, place: &[usize], stack: &mut Vec<usize>, name: &str) -> bool {
        let start = stack.len();
        let v = self.lookup(place, name, stack);
        if v.write_only || !(v.known || v.open) {
            stack.truncate(start);
            return false;
        }
        true
    }

    /// For a streaming check of a request body: whether member `name` of an object at `place`
    /// may be sent (as [`Shapes::check`] judges it); if so, the schemas of
    /// its value are pushed onto `stack`.
    pub fn admit(&self, place: &[usize], stack: &mut Vec<usize>, name: &str, unknown: bool) -> bool {
        let start = stack.len();
        let v = self.lookup(place, name, stack);
        if v.refused_in_request(unknown).is_some() {
            stack.truncate(start);
            return false;
        }
        true
    }

    /// For a streaming rewrite: pushes the schemas of the items of an array where
    /// `stack[from..]` apply onto `stack`.
    pub fn items(&self, stack: &mut Vec<usize>, from: usize) {
        let ids = self.place(stack, from);
        for n in ids.iter().filter_map(|n| self.nodes.get(*n)) {
            stack.extend(&n.items);
        }
    }

    /// Prunes a response body to what the schemas at `roots` document (a member declared by
    /// any of them is kept): undeclared members (where the object is not open) and
    /// `writeOnly` members are removed, at any depth. Member order is kept. Returns how many
    /// members were removed.
    pub fn prune(&self, roots: &[usize], value: &mut Value) -> usize {
        let ids = self.applying(roots);
        let nodes = || ids.iter().filter_map(|n| self.nodes.get(*n));
        let mut removed = 0;
        match value {
            Value::Object(map) => {
                let before = map.len();
                let mut inner = 0;
                let mut next = Vec::new();
                map.retain(|name, member| {
                    next.clear();
                    let v = self.lookup(&ids, name, &mut next);
                    if v.write_only || !(v.known || v.open) {
                        return false;
                    }
                    if !next.is_empty() && matches!(member, Value::Object(_) | Value::Array(_)) {
                        inner += self.prune(&next, member);
                    }
                    true
                });
                removed += before - map.len() + inner;
            }
            Value::Array(list) => {
                let next: Vec<usize> = nodes().flat_map(|n| n.items.iter().copied()).collect();
                if !next.is_empty() {
                    for item in list.iter_mut().filter(|i| matches!(i, Value::Object(_) | Value::Array(_))) {
                        removed += self.prune(&next, item);
                    }
                }
            }
            _ => {}
        }
        removed
    }

    #[allow(clippy::too_many_arguments)]
    fn walk<'v>(
        &self,
        roots: &[usize],
        value: &'v Value,
        path: &mut Vec<Seg<'v>>,
        prefix: &str,
        unknown: bool,
        max: usize,
        out: &mut Vec<ProblemError>,
    ) {
        if out.len() >= max {
            return;
        }
        let ids = self.applying(roots);
        let nodes = || ids.iter().filter_map(|n| self.nodes.get(*n));
        match value {
            Value::Object(map) => {
                let mut next = Vec::new();
                for (name, member) in map {
                    let report =
                        |out: &mut Vec<ProblemError>, path: &[Seg<'_>], keyword: &str, message: &str| {
                            if out.len() < max {
                                out.push(ProblemError {
                                    pointer: pointer(prefix, path, Some(name)),
                                    keyword: keyword.into(),
                                    message: message.into(),
                                });
                            }
                        };
                    next.clear();
                    let v = self.lookup(&ids, name, &mut next);
                    if let Some((keyword, message)) = v.refused_in_request(unknown) {
                        report(out, path, keyword, message);
                        continue;
                    }
                    if !next.is_empty() && matches!(member, Value::Object(_) | Value::Array(_)) {
                        path.push(Seg::Key(name));
                        self.walk(&next, member, path, prefix, unknown, max, out);
                        path.pop();
                    }
                }
            }
            Value::Array(list) => {
                let next: Vec<usize> = nodes().flat_map(|n| n.items.iter().copied()).collect();
                if !next.is_empty() {
                    for (i, item) in list.iter().enumerate() {
                        if matches!(item, Value::Object(_) | Value::Array(_)) {
                            path.push(Seg::Index(i));
                            self.walk(&next, item, path, prefix, unknown, max, out);
                            path.pop();
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// One step of the path to the place being walked.
#[derive(Debug, Clone, Copy)]
enum Seg<'v> {
    Key(&'v str),
    Index(usize),
}

/// The RFC 6901 pointer of `path` (then `last`), built only when a rule is broken.
fn pointer(prefix: &str, path: &[Seg<'_>], last: Option<&str>) -> String {
    let mut out = prefix.to_string();
    let mut key = |k: &str| {
        out.push('/');
        out.push_str(&pointer_token(k));
    };
    for seg in path {
        match seg {
            Seg::Key(k) => key(k),
            Seg::Index(i) => key(&i.to_string()),
        }
    }
    if let Some(k) = last {
        key(k);
    }
    out
}

/// Whether a member's schema (directly, or through the `$ref`s it names) sets `flag`
/// (`readOnly`, `writeOnly`) to true.
pub(crate) fn has_flag(doc: &Value, schema: &Value, flag: &str) -> bool {
    let mut at = schema;
    // A chain of references is followed a few steps; a longer one (or a cycle) says no.
    for _ in 0..8 {
        if at.get(flag) == Some(&Value::Bool(true)) {
            return true;
        }
        match at.get("$ref").and_then(Value::as_str).and_then(|r| resolve_ref(doc, r)) {
            Some((target, _)) => at = target,
            None => return false,
        }
    }
    false
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
        s.seal();
        let mut out = Vec::new();
        s.check(root, &body, "/body", unknown, 10, &mut out);
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
