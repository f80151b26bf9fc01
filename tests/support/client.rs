//! A raw HTTP/1.1 client: sends exactly the bytes given (in pieces, with pauses if asked) and
//! parses one response.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Client {
    pub port: u16,
}

impl Client {
    pub fn new(port: u16) -> Client {
        Client { port }
    }

    /// A simple request with optional extra headers and body (sent with Content-Length), on
    /// a connection of its own.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.send(&[request_bytes(method, path, headers, body, true)]).expect("no response")
    }

    /// A kept-alive connection, for clients that send many requests on one (browsers, SDKs,
    /// a load balancer's pool).
    pub fn connect(&self) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn { s }
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// Sends the pieces with a short pause between them; returns the parsed response, or None
    /// if the connection closed without one.
    pub fn send(&self, pieces: &[Vec<u8>]) -> Option<Response> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for (i, p) in pieces.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(150));
            }
            if s.write_all(p).is_err() {
                break;
            }
        }
        read_response(&mut s)
    }
}

/// One kept-alive HTTP/1.1 connection.
pub struct Conn {
    s: TcpStream,
}

impl Conn {
    /// A request on this connection; `None` if the gateway closed it without an answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<Response> {
        self.s.write_all(&request_bytes(method, path, headers, body, false)).ok()?;
        read_response(&mut self.s)
    }
}

fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], close: bool) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n");
    if close {
        raw.push_str("connection: close\r\n");
    }
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        raw.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A chunked request: head (without Transfer-Encoding, which is added) then each chunk as
/// its own write.
pub fn chunked(head: &str, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut pieces = vec![format!("{head}transfer-encoding: chunked\r\n\r\n").into_bytes()];
    for c in chunks {
        let mut p = format!("{:x}\r\n", c.len()).into_bytes();
        p.extend_from_slice(c);
        p.extend_from_slice(b"\r\n");
        pieces.push(p);
    }
    pieces.push(b"0\r\n\r\n".to_vec());
    pieces
}

fn read_response(s: &mut TcpStream) -> Option<Response> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < len {
            let n = s.read(&mut tmp).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&tmp[..n]);
        }
        body.truncate(len);
    } else if find("transfer-encoding").is_some() {
        loop {
            let n = s.read(&mut tmp).unwrap_or(0);
            if n == 0 || body.ends_with(b"0\r\n\r\n") {
                break;
            }
            body.extend_from_slice(&tmp[..n]);
        }
        body = dechunk(&body);
    }
    Some(Response { status, headers, body })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = raw.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&raw[..p]).trim(), 16).unwrap_or(0);
        if n == 0 || raw.len() < p + 2 + n {
            break;
        }
        out.extend_from_slice(&raw[p + 2..p + 2 + n]);
        raw = &raw[(p + 4 + n).min(raw.len())..];
    }
    out
}
