//! api-guard patch: the schema side of a validation that never builds the instance.
//!
//! A caller that reads a JSON document as a stream asks, value by value, which schemas apply
//! and whether what it has read so far can still be valid. Each answer is either "nothing
//! here breaks a rule" or "not sure": an instance that breaks a rule, or a schema using a
//! keyword this path does not follow (`not`, `if`, `anyOf` or `oneOf` with more than one
//! branch open to the value's kind, `uniqueItems`, `contains`, the property-count and
//! dependency keywords, dynamic references, unevaluated members, container
//! `enum`/`const`/`format`). The caller then validates a tree through
//! [`Schemas::validate`], so "not sure" is never a verdict, and a "valid" here must agree with
//! it: every rule is the validator's own code path, keyword by keyword (validator.rs).
//!
//! The schemas that apply at one place are the ones reached from a root through `$ref`,
//! `allOf`, and an `anyOf` or `oneOf` whose other branches all refuse the value's kind by their
//! `type` (in draft 4, a schema with `$ref` keeps only its `type`, `const`, `enum` and
//! `format`, as the validator does). Reaching one schema twice is "not sure" (the validator
//! refuses a reference cycle).

use serde_json::{Number, Value};

use crate::util::{equals, is_integer};
use crate::{Additional, Items, Schema, SchemaIndex, Schemas, Type};

/// A scalar as read from the document.
#[derive(Debug, Clone, Copy)]
pub enum Scalar<'a> {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, as `serde_json` reads it (integers as `u64`/`i64`, others as `f64`).
    Number(&'a Number),
    /// A string, unescaped.
    String(&'a str),
}

impl Scalar<'_> {
    fn value(&self) -> Value {
        match *self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Number(n) => Value::Number(n.clone()),
            Scalar::String(s) => Value::String(s.to_owned()),
        }
    }

    fn kind(&self) -> Type {
        match self {
            Scalar::Null => Type::Null,
            Scalar::Bool(_) => Type::Boolean,
            Scalar::Number(_) => Type::Number,
            Scalar::String(_) => Type::String,
        }
    }
}

/// In draft 4 to 7 a schema with `$ref` keeps only the keywords the validator checks before
/// following it.
fn ref_only(s: &Schema) -> bool {
    s.ref_.is_some() && s.draft_version < 2019
}

/// Whether `s` uses a keyword this path does not follow at any kind of value (`anyOf` and
/// `oneOf` are followed where a single branch can hold: [`Schemas::only_branch`]).
fn beyond(s: &Schema) -> bool {
    s.boolean == Some(false)
        || s.recursive_ref.is_some()
        || s.dynamic_ref.is_some()
        || (!ref_only(s)
            && (s.not.is_some()
                || s.if_.is_some()
                || s.unevaluated_properties.is_some()
                || s.unevaluated_items.is_some()))
}

/// Whether schema `b` refuses every value of kind `kind` by its first check: a `false` schema,
/// or a `type` that leaves the kind out (the validator checks `type` before anything else).
/// A number may be an integer, so only a type list without either leaves a number out.
fn refuses_kind(b: &Schema, kind: Type) -> bool {
    if b.boolean == Some(false) {
        return true;
    }
    if b.types.is_empty() {
        return false;
    }
    match kind {
        Type::Number | Type::Integer => !b.types.contains(Type::Number) && !b.types.contains(Type::Integer),
        k => !b.types.contains(k),
    }
}

/// Whether the `type` keyword of `s` takes a value of kind `kind` (a number: `n`).
fn type_ok(s: &Schema, kind: Type, n: Option<&Value>) -> bool {
    if s.types.is_empty() || s.types.contains(kind) {
        return true;
    }
    // The validator's rule (validator.rs, `type`), draft 4 counting only integers written
    // without a fraction or exponent.
    match n {
        Some(v @ Value::Number(num)) => {
            s.types.contains(Type::Integer)
                && is_integer(v)
                && (s.draft_version != 4 || num.is_i64() || num.is_u64())
        }
        _ => false,
    }
}

impl Schemas {
    /// The one branch of `branches` (an `anyOf` or a `oneOf`) that a value of kind `kind`
    /// can pass, when every other one refuses that kind outright: then the keyword holds
    /// exactly when that branch does (`{"oneOf": [{"$ref": …}, {"type": "null"}]}` for an
    /// object). `None`: several can, or none.
    fn only_branch(&self, branches: &[SchemaIndex], kind: Type) -> Option<SchemaIndex> {
        let mut open = branches.iter().filter(|&&b| self.list.get(b.0).is_none_or(|s| !refuses_kind(s, kind)));
        match (open.next(), open.next()) {
            (Some(&one), None) => Some(one),
            _ => None,
        }
    }

