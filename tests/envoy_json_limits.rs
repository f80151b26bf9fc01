//! JSON shape limits through the real Envoy 1.40: hostile bodies are refused with a pointer
//! into the body, quickly, with bounded memory, and never reach the upstream.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::{Duration, Instant};

use support::client::chunked;
use support::{Client, Envoy, Upstream};

const CONFIG: &str = r#"{
  "limits": {"max_body_bytes": 134217728, "json": {"max_depth": 16, "max_object_keys": 100}},
  "host": {"hold_headers_for_body": true}
}"#;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn json_error(r: &support::Response) -> (String, String) {
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let v = r.json();
    assert_eq!(v["type"], "urn:api-guard:problem:invalid-json");
    let e = &v["errors"][0];
    (e["pointer"].as_str().unwrap().to_string(), e["keyword"].as_str().unwrap().to_string())
}

#[test]
fn hostile_json_bodies_are_refused_before_the_upstream() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(CONFIG, upstream.port);
    let client = Client::new(envoy.port);
    let ct = [("content-type", "application/json")];
    let rss_before = rss_kib(envoy.pid());

    // A well-formed body passes unchanged.
    let good = br#"{"a":[1,2,{"b":"\u00e9"}],"c":null}"#;
    let r = client.request("POST", "/ok", &ct, good);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(upstream.seen_path("/ok")[0].body, good);

    // Duplicate member names, found at any depth and after escape decoding.
    let r = client.request("POST", "/dup", &ct, br#"{"a":{"x":1,"\u0078":2}}"#);
    assert_eq!(json_error(&r), ("/body/a/x".to_string(), "duplicate_keys".to_string()));

    // 10,000 nested arrays: refused at the 17th level, in one chunk or many.
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let r = client.request("POST", "/deep", &ct, deep.as_bytes());
    assert_eq!(json_error(&r).1, "max_depth");
    let head = "POST /deep-chunked HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n";
    let r = client.send(&chunked(head, &[&deep.as_bytes()[..5000], &deep.as_bytes()[5000..]])).unwrap();
    assert_eq!(json_error(&r).1, "max_depth");

    // A million tiny keys (about 12 MB): refused at key 101, long before the end arrives.
    let mut many = String::from("{");
    for i in 0..1_000_000 {
        many.push_str(&format!("\"k{i}\":0,"));
    }
    many.push_str("\"end\":0}");
    let started = Instant::now();
    let r = client.request("POST", "/keys", &ct, many.as_bytes());
    assert_eq!(json_error(&r), ("/body".to_string(), "max_object_keys".to_string()));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    // Invalid UTF-8 inside a string, and an overlong encoding.
    let r = client.request("POST", "/utf8", &ct, b"{\"a\":\"\xff\"}");
    assert_eq!(json_error(&r), ("/body/a".to_string(), "json".to_string()));
    let r = client.request("POST", "/utf8", &ct, b"[\"\xc0\xaf\"]");
    assert_eq!(json_error(&r).1, "json");

    // Truncated JSON is refused at the end of the body.
    let r = client.request("POST", "/trunc", &ct, br#"{"a":[1,2"#);
    assert_eq!(json_error(&r).1, "json");

    // A 100 MB declared body over a 1 MiB route limit is refused on the head alone.
    let small = r#"{"limits": {"max_body_bytes": 1048576}, "host": {"hold_headers_for_body": true}}"#;
    let envoy2 = Envoy::start(small, upstream.port);
    let head = "POST /huge HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\n\r\n";
    let r = Client::new(envoy2.port).send(&[head.as_bytes().to_vec()]).unwrap();
    assert_eq!(r.status, 413);

    for path in ["/dup", "/deep", "/keys", "/utf8", "/trunc", "/huge"] {
        assert!(upstream.seen_path(path).is_empty(), "{path} reached the upstream");
    }
    // Still healthy, memory bounded, and every denial counted.
    assert_eq!(client.request("POST", "/after", &ct, b"[]").status, 200);
    let grown = rss_kib(envoy.pid()).saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "Envoy grew by {grown} KiB");
    assert_eq!(envoy.denied("invalid_json"), 7);
}
