//! Response field rules through the real Envoy 1.40: the upstream echoes a JSON body chosen by
//! the test, and what reaches the client is checked byte for byte: sensitive values removed,
//! masked or hashed at any depth, for small, chunked and 1 MB bodies with unicode keys; rules
//! waived by scope; compressed or oversize bodies withheld (502), never passed on.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::{json, Value};
use support::{Client, Envoy, Upstream};

fn config(max_body: u64) -> String {
    json!({
        "jwt": support::jwt_rs256_required(),
        "routes": [{"name": "public", "match": {"prefix": "/public"}, "auth": {"type": "public"}}],
        "limits": {"max_body_bytes": 4194304, "json": {"max_array_length": 100000}},
        "response": {
            "hash_key": "MDEyMzQ1Njc4OWFiY2RlZg",
            "max_body_bytes": max_body,
            "rules": [
                {"select": ["$..password", "$..ключ"], "action": {"type": "remove"}},
                {"select": ["$.items[*].card.number"], "action": {"type": "mask", "keep_last": 4}},
                {"select": ["$.user['e-mail']"], "action": {"type": "hash"}, "unless_scopes": ["orders:write"]}
            ]
        }
    })
    .to_string()
}

fn echo(client: &Client, path: &str, auth: Option<&str>, mode: &str, body: &[u8]) -> support::Response {
    let mut h = vec![("content-type", "application/json"), ("x-test-echo", mode)];
    if let Some(a) = auth {
        h.push(("authorization", a));
    }
    client.request("POST", path, &h, body)
}

#[test]
fn sensitive_fields_never_leave_the_gateway() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(2 * 1024 * 1024), upstream.port);
    let client = Client::new(envoy.port);
    let body = json!({
        "user": {"name": "Ada", "e-mail": "ada@example.com", "password": "hunter2-secret"},
        "items": [{"card": {"number": "4111111111111111", "password": "pin-1234"}}, {"card": {"number": "5500000000000004"}}],
        "deep": [[[{"ключ": "ключ-value-секрет", "ok": "é"}]]]
    })
    .to_string();
    for mode in ["1", "chunked"] {
        let r = echo(&client, "/public/echo", None, mode, body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        for secret in
            ["hunter2-secret", "pin-1234", "ключ-value-секрет", "4111111111111111", "ada@example.com"]
        {
            assert!(!text.contains(secret), "{mode}: {secret} leaked: {text}");
        }
        let v = r.json();
        assert_eq!(v["items"][0]["card"]["number"], "************1111");
        assert_eq!(v["items"][1]["card"]["number"], "************0004");
        assert!(v["user"]["e-mail"].as_str().unwrap().starts_with("hmac-sha256:"));
        assert_eq!(v["deep"][0][0][0], json!({"ok": "é"}));
        // The upstream's Content-Length (of the unredacted body) must not survive.
        if let Some(len) = r.header("content-length") {
            assert_eq!(len.parse::<usize>().unwrap(), r.body.len());
        }
        assert!(r.body.len() < body.len(), "{mode}: the body was not rewritten");
    }

    // The hash rule is waived for a caller with the scope; removal still applies.
    let r = echo(&client, "/orders", Some(&support::bearer("rs256")), "1", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["user"]["e-mail"], "ada@example.com");
    assert!(!r.text().contains("hunter2-secret"));
    let r = echo(&client, "/orders", Some(&support::bearer("scope_read")), "1", body.as_bytes());
    assert!(!r.text().contains("ada@example.com"), "no orders:write scope: {}", r.text());

    // 1 MB of records, each with a password.
    // (Just over 1,000,000 bytes, under Envoy's default 1 MiB buffer limit.)
    let mut rows: Vec<Value> = Vec::new();
    let mut size = 10;
    while size < 1_000_000 {
        let row =
            json!({"id": rows.len(), "password": format!("pw-{:06}", rows.len()), "note": "x".repeat(50)});
        size += row.to_string().len() + 1;
        rows.push(row);
    }
    let n = rows.len();
    let big = serde_json::to_vec(&json!({"rows": rows})).unwrap();
    assert!(big.len() > 1_000_000 && big.len() < 1_048_576, "{}", big.len());
    let r = echo(&client, "/public/big", None, "chunked", &big);
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("pw-"), "a password in the 1 MB body leaked");
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), n);

    // Compressed bodies are never passed on: the gateway asks for identity, and withholds
    // anything still encoded.
    let seen = upstream.seen_path("/public/echo");
    assert!(seen.iter().all(|s| s.header("accept-encoding").is_none()));
    let r = client.request(
        "POST",
        "/public/gz",
        &[
            ("content-type", "application/json"),
            ("x-test-echo", "1"),
            ("accept-encoding", "gzip"),
            ("x-test-reply-headers", "content-encoding: gzip"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["type"], "urn:api-guard:problem:response-withheld");
    assert!(!r.text().contains("hunter2"));
    assert!(upstream.seen_path("/public/gz")[0].header("accept-encoding").is_none());

    // Not JSON though it says so: withheld.
    let r = client.request(
        "POST",
        "/public/bad",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-test-echo", "1"),
            ("x-test-echo-type", "application/json"),
        ],
        b"{\"password\": \"hunter2-secret\"",
    );
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("hunter2"));
    assert_eq!(envoy.denied("response_withheld"), 2);
}