    /// Appends to `out` the schemas that apply where `roots` apply to a value of kind `kind`,
    /// through `$ref`, `allOf`, and an `anyOf` or `oneOf` with a single branch open to the
    /// kind. `false`: not sure (a schema reached twice, or one this path does not follow).
    pub fn quick_expand(&self, roots: &[SchemaIndex], kind: Type, out: &mut Vec<SchemaIndex>) -> bool {
        let start = out.len();
        for &root in roots {
            if !self.quick_add(root, out, start) {
                return false;
            }
        }
        let mut i = start;
        while let Some(&idx) = out.get(i) {
            i += 1;
            let Some(s) = self.list.get(idx.0) else { return false };
            if beyond(s) {
                return false;
            }
            if let Some(r) = s.ref_ {
                if !self.quick_add(r, out, start) {
                    return false;
                }
            }
            if !ref_only(s) {
                for &a in &s.all_of {
                    if !self.quick_add(a, out, start) {
                        return false;
                    }
                }
                for branches in [&s.any_of, &s.one_of] {
                    if branches.is_empty() {
                        continue;
                    }
                    match self.only_branch(branches, kind) {
                        Some(b) if self.quick_add(b, out, start) => {}
                        _ => return false,
                    }
                }
            }
        }
        true
    }

    fn quick_add(&self, idx: SchemaIndex, out: &mut Vec<SchemaIndex>, start: usize) -> bool {
        if !self.contains(idx) || out.get(start..).is_some_and(|seen| seen.contains(&idx)) {
            return false;
        }
        out.push(idx);
        true
    }

    /// Whether an object may stand where the schemas `applying` (from
    /// [`Schemas::quick_expand`]) apply, as far as its own keywords go: its members are
    /// judged by [`Schemas::quick_member`], its member names by [`Schemas::quick_required`].
    pub fn quick_object(&self, applying: &[SchemaIndex]) -> bool {
        applying.iter().all(|&i| {
            let s = self.get(i);
            type_ok(s, Type::Object, None)
                && s.constant.is_none()
                && s.enum_.is_none()
                && s.format.is_none()
                && (ref_only(s)
                    || (s.min_properties.is_none()
                        && s.max_properties.is_none()
                        && s.dependencies.is_empty()
                        && s.property_names.is_none()
                        && s.dependent_schemas.is_empty()
                        && s.dependent_required.is_empty()))
        })
    }

    /// Appends to `out` the schemas of member `name` of an object where `applying` apply.
    /// `false`: `additionalProperties: false` refuses it.
    pub fn quick_member(&self, applying: &[SchemaIndex], name: &str, out: &mut Vec<SchemaIndex>) -> bool {
        for &i in applying {
            let s = self.get(i);
            if ref_only(s) {
                continue;
            }
            let mut evaluated = false;
            if let Some(&sch) = s.properties.get(name) {
                evaluated = true;
                out.push(sch);
            }
            for (regex, sch) in &s.pattern_properties {
                if regex.is_match(name) {
                    evaluated = true;
                    out.push(*sch);
                }
            }
            if !evaluated {
                match &s.additional_properties {
                    Some(Additional::Bool(false)) => return false,
                    Some(Additional::SchemaRef(sch)) => out.push(*sch),
                    Some(Additional::Bool(true)) | None => {}
                }
            }
        }
        true
    }

    /// Whether an object with the member names `names` (each as often as it was sent) has
    /// every member the schemas `applying` require.
    pub fn quick_required<S: AsRef<str>>(&self, applying: &[SchemaIndex], names: &[S]) -> bool {
        applying.iter().all(|&i| {
            let s = self.get(i);
            ref_only(s) || s.required.iter().all(|r| names.iter().any(|n| n.as_ref() == r))
        })
    }

    /// Whether an array may stand where `applying` apply, as far as its own keywords go: its
    /// items are judged by [`Schemas::quick_item`], its length by [`Schemas::quick_length`].
    pub fn quick_array(&self, applying: &[SchemaIndex]) -> bool {
        applying.iter().all(|&i| {
            let s = self.get(i);
            type_ok(s, Type::Array, None)
                && s.constant.is_none()
                && s.enum_.is_none()
                && s.format.is_none()
                && (ref_only(s) || (!s.unique_items && s.contains.is_none()))
        })
    }

    /// Appends to `out` the schemas of item `index` of an array where `applying` apply.
    pub fn quick_item(&self, applying: &[SchemaIndex], index: usize, out: &mut Vec<SchemaIndex>) {
        for &i in applying {
            let s = self.get(i);
            if ref_only(s) {
                continue;
            }
            if s.draft_version < 2020 {
                let evaluated = match &s.items {
                    Some(Items::SchemaRef(sch)) => {
                        out.push(*sch);
                        true
                    }
                    Some(Items::SchemaRefs(list)) => match list.get(index) {
                        Some(sch) => {
                            out.push(*sch);
                            true
                        }
                        None => false,
                    },
                    None => false,
                };
                if let (false, Some(Additional::SchemaRef(sch))) = (evaluated, &s.additional_items) {
                    out.push(*sch);
                }
            } else {
                match s.prefix_items.get(index) {
                    Some(sch) => out.push(*sch),
                    None => out.extend(s.items2020),
                }
            }
        }
    }

