//! RSA signature verification — RSASSA-PKCS1-v1_5 (RS256/384/512) and RSASSA-PSS
//! (PS256/384/512) — written for speed inside wasm.
//!
//! Verification is public-key work: `m = s^e mod n`, then a byte comparison with the encoding
//! the signature must have. The general-purpose big-integer code behind the `rsa` crate spends
//! most of a verification on allocation and setup (about 0.8 ms per RS256 check under V8);
//! here everything that depends only on the key (the modulus as 32-bit limbs, the Montgomery
//! constant, `R² mod n`) is computed once when the key set is loaded, and a check is 17
//! Montgomery multiplications over fixed buffers. Nothing here is secret, so nothing needs to
//! run in constant time.
//!
//! The PKCS#1 v1.5 check is "encode and compare" (RFC 8017 §8.2.2): the expected `EM` is built
//! in full and compared byte for byte, which leaves no room for the lenient-parsing forgeries
//! that plague decode-and-inspect verifiers. The PSS check follows EMSA-PSS-VERIFY (RFC 8017
//! §9.1.2) step by step, with MGF1 over the same hash and a salt as long as the hash, as JWA
//! requires (RFC 7518 §3.5).

use sha2::{Digest, Sha256, Sha384, Sha512};

/// Which digest the signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256 (RS256).
    Sha256,
    /// SHA-384 (RS384).
    Sha384,
    /// SHA-512 (RS512).
    Sha512,
}

impl Hash {
    /// The DER `DigestInfo` prefix before the digest (RFC 8017 §9.2, note 1).
    fn prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
                0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
                0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
                0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    fn digest(self, message: &[u8]) -> Vec<u8> {
        self.digest_parts(&[message])
    }

    fn digest_parts(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }

    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// MGF1 (RFC 8017 §B.2.1): `len` bytes of mask from `seed`.
    fn mgf1(self, seed: &[u8], len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + self.len());
        let mut counter: u32 = 0;
        while out.len() < len {
            out.extend_from_slice(&self.digest_parts(&[seed, &counter.to_be_bytes()]));
            counter = counter.wrapping_add(1);
        }
        out.truncate(len);
        out
    }
}

/// An RSA public key prepared for verification.
#[derive(Clone)]
pub struct RsaVerifier {
    /// Modulus, little-endian 32-bit limbs.
    n: Vec<u32>,
    /// `-n⁻¹ mod 2³²`.
    n0inv: u32,
    /// `R² mod n`, with `R = 2^(32·limbs)`.
    r2: Vec<u32>,
    /// Public exponent.
    e: u64,
    /// Modulus length in bytes (the signature length).
    k: usize,
}

impl std::fmt::Debug for RsaVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaVerifier({} bits)", self.k * 8)
    }
}

fn limbs_from_be(bytes: &[u8], len: usize) -> Vec<u32> {
    let mut out = vec![0u32; len];
    for (i, b) in bytes.iter().rev().enumerate() {
        if let Some(limb) = out.get_mut(i / 4) {
            *limb |= u32::from(*b) << (8 * (i % 4));
        }
    }
    out
}

/// Adds `carry` at `limbs[0]`, rippling up.
fn add_carry(limbs: &mut [u32], mut carry: u64) {
    for x in limbs {
        if carry == 0 {
            return;
        }
        let v = u64::from(*x) + carry;
        *x = v as u32;
        carry = v >> 32;
    }
}