#[test]
fn oversize_bodies_are_withheld() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(1024), upstream.port);
    let client = Client::new(envoy.port);
    let body = json!({"password": "hunter2-secret", "pad": "x".repeat(4000)}).to_string();
    let r = echo(&client, "/public/big", None, "chunked", body.as_bytes());
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(!r.text().contains("hunter2"));
}

#[test]
fn a_route_can_pass_oversize_bodies_through() {
    let mut cfg: Value = serde_json::from_str(&config(1024)).unwrap();
    cfg["routes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "export", "match": {"prefix": "/export"}, "auth": {"type": "public"},
                     "response": {"oversize": "pass"}}));
    let upstream = Upstream::start();
    let envoy = Envoy::start(&cfg.to_string(), upstream.port);
    let client = Client::new(envoy.port);
    let body = json!({"password": "hunter2-secret", "pad": "x".repeat(4000)}).to_string();
    // Over the limit on a `pass` route: forwarded as the upstream sent it.
    let r = echo(&client, "/export/all", None, "chunked", body.as_bytes());
    assert_eq!((r.status, r.body.as_slice()), (200, body.as_bytes()));
    // Under the limit the rules still apply there; elsewhere oversize still fails closed.
    let r = echo(&client, "/export/one", None, "1", br#"{"password":"hunter2-secret","a":1}"#);
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"a":1}"#));
    let r = echo(&client, "/public/all", None, "chunked", body.as_bytes());
    assert_eq!(r.status, 502, "{}", r.text());
}

