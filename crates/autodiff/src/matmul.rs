//! Matrix product, the op where nearly all of a dense network's time goes.
//!
//! Shape legend
//! - `a`: [M, K]
//! - `b`: [K, N], or [N, K] when it enters transposed (`matmul_nt`, as in `x·Wᵀ` with a
//!   weight in PyTorch's layout [out, in])
//! - `y`: [M, N]
//!
//! The GEMM is ndarray's `dot` (`product`), which hands strided views straight to
//! matrixmultiply's packed SIMD kernels: a transposed operand is a view with swapped strides,
//! never a copy. A left operand of fewer than 128 rows times a row-major right one takes our
//! own register-blocked tiles instead (`kernels/gemm.rs`, AVX-512 or AVX2), which give the same
//! bits in about half the time at 20 rows. [`matmul_naive`] is the triple loop both must agree with.
//!
//! In `matmul`, a left operand that is mostly zeros, like a batch of MNIST images (about 19% of
//! the pixels are nonzero), takes a sparse path instead: y = a·b and the gradient aᵀ·dy then
//! cost work in proportion to the nonzeros, and read b and write the gradient a whole row at a
//! time. (This is why `Linear` keeps its weight as [in, out].) See [`SPARSE_MAX_DENSITY`].

use ndarray::{Array2, ArrayView2, Ix2};
use rayon::prelude::*;

use crate::kernels;
use crate::tape::{Op, Tape, Tensor, Var};

/// Views a tensor as a matrix, or panics naming the op and the shape found.
#[track_caller]
pub(crate) fn as_matrix<'a>(op: &str, x: &'a Tensor) -> ArrayView2<'a, f32> {
    match x.view().into_dimensionality::<Ix2>() {
        Ok(m) => m,
        Err(_) => panic!("{op}: expected a 2-D array, found shape {:?}", x.shape()),
    }
}

/// y = a·op(b), where op(b) = b or bᵀ; the shapes are checked with a message naming both.
#[track_caller]
fn gemm(op: &str, a: ArrayView2<f32>, b: ArrayView2<f32>) -> Tensor {
    assert_eq!(a.ncols(), b.nrows(), "{op}: inner dimensions differ: a is {:?}, b is {:?}", a.shape(), b.shape());
    product(a, b).into_dyn()
}

/// a·b as a new row-major array. ndarray's `dot` lets the GEMM write into fresh memory, where
/// `general_mat_mul` needs an initialized (zero-filled) output first; both run the same
/// matrixmultiply call (α = 1, β = 0), so the values are the same.
pub(crate) fn product(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    if let Some(y) = crate::kernels::gemm::product(a, b) {
        return y; // a few rows on an AVX-512 machine: the same values, sooner
    }
    let y = a.dot(&b);
    // dot picks a column-major output when both operands are column-major views.
    if y.is_standard_layout() {
        y
    } else {
        y.as_standard_layout().into_owned()
    }
}

impl Tape<'_> {
    /// y = a·b with a [M, K], b [K, N].
    ///
    /// When at most [`SPARSE_MAX_DENSITY`] of `a`'s entries are nonzero (a batch of MNIST
    /// images), this switches by itself to a sparse product that skips the zeros; the values
    /// are the same sums, only added in another order, and one thing differs in kind: 0·∞ is
    /// never formed, so an infinity or NaN in `b` does not reach rows of `a` that are zero
    /// where it sits. [`Tape::matmul_nt`] is always dense.
    #[track_caller]
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        let (av, bv) = (as_matrix("matmul", self.value(a)), as_matrix("matmul", self.value(b)));
        let a_sparse = SparseRows::of(av);
        let y = match &a_sparse {
            Some(sa) => sparse_times_dense("matmul", sa, bv),
            None => gemm("matmul", av, bv),
        };
        self.push(y, Op::MatMul { a, b, b_transposed: false, a_sparse })
    }

    /// y = a·bᵀ with a [M, K], b [N, K] (a weight in PyTorch's [out, in] layout, say), with no
    /// copy of the transpose. Always dense.
    #[track_caller]
    pub fn matmul_nt(&mut self, a: Var, b: Var) -> Var {
        let bt = as_matrix("matmul_nt", self.value(b)).reversed_axes();
        let y = gemm("matmul_nt", as_matrix("matmul_nt", self.value(a)), bt);
        self.push(y, Op::MatMul { a, b, b_transposed: true, a_sparse: None })
    }
}

