//! One pass over a JSON response body that copies it while dropping, masking and hashing
//! members, as the schema allowlist ([`Shapes`]) and the field rules ([`redact`]) decide.
//!
//! Building a `serde_json::Value` tree and serialising it again costs about ten times what
//! reading the bytes does (a map, a string and an allocation per member). Here the body is
//! validated and copied in one pass; only what a rule masks or hashes is turned into a value,
//! so the rule's action is the same code as [`redact`]'s. What is kept is byte for byte what the
//! upstream sent (member order, number spelling, escapes).
//!
//! Selectors are run as a set of states (rule, selector, step reached) carried down the
//! document: a member or element that completes a selector is selected. A removed member is
//! skipped (still validated); a masked or hashed one is built as a value, pruned, and every
//! rule that reaches into it is applied in rule order, as the whole-tree [`redact::apply`]
//! would. Array indexes in selectors refer to the upstream's array.
//!
//! Invalid JSON (grammar, UTF-8, control characters in strings, nesting deeper than 128) is an
//! error: the caller withholds the response rather than forward what it cannot judge.

use serde_json::Value;

use super::json_cursor::{Cursor, MAX_DEPTH};
use super::openapi::shape::Shapes;
use super::redact::{self, Action, HashKey, Selector, Step};

/// One field rule, as the rewrite sees it.
#[derive(Debug, Clone, Copy)]
pub struct Rule<'a> {
    /// Its selectors.
    pub selectors: &'a [Selector],
    /// What happens to what they select.
    pub action: &'a Action,
}

pub use super::json_cursor::NotJson;

/// A selector partly matched: `pos` steps of selector `sel` of rule `rule` led here.
#[derive(Debug, Clone, Copy)]
struct State {
    rule: usize,
    sel: usize,
    pos: usize,
}

/// Pushes `st` unless `states[from..]` has it (two paths to the same state would apply its
/// action twice).
fn push_once(states: &mut Vec<State>, from: usize, st: State) {
    let have = states
        .get(from..)
        .is_some_and(|s| s.iter().any(|x| x.rule == st.rule && x.sel == st.sel && x.pos == st.pos));
    if !have {
        states.push(st);
    }
}

/// Where a child sits in its parent.
#[derive(Clone, Copy)]
enum Seg<'k> {
    Key(&'k str),
    Index(usize),
}

/// The rewrite of one body.
pub struct Rewrite<'a> {
    /// The compiled shapes and the roots documented for this response (empty: no pruning).
    pub shapes: Option<(&'a Shapes, &'a [usize])>,
    /// Field rules, in order.
    pub rules: &'a [Rule<'a>],
    /// Key for hash actions (there are no rules without one).
    pub key: Option<&'a HashKey>,
}

