//! Parameters: reading path, query, header and cookie values out of a request and turning
//! the strings into the JSON values their schemas describe (`"42"` becomes `42` where the
//! schema says `integer`), so the schema validator can judge them.
//!
//! Every style of OpenAPI 3.0/3.1 is read, exploded or not, for primitives, arrays of
//! primitives and objects of primitives: `simple` (path, header), `label` and `matrix` (path),
//! `form` (query, cookie), `spaceDelimited`, `pipeDelimited` and `deepObject` (query); and
//! parameters described by `content` (a JSON value in the parameter). What OpenAPI leaves
//! undefined (an array of arrays, a style in a place it is not defined for) is refused when
//! the document is loaded, naming the parameter.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::policy::path::percent_decode_lossy;

/// Where a parameter is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    /// A path template segment.
    Path,
    /// A query string parameter.
    Query,
    /// A request header.
    Header,
    /// A cookie.
    Cookie,
}

impl In {
    /// The OpenAPI name, also the first token of error pointers (`/query/limit`).
    pub fn as_str(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }

    /// Parses the `in` field.
    pub fn parse(s: &str) -> Option<In> {
        match s {
            "path" => Some(In::Path),
            "query" => Some(In::Query),
            "header" => Some(In::Header),
            "cookie" => Some(In::Cookie),
            _ => None,
        }
    }
}

/// How a parameter is serialised (OpenAPI `style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `5`, `3,4,5`, `role,admin` / `role=admin` (path and header default).
    Simple,
    /// `.5`, `.3.4.5`, `.role=admin` (path).
    Label,
    /// `;id=5`, `;id=3,4,5` / `;id=3;id=4`, `;role=admin` (path).
    Matrix,
    /// `id=5`, `id=3,4,5` / `id=3&id=4`, `role=admin&…` (query and cookie default).
    Form,
    /// `id=3%204%205` (query arrays and objects).
    SpaceDelimited,
    /// `id=3|4|5` (query arrays and objects).
    PipeDelimited,
    /// `id[role]=admin&id[name]=Alex` (query objects).
    DeepObject,
}

impl Style {
    /// Parses `style` for a parameter in `at`; `Err` names what is wrong.
    pub fn parse(style: Option<&str>, at: In) -> Result<Style, String> {
        let s = match style {
            None => return Ok(Style::default_for(at)),
            Some(s) => s,
        };
        let parsed = match s {
            "simple" => Style::Simple,
            "label" => Style::Label,
            "matrix" => Style::Matrix,
            "form" => Style::Form,
            "spaceDelimited" => Style::SpaceDelimited,
            "pipeDelimited" => Style::PipeDelimited,
            "deepObject" => Style::DeepObject,
            other => return Err(format!("style '{other}' is not an OpenAPI style")),
        };
        let fits = match at {
            In::Path => matches!(parsed, Style::Simple | Style::Label | Style::Matrix),
            In::Query => {
                matches!(
                    parsed,
                    Style::Form | Style::SpaceDelimited | Style::PipeDelimited | Style::DeepObject
                )
            }
            In::Header => parsed == Style::Simple,
            In::Cookie => parsed == Style::Form,
        };
        if fits {
            Ok(parsed)
        } else {
            Err(format!("style '{s}' is not defined for {} parameters", at.as_str()))
        }
    }

    /// The style a parameter in `at` has when the document names none.
    pub fn default_for(at: In) -> Style {
        match at {
            In::Path | In::Header => Style::Simple,
            In::Query | In::Cookie => Style::Form,
        }
    }
}

/// What a parameter's string is turned into before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Kept as a string (also for schemas without a `type`).
    String,
    /// An integer if it parses as one.
    Integer,
    /// A number if it parses as one.
    Number,
    /// `true` / `false`.
    Boolean,
    /// A list of values of the inner kind.
    Array(Box<Kind>),
    /// An object: its declared members' kinds, and the kind of any other member.
    Object(BTreeMap<String, Kind>, Box<Kind>),
    /// JSON text (a parameter described by `content` with a JSON media type).
    Json,
}

impl Kind {
    /// The kind a schema's `type` asks for (`null` in a type list is ignored). `resolve`
    /// follows a sub-schema's `$ref` (for `items` and `properties`).
    pub fn of(schema: &Value, resolve: &dyn Fn(&Value) -> Option<Value>) -> Result<Kind, String> {
        Kind::of_depth(schema, resolve, 0)
    }

