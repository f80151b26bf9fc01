//! ECDSA verification on P-256 (`ES256`) and P-384 (`ES384`), written for speed inside wasm.
//!
//! Verification computes `u₁·G + u₂·Q` and compares its x-coordinate with `r` (FIPS 186-5
//! §6.4.2). General-purpose elliptic-curve crates do this with constant-time code, 64-bit
//! limbs (whose 64×64→128-bit products wasm lacks and emulates with a call) and a
//! double-and-add loop: over a millisecond per ES256 check under V8. Here:
//!
//! - field elements are 32-bit limbs in Montgomery form, multiplied by product scanning with
//!   the modulus as a compile-time constant (its zero and one limbs fold away);
//! - both points are fixed before the token arrives: `G` always, `Q` when the key set is
//!   loaded. Each gets a table of `j·2^(w·i)·P` (one row per `w`-bit window, `j` = 1..2^w − 1)
//!   in affine form, so a check is at most one mixed addition per non-zero window of each
//!   scalar and no doubling at all. `Q`'s windows are 4 bits (a 60 KiB table per P-256 key);
//!   `G`'s, built once per VM, are 8 bits for P-256 and 6 for P-384, which halves (P-256) or
//!   cuts by a third (P-384) the additions for `u₁·G`;
//! - the x-coordinate is compared in projective form (`X = r·Z²`), so no field inversion;
//!   `s⁻¹ mod n` is a binary extended Euclid.
//!
//! Everything here is public (keys, signatures, messages), so nothing needs constant time.
//! Indexing is into fixed-size arrays by loop counters bounded by their length; the indexing
//! lint is allowed for this module only.
#![allow(clippy::indexing_slicing)]

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256, Sha384};

/// Parses a big-endian hex constant into little-endian 32-bit limbs (compile time only).
const fn hex<const N: usize>(s: &str) -> [u32; N] {
    let s = s.as_bytes();
    assert!(s.len() == 8 * N);
    let mut out = [0u32; N];
    let mut i = 0;
    while i < s.len() {
        let c = s[s.len() - 1 - i];
        assert!(c.is_ascii_hexdigit());
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        };
        out[i / 8] |= (v as u32) << (4 * (i % 8));
        i += 1;
    }
    out
}

