//! Reading an OpenAPI document into the tree the compile walks, leaving out what no check
//! reads: descriptions, summaries, examples, external docs and `x-` extensions (except the
//! two an operation's deprecation reads, `x-deprecated-at` and `x-sunset`). In real documents
//! that prose is about half the bytes (54% of GitHub's REST API description), and a wasm
//! memory keeps the peak the tree reached, in every worker, for the life of the VM.
//!
//! What is left out is decided by where a member sits, not by its name alone: a schema's
//! `properties` map, like every map keyed by names the API chose (`paths`, `responses`,
//! `content`, `components.schemas`, ...), keeps all its members, so a property called
//! `description` or `example` stays; the values of `enum`, `const` and `default` are data and
//! are kept as written. A left-out member is still read (the document must be JSON), so every
//! pointer into what is kept stays the same. Objects and arrays are made at their final size.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Members of an OpenAPI or JSON Schema object that are annotations only.
const LEFT_OUT: [&str; 6] = ["description", "summary", "example", "examples", "externalDocs", "$comment"];

/// The `x-` extensions api-guard reads (on an operation).
const EXTENSIONS_READ: [&str; 2] = ["x-deprecated-at", "x-sunset"];

/// Members whose value, when an object, is keyed by names the API chose (every member kept).
const NAMED: [&str; 23] = [
    "paths",
    "webhooks",
    "callbacks",
    "pathItems",
    "schemas",
    "responses",
    "parameters",
    "requestBodies",
    "headers",
    "securitySchemes",
    "links",
    "content",
    "encoding",
    "variables",
    "mapping",
    "scopes",
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
    "dependentRequired",
    "dependencies",
];

/// Members whose value is data, kept exactly as written.
const DATA: [&str; 3] = ["enum", "const", "default"];

/// What the value being read is.
#[derive(Clone, Copy)]
enum Place {
    /// An OpenAPI object or a schema: annotations are left out.
    Object,
    /// A map keyed by the API's names: every member kept, each value an `Object`.
    Names,
    /// A `security` list: each element a map keyed by scheme names.
    Requirements,
}

impl<'de> DeserializeSeed<'de> for Place {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Place {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
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
        let element = match self {
            Place::Requirements => Place::Names,
            Place::Object | Place::Names => Place::Object,
        };
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(element)? {
            out.push(v);
        }
        // Without the growth's spare room: the tree is held whole while it is read.
        out.shrink_to_fit();
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        // Members are gathered first and the map made at its final size: a map grown member
        // by member keeps up to half its room spare, and the whole tree is held at once.
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = match self {
                Place::Names | Place::Requirements => map.next_value_seed(Place::Object)?,
                Place::Object => {
                    let k = key.as_str();
                    if LEFT_OUT.contains(&k) || (k.starts_with("x-") && !EXTENSIONS_READ.contains(&k)) {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    if DATA.contains(&k) || k.starts_with("x-") {
                        map.next_value::<Value>()?
                    } else if k == "security" {
                        map.next_value_seed(Place::Requirements)?
                    } else if NAMED.contains(&k) {
                        map.next_value_seed(Place::Names)?
                    } else {
                        map.next_value_seed(Place::Object)?
                    }
                }
            };
            out.push((key, v));
        }
        let mut object = Map::with_capacity(out.len());
        for (k, v) in out {
            // A name given twice: the last one counts, as serde_json's own reading does.
            object.insert(k, v);
        }
        Ok(Value::Object(object))
    }
}

/// Reads `openapi.document` (serde's `deserialize_with`).
pub fn document<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Place::Object.deserialize(d)
}

/// Reads a document from JSON text, as [`document`] does inside a configuration.
pub fn from_str(text: &str) -> Result<Value, serde_json::Error> {
    struct Doc(Value);
    impl<'de> Deserialize<'de> for Doc {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
            document(d).map(Doc)
        }
    }
    serde_json::from_slice::<Doc>(text.as_bytes()).map(|d| d.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Value {
        from_str(&v.to_string()).unwrap()
    }

    #[test]
    fn annotations_are_left_out_where_they_are_annotations() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1", "description": "long prose", "x-logo": {"url": "u"}},
            "paths": {"/a": {"summary": "s", "get": {
                "description": "d", "operationId": "op", "x-sunset": "2030-01-01T00:00:00Z",
                "x-internal": true, "externalDocs": {"url": "u"},
                "parameters": [{"name": "q", "in": "query", "description": "d", "example": 1,
                                "schema": {"type": "integer", "examples": [1], "$comment": "c"}}],
                "responses": {"200": {"description": "ok"}, "default": {"description": "error"}}
            }}},
            "components": {"examples": {"e": {"value": {"$ref": "#/nowhere"}}}}
        });
        assert_eq!(
            read(doc),
            json!({
                "openapi": "3.1.0",
                "info": {"title": "t", "version": "1"},
                "paths": {"/a": {"get": {
                    "operationId": "op", "x-sunset": "2030-01-01T00:00:00Z",
                    "parameters": [{"name": "q", "in": "query", "schema": {"type": "integer"}}],
                    "responses": {"200": {}, "default": {}}
                }}},
                "components": {}
            })
        );
    }

    #[test]
    fn names_the_api_chose_are_kept() {
        let schema = json!({
            "type": "object",
            "required": ["description", "example"],
            "properties": {
                "description": {"type": "string", "description": "the item's description"},
                "example": {"type": "object", "properties": {"summary": {"type": "string"}}},
                "x-count": {"type": "integer"},
                "properties": {"type": "object", "properties": {"examples": {"type": "array"}}}
            },
            "patternProperties": {"^x-": {"type": "string"}},
            "dependentRequired": {"description": ["example"]},
            "enum": [{"description": "kept", "x-y": 1}],
            "const": {"example": 1},
            "default": {"summary": "kept"}
        });
        let doc = json!({
            "components": {"schemas": {"description": schema.clone(), "example": {"type": "string"}},
                           "securitySchemes": {"x-api-key": {"type": "apiKey", "name": "k", "in": "header"}}},
            "paths": {"/a": {"get": {"security": [{"x-api-key": [], "description": []}],
                "responses": {"200": {"content": {"application/json": {"schema": schema.clone(), "examples": {"a": {}}}}}}}}}
        });
        let mut want = doc.clone();
        want["paths"]["/a"]["get"]["responses"]["200"]["content"]["application/json"]
            .as_object_mut()
            .unwrap()
            .remove("examples");
        for at in [
            "/components/schemas/description",
            "/paths/~1a/get/responses/200/content/application~1json/schema",
        ] {
            want.pointer_mut(&format!("{at}/properties/description"))
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove("description");
        }
        assert_eq!(read(doc), want);
    }

    #[test]
    fn a_document_that_is_not_json_is_still_an_error() {
        assert!(from_str(r#"{"info": {"description": [1, }}"#).is_err());
        assert!(from_str(r#"{"x-a": tru}"#).is_err());
    }
}
