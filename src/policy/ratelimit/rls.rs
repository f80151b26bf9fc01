//! The wire of Envoy's rate-limit service API (RLS v3,
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`): the protobuf messages a
//! global policy sends and reads, written and read by hand (the few fields used; unknown
//! fields in an answer are skipped, as protobuf requires).
//!
//! A request is `RateLimitRequest { domain = 1, descriptors = 2, hits_addend = 3 }`, each
//! descriptor `{ entries = 1 }` of `{ key = 1, value = 2 }`. An answer is
//! `RateLimitResponse { overall_code = 1, statuses = 2 }`, each status
//! `{ code = 1, current_limit = 2 { requests_per_unit = 1, unit = 2 }, limit_remaining = 3,
//! duration_until_reset = 4 { seconds = 1 } }`.

/// The gRPC service and method.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
/// The method of [`SERVICE`].
pub const METHOD: &str = "ShouldRateLimit";

/// `RateLimitResponse.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// UNKNOWN (0), or a value this module does not know.
    Unknown,
    /// OK (1).
    Ok,
    /// OVER_LIMIT (2).
    OverLimit,
}

/// One descriptor's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Its code.
    pub code: Option<Code>,
    /// The limit that applied: requests per unit, and the unit in seconds (where the unit is
    /// one this module knows).
    pub limit: Option<(u32, u32)>,
    /// Requests left in the current window.
    pub remaining: u32,
    /// Whole seconds until the window resets, where the service said.
    pub reset: Option<u32>,
}

/// A decoded `RateLimitResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The overall code.
    pub overall: Code,
    /// One status per descriptor sent, in order, where the service gives them.
    pub statuses: Vec<Status>,
}

/// Why an answer could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    varint(out, u64::from(tag << 3 | 2));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encodes a `RateLimitRequest` for `domain` with one descriptor per item of `descriptors`
/// (each a list of entries), counting one hit.
pub fn encode_request(domain: &str, descriptors: &[Vec<(&str, &str)>]) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, domain.as_bytes());
    for d in descriptors {
        let mut desc = Vec::new();
        for (k, v) in d {
            let mut entry = Vec::new();
            bytes_field(&mut entry, 1, k.as_bytes());
            bytes_field(&mut entry, 2, v.as_bytes());
            bytes_field(&mut desc, 1, &entry);
        }
        bytes_field(&mut out, 2, &desc);
    }
    varint(&mut out, 3 << 3);
    varint(&mut out, 1);
    out
}

/// A serialized `envoy.config.core.v3.GrpcService { envoy_grpc = 1 { cluster_name = 1 } }`:
/// what Envoy's `proxy_grpc_call` takes as its upstream. (A bare cluster name is also
/// accepted, but an unknown one is then refused with a status the SDK does not survive.)
pub fn grpc_service(cluster: &str) -> Vec<u8> {
    let mut inner = Vec::new();
    bytes_field(&mut inner, 1, cluster.as_bytes());
    let mut out = Vec::new();
    bytes_field(&mut out, 1, &inner);
    out
}

/// A protobuf reader over one message's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skipped,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.bytes.split_first().ok_or(DecodeError)?;
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError)?;
        if n > self.bytes.len() {
            return Err(DecodeError);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// The next field (number and value), or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, DecodeError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Skipped
            }
            2 => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Skipped
            }
            _ => return Err(DecodeError),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn code(v: u64) -> Code {
    match v {
        1 => Code::Ok,
        2 => Code::OverLimit,
        _ => Code::Unknown,
    }
}

/// Seconds in an RLS `RateLimit.Unit` (SECOND 1, MINUTE 2, HOUR 3, DAY 4, WEEK 7).
fn unit_seconds(unit: u64) -> Option<u32> {
    match unit {
        1 => Some(1),
        2 => Some(60),
        3 => Some(3600),
        4 => Some(86_400),
        7 => Some(604_800),
        _ => None,
    }
}

