//! The demo's upstream for `make run`: answers every request `200 {"ok":true}` on
//! 127.0.0.1:10001 and prints each request that reaches it, so you can see which requests
//! api-guard let through. It is the same recording upstream the integration tests use.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[allow(dead_code)]
#[path = "../tests/support/upstream.rs"]
mod upstream;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:10001".to_string());
    let up = upstream::Upstream::start_at(&addr, true);
    println!("demo upstream listening on 127.0.0.1:{}", up.port);
    loop {
        std::thread::park();
    }
}
