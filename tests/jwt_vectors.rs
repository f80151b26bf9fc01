//! JWT verification against independent material: the RFC 7515 and RFC 8037 example
//! vectors, and a corpus of tokens minted by `jose` (Node), an implementation independent of
//! the verifier (`tests/fixtures/jwt/mint.mjs`). Fixtures are compiled in, so this suite runs
//! natively and, unchanged, as wasm32-wasip1 (`make wasm-unit`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::cell::RefCell;
use std::collections::HashMap;

use api_guard::policy::authz::NoState;
use api_guard::policy::config;
use api_guard::policy::denial::Reason;
use api_guard::policy::http::HeaderOp;
use api_guard::policy::jwt::alg::Alg;
use api_guard::policy::jwt::budget::ClientSource;
use api_guard::policy::jwt::claims::ClaimError;
use api_guard::policy::jwt::keys::KeySet;
use api_guard::policy::jwt::state::{NoSharedData, SharedData, View};
use api_guard::policy::jwt::token::ParseError;
use api_guard::policy::jwt::{Provider, ProviderKeys, TokenError, Verified};
use api_guard::policy::{HeadDecision, Policy, RequestHead};
use serde_json::{json, Value};

const TOKENS: &str = include_str!("fixtures/jwt/tokens.json");
const JWKS: &str = include_str!("fixtures/jwt/jwks.json");
const HMAC: &str = include_str!("fixtures/jwt/hmac.json");
/// Between the fixtures' `iat` (1700000000) and `exp` (2001001001).
const NOW: i64 = 1_800_000_000;

fn tokens() -> Value {
    serde_json::from_str(TOKENS).unwrap()
}

fn token(name: &str) -> String {
    tokens()[name].as_str().unwrap_or_else(|| panic!("no fixture {name}")).to_string()
}

// ---------------------------------------------------------------- published vectors

fn verify_vector(jwk: Value, alg: Alg, jws: &str) -> bool {
    let set = KeySet::from_jwks(&json!({ "keys": [jwk] })).unwrap();
    let key = set.select(alg, None).unwrap();
    let (input, sig) = jws.rsplit_once('.').unwrap();
    use base64::Engine;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).unwrap();
    alg.verify(&key.material, input.as_bytes(), &sig)
}

const RFC7515_PAYLOAD: &str =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

