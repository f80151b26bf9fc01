//! An upstream that records every request that reaches it (from the moment its head arrives),
//! so a test can prove a denied request never did.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A request as the upstream saw it.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the whole body arrived.
    pub complete: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The recording upstream. It answers every request `200` with a small JSON body.
pub struct Upstream {
    pub port: u16,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    /// Starts on a free loopback port.
    pub fn start() -> Upstream {
        Upstream::start_at("127.0.0.1:0", false)
    }

    /// Starts on `addr`; `verbose` prints one line per request received (the demo uses it).
    pub fn start_at(addr: &str, verbose: bool) -> Upstream {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                thread::spawn(move || serve(stream, s, verbose));
            }
        });
        Upstream { port, seen }
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn seen_path(&self, prefix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path.starts_with(prefix)).collect()
    }
}

/// Reads one line as (lossy) text; None at EOF or error. Header values may be any bytes.
fn line(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut raw = Vec::new();
    match reader.read_until(b'\n', &mut raw) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&raw).into_owned()),
    }
}

fn serve(stream: TcpStream, seen: Arc<Mutex<Vec<Recorded>>>, verbose: bool) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request_line) = line(&mut reader) else {
            return;
        };
        let mut parts = request_line.split_whitespace();
        let mut rec = Recorded {
            method: parts.next().unwrap_or("").to_string(),
            path: parts.next().unwrap_or("").to_string(),
            ..Recorded::default()
        };
        loop {
            let Some(h) = line(&mut reader) else { return };
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                rec.headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let idx = {
            let mut g = seen.lock().unwrap();
            g.push(rec.clone());
            g.len() - 1
        };
        let body = if rec.header("transfer-encoding").is_some() {
            read_chunked(&mut reader)
        } else {
            let len: usize = rec.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut buf = vec![0; len];
            reader.read_exact(&mut buf).ok().map(|_| buf)
        };
        let Some(body) = body else { return };
        if verbose {
            println!("upstream received: {} {} ({} body bytes)", rec.method, rec.path, body.len());
        }
        {
            let mut g = seen.lock().unwrap();
            g[idx].body = body;
            g[idx].complete = true;
        }
        // Tests ask for extra response headers with `x-test-reply-headers: a: 1|b: 2`.
        let extra: String = rec
            .header("x-test-reply-headers")
            .map(|v| v.split('|').map(|h| format!("{}\r\n", h.trim())).collect())
            .unwrap_or_default();
        // `x-test-echo: 1` sends the request body back (or `x-test-echo-body`, for requests
        // without one), with its content type (or `x-test-echo-type`) and status
        // `x-test-status`; `chunked` does so in two chunks; `truncated` announces the whole
        // length, sends half and closes the connection (an upstream failing mid-body).
        // `x-test-echo: reset` closes the connection without answering.
        if rec.header("x-test-echo") == Some("reset") {
            return;
        }
        if let Some(mode) = rec.header("x-test-echo") {
            let ct = rec
                .header("x-test-echo-type")
                .or(rec.header("content-type"))
                .unwrap_or("application/json")
                .to_string();
            let status = rec.header("x-test-status").unwrap_or("200 OK").to_string();
            // `x-test-echo-type: none` sends no content type at all.
            let ct_line = if ct == "none" { String::new() } else { format!("content-type: {ct}\r\n") };
            let mut out = format!("HTTP/1.1 {status}\r\n{ct_line}{extra}").into_bytes();
            let body = match rec.header("x-test-echo-body") {
                Some(b) => b.as_bytes().to_vec(),
                None => seen.lock().unwrap()[idx].body.clone(),
            };
            if mode == "chunked" {
                let (a, b) = body.split_at(body.len() / 2);
                out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                for part in [a, b] {
                    if !part.is_empty() {
                        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                        out.extend_from_slice(part);
                        out.extend_from_slice(b"\r\n");
                    }
                }
                out.extend_from_slice(b"0\r\n\r\n");
            } else if mode == "truncated" {
                out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(&body[..body.len() / 2]);
                let _ = writer.write_all(&out);
                return;
            } else {
                out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(&body);
            }
            if writer.write_all(&out).is_err() {
                return;
            }
            continue;
        }
        let reply = br#"{"ok":true}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n",
            reply.len()
        );
        if writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(reply)).is_err() {
            return;
        }
    }
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size = line(reader)?;
        let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        if n == 0 {
            loop {
                let trailer = line(reader)?;
                if trailer.trim().is_empty() {
                    return Some(body);
                }
            }
        }
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..n]);
    }
}
