//! eˣ and ln(1 + u) written so that a loop over a slice vectorizes.
//!
//! The C library's `expf` and `log1pf` are opaque calls, one value at a time: in a training step
//! of the MLP, the 100,352 softplus and sigmoid values of the Bernoulli loss spent 11% of the
//! step inside them. The functions below are plain arithmetic on `f32` and its bits, with no
//! branches the compiler cannot turn into selects, so `-C target-cpu=native` runs them 8
//! values at a time.
//!
//! Both follow the classic Cephes single-precision routines: reduce the argument to a small
//! interval exactly, evaluate a short polynomial there, and rebuild the result from the
//! exponent (the coefficients are Cephes's). Measured against the f64 library functions on dense
//! grids over the ranges they are used on (`tests/fastmath.rs`), the largest errors are 0.70
//! ulp for eˣ, 1.34 for ln(1 + u), 1.47 for σ and 1.71 for softplus.

/// log₂ e
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two: a high part exact in few bits, so that n·LN2_HI has no rounding error,
/// and the small remainder (Cody–Waite reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Beyond these arguments 2ⁿ no longer fits the exponent bits of an f32 (n ≤ 127), or eˣ falls
/// below the smallest normal number.
const EXP_MAX: f32 = 88.0;
const EXP_MIN: f32 = -87.0;

/// eˣ, within a few ulp, for x in [−87, 88]; arguments outside are clamped to that interval,
/// so the result never overflows or becomes a denormal (e⁸⁸ ≈ 1.65·10³⁸, e^−87 ≈ 1.6·10⁻³⁸).
///
/// Write x = n·ln 2 + r with n an integer and |r| ≤ ½ ln 2; then eˣ = 2ⁿ · eʳ, where eʳ comes
/// from a degree-7 polynomial and 2ⁿ is built directly in the exponent bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let n = (x * LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = 1.987_569_1e-4_f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 1.666_666_5e-1)
        .mul_add(r, 0.5);
    let er = p.mul_add(r2, r) + 1.0;
    er * pow2(n)
}

/// The ELU, x for x > 0 and eˣ − 1 otherwise, without a call per value (libm's `expm1f` took
/// 18% of a ResNet VAE's training step). Near 0, eˣ − 1 would cancel: below |x| = 1/32 the
/// Taylor series x + x²/2 + x³/6 + x⁴/24 is used instead (its first omitted term, x⁵/120, is
/// under 10⁻⁸ of x there); over [−87, 0] the result is within 8.2 ulp of eˣ − 1
/// (`tests/fastmath.rs`).
#[inline(always)]
pub fn elu(x: f32) -> f32 {
    let neg = x.min(0.0);
    let series = neg * (1.0 + neg * (0.5 + neg * (1.0 / 6.0 + neg * (1.0 / 24.0))));
    let e = if neg > -1.0 / 32.0 { series } else { exp(neg) - 1.0 };
    if x > 0.0 {
        x
    } else {
        e
    }
}

/// 2ⁿ for an integral n in [−126, 127], built in the exponent bits.
///
/// The biased exponent n + 127 is an integer in [1, 254]. Adding 2²³ to it puts it in the low
/// mantissa bits of an f32 exactly (at that size the unit in the last place is 1), and a shift
/// by 23 moves it into the exponent field while the bits of 2²³ leave the word. This is the
/// float → integer conversion done in float arithmetic: Rust's `n as i32` saturates (NaN to 0,
/// large values to the bounds), which the compiler cannot map onto the vector instruction, so
/// it converted one lane at a time inside otherwise vectorized loops; without that, the K = 5000
/// evaluation of a tanh model got about 15% faster (docs/PERFORMANCE.md).
#[inline(always)]
pub fn pow2(n: f32) -> f32 {
    const MAGIC: f32 = 8_388_608.0 + 127.0; // 2²³ + the exponent bias
    f32::from_bits((n + MAGIC).to_bits() << 23)
}

