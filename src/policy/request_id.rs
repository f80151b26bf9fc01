//! Request ids: taken from the request when well-formed, generated otherwise.
//!
//! The id is echoed in problem bodies and log lines, so a client-sent value is accepted only if
//! it is short and made of safe characters; anything else is replaced rather than escaped.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Longest client-sent request id that is kept.
pub const MAX_LEN: usize = 128;

/// Whether a client-sent id can be echoed as is: 1 to 128 of `[A-Za-z0-9._:-]`.
pub fn is_acceptable(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The client's id if acceptable, else a new one.
pub fn resolve(value: Option<&[u8]>) -> String {
    match value {
        Some(v) if is_acceptable(v) => String::from_utf8_lossy(v).into_owned(),
        _ => generate(),
    }
}

/// A new random id, formatted like a UUID v4.
///
/// Randomness comes from the standard library's per-thread hasher keys, which std seeds from the
/// platform's random source (WASI `random_get` inside the module), advanced on every call.
pub fn generate() -> String {
    let a = RandomState::new().build_hasher().finish();
    let mut h = RandomState::new().build_hasher();
    h.write_u64(a);
    let b = h.finish();
    let hi = (a & 0xffff_ffff_ffff_0fff) | 0x4000; // version 4
    let lo = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000; // variant 10
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_safe_ids_and_replaces_others() {
        assert_eq!(resolve(Some(b"abc-123_x.y:z")), "abc-123_x.y:z");
        for bad in [&b""[..], b"a b", b"a\"b", b"<script>", &[0xff], &[b'a'; 129]] {
            let id = resolve(Some(bad));
            assert_ne!(id.as_bytes(), bad);
            assert!(is_acceptable(id.as_bytes()));
        }
        assert!(is_acceptable(resolve(None).as_bytes()));
    }

    #[test]
    fn generated_ids_look_like_uuids_and_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')));
    }
}