#[test]
fn rfc7515_a1_hs256() {
    let jwk = json!({"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"});
    let jws = format!("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.{RFC7515_PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert!(verify_vector(jwk.clone(), Alg::HS256, &jws));
    assert!(!verify_vector(jwk, Alg::HS256, &jws.replace("dBjf", "dBjg")));
}

#[test]
fn rfc7515_a2_rs256() {
    let jwk = json!({"kty": "RSA", "e": "AQAB", "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"});
    let jws = format!("eyJhbGciOiJSUzI1NiJ9.{RFC7515_PAYLOAD}.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw");
    assert!(verify_vector(jwk.clone(), Alg::RS256, &jws));
    // The same signature under another RSA algorithm, or over other bytes, fails.
    assert!(!verify_vector(jwk.clone(), Alg::PS256, &jws));
    assert!(!verify_vector(jwk, Alg::RS256, &jws.replacen("eyJpc3Mi", "eyJpc3Ni", 1)));
}

#[test]
fn rfc7515_a3_es256() {
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    let jws = format!("eyJhbGciOiJFUzI1NiJ9.{RFC7515_PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q");
    assert!(verify_vector(jwk.clone(), Alg::ES256, &jws));
    assert!(!verify_vector(jwk, Alg::ES256, &jws.replace("DtEh", "DtEi")));
}

#[test]
fn rfc8037_a4_ed25519() {
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    let jws = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    assert!(verify_vector(jwk.clone(), Alg::EdDSA, jws));
    assert!(!verify_vector(jwk, Alg::EdDSA, &jws.replace("RXhh", "RXhi")));
}

#[test]
fn key_sets_refuse_weak_private_and_mismatched_keys() {
    let weak = json!({"keys": [{"kty": "RSA", "e": "AQAB", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}]});
    // ^ a 2048-bit modulus: accepted. Cut to 1024 bits below: refused.
    assert!(KeySet::from_jwks(&weak).is_ok());
    let mut short = weak.clone();
    short["keys"][0]["n"] = json!(&weak["keys"][0]["n"].as_str().unwrap()[..171]);
    assert!(KeySet::from_jwks(&short).unwrap_err().0.contains("below 2048"));
    let private: Value = serde_json::from_str(include_str!("fixtures/jwt/keys.private.json")).unwrap();
    let e = KeySet::from_jwks(&json!({"keys": [private["rsa-1"]]})).unwrap_err();
    assert!(e.0.contains("private key material"), "{e}");
    let e = KeySet::from_jwks(&json!({"keys": [{"kty": "oct", "k": "c2hvcnQ"}]})).unwrap_err();
    assert!(e.0.contains("below 32"), "{e}");
    let mut pinned: Value = serde_json::from_str(JWKS).unwrap();
    pinned["keys"][0]["alg"] = json!("ES256");
    let set = KeySet::from_jwks(&pinned).unwrap();
    assert_eq!(set.keys.len(), 3, "the RSA key pinned to ES256 is skipped");
    assert!(set.skipped[0].contains("does not fit"));
    assert!(KeySet::from_jwks(&json!({"keys": []})).is_err());
    assert!(KeySet::from_jwks(&json!([1])).is_err());
    // A set's size is bounded (each EC key gets a window table): 32 entries pass, 33 do not.
    let ec = pinned["keys"].as_array().unwrap().iter().find(|k| k["crv"] == "P-256").unwrap().clone();
    assert_eq!(KeySet::from_jwks(&json!({"keys": vec![ec.clone(); 32]})).unwrap().keys.len(), 32);
    let e = KeySet::from_jwks(&json!({"keys": vec![ec; 33]})).unwrap_err();
    assert!(e.0.contains("33 keys; at most 32"), "{e}");
}

#[test]
fn key_sets_prepare_only_keys_the_provider_can_use() {
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    let kinds =
        |set: &KeySet| set.keys.iter().map(|k| format!("{:?}", k.material.kind())).collect::<Vec<_>>();
    // RS256 alone: the EC and Ed25519 keys are skipped (with a note each), not prepared.
    let rsa = KeySet::from_jwks_for(&jwks, &[Alg::RS256]).unwrap();
    assert_eq!(kinds(&rsa), ["Rsa"]);
    assert_eq!((rsa.unused.len(), rsa.skipped.len()), (3, 0), "{:?}", rsa.unused);
    assert!(rsa
        .unused
        .iter()
        .any(|n| n.contains("a P-384 key, which none of the provider's algorithms (RS256)")));
    // The same document for ES256 and EdDSA keeps exactly those two kinds.
    let ec = KeySet::from_jwks_for(&jwks, &[Alg::ES256, Alg::EdDSA]).unwrap();
    assert_eq!(kinds(&ec), ["P256", "Ed25519"]);
    // Every algorithm (what `from_jwks` asks for): every key; the fingerprint names the
    // document, whatever the filter kept.
    assert_eq!(kinds(&KeySet::from_jwks(&jwks).unwrap()), ["Rsa", "P256", "P384", "Ed25519"]);
    assert_eq!(rsa.fingerprint, KeySet::from_jwks(&jwks).unwrap().fingerprint);
    // A key pinned to an algorithm the provider does not allow is skipped too.
    let mut pinned = jwks.clone();
    pinned["keys"][0]["alg"] = json!("PS256");
    let e = KeySet::from_jwks_for(&pinned, &[Alg::RS256]).unwrap_err();
    assert!(e.0.contains("an RSA key for PS256, not among the provider's algorithms (RS256)"), "{e}");
    assert_eq!(kinds(&KeySet::from_jwks_for(&pinned, &[Alg::PS256]).unwrap()), ["Rsa"]);
    // Private material is refused even in a key the provider would not use.
    let private: Value = serde_json::from_str(include_str!("fixtures/jwt/keys.private.json")).unwrap();
    let mixed = json!({"keys": [jwks["keys"][0], private["rsa-1"]]});
    assert!(KeySet::from_jwks_for(&mixed, &[Alg::ES256]).unwrap_err().0.contains("private key material"));
    // Through a provider: a local set with nothing for its algorithms is refused at load, and
    // one with a shared secret still is for an asymmetric provider.
    let cfg = |algs: Value, keys: Value| {
        json!({"jwt": {"providers": {"idp": {"issuer": "https://issuer.test", "audiences": ["a"],
            "algorithms": algs, "local_jwks": {"keys": keys}}}}})
        .to_string()
    };
    let ec_only: Vec<Value> =
        jwks["keys"].as_array().unwrap().iter().filter(|k| k["kty"] == "EC").cloned().collect();
    let e = config::parse(cfg(json!(["RS256"]), json!(ec_only)).as_bytes()).unwrap_err();
    assert!(e.to_string().contains("jwt.providers.idp.local_jwks"), "{e}");
    assert!(
        e.to_string().contains("keys[0]: a P-256 key, which none of the provider's algorithms (RS256) uses"),
        "{e}"
    );
    let hmac: Value = serde_json::from_str(HMAC).unwrap();
    let mut with_secret = jwks["keys"].as_array().unwrap().clone();
    with_secret.push(hmac["keys"][0].clone());
    let e = config::parse(cfg(json!(["RS256"]), json!(with_secret)).as_bytes()).unwrap_err();
    assert!(e.to_string().contains("shared secret (oct)"), "{e}");
    assert!(config::parse(cfg(json!(["RS256"]), jwks["keys"].clone()).as_bytes()).is_ok());
}

// ---------------------------------------------------------------- the minted corpus

fn config() -> String {
    json!({
        "jwt": {
            "providers": {
                "idp": {
                    "issuer": "https://issuer.test",
                    "audiences": ["api://orders"],
                    "algorithms": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
                    "local_jwks": serde_json::from_str::<Value>(JWKS).unwrap(),
                    "token_type": "at+jwt",
                    "claim_to_headers": [
                        {"claim": "sub", "header": "x-user"},
                        {"claim": "roles", "header": "x-roles"},
                        {"claim": "level", "header": "x-level"}
                    ],
                    "forward_payload_header": "x-jwt-payload"
                },
                "shared": {
                    "issuer": "https://issuer.test",
                    "audiences": ["api://orders"],
                    "algorithms": ["HS256", "HS384"],
                    "local_jwks": serde_json::from_str::<Value>(HMAC).unwrap(),
                    "from_headers": [{"name": "x-hmac-token"}],
                    "forward": true
                }
            },
            "default": {"type": "jwt", "providers": ["idp", "shared"]}
        },
        "routes": [
            {"name": "health", "match": {"path": "/health"}, "auth": {"type": "public"}},
            {"name": "admin", "match": {"prefix": "/admin"}, "auth": {"type": "deny"}},
            {"name": "read", "match": {"path": "/orders", "methods": ["GET"]},
             "auth": {"type": "jwt", "providers": ["idp"], "scopes": ["orders:read"]}},
            {"name": "write", "match": {"path": "/orders", "methods": ["POST"]},
             "auth": {"type": "jwt", "providers": ["idp"], "scopes": ["orders:write"]}},
            {"name": "acme", "match": {"prefix": "/acme"},
             "auth": {"type": "jwt", "providers": ["idp"],
                      "claims": [{"claim": "tenant", "equals": "acme"}, {"claim": "roles", "contains": "admin"},
                                 {"claim": "level", "one_of": [2, 3]}]}},
            {"name": "users", "match": {"path": "/users/{id}"},
             "auth": {"type": "jwt", "providers": ["idp"], "bind": [{"param": "id", "claim": "sub"}]}},
            {"name": "both", "match": {"path": "/both"},
             "auth": {"type": "jwt", "providers": ["idp", "shared"], "require_all": true}}
        ]
    })
    .to_string()
}

fn policy() -> Policy {
    config::parse(config().as_bytes()).unwrap()
}

/// Verifies with a provider's local keys.
fn verify(p: &Provider, token: &str) -> Result<Verified, TokenError> {
    match &p.keys {
        ProviderKeys::Local(keys) => p.verify(token, keys, NOW),
        ProviderKeys::Remote(_) | ProviderKeys::Introspect(_) => panic!("{} has no local keys", p.name),
    }
}

fn provider<'p>(p: &'p Policy, name: &str) -> &'p Provider {
    p.jwt.as_ref().unwrap().providers.iter().find(|x| x.name == name).unwrap()
}

