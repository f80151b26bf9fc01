//! Replays every saved fuzz input (`fuzz/corpus/<target>/`) through the fuzz targets' bodies
//! (`fuzz/targets.rs`), so inputs the fuzzer found interesting, and any crash it ever found,
//! stay regression cases in `make test` without libFuzzer.

#[path = "../fuzz/targets.rs"]
mod targets;

type Target = fn(&[u8]);

#[test]
fn every_saved_fuzz_input_passes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let all: [(&str, Target); 6] = [
        ("config", targets::config),
        ("jwt", targets::jwt),
        ("json_limits", targets::json_limits),
        ("schema", targets::schema),
        ("redact", targets::redact),
        ("route", targets::route),
    ];
    for (name, target) in all {
        let dir = root.join(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "fuzz target {name} fails on {}", path.display());
            n += 1;
        }
        assert!(n >= 3, "fuzz/corpus/{name} holds only {n} inputs");
        println!("{name}: {n} inputs");
    }
}
