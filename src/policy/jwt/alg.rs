//! JWS algorithms: the closed set api-guard verifies, which key type each needs, and the
//! signature check itself (over jwt-compact's algorithm implementations).
//!
//! The algorithm used is always one the provider allows; the token's `alg` header only selects
//! among those, and must match the key's type. So `none` (any letter case) is never accepted,
//! and an HMAC algorithm can never be verified with an RSA or EC public key.

use std::fmt;

use jwt_compact::alg::{Ed25519, Hs256, Hs384, Hs512};
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde::Deserialize;

use super::keys::KeyMaterial;
use super::rsa::Hash;

/// A JWS algorithm a provider can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

/// The kind of key an algorithm verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA public key (`kty: RSA`).
    Rsa,
    /// P-256 public key (`kty: EC`, `crv: P-256`).
    P256,
    /// P-384 public key (`kty: EC`, `crv: P-384`).
    P384,
    /// Ed25519 public key (`kty: OKP`, `crv: Ed25519`).
    Ed25519,
    /// Shared secret (`kty: oct`).
    Secret,
}

impl Alg {
    /// Every algorithm.
    pub const ALL: [Alg; 12] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    /// Parses a token's `alg` header. Exact match (RFC 7515 names are case-sensitive), so
    /// `none`, `None` and `rs256` are all unknown.
    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    /// The key kind this algorithm verifies with.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => KeyKind::Rsa,
            Alg::ES256 => KeyKind::P256,
            Alg::ES384 => KeyKind::P384,
            Alg::EdDSA => KeyKind::Ed25519,
            Alg::HS256 | Alg::HS384 | Alg::HS512 => KeyKind::Secret,
        }
    }

    /// Whether the signature over `message` verifies with `key`. A key of another kind, or
    /// a signature of the wrong shape, is simply a failed verification.
    pub fn verify(self, key: &KeyMaterial, message: &[u8], signature: &[u8]) -> bool {
        fn check<A: Algorithm>(alg: &A, key: &A::VerifyingKey, message: &[u8], sig: &[u8]) -> bool {
            // Some signature types copy into a fixed-size array and panic on any other length
            // (jwt-compact's Ed25519 and HMAC): the length is checked here first.
            if A::Signature::LENGTH.is_some_and(|n| n.get() != sig.len()) {
                return false;
            }
            match A::Signature::try_from_slice(sig) {
                Ok(s) => alg.verify_signature(&s, key, message),
                Err(_) => false,
            }
        }
        match (self, key) {
            (Alg::RS256, KeyMaterial::Rsa(k)) => k.verify(Hash::Sha256, message, signature),
            (Alg::RS384, KeyMaterial::Rsa(k)) => k.verify(Hash::Sha384, message, signature),
            (Alg::RS512, KeyMaterial::Rsa(k)) => k.verify(Hash::Sha512, message, signature),
            (Alg::PS256, KeyMaterial::Rsa(k)) => k.verify_pss(Hash::Sha256, message, signature),
            (Alg::PS384, KeyMaterial::Rsa(k)) => k.verify_pss(Hash::Sha384, message, signature),
            (Alg::PS512, KeyMaterial::Rsa(k)) => k.verify_pss(Hash::Sha512, message, signature),
            (Alg::ES256, KeyMaterial::P256(k)) => k.verify(message, signature),
            (Alg::ES384, KeyMaterial::P384(k)) => k.verify(message, signature),
            (Alg::EdDSA, KeyMaterial::Ed25519(k)) => check(&Ed25519, k, message, signature),
            (Alg::HS256, KeyMaterial::Secret(k)) => check(&Hs256, &k.hs256, message, signature),
            (Alg::HS384, KeyMaterial::Secret(k)) => check(&Hs384, &k.hs384, message, signature),
            (Alg::HS512, KeyMaterial::Secret(k)) => check(&Hs512, &k.hs512, message, signature),
            _ => false,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_exact() {
        assert_eq!(Alg::parse("RS256"), Some(Alg::RS256));
        assert_eq!(Alg::parse("EdDSA"), Some(Alg::EdDSA));
        for bad in ["none", "None", "NONE", "nOnE", "rs256", "es384", "ES512", "", "HS256 "] {
            assert_eq!(Alg::parse(bad), None, "{bad}");
        }
    }

    /// A signature of any length is a failed verification, never a panic (jwt-compact's
    /// Ed25519 signature type panicked on 65 bytes; found by `fuzz/` target `jwt`).
    #[test]
    fn signatures_of_any_length_fail_without_panicking() {
        let jwks: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/jwt/jwks.json")).unwrap();
        let hmac: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/jwt/hmac.json")).unwrap();
        let set = super::super::keys::KeySet::from_jwks(&jwks).unwrap();
        let secrets = super::super::keys::KeySet::from_jwks(&hmac).unwrap();
        let mut checked = 0;
        for alg in Alg::ALL {
            let key = set.select(alg, None).or_else(|| secrets.select(alg, None));
            let Some(key) = key else { continue };
            for len in [0, 1, 31, 32, 33, 47, 48, 49, 63, 64, 65, 95, 96, 97, 255, 256, 257, 512, 513] {
                assert!(!alg.verify(&key.material, b"header.payload", &vec![7u8; len]), "{alg} {len}");
            }
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} algorithms had a key");
    }

    /// The RSA paths agree with the `rsa` crate (an independent implementation) on every
    /// fixture token and on single-bit corruptions of their signatures.
    #[test]
    fn rsa_agrees_with_the_rsa_crate() {
        use base64::Engine;
        use rsa::signature::Verifier;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap();
        let jwks: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/jwt/jwks.json")).unwrap();
        let set = super::super::keys::KeySet::from_jwks(&jwks).unwrap();
        let key = &set.select(Alg::RS256, Some("rsa-1")).unwrap().material;
        let jwk = &jwks["keys"][0];
        let reference = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(&b64(jwk["n"].as_str().unwrap())),
            rsa::BigUint::from_bytes_be(&b64(jwk["e"].as_str().unwrap())),
        )
        .unwrap();
        let check = |alg: Alg, m: &[u8], sig: &[u8]| -> bool {
            let Ok(s) = rsa::pkcs1v15::Signature::try_from(sig) else { return false };
            let Ok(p) = rsa::pss::Signature::try_from(sig) else { return false };
            let k = reference.clone();
            match alg {
                Alg::RS256 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k).verify(m, &s).is_ok(),
                Alg::RS384 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(k).verify(m, &s).is_ok(),
                Alg::RS512 => rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(k).verify(m, &s).is_ok(),
                Alg::PS256 => rsa::pss::VerifyingKey::<sha2::Sha256>::new(k).verify(m, &p).is_ok(),
                Alg::PS384 => rsa::pss::VerifyingKey::<sha2::Sha384>::new(k).verify(m, &p).is_ok(),
                Alg::PS512 => rsa::pss::VerifyingKey::<sha2::Sha512>::new(k).verify(m, &p).is_ok(),
                _ => unreachable!(),
            }
        };
        let tokens: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/jwt/tokens.json")).unwrap();
        let mut checked = 0;
        for (name, alg) in [
            ("rs256", Alg::RS256),
            ("rs384", Alg::RS384),
            ("rs512", Alg::RS512),
            ("ps256", Alg::PS256),
            ("ps384", Alg::PS384),
            ("ps512", Alg::PS512),
        ] {
            let (input, sig) = tokens[name].as_str().unwrap().rsplit_once('.').unwrap();
            let sig = b64(sig);
            assert!(alg.verify(key, input.as_bytes(), &sig), "{name}");
            assert!(check(alg, input.as_bytes(), &sig), "{name} (reference)");
            for i in (0..sig.len()).step_by(5) {
                let mut bad = sig.clone();
                bad[i] ^= 1 << (i % 8);
                assert_eq!(
                    alg.verify(key, input.as_bytes(), &bad),
                    check(alg, input.as_bytes(), &bad),
                    "{name} byte {i}"
                );
                assert!(!alg.verify(key, input.as_bytes(), &bad));
                checked += 1;
            }
            assert!(!alg.verify(key, format!("{input}x").as_bytes(), &sig));
        }
        // PSS and PKCS#1 signatures are not interchangeable.
        let (input, sig) = tokens["ps256"].as_str().unwrap().rsplit_once('.').unwrap();
        assert!(!Alg::RS256.verify(key, input.as_bytes(), &b64(sig)));
        assert!(checked > 300);
    }

    #[test]
    fn key_kinds() {
        assert_eq!(Alg::PS512.key_kind(), KeyKind::Rsa);
        assert_eq!(Alg::HS384.key_kind(), KeyKind::Secret);
        assert_eq!(Alg::ES256.key_kind(), KeyKind::P256);
        assert_eq!(Alg::EdDSA.key_kind(), KeyKind::Ed25519);
    }
}
