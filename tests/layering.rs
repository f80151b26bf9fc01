//! The policy core must never depend on the host: no `proxy_wasm` anywhere under `src/policy`.
//! The host layer (`src/host`) is the only place allowed to name it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

/// Source text without comment lines (docs may mention the host).
fn code(f: &Path) -> String {
    std::fs::read_to_string(f)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn policy_core_does_not_import_proxy_wasm() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/policy"), &mut files);
    assert!(files.len() >= 5, "policy sources not found");
    for f in &files {
        let text = code(f);
        assert!(!text.contains("proxy_wasm"), "{} names proxy_wasm", f.display());
        assert!(!text.contains("crate::host"), "{} reaches into the host layer", f.display());
    }
}

#[test]
fn only_the_host_layer_names_proxy_wasm() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    for f in &files {
        let text = code(f);
        if text.contains("proxy_wasm") {
            assert!(
                f.starts_with(root.join("src/host")),
                "{} names proxy_wasm outside src/host",
                f.display()
            );
        }
    }
}

/// The command line runs the core natively: it never reaches into the host layer, so what it
/// checks and explains is the core's decision, not a host's.
#[test]
fn the_command_line_uses_only_the_core() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/bin"), &mut files);
    assert!(files.len() >= 3, "command-line sources not found");
    for f in &files {
        let text = code(f);
        assert!(!text.contains("api_guard::host"), "{} reaches into the host layer", f.display());
        assert!(!text.contains("proxy_wasm"), "{} names proxy_wasm", f.display());
    }
}
