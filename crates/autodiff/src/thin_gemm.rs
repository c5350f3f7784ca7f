//! y = a·b for a thin left operand (few rows, such as a batch of 20), with AVX-512 register
//! blocking written by hand, giving exactly matrixmultiply's bits in about half its time.
//!
//! Shape legend
//! - `a`: [M, K], any non-negative strides (a row-major batch, or the transpose of one)
//! - `b`: [K, N] with contiguous rows (a weight in our [in, out] layout)
//! - `y`: [M, N], row-major
//!
//! **Why.** matrixmultiply's AVX-512 kernel computes tiles of 16 × 16 and packs both operands
//! into panels first. A product with 20 rows is then one full tile of rows and one of which 4
//! are real (so 32 rows of multiply-adds for 20), and each weight is copied once more per call.
//! Here a tile is 4 rows × 64 columns: 16 accumulators of 16 floats, each step of k one
//! broadcast of a[i, k] per row against four vectors of b's row k, read in place. At
//! 20×200·200×784 that is 93–100 GFLOP/s against matrixmultiply's 46–53 (one thread,
//! `examples/thin_gemm.rs`).
//!
//! **The same bits.** matrixmultiply (on an AVX-512 machine) computes every y[i, j] as: for
//! each block of KC = 256 values of k, in order, one fused multiply-add chain from zero,
//! s = fma(a[i, k], b[k, j], s); the first block's s is y[i, j], each later block's is added
//! to it. This kernel does the same operations in the same order, so the results agree bit for
//! bit (tested over odd shapes, both layouts of a, and K across block boundaries). It runs only
//! where AVX-512F is present; everywhere else `None` sends the caller to matrixmultiply, so a
//! machine's numbers never depend on which path ran.
//!
//! **Unsafe.** The engine is otherwise free of `unsafe`. SIMD intrinsics that read memory take
//! raw pointers, and a function compiled for AVX-512 may only be called after checking that
//! the CPU has it; the module allows `unsafe` for these two things alone, each with its reason.

#![allow(unsafe_code)]

use ndarray::{Array2, ArrayView2};

/// Left operands with fewer rows than this take this kernel. From 128 rows on,
/// matrixmultiply's 16-row tiles waste nothing and its packing pays off (at 128×400·400×784 it
/// took 0.92 of this kernel's time, measured before this limit existed); this kernel takes
/// 0.88–0.99 of its time at 64–127 rows and 0.54–0.62 at 20 (`examples/thin_gemm.rs`, AMD EPYC,
/// one thread).
pub const THIN_ROWS: usize = 128;
/// A left operand whose rows are not contiguous (xᵀ in a weight gradient) takes this kernel
/// only up to this many rows: its values then sit a whole row of x apart, and at 100×20·20×200
/// the kernel took 1.19 of matrixmultiply's time (0.75 at 50×20·20×200).
pub const THIN_ROWS_STRIDED: usize = 64;

/// A right operand whose columns (not rows) are contiguous, such as Wᵀ in the backward pass's
/// dy·Wᵀ, is copied to rows first, which pays only up to this many rows of a: at
/// 20×784·784×200 the copy and this kernel took 135 µs against matrixmultiply's 168, at
/// 20×200·200×200 30 against 40; at 32 rows 200 against 177 (`examples/thin_gemm.rs`).
pub const THIN_ROWS_COPY: usize = 24;

/// Values of k per block: matrixmultiply's KC for f32, which fixes the order of the sums.
const KC: usize = 256;
/// Rows per tile.
const MR: usize = 4;
/// Columns per tile: four vectors of 16 floats.
const NR: usize = 64;