const VALID_IDP: [&str; 15] = [
    "rs256",
    "rs384",
    "rs512",
    "ps256",
    "ps384",
    "ps512",
    "es256",
    "es384",
    "eddsa",
    "no_kid_rs256",
    "aud_array",
    "scope_read",
    "scp_array",
    "no_scope",
    "claims_rich",
];
const VALID_SHARED: [&str; 2] = ["hs256", "hs384"];

#[test]
fn valid_tokens_of_every_algorithm_verify() {
    let p = policy();
    let idp = provider(&p, "idp");
    for name in VALID_IDP {
        let v = verify(idp, &token(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(v.claims["iss"], "https://issuer.test", "{name}");
    }
    let shared = provider(&p, "shared");
    for name in VALID_SHARED {
        verify(shared, &token(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}

#[test]
fn attack_corpus_is_refused_for_the_right_reason() {
    let p = policy();
    let idp = provider(&p, "idp");
    use TokenError::*;
    let cases: &[(&str, TokenError)] = &[
        ("expired", Claims(ClaimError::Expired)),
        ("not_yet_valid", Claims(ClaimError::NotYetValid)),
        ("issued_in_future", Claims(ClaimError::IssuedInFuture)),
        ("wrong_iss", Claims(ClaimError::Issuer)),
        ("wrong_aud", Claims(ClaimError::Audience)),
        ("no_exp", Claims(ClaimError::MissingExpiration)),
        ("id_token", Claims(ClaimError::TokenType)),
        ("no_typ", Claims(ClaimError::TokenType)),
        ("exp_as_string", Claims(ClaimError::Malformed)),
        ("exp_huge", Claims(ClaimError::Malformed)),
        ("unknown_kid", UnknownKey),
        ("wrong_key_same_kid", Signature),
        // An unsecured JWS (empty signature) is refused for its algorithm, in any spelling...
        ("alg_none", Algorithm),
        ("alg_None", Algorithm),
        ("alg_NONE", Algorithm),
        ("alg_nOnE", Algorithm),
        // ... and with a signature attached, `none` is not an algorithm either.
        ("alg_none_with_signature", Algorithm),
        ("hs256_with_rsa_public_key", Algorithm),
        ("hs256_with_rsa_modulus", Algorithm),
        ("hs256", Algorithm),
        ("es256_zero_signature", Signature),
        ("stripped_signature", Malformed(ParseError::Segments)),
        ("two_segments", Malformed(ParseError::Segments)),
        ("four_segments", Malformed(ParseError::Segments)),
        ("jwe_five_segments", Malformed(ParseError::Segments)),
        ("bad_base64", Malformed(ParseError::Base64)),
        ("padded_base64", Malformed(ParseError::Base64)),
        ("kid_path_traversal", UnknownKey),
        ("kid_sql", UnknownKey),
        ("jku_attacker", UnknownKey),
        ("x5u_attacker", UnknownKey),
        ("jwk_embedded_attacker", Signature),
        ("crit_unknown", Critical),
        ("crit_empty", Critical),
        ("duplicate_claims", Malformed(ParseError::Payload)),
        ("duplicate_header", Malformed(ParseError::Header)),
        ("payload_not_object", Malformed(ParseError::Payload)),
        ("header_not_json", Malformed(ParseError::Header)),
        ("alg_key_type_mismatch", UnknownKey),
    ];
    for (name, want) in cases {
        assert_eq!(verify(idp, &token(name)).unwrap_err(), *want, "{name}");
    }
    // The HMAC provider never verifies with an RSA key, whatever the token says.
    let shared = provider(&p, "shared");
    assert_eq!(verify(shared, &token("hs256_with_rsa_public_key")).unwrap_err(), UnknownKey);
    assert_eq!(verify(shared, &token("rs256")).unwrap_err(), Algorithm);
    // Every fixture has an expectation here or in `valid_tokens_of_every_algorithm_verify`.
    let mut covered: std::collections::BTreeSet<&str> = cases.iter().map(|(n, _)| *n).collect();
    covered.extend(VALID_IDP.iter().chain(VALID_SHARED.iter()).copied());
    let fixtures = tokens();
    let all: std::collections::BTreeSet<&str> =
        fixtures.as_object().unwrap().keys().map(String::as_str).collect();
    let missing: Vec<_> = all.iter().filter(|n| !covered.contains(**n)).collect();
    assert!(missing.is_empty(), "fixtures without an expectation: {missing:?}");
}

#[test]
fn oversized_and_garbage_tokens_are_refused_without_panicking() {
    let p = policy();
    let idp = provider(&p, "idp");
    let huge = format!("{}.{}.{}", "a".repeat(400_000), "b".repeat(400_000), "c".repeat(300_000));
    assert_eq!(verify(idp, &huge).unwrap_err(), TokenError::Malformed(ParseError::TooLarge));
    let mut seed = 0x1234_5678_u64;
    let good = token("rs256");
    for i in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bytes = good.clone().into_bytes();
        let n = 1 + (seed % 4) as usize;
        for k in 0..n {
            let at = ((seed >> (8 * k)) as usize) % bytes.len();
            bytes[at] = b"._-+/=A0z\x00"[((seed >> (16 + k)) % 10) as usize];
        }
        let t = String::from_utf8_lossy(&bytes).to_string();
        if t != good {
            assert!(verify(idp, &t).is_err(), "mutation {i} verified: {t}");
        }
    }
}

// ---------------------------------------------------------------- per-route authorization

fn decide(p: &Policy, method: &str, path: &str, headers: &[(&str, &str)]) -> HeadDecision {
    let mut h: Vec<(String, Vec<u8>)> =
        vec![(":method".into(), method.as_bytes().to_vec()), (":path".into(), path.as_bytes().to_vec())];
    h.extend(headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())));
    p.check_head(&RequestHead { headers: &h, end_of_stream: Some(true) }, &NoState, NOW)
}

fn bearer(name: &str) -> String {
    format!("Bearer {}", token(name))
}

fn reason(d: &HeadDecision) -> Option<Reason> {
    d.outcome.as_ref().err().map(|e| e.reason)
}

#[test]
fn routes_demand_what_they_say() {
    let p = policy();
    let auth = |t: &str| bearer(t);
    // Public and deny.
    assert_eq!(reason(&decide(&p, "GET", "/health", &[])), None);
    assert_eq!(
        reason(&decide(&p, "GET", "/admin/x", &[("authorization", &auth("rs256"))])),
        Some(Reason::AccessDenied)
    );
    // The default requirement applies to unmatched paths.
    assert_eq!(reason(&decide(&p, "GET", "/elsewhere", &[])), Some(Reason::TokenMissing));
    assert_eq!(reason(&decide(&p, "GET", "/elsewhere", &[("authorization", &auth("rs256"))])), None);
    assert_eq!(reason(&decide(&p, "GET", "/elsewhere", &[("x-hmac-token", &token("hs256"))])), None);
    // Scopes from `scope` and from `scp`.
    assert_eq!(reason(&decide(&p, "GET", "/orders", &[("authorization", &auth("scope_read"))])), None);
    assert_eq!(reason(&decide(&p, "GET", "/orders", &[("authorization", &auth("scp_array"))])), None);
    let d = decide(&p, "POST", "/orders", &[("authorization", &auth("scope_read"))]);
    assert_eq!(reason(&d), Some(Reason::InsufficientScope));
    assert_eq!(d.outcome.unwrap_err().scope.as_deref(), Some("orders:write"));
    assert_eq!(
        reason(&decide(&p, "GET", "/orders", &[("authorization", &auth("no_scope"))])),
        Some(Reason::InsufficientScope)
    );
    // Missing vs invalid.
    assert_eq!(reason(&decide(&p, "GET", "/orders", &[])), Some(Reason::TokenMissing));
    assert_eq!(
        reason(&decide(&p, "GET", "/orders", &[("authorization", "Basic dTpw")])),
        Some(Reason::TokenMissing)
    );
    assert_eq!(
        reason(&decide(&p, "GET", "/orders", &[("authorization", &auth("expired"))])),
        Some(Reason::TokenInvalid)
    );
    // Claim conditions.
    assert_eq!(reason(&decide(&p, "GET", "/acme/x", &[("authorization", &auth("claims_rich"))])), None);
    assert_eq!(
        reason(&decide(&p, "GET", "/acme/x", &[("authorization", &auth("rs256"))])),
        Some(Reason::AccessDenied)
    );
    // Ownership binding: /users/{id} needs sub == id (percent-decoded).
    assert_eq!(reason(&decide(&p, "GET", "/users/user-42", &[("authorization", &auth("rs256"))])), None);
    assert_eq!(reason(&decide(&p, "GET", "/users/user%2D42", &[("authorization", &auth("rs256"))])), None);
    assert_eq!(
        reason(&decide(&p, "GET", "/users/user-7", &[("authorization", &auth("rs256"))])),
        Some(Reason::AccessDenied)
    );
    // require_all: both tokens.
    let both = [("authorization", auth("rs256")), ("x-hmac-token", token("hs256"))];
    let both: Vec<(&str, &str)> = both.iter().map(|(a, b)| (*a, b.as_str())).collect();
    assert_eq!(reason(&decide(&p, "GET", "/both", &both)), None);
    assert_eq!(reason(&decide(&p, "GET", "/both", &both[..1])), Some(Reason::TokenMissing));
}

#[test]
fn verified_claims_are_forwarded_and_spoofed_copies_removed() {
    let p = policy();
    let spoof = [("x-user", "admin"), ("x-roles", "root")];
    let mut h: Vec<(&str, &str)> = spoof.to_vec();
    let a = bearer("claims_rich");
    h.push(("authorization", &a));
    let ops = decide(&p, "GET", "/elsewhere", &h).outcome.unwrap().headers;
    for name in ["x-user", "x-roles"] {
        assert!(ops.contains(&HeaderOp::Remove(name.into())), "{name} not scrubbed: {ops:?}");
    }
    assert!(ops.contains(&HeaderOp::Remove("authorization".into())), "token not stripped: {ops:?}");
    assert!(ops.contains(&HeaderOp::Set("x-user".into(), "user-7".into())));
    assert!(ops.contains(&HeaderOp::Set("x-roles".into(), "admin,user".into())));
    assert!(ops.contains(&HeaderOp::Set("x-level".into(), "3".into())));
    let payload = ops.iter().find_map(|o| match o {
        HeaderOp::Set(n, v) if n == "x-jwt-payload" => Some(v.clone()),
        _ => None,
    });
    use base64::Engine;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.unwrap()).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&decoded).unwrap()["tenant"], "acme");
    // Removals come before sets, so a client copy can never survive next to the real value.
    let first_set = ops.iter().position(|o| matches!(o, HeaderOp::Set(..))).unwrap();
    assert!(ops[first_set..].iter().all(|o| !matches!(o, HeaderOp::Remove(n) if n.starts_with("x-"))));
    // Public routes scrub spoofed headers too, and only the ones present are touched.
    let ops = decide(&p, "GET", "/health", &spoof).outcome.unwrap().headers;
    assert!(ops.contains(&HeaderOp::Remove("x-user".into())));
    assert!(ops.contains(&HeaderOp::Remove("x-roles".into())));
    assert!(!ops.contains(&HeaderOp::Remove("x-level".into())));
    assert!(decide(&p, "GET", "/health", &[]).outcome.unwrap().headers.is_empty());
    // The shared provider forwards its token (forward: true).
    let ops = decide(&p, "GET", "/elsewhere", &[("x-hmac-token", &token("hs256"))]).outcome.unwrap().headers;
    assert!(!ops.contains(&HeaderOp::Remove("x-hmac-token".into())));
}