    /// Whether an array of `len` items keeps the length rules of `applying`.
    pub fn quick_length(&self, applying: &[SchemaIndex], len: usize) -> bool {
        applying.iter().all(|&i| {
            let s = self.get(i);
            if ref_only(s) {
                return true;
            }
            if s.min_items.is_some_and(|min| len < min) || s.max_items.is_some_and(|max| len > max) {
                return false;
            }
            if s.draft_version < 2020 {
                let covered = match &s.items {
                    Some(Items::SchemaRef(_)) => len,
                    Some(Items::SchemaRefs(list)) => list.len().min(len),
                    None => 0,
                };
                if matches!(s.additional_items, Some(Additional::Bool(false))) && covered != len {
                    return false;
                }
            }
            true
        })
    }

    /// Whether `v` is valid where the schemas `roots` apply. Schemas this path does not follow
    /// are handed to [`Schemas::validate`] with `v` as a value (a scalar meets no keyword that
    /// depends on its parents), unless some schema of the set uses a dynamic reference.
    pub fn quick_scalar(&self, roots: &[SchemaIndex], v: Scalar<'_>, scratch: &mut Vec<SchemaIndex>) -> bool {
        let start = scratch.len();
        let simple = self.quick_expand(roots, v.kind(), scratch)
            && scratch.get(start..).is_some_and(|a| a.iter().all(|&i| self.scalar_simple(self.get(i))));
        let ok = if simple {
            let number = match v {
                Scalar::Number(n) => Some(Value::Number(n.clone())),
                _ => None,
            };
            let applying = scratch.get(start..).unwrap_or(&[]);
            applying.iter().all(|&i| self.scalar_ok(self.get(i), v, number.as_ref()))
        } else if self.dynamic {
            // A dynamic reference resolves through the schemas met on the way here, which a
            // schema validated on its own has not met.
            false
        } else {
            let value = v.value();
            roots.iter().all(|&r| self.contains(r) && self.validate(&value, r).is_ok())
        };
        scratch.truncate(start);
        ok
    }

    /// Whether every keyword of `s` that a scalar meets is one [`Schemas::scalar_ok`] checks.
    fn scalar_simple(&self, s: &Schema) -> bool {
        ref_only(s) || (s.content_encoding.is_none() && s.content_media_type.is_none())
    }

    /// The validator's scalar rules of one schema (validator.rs: `type`, `const`, `enum`,
    /// `format`, then `str_validate` or `num_validate`).
    fn scalar_ok(&self, s: &Schema, v: Scalar<'_>, number: Option<&Value>) -> bool {
        if s.boolean == Some(true) {
            return true;
        }
        if !type_ok(s, v.kind(), number) {
            return false;
        }
        let same = |other: &Value| match (v, other) {
            (Scalar::Null, Value::Null) => true,
            (Scalar::Bool(a), Value::Bool(b)) => a == *b,
            (Scalar::String(a), Value::String(b)) => a == b,
            (Scalar::Number(_), Value::Number(_)) => number.is_some_and(|n| equals(n, other)),
            _ => false,
        };
        if s.constant.as_ref().is_some_and(|c| !same(c)) {
            return false;
        }
        if let Some(e) = &s.enum_ {
            if !e.types.contains(v.kind()) || !e.values.iter().any(same) {
                return false;
            }
        }
        if let Some(format) = &s.format {
            let checked = match number {
                Some(n) => (format.func)(n),
                None => (format.func)(&v.value()),
            };
            if checked.is_err() {
                return false;
            }
        }
        if ref_only(s) {
            return true;
        }
        match v {
            Scalar::String(text) => {
                if s.min_length.is_some() || s.max_length.is_some() {
                    let len = text.chars().count();
                    if s.min_length.is_some_and(|min| len < min) || s.max_length.is_some_and(|max| len > max) {
                        return false;
                    }
                }
                s.pattern.as_ref().is_none_or(|re| re.is_match(text))
            }
            Scalar::Number(num) => number_ok(s, num),
            _ => true,
        }
    }
}

/// The validator's `num_validate`, as a yes or no.
fn number_ok(s: &Schema, num: &Number) -> bool {
    let Some(n) = num.as_f64() else { return true };
    let f = |x: &Option<Number>| x.as_ref().and_then(Number::as_f64);
    !(f(&s.minimum).is_some_and(|m| n < m)
        || f(&s.maximum).is_some_and(|m| n > m)
        || f(&s.exclusive_minimum).is_some_and(|m| n <= m)
        || f(&s.exclusive_maximum).is_some_and(|m| n >= m)
        || f(&s.multiple_of).is_some_and(|m| (n / m).fract() != 0.0))
}
