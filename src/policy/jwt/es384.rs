//! `ES384` (ECDSA on P-384 with SHA-384), which jwt-compact does not ship: its [`Algorithm`]
//! trait implemented over the RustCrypto `p384` crate, the same way jwt-compact implements
//! `ES256` over `p256`.

use std::borrow::Cow;
use std::num::NonZeroUsize;

use jwt_compact::{Algorithm, AlgorithmSignature};
use p384::ecdsa::signature::{DigestSigner, DigestVerifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha384};

/// An ES384 signature (`r || s`, 96 bytes).
#[derive(Debug, Clone)]
pub struct Es384Signature(Signature);

impl AlgorithmSignature for Es384Signature {
    const LENGTH: Option<NonZeroUsize> = NonZeroUsize::new(96);

    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        Signature::try_from(slice).map(Es384Signature).map_err(|e| anyhow::anyhow!(e))
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.to_bytes().to_vec())
    }
}

/// The `ES384` algorithm.
#[derive(Debug, Default, Clone, Copy)]
pub struct Es384;

impl Algorithm for Es384 {
    type SigningKey = SigningKey;
    type VerifyingKey = VerifyingKey;
    type Signature = Es384Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("ES384")
    }

    fn sign(&self, signing_key: &SigningKey, message: &[u8]) -> Es384Signature {
        let mut digest = Sha384::default();
        digest.update(message);
        Es384Signature(signing_key.sign_digest(digest))
    }

    fn verify_signature(
        &self,
        signature: &Es384Signature,
        verifying_key: &VerifyingKey,
        message: &[u8],
    ) -> bool {
        let mut digest = Sha384::default();
        digest.update(message);
        verifying_key.verify_digest(digest, &signature.0).is_ok()
    }
}

/// A P-384 public key from a JWK's `x` and `y` (48 bytes each).
pub fn verifying_key(x: &[u8], y: &[u8]) -> Option<VerifyingKey> {
    if x.len() != 48 || y.len() != 48 {
        return None;
    }
    let point = p384::EncodedPoint::from_affine_coordinates(x.into(), y.into(), false);
    VerifyingKey::from_encoded_point(&point).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let sk = SigningKey::from_slice(&[7u8; 48]).unwrap();
        let vk = VerifyingKey::from(&sk);
        let sig = Es384.sign(&sk, b"message");
        assert!(Es384.verify_signature(&sig, &vk, b"message"));
        assert!(!Es384.verify_signature(&sig, &vk, b"messagf"));
        let bytes = sig.as_bytes().to_vec();
        assert_eq!(bytes.len(), 96);
        assert!(Es384Signature::try_from_slice(&[0u8; 96]).is_err(), "r = s = 0");
        assert!(Es384Signature::try_from_slice(&bytes[..95]).is_err());
        let point = vk.to_encoded_point(false);
        let again = verifying_key(point.x().unwrap(), point.y().unwrap()).unwrap();
        assert_eq!(again, vk);
        assert!(verifying_key(&[1u8; 48], &[2u8; 48]).is_none(), "not on the curve");
    }
}
