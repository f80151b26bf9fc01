//! Garbage in, no crash: random bytes in the method, path, query, headers and body, sent raw
//! through the real Envoy, followed by normal requests that must still be judged correctly.
//! A panic in the module would kill the VM and fail every later request (503 under
//! FAIL_CLOSED), so the requests after the storm prove the VM survived it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use support::{Client, Envoy, Rng, Upstream};

fn config() -> String {
    let jwks: serde_json::Value = serde_json::from_slice(
        &std::fs::read(support::repo_root().join("tests/fixtures/jwt/jwks.json")).unwrap(),
    )
    .unwrap();
    serde_json::json!({
        "limits": {"max_body_bytes": 256, "max_header_count": 30},
        "jwt": {
            "providers": {"idp": {"issuer": "https://issuer.test", "audiences": ["api://orders"],
                "algorithms": ["RS256", "ES256", "EdDSA"], "local_jwks": jwks,
                "claim_to_headers": [{"claim": "sub", "header": "x-user"}]}},
            "default": {"type": "public"}
        },
        "routes": [
            {"name": "items", "match": {"path": "/items/{id}"}, "limits": {"allowed_methods": ["GET"]}},
            {"name": "secure", "match": {"prefix": "/secure"},
             "auth": {"type": "jwt", "providers": ["idp"], "bind": []}}
        ],
        "host": {"hold_headers_for_body": true}
    })
    .to_string()
}

fn valid_token() -> String {
    let t: serde_json::Value = serde_json::from_slice(
        &std::fs::read(support::repo_root().join("tests/fixtures/jwt/tokens.json")).unwrap(),
    )
    .unwrap();
    t["rs256"].as_str().unwrap().to_string()
}

/// One random request. Most are well-framed so they reach the filter; some are not, so Envoy's
/// own parser gets its share too.
fn garbage_request(rng: &mut Rng) -> Vec<Vec<u8>> {
    let methods: [&[u8]; 8] = [b"GET", b"POST", b"PUT", b"PATCH", b"TRACE", b"BREW", b"OPTIONS", b"DELETE"];
    let mut req = methods[rng.below(methods.len())].to_vec();
    req.extend_from_slice(b" /");
    if rng.below(3) == 0 {
        req.extend_from_slice(b"secure/"); // a route that needs a token
    }
    // Segments and queries from a hostile list: escapes, dot segments, encoded slashes.
    let segments: [&[u8]; 14] = [
        b"items",
        b"1",
        b"a",
        b"%41",
        b"..",
        b".",
        b"",
        b"%2f",
        b"%zz",
        b"x%20y",
        b"\xc3\xa9",
        b"%00",
        b"~u",
        b"items",
    ];
    for i in 0..1 + rng.below(4) {
        if i > 0 {
            req.push(b'/');
        }
        req.extend_from_slice(segments[rng.below(segments.len())]);
    }
    let queries: [&[u8]; 7] =
        [b"", b"", b"?a=1", b"?access_token=x", b"?q=%ff&r", b"?a&b;c=", b"?API%5fKEY=1"];
    req.extend_from_slice(queries[rng.below(queries.len())]);
    if rng.below(8) == 0 {
        req.extend_from_slice(&rng.bytes(4)); // raw bytes in the target: Envoy's parser decides
    }
    req.extend_from_slice(b" HTTP/1.1\r\nhost: t\r\n");
    for _ in 0..rng.below(6) {
        let name = format!("x-g{}", rng.below(1000));
        let n = rng.below(120);
        let mut value = rng.bytes(n);
        // Header values may hold any byte but CR, LF and NUL in a well-framed request.
        value.retain(|b| (*b >= 0x20 && *b != 0x7f) || *b == b'\t');
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
    }
    // Tokens: garbage, truncated or bit-flipped real ones, and wrong schemes.
    match rng.below(5) {
        0 => {
            let n = rng.below(300);
            let mut tok: Vec<u8> = rng.bytes(n).into_iter().filter(|b| b.is_ascii_graphic()).collect();
            if rng.below(2) == 0 {
                tok.extend_from_slice(b".e30.");
            }
            req.extend_from_slice(b"authorization: Bearer ");
            req.extend_from_slice(&tok);
            req.extend_from_slice(b"\r\n");
        }
        1 => {
            let mut tok = valid_token().into_bytes();
            let cut = rng.below(tok.len());
            if rng.below(2) == 0 {
                tok.truncate(cut);
            } else {
                tok[cut] ^= 1 << rng.below(7);
            }
            req.extend_from_slice(b"authorization: bearer ");
            req.extend_from_slice(&tok);
            req.extend_from_slice(b"\r\nx-user: spoofed\r\n");
        }
        2 => req.extend_from_slice(b"authorization: Basic Zm9vOmJhcg==\r\n"),
        _ => {}
    }
    let cts: [&[u8]; 6] = [
        b"application/json",
        b"text/plain",
        b"\xff/\xfe",
        b"",
        b"application/*+json;;;",
        b"application/json",
    ];
    let ct = cts[rng.below(cts.len())];
    if !ct.is_empty() {
        req.extend_from_slice(b"content-type: ");
        req.extend_from_slice(ct);
        req.extend_from_slice(b"\r\n");
    }
    let n = rng.below(400);
    // Half the bodies are well-formed JSON, so that JSON-typed requests can also pass.
    let body = if rng.below(2) == 0 {
        format!("{{\"k\":\"{}\"}}", "a".repeat(n)).into_bytes()
    } else {
        rng.bytes(n)
    };
    match rng.below(4) {
        0 | 1 => {
            req.extend_from_slice(
                format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()).as_bytes(),
            );
            req.extend_from_slice(&body);
            vec![req]
        }
        2 => {
            req.extend_from_slice(b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
            let (a, b) = body.split_at(body.len() / 2);
            for chunk in [a, b] {
                if !chunk.is_empty() {
                    req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    req.extend_from_slice(chunk);
                    req.extend_from_slice(b"\r\n");
                }
            }
            req.extend_from_slice(b"0\r\n\r\n");
            vec![req]
        }
        _ => {
            // Garbage where the headers should end: framing is anyone's guess.
            req.extend_from_slice(&body);
            req.extend_from_slice(b"\r\n\r\n");
            vec![req]
        }
    }
}

