//! A rate-limit service for the tests: the RLS v3 API
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, gRPC over HTTP/2) in front
//! of Limitador, counting in Redis.
//!
//! `api-guard-test-rls LISTEN REDIS_URL LIMITS.json` serves on `LISTEN` (`127.0.0.1:0` picks a
//! port; the chosen address is printed as `listening on ADDR`). LIMITS is a JSON array of
//! Limitador limits whose conditions and variables read `descriptors[0]`. Each descriptor of a
//! request is checked on its own (as Envoy's reference service does) and answered with its
//! status: the most restrictive matching counter's limit, remaining and reset. Limitador errors
//! (Redis down) answer gRPC status 14 (UNAVAILABLE).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use limitador::limit::{Context, Limit};
use limitador::storage::redis::AsyncRedisStorage;
use limitador::storage::AsyncStorage;
use limitador::{AsyncRateLimiter, AsyncRateLimiterBuilder};
use prost::Message;
use tokio::net::TcpListener;

const METHOD: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

#[derive(Clone, PartialEq, Message)]
struct RateLimitRequest {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(message, repeated, tag = "2")]
    descriptors: Vec<RateLimitDescriptor>,
    #[prost(uint32, tag = "3")]
    hits_addend: u32,
}

#[derive(Clone, PartialEq, Message)]
struct RateLimitDescriptor {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<Entry>,
}

#[derive(Clone, PartialEq, Message)]
struct Entry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct RateLimitResponse {
    #[prost(int32, tag = "1")]
    overall_code: i32,
    #[prost(message, repeated, tag = "2")]
    statuses: Vec<DescriptorStatus>,
}

#[derive(Clone, PartialEq, Message)]
struct DescriptorStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(message, optional, tag = "2")]
    current_limit: Option<RateLimit>,
    #[prost(uint32, tag = "3")]
    limit_remaining: u32,
    #[prost(message, optional, tag = "4")]
    duration_until_reset: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, Message)]
struct RateLimit {
    #[prost(uint32, tag = "1")]
    requests_per_unit: u32,
    #[prost(int32, tag = "2")]
    unit: i32,
    #[prost(string, tag = "3")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

const OK: i32 = 1;
const OVER_LIMIT: i32 = 2;

/// The RLS unit for a window, where it is one (the protocol has no other lengths).
fn unit(window: Duration) -> Option<i32> {
    match window.as_secs() {
        1 => Some(1),
        60 => Some(2),
        3600 => Some(3),
        86400 => Some(4),
        _ => None,
    }
}

async fn check(limiter: &AsyncRateLimiter, req: &RateLimitRequest) -> Result<RateLimitResponse, String> {
    let delta = u64::from(req.hits_addend.max(1));
    let mut out = RateLimitResponse { overall_code: OK, statuses: Vec::new() };
    for d in &req.descriptors {
        let map: HashMap<String, String> = d.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        let mut ctx = Context::default();
        ctx.list_binding("descriptors".to_string(), vec![map]);
        let result = limiter
            .check_rate_limited_and_update(&req.domain.as_str().into(), &ctx, delta)
            .await
            .map_err(|e| e.to_string())?;
        let code = if result.limited { OVER_LIMIT } else { OK };
        if result.limited {
            out.overall_code = OVER_LIMIT;
        }
        let tightest = result.counters.iter().min_by_key(|c| c.remaining().unwrap_or(c.max_value()));
        let status = match tightest {
            None => DescriptorStatus { code, ..Default::default() },
            Some(c) => DescriptorStatus {
                code,
                current_limit: unit(c.window()).map(|unit| RateLimit {
                    requests_per_unit: c.max_value() as u32,
                    unit,
                    name: c.limit().name().unwrap_or_default().to_string(),
                }),
                limit_remaining: c.remaining().unwrap_or(c.max_value()) as u32,
                duration_until_reset: c
                    .expires_in()
                    .map(|d| ProtoDuration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }),
            },
        };
        out.statuses.push(status);
    }
    Ok(out)
}

fn trailers(status: u32, message: &str) -> http::HeaderMap {
    let mut t = http::HeaderMap::new();
    t.insert("grpc-status", status.to_string().parse().unwrap());
    if !message.is_empty() {
        t.insert("grpc-message", message.replace(|c: char| !c.is_ascii_graphic() && c != ' ', "_").parse().unwrap());
    }
    t
}

