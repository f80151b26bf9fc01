//! DPoP (RFC 9449): a token bound to a key its client holds (`cnf.jkt`, the RFC 7638
//! thumbprint of the public key) is good only with a fresh proof signed by that key for this
//! very request: its method (`htm`), its URL without query (`htu`), a recent `iat`, the
//! token's hash (`ath`), and a `jti` never seen before. A stolen token is then useless without
//! the private key, and a captured proof cannot be replayed.
//!
//! [`check_proof`] judges one proof against the request; replays are for the caller's state
//! ([`super::state::VerifyState::dpop_replayed`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::alg::{Alg, KeyKind};
use super::keys;

/// The largest proof read (a proof carries one public key: an RSA-4096 one fits in 1.5 KB).
pub const MAX_PROOF_BYTES: usize = 8192;

/// A provider's DPoP rules, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopRules {
    /// Tokens must be DPoP-bound (`required`), or may be (`allowed`).
    pub required: bool,
    /// Algorithms a proof may be signed with (asymmetric only).
    pub algorithms: Vec<Alg>,
    /// How far a proof's `iat` may be from now, seconds.
    pub max_age: i64,
    /// The public origin (`https://api.example.com`) `htu` is compared with, where the
    /// gateway sits behind another proxy; `None`: the request's own `:scheme` and
    /// `:authority`.
    pub origin: Option<String>,
}

/// Why a proof is refused (the `cause` of an `invalid_dpop_proof` denial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofError {
    /// No `DPoP` header, or more than one.
    Missing,
    /// Not a compact JWS of JSON objects, or too large.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` not allowed, symmetric, or not fitting the key.
    Algorithm,
    /// No usable public `jwk` in the header (or one with private parts).
    Key,
    /// The signature does not verify with the embedded key.
    Signature,
    /// `htm` is not the request's method.
    Method,
    /// `htu` is not the request's URL.
    Url,
    /// `iat` missing, or outside the allowed window.
    IssuedAt,
    /// `jti` missing or not a string.
    Id,
    /// `ath` is not the hash of the presented token.
    TokenHash,
    /// The proof's key is not the one the token is bound to.
    KeyMismatch,
    /// This proof was presented before.
    Replay,
}

impl ProofError {
    /// A short stable name for logs and the `cause` label.
    pub fn name(self) -> &'static str {
        match self {
            ProofError::Missing => "dpop_missing",
            ProofError::Malformed => "dpop_malformed",
            ProofError::Type => "dpop_type",
            ProofError::Algorithm => "dpop_algorithm",
            ProofError::Key => "dpop_key",
            ProofError::Signature => "dpop_signature",
            ProofError::Method => "dpop_method",
            ProofError::Url => "dpop_url",
            ProofError::IssuedAt => "dpop_iat",
            ProofError::Id => "dpop_jti",
            ProofError::TokenHash => "dpop_ath",
            ProofError::KeyMismatch => "dpop_key_mismatch",
            ProofError::Replay => "dpop_replay",
        }
    }
}

/// The request facts a proof is judged against.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:scheme`.
    pub scheme: &'a str,
    /// `:authority`.
    pub authority: &'a str,
    /// The path (no query).
    pub path: &'a str,
}

/// What a good proof says: its key's thumbprint and its `jti` (for the replay check), and how
/// long it may still be presented (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key.
    pub thumbprint: String,
    /// The `jti`, hashed with the thumbprint (what replay caches keep).
    pub replay_key: [u8; 32],
    /// When the proof stops being acceptable anyway.
    pub until: i64,
}

/// The RFC 7638 thumbprint of a public JWK: SHA-256 of its required members, in order, as
/// compact JSON, base64url.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let text = |n: &str| jwk.get(n).and_then(Value::as_str).and_then(|v| serde_json::to_string(v).ok());
    let canonical = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" => format!(r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#, text("crv")?, text("x")?, text("y")?),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, text("e")?, text("n")?),
        "OKP" => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, text("crv")?, text("x")?),
        _ => return None,
    };
    Some(B64.encode(Sha256::digest(canonical.as_bytes())))
}

/// A URL's scheme and host lower-cased, the default port dropped, query and fragment cut.
fn normal_url(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next()?;
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let mut authority = authority.to_ascii_lowercase();
    for (s, port) in [("https", ":443"), ("http", ":80")] {
        if scheme == s && authority.ends_with(port) {
            authority.truncate(authority.len() - port.len());
        }
    }
    Some(format!("{scheme}://{authority}{path}"))
}