#[test]
fn jwt_config_errors_name_the_field() {
    let base: Value = serde_json::from_str(&config()).unwrap();
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|c| c["jwt"]["providers"]["idp"]["algorithms"] = json!(["RS256", "HS256"])),
            "jwt.providers.idp.algorithms",
        ),
        (
            Box::new(|c| c["jwt"]["providers"]["idp"]["algorithms"] = json!(["none"])),
            "jwt.providers.idp.algorithms[0]",
        ),
        (Box::new(|c| c["jwt"]["providers"]["idp"]["audiences"] = json!([])), "jwt.providers.idp.audiences"),
        // Keys from discovery and inline at once.
        (
            Box::new(|c| c["jwt"]["providers"]["idp"]["discovery"] = json!({"cluster": "idp"})),
            "jwt.providers.idp",
        ),
        (
            Box::new(|c| {
                let idp = c["jwt"]["providers"]["idp"].as_object_mut().unwrap();
                idp.remove("local_jwks");
                idp.insert("discovery".into(), json!({"uri": "ftp://idp/doc"}));
            }),
            "jwt.providers.idp.discovery.uri",
        ),
        (
            Box::new(|c| c["jwt"]["providers"]["idp"]["local_jwks"] = json!({"keys": []})),
            "jwt.providers.idp.local_jwks",
        ),
        (
            Box::new(|c| c["jwt"]["providers"]["shared"]["algorithms"] = json!(["RS256"])),
            "jwt.providers.shared.local_jwks",
        ),
        (Box::new(|c| c["jwt"]["providers"]["idp"]["audience"] = json!("x")), "jwt.providers.idp.audience"),
        (Box::new(|c| c["routes"][2]["auth"]["providers"] = json!(["nope"])), "routes[2].auth.providers[0]"),
        (
            Box::new(|c| c["routes"][5]["auth"]["bind"] = json!([{"param": "uid", "claim": "sub"}])),
            "routes[5].auth.bind[0].param",
        ),
        (
            Box::new(|c| c["routes"][4]["auth"]["claims"] = json!([{"claim": "a"}])),
            "routes[4].auth.claims[0]",
        ),
        (Box::new(|c| c["routes"][0]["auth"] = json!({"type": "maybe"})), "routes[0].auth.type"),
        (Box::new(|c| c["jwt"]["realm"] = json!("a\"b")), "jwt.realm"),
        (
            Box::new(|c| c["jwt"]["verification_budget"] = json!({"window_seconds": 0})),
            "jwt.verification_budget.window_seconds",
        ),
        (
            Box::new(|c| c["jwt"]["verification_budget"] = json!({"client_header": "x forwarded"})),
            "jwt.verification_budget.client_header",
        ),
        (
            Box::new(|c| c["jwt"]["verification_budget"] = json!({"max_failure": 3})),
            "jwt.verification_budget.max_failure",
        ),
    ];
    for (mutate, path) in cases {
        let mut c = base.clone();
        mutate(&mut c);
        let e = config::parse(c.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.path, path, "{e}");
    }
    // A route may not require JWT without a jwt section.
    let e = config::parse(
        br#"{"routes":[{"name":"a","match":{"prefix":"/"},"auth":{"type":"jwt","providers":["x"]}}]}"#,
    )
    .unwrap_err();
    assert_eq!(e.path, "routes[0].auth.type");
}