impl Rewrite<'_> {
    /// Rewrites `body`, or says it is not JSON.
    pub fn run(&self, body: &[u8]) -> Result<Vec<u8>, NotJson> {
        let text = std::str::from_utf8(body).map_err(|_| NotJson)?;
        let mut c = Cursor::new(text);
        let mut out = Vec::with_capacity(body.len());
        let mut states: Vec<State> = Vec::new();
        for (rule, r) in self.rules.iter().enumerate() {
            for sel in 0..r.selectors.len() {
                states.push(State { rule, sel, pos: 0 });
            }
        }
        let mut shape: Vec<usize> = self.shapes.map(|(_, roots)| roots.to_vec()).unwrap_or_default();
        c.ws();
        self.value(&mut c, &mut out, &mut shape, 0, &mut states, 0, 0)?;
        c.ws();
        if c.i != c.s.len() {
            return Err(NotJson);
        }
        Ok(out)
    }

    fn steps(&self, st: &State) -> &[Step] {
        self.rules.get(st.rule).and_then(|r| r.selectors.get(st.sel)).map_or(&[], |s| s.steps())
    }

    fn action(&self, st: &State) -> Option<&Action> {
        self.rules.get(st.rule).map(|r| r.action)
    }

    /// Pushes the states a child at `seg` inherits from `states[from..]`. Returns whether the
    /// child is removed by a rule.
    fn step(&self, states: &mut Vec<State>, from: usize, seg: Seg<'_>) -> bool {
        let mut removed = false;
        let end = states.len();
        for k in from..end {
            let Some(st) = states.get(k).copied() else { break };
            let steps = self.steps(&st);
            let Some(step) = steps.get(st.pos) else { continue };
            let matched = match (step, seg) {
                (Step::Child(n), Seg::Key(k)) | (Step::Descend(n), Seg::Key(k)) => n == k,
                (Step::Index(n), Seg::Index(i)) => *n == i,
                (Step::Any, _) => true,
                _ => false,
            };
            if matched {
                let next = State { pos: st.pos + 1, ..st };
                if next.pos == steps.len() && self.action(&st) == Some(&Action::Remove) {
                    removed = true;
                }
                push_once(states, end, next);
            }
            if let Step::Descend(_) = step {
                push_once(states, end, st);
            }
        }
        removed
    }

    /// Whether the value at the cursor is a scalar that no selector state `states[base..]`
    /// completes at (what [`Rewrite::value`] would copy unchanged).
    fn plain_scalar(&self, c: &Cursor<'_>, states: &[State], base: usize) -> bool {
        !matches!(c.peek(), Some(b'{' | b'['))
            && states.get(base..).unwrap_or(&[]).iter().all(|st| st.pos != self.steps(st).len())
    }

    /// Copies (or rewrites) one value. `shape[sbase..]` are the schemas that apply here,
    /// `states[base..]` the selector states.
    #[allow(clippy::too_many_arguments)]
    fn value(
        &self,
        c: &mut Cursor<'_>,
        out: &mut Vec<u8>,
        shape: &mut Vec<usize>,
        sbase: usize,
        states: &mut Vec<State>,
        base: usize,
        depth: usize,
    ) -> Result<(), NotJson> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        let here = states.get(base..).unwrap_or(&[]);
        if here.iter().any(|st| st.pos == self.steps(st).len()) {
            return self.materialize(c, out, shape.get(sbase..).unwrap_or(&[]), here, depth);
        }
        let pruning = shape.len() > sbase;
        if here.is_empty() && !pruning {
            let start = c.i;
            c.skip(depth)?;
            out.extend_from_slice(c.s.get(start..c.i).ok_or(NotJson)?);
            return Ok(());
        }
        match c.peek() {
            Some(b'{') => {
                c.i += 1;
                out.push(b'{');
                c.ws();
                if c.eat(b'}') {
                    out.push(b'}');
                    return Ok(());
                }
                let place = match (self.shapes, pruning) {
                    (Some((shapes, _)), true) => Some((shapes, shapes.place(shape, sbase))),
                    _ => None,
                };
                let mut first = true;
                loop {
                    c.ws();
                    let key_start = c.i;
                    let key = c.string()?;
                    let key_end = c.i;
                    c.ws();
                    if !c.eat(b':') {
                        return Err(NotJson);
                    }
                    c.ws();
                    let child_sbase = shape.len();
                    let kept = place.as_ref().is_none_or(|(shapes, at)| shapes.member(at, shape, &key));
                    let child_base = states.len();
                    let removed = !kept || self.step(states, base, Seg::Key(&key));
                    if removed {
                        c.skip(depth + 1)?;
                    } else {
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        out.extend_from_slice(c.s.get(key_start..key_end).ok_or(NotJson)?);
                        out.push(b':');
                        if self.plain_scalar(c, states, child_base) {
                            // Most members: a scalar no rule changes, copied as sent.
                            let start = c.i;
                            c.skip(depth + 1)?;
                            out.extend_from_slice(c.s.get(start..c.i).ok_or(NotJson)?);
                        } else {
                            self.value(c, out, shape, child_sbase, states, child_base, depth + 1)?;
                        }
                    }
                    states.truncate(child_base);
                    shape.truncate(child_sbase);
                    if !c.more(b'}')? {
                        break;
                    }
                }
                out.push(b'}');
                Ok(())
            }
            Some(b'[') => {
                c.i += 1;
                out.push(b'[');
                c.ws();
                if c.eat(b']') {
                    out.push(b']');
                    return Ok(());
                }
                let child_sbase = shape.len();
                if let (Some((shapes, _)), true) = (self.shapes, pruning) {
                    shapes.items(shape, sbase);
                }
                let mut first = true;
                let mut index = 0;
                loop {
                    c.ws();
                    let child_base = states.len();
                    if self.step(states, base, Seg::Index(index)) {
                        c.skip(depth + 1)?;
                    } else {
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        self.value(c, out, shape, child_sbase, states, child_base, depth + 1)?;
                    }
                    states.truncate(child_base);
                    index += 1;
                    if !c.more(b']')? {
                        break;
                    }
                }
                shape.truncate(child_sbase);
                out.push(b']');
                Ok(())
            }
            _ => {
                let start = c.i;
                c.skip(depth)?;
                out.extend_from_slice(c.s.get(start..c.i).ok_or(NotJson)?);
                Ok(())
            }
        }
    }

    /// A value a rule masks or hashes: built as a value, pruned, then every rule that reaches
    /// it applied in rule order.
    fn materialize(
        &self,
        c: &mut Cursor<'_>,
        out: &mut Vec<u8>,
        shape: &[usize],
        here: &[State],
        depth: usize,
    ) -> Result<(), NotJson> {
        let start = c.i;
        c.skip(depth)?;
        let raw = c.s.get(start..c.i).ok_or(NotJson)?;
        let mut v: Value = serde_json::from_slice(raw).map_err(|_| NotJson)?;
        if let (Some((shapes, _)), false) = (self.shapes, shape.is_empty()) {
            shapes.prune(shape, &mut v);
        }
        for (rule, r) in self.rules.iter().enumerate() {
            for st in here.iter().filter(|st| st.rule == rule) {
                let steps = self.steps(st);
                if let Some(key) = self.key {
                    redact::apply(&mut v, steps.get(st.pos..).unwrap_or(&[]), r.action, key);
                }
            }
        }
        serde_json::to_writer(&mut *out, &v).map_err(|_| NotJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rules: &[(&str, Action)], body: &str) -> Result<String, NotJson> {
        let compiled: Vec<(Vec<Selector>, Action)> =
            rules.iter().map(|(s, a)| (vec![Selector::parse(s).unwrap()], a.clone())).collect();
        let rules: Vec<Rule<'_>> =
            compiled.iter().map(|(s, a)| Rule { selectors: s.as_slice(), action: a }).collect();
        Rewrite { shapes: None, rules: &rules, key: Some(&HashKey::new(b"k")) }
            .run(body.as_bytes())
            .map(|o| String::from_utf8(o).unwrap())
    }

    #[test]
    fn keeps_what_it_does_not_touch_byte_for_byte() {
        let body =
            r#" { "b" : 1.50E+2 , "a\u0041" : [ "\u00e9\/" , true , null ] , "password" : {"x": [1]} } "#;
        assert_eq!(
            run(&[("$..password", Action::Remove)], body).unwrap(),
            r#"{"b":1.50E+2,"a\u0041":["\u00e9\/",true,null]}"#
        );
        // A key written with escapes is matched by its value.
        assert_eq!(run(&[("$.aA", Action::Remove)], r#"{"a\u0041":1,"z":2}"#).unwrap(), r#"{"z":2}"#);
        assert_eq!(
            run(
                &[("$.items[*].card", Action::Mask { keep_last: 4 }), ("$.items[1]", Action::Remove)],
                r#"{"items":[{"card":"4111111111111111"},{"card":"x"},{"card":12345678}]}"#
            )
            .unwrap(),
            r#"{"items":[{"card":"************1111"},{"card":"****"}]}"#
        );
    }

    #[test]
    fn a_value_reached_twice_is_changed_once() {
        // `owner` inside `owner`: the inner email is selected along two paths.
        let out = run(
            &[("$..owner..email", Action::Mask { keep_last: 2 })],
            r#"{"owner":{"owner":{"email":"abcdefgh"}}}"#,
        )
        .unwrap();
        assert_eq!(out, r#"{"owner":{"owner":{"email":"******gh"}}}"#);
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "",
            "{",
            "{\"a\":1,}",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "1e",
            "+1",
            "\"\\x\"",
            "\"a\nb\"",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "tru",
            "nul",
            "[] []",
            "{\"a\":1}}",
            "1e400",
            "\"\u{7f}",
            "{1:2}",
        ] {
            assert_eq!(run(&[("$.a", Action::Remove)], bad), Err(NotJson), "{bad:?}");
        }
        assert_eq!(
            Rewrite { shapes: None, rules: &[], key: None }.run(b"\"\xff\""),
            Err(NotJson),
            "invalid UTF-8"
        );
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(run(&[("$.a", Action::Remove)], &deep), Err(NotJson), "deeper than 128");
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(run(&[("$.a", Action::Remove)], &ok).unwrap(), ok);
    }
}
