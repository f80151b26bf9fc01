//! Parameters: reading path, query, header and cookie values out of a request and turning
//! the strings into the JSON values their schemas describe (`"42"` becomes `42` where the
//! schema says `integer`), so the schema validator can judge them.
//!
//! Supported serialisations are the OpenAPI defaults: `simple` for path and header values,
//! `form` (exploded or not) for query and cookie values, for primitives and arrays of
//! primitives. Anything else is refused when the document is loaded.

use serde_json::{Number, Value};

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
}

impl Kind {
    /// The kind a schema's `type` asks for (`null` in a type list is ignored). `items` gives
    /// an array schema's item schema, already resolved.
    pub fn of(schema: &Value, items: &dyn Fn(&Value) -> Option<Value>) -> Result<Kind, String> {
        let ty = match schema.get("type") {
            Some(Value::String(t)) => Some(t.as_str()),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).find(|t| *t != "null"),
            _ => None,
        };
        Ok(match ty {
            Some("integer") => Kind::Integer,
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some("array") => {
                let inner = match schema.get("items").and_then(items) {
                    Some(item) => Kind::of(&item, &|_| None)?,
                    None => Kind::String,
                };
                if matches!(inner, Kind::Array(_)) {
                    return Err("arrays of arrays cannot be sent as parameters".into());
                }
                Kind::Array(Box::new(inner))
            }
            Some("object") => {
                return Err("object parameters (deepObject and friends) are not supported".into())
            }
            _ => Kind::String,
        })
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
        }
    }

    /// Converts every occurrence of a parameter: an exploded array takes one value per
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
        assert!(Kind::of(&json!({"type": "object"}), &|_| None).is_err());
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