#[test]
fn query_tokens_only_where_a_provider_allows_them() {
    let mut c: Value = serde_json::from_str(&config()).unwrap();
    c["jwt"]["providers"]["idp"]["from_params"] = json!(["access_token"]);
    let p = config::parse(c.to_string().as_bytes()).unwrap();
    let d = decide(&p, "GET", &format!("/elsewhere?access_token={}", token("rs256")), &[]);
    assert_eq!(reason(&d), None);
    // Other credential names in the query are still refused.
    assert_eq!(reason(&decide(&p, "GET", "/elsewhere?api_key=x", &[])), Some(Reason::CredentialInQuery));
    // Without from_params, a token in the query is a credential in the query.
    assert_eq!(
        reason(&decide(&policy(), "GET", &format!("/elsewhere?access_token={}", token("rs256")), &[])),
        Some(Reason::CredentialInQuery)
    );
}

// ---------------------------------------------------------------- remote key sets

/// Shared data as the worker VMs of one host see it.
#[derive(Default)]
struct MapShared(RefCell<HashMap<String, Vec<u8>>>);

impl SharedData for MapShared {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.borrow().get(key).cloned()
    }
    fn set(&self, key: &str, value: &[u8]) {
        self.0.borrow_mut().insert(key.to_string(), value.to_vec());
    }
}

fn remote_policy() -> Policy {
    remote_policy_at("http://127.0.0.1:9/jwks")
}

fn remote_policy_at(uri: &str) -> Policy {
    let c = json!({
        "jwt": {"providers": {"idp": {
            "issuer": "https://issuer.test", "audiences": ["api://orders"], "algorithms": ["RS256"],
            "token_type": "at+jwt",
            "remote_jwks": {"http_uri": {"uri": uri, "cluster": "idp", "timeout_ms": 500}}
        }}, "default": {"type": "jwt", "providers": ["idp"]}}
    });
    config::parse(c.to_string().as_bytes()).unwrap()
}

