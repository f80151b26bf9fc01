//! Response field rules: which JSON members leave the gateway, and in what form.
//!
//! A rule selects members with a JSONPath subset and removes them, masks them (keeping the
//! last few characters) or replaces them with a keyed hash (so support staff can correlate
//! values without seeing them). A rule can be waived for callers whose verified token carries
//! a scope: property-level authorization, e.g. `email` only with `users:pii`.
//!
//! Selectors (compiled at load):
//! - `$.a.b`, `$['e-mail']`, `$["a b"]`: members by name;
//! - `$.items[*]`, `$.*`: every element or member;
//! - `$.items[0]`: one element;
//! - `$..password`: a member with that name at any depth.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// One step of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A member by name.
    Child(String),
    /// Every member or element.
    Any,
    /// One array element.
    Index(usize),
    /// A member by name, at this level or any level below.
    Descend(String),
}

/// A compiled selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    steps: Vec<Step>,
}

fn quoted(rest: &str) -> Option<(String, &str)> {
    let q = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = rest.get(1..)?;
    let end = body.find(q)?;
    let name = body.get(..end)?.to_string();
    let after = body.get(end + 1..)?.strip_prefix(']')?;
    Some((name, after))
}

fn name_len(s: &str) -> usize {
    s.find(['.', '[']).unwrap_or(s.len())
}

impl Selector {
    /// Its steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Parses a selector.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut rest = text.strip_prefix('$').ok_or("must start with `$`")?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("..") {
                let n = name_len(r);
                let name = r.get(..n).unwrap_or("");
                if name.is_empty() || name == "*" {
                    return Err("`..` must be followed by a member name".into());
                }
                steps.push(Step::Descend(name.to_string()));
                rest = r.get(n..).unwrap_or("");
            } else if let Some(r) = rest.strip_prefix('.') {
                let n = name_len(r);
                let name = r.get(..n).unwrap_or("");
                if name.is_empty() {
                    return Err("empty member name after `.`".into());
                }
                if name.chars().any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | ']' | '$')) {
                    return Err(format!(
                        "`{name}`: use `['...']` for member names with spaces, quotes or brackets"
                    ));
                }
                steps.push(if name == "*" { Step::Any } else { Step::Child(name.to_string()) });
                rest = r.get(n..).unwrap_or("");
            } else if let Some(r) = rest.strip_prefix('[') {
                if let Some(after) = r.strip_prefix("*]") {
                    steps.push(Step::Any);
                    rest = after;
                } else if let Some((name, after)) = quoted(r) {
                    steps.push(Step::Child(name));
                    rest = after;
                } else {
                    let end = r.find(']').ok_or("unclosed `[`")?;
                    let index = r.get(..end).and_then(|i| i.parse::<usize>().ok()).ok_or(
                        "`[...]` must hold `*`, an index, or a quoted name (filters and slices are not supported)",
                    )?;
                    steps.push(Step::Index(index));
                    rest = r.get(end + 1..).unwrap_or("");
                }
            } else {
                return Err(format!("unexpected `{}`", rest.chars().next().unwrap_or(' ')));
            }
        }
        if steps.is_empty() {
            return Err("selects the whole body; select members instead".into());
        }
        Ok(Selector { steps })
    }
}

/// What happens to a selected value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The member disappears.
    Remove,
    /// Strings keep their last `keep_last` characters, the rest become `*`; other values
    /// become `"****"`.
    Mask {
        /// Characters kept at the end.
        keep_last: usize,
    },
    /// The value becomes `hmac-sha256:` and the first 16 bytes of HMAC-SHA256(key, its JSON
    /// text), in hex: equal values give equal hashes, and nobody without the key can test a
    /// guess.
    Hash,
}

/// An HMAC-SHA256 key with its padded blocks already hashed, so each MAC costs two SHA-256
/// compressions instead of four (RFC 2104).
#[derive(Clone)]
pub struct HashKey {
    inner: Sha256,
    outer: Sha256,
}

impl std::fmt::Debug for HashKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

impl HashKey {
    /// Prepares `key`.
    pub fn new(key: &[u8]) -> HashKey {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            let d = Sha256::digest(key);
            for (slot, b) in k.iter_mut().zip(d.iter()) {
                *slot = *b;
            }
        } else {
            for (slot, b) in k.iter_mut().zip(key) {
                *slot = *b;
            }
        }
        let mut inner = Sha256::new();
        inner.update(k.map(|b| b ^ 0x36));
        let mut outer = Sha256::new();
        outer.update(k.map(|b| b ^ 0x5c));
        HashKey { inner, outer }
    }

    /// HMAC-SHA256 of `message`.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(message);
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

