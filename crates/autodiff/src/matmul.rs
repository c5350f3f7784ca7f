//! Matrix product, the op where nearly all of a dense network's time goes.
//!
//! Shape legend
//! - `a`: [M, K]
//! - `b`: [K, N], or [N, K] when it enters transposed (`matmul_nt`, as in `x·Wᵀ` with a
//!   PyTorch-layout weight W [out, in])
//! - `y`: [M, N]
//!
//! The GEMM is ndarray's `general_mat_mul`, which hands strided views straight to
//! matrixmultiply's packed SIMD kernels: a transposed operand is a view with swapped strides,
//! never a copy. [`matmul_naive`] is the triple loop it must agree with.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, Ix2};

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
    let mut y = Array2::<f32>::zeros((a.nrows(), b.ncols()));
    general_mat_mul(1.0, &a, &b, 0.0, &mut y);
    y.into_dyn()
}

impl Tape<'_> {
    /// y = a·b with a [M, K], b [K, N].
    #[track_caller]
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        let y = gemm("matmul", as_matrix("matmul", self.value(a)), as_matrix("matmul", self.value(b)));
        self.push(y, Op::MatMul { a, b, b_transposed: false })
    }

    /// y = a·bᵀ with a [M, K], b [N, K]: the product of a dense layer with a PyTorch-layout
    /// weight, with no copy of the transpose.
    #[track_caller]
    pub fn matmul_nt(&mut self, a: Var, b: Var) -> Var {
        let bt = as_matrix("matmul_nt", self.value(b)).reversed_axes();
        let y = gemm("matmul_nt", as_matrix("matmul_nt", self.value(a)), bt);
        self.push(y, Op::MatMul { a, b, b_transposed: true })
    }
}

/// y = a·b   ⇒  da = dy·bᵀ,  db = aᵀ·dy
/// y = a·bᵀ  ⇒  da = dy·b,   db = dyᵀ·a
pub(crate) fn matmul_backward(
    a: &Tensor,
    b: &Tensor,
    b_transposed: bool,
    dy: &Tensor,
    need_a: bool,
    need_b: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    let (a, b, dy) = (as_matrix("matmul", a), as_matrix("matmul", b), as_matrix("matmul", dy));
    let da = need_a.then(|| {
        let b_for_da = if b_transposed { b } else { b.reversed_axes() };
        gemm("matmul_backward", dy, b_for_da)
    });
    let db = need_b.then(|| {
        if b_transposed {
            gemm("matmul_backward", dy.reversed_axes(), a)
        } else {
            gemm("matmul_backward", a.reversed_axes(), dy)
        }
    });
    (da, db)
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