/// `a >= b`.
#[inline(always)]
fn ge<const N: usize>(a: &[u32; N], b: &[u32; N]) -> bool {
    let mut i = N;
    while i > 0 {
        i -= 1;
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

/// `a -= b`, returning the borrow.
#[inline(always)]
fn sub_in_place<const N: usize>(a: &mut [u32; N], b: &[u32; N]) -> bool {
    let mut borrow = 0u64;
    for i in 0..N {
        let d = u64::from(a[i]).wrapping_sub(u64::from(b[i])).wrapping_sub(borrow);
        a[i] = d as u32;
        borrow = (d >> 63) & 1;
    }
    borrow != 0
}

/// `a += b`, returning the carry.
#[inline(always)]
fn add_in_place<const N: usize>(a: &mut [u32; N], b: &[u32; N]) -> bool {
    let mut carry = 0u64;
    for i in 0..N {
        let v = u64::from(a[i]) + u64::from(b[i]) + carry;
        a[i] = v as u32;
        carry = v >> 32;
    }
    carry != 0
}

fn is_zero<const N: usize>(a: &[u32; N]) -> bool {
    a.iter().all(|x| *x == 0)
}

fn one<const N: usize>() -> [u32; N] {
    let mut o = [0u32; N];
    o[0] = 1;
    o
}

/// An odd prime modulus with its Montgomery constants, all computed at compile time.
pub struct Modulus<const N: usize> {
    m: [u32; N],
    /// `-m⁻¹ mod 2³²`.
    n0inv: u32,
    /// `R² mod m`, `R = 2^(32N)`.
    r2: [u32; N],
}

impl<const N: usize> Modulus<N> {
    const fn new(m: [u32; N]) -> Self {
        let mut inv: u32 = 1;
        let mut i = 0;
        while i < 5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(m[0].wrapping_mul(inv)));
            i += 1;
        }
        // R² mod m by doubling 1, 64N times, reducing as it goes.
        let mut r = [0u32; N];
        r[0] = 1;
        let mut step = 0;
        while step < 64 * N {
            let mut carry = 0u32;
            let mut j = 0;
            while j < N {
                let top = r[j] >> 31;
                r[j] = (r[j] << 1) | carry;
                carry = top;
                j += 1;
            }
            // r ≥ m (or it overflowed): subtract m.
            let mut geq = carry == 1;
            if !geq {
                geq = true;
                let mut k = N;
                while k > 0 {
                    k -= 1;
                    if r[k] != m[k] {
                        geq = r[k] > m[k];
                        break;
                    }
                }
            }
            if geq {
                let mut borrow = 0u64;
                let mut k = 0;
                while k < N {
                    let d = (r[k] as u64).wrapping_sub(m[k] as u64).wrapping_sub(borrow);
                    r[k] = d as u32;
                    borrow = (d >> 63) & 1;
                    k += 1;
                }
            }
            step += 1;
        }
        Modulus { m, n0inv: inv.wrapping_neg(), r2: r }
    }

    /// Montgomery multiplication by product scanning: the products of a column are
    /// independent, and the column sum is kept as low and high words (`lo + hi·2³²`), which
    /// cannot overflow. With `SQUARE`, `b` is `a` and the symmetric products are computed once.
    #[inline(always)]
    fn mont<const SQUARE: bool>(&self, a: &[u32; N], b: &[u32; N]) -> [u32; N] {
        let m = &self.m;
        let mut q = [0u32; N];
        let mut t = [0u32; N];
        let (mut lo, mut hi) = (0u64, 0u64);
        macro_rules! acc {
            ($lo:ident, $hi:ident, $x:expr, $y:expr) => {{
                let p = u64::from($x) * u64::from($y);
                $lo += p & 0xffff_ffff;
                $hi += p >> 32;
            }};
        }
        // Column c of a·b, for the indices j of `a` in `from..to` (pairing with c − j).
        macro_rules! column {
            ($c:expr, $from:expr, $to:expr) => {{
                let (c, from, to) = ($c, $from, $to);
                if SQUARE {
                    let (mut clo, mut chi) = (0u64, 0u64);
                    // j < c − j: the cross products, doubled; then the square a_(c/2)².
                    for j in from..to.min(c.div_ceil(2)) {
                        acc!(clo, chi, a[j], a[c - j]);
                    }
                    lo += clo << 1;
                    hi += chi << 1;
                    if c % 2 == 0 && c / 2 >= from && c / 2 < to {
                        acc!(lo, hi, a[c / 2], a[c / 2]);
                    }
                } else {
                    for j in from..to {
                        acc!(lo, hi, a[j], b[c - j]);
                    }
                }
            }};
        }
        for k in 0..N {
            column!(k, 0, k + 1);
            for j in 0..k {
                acc!(lo, hi, q[j], m[k - j]);
            }
            let qk = (lo as u32).wrapping_mul(self.n0inv);
            q[k] = qk;
            acc!(lo, hi, qk, m[0]);
            lo = (lo >> 32) + hi;
            hi = 0;
        }
        for k in 0..N {
            column!(N + k, k + 1, N);
            for j in k + 1..N {
                acc!(lo, hi, q[j], m[N + k - j]);
            }
            t[k] = lo as u32;
            lo = (lo >> 32) + hi;
            hi = 0;
        }
        if lo != 0 || ge(&t, m) {
            sub_in_place(&mut t, m);
        }
        t
    }

    #[inline(always)]
    fn add(&self, a: &[u32; N], b: &[u32; N]) -> [u32; N] {
        let mut t = *a;
        if add_in_place(&mut t, b) || ge(&t, &self.m) {
            sub_in_place(&mut t, &self.m);
        }
        t
    }

    #[inline(always)]
    fn sub(&self, a: &[u32; N], b: &[u32; N]) -> [u32; N] {
        let mut t = *a;
        if sub_in_place(&mut t, b) {
            add_in_place(&mut t, &self.m);
        }
        t
    }

    /// `a⁻¹ mod m` for a plain (not Montgomery) `a` in `[1, m)`, by the binary extended
    /// Euclidean algorithm; `None` for zero.
    fn inv(&self, a: &[u32; N]) -> Option<[u32; N]> {
        if is_zero(a) || ge(a, &self.m) {
            return None;
        }
        let (mut u, mut v) = (*a, self.m);
        let (mut x1, mut x2) = (one::<N>(), [0u32; N]);
        let unit = one::<N>();
        // Each round halves u or v, or shrinks the larger: at most 4·32N rounds for a prime m.
        for _ in 0..(8 * 32 * N) {
            if u == unit {
                return Some(x1);
            }
            if v == unit {
                return Some(x2);
            }
            if is_zero(&u) || is_zero(&v) {
                return None;
            }
            while u[0] & 1 == 0 {
                shr1(&mut u, false);
                self.half(&mut x1);
            }
            while v[0] & 1 == 0 {
                shr1(&mut v, false);
                self.half(&mut x2);
            }
            if ge(&u, &v) {
                sub_in_place(&mut u, &v);
                x1 = self.sub(&x1, &x2);
            } else {
                sub_in_place(&mut v, &u);
                x2 = self.sub(&x2, &x1);
            }
        }
        None
    }

    /// `x / 2 mod m`.
    fn half(&self, x: &mut [u32; N]) {
        if x[0] & 1 == 0 {
            shr1(x, false);
        } else {
            let carry = add_in_place(x, &self.m);
            shr1(x, carry);
        }
    }
}

