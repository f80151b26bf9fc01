//! Corpus tests for what reads client bodies and origins: hundreds of thousands of mutated and
//! random inputs through the JSON scanner (checked against serde_json as an independent
//! parser), OpenAPI body validation and the CORS decision. Nothing may panic (a panic kills
//! the VM), and the scanner must never accept what serde_json refuses.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use api_guard::policy::authz::NoState;
use api_guard::policy::json_limits::{scan, JsonLimits};
use api_guard::policy::{config, BodyPlan, RequestHead};
use serde_json::{json, Value};
use support::Rng;

const SEEDS: [&str; 8] = [
    r#"{"name":"Rex","status":"available","tags":[{"label":"good-dog"}],"owner":{"email":"a@example.com"}}"#,
    r#"[1,-2.5e+3,true,false,null,"\u00e9\ud83d\ude00",{"a":{"b":[[]]}}]"#,
    r#"{"a":"\"\\\/\b\f\n\r\t","b":0.0,"c":-0,"d":1E-7}"#,
    "\"\u{e9}\u{20ac}\u{1f600}\"",
    "  {\n\t\"k\" : [ 1 , 2 ] }\r\n",
    "0",
    "{}",
    "[]",
];

/// Up to `max - 1` random bytes.
fn noise(rng: &mut Rng, max: usize) -> Vec<u8> {
    let n = rng.below(max);
    rng.bytes(n)
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let pick: &[u8] = b"{}[]\",:\\/-+.eE0123456789 \t\r\nabtrufnlsu\xc3\xa9\xff\xed\xa0\x80";
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = pick[rng.below(pick.len())];
            }
            1 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, pick[rng.below(pick.len())]);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.truncate(i);
            }
        }
    }
    v
}

#[test]
fn the_scanner_never_accepts_what_serde_json_refuses() {
    let mut rng = Rng::new(0x0dd_ba11);
    let limits = JsonLimits::default();
    let mut agreed = 0;
    for i in 0..200_000 {
        let input = if i % 10 == 0 {
            noise(&mut rng, 40)
        } else {
            let seed = SEEDS[rng.below(SEEDS.len())];
            mutate(&mut rng, seed.as_bytes())
        };
        let ours = scan(limits, &input).is_ok();
        let theirs = serde_json::from_slice::<Value>(&input).is_ok();
        assert!(
            !ours || theirs,
            "scanner accepted what serde_json refuses: {:?}",
            String::from_utf8_lossy(&input)
        );
        // serde_json accepts duplicate members; the scanner refuses them by design.
        if theirs && !ours {
            let dup = api_guard::policy::json::parse(&input).is_err();
            assert!(dup, "scanner refused valid JSON: {:?}", String::from_utf8_lossy(&input));
        }
        agreed += usize::from(ours == theirs);
    }
    assert!(agreed > 190_000, "{agreed}");
}

#[test]
fn validation_and_cors_survive_garbage() {
    let doc: Value = serde_json::from_slice(
        &std::fs::read(support::repo_root().join("tests/fixtures/openapi/petstore.json")).unwrap(),
    )
    .unwrap();
    let cfg = json!({
        "openapi": {"document": doc, "reject_unknown_fields": true},
        "cors": {"allowed_origins": ["https://app.example.com", "https://*.example.org"], "allowed_headers": ["x-a"]}
    });
    let policy = config::parse(cfg.to_string().as_bytes()).unwrap();
    let mut rng = Rng::new(0xfeed);
    let targets: Vec<_> = [
        ("POST", "/v1/pets", "application/json"),
        ("PUT", "/v1/pets/1", "application/x-www-form-urlencoded"),
        ("POST", "/v1/pets/1/photos", "multipart/form-data; boundary=x"),
    ]
    .iter()
    .map(|(m, p, ct)| {
        let headers: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), m.as_bytes().to_vec()),
            (":path".into(), p.as_bytes().to_vec()),
            ("content-type".into(), ct.as_bytes().to_vec()),
            ("content-length".into(), b"10".to_vec()),
        ];
        match policy
            .check_head(&RequestHead { headers: &headers, end_of_stream: None }, &NoState, 0)
            .outcome
            .unwrap()
            .body
        {
            BodyPlan::Check(c) => c.validate.unwrap(),
            BodyPlan::None => panic!("no body plan"),
        }
    })
    .collect();
    for i in 0..30_000 {
        let body = if i % 3 == 0 {
            noise(&mut rng, 200)
        } else {
            let seed = SEEDS[rng.below(SEEDS.len())];
            mutate(&mut rng, seed.as_bytes())
        };
        for t in &targets {
            let _ = policy.check_body(*t, &body);
        }
        // Random heads: origins, preflight headers, paths and queries.
        let method = rng.below(4);
        let origin = String::from_utf8_lossy(&mutate(&mut rng, b"https://a.example.org:443")).into_owned();
        let path =
            String::from_utf8_lossy(&mutate(&mut rng, b"/v1/pets/12?limit=3&status=sold")).into_owned();
        let authority = noise(&mut rng, 12);
        let acrm = noise(&mut rng, 6);
        let acrh = mutate(&mut rng, b"x-a, content-type");
        let cookie = noise(&mut rng, 20);
        let headers: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), [&b"GET"[..], b"OPTIONS", b"POST", b"PUT"][method].to_vec()),
            (":path".into(), path.into_bytes()),
            (":scheme".into(), b"https".to_vec()),
            (":authority".into(), authority),
            ("origin".into(), origin.into_bytes()),
            ("access-control-request-method".into(), acrm),
            ("access-control-request-headers".into(), acrh),
            ("cookie".into(), cookie),
        ];
        let _ = policy.check_head(&RequestHead { headers: &headers, end_of_stream: None }, &NoState, 0);
    }
}

