use serde_json::{json, Value};

use crate::policy::authz::NoState;
use crate::policy::body::BodyTarget;
use crate::policy::denial::Reason;
use crate::policy::{config, BodyPlan, HeadDecision, Policy, RequestHead};

const PETSTORE: &str = include_str!("../../../tests/fixtures/openapi/petstore.json");

fn policy_with(options: Value) -> Policy {
    let mut openapi = json!({"document": serde_json::from_str::<Value>(PETSTORE).unwrap()});
    if let (Some(o), Value::Object(extra)) = (openapi.as_object_mut(), options) {
        o.extend(extra);
    }
    let cfg = json!({"openapi": openapi});
    config::parse(cfg.to_string().as_bytes()).unwrap()
}

fn decide(p: &Policy, method: &str, path: &str, extra: &[(&str, &str)]) -> HeadDecision {
    let mut headers: Vec<(String, Vec<u8>)> =
        vec![(":method".into(), method.as_bytes().to_vec()), (":path".into(), path.as_bytes().to_vec())];
    headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())));
    p.check_head(&RequestHead { headers: &headers, end_of_stream: None }, &NoState, 1_800_000_000)
}

/// (pointer, keyword) of each error of a denial.
fn errors(d: &HeadDecision) -> Vec<(String, String)> {
    d.outcome.as_ref().unwrap_err().errors.iter().map(|e| (e.pointer.clone(), e.keyword.clone())).collect()
}

fn reason(d: &HeadDecision) -> Option<Reason> {
    d.outcome.as_ref().err().map(|e| e.reason)
}

fn target(d: &HeadDecision) -> BodyTarget {
    match &d.outcome {
        Ok(a) => match a.body {
            BodyPlan::Check(c) => c.validate.unwrap(),
            BodyPlan::None => panic!("no body plan"),
        },
        Err(e) => panic!("denied: {e:?}"),
    }
}

fn body_errors(p: &Policy, t: BodyTarget, body: &str) -> Vec<(String, String)> {
    match p.check_body(t, body.as_bytes()) {
        Ok(()) => Vec::new(),
        Err(d) => {
            assert_eq!(d.reason, Reason::InvalidRequest);
            d.errors.into_iter().map(|e| (e.pointer, e.keyword)).collect()
        }
    }
}

fn pair(p: &str, k: &str) -> (String, String) {
    (p.to_string(), k.to_string())
}

#[test]
fn inventory_matches_server_base_template_and_method() {
    let p = policy_with(json!({}));
    assert!(decide(&p, "GET", "/v1/pets", &[]).outcome.is_ok());
    assert!(decide(&p, "HEAD", "/v1/pets", &[]).outcome.is_ok(), "HEAD follows GET");
    // A literal path wins over a template, whatever the document order.
    assert!(decide(&p, "GET", "/v1/pets/mine", &[]).outcome.is_ok());
    // A trailing slash is another path unless the document lists it.
    assert_eq!(reason(&decide(&p, "GET", "/v1/pets/7/", &[])), Some(Reason::UnknownOperation));
    assert_eq!(reason(&decide(&p, "GET", "/v1/dogs", &[])), Some(Reason::UnknownOperation));
    assert_eq!(
        reason(&decide(&p, "GET", "/pets", &[])),
        Some(Reason::UnknownOperation),
        "outside the server base"
    );
    let d = decide(&p, "PATCH", "/v1/pets", &[]);
    assert_eq!(reason(&d), Some(Reason::MethodNotAllowed));
    assert_eq!(d.outcome.unwrap_err().allow.as_deref(), Some("GET, HEAD, POST"));

    let open = policy_with(json!({"unknown_operations": "allow"}));
    assert!(decide(&open, "GET", "/v1/dogs", &[]).outcome.is_ok());
    assert!(decide(&open, "PATCH", "/v1/pets", &[]).outcome.is_ok());
    // Documented operations are still validated.
    assert_eq!(reason(&decide(&open, "GET", "/v1/pets?limit=0", &[])), Some(Reason::InvalidRequest));
}