#[test]
fn undocumented_response_members_are_dropped() {
    let doc = support::fixture("openapi/petstore.json");
    let cfg = json!({"openapi": {"document": doc, "response_allowlist": true}}).to_string();
    let upstream = Upstream::start();
    let envoy = Envoy::start(&cfg, upstream.port);
    let client = Client::new(envoy.port);
    let pet = json!({"id": 7, "name": "Rex", "status": "available", "secret": "writeonly-secret-1",
        "password_hash": "$2b$12$hashhashhash", "owner": {"email": "o@example.com", "ssn": "078-05-1120",
        "address": {"city": "Oslo", "geo": "59.9,10.7"}}, "tags": [{"label": "a", "internal": "db-shard-3"}]})
    .to_string();
    let get = |path: &str, status: &str, ct: &str, body: &str, mode: &str| {
        client.request(
            "GET",
            path,
            &[
                ("x-test-echo", mode),
                ("x-test-echo-body", body),
                ("x-test-echo-type", ct),
                ("x-test-status", status),
                ("accept-encoding", "gzip"),
            ],
            b"",
        )
    };
    for mode in ["1", "chunked"] {
        let r = get("/v1/pets/7", "200 OK", "application/json", &pet, mode);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.text(),
            r#"{"id":7,"name":"Rex","status":"available","owner":{"email":"o@example.com","address":{"city":"Oslo"}},"tags":[{"label":"a"}]}"#
        );
        for secret in ["writeonly-secret-1", "hashhash", "078-05-1120", "db-shard-3", "59.9"] {
            assert!(!r.text().contains(secret), "{mode}: {secret} leaked");
        }
    }
    // The upstream was asked for an uncompressed body.
    assert!(upstream.requests().iter().all(|q| q.header("accept-encoding").is_none()));
    // A 404 is pruned to the documented problem members (the 4XX response).
    let problem =
        r#"{"title":"Not Found","status":404,"detail":"no pet","stack":"at PetRepo.find (repo.js:42)"}"#;
    let r = get("/v1/pets/8", "404 Not Found", "application/problem+json", problem, "1");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, r#"{"title":"Not Found","status":404,"detail":"no pet"}"#)
    );
    // A status the document does not describe passes as sent.
    let r = get("/v1/pets/8", "202 Accepted", "application/json", problem, "1");
    assert_eq!((r.status, r.text().as_str()), (202, problem));
}

/// An upstream that dies mid-body while rules apply: the client never gets the part that
/// arrived (headers are held until the whole body is judged), and later requests still work.
#[test]
fn a_truncated_upstream_body_is_never_passed_on() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(2 * 1024 * 1024), upstream.port);
    let client = Client::new(envoy.port);
    let body = json!({"password": "hunter2-secret", "pad": "x".repeat(4000), "tail": "end"}).to_string();
    let r = echo(&client, "/public/cut", None, "truncated", body.as_bytes());
    assert!(r.status >= 500, "got {}: {}", r.status, r.text());
    assert!(!r.text().contains("hunter2"), "part of the body leaked: {}", r.text());
    let r = echo(&client, "/public/after", None, "1", br#"{"password":"p","a":1}"#);
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"a":1}"#));
}

/// An upstream that resets the connection before answering: the client gets Envoy's 503, never
/// a hang or a crash, and the next request is served normally.
#[test]
fn an_upstream_reset_fails_the_request_and_nothing_else() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(2 * 1024 * 1024), upstream.port);
    let client = Client::new(envoy.port);
    for _ in 0..3 {
        let r = echo(&client, "/public/reset", None, "reset", br#"{"password":"hunter2-secret"}"#);
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(!r.text().contains("hunter2"));
    }
    let r = echo(&client, "/public/after", None, "1", br#"{"password":"p","a":1}"#);
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"a":1}"#));
}

