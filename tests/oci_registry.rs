//! The OCI artifact: `examples/oci.py` (what `make oci` runs) packs the built module and the
//! lean module, each in both variants; every blob's digest is checked, the right module's
//! bytes are found again in each manifest,
//! a second build gives the same digests, and both are pushed with skopeo to Debian's
//! docker-registry on loopback and pulled back unchanged (manifest digests, layer digests and
//! the wasm bytes).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn temp(name: &str) -> PathBuf {
    support::unique_dir(&format!("oci-{name}"))
}

fn pack(out: &Path) {
    let status = Command::new("python3")
        .arg(support::repo_root().join("examples/oci.py"))
        .arg(support::envoy::wasm_path())
        .arg(out)
        .args(["--version", "1.2.3", "--lean"])
        .arg(support::envoy::lean_wasm_path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// Reads a descriptor's blob and checks its digest and size.
fn checked(layout: &Path, d: &Value) -> Vec<u8> {
    let data = blob(layout, d["digest"].as_str().unwrap());
    assert_eq!(sha256(&data), d["digest"], "blob content does not match its digest");
    assert_eq!(data.len() as u64, d["size"].as_u64().unwrap());
    data
}

/// (tag, manifest descriptor) of each manifest in the layout's index.
fn manifests(layout: &Path) -> Vec<(String, Value)> {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let layout_file: Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout_file["imageLayoutVersion"], "1.0.0");
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (d["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string(), d.clone())
        })
        .collect()
}

/// The file `name` in a gzip-compressed tar, read with the system's tar.
fn untar(gz: &[u8], name: &str) -> Vec<u8> {
    let dir = temp("untar");
    std::fs::write(dir.join("layer.tar.gz"), gz).unwrap();
    let out = Command::new("tar").arg("-xzOf").arg(dir.join("layer.tar.gz")).arg(name).output().unwrap();
    assert!(out.status.success(), "{name} not in the layer: {}", String::from_utf8_lossy(&out.stderr));
    let listing = Command::new("tar").arg("-tzf").arg(dir.join("layer.tar.gz")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout).trim(), name, "the layer holds exactly {name}");
    std::fs::remove_dir_all(&dir).ok();
    out.stdout
}

/// The module each tag must hold: the full one, and the lean one under `-lean` tags.
fn module_of(tag: &str) -> Vec<u8> {
    let lean = tag.contains("-lean");
    std::fs::read(if lean { support::envoy::lean_wasm_path() } else { support::envoy::wasm_path() }).unwrap()
}

#[test]
fn both_variants_hold_the_module_and_build_reproducibly() {
    let a = temp("a");
    let b = temp("b");
    pack(&a);
    pack(&b);
    assert_eq!(
        std::fs::read(a.join("index.json")).unwrap(),
        std::fs::read(b.join("index.json")).unwrap(),
        "two packs of the same module differ"
    );
    let m = manifests(&a);
    assert_eq!(
        m.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        ["1.2.3", "1.2.3-oci", "1.2.3-lean", "1.2.3-lean-oci"]
    );
    assert!(module_of("1.2.3") != module_of("1.2.3-lean"), "the lean module is the full one");
    for pair in m.chunks(2) {
        let [(tag, compat), (_, artifact)] = pair else { panic!("manifests come in pairs") };
        check_pair(&a, &module_of(tag), compat, artifact);
    }
    std::fs::remove_dir_all(&a).ok();
    std::fs::remove_dir_all(&b).ok();
}

/// One module's compat image and Wasm artifact, both holding `wasm`.
fn check_pair(a: &Path, wasm: &[u8], compat: &Value, artifact: &Value) {
    // compat: one tar+gzip layer with plugin.wasm; the config's diff_id is the tar's digest.
    let compat: Value = serde_json::from_slice(&checked(a, compat)).unwrap();
    assert_eq!(compat["annotations"]["module.wasm.image/variant"], "compat");
    let layers = compat["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let gz = checked(a, &layers[0]);
    assert!(untar(&gz, "plugin.wasm") == wasm, "compat layer does not hold the module");
    let config: Value = serde_json::from_slice(&checked(a, &compat["config"])).unwrap();
    let mut tar = Vec::new();
    flate_decompress(&gz, &mut tar);
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&tar));

    // The Wasm artifact: runtime config then the raw module, both as layers.
    let artifact: Value = serde_json::from_slice(&checked(a, artifact)).unwrap();
    let layers = artifact["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "Istio's fetcher wants exactly two layers");
    assert_eq!(layers[0]["mediaType"], "application/vnd.module.wasm.config.v1+json");
    assert_eq!(artifact["config"]["mediaType"], "application/vnd.module.wasm.config.v1+json");
    let runtime: Value = serde_json::from_slice(&checked(a, &layers[0])).unwrap();
    assert_eq!(runtime["type"], "envoy_proxy");
    assert_eq!(layers[1]["mediaType"], "application/vnd.module.wasm.content.layer.v1+wasm");
    assert!(checked(a, &layers[1]) == wasm, "artifact layer is not the module");
    assert_eq!(layers[1]["digest"], sha256(wasm));
}

