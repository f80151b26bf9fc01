//! YAML 1.2 (and so JSON) read into a tree that remembers where each value starts, so a
//! configuration error's field path can be reported as a line of the file the user wrote.
//!
//! Scalars resolve by the YAML 1.2 core schema: `no`, `yes`, `on` and `off` stay strings, and so
//! do dates (`2020-01-01`), as OpenAPI means them; only `true`/`false`, `null`/`~`, and numbers
//! are anything else. Anchors and aliases are expanded, and `<<` merge keys (not 1.2, but the
//! YAML tools OpenAPI users have write them) merge mappings, keys of the mapping itself winning.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A value and the line (1-based) it starts on.
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub value: Tree,
    /// Its first line.
    pub line: usize,
    /// For a literal (`|`) or folded block scalar, the line its text starts on.
    pub block: Option<usize>,
}

/// A YAML value.
#[derive(Debug, Clone)]
pub enum Tree {
    /// A scalar, resolved.
    Scalar(Value),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(String, Node)>),
}

/// Why a YAML text cannot be read.
#[derive(Debug)]
pub struct YamlError {
    /// Where (1-based).
    pub line: usize,
    /// What.
    pub message: String,
}

impl Node {
    /// The member `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Tree::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string value, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Tree::Scalar(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The JSON value (mapping order kept).
    pub fn to_json(&self) -> Value {
        match &self.value {
            Tree::Scalar(v) => v.clone(),
            Tree::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Tree::Map(entries) => {
                Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<Map<_, _>>())
            }
        }
    }

    /// The line of the value at `path` (`routes[1].match.path`, as configuration errors name
    /// fields), or of the deepest part of it that exists.
    pub fn line_of(&self, path: &str) -> usize {
        // A field inside the OpenAPI document is named by a JSON pointer after `#`.
        let (path, pointer) = path.split_once('#').unwrap_or((path, ""));
        let mut node = self.at_path(path);
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            let next = match &node.value {
                Tree::Map(_) => node.get(&token),
                Tree::Seq(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
                Tree::Scalar(_) => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.line
    }

    fn at_path(&self, path: &str) -> &Node {
        let mut node = self;
        let mut rest = path.trim_start_matches('.');
        while !rest.is_empty() {
            let next = match &node.value {
                Tree::Seq(items) => rest.strip_prefix('[').and_then(|r| {
                    let (index, after) = r.split_once(']')?;
                    Some((items.get(index.parse::<usize>().ok()?)?, after))
                }),
                // Keys may hold dots: take the longest key that the path continues from.
                Tree::Map(entries) => entries
                    .iter()
                    .filter(|(k, _)| {
                        rest.strip_prefix(k.as_str())
                            .is_some_and(|after| after.is_empty() || after.starts_with(['.', '[']))
                    })
                    .max_by_key(|(k, _)| k.len())
                    .map(|(k, v)| (v, rest.get(k.len()..).unwrap_or(""))),
                Tree::Scalar(_) => None,
            };
            let Some((child, after)) = next else { break };
            node = child;
            rest = after.strip_prefix('.').unwrap_or(after);
        }
        node
    }
}

/// Reads every document of a YAML stream.
pub fn load(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, true)
        .map_err(|e| YamlError { line: e.marker().line(), message: e.info().to_string() })?;
    match builder.error {
        Some(e) => Err(e),
        None => Ok(builder.documents),
    }
}