/// `x >>= 1`, shifting `top` in at the most significant bit.
fn shr1<const N: usize>(x: &mut [u32; N], top: bool) {
    let mut high = u32::from(top);
    let mut i = N;
    while i > 0 {
        i -= 1;
        let low = x[i] & 1;
        x[i] = (x[i] >> 1) | (high << 31);
        high = low;
    }
}

/// A curve `y² = x³ − 3x + b` over a prime field, with a prime group order (cofactor 1).
pub struct Curve<const N: usize> {
    p: Modulus<N>,
    n: Modulus<N>,
    b: [u32; N],
    gx: [u32; N],
    gy: [u32; N],
}

/// P-256's parameters (FIPS 186-5, SEC 2 `secp256r1`).
const P256_CURVE: Curve<8> = Curve {
    p: Modulus::new(hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff")),
    n: Modulus::new(hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")),
    b: hex("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"),
    gx: hex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
    gy: hex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"),
};

/// P-384's parameters (FIPS 186-5, SEC 2 `secp384r1`).
const P384_CURVE: Curve<12> = Curve {
    p: Modulus::new(hex(
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    )),
    n: Modulus::new(hex(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    )),
    b: hex(
        "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    ),
    gx: hex(
        "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
    ),
    gy: hex(
        "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
    ),
};

/// A point in Jacobian coordinates (`x = X/Z²`, `y = Y/Z³`), Montgomery form; `Z = 0` is the
/// point at infinity.
#[derive(Clone, Copy)]
struct Jacobian<const N: usize> {
    x: [u32; N],
    y: [u32; N],
    z: [u32; N],
}

/// An affine point, Montgomery form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine<const N: usize> {
    x: [u32; N],
    y: [u32; N],
}

/// A window table of a point `P`: `j·2^(w·i)·P` for every window `i` of a scalar and every
/// `j` in `1..2^w`, affine, row after row.
pub struct Table<const N: usize> {
    /// Window width in bits.
    bits: u32,
    points: Vec<Affine<N>>,
}

impl<const N: usize> Table<N> {
    /// Entries per row.
    fn per_row(&self) -> usize {
        (1usize << self.bits) - 1
    }
}

/// A curve api-guard verifies on: its parameters, its generator's table and its hash.
pub trait Params<const N: usize>: Sized + 'static {
    /// The curve's parameters.
    const CURVE: Curve<N>;
    /// The generator's window table, built once per VM when the first key of the curve loads.
    fn generator() -> Option<&'static Table<N>>;
    /// The hash of the message as a big-endian integer of the curve's size (SHA-256 for P-256,
    /// SHA-384 for P-384, as JWA pairs them).
    fn hash(message: &[u8]) -> Option<[u32; N]>;
}

/// ES256's curve.
pub struct P256;
/// ES384's curve.
pub struct P384;

impl Params<8> for P256 {
    const CURVE: Curve<8> = P256_CURVE;
    fn generator() -> Option<&'static Table<8>> {
        // 8-bit windows: 32 additions for u₁·G instead of 64, for a 510 KiB table per VM.
        static TABLE: OnceLock<Option<Table<8>>> = OnceLock::new();
        TABLE.get_or_init(|| Ops::<P256, 8>::table(&P256_CURVE.gx, &P256_CURVE.gy, 8)).as_ref()
    }
    fn hash(message: &[u8]) -> Option<[u32; 8]> {
        limbs(&Sha256::digest(message))
    }
}

