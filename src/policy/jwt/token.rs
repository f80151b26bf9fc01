//! Parsing a compact JWS (`header.payload.signature`) without trusting any of it.
//!
//! Structure is checked before anything is decoded: a size cap, exactly three segments
//! (a five-segment JWE is refused), base64url without padding and with canonical trailing
//! bits, and a header and payload that are JSON objects with no duplicate member names.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use crate::policy::json;

/// Why a token could not be parsed. The variants are for logs and tests; every one of them
/// is answered the same way (`invalid_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Longer than the provider's `max_token_bytes`.
    TooLarge,
    /// Not three dot-separated segments.
    Segments,
    /// A segment is not unpadded base64url.
    Base64,
    /// The header is not one JSON object (or repeats a member).
    Header,
    /// The payload is not one JSON object (or repeats a member).
    Payload,
}

/// A parsed, unverified token.
#[derive(Debug, Clone)]
pub struct Untrusted<'t> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'t str,
    /// The decoded header.
    pub header: Map<String, Value>,
    /// The decoded claims.
    pub claims: Map<String, Value>,
    /// The raw decoded payload (for `forward_payload_header`).
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl Untrusted<'_> {
    /// A string header parameter.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }
}

fn b64(segment: &str) -> Result<Vec<u8>, ParseError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| ParseError::Base64)
}

/// Parses `token`, refusing anything over `max_bytes`.
pub fn parse(token: &str, max_bytes: usize) -> Result<Untrusted<'_>, ParseError> {
    if token.len() > max_bytes {
        return Err(ParseError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(ParseError::Segments);
    };
    // An empty signature is well-formed (an unsecured JWS, `alg: none`): the algorithm check
    // refuses it for what it is.
    if h.is_empty() || p.is_empty() {
        return Err(ParseError::Segments);
    }
    let header = json::parse_object(&b64(h)?).ok_or(ParseError::Header)?;
    let payload = b64(p)?;
    let claims = json::parse_object(&payload).ok_or(ParseError::Payload)?;
    let signature = b64(s)?;
    let signing_input = token.get(..h.len() + 1 + p.len()).ok_or(ParseError::Segments)?;
    Ok(Untrusted { signing_input, header, claims, payload, signature })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(h: &str, p: &str) -> String {
        format!("{}.{}.{}", enc(h), enc(p), enc("sig"))
    }

    #[test]
    fn parses_a_well_formed_token() {
        let t = token(r#"{"alg":"RS256","kid":"k"}"#, r#"{"sub":"a"}"#);
        let u = parse(&t, 8192).unwrap();
        assert_eq!(u.header_str("kid"), Some("k"));
        assert_eq!(u.claims["sub"], "a");
        assert_eq!(u.signature, b"sig");
        assert_eq!(u.signing_input, t.rsplit_once('.').unwrap().0);
    }

    #[test]
    fn refuses_malformed_tokens() {
        let good = token(r#"{"alg":"RS256"}"#, r#"{"sub":"a"}"#);
        let (hp, _) = good.rsplit_once('.').unwrap();
        let cases = [
            (hp.to_string(), ParseError::Segments),
            (format!("{good}.x"), ParseError::Segments),
            (format!("{good}.x.y"), ParseError::Segments),
            (String::new(), ParseError::Segments),
            ("..".to_string(), ParseError::Segments),
            (format!("{good}="), ParseError::Base64),
            (good.replacen('e', "+", 1), ParseError::Base64),
            (token("[1]", "{}"), ParseError::Header),
            (token(r#"{"alg":"a","alg":"b"}"#, "{}"), ParseError::Header),
            (token("{}", "\"str\""), ParseError::Payload),
            (token("{}", r#"{"exp":1,"exp":2}"#), ParseError::Payload),
            (token("{}", "{"), ParseError::Payload),
        ];
        for (t, want) in cases {
            assert_eq!(parse(&t, 8192).unwrap_err(), want, "{t}");
        }
        assert_eq!(parse(&good, 10).unwrap_err(), ParseError::TooLarge);
        assert!(parse(&format!("{hp}."), 8192).is_ok_and(|t| t.signature.is_empty()), "unsecured");
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        // "QQ" is "A"; "QR" decodes to the same byte with non-zero trailing bits.
        assert!(b64("QQ").is_ok());
        assert_eq!(b64("QR"), Err(ParseError::Base64));
    }
}