#[test]
fn remote_keys_missing_means_fetch_or_503_never_a_pass() {
    let p = remote_policy();
    let ProviderKeys::Remote(spec) = &p.jwt.as_ref().unwrap().providers[0].keys else { panic!() };
    let state = RefCell::new(p.verification_state(None, None));
    let check = |headers: &[(String, Vec<u8>)], now: i64| {
        p.check_head(
            &RequestHead { headers, end_of_stream: Some(true) },
            &View::new(&state, now, &NoSharedData),
            now,
        )
    };
    let h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/x".to_vec()),
        ("authorization".into(), bearer("rs256").into_bytes()),
    ];
    // Nothing loaded yet, a fetch may start: the host is asked to fetch; 503 otherwise.
    let d = check(&h, NOW);
    assert_eq!(d.fetch_keys(), Some(0));
    assert_eq!(reason(&d), Some(Reason::KeysUnavailable));
    let suspended = d.suspended.clone().unwrap();
    // The fetch the core asks for: to the cluster where the host has clusters.
    let request = state.borrow_mut().start_fetch(0, NOW, true).unwrap();
    assert_eq!((request.upstream.as_str(), request.timeout_ms), ("idp", 500));
    assert!(request.headers.contains(&(":path".to_string(), "/jwks".to_string())), "{request:?}");
    // Nothing loaded and a fetch in flight: 503, no hint.
    let d = check(&h, NOW);
    assert_eq!((reason(&d), d.fetch_keys()), (Some(Reason::KeysUnavailable), None));
    // Loaded keys verify.
    let loaded = state.borrow_mut().complete_fetch(0, Some(200), Some(JWKS.as_bytes()), NOW, &NoSharedData);
    assert!(matches!(loaded.unwrap(), api_guard::policy::jwt::state::Fetched::Keys(n) if n > 0));
    assert_eq!(reason(&check(&h, NOW)), None);
    // The suspended decision resumes from the token check to the same admission a whole
    // check gives now.
    let head = RequestHead { headers: &h, end_of_stream: Some(true) };
    let resumed = p.resume_head(&suspended, &head, &View::new(&state, NOW, &NoSharedData), NOW);
    assert_eq!(resumed, check(&h, NOW));
    assert!(resumed.outcome.is_ok());
    // A token signed by a key the set lacks (rotation): 401, and a refetch once the minimum
    // interval since the last one has passed.
    let rotated: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/x".to_vec()),
        ("authorization".into(), bearer("unknown_kid").into_bytes()),
    ];
    let d = check(&rotated, NOW);
    assert_eq!((reason(&d), d.fetch_keys()), (Some(Reason::TokenInvalid), None));
    let later = NOW + spec.min_refetch_interval;
    let d = check(&rotated, later);
    assert_eq!((reason(&d), d.fetch_keys()), (Some(Reason::TokenInvalid), Some(0)));
    // A bad signature with a known kid never triggers a fetch.
    let forged: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/x".to_vec()),
        ("authorization".into(), bearer("wrong_key_same_kid").into_bytes()),
    ];
    let d = check(&forged, later);
    assert_eq!((reason(&d), d.fetch_keys()), (Some(Reason::TokenInvalid), None));
    // A failed refetch keeps the last good keys.
    state.borrow_mut().start_fetch(0, later, true).unwrap();
    let failed = state.borrow_mut().complete_fetch(0, Some(500), Some(b"oops"), later, &NoSharedData);
    assert_eq!(failed.unwrap_err().name(), "status");
    assert_eq!(reason(&check(&h, later)), None);
}

#[test]
fn a_resumed_decision_keeps_what_was_judged_before_the_token_check() {
    // A route binding a path parameter to the token's subject, behind remote keys: the
    // resumed decision still binds `id` (judged before the suspension) to `sub`.
    let c = json!({
        "jwt": {"providers": {"idp": {
            "issuer": "https://issuer.test", "audiences": ["api://orders"], "algorithms": ["RS256"],
            "token_type": "at+jwt",
            "remote_jwks": {"http_uri": {"uri": "http://127.0.0.1:9/jwks", "cluster": "idp"}}
        }}},
        "routes": [{"name": "users", "match": {"path": "/users/{id}"},
                    "auth": {"type": "jwt", "providers": ["idp"], "bind": [{"param": "id", "claim": "sub"}]}}]
    });
    let p = config::parse(c.to_string().as_bytes()).unwrap();
    let state = RefCell::new(p.verification_state(None, None));
    let at = |path: &str| -> Vec<(String, Vec<u8>)> {
        vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            ("authorization".into(), bearer("rs256").into_bytes()),
        ]
    };
    let (own, other) = (at("/users/user-42"), at("/users/user-43"));
    let suspend = |h: &[(String, Vec<u8>)]| {
        let head = RequestHead { headers: h, end_of_stream: Some(true) };
        p.check_head(&head, &View::new(&state, NOW, &NoSharedData), NOW).suspended.unwrap()
    };
    let (mine, theirs) = (suspend(&own), suspend(&other));
    state.borrow_mut().start_fetch(0, NOW, true).unwrap();
    state.borrow_mut().complete_fetch(0, Some(200), Some(JWKS.as_bytes()), NOW, &NoSharedData).unwrap();
    let resume = |s, h: &[(String, Vec<u8>)]| {
        let head = RequestHead { headers: h, end_of_stream: Some(true) };
        p.resume_head(s, &head, &View::new(&state, NOW, &NoSharedData), NOW)
    };
    let d = resume(&mine, &own);
    assert_eq!((d.route, reason(&d)), (Some(0), None));
    assert_eq!(reason(&resume(&theirs, &other)), Some(Reason::AccessDenied), "not your user");
}

#[test]
fn a_key_set_one_worker_fetched_is_adopted_by_the_others() {
    let p = remote_policy();
    let shared = MapShared::default();
    let first = RefCell::new(p.verification_state(None, None));
    let second = RefCell::new(p.verification_state(None, None));
    first.borrow_mut().start_fetch(0, NOW, true).unwrap();
    first.borrow_mut().complete_fetch(0, Some(200), Some(JWKS.as_bytes()), NOW, &shared).unwrap();
    assert_eq!(second.borrow_mut().adopt_shared(&shared), vec![0]);
    assert_eq!(second.borrow_mut().adopt_shared(&shared), Vec::<usize>::new(), "not newer: kept");
    let h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/x".to_vec()),
        ("authorization".into(), bearer("rs256").into_bytes()),
    ];
    let head = RequestHead { headers: &h, end_of_stream: Some(true) };
    assert_eq!(reason(&p.check_head(&head, &View::new(&second, NOW, &NoSharedData), NOW)), None);
    // A reconfiguration that keeps the provider's URL keeps its keys; another URL does not.
    let kept = p.verification_state(Some(second.into_inner()), None);
    assert!(kept.keys(0).is_some());
    let moved = remote_policy_at("http://127.0.0.1:9/other");
    assert!(moved.verification_state(Some(kept), None).keys(0).is_none());
}