/// Limitador over Redis, replaced by a fresh connection when Redis fails: the connection
/// manager of Limitador's Redis client waits on a connection that died with its server, so
/// the service reconnects itself (as a restarted service would) once Redis answers again.
struct Service {
    current: tokio::sync::RwLock<Arc<AsyncRateLimiter>>,
    redis: String,
    limits: Vec<Limit>,
    reconnecting: std::sync::atomic::AtomicBool,
}

impl Service {
    async fn connect(redis: &str, limits: &[Limit]) -> Result<AsyncRateLimiter, String> {
        let storage = tokio::time::timeout(Duration::from_secs(1), AsyncRedisStorage::new(redis))
            .await
            .map_err(|_| "Redis did not answer".to_string())?
            .map_err(|e| e.to_string())?;
        let limiter = AsyncRateLimiterBuilder::new(AsyncStorage::with_counter_storage(Box::new(storage))).build();
        for l in limits {
            limiter.add_limit(l.clone());
        }
        Ok(limiter)
    }

    async fn check(self: &Arc<Self>, req: &RateLimitRequest) -> Result<RateLimitResponse, String> {
        let limiter = Arc::clone(&*self.current.read().await);
        let out = match tokio::time::timeout(Duration::from_secs(1), check(&limiter, req)).await {
            Ok(r) => r,
            Err(_) => Err("Limitador did not answer in time".to_string()),
        };
        if out.is_err() && !self.reconnecting.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let me = Arc::clone(self);
            tokio::spawn(async move {
                loop {
                    if let Ok(l) = Service::connect(&me.redis, &me.limits).await {
                        *me.current.write().await = Arc::new(l);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                me.reconnecting.store(false, std::sync::atomic::Ordering::SeqCst);
            });
        }
        out
    }
}

async fn serve_stream(
    limiter: Arc<Service>,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let path = request.uri().path().to_string();
    let mut body = request.into_body();
    let mut bytes = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let head = http::Response::builder().status(200).header("content-type", "application/grpc").body(()).unwrap();
    let mut send = respond.send_response(head, false)?;
    if path != METHOD {
        return send.send_trailers(trailers(12, "unimplemented"));
    }
    let mut frame = bytes.freeze();
    if frame.len() < 5 || frame[0] != 0 {
        return send.send_trailers(trailers(3, "bad frame"));
    }
    frame.advance(1);
    let len = frame.get_u32() as usize;
    let Some(message) = frame.get(..len) else { return send.send_trailers(trailers(3, "short frame")) };
    let req = match RateLimitRequest::decode(message) {
        Ok(r) => r,
        Err(e) => return send.send_trailers(trailers(3, &e.to_string())),
    };
    let checked = limiter.check(&req).await;
    if std::env::var_os("RLS_TRACE").is_some() {
        eprintln!("rls: {req:?} -> {checked:?}");
    }
    match checked {
        Ok(resp) => {
            let encoded = resp.encode_to_vec();
            let mut out = BytesMut::with_capacity(encoded.len() + 5);
            out.put_u8(0);
            out.put_u32(encoded.len() as u32);
            out.extend_from_slice(&encoded);
            send.send_data(out.freeze(), false)?;
            send.send_trailers(trailers(0, ""))
        }
        Err(e) => {
            eprintln!("limitador: {e}");
            send.send_trailers(trailers(14, &e))
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, redis, limits] = args.as_slice() else {
        eprintln!("usage: api-guard-test-rls LISTEN REDIS_URL LIMITS.json");
        std::process::exit(2);
    };
    let limits: Vec<Limit> =
        serde_json::from_slice(&std::fs::read(limits).expect("read limits")).expect("limits file");
    let first = Service::connect(redis, &limits).await.expect("connect to Redis");
    let limiter = Arc::new(Service {
        current: tokio::sync::RwLock::new(Arc::new(first)),
        redis: redis.clone(),
        limits,
        reconnecting: std::sync::atomic::AtomicBool::new(false),
    });
    let listener = TcpListener::bind(listen).await.expect("bind");
    println!("listening on {}", listener.local_addr().unwrap());
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        // Small answers on a long-lived connection: without this, Nagle's algorithm holds
        // each one until the client's delayed ACK (tens of milliseconds per call).
        let _ = socket.set_nodelay(true);
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move {
            let Ok(mut conn) = h2::server::handshake(socket).await else { return };
            while let Some(Ok((request, respond))) = conn.accept().await {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    let _ = serve_stream(limiter, request, respond).await;
                });
            }
        });
    }
}
