//! CORS proven in a real browser: Debian's headless chromium, driven by playwright-core
//! (tests/browser/cors.mjs), loads a page from origin A and calls the API through the real
//! Envoy on origin B. The recording upstream shows what each scenario let through.
//!
//! The test installs chromium (apt) and playwright-core (npm) when missing, and skips with a
//! loud message only where installation is impossible.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::{Envoy, Upstream};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Serves a blank HTML page on every path; returns the port.
fn page_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "<!doctype html><title>api-guard CORS test page</title>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Makes sure chromium and playwright-core are there; `Err` says why they cannot be.
fn ensure_tools(dir: &Path) -> Result<(), String> {
    if !Path::new(CHROMIUM).exists() {
        let ok = Command::new("sh")
            .args(["-c", "(apt-get install -y -qq chromium || (apt-get update -qq && apt-get install -y -qq chromium)) >/dev/null 2>&1"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok || !Path::new(CHROMIUM).exists() {
            return Err("chromium is missing and `apt-get install chromium` failed".into());
        }
    }
    if !dir.join("node_modules/playwright-core").exists() {
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("npm could not install playwright-core".into());
        }
    }
    Ok(())
}

#[test]
fn a_real_browser_sees_the_cors_policy() {
    let dir = support::repo_root().join("tests/browser");
    if let Err(why) = ensure_tools(&dir) {
        eprintln!("\n!!!!!!!!!! SKIPPED: the browser CORS test cannot run here: {why} !!!!!!!!!!\n");
        return;
    }
    let page = page_server();
    let evil = page_server();
    let page_origin = format!("http://localhost:{page}");
    let upstream = Upstream::start();
    let config = json!({
        "routes": [
            {"name": "cred", "match": {"prefix": "/cred"}, "cors": {
                "allowed_origins": [page_origin], "allow_credentials": true,
                "allowed_methods": ["GET", "PUT"], "allowed_headers": ["content-type", "x-trace"]}},
            {"name": "nocred", "match": {"prefix": "/nocred"}, "cors": {"allowed_origins": [page_origin]}}
        ]
    });
    let envoy = Envoy::start(&config.to_string(), upstream.port);

    let out = Command::new("node")
        .arg("cors.mjs")
        .current_dir(&dir)
        .env("PAGE", format!("{page_origin}/"))
        .env("EVIL", format!("http://127.0.0.1:{evil}/"))
        .env("API", format!("http://localhost:{}", envoy.port))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).unwrap();
    eprintln!("browser outcomes: {r:#}");

    let read = |k: &str| {
        assert_eq!(r[k]["status"], 200, "{k}: {}", r[k]);
        assert_eq!(r[k]["body"], r#"{"ok":true}"#, "{k}");
    };
    let refused =
        |k: &str| assert!(r[k]["error"].as_str().is_some_and(|e| e.contains("TypeError")), "{k}: {}", r[k]);

    // A simple GET from the allowed origin: the page reads the body.
    read("simple_get");
    // Credentials: with the cookie where allowed; refused to the page where not.
    read("credentialed_allowed");
    let with_cookie = upstream.seen_path("/cred/with-cookie");
    assert_eq!(with_cookie.len(), 1);
    assert!(
        with_cookie[0].header("cookie").is_some_and(|c| c.contains("sid=s3cret-session")),
        "{:?}",
        with_cookie[0].headers
    );
    refused("credentialed_not_allowed");
    // A PUT with a custom header: preflighted (by api-guard, not the upstream), then sent.
    read("preflighted_put");
    let puts = upstream.seen_path("/cred/put");
    assert_eq!(
        puts.iter().map(|p| p.method.as_str()).collect::<Vec<_>>(),
        vec!["PUT"],
        "the preflight must not reach the upstream"
    );
    // A disallowed origin: fetch rejects, and the upstream saw neither preflight nor PUT.
    refused("evil_put");
    assert!(upstream.seen_path("/cred/evil").is_empty(), "{:?}", upstream.seen_path("/cred/evil"));
    refused("evil_get");
    assert_eq!(envoy.preflights(), 1);
    assert_eq!(envoy.denied("cors_rejected"), 1);
}