/// y = a·b   ⇒  da = dy·bᵀ,  db = aᵀ·dy
/// y = a·bᵀ  ⇒  da = dy·b,   db = dyᵀ·a
pub(crate) fn matmul_backward(
    a: &Tensor,
    b: &Tensor,
    b_transposed: bool,
    a_sparse: Option<&SparseRows>,
    dy: &Tensor,
    need_a: bool,
    need_b: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    let (a, b, dy) = (as_matrix("matmul", a), as_matrix("matmul", b), as_matrix("matmul", dy));
    let da = need_a.then(|| {
        let b_for_da = if b_transposed { b } else { b.reversed_axes() };
        gemm("matmul_backward", dy, b_for_da)
    });
    let db = need_b.then(|| match (b_transposed, a_sparse) {
        (true, _) => gemm("matmul_backward", dy.reversed_axes(), a),
        (false, Some(sa)) => sparse_transpose_times_dense(sa, dy).into_dyn(),
        (false, None) => gemm("matmul_backward", a.reversed_axes(), dy),
    });
    (da, db)
}

// ---- sparse left operand --------------------------------------------------------------------

/// A left operand with at most this share of nonzero entries is multiplied as a sparse matrix.
///
/// For y = a·b with a [M, K] holding nnz nonzeros, the dense product costs 2·M·K·N FLOP and the
/// sparse one 2·nnz·N, at a lower rate (each nonzero streams a row of b through the cores
/// instead of reusing registers as a packed GEMM does). Measured at the MLP's first layer
/// (`cargo bench -- sparse/`: 64×784 by 784×400, forward and weight gradient, one thread), the
/// sparse path takes 0.73 ms against the GEMM's 1.27 ms on an MNIST batch (density 0.19), and
/// 0.79 ms against 1.23 ms with zeros scattered at random at density 0.2; at density 0.3 it was
/// no faster (1.29–1.58 ms against 1.28–1.29 ms, measured with this threshold raised). The
/// threshold sits between. (docs/PERFORMANCE.md has the full table.)
///
/// The two paths give the same sums in a different order (so the last bits may differ), with
/// one difference in kind: the sparse path never forms 0·b, so an infinity or NaN in a row of b
/// that meets only zeros of a does not reach y, where the GEMM would give NaN.
pub const SPARSE_MAX_DENSITY: f64 = 0.25;

/// Output columns computed together, held in registers: 10 AVX vectors of 8 floats, as many
/// independent sums as an FMA unit needs to stay busy (2 per cycle × 5 cycles of latency).
/// With 64 (8 vectors), the MLP's sparse first layer took 29–37% longer (`cargo bench -- sparse/`).
const TILE: usize = 80;

/// The nonzeros of a matrix a [M, K], row by row (compressed sparse rows): row i holds the
/// entries `starts[i]..starts[i + 1]` of `cols` and `vals`. Built by `matmul` when a is sparse
/// enough, and kept on the tape for the backward pass.
#[derive(Clone)]
pub struct SparseRows {
    rows: usize,
    cols_total: usize,
    starts: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f32>,
}

impl std::fmt::Debug for SparseRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SparseRows({}×{}, {} nonzeros)", self.rows, self.cols_total, self.vals.len())
    }
}