    fn of_depth(
        schema: &Value,
        resolve: &dyn Fn(&Value) -> Option<Value>,
        depth: u8,
    ) -> Result<Kind, String> {
        let ty = match schema.get("type") {
            Some(Value::String(t)) => Some(t.as_str()),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).find(|t| *t != "null"),
            // No `type`, but members: an object.
            None if schema.get("properties").is_some() => Some("object"),
            _ => None,
        };
        Ok(match ty {
            Some("integer") => Kind::Integer,
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some("array") if depth > 0 => Kind::String,
            Some("array") => {
                let inner = match schema.get("items").and_then(resolve) {
                    Some(item) if item.get("type").and_then(Value::as_str) == Some("array") => {
                        return Err("arrays of arrays cannot be sent as parameters (OpenAPI defines no serialisation for them)".into());
                    }
                    Some(item) => Kind::of_depth(&item, resolve, depth + 1)?,
                    None => Kind::String,
                };
                Kind::Array(Box::new(inner))
            }
            // An object inside an object or array stays text, which its schema then refuses.
            Some("object") if depth > 0 => Kind::String,
            Some("object") => {
                let mut members = BTreeMap::new();
                if let Some(Value::Object(props)) = schema.get("properties") {
                    for (name, sub) in props {
                        let sub = resolve(sub).unwrap_or_else(|| sub.clone());
                        members.insert(name.clone(), Kind::of_depth(&sub, resolve, depth + 1)?);
                    }
                }
                let rest = match schema.get("additionalProperties").and_then(resolve) {
                    Some(sub) if sub.is_object() => Kind::of_depth(&sub, resolve, depth + 1)?,
                    _ => Kind::String,
                };
                Kind::Object(members, Box::new(rest))
            }
            _ => Kind::String,
        })
    }

    /// The kind of an object's member `name` (its declared kind, else the others' kind).
    fn member(&self, name: &str) -> &Kind {
        match self {
            Kind::Object(members, rest) => members.get(name).unwrap_or(rest),
            other => other,
        }
    }

    /// Converts one string. A string that does not parse stays a string, so the schema's
    /// `type` keyword reports it.
    pub fn coerce(&self, raw: &str) -> Value {
        match self {
            Kind::Integer => raw
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| raw.parse::<u64>().map(Value::from))
                .unwrap_or_else(|_| Value::String(raw.to_string())),
            Kind::Number => {
                let n =
                    raw.parse::<i64>().ok().map(Number::from).or_else(|| {
                        raw.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(Number::from_f64)
                    });
                n.map_or_else(|| Value::String(raw.to_string()), Value::Number)
            }
            Kind::Boolean => match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(raw.to_string()),
            },
            Kind::String => Value::String(raw.to_string()),
            Kind::Array(inner) => Value::Array(raw.split(',').map(|s| inner.coerce(s)).collect()),
            // Text that is not JSON stays text, which the schema then judges.
            Kind::Json => {
                serde_json::from_slice(raw.as_bytes()).unwrap_or_else(|_| Value::String(raw.to_string()))
            }
            Kind::Object(..) => self.object(raw.split(',').map(str::to_string).collect(), false),
        }
    }

    /// An object from its serialised pieces: `k=v` pairs (`exploded`), or alternating
    /// `k, v` items. A key without a value gets an empty string.
    fn object(&self, pieces: Vec<String>, exploded: bool) -> Value {
        let mut out = Map::new();
        if exploded {
            for p in pieces {
                let (k, v) = p.split_once('=').unwrap_or((&p, ""));
                out.insert(k.to_string(), self.member(k).coerce(v));
            }
        } else {
            let mut it = pieces.into_iter();
            while let Some(k) = it.next() {
                let v = it.next().unwrap_or_default();
                let value = self.member(&k).coerce(&v);
                out.insert(k, value);
            }
        }
        Value::Object(out)
    }

    /// The value from serialised pieces: one piece for a primitive, each piece an item of
    /// an array, pairs or alternating keys and values of an object.
    fn assemble(&self, pieces: Vec<String>, exploded: bool) -> Option<Value> {
        match self {
            Kind::Array(inner) => Some(Value::Array(pieces.iter().map(|p| inner.coerce(p)).collect())),
            Kind::Object(..) => Some(self.object(pieces, exploded)),
            _ => pieces.first().map(|p| self.coerce(p)),
        }
    }

    /// Converts every occurrence of a form field: an exploded array takes one value per
    /// occurrence; anything else takes the first.
    pub fn coerce_all(&self, values: &[String], explode: bool) -> Option<Value> {
        match self {
            Kind::Array(inner) if explode => {
                Some(Value::Array(values.iter().map(|v| inner.coerce(v)).collect()))
            }
            _ => values.first().map(|v| self.coerce(v)),
        }
    }
}