impl Params<12> for P384 {
    const CURVE: Curve<12> = P384_CURVE;
    fn generator() -> Option<&'static Table<12>> {
        // 6-bit windows: 64 additions for u₁·G instead of 96, for a 378 KiB table per VM.
        static TABLE: OnceLock<Option<Table<12>>> = OnceLock::new();
        TABLE.get_or_init(|| Ops::<P384, 12>::table(&P384_CURVE.gx, &P384_CURVE.gy, 6)).as_ref()
    }
    fn hash(message: &[u8]) -> Option<[u32; 12]> {
        limbs(&Sha384::digest(message))
    }
}

/// Arithmetic modulo one curve's `p` (`Base`) or `n` (`Order`): one out-of-line copy of each
/// operation per modulus, with the modulus a constant inside it. Addition and subtraction are
/// calls too: inlined, their unrolled limbs and conditional corrections made the point
/// formulas and the verification several times larger (TurboFan compiles all of it before the
/// first request) for no speed a check could measure.
trait Arith<const N: usize> {
    const M: Modulus<N>;

    #[inline(never)]
    fn mul(a: &[u32; N], b: &[u32; N]) -> [u32; N] {
        Self::M.mont::<false>(a, b)
    }

    #[inline(never)]
    fn sqr(a: &[u32; N]) -> [u32; N] {
        Self::M.mont::<true>(a, a)
    }

    #[inline(never)]
    fn add(a: &[u32; N], b: &[u32; N]) -> [u32; N] {
        Self::M.add(a, b)
    }

    #[inline(never)]
    fn sub(a: &[u32; N], b: &[u32; N]) -> [u32; N] {
        Self::M.sub(a, b)
    }

    fn to_mont(a: &[u32; N]) -> [u32; N] {
        Self::mul(a, &Self::M.r2)
    }

    fn to_plain(a: &[u32; N]) -> [u32; N] {
        Self::mul(a, &one())
    }

    fn inv(a: &[u32; N]) -> Option<[u32; N]> {
        Self::M.inv(a)
    }
}

/// The base field of curve `C`.
struct Base<C>(PhantomData<C>);
/// The scalars of curve `C` (modulo its group order).
struct Order<C>(PhantomData<C>);

impl<C: Params<N>, const N: usize> Arith<N> for Base<C> {
    const M: Modulus<N> = C::CURVE.p;
}

impl<C: Params<N>, const N: usize> Arith<N> for Order<C> {
    const M: Modulus<N> = C::CURVE.n;
}

/// Big-endian bytes (exactly `4N`) to limbs.
fn limbs<const N: usize>(bytes: &[u8]) -> Option<[u32; N]> {
    if bytes.len() != 4 * N {
        return None;
    }
    let mut out = [0u32; N];
    for (i, chunk) in bytes.rchunks(4).enumerate() {
        let mut w = [0u8; 4];
        w.copy_from_slice(chunk);
        out[i] = u32::from_be_bytes(w);
    }
    Some(out)
}

/// The point arithmetic of curve `C`.
struct Ops<C, const N: usize>(PhantomData<C>);

impl<C: Params<N>, const N: usize> Ops<C, N> {
    fn infinity() -> Jacobian<N> {
        Jacobian { x: [0; N], y: [0; N], z: [0; N] }
    }