/// `a >= b` for equal-length little-endian limbs.
fn ge(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// `a -= b` (equal lengths), returning the borrow.
fn sub_assign(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = 0u64;
    for (x, y) in a.iter_mut().zip(b) {
        let d = u64::from(*x).wrapping_sub(u64::from(*y)).wrapping_sub(borrow);
        *x = d as u32;
        borrow = (d >> 63) & 1;
    }
    borrow != 0
}

/// The cross products `Σ a_i·a_j` (i < j) of a square into `p` (zeroed, `2s + 2` limbs). Row
/// `i` adds `a_i·a_(i+1..)` at `2i + 1`; rows are taken two at a time, so one pass over their
/// overlap adds both and each limb of `p` is loaded and stored once for the pair (as in
/// [`RsaVerifier::reduce`]).
fn cross_products(a: &[u32], p: &mut [u32]) {
    const LOW: u64 = 0xffff_ffff;
    let s = a.len();
    let limb = |k: usize| u64::from(a.get(k).copied().unwrap_or(0));
    let mut i = 0;
    // Pairs while row i + 1 has at least one product (i + 1 ≤ s − 2).
    while i + 3 <= s {
        let (ai, ai1) = (limb(i), limb(i + 1));
        let Some(row) = p.get_mut(2 * i + 1..) else { return };
        // Limbs 2i + 1 and 2i + 2 get row i only.
        let mut c0 = 0u64;
        for (k, x) in [(0, limb(i + 1)), (1, limb(i + 2))] {
            let Some(pk) = row.get_mut(k) else { return };
            let v = u64::from(*pk) + ai * x + c0;
            *pk = v as u32;
            c0 = v >> 32;
        }
        // From 2i + 3 both rows: a_i·a_(k−i) and a_(i+1)·a_(k−i−1).
        let mut c1 = 0u64;
        let (Some(body), Some(x0s), Some(x1s)) =
            (row.get_mut(2..s - i - 1), a.get(i + 3..), a.get(i + 2..s - 1))
        else {
            return;
        };
        for ((pk, &x0), &x1) in body.iter_mut().zip(x0s).zip(x1s) {
            let v0 = u64::from(*pk) + ai * u64::from(x0) + c0;
            c0 = v0 >> 32;
            let v1 = (v0 & LOW) + ai1 * u64::from(x1) + c1;
            c1 = v1 >> 32;
            *pk = v1 as u32;
        }
        // Limb i + s: row i's carry and row i + 1's last product; then row i + 1's carry.
        let v1 = c0 + ai1 * limb(s - 1) + c1;
        if let Some(pk) = row.get_mut(s - i - 1) {
            *pk = v1 as u32;
        }
        if let Some(pk) = row.get_mut(s - i) {
            *pk = (v1 >> 32) as u32;
        }
        i += 2;
    }
    // The last rows (at most one product each) one at a time.
    while i < s {
        let (Some(row), Some(rest)) = (p.get_mut(2 * i + 1..i + s + 1), a.get(i + 1..)) else { return };
        let ai = limb(i);
        let mut carry = 0u64;
        for (pj, &aj) in row.iter_mut().zip(rest) {
            let v = u64::from(*pj) + ai * u64::from(aj) + carry;
            *pj = v as u32;
            carry = v >> 32;
        }
        if let Some(top) = row.last_mut() {
            *top = carry as u32;
        }
        i += 1;
    }
}

impl RsaVerifier {
    /// Prepares a key from its big-endian modulus and exponent. `None` for an even or tiny
    /// modulus, or an exponent that is even, below 3 or above 2⁶⁴.
    pub fn new(n_be: &[u8], e_be: &[u8]) -> Option<RsaVerifier> {
        let n_be = n_be.get(n_be.iter().position(|b| *b != 0)?..)?;
        let e_be = e_be.get(e_be.iter().position(|b| *b != 0)?..)?;
        if n_be.len() < 64 || e_be.len() > 8 {
            return None;
        }
        let e = e_be.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        if e < 3 || e % 2 == 0 || n_be.last().is_none_or(|b| b % 2 == 0) {
            return None;
        }
        let k = n_be.len();
        let limbs = k.div_ceil(4);
        let n = limbs_from_be(n_be, limbs);
        // Newton iteration for n⁻¹ mod 2³² (n is odd), then negate.
        let n0 = *n.first()?;
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let n0inv = inv.wrapping_neg();
        // R² mod n by doubling 1 (2·32·limbs times), reducing as it goes.
        let mut r2 = vec![0u32; limbs];
        *r2.first_mut()? = 1;
        for _ in 0..(64 * limbs) {
            let mut carry = 0u32;
            for x in r2.iter_mut() {
                let v = (*x >> 31) & 1;
                *x = (*x << 1) | carry;
                carry = v;
            }
            if carry == 1 || ge(&r2, &n) {
                sub_assign(&mut r2, &n);
            }
        }
        Some(RsaVerifier { n, n0inv, r2, e, k })
    }

    /// Modulus size in bits (rounded to bytes).
    pub fn bits(&self) -> usize {
        self.k * 8
    }

    /// Exact modulus size in bits.
    fn mod_bits(&self) -> usize {
        let top = self.n.last().copied().unwrap_or(0);
        (self.n.len() * 32).saturating_sub(top.leading_zeros() as usize)
    }

    /// Montgomery reduction: `out = p·R⁻¹ mod n` for a double-width `p` (`2s + 2` limbs,
    /// clobbered). Rows are reduced two at a time: the second row's factor is known from the
    /// first two limbs, and one pass then adds both rows, loading and storing each limb of `p`
    /// once instead of twice (about a quarter faster under V8). Each row is taken as a slice
    /// once, so the inner loop is a plain zip with no per-limb bounds checks; these loops are
    /// the whole cost of a verification.
    fn reduce(&self, p: &mut [u32], out: &mut [u32]) {
        const LOW: u64 = 0xffff_ffff;
        let s = self.n.len();
        let (n0, n1) =
            (u64::from(self.n.first().copied().unwrap_or(0)), u64::from(self.n.get(1).copied().unwrap_or(0)));
        let mut i = 0;
        while i + 1 < s {
            let Some(row) = p.get_mut(i..) else { return };
            let (r0, r1) = (row.first().copied().unwrap_or(0), row.get(1).copied().unwrap_or(0));
            let m0 = u64::from(r0.wrapping_mul(self.n0inv));
            // Limb i + 1 after the first row's two lowest products: it sets the second factor.
            let low = u64::from(r0) + m0 * n0;
            let next = u64::from(r1) + m0 * n1 + (low >> 32);
            let m1 = u64::from((next as u32).wrapping_mul(self.n0inv));
            let (mut c0, mut c1, mut prev) = (0u64, 0u64, 0u64);
            for (pj, &nj) in row.iter_mut().zip(&self.n) {
                // Limb i + j gets m0·n_j (first row) and m1·n_(j−1) (second row).
                let v0 = u64::from(*pj) + m0 * u64::from(nj) + c0;
                c0 = v0 >> 32;
                let v1 = (v0 & LOW) + m1 * prev + c1;
                c1 = v1 >> 32;
                *pj = v1 as u32;
                prev = u64::from(nj);
            }
            let Some(top) = row.get_mut(s) else { return };
            let v0 = u64::from(*top) + c0;
            let v1 = (v0 & LOW) + m1 * prev + c1;
            *top = v1 as u32;
            add_carry(row.get_mut(s + 1..).unwrap_or_default(), (v0 >> 32) + (v1 >> 32));
            i += 2;
        }
        if i < s {
            // An odd limb count: the last row alone.
            let Some(row) = p.get_mut(i..) else { return };
            let m = u64::from(row.first().copied().unwrap_or(0).wrapping_mul(self.n0inv));
            let mut carry = 0u64;
            for (pj, &nj) in row.iter_mut().zip(&self.n) {
                let v = u64::from(*pj) + m * u64::from(nj) + carry;
                *pj = v as u32;
                carry = v >> 32;
            }
            add_carry(row.get_mut(s..).unwrap_or_default(), carry);
        }
        let Some(result) = p.get(s..2 * s) else { return };
        out.copy_from_slice(result);
        if p.get(2 * s).copied().unwrap_or(0) != 0 || ge(out, &self.n) {
            sub_assign(out, &self.n);
        }
    }

    /// `out = a·b·R⁻¹ mod n`; `p` is scratch of `2s + 2` limbs.
    fn mont_mul(&self, a: &[u32], b: &[u32], out: &mut [u32], p: &mut [u32]) {
        let s = self.n.len();
        p.fill(0);
        for (i, &ai) in a.iter().enumerate() {
            let Some(row) = p.get_mut(i..i + s + 1) else { return };
            let ai = u64::from(ai);
            let mut carry = 0u64;
            for (pj, &bj) in row.iter_mut().zip(b) {
                let v = u64::from(*pj) + ai * u64::from(bj) + carry;
                *pj = v as u32;
                carry = v >> 32;
            }
            if let Some(top) = row.last_mut() {
                *top = carry as u32;
            }
        }
        self.reduce(p, out);
    }

    /// `out = a²·R⁻¹ mod n`: cross products once, doubled, plus the squares, which saves
    /// about a quarter of the multiplications of [`Self::mont_mul`].
    fn mont_sqr(&self, a: &[u32], out: &mut [u32], p: &mut [u32]) {
        let s = self.n.len();
        p.fill(0);
        cross_products(a, p);
        // Double the cross products.
        let mut high = 0u32;
        for x in p.iter_mut().take(2 * s) {
            let v = *x;
            *x = (v << 1) | high;
            high = v >> 31;
        }
        // Add the squares a_i² at 2i.
        for (i, &ai) in a.iter().enumerate() {
            let sq = u64::from(ai) * u64::from(ai);
            let Some(row) = p.get_mut(2 * i..) else { return };
            let mut carry = sq;
            for x in row.iter_mut() {
                if carry == 0 {
                    break;
                }
                let v = u64::from(*x) + (carry & 0xffff_ffff);
                *x = v as u32;
                carry = (carry >> 32) + (v >> 32);
            }
        }
        self.reduce(p, out);
    }

    /// `s^e mod n` as `k` big-endian bytes; `None` when `s >= n`.
    fn public_op(&self, sig: &[u8]) -> Option<Vec<u8>> {
        let s = self.n.len();
        let x = limbs_from_be(sig, s);
        if ge(&x, &self.n) {
            return None;
        }
        let mut t = vec![0u32; 2 * s + 2];
        let mut xm = vec![0u32; s];
        self.mont_mul(&x, &self.r2, &mut xm, &mut t); // to Montgomery form
        let mut acc = xm.clone();
        let mut tmp = vec![0u32; s];
        // Left-to-right square and multiply over the bits below the top one. e is odd, so the
        // last step multiplies by s: done with the plain s, that product also leaves Montgomery
        // form (xR · x · R⁻¹ = x·x), which saves the conversion multiplication.
        let top = 63 - self.e.leading_zeros();
        for bit in (0..top).rev() {
            self.mont_sqr(&acc, &mut tmp, &mut t);
            std::mem::swap(&mut acc, &mut tmp);
            if bit == 0 {
                self.mont_mul(&acc, &x, &mut tmp, &mut t);
            } else if (self.e >> bit) & 1 == 1 {
                self.mont_mul(&acc, &xm, &mut tmp, &mut t);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        let mut out = vec![0u8; self.k];
        for (i, b) in out.iter_mut().rev().enumerate() {
            *b = (tmp.get(i / 4).copied().unwrap_or(0) >> (8 * (i % 4))) as u8;
        }
        Some(out)
    }

    /// Whether `signature` is a valid RSASSA-PKCS1-v1_5 signature of `message`.
    pub fn verify(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        // The signature is exactly k bytes (RFC 8017 §8.2.2 step 1).
        if signature.len() != self.k {
            return false;
        }
        let Some(em) = self.public_op(signature) else { return false };
        let prefix = hash.prefix();
        let digest = hash.digest(message);
        let t_len = prefix.len() + digest.len();
        if self.k < t_len + 11 {
            return false;
        }
        let mut expected = Vec::with_capacity(self.k);
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(self.k - t_len - 1, 0xff);
        expected.push(0x00);
        expected.extend_from_slice(prefix);
        expected.extend_from_slice(&digest);
        em == expected
    }
}

impl RsaVerifier {
    /// Whether `signature` is a valid RSASSA-PSS signature of `message`, with MGF1 over `hash`
    /// and a salt of the hash's length (RFC 7518 §3.5).
    pub fn verify_pss(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        if signature.len() != self.k {
            return false;
        }
        let Some(m) = self.public_op(signature) else { return false };
        // emBits = modBits - 1; EM is the last emLen bytes of the k-byte result.
        let em_bits = self.mod_bits().saturating_sub(1);
        let em_len = em_bits.div_ceil(8);
        let Some(split) = self.k.checked_sub(em_len) else { return false };
        let (lead, em) = m.split_at(split);
        if lead.iter().any(|b| *b != 0) {
            return false;
        }
        let h_len = hash.len();
        let s_len = h_len;
        if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
            return false;
        }
        let db_len = em_len - h_len - 1;
        let (masked_db, rest) = em.split_at(db_len);
        let Some(h) = rest.get(..h_len) else { return false };
        let zero_bits = 8 * em_len - em_bits;
        let top_mask = 0xffu8.checked_shl(8 - zero_bits as u32).unwrap_or(0);
        if masked_db.first().is_some_and(|b| b & top_mask != 0) {
            return false;
        }
        let mut db: Vec<u8> = masked_db.iter().zip(hash.mgf1(h, db_len)).map(|(a, b)| a ^ b).collect();
        if let Some(first) = db.first_mut() {
            *first &= !top_mask;
        }
        // DB = PS (zeros) || 0x01 || salt.
        let ps_len = db_len - s_len - 1;
        let (ps, tail) = db.split_at(ps_len);
        if ps.iter().any(|b| *b != 0) || tail.first() != Some(&0x01) {
            return false;
        }
        let salt = tail.get(1..).unwrap_or_default();
        let m_hash = hash.digest(message);
        let h2 = hash.digest_parts(&[&[0u8; 8], &m_hash, salt]);
        h2 == h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `s^e mod n` against an independent big-integer library, for many `s` and several
    /// exponents, with the fixture modulus (2048 bits), a 2080-bit and a 4096-bit one.
    #[test]
    fn modexp_matches_an_independent_bignum() {
        use base64::Engine;
        use num_bigint_dig::BigUint;
        let jwks: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/jwt/jwks.json")).unwrap();
        let n2048 = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["n"].as_str().unwrap())
            .unwrap();
        // A 4096-bit odd modulus (not a real key; the arithmetic does not care).
        let n4096: Vec<u8> = (0..512u32)
            .map(|i| {
                (i.wrapping_mul(2654435761) >> 13) as u8
                    | if i == 0 { 0x80 } else { 0 }
                    | if i == 511 { 1 } else { 0 }
            })
            .collect();
        // 2080 bits: an odd limb count (65), so reduction ends with a single row.
        let mut n2080 = n4096[..260].to_vec();
        n2080[259] |= 1;
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for n in [n2048, n2080, n4096] {
            for e in [3u64, 17, 65537, 0xffff_ffff_ffff_fff1] {
                let v = RsaVerifier::new(&n, &e.to_be_bytes()).unwrap();
                let big_n = BigUint::from_bytes_be(&n);
                for _ in 0..20 {
                    let s: Vec<u8> = (0..n.len())
                        .map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            seed as u8
                        })
                        .collect();
                    let big_s = BigUint::from_bytes_be(&s);
                    let got = v.public_op(&s);
                    if big_s >= big_n {
                        assert!(got.is_none());
                        continue;
                    }
                    let want = big_s.modpow(&BigUint::from(e), &big_n).to_bytes_be();
                    let mut want_padded = vec![0u8; n.len() - want.len()];
                    want_padded.extend_from_slice(&want);
                    assert_eq!(got.unwrap(), want_padded, "e = {e}");
                }
            }
        }
    }

    #[test]
    fn refuses_unusable_keys() {
        let n = [0xffu8; 256];
        assert!(RsaVerifier::new(&n, &[1, 0, 1]).is_some());
        assert!(RsaVerifier::new(&n, &[2]).is_none(), "even e");
        assert!(RsaVerifier::new(&n, &[1]).is_none(), "e = 1");
        let mut even = n;
        even[255] = 0xfe;
        assert!(RsaVerifier::new(&even, &[3]).is_none(), "even n");
        assert!(RsaVerifier::new(&[0xff; 16], &[3]).is_none(), "tiny n");
        assert!(RsaVerifier::new(&[0; 256], &[3]).is_none());
        assert!(RsaVerifier::new(&n, &[0; 4]).is_none());
    }

    #[test]
    fn rejects_wrong_lengths_and_out_of_range_signatures() {
        let n = [0xffu8; 256];
        let v = RsaVerifier::new(&n, &[1, 0, 1]).unwrap();
        assert!(!v.verify(Hash::Sha256, b"m", &[1u8; 255]));
        assert!(!v.verify(Hash::Sha256, b"m", &[0xffu8; 256]), "s = n");
        assert!(!v.verify(Hash::Sha256, b"m", &[0u8; 256]));
        assert_eq!(v.bits(), 2048);
    }
}