impl SparseRows {
    /// The sparse form of `a`, or `None` when more than [`SPARSE_MAX_DENSITY`] of it is
    /// nonzero (or it is empty), so that the dense GEMM is the better path.
    pub(crate) fn of(a: ArrayView2<f32>) -> Option<SparseRows> {
        let (m, k) = a.dim();
        if m * k == 0 || k > u32::MAX as usize {
            return None;
        }
        let a = a.as_standard_layout();
        let values = a.as_slice().expect("standard layout");
        let nnz = values.iter().filter(|&&v| v != 0.0).count();
        if nnz as f64 > SPARSE_MAX_DENSITY * (m * k) as f64 {
            return None;
        }
        // Branch-free compaction: every entry is written at the end of the list, which only
        // grows past it when the entry is nonzero (the zero pattern of an image is too irregular
        // for the branch predictor).
        let (mut cols, mut vals) = (vec![0u32; nnz + 1], vec![0.0f32; nnz + 1]);
        let mut starts = Vec::with_capacity(m + 1);
        let mut len = 0;
        starts.push(0);
        for row in values.chunks_exact(k) {
            for (c, &v) in row.iter().enumerate() {
                (cols[len], vals[len]) = (c as u32, v);
                len += (v != 0.0) as usize;
            }
            starts.push(len);
        }
        cols.truncate(nnz);
        vals.truncate(nnz);
        Some(SparseRows { rows: m, cols_total: k, starts, cols, vals })
    }

    /// The same nonzeros column by column, as rows of aᵀ [K, M]; within a column, in row order.
    fn transpose(&self) -> SparseRows {
        let mut starts = vec![0usize; self.cols_total + 1];
        for &c in &self.cols {
            starts[c as usize + 1] += 1;
        }
        for c in 0..self.cols_total {
            starts[c + 1] += starts[c];
        }
        let mut next = starts.clone();
        let (mut cols, mut vals) = (vec![0u32; self.cols.len()], vec![0.0f32; self.vals.len()]);
        for i in 0..self.rows {
            for e in self.starts[i]..self.starts[i + 1] {
                let slot = &mut next[self.cols[e] as usize];
                (cols[*slot], vals[*slot]) = (i as u32, self.vals[e]);
                *slot += 1;
            }
        }
        SparseRows { rows: self.cols_total, cols_total: self.rows, starts, cols, vals }
    }

    /// The columns and values of the nonzeros of row i.
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let span = self.starts[i]..self.starts[i + 1];
        (&self.cols[span.clone()], &self.vals[span])
    }
}

/// y = a·b with a sparse [M, K] and b dense [K, N] (any strides; copied to row-major once).
///
/// y_i· = Σ_{k: a_ik ≠ 0} a_ik · b_k·, for each row i and each tile of [`TILE`] columns: the
/// tile's sums stay in registers while the rows b_k· of the nonzeros stream past.
#[track_caller]
fn sparse_times_dense(op: &str, a: &SparseRows, b: ArrayView2<f32>) -> Tensor {
    assert_eq!(
        a.cols_total,
        b.nrows(),
        "{op}: inner dimensions differ: a is {:?}, b is {:?}",
        [a.rows, a.cols_total],
        b.shape()
    );
    let b = b.as_standard_layout();
    let (n, bs) = (b.ncols(), b.as_slice().expect("standard layout"));
    let mut y = Array2::<f32>::zeros((a.rows, n));
    if n > 0 {
        for (i, yi) in y.as_slice_mut().expect("fresh array").chunks_exact_mut(n).enumerate() {
            kernels::vectorized(
                #[inline(always)]
                || sparse_row_times_dense(a.row(i), bs, n, yi),
            );
        }
    }
    y.into_dyn()
}