    /// Doubling (`dbl-2001-b`, for a = −3).
    #[inline(never)]
    fn double(p: &Jacobian<N>) -> Jacobian<N> {
        if is_zero(&p.z) || is_zero(&p.y) {
            return Self::infinity();
        }
        let delta = Base::<C>::sqr(&p.z);
        let gamma = Base::<C>::sqr(&p.y);
        let beta = Base::<C>::mul(&p.x, &gamma);
        let t = Base::<C>::mul(&Base::<C>::sub(&p.x, &delta), &Base::<C>::add(&p.x, &delta));
        let alpha = Base::<C>::add(&Base::<C>::add(&t, &t), &t);
        let beta2 = Base::<C>::add(&beta, &beta);
        let beta4 = Base::<C>::add(&beta2, &beta2);
        let beta8 = Base::<C>::add(&beta4, &beta4);
        let x3 = Base::<C>::sub(&Base::<C>::sqr(&alpha), &beta8);
        let yz = Base::<C>::add(&p.y, &p.z);
        let z3 = Base::<C>::sub(&Base::<C>::sub(&Base::<C>::sqr(&yz), &gamma), &delta);
        let g2 = Base::<C>::sqr(&gamma);
        let g4 = Base::<C>::add(&g2, &g2);
        let g8 = Base::<C>::add(&g4, &g4);
        let y3 =
            Base::<C>::sub(&Base::<C>::mul(&alpha, &Base::<C>::sub(&beta4, &x3)), &Base::<C>::add(&g8, &g8));
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// `p + q` for an affine `q` (`madd-2007-bl`), with the special cases.
    #[inline(never)]
    fn add_affine(p: &Jacobian<N>, q: &Affine<N>) -> Jacobian<N> {
        if is_zero(&p.z) {
            return Jacobian { x: q.x, y: q.y, z: Base::<C>::to_mont(&one()) };
        }
        let z1z1 = Base::<C>::sqr(&p.z);
        let u2 = Base::<C>::mul(&q.x, &z1z1);
        let s2 = Base::<C>::mul(&q.y, &Base::<C>::mul(&p.z, &z1z1));
        let h = Base::<C>::sub(&u2, &p.x);
        let s = Base::<C>::sub(&s2, &p.y);
        if is_zero(&h) {
            return if is_zero(&s) { Self::double(p) } else { Self::infinity() };
        }
        let r = Base::<C>::add(&s, &s);
        let hh = Base::<C>::sqr(&h);
        let hh2 = Base::<C>::add(&hh, &hh);
        let i = Base::<C>::add(&hh2, &hh2);
        let j = Base::<C>::mul(&h, &i);
        let v = Base::<C>::mul(&p.x, &i);
        let x3 = Base::<C>::sub(&Base::<C>::sub(&Base::<C>::sqr(&r), &j), &Base::<C>::add(&v, &v));
        let y1j = Base::<C>::mul(&p.y, &j);
        let y3 = Base::<C>::sub(&Base::<C>::mul(&r, &Base::<C>::sub(&v, &x3)), &Base::<C>::add(&y1j, &y1j));
        let zh = Base::<C>::add(&p.z, &h);
        let z3 = Base::<C>::sub(&Base::<C>::sub(&Base::<C>::sqr(&zh), &z1z1), &hh);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// `p + q` (`add-2007-bl`), with the special cases.
    fn add(p: &Jacobian<N>, q: &Jacobian<N>) -> Jacobian<N> {
        if is_zero(&p.z) {
            return *q;
        }
        if is_zero(&q.z) {
            return *p;
        }
        let z1z1 = Base::<C>::sqr(&p.z);
        let z2z2 = Base::<C>::sqr(&q.z);
        let u1 = Base::<C>::mul(&p.x, &z2z2);
        let u2 = Base::<C>::mul(&q.x, &z1z1);
        let s1 = Base::<C>::mul(&p.y, &Base::<C>::mul(&q.z, &z2z2));
        let s2 = Base::<C>::mul(&q.y, &Base::<C>::mul(&p.z, &z1z1));
        let h = Base::<C>::sub(&u2, &u1);
        let s = Base::<C>::sub(&s2, &s1);
        if is_zero(&h) {
            return if is_zero(&s) { Self::double(p) } else { Self::infinity() };
        }
        let r = Base::<C>::add(&s, &s);
        let h2 = Base::<C>::add(&h, &h);
        let i = Base::<C>::sqr(&h2);
        let j = Base::<C>::mul(&h, &i);
        let v = Base::<C>::mul(&u1, &i);
        let x3 = Base::<C>::sub(&Base::<C>::sub(&Base::<C>::sqr(&r), &j), &Base::<C>::add(&v, &v));
        let s1j = Base::<C>::mul(&s1, &j);
        let y3 = Base::<C>::sub(&Base::<C>::mul(&r, &Base::<C>::sub(&v, &x3)), &Base::<C>::add(&s1j, &s1j));
        let zz = Base::<C>::add(&p.z, &q.z);
        let z3 = Base::<C>::mul(&Base::<C>::sub(&Base::<C>::sub(&Base::<C>::sqr(&zz), &z1z1), &z2z2), &h);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// Whether the affine point (plain coordinates below p) is on the curve.
    fn on_curve(x: &[u32; N], y: &[u32; N]) -> bool {
        if ge(x, &C::CURVE.p.m) || ge(y, &C::CURVE.p.m) {
            return false;
        }
        let (xm, ym, bm) = (Base::<C>::to_mont(x), Base::<C>::to_mont(y), Base::<C>::to_mont(&C::CURVE.b));
        let rhs = Base::<C>::add(&Base::<C>::mul(&Base::<C>::sqr(&xm), &xm), &bm);
        let three_x = Base::<C>::add(&Base::<C>::add(&xm, &xm), &xm);
        Base::<C>::sqr(&ym) == Base::<C>::sub(&rhs, &three_x)
    }

    /// The window table of an affine point with `bits`-bit windows (see [`Table`]),
    /// normalised to affine with one field inversion for the whole table. `None` if a point
    /// degenerates (not for a point of the prime-order group).
    fn table(x: &[u32; N], y: &[u32; N], bits: u32) -> Option<Table<N>> {
        let rows = (32 * N).div_ceil(bits as usize);
        let per = (1usize << bits) - 1;
        let mut jac: Vec<Jacobian<N>> = Vec::with_capacity(rows * per);
        let mut base =
            Jacobian { x: Base::<C>::to_mont(x), y: Base::<C>::to_mont(y), z: Base::<C>::to_mont(&one()) };
        for _ in 0..rows {
            let start = jac.len();
            jac.push(base);
            jac.push(Self::double(&base));
            for j in 2..per {
                let next = Self::add(&jac[start + j - 1], &base);
                jac.push(next);
            }
            // 2^bits·base: double the entry 2^(bits−1)·base.
            base = Self::double(&jac[start + (per >> 1)]);
        }
        // Batch inversion of the Z coordinates (Montgomery's trick).
        let mut prefix = Vec::with_capacity(jac.len());
        let mut acc = Base::<C>::to_mont(&one());
        for p in &jac {
            if is_zero(&p.z) {
                return None;
            }
            acc = Base::<C>::mul(&acc, &p.z);
            prefix.push(acc);
        }
        // acc is (Π Z)·R: invert the plain product, then back into Montgomery form.
        let mut inv = Base::<C>::to_mont(&Base::<C>::inv(&Base::<C>::to_plain(&acc))?);
        let mut points = vec![Affine { x: [0; N], y: [0; N] }; jac.len()];
        for k in (0..jac.len()).rev() {
            let zinv = if k > 0 { Base::<C>::mul(&inv, &prefix[k - 1]) } else { inv };
            inv = Base::<C>::mul(&inv, &jac[k].z);
            let zinv2 = Base::<C>::sqr(&zinv);
            let p = &jac[k];
            points[k] = Affine {
                x: Base::<C>::mul(&p.x, &zinv2),
                y: Base::<C>::mul(&p.y, &Base::<C>::mul(&zinv2, &zinv)),
            };
        }
        Some(Table { bits, points })
    }

    /// `Σ digitᵢ(u)·2^(w·i)·P` over the table of `P`, added into `acc`.
    #[inline(always)]
    fn add_multiple(acc: &mut Jacobian<N>, table: &Table<N>, u: &[u32; N]) {
        let (bits, per) = (table.bits as usize, table.per_row());
        for (i, row) in table.points.chunks_exact(per).enumerate() {
            let pos = bits * i;
            let (limb, shift) = (pos / 32, pos % 32);
            let mut window = u[limb] >> shift;
            if shift + bits > 32 && limb + 1 < N {
                window |= u[limb + 1] << (32 - shift);
            }
            let digit = (window as usize) & per;
            if digit != 0 {
                *acc = Self::add_affine(acc, &row[digit - 1]);
            }
        }
    }

    /// `a·b mod n` for plain scalars below n.
    #[inline(always)]
    fn scalar_mul(a: &[u32; N], b: &[u32; N]) -> [u32; N] {
        Order::<C>::mul(&Order::<C>::mul(a, b), &C::CURVE.n.r2)
    }
}

/// A public key prepared for verification: its window table.
pub struct VerifyingKey<C, const N: usize> {
    table: Arc<Table<N>>,
    curve: PhantomData<C>,
}

/// An ES256 key.
pub type P256Key = VerifyingKey<P256, 8>;
/// An ES384 key.
pub type P384Key = VerifyingKey<P384, 12>;

impl<C, const N: usize> Clone for VerifyingKey<C, N> {
    fn clone(&self) -> Self {
        VerifyingKey { table: Arc::clone(&self.table), curve: PhantomData }
    }
}

impl<C, const N: usize> std::fmt::Debug for VerifyingKey<C, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey(P-{})", 32 * N)
    }
}

impl<C: Params<N>, const N: usize> VerifyingKey<C, N> {
    /// A key from its affine coordinates (big-endian, `4N` bytes each), refused unless it is a
    /// point of the curve.
    pub fn new(x: &[u8], y: &[u8]) -> Option<Self> {
        let (x, y) = (limbs(x)?, limbs(y)?);
        if !Ops::<C, N>::on_curve(&x, &y) {
            return None;
        }
        // The generator's table is built with the first key, at load, not by a request.
        C::generator()?;
        Some(VerifyingKey { table: Arc::new(Ops::<C, N>::table(&x, &y, 4)?), curve: PhantomData })
    }

