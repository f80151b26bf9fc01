//! Strict JSON: like `serde_json::from_slice` into a `Value`, but an object with the same
//! member name twice is an error. RFC 8259 leaves duplicates to the implementation; a parser
//! that keeps the last one lets an attacker show one value to a checker and another to the
//! upstream (`{"exp":1,"exp":2000000000}`), so api-guard refuses them wherever it reads
//! untrusted JSON (JWT headers and claims).

use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate member `{key}`")));
            }
            let v = map.next_value_seed(Strict)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// The character a JSON string escape stands for, read from `bytes` at `pos`, just after its
/// backslash; `pos` moves past it. A surrogate pair (`\ud83d\ude00`) is one character; a lone
/// surrogate is an error. Errors are serde_json's words (the configuration reader shows them).
pub fn unescape(bytes: &[u8], pos: &mut usize) -> Result<char, &'static str> {
    let b = *bytes.get(*pos).ok_or("EOF while parsing a string")?;
    *pos += 1;
    Ok(match b {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex4(bytes, pos)?;
            let code = match unit {
                0xD800..=0xDBFF => {
                    if bytes.get(*pos..*pos + 2) != Some(b"\\u") {
                        return Err("lone leading surrogate in hex escape");
                    }
                    *pos += 2;
                    let low = hex4(bytes, pos)?;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return Err("lone leading surrogate in hex escape");
                    }
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                }
                0xDC00..=0xDFFF => return Err("lone trailing surrogate in hex escape"),
                _ => unit,
            };
            char::from_u32(code).ok_or("invalid unicode code point")?
        }
        _ => return Err("invalid escape"),
    })
}

/// Four hex digits of a `\u` escape.
fn hex4(bytes: &[u8], pos: &mut usize) -> Result<u32, &'static str> {
    let digits = bytes.get(*pos..*pos + 4).ok_or("EOF while parsing a string")?;
    let mut value = 0;
    for &d in digits {
        value = value * 16 + char::from(d).to_digit(16).ok_or("invalid escape")?;
    }
    *pos += 4;
    Ok(value)
}

/// A member name as an RFC 6901 pointer token (`~` → `~0`, `/` → `~1`).
pub fn pointer_token(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains(['~', '/']) {
        name.replace('~', "~0").replace('/', "~1").into()
    } else {
        name.into()
    }
}

/// A value parsed by [`parse`].
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Strict.deserialize(d).map(StrictValue)
    }
}

/// Parses `bytes` as one JSON value, refusing duplicate member names at any depth.
/// serde_json's recursion limit (128) bounds nesting, so hostile depth is an error, not a crash.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<StrictValue>(bytes).map(|v| v.0)
}

/// Parses `bytes` as one JSON object (duplicates refused).
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match parse(bytes) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_as_serde_json_decodes_them() {
        for (escape, want) in [
            ("\\\"", Ok('"')),
            ("\\u00e9", Ok('é')),
            ("\\ud83d\\ude00", Ok('😀')),
            ("\\ud83d", Err("lone leading surrogate in hex escape")),
            ("\\ud83d\\u0041", Err("lone leading surrogate in hex escape")),
            ("\\ude00", Err("lone trailing surrogate in hex escape")),
            ("\\u12g4", Err("invalid escape")),
            ("\\u12", Err("EOF while parsing a string")),
            ("\\x", Err("invalid escape")),
        ] {
            let mut pos = 1;
            assert_eq!(unescape(escape.as_bytes(), &mut pos), want, "{escape}");
            if let Ok(c) = want {
                assert_eq!(pos, escape.len(), "{escape}");
                let text = format!("\"{escape}\"");
                assert_eq!(serde_json::from_str::<String>(&text).unwrap(), c.to_string());
            } else {
                assert!(serde_json::from_str::<String>(&format!("\"{escape}\"")).is_err(), "{escape}");
            }
        }
    }

    #[test]
    fn parses_like_serde_json() {
        let text = br#"{"a":[1,-2,3.5,true,null,"x"],"b":{"c":{}}}"#;
        assert_eq!(parse(text).unwrap(), serde_json::from_slice::<Value>(text).unwrap());
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        assert!(parse(br#"{"exp":1,"exp":2}"#).is_err());
        assert!(parse(br#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(parse(br#"[{"x":1},{"y":1,"y":2}]"#).is_err());
        assert!(parse(br#"{"a":1,"A":2}"#).is_ok());
    }

    #[test]
    fn hostile_inputs_are_errors() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
        assert!(parse(b"{\"a\":1} trailing").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
        assert!(parse_object(b"[1]").is_none());
        assert!(parse_object(b"{}").is_some());
    }
}