/// Splits on any of `seps` and percent-decodes each piece (a delimiter sent encoded is data).
fn pieces(raw: &str, seps: &[char]) -> Vec<String> {
    raw.split(seps).map(|p| percent_decode_lossy(p, false)).collect()
}

/// A path parameter's value from its (still percent-encoded) text in the path. `None` when
/// the text does not have the style's form (a `label` value without its `.`, a `matrix` one
/// without `;name=`): the parameter was not sent as documented.
pub fn path_value(kind: &Kind, style: Style, explode: bool, name: &str, raw: &str) -> Option<Value> {
    let scalar = !matches!(kind, Kind::Array(_) | Kind::Object(..));
    match style {
        Style::Label => {
            let rest = raw.strip_prefix('.')?;
            if scalar {
                return Some(kind.coerce(&percent_decode_lossy(rest, false)));
            }
            // Non-exploded lists are `,`-separated in RFC 6570 and `.`-separated in the
            // OpenAPI 3.0 table: both are read.
            let seps: &[char] = if explode { &['.'] } else { &['.', ','] };
            kind.assemble(pieces(rest, seps), explode)
        }
        Style::Matrix => {
            let rest = raw.strip_prefix(';')?;
            match (kind, explode) {
                (Kind::Object(..), true) => kind.assemble(pieces(rest, &[';']), true),
                (Kind::Array(_), true) => {
                    let items: Option<Vec<String>> = rest
                        .split(';')
                        .map(|p| {
                            p.strip_prefix(name)?.strip_prefix('=').map(|v| percent_decode_lossy(v, false))
                        })
                        .collect();
                    kind.assemble(items?, true)
                }
                _ => {
                    let value = rest.strip_prefix(name)?;
                    // `;id` with no value is the empty string (RFC 6570).
                    let value = value.strip_prefix('=').unwrap_or(value);
                    if scalar {
                        Some(kind.coerce(&percent_decode_lossy(value, false)))
                    } else {
                        kind.assemble(pieces(value, &[',']), false)
                    }
                }
            }
        }
        _ => {
            if scalar {
                Some(kind.coerce(&percent_decode_lossy(raw, false)))
            } else {
                kind.assemble(pieces(raw, &[',']), explode)
            }
        }
    }
}

/// A query parameter's value from the decoded query pairs. `None` when it was not sent.
pub fn query_value(
    kind: &Kind,
    style: Style,
    explode: bool,
    name: &str,
    pairs: &[(String, String)],
) -> Option<Value> {
    if style == Style::DeepObject {
        // `name[member]=v`; a deeper `name[a][b]` makes `a` an object of `b`. The style defines
        // objects only, so `name[]=v` is the member "" (as Schemathesis also writes it).
        let mut out = Map::new();
        for (n, v) in pairs {
            let Some(rest) = n.strip_prefix(name).and_then(|r| r.strip_prefix('[')) else { continue };
            let keys: Vec<&str> = rest.trim_end_matches(']').split("][").collect();
            let (last, path) = keys.split_last()?;
            let mut at = &mut out;
            for k in path {
                let slot = at.entry(k.to_string()).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let Value::Object(next) = slot else { return None };
                at = next;
            }
            let member = if path.is_empty() { kind.member(last) } else { &Kind::String };
            at.insert(last.to_string(), member.coerce(v));
        }
        return (!out.is_empty()).then_some(Value::Object(out));
    }
    if let (Kind::Object(members, _), true) = (kind, explode) {
        // An exploded object's members are query parameters of their own.
        let mut out = Map::new();
        for (n, v) in pairs {
            if let Some(k) = members.get(n) {
                out.entry(n.clone()).or_insert_with(|| k.coerce(v));
            }
        }
        return (!out.is_empty()).then_some(Value::Object(out));
    }
    let values: Vec<&String> = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v).collect();
    let first = values.first()?;
    match kind {
        Kind::Array(inner) if explode => Some(Value::Array(values.iter().map(|v| inner.coerce(v)).collect())),
        Kind::Array(_) | Kind::Object(..) => {
            let sep = match style {
                Style::SpaceDelimited => ' ',
                Style::PipeDelimited => '|',
                _ => ',',
            };
            kind.assemble(first.split(sep).map(str::to_string).collect(), false)
        }
        _ => Some(kind.coerce(first)),
    }
}

