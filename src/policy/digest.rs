//! SHA-256 digests as configurations and hosts write them: 64 hexadecimal digits.

/// The 32 bytes of 64 hexadecimal digits (either case); `None` for anything else.
pub fn from_hex(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let nibble = |b: u8| char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = nibble(*hi)? << 4 | nibble(*lo)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_64_hex_digits_are_a_digest() {
        let d = super::from_hex(b"00ff10AB00000000000000000000000000000000000000000000000000000001").unwrap();
        assert_eq!((d[0], d[1], d[2], d[3], d[31]), (0, 255, 16, 0xab, 1));
        assert!(super::from_hex(b"00").is_none());
        assert!(super::from_hex(&[b'g'; 64]).is_none());
    }
}
