//! A key-set server whose answer a test can change at any moment: a JWKS, an error status,
//! garbage, an oversized body, or no answer in time. It counts the requests it gets.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 with this body.
    Serve(Vec<u8>),
    /// This status with a short body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a body of this many bytes.
    Huge(usize),
    /// Wait this long before answering with the last served body.
    Slow(Duration, Vec<u8>),
}

pub struct JwksServer {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub fn start(mode: Mode) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let hits = Arc::new(AtomicUsize::new(0));
        let (m, h) = (Arc::clone(&mode), Arc::clone(&hits));
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, h) = (Arc::clone(&m), Arc::clone(&h));
                thread::spawn(move || {
                    let mut w = stream.try_clone().unwrap();
                    let mut r = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        // Read one request head (key-set requests have no body).
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line.trim().is_empty() {
                                break;
                            }
                        }
                        h.fetch_add(1, Ordering::SeqCst);
                        let mode = m.lock().unwrap().clone();
                        let (status, body) = match mode {
                            Mode::Serve(b) => (200, b),
                            Mode::Status(s) => (s, b"error".to_vec()),
                            Mode::Garbage => (200, b"<html>not a key set</html>".to_vec()),
                            Mode::Huge(n) => (200, vec![b' '; n]),
                            Mode::Slow(d, b) => {
                                thread::sleep(d);
                                (200, b)
                            }
                        };
                        let head = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if w.write_all(head.as_bytes()).and_then(|_| w.write_all(&body)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        JwksServer { port, mode, hits }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
