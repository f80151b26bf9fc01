//! The rate-limit service of the global-limit tests and bench rows: Redis on a Unix socket
//! and the RLS v3 server over Limitador (`tests/rls`, built by `make rls-server`).

use std::path::{Path, PathBuf};

/// A Redis server on a Unix socket in `dir` (no TCP port to choose), killed on drop.
pub struct Redis {
    child: std::process::Child,
    pub socket: PathBuf,
}

impl Redis {
    /// Starts one (Debian's `redis-server`, `make redis`) with no persistence.
    pub fn start(dir: &Path) -> Redis {
        let socket = dir.join("redis.sock");
        let _ = std::fs::remove_file(&socket);
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (make redis)");
        // Killed on drop, also when it never listens.
        let redis = Redis { child, socket };
        for _ in 0..200 {
            if std::os::unix::net::UnixStream::connect(&redis.socket).is_ok() {
                return redis;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("redis-server did not listen on {}", redis.socket.display());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rate-limit service over `redis` with Limitador `limits` (Limitador's own JSON form of
/// its limit definitions), listening on a port of its own.
pub fn service(dir: &Path, redis: &Redis, limits: &serde_json::Value) -> super::Helper {
    let file = dir.join("limits.json");
    std::fs::write(&file, limits.to_string()).unwrap();
    let bin = super::repo_root().join("target/rls/release/api-guard-test-rls");
    assert!(bin.exists(), "{} is missing: make rls-server", bin.display());
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("127.0.0.1:0").arg(format!("redis+unix://{}", redis.socket.display())).arg(&file);
    super::start_helper("the rate-limit service", &mut cmd, "listening on 127.0.0.1:")
}

/// A Limitador limit of `max` requests per `seconds` for each caller of the api-guard policy
/// `name` (the descriptor api-guard sends: `policy`, then `key`), in `namespace`.
pub fn limit(namespace: &str, name: &str, max: u64, seconds: u64) -> serde_json::Value {
    serde_json::json!({"namespace": namespace, "name": name, "max_value": max, "seconds": seconds,
                       "conditions": [format!("descriptors[0]['policy'] == '{name}'")],
                       "variables": ["descriptors[0]['key']"]})
}