/// Without Envoy's `allow_on_headers_stop_iteration: true`, response headers paused for a
/// rewrite would never get their body (a hang until the route timeout). The first such
/// response is resumed after about a second, its body still rewritten; the log names the
/// setting once; later responses are not paused at all and are still rewritten; a body that
/// cannot be rewritten is emptied (its headers have left), never sent.
#[test]
fn a_filter_without_the_envoy_setting_never_hangs_a_response() {
    let upstream = Upstream::start();
    let opts = support::EnvoyOptions { allow_on_headers_stop_iteration: false, ..Default::default() };
    let envoy =
        Envoy::start_with(&config(2 * 1024 * 1024), upstream.port, opts).unwrap_or_else(|l| panic!("{l}"));
    let client = Client::new(envoy.port);
    let get = |path: &str, mode: &str, body: &str, kind: &str| {
        let h = [("x-test-echo", mode), ("x-test-echo-body", body), ("x-test-echo-type", kind)];
        let started = std::time::Instant::now();
        let r = client.request("GET", path, &h, b"");
        (r, started.elapsed().as_secs_f64())
    };
    let secret = r#"{"password":"hunter2-secret","a":1}"#;
    for (i, patience) in [(0, 3.0), (1, 0.5), (2, 0.5)] {
        let (r, took) = get("/public/get", if i == 2 { "chunked" } else { "1" }, secret, "application/json");
        assert_eq!((r.status, r.text().as_str()), (200, r#"{"a":1}"#), "response {i}");
        assert!(took < patience, "response {i} took {took:.1} s");
    }
    // Not JSON, so it cannot be redacted: the headers have left, the body is emptied.
    let (r, took) = get("/public/bad", "1", "password=hunter2-secret", "application/json");
    assert!(took < 0.5, "took {took:.1} s");
    assert!(r.body.is_empty(), "got {} {:?}", r.status, r.text());
    assert_eq!(envoy.denied("response_withheld"), 1);
    let log = envoy.log();
    let told = "response bodies are not delivered to the filter while its headers are paused";
    assert_eq!(log.matches(told).count(), 1, "{log}");
}

/// What a client parses is what must have been checked: a JSON body labelled as text, HTML,
/// octet-stream or not at all is redacted like labelled JSON; NDJSON line by line; JSONP and
/// other scripts are withheld; types that cannot carry JSON, and bodies that are not JSON,
/// pass untouched.
#[test]
fn mislabelled_json_is_redacted_and_scripts_are_withheld() {
    let upstream = Upstream::start();
    // Request bodies that are not JSON (the echo sends them back) are accepted as text.
    let mut cfg: serde_json::Value = serde_json::from_str(&config(2 * 1024 * 1024)).unwrap();
    cfg["limits"]["allowed_content_types"] = json!(["text/plain"]);
    let envoy = Envoy::start(&cfg.to_string(), upstream.port);
    let client = Client::new(envoy.port);
    let doc = json!({"user": {"name": "Ada", "password": "hunter2-secret"}}).to_string();
    let send = |ct: &str, body: &str, mode: &str| {
        let h = [("content-type", "text/plain"), ("x-test-echo", mode), ("x-test-echo-type", ct)];
        client.request("POST", "/public/echo", &h, body.as_bytes())
    };
    for ct in
        ["text/plain", "text/html; charset=utf-8", "application/octet-stream", "none", "application/xml"]
    {
        for mode in ["1", "chunked"] {
            let r = send(ct, &format!("  {doc}"), mode);
            assert_eq!(r.status, 200, "{ct} {mode}: {}", r.text());
            assert!(!r.text().contains("hunter2-secret"), "{ct} {mode}: leaked {}", r.text());
            assert_eq!(r.json()["user"]["name"], "Ada", "{ct} {mode}");
        }
    }
    let ndjson = format!("{doc}\n{doc}\r\n\n{doc}");
    let r = send("application/x-ndjson", &ndjson, "chunked");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("hunter2-secret"), "NDJSON leaked: {}", r.text());
    assert_eq!(r.text().matches("\"Ada\"").count(), 3, "{}", r.text());
    for (ct, body) in [("application/javascript", format!("cb({doc})")), ("text/javascript", doc.clone())] {
        let r = send(ct, &body, "1");
        assert_eq!(r.status, 502, "{ct}: {}", r.text());
        assert!(!r.text().contains("hunter2-secret"), "{ct}");
    }
    // Not JSON by content, or a type that cannot carry it: untouched.
    let text = "id,password\n1,not-a-secret-column";
    let r = send("text/csv", text, "chunked");
    assert_eq!((r.status, r.text().as_str()), (200, text));
    let r = send("image/png", &doc, "1");
    assert_eq!((r.status, r.text()), (200, doc.clone()));
    assert!(envoy.denied("response_withheld") >= 2);
}