    /// Whether `signature` (`r‖s`, `4N` bytes each) is valid for `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Some(g) = C::generator() else { return false };
        if signature.len() != 8 * N {
            return false;
        }
        let (r, s) = signature.split_at(4 * N);
        let (Some(r), Some(s), Some(mut e)) = (limbs(r), limbs(s), C::hash(message)) else {
            return false;
        };
        let n = &C::CURVE.n.m;
        // 1 ≤ r, s < n.
        if is_zero(&r) || is_zero(&s) || ge(&r, n) || ge(&s, n) {
            return false;
        }
        if ge(&e, n) {
            sub_in_place(&mut e, n);
        }
        let Some(w) = Order::<C>::inv(&s) else { return false };
        let u1 = Ops::<C, N>::scalar_mul(&e, &w);
        let u2 = Ops::<C, N>::scalar_mul(&r, &w);
        let mut acc = Ops::<C, N>::infinity();
        Ops::<C, N>::add_multiple(&mut acc, g, &u1);
        Ops::<C, N>::add_multiple(&mut acc, &self.table, &u2);
        if is_zero(&acc.z) {
            return false;
        }
        // x = X/Z² ≡ r (mod n): x is r, or r + n when that is still below p.
        let zz = Base::<C>::sqr(&acc.z);
        if Base::<C>::mul(&Base::<C>::to_mont(&r), &zz) == acc.x {
            return true;
        }
        let mut rn = r;
        if add_in_place(&mut rn, n) || ge(&rn, &C::CURVE.p.m) {
            return false;
        }
        Base::<C>::mul(&Base::<C>::to_mont(&rn), &zz) == acc.x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint_dig::BigUint;

