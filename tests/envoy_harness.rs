//! The Envoy harness itself: Envoys started at once never share a run directory, a log or a
//! port, and a start that fails always says why (exit status and Envoy's own log). The stress
//! test (`make harness-stress`, not in every `make test`) starts and stops 200 Envoys from 4
//! threads at once.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::HashSet;
use std::sync::Mutex;

use support::{Client, Envoy, EnvoyOptions, Upstream};

/// A policy that loads: every request needs nothing, `/denied` is refused.
const GOOD: &str =
    r#"{"routes": [{"name": "denied", "match": {"prefix": "/denied"}, "auth": {"type": "deny"}}]}"#;
/// A policy the module refuses at load, naming the field.
const BROKEN: &str = r#"{"limits": {"max_body_bytez": 1}}"#;

fn quiet() -> EnvoyOptions {
    EnvoyOptions { log_level: "warning", wasm_log_level: None, ..EnvoyOptions::default() }
}

/// One start: a good policy must serve on the port the harness reports (200 through, 403 on
/// the denied route, so it is this Envoy with this policy); a broken one must fail with the
/// exit status and the module's refusal in the report. `Err` describes what went wrong.
fn start_once(upstream: &Upstream, broken: bool) -> Result<(), String> {
    let policy = if broken { BROKEN } else { GOOD };
    match (Envoy::start_with(policy, upstream.port, quiet()), broken) {
        (Ok(envoy), false) => {
            let client = Client::new(envoy.port);
            let (a, b) = (client.get("/ok").status, client.get("/denied").status);
            if (a, b) != (200, 403) {
                return Err(format!(
                    "port {} answered {a} and {b}, not 200 and 403:\n{}",
                    envoy.port,
                    envoy.log()
                ));
            }
            if !envoy.dir().join("envoy.log").exists() {
                return Err(format!("{} has no envoy.log", envoy.dir().display()));
            }
            Ok(())
        }
        (Ok(envoy), true) => Err(format!("a broken policy became ready on port {}", envoy.port)),
        (Err(report), false) => {
            Err(if report.trim().is_empty() { "EMPTY failure report".into() } else { report })
        }
        (Err(report), true) => {
            let says_why = report.contains("exited before it was ready")
                && report.contains("exit status")
                && report.contains("invalid api-guard configuration at `limits.max_body_bytez`");
            if says_why {
                Ok(())
            } else {
                Err(format!("a broken start's report does not say why:\n{report}"))
            }
        }
    }
}

#[test]
fn envoys_started_at_once_share_no_directory_or_port() {
    let upstream = Upstream::start();
    let envoys: Vec<Envoy> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..3).map(|_| s.spawn(|| Envoy::start_with(GOOD, upstream.port, quiet()).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let dirs: HashSet<_> = envoys.iter().map(|e| e.dir().to_path_buf()).collect();
    let ports: HashSet<_> = envoys.iter().flat_map(|e| [e.port, e.admin_port]).collect();
    assert_eq!(dirs.len(), 3, "run directories shared");
    assert_eq!(ports.len(), 6, "ports shared");
    for e in &envoys {
        assert_eq!(Client::new(e.port).get("/denied").status, 403);
    }
    let gone: Vec<_> = dirs.iter().cloned().collect();
    drop(envoys);
    assert!(gone.iter().all(|d| !d.exists()), "a run directory outlived its Envoy");
}

#[test]
fn a_failed_start_reports_its_exit_status_and_log() {
    let upstream = Upstream::start();
    start_once(&upstream, true).unwrap();
    // Not a module refusal but Envoy's own: a bootstrap it cannot parse.
    let report = Envoy::start_yaml("static_resources: [", &quiet()).err().unwrap();
    assert!(report.contains("exit status"), "{report}");
    assert!(report.contains("--- Envoy's log ---"), "{report}");
    assert!(report.lines().count() > 2, "the log is missing:\n{report}");
}

/// 200 starts and stops from 4 threads at once, one in ten with a broken policy: 0 failures,
/// and every failure report says why. `make harness-stress`.
#[test]
#[ignore = "slow (minutes): run with `make harness-stress`"]
fn two_hundred_envoys_from_four_threads() {
    const THREADS: usize = 4;
    const EACH: usize = 50;
    let upstream = Upstream::start();
    let failures = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (upstream, failures) = (&upstream, &failures);
            s.spawn(move || {
                for i in 0..EACH {
                    if let Err(why) = start_once(upstream, (t * EACH + i) % 10 == 7) {
                        failures.lock().unwrap().push(format!("thread {t}, start {i}: {why}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "{} Envoys started and stopped from {THREADS} threads in {:.0} s: {} failures",
        THREADS * EACH,
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n\n"));
}