/// Fields 1 and 2 of a message whose both fields are varints (0 when absent).
fn varints_1_2(bytes: &[u8]) -> Result<(u64, u64), DecodeError> {
    let (mut one, mut two) = (0, 0);
    let mut r = Reader { bytes };
    while let Some((n, v)) = r.field()? {
        match (n, v) {
            (1, Value::Varint(x)) => one = x,
            (2, Value::Varint(x)) => two = x,
            _ => {}
        }
    }
    Ok((one, two))
}

fn decode_status(bytes: &[u8]) -> Result<Status, DecodeError> {
    let mut r = Reader { bytes };
    let mut s = Status::default();
    while let Some((n, v)) = r.field()? {
        match (n, v) {
            (1, Value::Varint(c)) => s.code = Some(code(c)),
            (2, Value::Bytes(b)) => {
                // RateLimit { requests_per_unit = 1, unit = 2 }
                let (requests, unit) = varints_1_2(b)?;
                let requests = u32::try_from(requests).unwrap_or(u32::MAX);
                s.limit = unit_seconds(unit).filter(|_| requests > 0).map(|w| (requests, w));
            }
            (3, Value::Varint(x)) => s.remaining = u32::try_from(x).unwrap_or(u32::MAX),
            (4, Value::Bytes(b)) => {
                // google.protobuf.Duration { seconds = 1, nanos = 2 }
                let (seconds, nanos) = varints_1_2(b)?;
                // Whole seconds, rounded up: a client that waits `t` finds the window reset.
                let whole = seconds.saturating_add(u64::from(nanos > 0 && nanos < 1_000_000_000));
                s.reset = Some(u32::try_from(whole).unwrap_or(u32::MAX));
            }
            (1..=4, _) => return Err(DecodeError),
            _ => {}
        }
    }
    Ok(s)
}

/// Decodes a `RateLimitResponse`.
pub fn decode_response(bytes: &[u8]) -> Result<Response, DecodeError> {
    let mut r = Reader { bytes };
    let mut out = Response { overall: Code::Unknown, statuses: Vec::new() };
    while let Some((n, v)) = r.field()? {
        match (n, v) {
            (1, Value::Varint(c)) => out.overall = code(c),
            (2, Value::Bytes(b)) => out.statuses.push(decode_status(b)?),
            (1 | 2, _) => return Err(DecodeError),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_the_protobuf_encoding() {
        // Written out by hand from the message definitions.
        let got = encode_request("d", &[vec![("k", "v")]]);
        let want = [
            0x0a, 1, b'd', // domain
            0x12, 8, 0x0a, 6, 0x0a, 1, b'k', 0x12, 1, b'v', // descriptors[0].entries[0]
            0x18, 1, // hits_addend
        ];
        assert_eq!(got, want);
        assert_eq!(grpc_service("rl"), [0x0a, 4, 0x0a, 2, b'r', b'l']);
    }

    #[test]
    fn an_answer_is_read_with_its_statuses_and_unknown_fields_skipped() {
        let status = [
            0x08, 2, // code OVER_LIMIT
            0x12, 4, 0x08, 5, 0x10, 2, // current_limit 5 per MINUTE
            0x18, 0, // limit_remaining 0
            0x22, 4, 0x08, 41, 0x10, 7, // 41 s and 7 ns: 42
            0x2a, 0, // an unknown field (5)
        ];
        let mut bytes = vec![0x08, 2, 0x12, status.len() as u8];
        bytes.extend_from_slice(&status);
        bytes.extend_from_slice(&[0x32, 2, 0, 0, 0x3d, 1, 2, 3, 4]); // fields 6 (bytes) and 7 (fixed32)
        let r = decode_response(&bytes).unwrap();
        assert_eq!(r.overall, Code::OverLimit);
        assert_eq!(
            r.statuses,
            vec![Status { code: Some(Code::OverLimit), limit: Some((5, 60)), remaining: 0, reset: Some(42) }]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &[0x08][..],
            &[0x12, 9, 1],
            &[0x0f],
            &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0x12, 2, 0x08],
        ] {
            assert_eq!(decode_response(bad), Err(DecodeError), "{bad:?}");
        }
        assert_eq!(decode_response(&[]).unwrap().overall, Code::Unknown);
    }
}
