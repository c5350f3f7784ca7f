//! y = a·b for a thin left operand (few rows, such as a batch of 20), and for a right operand
//! that is filled one strip at a time ([`Strips`], the convolutions' implicit im2col), with
//! register blocking written by hand for AVX-512 and for AVX2 with FMA, giving exactly
//! matrixmultiply's bits.
//!
//! Shape legend
//! - `a`: [M, K], any non-negative strides (a row-major batch, or the transpose of one)
//! - `b`: [K, N] with contiguous rows (a weight in our [in, out] layout)
//! - `y`: [M, N], row-major
//!
//! **Why.** matrixmultiply computes tiles of 16 × 16 (AVX-512) or 8 × 8 (AVX2) and packs both
//! operands into panels first. A product with 20 rows is then one full tile of rows and one of
//! which 4 are real (so 32 rows of multiply-adds for 20), and each weight is copied once more
//! per call. Here a tile is 4 rows × 64 columns (AVX-512: 16 accumulators of 16 floats) or
//! 6 rows × 16 columns (AVX2: 12 accumulators of 8), each step of k one broadcast of a[i, k]
//! per row against b's row k, read in place. At 20×200·200×784 the AVX-512 tile ran at 93–100
//! GFLOP/s against matrixmultiply's 46–53 (one thread, `examples/thin_gemm.rs`). An AVX-512
//! tile narrower than 64 columns (N = 16, or the right edge: the last 16 of 784 columns)
//! computes only the vectors that hold some of them.
//!
//! **Tall tiles.** From 24 rows on, the AVX-512 tile is 12 rows × 32 columns instead (24
//! accumulators). Its block of b, 256 values of k by 32 columns (32 KB), stays in the L1 cache
//! while every tile of rows runs over it, where the 4 × 64 tile's block (64 KB) comes back from
//! L2 for every 4 rows; and 24 sums in flight keep both FMA ports of an Intel core busy, where
//! 16 leave idle cycles. On an Intel Xeon (one thread, `examples/thin_gemm.rs`) it takes
//! 0.83–1.05 of matrixmultiply's time at 64–127 rows, where the 4 × 64 tile took 1.06–1.39, and
//! 0.92–1.17 at weight gradients of 100–200 rows × 1000 (1.07–1.59).
//!
//! **Strips.** [`product_of_strips`] runs the same tiles over a b that is written one strip at
//! a time, 256 rows by one tile's width, into a buffer that stays in cache: how a convolution
//! multiplies by its im2col matrix without storing it (`crate::conv`). At the conv model's
//! shapes this takes 0.49–1.21 of matrixmultiply's time on the stored matrix (AVX-512, one
//! thread, `examples/thin_gemm.rs`; 1.21 where k has only 16 values).
//!
//! **The same bits.** matrixmultiply (both its AVX-512 and its AVX2 kernel) computes every
//! y[i, j] as: for each block of KC = 256 values of k, in order, one fused multiply-add chain
//! from zero, s = fma(a[i, k], b[k, j], s); the first block's s is y[i, j], each later block's
//! is added to it. Both tiles here do the same operations in the same order, so the results
//! agree bit for bit with matrixmultiply and with each other (tested over odd shapes, both
//! layouts of a, and K across block boundaries). At [`Simd::Portable`] `None` sends the caller
//! to matrixmultiply, which then picks its own kernel for the CPU.
//!
//! **Memory.** The kernels see the operands as slices that end at their last element. The
//! right edge of a strip is read and written with masked loads and stores, which touch no
//! masked-off lane; the address of a vector that starts past the edge is formed with
//! `wrapping_add`, which is defined for any offset, and never dereferenced.

use ndarray::{Array2, ArrayView2};

use super::Simd;

/// Left operands with fewer than this many rows take these kernels. From 128 rows on,
/// matrixmultiply's 16-row tiles waste nothing and its packing pays off (at 128×400·400×784 it
/// took 0.92 of the AVX-512 tile's time); the tile takes 0.88–0.99 of matrixmultiply's time at
/// 64–127 rows and 0.54–0.62 at 20 (`examples/thin_gemm.rs`, AMD EPYC, AVX-512, one thread).
pub const THIN_ROWS: usize = 128;
/// A left operand whose rows are not contiguous (xᵀ in a weight gradient) takes these kernels
/// only up to this many rows. Since tiles narrower than 64 columns compute only the vectors
/// they need, the AVX-512 tile takes 0.70–0.90 of matrixmultiply's time at 50–200 rows × 20
/// (a Burda weight gradient), 0.84–0.94 at 100–200 × 1000 (IWAE, k = 50), and 1.00–1.03 at
/// 400–784 × 64 (the MLP's, left to matrixmultiply); before, 1.19 at 100×20·20×200, and the
/// limit was 64 (`examples/thin_gemm.rs`, one thread).
pub const THIN_ROWS_STRIDED: usize = 256;

/// The AVX2 tile takes left operands of at most this many rows (contiguous or not). Against
/// matrixmultiply's AVX2 kernel (8 × 8 tiles) it took 0.66–0.96 of the time at 20 rows, but
/// 0.74–1.09 at 24 and 0.80–1.17 at 32 (its loads of b in place are unaligned, which matters
/// more or less from one process to the next; docs/PERFORMANCE.md).
pub const THIN_ROWS_AVX2: usize = 20;