#[test]
fn garbage_requests_never_kill_the_vm() {
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(), upstream.port);
    let client = Client::new(envoy.port);
    let mut rng = Rng::new(0x5eed_ba5e);
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..500 {
        let pieces = garbage_request(&mut rng);
        if let Some(r) = client.send(&pieces) {
            *statuses.entry(r.status).or_insert(0) += 1;
            assert!(r.status < 500, "a garbage request got {}: {}", r.status, r.text());
        }
    }
    eprintln!("garbage responses by status: {statuses:?}, module denials {}", envoy.denied_total());
    // The storm must exercise the filter: allowed requests and module denials both happen.
    assert!(statuses.get(&200).copied().unwrap_or(0) >= 5, "too few requests got through: {statuses:?}");
    assert!(envoy.denied_total() > 100, "too few module denials: {statuses:?}");
    assert!(envoy.allowed() >= 5);
    // The VM is alive: allowed and denied requests are still judged.
    assert_eq!(client.get("/items/1").status, 200);
    assert_eq!(client.request("DELETE", "/items/1", &[], b"").status, 405);
    assert_eq!(client.get("/secure/x").status, 401);
    let auth = format!("Bearer {}", valid_token());
    assert_eq!(client.request("GET", "/secure/x", &[("authorization", &auth)], b"").status, 200);
    // No forged or spoofed identity ever reached the upstream.
    assert!(upstream.requests().iter().all(|r| r.header("x-user").is_none_or(|u| u == "user-42")));
    assert!(envoy.denied("token_invalid") > 0, "the storm never reached the JWT checks");
    let log = envoy.log();
    for bad in ["panic", "Function: proxy_on", "wasm trap", "VM failed"] {
        assert!(!log.contains(bad), "Envoy log mentions `{bad}`:\n{log}");
    }
    assert!(envoy.denied_total() > 0);
}

#[test]
fn non_utf8_header_values_are_handled() {
    // The SDK's header reader unwraps UTF-8 and would panic here; the module reads raw bytes.
    let upstream = Upstream::start();
    let envoy = Envoy::start(&config(), upstream.port);
    let client = Client::new(envoy.port);
    let mut req =
        b"GET /items/2 HTTP/1.1\r\nhost: t\r\nx-bin: \xff\xfe\xc3\x28\r\nconnection: close\r\n\r\n".to_vec();
    let r = client.send(&[req.clone()]).unwrap();
    assert_eq!(r.status, 200);
    req = b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-type: \xff\xfe\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_vec();
    let r = client.send(&[req]).unwrap();
    assert_eq!(r.status, 415);
    assert_eq!(client.get("/items/3").status, 200);
    assert_eq!(upstream.seen_path("/items").len(), 2);
}