/// gzip → tar bytes, with the system's gzip (no compression crate in the project).
fn flate_decompress(gz: &[u8], out: &mut Vec<u8>) {
    let mut child =
        Command::new("gzip").arg("-dc").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = gz.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data).unwrap();
    });
    child.stdout.take().unwrap().read_to_end(out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
}

struct Registry {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// Starts docker-registry on a free port. It cannot be told to report a port it picked, so
/// the port is chosen here; a port taken in between makes the registry exit, and another one
/// is tried. Ready means the process is still running and `/v2/` answers as a registry does,
/// so a server of another test that happens to hold the port is never mistaken for it.
fn registry() -> Registry {
    let mut last = String::new();
    for _ in 0..5 {
        match try_registry() {
            Ok(reg) => return reg,
            Err(why) => last = why,
        }
    }
    panic!("docker-registry did not start: {last}")
}

fn try_registry() -> Result<Registry, String> {
    let dir = temp("registry");
    let port = support::free_port();
    let config = format!(
        "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
        dir.join("store").display()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
        .spawn()
        .expect("docker-registry not found: `make oci-tools` installs it");
    let mut reg = Registry { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = reg.child.try_wait() {
            let log = std::fs::read_to_string(reg.dir.join("registry.log")).unwrap_or_default();
            return Err(format!("port {port}: exited ({status}): {log}"));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let probe = b"GET /v2/ HTTP/1.1\r\nhost: registry\r\nconnection: close\r\n\r\n".to_vec();
            let answer = support::Client::new(port).send(&[probe]);
            if answer
                .is_some_and(|r| r.status == 200 && r.header("docker-distribution-api-version").is_some())
            {
                return Ok(reg);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("port {port}: not answering as a registry after 20 s"))
}

/// GET from the registry's HTTP API: (digest header, body).
fn get(port: u16, path: &str, accept: &str) -> (Option<String>, Vec<u8>) {
    let r = support::Client::new(port).request("GET", path, &[("accept", accept)], b"");
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    (r.header("docker-content-digest").map(str::to_string), r.body)
}

fn skopeo(args: &[&str]) {
    let out =
        Command::new("skopeo").args(args).output().expect("skopeo not found: `make oci-tools` installs it");
    assert!(out.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn both_variants_survive_a_registry_round_trip() {
    let layout = temp("push");
    pack(&layout);
    let reg = registry();
    let pulled = temp("pulled");
    for (tag, d) in manifests(&layout) {
        let wasm = module_of(&tag);
        let dest = format!("docker://127.0.0.1:{}/api-guard:{tag}", reg.port);
        skopeo(&[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", layout.display()),
            &dest,
        ]);

        // The registry serves the same manifest, and the module's bytes under their digest.
        let (digest, manifest) = get(
            reg.port,
            &format!("/v2/api-guard/manifests/{tag}"),
            "application/vnd.oci.image.manifest.v1+json",
        );
        assert_eq!(digest.as_deref(), d["digest"].as_str(), "{tag}: manifest digest changed in the registry");
        assert_eq!(sha256(&manifest), d["digest"]);
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        for layer in manifest["layers"].as_array().unwrap() {
            let (_, bytes) =
                get(reg.port, &format!("/v2/api-guard/blobs/{}", layer["digest"].as_str().unwrap()), "*/*");
            assert_eq!(sha256(&bytes), layer["digest"]);
            if layer["mediaType"] == "application/vnd.module.wasm.content.layer.v1+wasm" {
                assert!(bytes == wasm, "{tag}: the registry's module differs");
            }
            if layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip" {
                assert!(untar(&bytes, "plugin.wasm") == wasm, "{tag}: the registry's plugin.wasm differs");
            }
        }

        // Pulled back into a layout: the same manifest.
        skopeo(&[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &dest,
            &format!("oci:{}:{tag}", pulled.display()),
        ]);
        let back = manifests(&pulled);
        let (_, again) = back.iter().find(|(t, _)| *t == tag).unwrap();
        assert_eq!(again["digest"], d["digest"], "{tag}: pulled manifest differs");
        checked(&pulled, again);
    }
    std::fs::remove_dir_all(&layout).ok();
    std::fs::remove_dir_all(&pulled).ok();
}