#[test]
fn parameters_are_typed_and_validated() {
    let p = policy_with(json!({}));
    assert!(decide(&p, "GET", "/v1/pets?limit=10&status=sold&status=pending", &[("x-trace-id", "0123abcd")])
        .outcome
        .is_ok());
    assert_eq!(errors(&decide(&p, "GET", "/v1/pets?limit=0", &[])), vec![pair("/query/limit", "minimum")]);
    assert_eq!(errors(&decide(&p, "GET", "/v1/pets?limit=ten", &[])), vec![pair("/query/limit", "type")]);
    assert_eq!(
        errors(&decide(&p, "GET", "/v1/pets?status=sold&status=lost", &[])),
        vec![pair("/query/status/1", "enum")]
    );
    assert_eq!(
        errors(&decide(&p, "GET", "/v1/pets", &[("x-trace-id", "nothex!!")])),
        vec![pair("/header/X-Trace-Id", "pattern")]
    );
    assert_eq!(errors(&decide(&p, "GET", "/v1/pets/0", &[])), vec![pair("/path/petId", "minimum")]);
    assert_eq!(errors(&decide(&p, "GET", "/v1/pets/abc", &[])), vec![pair("/path/petId", "type")]);
    assert_eq!(errors(&decide(&p, "GET", "/v1/session", &[])), vec![pair("/cookie/sid", "required")]);
    assert_eq!(
        errors(&decide(&p, "GET", "/v1/session", &[("cookie", "a=b; sid=short")])),
        vec![pair("/cookie/sid", "minLength")]
    );
    assert!(decide(&p, "GET", "/v1/session", &[("cookie", "a=b; sid=long-enough")]).outcome.is_ok());
    // Several failures are all reported, and no message repeats a value.
    let d = decide(&p, "GET", "/v1/pets?limit=1000&status=secretvalue", &[]);
    assert_eq!(errors(&d).len(), 2);
    assert!(d.outcome.unwrap_err().errors.iter().all(|e| !e.message.contains("secretvalue")));
}