/// y = Σ_(k, v) v · b_k· for one sparse row, tile by tile (the kernel of both sparse products).
///
/// Tiles start every [`TILE`] columns, and the last one at n − TILE, overlapping its neighbour
/// when TILE does not divide n: those columns are summed twice, in the same order, so they get
/// the same values, and every tile takes the vectorized path. Rows narrower than a tile take a
/// plain loop. Callers run it through [`kernels::vectorized`], so that it is compiled for the
/// CPU's SIMD width.
#[inline(always)]
fn sparse_row_times_dense((cols, vals): (&[u32], &[f32]), b: &[f32], n: usize, y: &mut [f32]) {
    let row = || cols.iter().map(|&k| k as usize).zip(vals.iter().copied());
    if n < TILE {
        y.fill(0.0);
        for (k, v) in row() {
            y.iter_mut().zip(&b[k * n..k * n + n]).for_each(|(y, &b)| *y = v.mul_add(b, *y));
        }
        return;
    }
    for j0 in (0..n).step_by(TILE).map(|j0| j0.min(n - TILE)) {
        let mut acc = [0.0f32; TILE];
        for (k, v) in row() {
            let b_tile: &[f32; TILE] = b[k * n + j0..k * n + j0 + TILE].try_into().expect("full tile");
            acc.iter_mut().zip(b_tile).for_each(|(acc, &b)| *acc = v.mul_add(b, *acc));
        }
        y[j0..j0 + TILE].copy_from_slice(&acc);
    }
}

/// Multiply-adds (nonzeros × columns) from which [`sparse_transpose_times_dense`] splits its
/// rows across the pool. Burda's batch of 20 binarized images has about 2,000 nonzeros, so its
/// first weight gradient (× 200 columns: about 410,000 multiply-adds) stays on one core, where
/// waking the other would cost 30–70 µs (`examples/join_latency.rs`). The MLP's chunk of 64
/// grey images, about 9,600 nonzeros × 400 columns, is split.
const SPARSE_PARALLEL_WORK: usize = 1 << 20;

/// aᵀ·dy [K, N] for a sparse a [M, K] and dense dy [M, N]: row k is Σ_{i: a_ik ≠ 0} a_ik · dy_i·,
/// the same kernel as the forward product run over the columns of a. Rows of the result are
/// independent, so they are split across rayon's pool when there is enough work
/// ([`SPARSE_PARALLEL_WORK`]).
fn sparse_transpose_times_dense(a: &SparseRows, dy: ArrayView2<f32>) -> Array2<f32> {
    assert_eq!(a.rows, dy.nrows(), "matmul_backward: a has {} rows, dy has {}", a.rows, dy.nrows());
    let at = a.transpose();
    let dy = dy.as_standard_layout();
    let (n, ds) = (dy.ncols(), dy.as_slice().expect("standard layout"));
    let mut g = Array2::<f32>::zeros((at.rows, n));
    if n > 0 {
        let rows = g.as_slice_mut().expect("fresh array");
        let row = |(k, gk): (usize, &mut [f32])| {
            kernels::vectorized(
                #[inline(always)]
                || sparse_row_times_dense(at.row(k), ds, n, gk),
            )
        };
        if at.vals.len() * n >= SPARSE_PARALLEL_WORK {
            rows.par_chunks_mut(n).with_min_len(64).enumerate().for_each(row);
        } else {
            rows.chunks_mut(n).enumerate().for_each(row);
        }
    }
    g
}

/// The textbook triple loop, y_ij = Σ_k a_ik · b_kj, accumulated in f64: the reference that
/// the GEMM path is tested against.
pub fn matmul_naive(a: &Tensor, b: &Tensor) -> Tensor {
    let (a, b) = (as_matrix("matmul_naive", a), as_matrix("matmul_naive", b));
    assert_eq!(a.ncols(), b.nrows(), "matmul_naive: inner dimensions differ");
    let mut y = Array2::<f32>::zeros((a.nrows(), b.ncols()));
    for i in 0..a.nrows() {
        for j in 0..b.ncols() {
            let mut acc = 0.0f64;
            for k in 0..a.ncols() {
                acc += a[[i, k]] as f64 * b[[k, j]] as f64;
            }
            y[[i, j]] = acc as f32;
        }
    }
    y.into_dyn()
}