/// ln x for a positive, normal, finite x (the only arguments it is given here: 1 + u with
/// u ≥ 0).
///
/// Write x = 2ᵉ · m with m in [√½, √2); then ln x = e·ln 2 + ln m, and ln(1 + f) with
/// f = m − 1 in [−0.29, 0.41] comes from a polynomial.
#[inline(always)]
fn ln_positive(x: f32) -> f32 {
    let bits = x.to_bits();
    // m in [1, 2) from the mantissa bits, e from the exponent bits.
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let e = ((bits >> 23) as i32 - 127) as f32;
    // Move m into [√½, √2) so that f = m − 1 is small on both sides.
    let big = m > std::f32::consts::SQRT_2;
    let (m, e) = if big { (m * 0.5, e + 1.0) } else { (m, e) };
    let f = m - 1.0;
    let f2 = f * f;
    let p = 7.037_683_6e-2_f32
        .mul_add(f, -1.151_461e-1)
        .mul_add(f, 1.167_699_9e-1)
        .mul_add(f, -1.242_014_1e-1)
        .mul_add(f, 1.424_932_3e-1)
        .mul_add(f, -1.666_805_7e-1)
        .mul_add(f, 2.000_071_4e-1)
        .mul_add(f, -2.499_999_4e-1)
        .mul_add(f, 3.333_333_3e-1);
    let y = p * f * f2 - 0.5 * f2 + e * LN2_LO;
    f + y + e * LN2_HI
}

/// ln(1 + u) for u ≥ 0, accurate also when u is tiny and 1 + u rounds to 1.
///
/// With w = 1 + u rounded, ln(1 + u) = ln w · u / (w − 1): the factor u / (w − 1) corrects
/// exactly the rounding of 1 + u (Goldberg's trick). When w rounds to 1, ln(1 + u) = u to
/// working precision.
#[inline(always)]
pub fn ln_1p(u: f32) -> f32 {
    let w = 1.0 + u;
    let d = w - 1.0;
    if d == 0.0 {
        u
    } else {
        ln_positive(w) * (u / d)
    }
}

/// σ(x) = 1 / (1 + e^(−x)); with e = e^(−|x|) ≤ 1 it is 1/(1 + e) for x ≥ 0 and e/(1 + e)
/// for x < 0, so nothing overflows.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let num = if x >= 0.0 { 1.0 } else { e };
    num / (1.0 + e)
}

/// softplus(x) = ln(1 + eˣ) = max(x, 0) + ln(1 + e^(−|x|)): finite for every finite x.
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + ln_1p(exp(-x.abs()))
}

/// Below this |x|, tanh comes from its Taylor series; above, from eˣ.
const TANH_SERIES_MAX: f32 = 0.55;

/// tanh(x), within a few ulp for every finite x, in straight-line code that vectorizes (the
/// library's `tanhf` is a scalar call: it took 44% of an importance-weighted evaluation of a
/// tanh model).
///
/// For |x| < 0.55 the odd Taylor series x − x³/3 + 2x⁵/15 − … through x¹⁵: the first term left
/// out is below 0.1 ulp there. Above, tanh|x| = 1 − 2/(e^(2|x|) + 1), where e^(2|x|) ≥ 3 keeps
/// the subtraction from losing more than a bit; for |x| > 9, 1 − tanh|x| < 2⁻²⁵ and the
/// result rounds to ±1 (e^(2|x|) is clamped by [`exp`], never infinite).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let a2 = a * a;
    let series = (-929_569.0f32 / 638_512_875.0)
        .mul_add(a2, 21_844.0 / 6_081_075.0)
        .mul_add(a2, -1_382.0 / 155_925.0)
        .mul_add(a2, 62.0 / 2_835.0)
        .mul_add(a2, -17.0 / 315.0)
        .mul_add(a2, 2.0 / 15.0)
        .mul_add(a2, -1.0 / 3.0)
        * (a2 * a)
        + a;
    let from_exp = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    let t = if a < TANH_SERIES_MAX { series } else { from_exp };
    t.copysign(x)
}