/// A right operand whose columns (not rows) are contiguous, such as Wᵀ in the backward pass's
/// dy·Wᵀ, is copied to rows first, which pays only up to this many rows of a: at
/// 20×784·784×200 the copy and the AVX-512 tile took 135 µs against matrixmultiply's 168, at
/// 20×200·200×200 30 against 40; at 32 rows 200 against 177 (`examples/thin_gemm.rs`, with
/// ndarray's copy, before the copy went through registers at AVX-512).
pub const THIN_ROWS_COPY: usize = 24;

/// Values of k per block: matrixmultiply's KC for f32, which fixes the order of the sums.
const KC: usize = 256;
/// Columns of an AVX-512 tile: four vectors of 16 floats.
const NR_512: usize = 64;
/// Columns of an AVX2 tile: two vectors of 8 floats.
const NR_256: usize = 16;

/// a·b by the process's level ([`super::simd`]), or `None` where these kernels do not apply;
/// see [`product_at`].
pub fn product(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Option<Array2<f32>> {
    product_at(super::simd(), a, b)
}

/// a·b by the tile of `level`, or `None` where it does not apply or would not be faster
/// ([`Simd::Portable`]; more rows than the level's tile takes: up to [`THIN_ROWS`] − 1, or
/// [`THIN_ROWS_STRIDED`] for a with non-contiguous rows, on AVX-512, [`THIN_ROWS_AVX2`] on
/// AVX2; b's rows not contiguous, unless M ≤ [`THIN_ROWS_COPY`] and its columns are; an empty
/// or negative-strided operand): the caller then uses matrixmultiply, which gives the same
/// values.
///
/// Panics if the CPU does not support `level`.
pub fn product_at(level: Simd, a: ArrayView2<f32>, b: ArrayView2<f32>) -> Option<Array2<f32>> {
    assert!(level.supported(), "kernels::gemm: this CPU does not support {}", level.name());
    let m = a.nrows();
    let max_rows = match level {
        Simd::Portable => return None,
        Simd::Avx2 => THIN_ROWS_AVX2,
        Simd::Avx512 if a.strides()[1] == 1 => THIN_ROWS - 1,
        Simd::Avx512 => THIN_ROWS_STRIDED,
    };
    if m > max_rows {
        return None;
    }
    if b.strides()[1] != 1 && b.strides()[0] == 1 && (1..=THIN_ROWS_COPY).contains(&m) && b.ncols() > 1 {
        return tiled(level, a, rows_of(level, b).view());
    }
    tiled(level, a, b)
}

/// b [K, N] whose columns are contiguous (b = Wᵀ for a row-major W [N, K], as in the backward
/// pass's dy·Wᵀ), copied to a row-major array: the same values, rows contiguous. The copy
/// moves blocks through registers, 16 × 16 at AVX-512 and 8 × 8 at AVX2 (loads of W's rows, a
/// transpose by shuffles, stores of the result's rows); ndarray's element-by-element copy of
/// the transposed view, which a non-contiguous Wᵀ takes, took 97–107 µs for a 784 × 200
/// weight, 11% of a Burda step.
fn rows_of(level: Simd, b: ArrayView2<f32>) -> Array2<f32> {
    let (k, n) = b.dim();
    let w = b.reversed_axes(); // [N, K]
    #[cfg(target_arch = "x86_64")]
    if let (Simd::Avx512 | Simd::Avx2, Some(src)) = (level, w.as_slice()) {
        let mut out = vec![0.0f32; k * n];
        // SAFETY: `product_at` asserted that the CPU supports the level; src holds N·K values
        // and out K·N.
        match level {
            Simd::Avx512 => unsafe { x86::transpose_avx512(src, n, k, &mut out) },
            _ => unsafe { x86::transpose_avx2(src, n, k, &mut out) },
        }
        return Array2::from_shape_vec((k, n), out).expect("K·N values");
    }
    let _ = (level, w);
    b.as_standard_layout().into_owned()
}

/// The part of out [K, N] = srcᵀ (src row-major [N, K]) that the register blocks leave: with
/// the blocks covering rows i < n0 and values j < k0 of src, the last K − k0 values of its first
/// n0 rows and all of its last N − n0 rows, value by value.
fn transpose_edges(src: &[f32], n: usize, k: usize, (n0, k0): (usize, usize), out: &mut [f32]) {
    for i in 0..n {
        let from = if i < n0 { k0 } else { 0 };
        for j in from..k {
            out[j * n + i] = src[i * k + j];
        }
    }
}

/// a·b by the tile of `level` (not `Portable`), whatever the number of rows, or `None` if an
/// operand is empty, has a negative stride, or b's rows are not contiguous.
fn tiled(level: Simd, a: ArrayView2<f32>, b: ArrayView2<f32>) -> Option<Array2<f32>> {
    let ((m, k), n) = (a.dim(), b.ncols());
    let strides_ok = a.strides().iter().all(|&s| s >= 0) && b.strides()[1] == 1 && b.strides()[0] >= 0;
    if m == 0 || k == 0 || n == 0 || !strides_ok || b.nrows() != k {
        return None;
    }
    let ((a_mem, sa), rsb) = (memory_of(a), b.strides()[0] as usize);
    // SAFETY: as in `memory_of`, for b's K rows of N.
    let b_mem = unsafe { std::slice::from_raw_parts(b.as_ptr(), (k - 1) * rsb + n) };
    let ops = Operands { a: a_mem, sa, b: b_mem, rsb, m, k, n, ldy: n, accumulate: false };
    let mut y = vec![0.0f32; m * n];
    run(level, &ops, &mut y);
    Some(Array2::from_shape_vec((m, n), y).expect("M·N values"))
}

/// The memory of a non-empty view a [M, K] with non-negative strides, from its first element to
/// its last, and its strides: a[i, k] is `mem[i·s.0 + k·s.1]`.
fn memory_of<'a>(a: ArrayView2<'a, f32>) -> (&'a [f32], (usize, usize)) {
    let ((m, k), s) = (a.dim(), (a.strides()[0] as usize, a.strides()[1] as usize));
    debug_assert!(m > 0 && k > 0 && a.strides().iter().all(|&s| s >= 0));
    // SAFETY: a view's elements lie in one allocation, and with non-negative strides the first
    // is at as_ptr() and the last (i = M − 1, k = K − 1) (M − 1)·s.0 + (K − 1)·s.1 values after
    // it, so the slice covers exactly the memory between them.
    let mem = unsafe { std::slice::from_raw_parts(a.as_ptr(), (m - 1) * s.0 + (k - 1) * s.1 + 1) };
    (mem, s)
}