#[test]
fn a_token_one_worker_verified_is_not_checked_again_by_the_others() {
    let p = policy();
    let shared = MapShared::default();
    let namespace = Some(api_guard::policy::jwt::cache::shared_namespace(config().as_bytes()));
    let first = RefCell::new(p.verification_state(None, namespace.clone()));
    let second = RefCell::new(p.verification_state(None, namespace));
    let h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/orders".to_vec()),
        ("authorization".into(), bearer("scope_read").into_bytes()),
    ];
    let head = RequestHead { headers: &h, end_of_stream: Some(true) };
    let view = View::new(&first, NOW, &shared);
    assert_eq!(reason(&p.check_head(&head, &view, NOW)), None);
    assert_eq!((view.hits(), view.shared_hits()), (0, 0));
    let view = View::new(&second, NOW, &shared);
    assert_eq!(reason(&p.check_head(&head, &view, NOW)), None);
    assert_eq!((view.hits(), view.shared_hits()), (0, 1), "taken from the shared tier");
    let view = View::new(&second, NOW, &shared);
    assert_eq!(reason(&p.check_head(&head, &view, NOW)), None);
    assert_eq!((view.hits(), view.shared_hits()), (1, 0), "then kept by this worker too");
    // A forgery of those claims (another signature) is another token to the shared tier: a
    // miss, then a failed check.
    let bad: Vec<(String, Vec<u8>)> =
        vec![h[0].clone(), h[1].clone(), ("authorization".into(), bearer("wrong_key_same_kid").into_bytes())];
    let view = View::new(&second, NOW, &shared);
    let d = p.check_head(&RequestHead { headers: &bad, end_of_stream: Some(true) }, &view, NOW);
    assert_eq!((reason(&d), view.shared_hits()), (Some(Reason::TokenInvalid), 0));
}

#[test]
fn remote_jwks_config_is_checked() {
    for (remote, path) in [
        (json!({"http_uri": {"uri": "ftp://x/jwks"}}), "jwt.providers.idp.remote_jwks.http_uri.uri"),
        (json!({"http_uri": {"uri": "http:///jwks"}}), "jwt.providers.idp.remote_jwks.http_uri.uri"),
        (
            json!({"http_uri": {"uri": "http://x/jwks", "cluster": ""}}),
            "jwt.providers.idp.remote_jwks.http_uri.cluster",
        ),
        (
            json!({"http_uri": {"uri": "http://x/jwks", "timeout_ms": 0}}),
            "jwt.providers.idp.remote_jwks.http_uri.timeout_ms",
        ),
        (
            json!({"http_uri": {"uri": "http://x/jwks"}, "cache_seconds": 1}),
            "jwt.providers.idp.remote_jwks.cache_seconds",
        ),
    ] {
        let c = json!({"jwt": {"providers": {"idp": {
            "issuer": "i", "audiences": ["a"], "algorithms": ["RS256"], "remote_jwks": remote}}}});
        let e = config::parse(c.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.path, path, "{e}");
    }
    let both = json!({"jwt": {"providers": {"idp": {"issuer": "i", "audiences": ["a"], "algorithms": ["RS256"],
        "local_jwks": serde_json::from_str::<Value>(JWKS).unwrap(),
        "remote_jwks": {"http_uri": {"uri": "http://x/jwks"}}}}}});
    assert_eq!(config::parse(both.to_string().as_bytes()).unwrap_err().path, "jwt.providers.idp");
    // Without a cluster the upstream is the URL's host:port (Kong, APISIX).
    let c = json!({"jwt": {"providers": {"idp": {"issuer": "i", "audiences": ["a"], "algorithms": ["ES256"],
        "remote_jwks": {"http_uri": {"uri": "https://idp.example:8443/keys?v=1"}}}}}});
    let p = config::parse(c.to_string().as_bytes()).unwrap();
    let ProviderKeys::Remote(spec) = &p.jwt.as_ref().unwrap().providers[0].keys else { panic!() };
    assert_eq!(
        (spec.upstream(true), spec.authority.as_str(), spec.path.as_str()),
        ("idp.example:8443", "idp.example:8443", "/keys?v=1")
    );
    // With a cluster: Envoy sends to the cluster; hosts without clusters still use host:port.
    let c = json!({"jwt": {"providers": {"idp": {"issuer": "i", "audiences": ["a"], "algorithms": ["ES256"],
        "remote_jwks": {"http_uri": {"uri": "https://idp.example/keys", "cluster": "idp"}}}}}});
    let p = config::parse(c.to_string().as_bytes()).unwrap();
    let ProviderKeys::Remote(spec) = &p.jwt.as_ref().unwrap().providers[0].keys else { panic!() };
    assert_eq!((spec.upstream(true), spec.upstream(false)), ("idp", "idp.example:443"));
}

// ---------------------------------------------------------------- the token cache

#[test]
fn repeated_tokens_hit_the_cache_until_they_expire() {
    let p = policy();
    let state = RefCell::new(p.verification_state(None, None));
    let hits = std::cell::Cell::new(0);
    let check = |headers: &[(String, Vec<u8>)], now: i64| {
        let view = View::new(&state, now, &NoSharedData);
        let d = p.check_head(&RequestHead { headers, end_of_stream: Some(true) }, &view, now);
        hits.set(hits.get() + view.hits());
        d
    };
    let h: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/orders".to_vec()),
        ("authorization".into(), bearer("scope_read").into_bytes()),
    ];
    for _ in 0..3 {
        assert_eq!(reason(&check(&h, NOW)), None);
    }
    assert_eq!(hits.get(), 2, "the second and third checks come from the cache");
    assert_eq!(state.borrow().cached_tokens(), 1);
    // Route rules still apply to cached tokens.
    let post: Vec<(String, Vec<u8>)> =
        vec![(":method".into(), b"POST".to_vec()), (":path".into(), b"/orders".to_vec()), h[2].clone()];
    assert_eq!(reason(&check(&post, NOW)), Some(Reason::InsufficientScope));
    assert_eq!(hits.get(), 3);
    // Failures are never cached as verified.
    let bad: Vec<(String, Vec<u8>)> =
        vec![h[0].clone(), h[1].clone(), ("authorization".into(), bearer("wrong_key_same_kid").into_bytes())];
    for _ in 0..2 {
        assert_eq!(reason(&check(&bad, NOW)), Some(Reason::TokenInvalid));
    }
    assert_eq!((hits.get(), state.borrow().cached_tokens()), (3, 1));
    // An entry dies with its token: past exp + skew the cache no longer answers.
    assert_eq!(reason(&check(&h, 2_001_001_001 + 60)), Some(Reason::TokenInvalid));
    assert_eq!(hits.get(), 3);
}