/// Judges `proof` for `request`, presented with `token`, at `now`.
pub fn check_proof(
    rules: &DpopRules,
    proof: &str,
    token: &str,
    request: &Request<'_>,
    now: i64,
) -> Result<Proof, ProofError> {
    let t = super::token::parse(proof, MAX_PROOF_BYTES).map_err(|_| ProofError::Malformed)?;
    if t.header_str("typ") != Some("dpop+jwt") {
        return Err(ProofError::Type);
    }
    let alg = t
        .header_str("alg")
        .and_then(Alg::parse)
        .filter(|a| rules.algorithms.contains(a) && a.key_kind() != KeyKind::Secret)
        .ok_or(ProofError::Algorithm)?;
    let jwk = t.header.get("jwk").and_then(Value::as_object).ok_or(ProofError::Key)?;
    if keys::has_private_parts(&Value::Object(jwk.clone()))
        || jwk.get("kty").and_then(Value::as_str) == Some("oct")
    {
        return Err(ProofError::Key);
    }
    let key = keys::compile_key(&Value::Object(jwk.clone())).ok().flatten().ok_or(ProofError::Key)?;
    if !key.fits(alg) {
        return Err(ProofError::Algorithm);
    }
    if !alg.verify(&key.material, t.signing_input.as_bytes(), &t.signature) {
        return Err(ProofError::Signature);
    }
    let claim = |n: &str| t.claims.get(n);
    if claim("htm").and_then(Value::as_str) != Some(request.method) {
        return Err(ProofError::Method);
    }
    let origin = match &rules.origin {
        Some(o) => o.clone(),
        None => format!("{}://{}", request.scheme, request.authority),
    };
    let expected = normal_url(&format!("{origin}{}", request.path));
    let presented = claim("htu").and_then(Value::as_str).and_then(normal_url);
    if presented.is_none() || presented != expected {
        return Err(ProofError::Url);
    }
    let iat = claim("iat").and_then(Value::as_i64).ok_or(ProofError::IssuedAt)?;
    if (now - iat).abs() > rules.max_age {
        return Err(ProofError::IssuedAt);
    }
    let jti = claim("jti").and_then(Value::as_str).filter(|j| !j.is_empty()).ok_or(ProofError::Id)?;
    let ath = B64.encode(Sha256::digest(token.as_bytes()));
    if claim("ath").and_then(Value::as_str) != Some(ath.as_str()) {
        return Err(ProofError::TokenHash);
    }
    let thumbprint = thumbprint(jwk).ok_or(ProofError::Key)?;
    let replay_key = Sha256::new()
        .chain_update(thumbprint.as_bytes())
        .chain_update([0])
        .chain_update(jti)
        .finalize()
        .into();
    Ok(Proof { thumbprint, replay_key, until: iat.saturating_add(rules.max_age) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_match_rfc_7638s_example() {
        // RFC 7638 §3.1.
        let jwk: Value = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn bad_dpop_settings_are_refused_with_their_field() {
        let jwks = include_str!("../../../tests/fixtures/jwt/jwks.json");
        for (dpop, path) in [
            (r#"{"mode":"required","algorithms":["HS256"]}"#, "jwt.providers.p.dpop.algorithms[0]"),
            (r#"{"mode":"required","algorithms":[]}"#, "jwt.providers.p.dpop.algorithms"),
            (r#"{"mode":"allowed","max_age_seconds":0}"#, "jwt.providers.p.dpop.max_age_seconds"),
            (r#"{"mode":"allowed","origin":"https://api.example/v1"}"#, "jwt.providers.p.dpop.origin"),
            (r#"{"mode":"sometimes"}"#, "jwt.providers.p.dpop.mode"),
        ] {
            let doc = format!(
                r#"{{"jwt":{{"providers":{{"p":{{"issuer":"i","audiences":["a"],"algorithms":["RS256"],"local_jwks":{jwks},"dpop":{dpop}}}}}}}}}"#
            );
            let e = crate::policy::config::parse(doc.as_bytes()).expect_err(dpop);
            assert_eq!(e.path, path, "{dpop}");
        }
    }

    #[test]
    fn urls_compare_as_rfc_3986_normalises_them() {
        assert_eq!(normal_url("HTTPS://API.Example:443/a?b#c").as_deref(), Some("https://api.example/a"));
        assert_eq!(normal_url("http://h:8080").as_deref(), Some("http://h:8080/"));
        assert_ne!(normal_url("https://h/A"), normal_url("https://h/a"));
        assert!(normal_url("no-scheme").is_none());
    }
}