/// A header or cookie parameter's value from its text (`simple` and `form`: `,`-separated
/// lists; an exploded header object is `k=v` pairs).
pub fn text_value(kind: &Kind, explode: bool, raw: &str) -> Value {
    match kind {
        Kind::Array(_) | Kind::Object(..) => kind
            .assemble(raw.split(',').map(|p| p.trim().to_string()).collect(), explode)
            .unwrap_or(Value::Null),
        _ => kind.coerce(raw),
    }
}

/// The pairs of a query string or form body, decoded, in order.
pub fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode_lossy(n, true), percent_decode_lossy(v, true))
        })
        .collect()
}

/// The pairs of a `Cookie` header.
pub fn cookie_pairs(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|c| {
            let (n, v) = c.split_once('=')?;
            Some((n.trim().to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coerces_by_type() {
        let k = |s: Value| Kind::of(&s, &|v| Some(v.clone())).unwrap();
        assert_eq!(k(json!({"type": "integer"})).coerce("42"), json!(42));
        assert_eq!(k(json!({"type": "integer"})).coerce("4x"), json!("4x"));
        assert_eq!(k(json!({"type": "number"})).coerce("2.5"), json!(2.5));
        assert_eq!(k(json!({"type": "number"})).coerce("NaN"), json!("NaN"));
        assert_eq!(k(json!({"type": ["boolean", "null"]})).coerce("true"), json!(true));
        assert_eq!(k(json!({"type": "string"})).coerce("42"), json!("42"));
        let arr = k(json!({"type": "array", "items": {"type": "integer"}}));
        assert_eq!(arr.coerce("1,2,x"), json!([1, 2, "x"]));
        assert_eq!(arr.coerce_all(&["1".into(), "2".into()], true), Some(json!([1, 2])));
        assert_eq!(arr.coerce_all(&[], true), Some(json!([])));
        assert_eq!(Kind::String.coerce_all(&[], false), None);
        assert!(
            Kind::of(&json!({"type": "array", "items": {"type": "array"}}), &|v| Some(v.clone())).is_err()
        );
    }

    fn obj() -> Kind {
        let schema =
            json!({"type": "object", "properties": {"role": {"type": "string"}, "n": {"type": "integer"}}});
        Kind::of(&schema, &|v| Some(v.clone())).unwrap()
    }

    fn arr() -> Kind {
        Kind::of(&json!({"type": "array", "items": {"type": "integer"}}), &|v| Some(v.clone())).unwrap()
    }

    /// The serialisation table of the OpenAPI 3.0.3 / 3.1 specification, path styles.
    #[test]
    fn path_styles() {
        let int = Kind::Integer;
        let pv = |k: &Kind, s, e, raw| path_value(k, s, e, "id", raw);
        assert_eq!(pv(&int, Style::Simple, false, "5"), Some(json!(5)));
        assert_eq!(pv(&arr(), Style::Simple, false, "3,4,5"), Some(json!([3, 4, 5])));
        assert_eq!(
            pv(&obj(), Style::Simple, false, "role,admin,n,2"),
            Some(json!({"role": "admin", "n": 2}))
        );
        assert_eq!(pv(&obj(), Style::Simple, true, "role=admin,n=2"), Some(json!({"role": "admin", "n": 2})));
        assert_eq!(pv(&int, Style::Label, false, ".5"), Some(json!(5)));
        assert_eq!(pv(&arr(), Style::Label, false, ".3,4,5"), Some(json!([3, 4, 5])));
        assert_eq!(pv(&arr(), Style::Label, false, ".3.4.5"), Some(json!([3, 4, 5])));
        assert_eq!(pv(&arr(), Style::Label, true, ".3.4.5"), Some(json!([3, 4, 5])));
        assert_eq!(pv(&obj(), Style::Label, true, ".role=admin.n=2"), Some(json!({"role": "admin", "n": 2})));
        assert_eq!(pv(&int, Style::Label, false, "5"), None, "a label value starts with '.'");
        assert_eq!(pv(&int, Style::Matrix, false, ";id=5"), Some(json!(5)));
        assert_eq!(pv(&arr(), Style::Matrix, false, ";id=3,4,5"), Some(json!([3, 4, 5])));
        assert_eq!(pv(&arr(), Style::Matrix, true, ";id=3;id=4;id=5"), Some(json!([3, 4, 5])));
        assert_eq!(
            pv(&obj(), Style::Matrix, false, ";id=role,admin,n,2"),
            Some(json!({"role": "admin", "n": 2}))
        );
        assert_eq!(
            pv(&obj(), Style::Matrix, true, ";role=admin;n=2"),
            Some(json!({"role": "admin", "n": 2}))
        );
        assert_eq!(pv(&int, Style::Matrix, false, ";other=5"), None);
        // A delimiter sent percent-encoded is data.
        assert_eq!(pv(&Kind::String, Style::Simple, false, "a%2Cb"), Some(json!("a,b")));
        assert_eq!(
            pv(&Kind::Array(Box::new(Kind::String)), Style::Simple, false, "a%2Cb,c"),
            Some(json!(["a,b", "c"]))
        );
    }

    /// The same table, query styles.
    #[test]
    fn query_styles() {
        let q = |k: &Kind, s, e, query: &str| query_value(k, s, e, "id", &form_pairs(query));
        assert_eq!(q(&Kind::Integer, Style::Form, true, "id=5"), Some(json!(5)));
        assert_eq!(q(&Kind::Integer, Style::Form, true, "x=5"), None);
        assert_eq!(q(&arr(), Style::Form, true, "id=3&id=4&id=5"), Some(json!([3, 4, 5])));
        assert_eq!(q(&arr(), Style::Form, false, "id=3,4,5"), Some(json!([3, 4, 5])));
        assert_eq!(
            q(&obj(), Style::Form, true, "role=admin&n=2&other=x"),
            Some(json!({"role": "admin", "n": 2}))
        );
        assert_eq!(
            q(&obj(), Style::Form, false, "id=role,admin,n,2"),
            Some(json!({"role": "admin", "n": 2}))
        );
        assert_eq!(q(&arr(), Style::SpaceDelimited, false, "id=3%204%205"), Some(json!([3, 4, 5])));
        assert_eq!(q(&arr(), Style::PipeDelimited, false, "id=3|4|5"), Some(json!([3, 4, 5])));
        assert_eq!(
            q(&obj(), Style::PipeDelimited, false, "id=role|admin|n|2"),
            Some(json!({"role": "admin", "n": 2}))
        );
        assert_eq!(
            q(&obj(), Style::DeepObject, true, "id%5Brole%5D=admin&id[n]=2&other=1"),
            Some(json!({"role": "admin", "n": 2}))
        );
        assert_eq!(q(&obj(), Style::DeepObject, true, "id[a][b]=x"), Some(json!({"a": {"b": "x"}})));
        assert_eq!(q(&obj(), Style::DeepObject, true, "idx[role]=admin"), None);
        assert_eq!(
            q(&obj(), Style::DeepObject, true, "id[]=a"),
            Some(json!({"": "a"})),
            "the member named ''"
        );
        assert_eq!(q(&Kind::Json, Style::Form, true, "id=%7B%22a%22%3A1%7D"), Some(json!({"a": 1})));
        assert_eq!(q(&Kind::Json, Style::Form, true, "id=nope"), Some(json!("nope")));
    }

    #[test]
    fn styles_fit_their_places() {
        assert_eq!(Style::parse(None, In::Query), Ok(Style::Form));
        assert_eq!(Style::parse(Some("deepObject"), In::Query), Ok(Style::DeepObject));
        assert!(Style::parse(Some("matrix"), In::Query).unwrap_err().contains("not defined for query"));
        assert!(Style::parse(Some("fancy"), In::Path).unwrap_err().contains("not an OpenAPI style"));
        assert_eq!(text_value(&arr(), false, "1, 2"), json!([1, 2]));
        assert_eq!(text_value(&obj(), true, "role=admin,n=2"), json!({"role": "admin", "n": 2}));
    }

    #[test]
    fn decodes_queries_and_cookies() {
        assert_eq!(
            form_pairs("a=1&b=x+y%21&&c&d=%zz"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y!".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into())
            ]
        );
        assert_eq!(percent_decode_lossy("%ff", false), "\u{fffd}");
        assert_eq!(cookie_pairs("a=1; b=\"2\";c"), vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
    }
}