/// A right operand b [K, N] that is never stored whole: the product asks it for one strip at
/// a time, so that a convolution's im2col matrix exists only as the strip the tiles are reading
/// (an *implicit GEMM*; `crate::conv`).
pub trait Strips: Sync {
    /// K and N.
    fn dim(&self) -> (usize, usize);
    /// Writes b[k0 + t, j0 + u] to `out[t·cols + u]`, for t < kc and u < cols
    /// (`out` holds kc·cols values).
    fn fill(&self, k0: usize, kc: usize, j0: usize, cols: usize, out: &mut [f32]);
}

/// a·b for a right operand given by strips, at the process's level; see [`product_of_strips_at`].
pub fn product_of_strips(a: ArrayView2<f32>, b: &impl Strips) -> Array2<f32> {
    product_of_strips_at(super::simd(), a, b)
}

/// a·b, with b filled one strip at a time: for each block of 256 values of k and each strip
/// of one tile's width (64 columns at AVX-512, 16 at AVX2), b's strip [kc, ≤ 64] is written
/// into a buffer that stays in cache, and the thin products' tiles run over every row of a
/// against it. The sums are taken in the same order as every other path here, so the result
/// is matrixmultiply's bit for bit.
///
/// At [`Simd::Portable`] (or for an a with negative strides) b is filled whole and the product
/// is matrixmultiply's. Panics if the CPU does not support `level`, or if a's columns are not
/// b's rows.
pub fn product_of_strips_at(level: Simd, a: ArrayView2<f32>, b: &impl Strips) -> Array2<f32> {
    assert!(level.supported(), "kernels::gemm: this CPU does not support {}", level.name());
    let ((m, k), (kb, n)) = (a.dim(), b.dim());
    assert_eq!(k, kb, "product_of_strips: a has {k} columns, b {kb} rows");
    let width = match level {
        Simd::Avx512 => NR_512,
        Simd::Avx2 => NR_256,
        Simd::Portable => 0,
    };
    if width == 0 || a.strides().iter().any(|&s| s < 0) || m == 0 || k == 0 || n == 0 {
        let mut whole = vec![0.0f32; k * n];
        b.fill(0, k, 0, n, &mut whole);
        return a.dot(&ArrayView2::from_shape((k, n), &whole).expect("K·N values"));
    }
    let (a_mem, sa) = memory_of(a);
    let mut y = vec![0.0f32; m * n];
    let mut strip = vec![0.0f32; KC.min(k) * width];
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        // The columns k0..k0 + kc of a: from offset k0·sa.1 to the end of the last row's block.
        let a_block = &a_mem[k0 * sa.1..][..(m - 1) * sa.0 + (kc - 1) * sa.1 + 1];
        for j0 in (0..n).step_by(width) {
            let cols = width.min(n - j0);
            let strip = &mut strip[..kc * cols];
            b.fill(k0, kc, j0, cols, strip);
            let ops = Operands { a: a_block, sa, b: strip, rsb: cols, m, k: kc, n: cols, ldy: n, accumulate: k0 > 0 };
            // y[:, j0..]: (M − 1)·N + cols values from offset j0 lie inside y's M·N.
            run(level, &ops, &mut y[j0..]);
        }
    }
    Array2::from_shape_vec((m, n), y).expect("M·N values")
}

/// The two operands as slices with their strides, and the product's dimensions.
struct Operands<'a> {
    /// a[i, k] is `a[i·sa.0 + k·sa.1]`.
    a: &'a [f32],
    sa: (usize, usize),
    /// b[k, j] is `b[k·rsb + j]`.
    b: &'a [f32],
    rsb: usize,
    m: usize,
    k: usize,
    n: usize,
    /// y[i, j] is `y[i·ldy + j]`.
    ldy: usize,
    /// Whether the product is added to y's values (a later block of k of a larger product)
    /// instead of overwriting them.
    accumulate: bool,
}

impl Operands<'_> {
    /// a[i, k], checked against the slice only in debug builds (the tiles call it with i < M,
    /// k < K, which the slice covers by construction).
    #[inline(always)]
    fn a_at(&self, i: usize, k: usize) -> f32 {
        let idx = i * self.sa.0 + k * self.sa.1;
        debug_assert!(idx < self.a.len());
        // SAFETY: i < M and k < K, so idx ≤ (M − 1)·sa.0 + (K − 1)·sa.1 < a.len().
        unsafe { *self.a.get_unchecked(idx) }
    }
}

