//! Key sets: a JWKS compiled into ready-to-use verifying keys.
//!
//! Keys are parsed once (at configuration load, or when a key set is fetched). Entries this
//! module cannot use for verification are skipped with a note, like an `enc`-only key or an
//! unknown key type, so one odd key does not take a whole set down; but a set that yields no
//! usable key is an error, and private key material in a public key set is refused.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_compact::alg::{Hs256Key, Hs384Key, Hs512Key};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::alg::{Alg, KeyKind};
use super::ecdsa::{P256Key, P384Key};
use super::rsa::RsaVerifier;

/// Smallest RSA modulus accepted (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// Smallest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Most entries a key set may have. Preparing a key costs up to ~10 ms of wasm CPU and
/// ~140 KB (an EC key's window table), so a set's cost must be bounded whoever serves it;
/// identity providers publish a handful of keys.
pub const MAX_KEYS: usize = 32;

/// A shared secret, ready for each HMAC size.
#[derive(Clone)]
pub struct Secret {
    pub(super) hs256: Hs256Key,
    pub(super) hs384: Hs384Key,
    pub(super) hs512: Hs512Key,
}

/// A verifying key.
#[derive(Clone)]
pub enum KeyMaterial {
    /// RSA public key, in precomputed Montgomery form (see [`super::rsa`]).
    Rsa(Box<RsaVerifier>),
    /// P-256 public key, with its window table (see [`super::ecdsa`]).
    P256(P256Key),
    /// P-384 public key, with its window table.
    P384(P384Key),
    /// Ed25519 public key.
    Ed25519(ed25519_compact::PublicKey),
    /// HMAC secret.
    Secret(Box<Secret>),
}

impl KeyMaterial {
    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyMaterial::Rsa(_) => KeyKind::Rsa,
            KeyMaterial::P256(_) => KeyKind::P256,
            KeyMaterial::P384(_) => KeyKind::P384,
            KeyMaterial::Ed25519(_) => KeyKind::Ed25519,
            KeyMaterial::Secret(_) => KeyKind::Secret,
        }
    }
}

impl fmt::Debug for KeyMaterial {
    // Never print key bytes (a secret may be among them).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial::{:?}", self.kind())
    }
}

/// One usable key of a set.
#[derive(Debug, Clone)]
pub struct Key {
    /// `kid`, if the key has one.
    pub kid: Option<String>,
    /// The JWK's `alg`, if it pins one.
    pub alg: Option<Alg>,
    /// The key itself.
    pub material: KeyMaterial,
}

impl Key {
    /// Whether this key may verify a token signed with `alg`.
    pub fn fits(&self, alg: Alg) -> bool {
        self.material.kind() == alg.key_kind() && self.alg.is_none_or(|a| a == alg)
    }
}

/// A compiled key set.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// Usable keys, in document order.
    pub keys: Vec<Key>,
    /// Why entries were skipped (for one warning at load).
    pub skipped: Vec<String>,
    /// Entries left out because none of the provider's algorithms uses them (expected when an
    /// identity provider publishes keys of several types; one info line at load).
    pub unused: Vec<String>,
    /// Names this set across worker VMs: the first 8 bytes of the SHA-256 of its `keys`
    /// array as serialised. A token verified with one set is shared with VMs that hold the
    /// same set, never with one that has moved on (or not yet) after a rotation.
    pub fingerprint: u64,
}

/// Why a key set is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetError(pub String);

impl fmt::Display for KeySetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> KeySetError {
    KeySetError(msg.into())
}

impl KeySet {
    /// Compiles a JWKS document (`{"keys":[...]}`), every key it can verify with.
    pub fn from_jwks(doc: &Value) -> Result<KeySet, KeySetError> {
        KeySet::from_jwks_for(doc, &Alg::ALL)
    }

    /// Compiles a JWKS document for a provider that accepts `algorithms`: a key none of them
    /// can use (another key type, or an `alg` it pins that is not allowed) is left out, with a
    /// note in [`KeySet::unused`], before it is prepared. Identity providers often publish RSA
    /// and EC keys side by side, and an EC key's window tables cost tens of milliseconds and
    /// hundreds of KiB per VM, for nothing if the provider only accepts RS256.
    pub fn from_jwks_for(doc: &Value, algorithms: &[Alg]) -> Result<KeySet, KeySetError> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| err("a JWKS must be an object with a `keys` array"))?;
        if keys.len() > MAX_KEYS {
            return Err(err(format!("the key set has {} keys; at most {MAX_KEYS} are accepted", keys.len())));
        }
        let mut set = KeySet::default();
        for (i, entry) in keys.iter().enumerate() {
            if let Some(unused) = unused_by(entry, algorithms) {
                set.unused.push(format!("keys[{i}]: {unused}"));
                continue;
            }
            match compile_key(entry) {
                Ok(Some(k)) => set.keys.push(k),
                Ok(None) => {}
                Err(e) => set.skipped.push(format!("keys[{i}]: {e}")),
            }
        }
        if let Some(private) = keys.iter().position(has_private_parts) {
            return Err(err(format!(
                "keys[{private}] holds private key material; a key set must carry public keys only"
            )));
        }
        if set.keys.is_empty() {
            let notes: Vec<&str> = set.skipped.iter().chain(&set.unused).map(String::as_str).collect();
            let why = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
            return Err(err(format!("the key set has no usable verification key{why}")));
        }
        let digest = Sha256::digest(serde_json::to_vec(keys).unwrap_or_default());
        set.fingerprint = digest.iter().take(8).fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        Ok(set)
    }

    /// Keys that may verify a token with this `alg` and `kid`.
    ///
    /// With a `kid`, only keys with that exact `kid` are candidates. Without one, a key is used
    /// only if it is the single key that fits the algorithm (ambiguity is refused, not tried).
    pub fn select(&self, alg: Alg, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid) && k.fits(alg)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                let first = fitting.next()?;
                fitting.next().is_none().then_some(first)
            }
        }
    }
}