// ---------------------------------------------------------------- the failed-verification budget

/// `wrong_key_same_kid` with its signature's first character replaced by `c`: a distinct
/// forgery, as a flood of them would send.
fn forged(c: char) -> String {
    let t = token("wrong_key_same_kid");
    let (head, sig) = t.rsplit_once('.').unwrap();
    let first = if sig.starts_with(c) { 'z' } else { c };
    format!("{head}.{first}{}", &sig[1..])
}

#[test]
fn a_client_that_spends_its_failure_budget_gets_429_for_new_tokens_only() {
    let mut cfg: Value = serde_json::from_str(&config()).unwrap();
    cfg["jwt"]["verification_budget"] = json!({"max_failures": 3, "window_seconds": 10});
    let p = config::parse(cfg.to_string().as_bytes()).unwrap();
    let rules = p.jwt.as_ref().unwrap().budget.clone().unwrap();
    assert_eq!((rules.max_failures, rules.window), (3, 10));
    let state = RefCell::new(p.verification_state(None, None));
    // One request from `client` on `connection` at `now`, with the token `t`.
    let check_raw = |client: &str, connection: Option<u64>, now: i64, t: &str| {
        let h: Vec<(String, Vec<u8>)> = vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), b"/orders".to_vec()),
            ("authorization".into(), format!("Bearer {t}").into_bytes()),
        ];
        let named = || (Some(client.to_string()), connection);
        let view = View::new(&state, now, &NoSharedData).with_client(&named);
        p.check_head(&RequestHead { headers: &h, end_of_stream: Some(true) }, &view, now)
    };
    let attacker = |t: &str| check_raw("198.51.100.7", Some(1), NOW, t);
    assert_eq!(reason(&attacker(&token("scope_read"))), None, "verified and cached before the flood");
    // The same forgery again and again costs one signature check: it is remembered.
    for _ in 0..5 {
        assert_eq!(reason(&attacker(&token("wrong_key_same_kid"))), Some(Reason::TokenInvalid));
    }
    assert_eq!(state.borrow().budgeted_clients(), 1);
    // Two more distinct forgeries: three failed checks, the budget is spent.
    for c in ['A', 'B'] {
        assert_eq!(reason(&attacker(&forged(c))), Some(Reason::TokenInvalid), "{c}");
    }
    // A known forgery is still refused for its own cause, without a check.
    let again = attacker(&token("wrong_key_same_kid")).outcome.unwrap_err();
    assert_eq!((again.reason, again.cause), (Reason::TokenInvalid, Some("signature")));
    let denial = attacker(&forged('C')).outcome.unwrap_err();
    assert_eq!(denial.reason, Reason::VerificationBudget);
    assert_eq!(denial.retry_after, Some(10));
    let rendered = api_guard::policy::denial::render(
        &denial,
        &p.rendering,
        &api_guard::policy::denial::RequestTag { route: "read", method: None, request_id: "id-1" },
        None,
    );
    assert_eq!(rendered.response.status, 429);
    let header = |n: &str| rendered.response.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(header("retry-after").as_deref(), Some("10"));
    assert_eq!(header("www-authenticate"), None, "not an authentication challenge");
    let body: Value = serde_json::from_slice(&rendered.response.body).unwrap();
    assert!(body["type"].as_str().unwrap().ends_with("verification-budget"), "{body}");
    // A new genuine token on the connection that carried the forgeries is refused unchecked
    // too; the cached one still passes.
    assert_eq!(reason(&attacker(&token("claims_rich"))), Some(Reason::VerificationBudget));
    assert_eq!(reason(&attacker(&token("scope_read"))), None, "cached tokens are not affected");
    // A client behind the same address on a connection of its own is checked, and passes; a
    // forgery sent there marks that connection too.
    let neighbour = |t: &str| check_raw("198.51.100.7", Some(2), NOW, t);
    assert_eq!(reason(&neighbour(&token("claims_rich"))), None, "the neighbour's new token");
    assert_eq!(reason(&neighbour(&forged('E'))), Some(Reason::TokenInvalid));
    assert_eq!(reason(&neighbour(&token("ps256"))), Some(Reason::VerificationBudget));
    // Without a connection id the whole address is judged.
    assert_eq!(
        reason(&check_raw("198.51.100.7", None, NOW, &token("es256"))),
        Some(Reason::VerificationBudget)
    );
    // Another client is not affected, and the window ends.
    assert_eq!(reason(&check_raw("203.0.113.9", Some(3), NOW, &token("es384"))), None);
    assert_eq!(
        reason(&check_raw("198.51.100.7", Some(1), NOW + 10, &forged('D'))),
        Some(Reason::TokenInvalid)
    );

    // Refusals that cost no signature check are not counted.
    let clients = state.borrow().budgeted_clients();
    for _ in 0..10 {
        for name in [
            "alg_none",
            "wrong_iss",
            "bad_base64",
            "unknown_kid",
            "crit_unknown",
            "two_segments",
            "expired",
            "not_yet_valid",
            "wrong_aud",
            "exp_as_string",
        ] {
            assert_eq!(
                reason(&check_raw("192.0.2.1", Some(4), NOW, &token(name))),
                Some(Reason::TokenInvalid),
                "{name}"
            );
        }
    }
    assert_eq!(state.borrow().budgeted_clients(), clients, "no failure was recorded");

    // `max_failures: 0` turns the budget off; without the section it is on (20 per 10 s).
    cfg["jwt"]["verification_budget"] = json!({"max_failures": 0, "max_checks_per_second": 0});
    assert!(config::parse(cfg.to_string().as_bytes()).unwrap().jwt.unwrap().budget.is_none());
    let defaults = policy().jwt.unwrap().budget.unwrap();
    assert_eq!(
        (defaults.max_failures, defaults.window, defaults.client, defaults.max_checks_per_second),
        (20, 10, ClientSource::Peer, 1000)
    );
}