#[test]
fn bodies_are_validated_by_media_type() {
    let p = policy_with(json!({"reject_unknown_fields": true}));
    let json_ct = [("content-type", "application/json"), ("content-length", "10")];
    let d = decide(&p, "POST", "/v1/pets", &json_ct);
    let t = target(&d);
    assert_eq!(
        body_errors(&p, t, r#"{"name":"Rex","status":"available","tags":[{"label":"good-dog"}]}"#),
        vec![]
    );
    assert_eq!(body_errors(&p, t, r#"{"status":"available"}"#), vec![pair("/body/name", "required")]);
    assert_eq!(body_errors(&p, t, r#"{"name":"R","status":"lost"}"#), vec![pair("/body/status", "enum")]);
    assert_eq!(
        body_errors(&p, t, r#"{"name":"R","status":"sold","tags":[{"label":"ok"},{"label":"NO"}]}"#),
        vec![pair("/body/tags/1/label", "pattern")]
    );
    assert_eq!(
        body_errors(&p, t, r#"{"name":"R","status":"sold","owner":{"address":{"zip":"1"}}}"#),
        vec![pair("/body/owner/address/zip", "pattern")]
    );
    assert_eq!(body_errors(&p, t, r#"{"name":"R","status":"sold","birthday":null}"#), vec![]);
    assert_eq!(
        body_errors(&p, t, r#"{"name":"R","status":"sold","birthday":"not-a-date"}"#),
        vec![pair("/body/birthday", "format")]
    );
    // Mass assignment: a read-only member and an undocumented one, at any depth.
    let mut got =
        body_errors(&p, t, r#"{"id":5,"name":"R","status":"sold","role":"admin","owner":{"isAdmin":true}}"#);
    got.sort();
    assert_eq!(
        got,
        vec![
            pair("/body/id", "readOnly"),
            pair("/body/owner/isAdmin", "additionalProperties"),
            pair("/body/role", "additionalProperties")
        ]
    );
    // writeOnly / password values are never echoed.
    let d = p.check_body(t, br#"{"name":"R","status":"sold","secret":"hunter2"}"#).unwrap_err();
    assert_eq!(d.errors[0].pointer, "/body/secret");
    assert!(!serde_json::to_string(&d.errors).unwrap().contains("hunter2"));

    // Without the option, undocumented members pass (JSON Schema's own rule); readOnly still not.
    let lax = policy_with(json!({}));
    let t2 = target(&decide(&lax, "POST", "/v1/pets", &json_ct));
    assert_eq!(
        body_errors(&lax, t2, r#"{"id":1,"name":"R","status":"sold","role":"x"}"#),
        vec![pair("/body/id", "readOnly")]
    );

    // Presence and media type.
    let no_body = decide(&p, "POST", "/v1/pets", &[("content-length", "0")]);
    assert_eq!(errors(&no_body), vec![pair("/body", "required")]);
    let get_with_body = decide(&p, "GET", "/v1/pets", &json_ct);
    assert_eq!(errors(&get_with_body), vec![pair("/body", "requestBody")]);
    let form_on_post = decide(
        &p,
        "POST",
        "/v1/pets",
        &[("content-type", "application/x-www-form-urlencoded"), ("content-length", "3")],
    );
    assert_eq!(reason(&form_on_post), Some(Reason::UnsupportedMediaType));
}

#[test]
fn form_and_multipart_bodies() {
    let p = policy_with(json!({"max_multipart_parts": 2}));
    let form = [("content-type", "application/x-www-form-urlencoded"), ("content-length", "9")];
    let t = target(&decide(&p, "PUT", "/v1/pets/3", &form));
    assert_eq!(body_errors(&p, t, "name=Rex&age=3&tags=a&tags=b"), vec![]);
    let mut got = body_errors(&p, t, "name=&age=x");
    got.sort();
    assert_eq!(got, vec![pair("/body/age", "type"), pair("/body/name", "minLength")]);
    assert_eq!(body_errors(&p, t, "age=1"), vec![pair("/body/name", "required")]);
    assert_eq!(body_errors(&p, t, "name=a&name=b"), vec![pair("/body/name", "type")]);

    let mp = [("content-type", "multipart/form-data; boundary=XyZ"), ("content-length", "9")];
    let t = target(&decide(&p, "POST", "/v1/pets/3/photos", &mp));
    let part = "--XyZ\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\nhello";
    let two = format!("{part}\r\n{part}\r\n--XyZ--\r\n");
    assert_eq!(body_errors(&p, t, &two), vec![]);
    let three = format!("{part}\r\n{part}\r\n{part}\r\n--XyZ--\r\n");
    assert_eq!(body_errors(&p, t, &three), vec![pair("/body", "maxParts")]);
    assert_eq!(body_errors(&p, t, "garbage"), vec![pair("/body", "multipart")]);
    assert_eq!(body_errors(&p, t, &format!("{part}\r\n")), vec![pair("/body", "multipart")]);
}

#[test]
fn deprecated_operations_warn_or_are_refused() {
    let allow = policy_with(json!({}));
    assert!(decide(&allow, "DELETE", "/v1/pets/3", &[]).outcome.unwrap().response_headers.is_empty());
    let warn = policy_with(json!({"deprecated": {"action": "warn"}}));
    let headers = decide(&warn, "DELETE", "/v1/pets/3", &[]).outcome.unwrap().response_headers;
    assert_eq!(
        headers,
        vec![
            ("deprecation".to_string(), "@1767225600".to_string()),
            ("sunset".to_string(), "Wed, 30 Jun 2027 00:00:00 GMT".to_string())
        ]
    );
    let deny = policy_with(json!({"deprecated": {"action": "deny"}}));
    assert_eq!(reason(&decide(&deny, "DELETE", "/v1/pets/3", &[])), Some(Reason::DeprecatedOperation));
    assert!(decide(&deny, "GET", "/v1/pets/3", &[]).outcome.is_ok());
}

fn compile_error(doc: Value) -> (String, String) {
    let cfg = json!({"openapi": {"document": doc}});
    let e = config::parse(cfg.to_string().as_bytes()).unwrap_err();
    (e.path, e.message)
}

#[test]
fn documents_that_cannot_be_compiled_name_the_pointer() {
    let base =
        |paths: Value| json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths});
    assert_eq!(compile_error(json!({"openapi": "2.0"})).0, "openapi.document#/openapi");
    let (path, msg) = compile_error(base(json!({"/a/{id}": {"get": {}}})));
    assert_eq!(path, "openapi.document#/paths/~1a~1{id}/get");
    assert!(msg.contains("'id'"), "{msg}");
    let (path, _) = compile_error(base(
        json!({"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/Nope"}]}}}),
    ));
    assert_eq!(path, "openapi.document#/paths/~1a/get/parameters/0");
    let (path, msg) = compile_error(base(
        json!({"/a": {"get": {"parameters": [{"name": "f", "in": "query", "style": "matrix", "schema": {"type": "object"}}]}}}),
    ));
    assert_eq!(path, "openapi.document#/paths/~1a/get/parameters/0");
    assert!(msg.contains("style 'matrix' is not defined for query parameters"), "{msg}");
    let (path, msg) = compile_error(base(
        json!({"/a": {"get": {"parameters": [{"name": "f", "in": "query", "schema": {"type": "array", "items": {"type": "array"}}}]}}}),
    ));
    assert_eq!(path, "openapi.document#/paths/~1a/get/parameters/0/schema");
    assert!(msg.contains("arrays of arrays"), "{msg}");
    let (path, _) = compile_error(base(
        json!({"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"x": {"type": 7}}}}}}}}}),
    ));
    assert_eq!(path, "openapi.document#/paths/~1a/post/requestBody/content/application~1json/schema");
    // A typo in a response schema's reference is refused, not an open allowlist.
    let typo = json!({"/a": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Pett"}, "example": {"$ref": "not a reference, data"}}}}}}}});
    let (path, msg) = compile_error(base(typo));
    assert_eq!(path, "openapi.document#/paths/~1a/get/responses/200/content/application~1json/schema");
    assert!(msg.contains("'#/components/schemas/Pett' does not resolve"), "{msg}");
    let (path, msg) =
        compile_error(base(json!({"/a": {"get": {"parameters": [{"$ref": "other.yaml#/p"}]}}})));
    assert_eq!(path, "openapi.document#/paths/~1a/get/parameters/0");
    assert!(msg.contains("outside the document"), "{msg}");
    let (path, msg) = compile_error(base(json!({"/a/{x}{y}": {"get": {}}})));
    assert_eq!(path, "openapi.document#/paths/~1a~1{x}{y}");
    assert!(msg.contains("nothing between them"), "{msg}");
}

#[test]
fn openapi_30_documents_use_draft4_with_nullable() {
    let doc = json!({
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"},
        "paths": {"/items": {"post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object", "required": ["n"],
            "properties": {"n": {"type": "integer", "maximum": 10, "exclusiveMaximum": true},
                           "note": {"type": "string", "nullable": true},
                           "id": {"type": "string", "readOnly": true}}}}}}}}}
    });
    let cfg = json!({"openapi": {"document": doc}});
    let p = config::parse(cfg.to_string().as_bytes()).unwrap();
    let t = target(&decide(
        &p,
        "POST",
        "/items",
        &[("content-type", "application/json"), ("content-length", "5")],
    ));
    assert_eq!(body_errors(&p, t, r#"{"n":9,"note":null}"#), vec![]);
    assert_eq!(body_errors(&p, t, r#"{"n":10}"#), vec![pair("/body/n", "exclusiveMaximum")]);
    assert_eq!(body_errors(&p, t, r#"{"n":1,"id":"x"}"#), vec![pair("/body/id", "readOnly")]);
    // Draft 4's integer is a number written without a fraction or exponent.
    assert_eq!(body_errors(&p, t, r#"{"n":2.0}"#), vec![pair("/body/n", "type")]);
    assert_eq!(body_errors(&p, t, r#"{"n":2e0}"#), vec![pair("/body/n", "type")]);
    // OpenAPI 3.1 (JSON Schema 2020-12) counts any number with a zero fraction.
    let mut doc31: Value = serde_json::from_str(&cfg["openapi"]["document"].to_string()).unwrap();
    doc31["openapi"] = json!("3.1.0");
    doc31["paths"]["/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
        ["note"] = json!({"type": ["string", "null"]});
    doc31["paths"]["/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
        ["n"] = json!({"type": "integer", "exclusiveMaximum": 10});
    let p31 = config::parse(json!({"openapi": {"document": doc31}}).to_string().as_bytes()).unwrap();
    let t31 = target(&decide(
        &p31,
        "POST",
        "/items",
        &[("content-type", "application/json"), ("content-length", "5")],
    ));
    assert_eq!(body_errors(&p31, t31, r#"{"n":2.0}"#), vec![]);
}

fn admitted(d: &HeadDecision) -> &crate::policy::Admission {
    d.outcome.as_ref().unwrap()
}

fn rewritten(p: &Policy, d: &HeadDecision, status: &str, ct: &str, body: Value) -> Option<Value> {
    let upstream: Vec<(String, Vec<u8>)> =
        vec![(":status".into(), status.into()), ("content-type".into(), ct.into())];
    match p.plan_response(&admitted(d).response, &upstream) {
        crate::policy::response::BodyPlan::Rewrite(plan) => Some(
            serde_json::from_slice(&p.rewrite_response(&plan, body.to_string().as_bytes()).unwrap()).unwrap(),
        ),
        crate::policy::response::BodyPlan::Untouched => None,
        other => panic!("unexpected plan {other:?}"),
    }
}

#[test]
fn response_allowlist_prunes_by_operation_and_status() {
    let p = policy_with(json!({"response_allowlist": true}));
    assert_eq!(p.rewrites_responses(), Some("openapi.response_allowlist"));
    let get = decide(&p, "GET", "/v1/pets/7", &[]);
    let pet = json!({"id": 7, "name": "Rex", "status": "available", "secret": "s3cret-value-xx",
        "password_hash": "$2b$12$abc", "owner": {"email": "o@example.com", "ssn": "078-05-1120",
        "address": {"city": "Oslo", "geo": [59.9, 10.7]}}, "tags": [{"label": "a", "internal": 1}],
        "birthday": null});
    let out = rewritten(&p, &get, "200", "application/json", pet).unwrap();
    assert_eq!(
        out.to_string(),
        json!({"id": 7, "name": "Rex", "status": "available", "owner": {"email": "o@example.com",
            "address": {"city": "Oslo"}}, "tags": [{"label": "a"}], "birthday": null})
        .to_string(),
        "undeclared and writeOnly members go, order is kept"
    );
    // 404 falls under 4XX (the problem schema); a 302 has nothing documented.
    let problem = json!({"type": "about:blank", "title": "Not Found", "status": 404, "trace": "at db.go:12"});
    let out = rewritten(&p, &get, "404", "application/problem+json", problem.clone()).unwrap();
    assert_eq!(out, json!({"type": "about:blank", "title": "Not Found", "status": 404}));
    assert_eq!(rewritten(&p, &get, "302", "application/json", problem.clone()), None);
    // Arrays of pets; `default` covers every other status of the list operation.
    let list = decide(&p, "GET", "/v1/pets", &[]);
    let out = rewritten(&p, &list, "200", "application/json", json!([{"name": "a", "x": 1}, {"name": "b"}]));
    assert_eq!(out.unwrap(), json!([{"name": "a"}, {"name": "b"}]));
    assert!(rewritten(&p, &list, "409", "application/json", problem.clone()).is_some());
    // Operations without documented responses, and the option off, leave bodies alone.
    let post =
        decide(&p, "POST", "/v1/pets", &[("content-type", "application/json"), ("content-length", "2")]);
    assert_eq!(rewritten(&p, &post, "201", "application/json", problem.clone()), None);
    let off = policy_with(json!({}));
    assert_eq!(off.rewrites_responses(), None);
    assert_eq!(
        rewritten(&off, &decide(&off, "GET", "/v1/pets/7", &[]), "200", "application/json", problem),
        None
    );
}

#[test]
fn response_keys_must_be_statuses() {
    let mut doc: Value = serde_json::from_str(PETSTORE).unwrap();
    doc["paths"]["/pets"]["get"]["responses"]["20x"] = json!({"description": "typo"});
    let cfg = json!({"openapi": {"document": doc, "response_allowlist": true}});
    let e = config::parse(cfg.to_string().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("openapi.document#/paths/~1pets/get/responses/20x"), "{e}");
}

/// A resource whose server-set members are `readOnly` and `required`, and whose secret is
/// `writeOnly` and `required`, as APIs usually document them: a create without the server's
/// members passes, one that sends them is still refused (mass assignment), the secret is
/// required in the request, and a response without the secret (which the allowlist removes
/// anyway) is not short of anything.
#[test]
fn required_applies_per_direction_for_read_only_and_write_only() {
    for version in ["3.0.3", "3.1.0"] {
        let doc = json!({
            "openapi": version, "info": {"title": "t", "version": "1"},
            "paths": {"/users": {"post": {
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewUser"}}}},
                "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}}}}},
            "components": {"schemas": {
                "Stamp": {"type": "string", "readOnly": true},
                "User": {"type": "object", "additionalProperties": false,
                         "required": ["id", "createdAt", "name", "password"],
                         "properties": {"id": {"type": "integer", "readOnly": true},
                                        "createdAt": {"$ref": "#/components/schemas/Stamp"},
                                        "name": {"type": "string"},
                                        "password": {"type": "string", "writeOnly": true}}},
                "NewUser": {"allOf": [{"$ref": "#/components/schemas/User"}], "required": ["id", "name"]}
            }}
        });
        let cfg = json!({"openapi": {"document": doc, "response_allowlist": true}});
        let p = config::parse(cfg.to_string().as_bytes()).unwrap();
        let head =
            decide(&p, "POST", "/users", &[("content-type", "application/json"), ("content-length", "9")]);
        let t = target(&head);
        assert_eq!(
            body_errors(&p, t, r#"{"name":"ann","password":"pw"}"#),
            vec![],
            "{version}: a plain create"
        );
        assert_eq!(
            body_errors(&p, t, r#"{"name":"ann","password":"pw","id":1,"createdAt":"x"}"#),
            vec![pair("/body/id", "readOnly"), pair("/body/createdAt", "readOnly")],
            "{version}: server-set members are still refused"
        );
        assert_eq!(
            body_errors(&p, t, r#"{"name":"ann"}"#),
            vec![pair("/body/password", "required")],
            "{version}"
        );
        let out = rewritten(
            &p,
            &head,
            "201",
            "application/json",
            json!({"id": 1, "createdAt": "t", "name": "ann", "password": "pw"}),
        );
        assert_eq!(
            out.unwrap(),
            json!({"id": 1, "createdAt": "t", "name": "ann"}),
            "{version}: writeOnly dropped"
        );
    }
}

/// Parameters in every style OpenAPI defines, through the whole request check.
#[test]
fn parameter_styles_end_to_end() {
    let doc = json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {
            "/search": {"get": {"parameters": [
                {"name": "filter", "in": "query", "style": "deepObject",
                 "schema": {"type": "object", "additionalProperties": false,
                            "properties": {"color": {"enum": ["red", "blue"]}, "size": {"type": "integer", "maximum": 10}}}},
                {"name": "point", "in": "query", "schema": {"type": "object", "required": ["x"],
                            "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}}},
                {"name": "where", "in": "query", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}}}},
                {"name": "tags", "in": "query", "style": "pipeDelimited",
                 "schema": {"type": "array", "items": {"type": "integer"}, "maxItems": 3}}]}},
            "/items/{id}": {"get": {"parameters": [
                {"name": "id", "in": "path", "required": true, "style": "matrix", "explode": true,
                 "schema": {"type": "array", "items": {"type": "integer"}}}]}},
            "/colors/{c}": {"get": {"parameters": [
                {"name": "c", "in": "path", "required": true, "style": "label",
                 "schema": {"type": "object", "properties": {"r": {"type": "integer", "maximum": 255}}}}]}}
        }
    });
    let cfg = json!({"openapi": {"document": doc}});
    let p = config::parse(cfg.to_string().as_bytes()).unwrap();
    let ok = |path: &str| {
        let d = decide(&p, "GET", path, &[]);
        assert!(d.outcome.is_ok(), "{path}: {:?}", errors(&d));
    };
    let refused = |path: &str| errors(&decide(&p, "GET", path, &[]));
    ok("/search?filter[color]=red&filter[size]=3&point=1&x=4&tags=1|2|3&where=%7B%22a%22%3A1%7D");
    ok("/search?x=4&y=5");
    assert_eq!(refused("/search?filter[color]=green&x=1"), vec![pair("/query/filter/color", "enum")]);
    assert_eq!(refused("/search?filter[size]=11&x=1"), vec![pair("/query/filter/size", "maximum")]);
    assert_eq!(
        refused("/search?filter[other]=1&x=1"),
        vec![pair("/query/filter/other", "additionalProperties")]
    );
    assert_eq!(refused("/search?y=5"), vec![pair("/query/point/x", "required")]);
    assert_eq!(refused("/search?x=1&tags=1|2|3|4"), vec![pair("/query/tags", "maxItems")]);
    assert_eq!(refused("/search?x=1&where=%7B%7D"), vec![pair("/query/where/a", "required")]);
    assert_eq!(refused("/search?x=1&where=nope"), vec![pair("/query/where", "type")]);
    // Undocumented query parameters pass unless the document's option refuses them.
    ok("/search?x=1&debug=1");
    let mut strict = cfg.clone();
    strict["openapi"]["reject_unknown_query_parameters"] = json!(true);
    let sp = config::parse(strict.to_string().as_bytes()).unwrap();
    let d = decide(&sp, "GET", "/search?x=1&y=2&filter[color]=red&tags=1&debug=1&a%20b=2", &[]);
    assert_eq!(errors(&d), vec![pair("/query/debug", "undocumented"), pair("/query/a b", "undocumented")]);
    assert!(decide(&sp, "GET", "/search?x=1&filter[size]=2", &[]).outcome.is_ok());
    ok("/items/;id=3;id=4");
    assert_eq!(refused("/items/;id=3;id=x"), vec![pair("/path/id/1", "type")]);
    assert_eq!(refused("/items/3"), vec![pair("/path/id", "style")]);
    ok("/colors/.r.200");
    ok("/colors/.r,200");
    assert_eq!(refused("/colors/.r.300"), vec![pair("/path/c/r", "maximum")]);
}

/// With a document, its media types decide (the limits' default allowlist would refuse the
/// documented `image/png` upload); an explicit `allowed_content_types` still applies.
#[test]
fn the_document_decides_media_types() {
    let doc = json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/uploads": {"post": {"requestBody": {"required": true, "content": {"image/png": {}}}}}}
    });
    let head = [("content-type", "image/png"), ("content-length", "2")];
    let p = config::parse(json!({"openapi": {"document": doc.clone()}}).to_string().as_bytes()).unwrap();
    assert!(decide(&p, "POST", "/uploads", &head).outcome.is_ok());
    let text = [("content-type", "text/plain"), ("content-length", "2")];
    assert_eq!(reason(&decide(&p, "POST", "/uploads", &text)), Some(Reason::UnsupportedMediaType));
    let strict =
        json!({"openapi": {"document": doc}, "limits": {"allowed_content_types": ["application/json"]}});
    let p = config::parse(strict.to_string().as_bytes()).unwrap();
    assert_eq!(reason(&decide(&p, "POST", "/uploads", &head)), Some(Reason::UnsupportedMediaType));
}

/// Templates that differ only in parameter names: told apart by method when their methods
/// differ (one `Allow` for both), refused at load, naming both, when they share one.
#[test]
fn same_templates_are_told_apart_by_method_or_refused() {
    let base =
        |paths: Value| json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths});
    let p = |id: &str| json!({"name": id, "in": "path", "required": true, "schema": {"type": "integer"}});
    let doc = base(json!({
        "/a/{id}": {"get": {"parameters": [p("id")]}},
        "/a/{key}": {"delete": {"parameters": [p("key")]}}
    }));
    let policy = config::parse(json!({"openapi": {"document": doc}}).to_string().as_bytes()).unwrap();
    assert!(decide(&policy, "GET", "/a/1", &[]).outcome.is_ok());
    assert!(decide(&policy, "DELETE", "/a/2", &[]).outcome.is_ok(), "the second template's method");
    assert_eq!(errors(&decide(&policy, "DELETE", "/a/x", &[])), vec![pair("/path/key", "type")]);
    let d = decide(&policy, "PUT", "/a/1", &[]);
    assert_eq!(d.outcome.unwrap_err().allow.as_deref(), Some("GET, HEAD, DELETE"));
    let clash = base(json!({
        "/a/{id}": {"get": {"parameters": [p("id")]}},
        "/a/{key}": {"get": {"parameters": [p("key")]}}
    }));
    let (path, msg) = compile_error(clash.clone());
    assert_eq!(path, "openapi.document#/paths/~1a~1{key}");
    assert!(msg.contains("same template as /paths/~1a~1{id}") && msg.contains("both define GET"), "{msg}");
    // With `ambiguous_templates: first`, the first one listed judges.
    let first = json!({"openapi": {"document": clash, "ambiguous_templates": "first"}});
    let policy = config::parse(first.to_string().as_bytes()).unwrap();
    assert_eq!(errors(&decide(&policy, "GET", "/a/x", &[])), vec![pair("/path/id", "type")]);
}