/// Why none of `algorithms` could use this entry, judged from its `kty`, `crv` and `alg`
/// alone; `None` when one could, or when the entry is not a key of a known type (then
/// [`compile_key`] says what is wrong with it).
fn unused_by(entry: &Value, algorithms: &[Alg]) -> Option<String> {
    let text = |name: &str| entry.get(name).and_then(Value::as_str);
    if text("use").is_some_and(|u| u != "sig") {
        return None; // an encryption key: skipped quietly by compile_key
    }
    let (kind, label) = match (text("kty")?, text("crv")) {
        ("RSA", _) => (KeyKind::Rsa, "an RSA key"),
        ("EC", Some("P-256")) => (KeyKind::P256, "a P-256 key"),
        ("EC", Some("P-384")) => (KeyKind::P384, "a P-384 key"),
        ("OKP", Some("Ed25519")) => (KeyKind::Ed25519, "an Ed25519 key"),
        ("oct", _) => (KeyKind::Secret, "a shared secret"),
        _ => return None,
    };
    let pinned = match text("alg") {
        // An `alg` of another key type is compile_key's error to report.
        Some(name) => Some(Alg::parse(name).filter(|a| a.key_kind() == kind)?),
        None => None,
    };
    if algorithms.iter().any(|a| a.key_kind() == kind && pinned.is_none_or(|p| p == *a)) {
        return None;
    }
    let allowed: Vec<&str> = algorithms.iter().map(|a| a.as_str()).collect();
    Some(match pinned {
        Some(p) => format!("{label} for {p}, not among the provider's algorithms ({})", allowed.join(", ")),
        None => format!("{label}, which none of the provider's algorithms ({}) uses", allowed.join(", ")),
    })
}

pub(crate) fn has_private_parts(entry: &Value) -> bool {
    entry.get("kty").and_then(Value::as_str) != Some("oct")
        && ["d", "p", "q", "dp", "dq", "qi"].iter().any(|f| entry.get(*f).is_some())
}

/// Compiles one JWK. `Ok(None)` for keys not meant for signatures (`use: enc`).
pub(crate) fn compile_key(entry: &Value) -> Result<Option<Key>, String> {
    let obj = entry.as_object().ok_or("not an object")?;
    if obj.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("`kid` is not a string".into()),
    };
    let alg = match obj.get("alg") {
        None => None,
        Some(Value::String(s)) => match Alg::parse(s) {
            Some(a) => Some(a),
            None => return Err(format!("`alg` {s:?} is not a supported signature algorithm")),
        },
        Some(_) => return Err("`alg` is not a string".into()),
    };
    // The members a key type needs, read straight from the tree (base64url without padding,
    // as RFC 7518 writes them); the rest of a JWK is not used.
    let text = |name: &str| -> Result<&str, String> {
        match obj.get(name) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(format!("not a usable JWK: `{name}` is not a string")),
            None => Err(format!("not a usable JWK: missing `{name}`")),
        }
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        URL_SAFE_NO_PAD
            .decode(text(name)?)
            .map_err(|_| format!("not a usable JWK: `{name}` is not base64url without padding"))
    };
    let material = match text("kty")? {
        "RSA" => {
            let modulus = bytes("n")?;
            let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA modulus of about {bits} bits is below {MIN_RSA_BITS}"));
            }
            let key = RsaVerifier::new(&modulus, &bytes("e")?)
                .ok_or("RSA modulus must be odd and the exponent odd, at least 3 and at most 64 bits")?;
            KeyMaterial::Rsa(Box::new(key))
        }
        "EC" => match text("crv")? {
            "P-256" => {
                KeyMaterial::P256(P256Key::new(&bytes("x")?, &bytes("y")?).ok_or("not a P-256 public key")?)
            }
            "P-384" => {
                KeyMaterial::P384(P384Key::new(&bytes("x")?, &bytes("y")?).ok_or("not a P-384 public key")?)
            }
            curve => return Err(format!("curve {curve} is not supported")),
        },
        "OKP" => match text("crv")? {
            "Ed25519" => KeyMaterial::Ed25519(
                ed25519_compact::PublicKey::from_slice(&bytes("x")?)
                    .map_err(|_| "not an Ed25519 public key")?,
            ),
            curve => return Err(format!("curve {curve} is not supported")),
        },
        "oct" => {
            let secret = bytes("k")?;
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!("HMAC secret of {} bytes is below {MIN_SECRET_BYTES}", secret.len()));
            }
            KeyMaterial::Secret(Box::new(Secret {
                hs256: Hs256Key::new(&secret),
                hs384: Hs384Key::new(&secret),
                hs512: Hs512Key::new(&secret),
            }))
        }
        _ => return Err("unsupported key type".into()),
    };
    if let Some(a) = alg {
        if a.key_kind() != material.kind() {
            return Err(format!("`alg` {a} does not fit a {:?} key", material.kind()));
        }
    }
    Ok(Some(Key { kid, alg, material }))
}