/// A container being read.
enum Frame {
    Seq {
        items: Vec<Node>,
        line: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(String, Node)>,
        merged: Vec<(usize, Node)>,
        key: Option<String>,
        line: usize,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Node>,
    error: Option<YamlError>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError { line, message });
        }
    }

    /// Puts a finished value into its container (or makes it a document).
    fn add(&mut self, node: Node, key_text: Option<String>) {
        let line = node.line;
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, merged, key, .. }) => match key.take() {
                None => match key_text {
                    Some(k) => *key = Some(k),
                    None => self.fail(line, "a mapping key must be a string, number or boolean".into()),
                },
                Some(k) if k == "<<" => merged.push((entries.len(), node)),
                Some(k) => {
                    if entries.iter().any(|(e, _)| *e == k) {
                        self.fail(line, format!("the key `{k}` is given twice in one mapping"));
                    } else {
                        entries.push((k, node));
                    }
                }
            },
        }
    }

    /// A mapping's entries with its `<<` merges: the merged mappings' keys (earlier ones first)
    /// where the `<<` stood, except those the mapping sets itself.
    fn merge(&mut self, entries: Vec<(String, Node)>, merged: Vec<(usize, Node)>) -> Vec<(String, Node)> {
        if merged.is_empty() {
            return entries;
        }
        let own: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
        let mut out: Vec<(String, Node)> = Vec::new();
        let mut merged = merged.into_iter().peekable();
        let total = entries.len();
        let mut entries = entries.into_iter();
        for i in 0..=total {
            while let Some((_, source)) = merged.next_if(|(at, _)| *at <= i) {
                let maps = match source.value {
                    Tree::Seq(items) => items,
                    value => vec![Node { value, ..source }],
                };
                for m in maps {
                    match m.value {
                        Tree::Map(more) => {
                            for (k, v) in more {
                                if !own.contains(&k) && !out.iter().any(|(e, _)| *e == k) {
                                    out.push((k, v));
                                }
                            }
                        }
                        _ => self.fail(m.line, "`<<` merges only mappings".into()),
                    }
                }
            }
            if let Some(e) = entries.next() {
                out.push(e);
            }
        }
        out
    }

    fn close(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.add(node, None);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match event {
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq { items: Vec::new(), line, anchor })
            }
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                entries: Vec::new(),
                merged: Vec::new(),
                key: None,
                line,
                anchor,
            }),
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, line, anchor }) = self.stack.pop() {
                    self.close(Node { value: Tree::Seq(items), line, block: None }, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { entries, merged, line, anchor, .. }) = self.stack.pop() {
                    let entries = self.merge(entries, merged);
                    self.close(Node { value: Tree::Map(entries), line, block: None }, anchor);
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                // A block scalar's mark is where its text starts (the line after `|`).
                let block = matches!(style, TScalarStyle::Literal | TScalarStyle::Folded).then_some(line);
                match resolve(&text, style, tag.as_ref()) {
                    Ok(value) => {
                        let node = Node { value: Tree::Scalar(value), line, block };
                        if anchor > 0 {
                            self.anchors.insert(anchor, node.clone());
                        }
                        self.add(node, Some(text));
                    }
                    Err(message) => self.fail(line, message),
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => {
                    let key = match &node.value {
                        Tree::Scalar(Value::String(s)) => Some(s.clone()),
                        Tree::Scalar(v) => Some(v.to_string()),
                        _ => None,
                    };
                    self.add(Node { line, ..node }, key);
                }
                None => self.fail(line, "an alias names no anchor before it".into()),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// A scalar's value by the core schema (an explicit `!!str`, `!!int`... tag decides instead).
fn resolve(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let string = || Ok(Value::String(text.to_string()));
    let explicit = tag.map(|t| match t.handle.as_str() {
        "!!" | "tag:yaml.org,2002:" => t.suffix.as_str(),
        _ if t.handle == "!" && t.suffix.is_empty() => "str",
        _ => "",
    });
    match explicit {
        Some("str") | Some("binary") | Some("timestamp") => return string(),
        Some("int") | Some("float") | Some("bool") | Some("null") => {}
        Some(_) => {
            let name = tag.map(|t| format!("{}{}", t.handle, t.suffix)).unwrap_or_default();
            return Err(format!("the tag `{name}` has no JSON form"));
        }
        None if style != TScalarStyle::Plain => return string(),
        None => {}
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Some(n) = integer(text) {
        return Ok(Value::Number(n));
    }
    if is_float(text) {
        return match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => Err(format!("`{text}` is a number JSON cannot hold")),
        };
    }
    let lower = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if lower == ".inf" || lower == ".nan" {
        return Err(format!("`{text}` is a number JSON cannot hold"));
    }
    string()
}

fn integer(text: &str) -> Option<Number> {
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = text.strip_prefix("0x") {
        return digits(hex, 16).then(|| u64::from_str_radix(hex, 16).ok().map(Number::from)).flatten();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return digits(oct, 8).then(|| u64::from_str_radix(oct, 8).ok().map(Number::from)).flatten();
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits(unsigned, 10) {
        return None;
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    text.parse::<i64>()
        .ok()
        .map(Number::from)
        .or_else(|| text.parse::<u64>().ok().map(Number::from))
        .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (s.get(..i).unwrap_or(""), Some(s.get(i + 1..).unwrap_or(""))),
        None => (s, None),
    };
    let all_digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, frac)) => {
            (whole.is_empty() && !frac.is_empty() && all_digits(frac))
                || (!whole.is_empty() && all_digits(whole) && all_digits(frac))
        }
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        load(text).expect("loads").first().expect("a document").to_json()
    }

    #[test]
    fn yaml_1_2_scalars() {
        let v = json("a: no\nb: yes\nc: on\nd: 2020-01-01\ne: true\nf: ~\ng: 012\nh: 1.50\ni: '12'\nj: 0x1F\nk: 1e3\nl: .5\nm: 12:30\n");
        assert_eq!(
            v,
            serde_json::json!({
                "a": "no", "b": "yes", "c": "on", "d": "2020-01-01", "e": true, "f": null, "g": 12,
                "h": 1.5, "i": "12", "j": 31, "k": 1000.0, "l": 0.5, "m": "12:30"
            })
        );
    }

    #[test]
    fn keys_are_strings_as_written() {
        assert_eq!(json("200: ok\ntrue: x\n"), serde_json::json!({"200": "ok", "true": "x"}));
    }

    #[test]
    fn anchors_aliases_and_merges() {
        let v = json("base: &b {type: string, maxLength: 3}\nx: *b\ny:\n  <<: *b\n  maxLength: 5\n");
        assert_eq!(v["x"], serde_json::json!({"type": "string", "maxLength": 3}));
        assert_eq!(v["y"], serde_json::json!({"type": "string", "maxLength": 5}));
        let keys: Vec<&String> = v["y"].as_object().expect("map").keys().collect();
        assert_eq!(keys, ["type", "maxLength"], "merged keys where the `<<` stood");
    }

    #[test]
    fn duplicate_keys_and_inf_are_errors_with_lines() {
        let e = load("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(e.line, 3);
        assert!(load("a: .inf\n").is_err());
    }

    #[test]
    fn lines_of_paths() {
        let doc =
            load("{\n  \"routes\": [\n    {\"name\": \"a\",\n     \"match\": {\"prefix\": 5}}\n  ]\n}\n")
                .expect("json is yaml");
        let root = doc.first().expect("doc");
        assert_eq!(root.line_of("routes[0].match.prefix"), 4);
        assert_eq!(root.line_of("routes[0].name"), 3);
        assert_eq!(root.line_of("routes[0].nope"), 3);
        assert_eq!(root.line_of("."), 1);
        let doc = load("openapi:\n  document:\n    paths:\n      /u/{id}:\n        get: {}\n").expect("yaml");
        let root = doc.first().expect("doc");
        assert_eq!(root.line_of("openapi.document#/paths/~1u~1{id}/get"), 5);
    }
}