/// Runs the tile of `level` (not `Portable`) over y.
fn run(level: Simd, ops: &Operands, y: &mut [f32]) {
    debug_assert!(y.len() >= (ops.m - 1) * ops.ldy + ops.n);
    match level {
        // SAFETY: `product_at` asserted that the CPU supports the level (the tests call
        // `tiled` only with supported levels).
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 => unsafe { x86::gemm_avx512(ops, y) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { x86::gemm_avx2(ops, y) },
        _ => unreachable!("no tile at {}", level.name()),
    }
}

/// One tile's share of the work: rows i..i + rows and columns j..j + cols of y, over the values
/// k0..k0 + kc of k, and whether they are the first (which writes y instead of adding to it).
#[derive(Clone, Copy)]
struct Tile {
    i: usize,
    rows: usize,
    j: usize,
    cols: usize,
    k0: usize,
    kc: usize,
    first: bool,
}

/// Walks y in tiles: for each block of k, each strip of `nr` columns, and the rows cut into
/// the fewest tiles of at most `mr` rows, as even as they come (20 rows in tiles of up to 6:
/// 5, 5, 5, 5), calls `tile`.
#[inline(always)]
fn for_each_tile(ops: &Operands, mr: usize, nr: usize, mut tile: impl FnMut(&Tile)) {
    let (m, k, n) = (ops.m, ops.k, ops.n);
    let tiles = m.div_ceil(mr);
    for k0 in (0..k).step_by(KC) {
        let (kc, first) = (KC.min(k - k0), k0 == 0 && !ops.accumulate);
        for j in (0..n).step_by(nr) {
            let cols = nr.min(n - j);
            for t in 0..tiles {
                let (i, end) = (m * t / tiles, m * (t + 1) / tiles);
                tile(&Tile { i, rows: end - i, j, cols, k0, kc, first });
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{for_each_tile, transpose_edges, Operands, Tile, NR_256, NR_512};

    /// Rows of an AVX-512 tile (its columns: [`NR_512`], four vectors of 16 floats).
    const MR_512: usize = 4;
    /// Left operands of at least this many rows take the tall AVX-512 tile instead.
    pub(super) const TALL_ROWS: usize = 24;
    /// Rows and columns of the tall AVX-512 tile: 12 × 2 accumulators of 16 floats, 2 vectors
    /// of b and a broadcast fill 27 of the 32 zmm registers, and a block of b (256 values of k
    /// × 32 columns, 32 KB) stays in the L1 cache while every tile of rows runs over it.
    const MR_TALL: usize = 12;
    const NR_TALL: usize = 32;
    /// Rows and vectors of 8 floats of an AVX2 tile: 12 accumulators, 2 vectors of b and a
    /// broadcast fill 15 of the 16 ymm registers.
    const MR_256: usize = 6;
    const V_256: usize = NR_256 / 8;

    /// y = a·b in tiles of up to 4 × 64, or of up to 12 × 32 from [`TALL_ROWS`] rows on.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; y holds at least (M − 1)·ldy + N values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm_avx512(ops: &Operands, y: &mut [f32]) {
        if ops.m >= TALL_ROWS {
            // Tiles of 8 to 12 rows (M ≥ 24 rows cut evenly into tiles of at most 12).
            for_each_tile(ops, MR_TALL, NR_TALL, |t| match t.cols > 16 {
                true => tall_tile_avx512::<2>(ops, y, t),
                false => tall_tile_avx512::<1>(ops, y, t),
            });
            return;
        }
        // A tile of fewer than 64 columns (a narrow product, or the right edge) computes only
        // the vectors that hold some of them.
        for_each_tile(ops, MR_512, NR_512, |t| match (t.rows, t.cols.div_ceil(16)) {
            (4, 4) => tile_avx512::<4, 4>(ops, y, t),
            (4, 3) => tile_avx512::<4, 3>(ops, y, t),
            (4, 2) => tile_avx512::<4, 2>(ops, y, t),
            (4, _) => tile_avx512::<4, 1>(ops, y, t),
            (3, 4) => tile_avx512::<3, 4>(ops, y, t),
            (3, 3) => tile_avx512::<3, 3>(ops, y, t),
            (3, 2) => tile_avx512::<3, 2>(ops, y, t),
            (3, _) => tile_avx512::<3, 1>(ops, y, t),
            (2, 4) => tile_avx512::<2, 4>(ops, y, t),
            (2, 3) => tile_avx512::<2, 3>(ops, y, t),
            (2, 2) => tile_avx512::<2, 2>(ops, y, t),
            (2, _) => tile_avx512::<2, 1>(ops, y, t),
            (_, 4) => tile_avx512::<1, 4>(ops, y, t),
            (_, 3) => tile_avx512::<1, 3>(ops, y, t),
            (_, 2) => tile_avx512::<1, 2>(ops, y, t),
            (_, _) => tile_avx512::<1, 1>(ops, y, t),
        });
    }

    /// A tall tile of V vectors: [`tile_avx512`] with R = the tile's rows, 8 to 12 (M ≥
    /// [`TALL_ROWS`] = 24 rows cut evenly into tiles of at most 12). The tile writes R rows, so
    /// R must be exactly the tile's: any other height is refused.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn tall_tile_avx512<const V: usize>(ops: &Operands, y: &mut [f32], t: &Tile) {
        match t.rows {
            12 => tile_avx512::<12, V>(ops, y, t),
            11 => tile_avx512::<11, V>(ops, y, t),
            10 => tile_avx512::<10, V>(ops, y, t),
            9 => tile_avx512::<9, V>(ops, y, t),
            8 => tile_avx512::<8, V>(ops, y, t),
            rows => unreachable!("a tall tile of {rows} rows (at least {TALL_ROWS} rows make tiles of 8 to 12)"),
        }
    }

    /// One AVX-512 tile: rows i..i+R, columns j..j+cols (cols ≤ 16·V ≤ 64), k in the block.
    ///
    /// acc[r][v] holds y[i + r, j + 16v .. j + 16v + 16]:
    ///   acc[r][v] ← fma(a[i + r, k], b[k, j + 16v ..], acc[r][v])  for k = k0, k0 + 1, …
    /// then y ← acc (first block) or y ← y + acc.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn tile_avx512<const R: usize, const V: usize>(ops: &Operands, y: &mut [f32], t: &Tile) {
        let Tile { i, j, cols, k0, kc, first, .. } = *t;
        debug_assert!(t.rows == R && i + R <= ops.m && j + cols <= ops.n && cols <= 16 * V && V <= NR_512 / 16);
        // Lane masks of the V vectors: all 16 lanes, or the columns left at the right edge.
        let masks: [__mmask16; V] = std::array::from_fn(|v| {
            let left = cols.saturating_sub(16 * v).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for kk in k0..k0 + kc {
            let row = ops.b.as_ptr().wrapping_add(kk * ops.rsb + j);
            // SAFETY: lane l of vector v is b[kk, j + 16v + l], inside b's slice whenever its
            // mask bit is set (j + 16v + l < j + cols ≤ N, kk < K); masked-off lanes are not
            // accessed, and `wrapping_add` forms the addresses of the others without UB.
            let bv: [__m512; V] =
                std::array::from_fn(|v| unsafe { _mm512_maskz_loadu_ps(masks[v], row.wrapping_add(16 * v)) });
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(ops.a_at(i + r, kk));
                for (acc_rv, bv) in acc_r.iter_mut().zip(&bv) {
                    *acc_rv = _mm512_fmadd_ps(av, *bv, *acc_rv);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let out_row = y.as_mut_ptr().wrapping_add((i + r) * ops.ldy + j);
            for (v, acc_rv) in acc_r.iter().enumerate() {
                let dst = out_row.wrapping_add(16 * v);
                // SAFETY: the set lanes are y[i + r, j + 16v + l] with j + 16v + l < j + cols
                // ≤ N and i + r < M, at offsets below (M − 1)·ldy + N ≤ y.len(); masked-off
                // lanes are untouched.
                unsafe {
                    let sum =
                        if first { *acc_rv } else { _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], dst), *acc_rv) };
                    _mm512_mask_storeu_ps(dst, masks[v], sum);
                }
            }
        }
    }

    /// out [K, N] = srcᵀ for a row-major src [N, K]: full 16 × 16 blocks through registers,
    /// the edges (N or K not a multiple of 16) value by value.
    ///
    /// A block's 16 rows r0..r15 (16 values each) become its 16 columns in three rounds of
    /// shuffles: interleave pairs of rows (unpacklo/hi: 32-bit lanes), then pairs of those
    /// (shuffle_ps: 64-bit pairs), then 128-bit quarters across registers twice
    /// (shuffle_f32x4). Only values move: the result is src's values, bit for bit.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; src holds N·K values and out K·N.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose_avx512(src: &[f32], n: usize, k: usize, out: &mut [f32]) {
        assert!(src.len() >= n * k && out.len() >= n * k);
        let (n16, k16) = (n / 16 * 16, k / 16 * 16);
        for i0 in (0..n16).step_by(16) {
            for j0 in (0..k16).step_by(16) {
                // SAFETY: rows i0..i0+16 < N, values j0..j0+16 ≤ K of each: inside src.
                let r: [__m512; 16] =
                    std::array::from_fn(|r| unsafe { _mm512_loadu_ps(src.as_ptr().add((i0 + r) * k + j0)) });
                let c = transpose16(r);
                for (col, v) in c.iter().enumerate() {
                    // SAFETY: row j0 + col < K of out, values i0..i0+16 ≤ N of it: inside out.
                    unsafe { _mm512_storeu_ps(out.as_mut_ptr().add((j0 + col) * n + i0), *v) };
                }
            }
        }
        transpose_edges(src, n, k, (n16, k16), out);
    }

    /// out [K, N] = srcᵀ for a row-major src [N, K], as [`transpose_avx512`] in 8 × 8 blocks.
    ///
    /// # Safety
    /// The CPU must support AVX2; src holds N·K values and out K·N.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_avx2(src: &[f32], n: usize, k: usize, out: &mut [f32]) {
        assert!(src.len() >= n * k && out.len() >= n * k);
        let (n8, k8) = (n / 8 * 8, k / 8 * 8);
        for i0 in (0..n8).step_by(8) {
            for j0 in (0..k8).step_by(8) {
                // SAFETY: rows i0..i0+8 < N, values j0..j0+8 ≤ K of each: inside src.
                let r: [__m256; 8] =
                    std::array::from_fn(|r| unsafe { _mm256_loadu_ps(src.as_ptr().add((i0 + r) * k + j0)) });
                let c = transpose8(r);
                for (col, v) in c.iter().enumerate() {
                    // SAFETY: row j0 + col < K of out, values i0..i0+8 ≤ N of it: inside out.
                    unsafe { _mm256_storeu_ps(out.as_mut_ptr().add((j0 + col) * n + i0), *v) };
                }
            }
        }
        transpose_edges(src, n, k, (n8, k8), out);
    }

    /// The transpose of an 8 × 8 block held as 8 rows, in three rounds: interleave pairs of
    /// rows (32-bit lanes), pairs of those (64-bit pairs), then the 128-bit halves.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t: [__m256; 8] = std::array::from_fn(|q| {
            let (a, b) = (r[q / 2 * 2], r[q / 2 * 2 + 1]);
            if q % 2 == 0 {
                _mm256_unpacklo_ps(a, b)
            } else {
                _mm256_unpackhi_ps(a, b)
            }
        });
        let u: [__m256; 8] = std::array::from_fn(|q| {
            let (p, h, hi) = (q / 4, (q % 4) / 2, q % 2 == 1);
            let (a, b) = (t[4 * p + h], t[4 * p + h + 2]);
            if hi {
                _mm256_shuffle_ps::<0xEE>(a, b)
            } else {
                _mm256_shuffle_ps::<0x44>(a, b)
            }
        });
        std::array::from_fn(|q| {
            let (a, b) = (u[q % 4], u[q % 4 + 4]);
            if q < 4 {
                _mm256_permute2f128_ps::<0x20>(a, b)
            } else {
                _mm256_permute2f128_ps::<0x31>(a, b)
            }
        })
    }

    /// The transpose of a 16 × 16 block held as 16 rows: element (r, c) of the input is
    /// element (c, r) of the output.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        // Round 1: t[2p] and t[2p + 1] interleave rows 2p and 2p + 1, lane by lane.
        let t: [__m512; 16] = std::array::from_fn(|q| {
            let (a, b) = (r[q / 2 * 2], r[q / 2 * 2 + 1]);
            if q % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // Round 2: pairs of 64 bits from t[4p + h] and t[4p + h + 2] (h = 0, 1).
        let u: [__m512; 16] = std::array::from_fn(|q| {
            let (p, h, hi) = (q / 4, (q % 4) / 2, q % 2 == 1);
            let (a, b) = (t[4 * p + h], t[4 * p + h + 2]);
            if hi {
                _mm512_shuffle_ps::<0xEE>(a, b)
            } else {
                _mm512_shuffle_ps::<0x44>(a, b)
            }
        });
        // Round 3: 128-bit quarters of u[q] and u[q + 4] within each group of eight.
        let v: [__m512; 16] = std::array::from_fn(|q| {
            let (g, w) = (q / 8, q % 8);
            let (a, b) = (u[8 * g + w % 4], u[8 * g + w % 4 + 4]);
            if w < 4 {
                _mm512_shuffle_f32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0xDD>(a, b)
            }
        });
        // Round 4: quarters of v[q] and v[q + 8].
        std::array::from_fn(|q| {
            let (a, b) = (v[q % 8], v[q % 8 + 8]);
            if q < 8 {
                _mm512_shuffle_f32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0xDD>(a, b)
            }
        })
    }

    /// y = a·b in tiles of up to 6 × 16; full strips load b without masks.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; y holds at least (M − 1)·ldy + N values.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm_avx2(ops: &Operands, y: &mut [f32]) {
        let full = |cols| cols == NR_256;
        for_each_tile(ops, MR_256, NR_256, |t| match (t.rows, full(t.cols)) {
            (6, true) => tile_avx2::<6, false>(ops, y, t),
            (5, true) => tile_avx2::<5, false>(ops, y, t),
            (4, true) => tile_avx2::<4, false>(ops, y, t),
            (3, true) => tile_avx2::<3, false>(ops, y, t),
            (2, true) => tile_avx2::<2, false>(ops, y, t),
            (1, true) => tile_avx2::<1, false>(ops, y, t),
            (6, false) => tile_avx2::<6, true>(ops, y, t),
            (5, false) => tile_avx2::<5, true>(ops, y, t),
            (4, false) => tile_avx2::<4, true>(ops, y, t),
            (3, false) => tile_avx2::<3, true>(ops, y, t),
            (2, false) => tile_avx2::<2, true>(ops, y, t),
            _ => tile_avx2::<1, true>(ops, y, t),
        });
    }

    /// One AVX2 tile: rows i..i+R, columns j..j+cols (cols ≤ 16), k in the block; the same
    /// recurrence as [`tile_avx512`] on vectors of 8. `MASKED` tiles (the right edge) read and
    /// write through lane masks; full ones (cols = 16) need none, which leaves the registers to
    /// the accumulators.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn tile_avx2<const R: usize, const MASKED: bool>(ops: &Operands, y: &mut [f32], t: &Tile) {
        let Tile { i, j, cols, k0, kc, first, .. } = *t;
        debug_assert!(i + R <= ops.m && j + cols <= ops.n && cols <= NR_256 && (MASKED || cols == NR_256));
        // AVX2 masks are vectors: lane l of vector v is on (all ones) when 8v + l < cols.
        let masks: [__m256i; V_256] = std::array::from_fn(|v| {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let left = _mm256_set1_epi32(cols.saturating_sub(8 * v).min(8) as i32);
            _mm256_cmpgt_epi32(left, lane)
        });
        // SAFETY (both): lane l of vector v is element j + 8v + l of a row of b or y, inside its
        // slice when 8v + l < cols (k < K, i + r < M; y holds (M − 1)·ldy + N); a full tile has every lane inside, a
        // masked one neither reads nor writes the others, and `wrapping_add` forms their
        // addresses without UB.
        let load = |p: *const f32, v: usize| unsafe {
            if MASKED {
                _mm256_maskload_ps(p, masks[v])
            } else {
                _mm256_loadu_ps(p)
            }
        };
        let store = |p: *mut f32, v: usize, x: __m256| unsafe {
            if MASKED {
                _mm256_maskstore_ps(p, masks[v], x)
            } else {
                _mm256_storeu_ps(p, x)
            }
        };
        let mut acc = [[_mm256_setzero_ps(); V_256]; R];
        for kk in k0..k0 + kc {
            let row = ops.b.as_ptr().wrapping_add(kk * ops.rsb + j);
            let bv: [__m256; V_256] = std::array::from_fn(|v| load(row.wrapping_add(8 * v), v));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(ops.a_at(i + r, kk));
                for (acc_rv, bv) in acc_r.iter_mut().zip(&bv) {
                    *acc_rv = _mm256_fmadd_ps(av, *bv, *acc_rv);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let out_row = y.as_mut_ptr().wrapping_add((i + r) * ops.ldy + j);
            for (v, acc_rv) in acc_r.iter().enumerate() {
                let dst = out_row.wrapping_add(8 * v);
                let sum = if first { *acc_rv } else { _mm256_add_ps(load(dst, v), *acc_rv) };
                store(dst, v, sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{s, Array2};

    use super::*;

    /// Values in [−2, 2) that exercise rounding (not small integers, whose sums are exact), in
    /// a buffer of exactly rows·cols values, so that a read past the end leaves the allocation
    /// (which AddressSanitizer reports).
    fn filled(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
        let mut v = Vec::with_capacity(rows * cols);
        v.extend((0..rows * cols).map(|e| {
            let (i, j) = (e / cols.max(1), e % cols.max(1));
            let h = (i * 7919 + j * 104_729 + seed * 15_485_863) % 1_000_003;
            (h as f32 / 1_000_003.0) * 4.0 - 2.0 + 1e-3 * (j as f32).sin()
        }));
        Array2::from_shape_vec((rows, cols), v).expect("rows·cols values")
    }

    fn same_bits(x: &Array2<f32>, y: &Array2<f32>) -> bool {
        x.shape() == y.shape() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
    }

    /// The levels with a tile that this CPU runs (`kernels::testable_levels`).
    fn tile_levels() -> Vec<Simd> {
        crate::kernels::testable_levels(&[Simd::Avx2, Simd::Avx512])
    }

    #[test]
    fn every_tile_agrees_with_matrixmultiply_bit_for_bit() {
        for level in tile_levels() {
            let mut cases = 0;
            // Rows on both sides of the tall tile's threshold (24), and tall tiles of every
            // height from 8 to 12 (25 rows: 8, 8, 9; 64: 10, 11, …; 200: 11, 12, …).
            for &m in &[1, 3, 4, 5, 20, 21, 23, 24, 25, 64, 127, 200] {
                for &k in &[1, 7, 255, 256, 257, 600] {
                    for &n in &[1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 63, 64, 65, 200] {
                        let a = filled(m, k, 1);
                        let b = filled(k, n, 2);
                        let y = tiled(level, a.view(), b.view()).expect("a thin product");
                        assert!(same_bits(&y, &a.dot(&b)), "{}: a·b differs at {m}×{k}·{k}×{n}", level.name());
                        cases += 1;
                        // a as the transpose of a row-major [K, M] (a weight gradient's xᵀ).
                        let at = filled(k, m, 3);
                        let y = tiled(level, at.t(), b.view()).expect("a thin product");
                        assert!(same_bits(&y, &at.t().dot(&b)), "{}: aᵀ·b differs at {m}×{k}·{k}×{n}", level.name());
                        cases += 1;
                    }
                }
            }
            // b = wᵀ for a row-major w [N, K] (dy·Wᵀ in a backward pass): copied to rows first.
            let edge = if level == Simd::Avx512 { THIN_ROWS_COPY } else { THIN_ROWS_AVX2 };
            for &(m, k, n) in &[(1, 9, 5), (20, 784, 200), (20, 50, 200), (edge, 257, 65)] {
                let (a, w) = (filled(m, k, 8), filled(n, k, 9));
                let y = product_at(level, a.view(), w.t()).expect("a thin product of a transposed b");
                assert!(same_bits(&y, &a.dot(&w.t())), "{}: a·wᵀ differs at {m}×{k}·{k}×{n}", level.name());
                cases += 1;
            }
            // b with rows longer than N: the left columns of a wider matrix, and the right ones
            // (which end exactly at the buffer's end).
            let (a, wide) = (filled(20, 300, 4), filled(300, 100, 5));
            for b in [wide.slice(s![.., ..70]), wide.slice(s![.., 30..])] {
                assert!(same_bits(&tiled(level, a.view(), b).unwrap(), &a.dot(&b)));
                cases += 1;
            }
            println!("{}: {cases} products bit-identical to matrixmultiply", level.name());
        }
    }

    #[test]
    fn every_tile_is_close_to_the_product_in_f64() {
        for level in tile_levels() {
            for &(m, k, n) in &[(20, 784, 200), (7, 300, 65), (1, 3, 17), (30, 300, 65)] {
                let (a, b) = (filled(m, k, 10), filled(k, n, 11));
                let y = tiled(level, a.view(), b.view()).expect("a thin product");
                for ((i, j), &v) in y.indexed_iter() {
                    let exact: f64 = (0..k).map(|t| a[[i, t]] as f64 * b[[t, j]] as f64).sum();
                    let scale: f64 = (0..k).map(|t| (a[[i, t]] as f64 * b[[t, j]] as f64).abs()).sum();
                    // f32 sums of k terms: at most about k·2⁻²⁴ of the terms' magnitudes.
                    assert!(
                        (v as f64 - exact).abs() <= 1e-6 * k as f64 * scale.max(1e-30),
                        "{}: y[{i}, {j}]",
                        level.name()
                    );
                }
            }
        }
    }

    #[test]
    fn infinities_and_nans_travel_as_in_matrixmultiply() {
        // 5 rows take the thin tile, 30 the tall one (at AVX-512).
        for (level, m) in tile_levels().into_iter().flat_map(|l| [(l, 5), (l, 30)]) {
            let mut a = filled(m, 9, 6);
            let mut b = filled(9, 70, 7);
            a[[1, 2]] = f32::INFINITY;
            b[[4, 66]] = f32::NAN;
            b[[5, 3]] = f32::NEG_INFINITY;
            let (ours, theirs) = (tiled(level, a.view(), b.view()).unwrap(), a.dot(&b));
            assert!(ours.iter().any(|v| v.is_nan()) && ours.iter().any(|v| v.is_infinite()));
            for (p, q) in ours.iter().zip(&theirs) {
                assert_eq!(p.to_bits(), q.to_bits(), "{}, {m} rows: {p} against {q}", level.name());
            }
        }
    }

    /// A stored matrix handed out in strips, which checks that every strip asked for lies
    /// inside it.
    struct Stored(Array2<f32>);

    impl Strips for Stored {
        fn dim(&self) -> (usize, usize) {
            self.0.dim()
        }
        fn fill(&self, k0: usize, kc: usize, j0: usize, cols: usize, out: &mut [f32]) {
            assert!(k0 + kc <= self.0.nrows() && j0 + cols <= self.0.ncols() && out.len() == kc * cols);
            for (t, row) in out.chunks_exact_mut(cols).enumerate() {
                row.iter_mut().enumerate().for_each(|(u, v)| *v = self.0[[k0 + t, j0 + u]]);
            }
        }
    }

    #[test]
    fn products_of_strips_agree_with_matrixmultiply_bit_for_bit() {
        for level in [Simd::Portable].into_iter().chain(tile_levels()) {
            let mut cases = 0;
            for &m in &[1, 5, 32, 64, 130] {
                for &k in &[1, 16, 255, 256, 257, 600] {
                    for &n in &[1, 15, 16, 17, 63, 64, 65, 392] {
                        let (a, b) = (filled(m, k, 13), filled(k, n, 14));
                        let y = product_of_strips_at(level, a.view(), &Stored(b.clone()));
                        assert!(same_bits(&y, &a.dot(&b)), "{}: a·b differs at {m}×{k}·{k}×{n}", level.name());
                        // a = wᵀ for a row-major w [K, M] (a convolution's Wᵀ·dY).
                        let w = filled(k, m, 15);
                        let y = product_of_strips_at(level, w.t(), &Stored(b.clone()));
                        assert!(same_bits(&y, &w.t().dot(&b)), "{}: wᵀ·b differs at {m}×{k}·{k}×{n}", level.name());
                        cases += 2;
                    }
                }
            }
            println!("{}: {cases} products of strips bit-identical to matrixmultiply", level.name());
        }
    }

    /// The copy of a transposed weight to rows holds every value in its place, at every level
    /// (full 16 × 16 blocks, edges of every width, and a Wᵀ that is not one slice).
    #[test]
    fn rows_of_a_transposed_weight_are_its_values() {
        for level in [Simd::Portable].into_iter().chain(tile_levels()) {
            for &(n, k) in &[(1, 1), (16, 16), (17, 33), (32, 48), (200, 784), (784, 200), (5, 300)] {
                let w = Array2::from_shape_fn((n, k), |(i, j)| (i * 1000 + j) as f32);
                let rows = rows_of(level, w.t());
                assert!(rows.is_standard_layout(), "{}: {n}×{k}", level.name());
                assert_eq!(rows, w.t(), "{}: {n}×{k}", level.name());
            }
            let wide = filled(40, 90, 12);
            let w = wide.slice(s![.., 10..80]); // rows 90 apart: Wᵀ is not one slice
            assert_eq!(rows_of(level, w.t()), w.t(), "{}: a strided W", level.name());
        }
    }

    #[test]
    fn declines_what_it_is_not_for() {
        for level in tile_levels() {
            let rows = if level == Simd::Avx512 { THIN_ROWS } else { THIN_ROWS_AVX2 + 1 };
            let (a, b) = (filled(rows, 8, 1), filled(8, 8, 2));
            assert!(product_at(level, a.view(), b.view()).is_none(), "too many rows");
            assert!(product_at(level, a.slice(s![1.., ..]), b.view()).is_some(), "one row fewer");
            if level == Simd::Avx512 {
                let xt = filled(8, THIN_ROWS_STRIDED + 1, 1); // xᵀ with one row too many
                assert!(product_at(level, xt.t(), b.view()).is_none(), "too many strided rows");
            }
            let w = filled(8, 6, 3); // bᵀ: its rows are not contiguous, and 25 rows of a are too many
            let a = filled(THIN_ROWS_COPY + 1, 6, 1);
            assert!(product_at(level, a.view(), w.t()).is_none(), "b transposed");
            assert!(product_at(level, filled(0, 8, 1).view(), b.view()).is_none(), "no rows");
        }
        let (a, b) = (filled(3, 4, 1), filled(4, 5, 2));
        assert!(product_at(Simd::Portable, a.view(), b.view()).is_none(), "portable: matrixmultiply's");
    }
}