    fn big<const N: usize>(a: &[u32; N]) -> BigUint {
        BigUint::from_bytes_le(&a.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<_>>())
    }

    fn be<const N: usize>(a: &[u32; N]) -> Vec<u8> {
        a.iter().rev().flat_map(|l| l.to_be_bytes()).collect()
    }

    #[test]
    fn field_arithmetic_matches_an_independent_bignum() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u32
        };
        fn check<A: Arith<8>>(next: &mut impl FnMut() -> u32) {
            let f = &A::M;
            let m = big(&f.m);
            let r = BigUint::from(1u8) << 256;
            assert_eq!(big(&f.r2), (&r * &r) % &m);
            for i in 0..500 {
                let mut a: [u32; 8] = std::array::from_fn(|_| next());
                let mut b: [u32; 8] = std::array::from_fn(|_| next());
                if i % 10 == 0 {
                    a = f.m;
                    a[0] -= 1; // m − 1: the largest operand
                    b = a;
                }
                let (a, b) = (f.sub(&a, &[0; 8]), f.sub(&b, &[0; 8]));
                let (a, b) = (to8(&(big(&a) % &m)), to8(&(big(&b) % &m)));
                assert_eq!((big(&A::mul(&a, &b)) * &r) % &m, (big(&a) * big(&b)) % &m);
                assert_eq!((big(&A::sqr(&a)) * &r) % &m, (big(&a) * big(&a)) % &m);
                assert!(big(&A::mul(&a, &b)) < m && big(&A::sqr(&a)) < m);
                assert_eq!(big(&A::add(&a, &b)), (big(&a) + big(&b)) % &m);
                assert_eq!(big(&A::sub(&a, &b)), (big(&a) + &m - big(&b)) % &m);
                assert_eq!(A::to_plain(&A::to_mont(&a)), a);
                if big(&a) != BigUint::from(0u8) {
                    let inv = A::inv(&a).unwrap();
                    assert_eq!((big(&inv) * big(&a)) % &m, BigUint::from(1u8));
                }
            }
            assert!(A::inv(&[0; 8]).is_none());
            assert!(A::inv(&f.m).is_none());
        }
        check::<Base<P256>>(&mut next);
        check::<Order<P256>>(&mut next);
    }

    fn to8(x: &BigUint) -> [u32; 8] {
        let mut b = x.to_bytes_le();
        b.resize(32, 0);
        std::array::from_fn(|i| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]))
    }

    #[test]
    fn generator_is_on_the_curve() {
        assert!(Ops::<P256, 8>::on_curve(&P256_CURVE.gx, &P256_CURVE.gy));
        assert!(Ops::<P384, 12>::on_curve(&P384_CURVE.gx, &P384_CURVE.gy));
        let mut bad = P256_CURVE.gy;
        bad[0] ^= 1;
        assert!(!Ops::<P256, 8>::on_curve(&P256_CURVE.gx, &bad));
    }

    /// Table entries `j·2^(w·i)·P` against the RustCrypto `p256` crate's scalar
    /// multiplication: the generator's 8-bit table and a 4-bit key table.
    #[test]
    fn window_tables_match_p256() {
        use p256::elliptic_curve::ff::PrimeField;
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let g = P256::generator().unwrap();
        assert_eq!((g.bits, g.points.len()), (8, 32 * 255));
        // Q = 7·G, so its table is checked against (7·j·2^(4i))·G.
        let q = g.points[6];
        let q =
            Ops::<P256, 8>::table(&Base::<P256>::to_plain(&q.x), &Base::<P256>::to_plain(&q.y), 4).unwrap();
        assert_eq!((q.bits, q.points.len()), (4, 64 * 15));
        for (table, times, rows, cols) in [(g, 1u32, 5, 23), (&q, 7, 7, 4)] {
            for (i, row) in table.points.chunks_exact(table.per_row()).enumerate().step_by(rows) {
                for (j, point) in row.iter().enumerate().step_by(cols) {
                    let k = (BigUint::from(j as u32 + 1) * BigUint::from(times)) << (table.bits as usize * i);
                    let k = k % BigUint::from_bytes_be(&be(&P256_CURVE.n.m));
                    let mut kb = k.to_bytes_be();
                    while kb.len() < 32 {
                        kb.insert(0, 0);
                    }
                    let kb: [u8; 32] = kb.try_into().unwrap();
                    let scalar = p256::Scalar::from_repr(kb.into()).unwrap();
                    let want =
                        (p256::ProjectivePoint::GENERATOR * scalar).to_affine().to_encoded_point(false);
                    assert_eq!(
                        be(&Base::<P256>::to_plain(&point.x)),
                        &want.x().unwrap()[..],
                        "x of {j}+1·16^{i}"
                    );
                    assert_eq!(
                        be(&Base::<P256>::to_plain(&point.y)),
                        &want.y().unwrap()[..],
                        "y of {j}+1·16^{i}"
                    );
                }
            }
        }
    }
}
