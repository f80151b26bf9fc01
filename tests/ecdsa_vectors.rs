//! api-guard's ECDSA verification (`src/policy/jwt/ecdsa.rs`) against independent material:
//! Project Wycheproof's P-256/SHA-256 and P-384/SHA-384 vectors (edge-case scalars and points,
//! out-of-range r and s, arithmetic corner cases; converted to the JWS `r‖s` form and checked
//! against OpenSSL by `tests/fixtures/ecdsa/convert.py`), and signatures made by the RustCrypto
//! `p256` and `p384` crates for random keys and messages, with every signature also mutated.
//! Fixtures are compiled in, so this suite runs natively and as wasm32-wasip1 (`make wasm-unit`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use api_guard::policy::jwt::ecdsa::{P256Key, P384Key};
use serde_json::Value;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Runs the vectors; keys are prepared once per distinct public key (their tables are the
/// expensive part).
fn wycheproof<K>(
    fixture: &str,
    key: impl Fn(&[u8], &[u8]) -> Option<K>,
    verify: impl Fn(&K, &[u8], &[u8]) -> bool,
) {
    let vectors: Vec<Value> = serde_json::from_str(fixture).unwrap();
    let (mut valid, mut invalid) = (0, 0);
    let mut keys = std::collections::HashMap::new();
    for (i, v) in vectors.iter().enumerate() {
        let field = |k: &str| unhex(v[k].as_str().unwrap());
        let want = v["valid"].as_bool().unwrap();
        let k = keys.entry((field("x"), field("y"))).or_insert_with(|| {
            key(&field("x"), &field("y")).unwrap_or_else(|| panic!("vector {i}: key refused"))
        });
        let got = verify(k, &field("msg"), &field("sig"));
        assert_eq!(got, want, "vector {i}: {v}");
        if want {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(valid > 100 && invalid > 50, "{valid} valid, {invalid} invalid");
}

#[test]
fn wycheproof_p256_sha256() {
    wycheproof(include_str!("fixtures/ecdsa/wycheproof_p256_sha256.json"), P256Key::new, |k, msg, sig| {
        k.verify(msg, sig)
    });
}

#[test]
fn wycheproof_p384_sha384() {
    wycheproof(include_str!("fixtures/ecdsa/wycheproof_p384_sha384.json"), P384Key::new, |k, msg, sig| {
        k.verify(msg, sig)
    });
}

/// A deterministic byte stream (xorshift), so failures reproduce.
struct Stream(u64);

impl Stream {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 24) as u8
            })
            .collect()
    }
}

/// Random keys and messages signed by the `p256` crate (RFC 6979 nonces): every signature
/// verifies; flipping any one of a spread of bits in the signature or the message, swapping r
/// and s, or using another key fails, exactly when the `p256` crate's verifier says so; the
/// high-s twin `(r, n − s)` verifies in both.
#[test]
fn agrees_with_the_p256_crate() {
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::{Signature, SigningKey};
    let mut rng = Stream(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for round in 0..16 {
        let signer = SigningKey::from_slice(&rng.bytes(32)).unwrap();
        let public = signer.verifying_key().to_encoded_point(false);
        let ours = P256Key::new(public.x().unwrap(), public.y().unwrap()).unwrap();
        let theirs = signer.verifying_key();
        let msg = rng.bytes(1 + round * 7);
        let sig: Signature = signer.sign(&msg);
        let raw = sig.to_bytes().to_vec();
        assert!(ours.verify(&msg, &raw), "round {round}");
        let mut cases: Vec<(Vec<u8>, Vec<u8>)> = vec![];
        for bit in (0..512).step_by(37) {
            let mut s = raw.clone();
            s[bit / 8] ^= 1 << (bit % 8);
            cases.push((msg.clone(), s));
        }
        let mut m = msg.clone();
        m[0] ^= 0x80;
        cases.push((m, raw.clone()));
        cases.push((msg.clone(), [&raw[32..], &raw[..32]].concat()));
        let high_s = Signature::from_scalars(sig.r(), -*sig.s()).unwrap();
        cases.push((msg.clone(), high_s.to_bytes().to_vec()));
        for (m, s) in cases {
            let want = Signature::from_slice(&s).is_ok_and(|s| theirs.verify(&m, &s).is_ok());
            assert_eq!(ours.verify(&m, &s), want, "round {round}");
            checked += 1;
        }
        let other = SigningKey::from_slice(&rng.bytes(32)).unwrap().verifying_key().to_encoded_point(false);
        let other = P256Key::new(other.x().unwrap(), other.y().unwrap()).unwrap();
        assert!(!other.verify(&msg, &raw));
    }
    assert!(checked > 200);
}

/// The same against the `p384` crate.
#[test]
fn agrees_with_the_p384_crate() {
    use p384::ecdsa::signature::{Signer, Verifier};
    use p384::ecdsa::{Signature, SigningKey};
    let mut rng = Stream(0x2545_f491_4f6c_dd1d);
    for round in 0..6 {
        let signer = SigningKey::from_slice(&rng.bytes(48)).unwrap();
        let public = signer.verifying_key().to_encoded_point(false);
        let ours = P384Key::new(public.x().unwrap(), public.y().unwrap()).unwrap();
        let msg = rng.bytes(1 + round * 11);
        let sig: Signature = signer.sign(&msg);
        let raw = sig.to_bytes().to_vec();
        assert!(ours.verify(&msg, &raw), "round {round}");
        for bit in (0..768).step_by(97) {
            let mut s = raw.clone();
            s[bit / 8] ^= 1 << (bit % 8);
            let want =
                Signature::from_slice(&s).is_ok_and(|s| signer.verifying_key().verify(&msg, &s).is_ok());
            assert_eq!(ours.verify(&msg, &s), want, "round {round} bit {bit}");
        }
    }
}

/// Keys that are not points of the curve, or coordinates of the wrong size, are refused;
/// signatures of the wrong size, zero, or at or above the group order fail.
#[test]
fn refuses_bad_keys_and_out_of_range_signatures() {
    use p256::ecdsa::SigningKey;
    let signer = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let public = signer.verifying_key().to_encoded_point(false);
    let (x, y) = (public.x().unwrap().to_vec(), public.y().unwrap().to_vec());
    let mut bad_y = y.clone();
    bad_y[31] ^= 1;
    assert!(P256Key::new(&x, &bad_y).is_none(), "off the curve");
    assert!(P256Key::new(&x[1..], &y).is_none(), "short x");
    assert!(P256Key::new(&[&[0u8][..], &x].concat(), &y).is_none(), "long x");
    assert!(P256Key::new(&[0u8; 32], &[0u8; 32]).is_none(), "origin");
    let p = unhex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
    assert!(P256Key::new(&p, &y).is_none(), "x = p");
    let key = P256Key::new(&x, &y).unwrap();
    let n = unhex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    for sig in [vec![0u8; 64], [&n[..], &[1u8; 32]].concat(), [&[1u8; 32][..], &n].concat(), vec![0xff; 64]] {
        assert!(!key.verify(b"m", &sig));
    }
    for len in [0, 1, 63, 65, 96, 128] {
        assert!(!key.verify(b"m", &vec![1u8; len]), "{len} bytes");
    }
}