/// A random JSON document over a small vocabulary, so that selectors and schemas hit.
fn document(rng: &mut Rng, depth: usize) -> Value {
    const KEYS: [&str; 12] = [
        "name", "status", "tags", "label", "owner", "email", "password", "secret", "id", "x", "ключ", "e\"q",
    ];
    match rng.below(if depth > 4 { 4 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.below(1000) as f64 / 7.0),
        2 => json!(rng.below(2) == 0),
        3 => json!(format!("v{}\u{e9}\n{}", rng.below(100), "x".repeat(rng.below(5)))),
        4 | 5 => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.below(6) {
                m.insert(KEYS[rng.below(KEYS.len())].to_string(), document(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => Value::Array((0..rng.below(4)).map(|_| document(rng, depth + 1)).collect()),
    }
}

/// The one-pass response rewrite against the whole-tree rewrite it replaced (parse, prune,
/// apply each rule, serialise), on random documents and mutated bytes: same verdict on what
/// is JSON, same document out, and never a panic.
#[test]
fn the_streaming_response_rewrite_agrees_with_the_tree_rewrite() {
    use api_guard::policy::response::BodyPlan as Plan;
    let doc: Value = serde_json::from_slice(
        &std::fs::read(support::repo_root().join("tests/fixtures/openapi/petstore.json")).unwrap(),
    )
    .unwrap();
    let rules = json!({"hash_key": "MDEyMzQ1Njc4OWFiY2RlZg", "rules": [
        {"select": ["$..password", "$.tags[*].x"], "action": {"type": "remove"}},
        {"select": ["$.owner.email", "$..ключ"], "action": {"type": "mask", "keep_last": 3}},
        {"select": ["$.tags[*].label", "$['e\"q']", "$..id"], "action": {"type": "hash"}},
        {"select": ["$.*.name", "$[1]"], "action": {"type": "mask"}}
    ]});
    let with_schema = json!({"openapi": {"document": doc, "response_allowlist": true}, "response": rules});
    let rules_only = json!({"response": rules});
    let schema_only = json!({"openapi": {"document": doc, "response_allowlist": true}});
    let mut plans = Vec::new();
    for cfg in [with_schema, rules_only, schema_only] {
        let policy = config::parse(cfg.to_string().as_bytes()).unwrap();
        let headers: Vec<(String, Vec<u8>)> =
            vec![(":method".into(), b"GET".to_vec()), (":path".into(), b"/v1/pets/7".to_vec())];
        let head = RequestHead { headers: &headers, end_of_stream: Some(true) };
        let admission = policy.check_head(&head, &NoState, 0).outcome.unwrap();
        let upstream: Vec<(String, Vec<u8>)> =
            vec![(":status".into(), b"200".to_vec()), ("content-type".into(), b"application/json".to_vec())];
        let Plan::Rewrite(plan) = policy.plan_response(&admission.response, &upstream) else {
            panic!("no rewrite planned")
        };
        plans.push((policy, plan));
    }
    let mut rng = Rng::new(0x5eed_1e55);
    let (mut rewritten, mut refused) = (0, 0);
    for i in 0..60_000 {
        let body = match i % 3 {
            0 => serde_json::to_vec(&document(&mut rng, 0)).unwrap(),
            1 => {
                let seed = serde_json::to_vec(&document(&mut rng, 0)).unwrap();
                mutate(&mut rng, &seed)
            }
            _ => {
                let seed = SEEDS[rng.below(SEEDS.len())];
                mutate(&mut rng, seed.as_bytes())
            }
        };
        for (policy, plan) in &plans {
            let fast = policy.rewrite_response(plan, &body);
            let tree = policy.rewrite_response_tree(plan, &body);
            match (&fast, &tree) {
                (Ok(out), Ok(want)) => {
                    let got: Value = serde_json::from_slice(out).unwrap_or_else(|e| {
                        panic!("rewrite wrote invalid JSON ({e}) for {:?}", String::from_utf8_lossy(&body))
                    });
                    assert_eq!(&got, want, "for {:?}", String::from_utf8_lossy(&body));
                    rewritten += 1;
                }
                (Err(_), Err(_)) => refused += 1,
                _ => panic!(
                    "verdicts differ (one-pass {:?}, tree {:?}) for {:?}",
                    fast.is_ok(),
                    tree.is_ok(),
                    String::from_utf8_lossy(&body)
                ),
            }
        }
    }
    assert!(rewritten > 50_000 && refused > 20_000, "{rewritten} rewritten, {refused} refused");
}