/// a·b by this kernel, or `None` where it does not apply or would not be faster (no AVX-512F,
/// M ≥ [`THIN_ROWS`] or, for a with non-contiguous rows, M > [`THIN_ROWS_STRIDED`]; b's rows
/// not contiguous, unless M ≤ [`THIN_ROWS_COPY`] and its columns are; an empty or
/// negative-strided operand): the caller then uses matrixmultiply, which gives the same values.
pub fn product(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Option<Array2<f32>> {
    if !has_avx512f() {
        return None;
    }
    let ((m, k), n) = (a.dim(), b.ncols());
    if b.strides()[1] != 1 && b.strides()[0] == 1 && (1..=THIN_ROWS_COPY).contains(&m) && n > 1 {
        return product(a, b.as_standard_layout().view());
    }
    let strides_ok = a.strides().iter().all(|&s| s >= 0) && b.strides()[1] == 1 && b.strides()[0] >= 0;
    let max_rows = if a.strides()[1] == 1 { THIN_ROWS - 1 } else { THIN_ROWS_STRIDED };
    if m == 0 || m > max_rows || k == 0 || n == 0 || !strides_ok || b.nrows() != k {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let mut y = vec![0.0f32; m * n];
        let sa = (a.strides()[0] as usize, a.strides()[1] as usize);
        let rsb = b.strides()[0] as usize;
        // SAFETY: the CPU has AVX-512F (checked first). `gemm_avx512` reads a only at (i, k)
        // with i < M, k < K and b only at (k, j) with k < K, j < N (masking the last columns),
        // all inside the two views, and writes y only at i·N + j inside its M·N values.
        unsafe { gemm_avx512(a.as_ptr(), sa, b.as_ptr(), rsb, &mut y, m, k, n) };
        Some(Array2::from_shape_vec((m, n), y).expect("M·N values"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// Whether this CPU has AVX-512F (the standard library caches the answer).
fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// y [M, N] = a·b: for each block of k, each 64-column strip of b, each 4-row tile of a (then
/// the 1 to 3 rows left, one at a time).
///
/// # Safety
/// The CPU must support AVX-512F; `a` (strides `sa`) must hold M × K values and `b` (row
/// stride `rsb`, contiguous rows) K × N values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gemm_avx512(
    a: *const f32,
    sa: (usize, usize),
    b: *const f32,
    rsb: usize,
    y: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    for k0 in (0..k).step_by(KC) {
        let block = Block { k0, kc: KC.min(k - k0), first: k0 == 0 };
        for j in (0..n).step_by(NR) {
            let cols = NR.min(n - j);
            let mut i = 0;
            while i + MR <= m {
                tile::<MR>(a, sa, b, rsb, y, n, i, j, cols, &block);
                i += MR;
            }
            for i in i..m {
                tile::<1>(a, sa, b, rsb, y, n, i, j, cols, &block);
            }
        }
    }
}

/// Which values of k a pass covers, and whether it is the first (which writes y instead of
/// adding to it).
#[cfg(target_arch = "x86_64")]
struct Block {
    k0: usize,
    kc: usize,
    first: bool,
}

/// One tile: rows i..i+R, columns j..j+cols (cols ≤ 64), k in the block.
///
/// acc[r][v] holds y[i + r, j + 16v .. j + 16v + 16]:
///   acc[r][v] ← fma(a[i + r, k], b[k, j + 16v ..], acc[r][v])  for k = k0, k0 + 1, …
/// then y ← acc (first block) or y ← y + acc.
///
/// # Safety
/// As [`gemm_avx512`], with i + R ≤ M and j + cols ≤ N.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const R: usize>(
    a: *const f32,
    (rsa, csa): (usize, usize),
    b: *const f32,
    rsb: usize,
    y: &mut [f32],
    n: usize,
    i: usize,
    j: usize,
    cols: usize,
    block: &Block,
) {
    use std::arch::x86_64::*;
    // Lane masks of the four vectors: all 16 lanes, or the columns left at the right edge.
    let masks: [__mmask16; 4] = std::array::from_fn(|v| {
        let left = cols.saturating_sub(16 * v).min(16);
        ((1u32 << left) - 1) as __mmask16
    });
    let mut acc = [[_mm512_setzero_ps(); 4]; R];
    for kk in block.k0..block.k0 + block.kc {
        // SAFETY: row kk < K of b; masked-off lanes are not read (AVX-512 masked loads do
        // not touch them), so nothing past column N is accessed.
        let row = b.add(kk * rsb + j);
        let bv = [
            _mm512_maskz_loadu_ps(masks[0], row),
            _mm512_maskz_loadu_ps(masks[1], row.add(16)),
            _mm512_maskz_loadu_ps(masks[2], row.add(32)),
            _mm512_maskz_loadu_ps(masks[3], row.add(48)),
        ];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: (i + r, kk) is inside a.
            let av = _mm512_set1_ps(*a.add((i + r) * rsa + kk * csa));
            for (acc_rv, bv) in acc_r.iter_mut().zip(&bv) {
                *acc_rv = _mm512_fmadd_ps(av, *bv, *acc_rv);
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let out_row = y.as_mut_ptr().add((i + r) * n + j);
        for (v, acc_rv) in acc_r.iter().enumerate() {
            if masks[v] == 0 {
                continue;
            }
            // SAFETY: lanes up to column j + cols ≤ N of row i + r < M, inside y.
            let dst = out_row.add(16 * v);
            let sum = if block.first { *acc_rv } else { _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], dst), *acc_rv) };
            _mm512_mask_storeu_ps(dst, masks[v], sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{s, Array2};

    use super::*;

    /// Values in [−2, 2) that exercise rounding (not small integers, whose sums are exact).
    fn filled(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            let h = (i * 7919 + j * 104_729 + seed * 15_485_863) % 1_000_003;
            (h as f32 / 1_000_003.0) * 4.0 - 2.0 + 1e-3 * (j as f32).sin()
        })
    }

    fn same_bits(x: &Array2<f32>, y: &Array2<f32>) -> bool {
        x.shape() == y.shape() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
    }

    #[test]
    fn agrees_with_matrixmultiply_bit_for_bit() {
        if !has_avx512f() {
            println!("no AVX-512F here: the kernel never runs, so there is nothing to compare");
            return;
        }
        let mut cases = 0;
        for &m in &[1, 3, 4, 5, 20, 21, 64, 127] {
            for &k in &[1, 7, 255, 256, 257, 600] {
                for &n in &[1, 15, 16, 17, 63, 64, 65, 200] {
                    let a = filled(m, k, 1);
                    let b = filled(k, n, 2);
                    let y = product(a.view(), b.view()).expect("a thin product");
                    assert!(same_bits(&y, &a.dot(&b)), "a·b differs at {m}×{k}·{k}×{n}");
                    cases += 1;
                    // a as the transpose of a row-major [K, M] (a weight gradient's xᵀ).
                    let at = filled(k, m, 3);
                    let Some(y) = product(at.t(), b.view()) else {
                        assert!(m > THIN_ROWS_STRIDED, "declined aᵀ·b at {m}×{k}·{k}×{n}");
                        continue;
                    };
                    assert!(same_bits(&y, &at.t().dot(&b)), "aᵀ·b differs at {m}×{k}·{k}×{n}");
                    cases += 1;
                }
            }
        }
        // b = wᵀ for a row-major w [N, K] (dy·Wᵀ in a backward pass): copied to rows first.
        for &(m, k, n) in &[(1, 9, 5), (20, 784, 200), (20, 50, 200), (24, 257, 65)] {
            let (a, w) = (filled(m, k, 8), filled(n, k, 9));
            let y = product(a.view(), w.t()).expect("a thin product of a transposed b");
            assert!(same_bits(&y, &a.dot(&w.t())), "a·wᵀ differs at {m}×{k}·{k}×{n}");
            cases += 1;
        }
        // b with rows longer than N: the left columns of a wider matrix.
        let (a, wide) = (filled(20, 300, 4), filled(300, 100, 5));
        let b = wide.slice(s![.., ..70]);
        assert!(same_bits(&product(a.view(), b).unwrap(), &a.dot(&b)));
        println!("{} products bit-identical to matrixmultiply", cases + 1);
    }

    #[test]
    fn infinities_and_nans_travel_as_in_matrixmultiply() {
        if !has_avx512f() {
            return;
        }
        let mut a = filled(5, 9, 6);
        let mut b = filled(9, 70, 7);
        a[[1, 2]] = f32::INFINITY;
        b[[4, 66]] = f32::NAN;
        b[[5, 3]] = f32::NEG_INFINITY;
        let (ours, theirs) = (product(a.view(), b.view()).unwrap(), a.dot(&b));
        assert!(ours.iter().any(|v| v.is_nan()) && ours.iter().any(|v| v.is_infinite()));
        for (p, q) in ours.iter().zip(&theirs) {
            assert_eq!(p.to_bits(), q.to_bits(), "{p} against {q}");
        }
    }

    #[test]
    fn declines_what_it_is_not_for() {
        let a = filled(THIN_ROWS, 8, 1);
        assert!(product(a.view(), filled(8, 8, 2).view()).is_none(), "too many rows");
        let xt = filled(8, THIN_ROWS_STRIDED + 1, 1); // xᵀ with 65 rows
        assert!(product(xt.t(), filled(8, 8, 2).view()).is_none(), "too many strided rows");
        let w = filled(8, 6, 3); // bᵀ: its rows are not contiguous, and 25 rows of a are too many
        assert!(product(filled(THIN_ROWS_COPY + 1, 6, 1).view(), w.t()).is_none(), "b transposed");
        assert!(product(filled(0, 8, 1).view(), filled(8, 8, 2).view()).is_none(), "no rows");
    }
}