impl Action {
    fn transform(&self, v: &mut Value, key: &HashKey) {
        match self {
            Action::Remove => {}
            Action::Mask { keep_last } => {
                *v = match v {
                    Value::String(s) => {
                        let n = s.chars().count();
                        let keep = (*keep_last).min(n / 2);
                        let tail: String = s.chars().skip(n - keep).collect();
                        Value::String(format!("{}{tail}", "*".repeat(n - keep)))
                    }
                    _ => Value::String("****".into()),
                }
            }
            Action::Hash => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let text = v.to_string();
                let mac = key.mac(text.as_bytes());
                let mut out = String::with_capacity(12 + 32);
                out.push_str("hmac-sha256:");
                for b in mac.iter().take(16) {
                    for nibble in [b >> 4, b & 0xf] {
                        out.push(char::from(HEX.get(usize::from(nibble)).copied().unwrap_or(b'0')));
                    }
                }
                *v = Value::String(out);
            }
        }
    }
}

/// Applies `action` to what `steps` select under `v`. Returns how many values were touched.
pub fn apply(v: &mut Value, steps: &[Step], action: &Action, key: &HashKey) -> usize {
    let Some((first, rest)) = steps.split_first() else {
        action.transform(v, key);
        return 1;
    };
    let last = rest.is_empty();
    let remove = last && *action == Action::Remove;
    match first {
        Step::Child(name) => match v {
            Value::Object(map) if remove => usize::from(map.remove(name).is_some()),
            Value::Object(map) => map.get_mut(name).map_or(0, |c| apply(c, rest, action, key)),
            _ => 0,
        },
        Step::Index(i) => match v {
            Value::Array(list) if remove && *i < list.len() => {
                list.remove(*i);
                1
            }
            Value::Array(list) => list.get_mut(*i).map_or(0, |c| apply(c, rest, action, key)),
            _ => 0,
        },
        Step::Any => match v {
            Value::Object(map) if remove => {
                let n = map.len();
                map.clear();
                n
            }
            Value::Array(list) if remove => {
                let n = list.len();
                list.clear();
                n
            }
            Value::Object(map) => map.values_mut().map(|c| apply(c, rest, action, key)).sum(),
            Value::Array(list) => list.iter_mut().map(|c| apply(c, rest, action, key)).sum(),
            _ => 0,
        },
        Step::Descend(name) => {
            let mut n = 0;
            if let Value::Object(map) = v {
                n += if remove {
                    usize::from(map.remove(name).is_some())
                } else {
                    map.get_mut(name).map_or(0, |c| apply(c, rest, action, key))
                };
            }
            // Then the same search one level down (in what is left).
            match v {
                Value::Object(map) => {
                    for c in map.values_mut() {
                        n += apply(c, steps, action, key);
                    }
                }
                Value::Array(list) => {
                    for c in list.iter_mut() {
                        n += apply(c, steps, action, key);
                    }
                }
                _ => {}
            }
            n
        }
    }
}

/// Applies every selector of a rule.
pub fn apply_all(v: &mut Value, selectors: &[Selector], action: &Action, key: &HashKey) -> usize {
    selectors.iter().map(|s| apply(v, &s.steps, action, key)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(sel: &str, action: Action, mut v: Value) -> Value {
        let s = Selector::parse(sel).unwrap();
        apply_all(&mut v, &[s], &action, &HashKey::new(b"key"));
        v
    }

    #[test]
    fn parses_the_subset_and_refuses_the_rest() {
        assert_eq!(
            Selector::parse("$.items[*].card['e-mail'][2]..password").unwrap().steps,
            vec![
                Step::Child("items".into()),
                Step::Any,
                Step::Child("card".into()),
                Step::Child("e-mail".into()),
                Step::Index(2),
                Step::Descend("password".into())
            ]
        );
        for bad in ["a.b", "$", "$.", "$..", "$..*", "$[?(@.x)]", "$[1:2]", "$['x'", "$.a b", "$x"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn removes_masks_and_hashes_nested_values() {
        let doc = json!({"user": {"name": "Ada", "password": "p1", "cards": [{"number": "4111111111111111"}, {"number": "5500000000000004"}]},
                         "items": [{"password": "p2", "x": 1}], "password": "p0", "ключ": {"password": "p3"}});
        let removed = run("$..password", Action::Remove, doc.clone());
        assert!(!removed.to_string().contains("password"), "{removed}");
        assert_eq!(removed["user"]["name"], "Ada");
        assert_eq!(removed["items"][0]["x"], 1);
        let masked = run("$.user.cards[*].number", Action::Mask { keep_last: 4 }, doc.clone());
        assert_eq!(masked["user"]["cards"][0]["number"], "************1111");
        assert_eq!(masked["user"]["cards"][1]["number"], "************0004");
        let short = run("$.password", Action::Mask { keep_last: 4 }, doc.clone());
        assert_eq!(short["password"], "*0", "short values keep at most half");
        let hashed = run("$.user.name", Action::Hash, doc.clone());
        let h = hashed["user"]["name"].as_str().unwrap();
        assert!(h.starts_with("hmac-sha256:") && h.len() == 12 + 32, "{h}");
        assert_eq!(run("$.user.name", Action::Hash, doc.clone())["user"]["name"], h, "deterministic");
        let one = run("$.user.cards[1]", Action::Remove, doc.clone());
        assert_eq!(one["user"]["cards"].as_array().unwrap().len(), 1);
        assert_eq!(run("$.nope.deeper", Action::Remove, doc.clone()), doc);
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let mac = HashKey::new(b"Jefe").mac(b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
