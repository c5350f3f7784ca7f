//! Elementwise ops: arithmetic with broadcasting, and the activation functions.
//!
//! Shape legend
//! - `x`, `y`, `dx`, `dy`: any shape, all the same (unary ops).
//! - `a`: any shape; `b`: the shape of `a`, a trailing row vector of it (`[C]` against
//!   `[N, C]`), one value per channel (`[C, 1, 1, 1]` against `[C, I, K, K]`), or a single
//!   element: `b` is broadcast over `a` and `y` has the shape of `a`.
//!   Its gradient is summed back over the broadcast axes (`sum_to_shape`).
//!
//! Each forward is a single pass over its inputs written as a plain closure over `f32`, which
//! runs in a [`kernels::loops`](crate::kernels::loops) loop at the CPU's SIMD width; above
//! [`PARALLEL_LEN`] elements the pass is split across rayon's pool.

use ndarray::{Axis, CowArray, IxDyn, Zip};
use rayon::prelude::*;

use crate::fastmath;
use crate::kernels::loops;
use crate::tape::{Op, Tape, Tensor, Var};

/// Arrays with at least this many elements are processed in parallel; below it, the cost of
/// waking threads exceeds the work.
pub const PARALLEL_LEN: usize = 1 << 16;

/// Pieces of a long array handed to one rayon task.
const PARALLEL_PIECE: usize = 1 << 14;

/// y_i = f(x_i), one pass over contiguous memory (a [`kernels::loops`] loop, so it runs at the
/// CPU's SIMD width), parallel for large arrays.
pub(crate) fn map(x: &Tensor, f: impl Fn(f32) -> f32 + Copy + Sync + Send) -> Tensor {
    let Some(xs) = x.as_slice() else { return Zip::from(x).map_collect(|&x| f(x)) };
    let mut y = vec![0.0f32; xs.len()];
    if xs.len() >= PARALLEL_LEN {
        let pieces = y.par_chunks_mut(PARALLEL_PIECE).zip(xs.par_chunks(PARALLEL_PIECE));
        pieces.for_each(|(y, x)| loops::map(x, y, f));
    } else {
        loops::map(xs, &mut y, f);
    }
    Tensor::from_shape_vec(x.raw_dim(), y).expect("same length")
}

/// y_i = f(x_i, u_i) over two arrays of the same shape.
pub(crate) fn map2(x: &Tensor, u: &Tensor, f: impl Fn(f32, f32) -> f32 + Copy + Sync + Send) -> Tensor {
    assert_eq!(x.shape(), u.shape(), "elementwise: shapes differ");
    let (Some(xs), Some(us)) = (x.as_slice(), u.as_slice()) else {
        return Zip::from(x).and(u).map_collect(|&x, &u| f(x, u));
    };
    let mut y = vec![0.0f32; xs.len()];
    if xs.len() >= PARALLEL_LEN {
        let pieces = xs.par_chunks(PARALLEL_PIECE).zip(us.par_chunks(PARALLEL_PIECE));
        y.par_chunks_mut(PARALLEL_PIECE).zip(pieces).for_each(|(y, (x, u))| loops::map2(x, u, y, f));
    } else {
        loops::map2(xs, us, &mut y, f);
    }
    Tensor::from_shape_vec(x.raw_dim(), y).expect("same length")
}

/// d_i ← f(d_i), in d's own buffer. The backward pass owns each gradient and uses it once, so
/// an elementwise derivative overwrites it instead of allocating a new array.
fn map_into(mut d: Tensor, f: impl Fn(f32) -> f32 + Copy + Sync + Send) -> Tensor {
    match d.as_slice_mut() {
        Some(ds) if ds.len() >= PARALLEL_LEN => ds.par_chunks_mut(PARALLEL_PIECE).for_each(|d| loops::update(d, f)),
        Some(ds) => loops::update(ds, f),
        None => d.mapv_inplace(f),
    }
    d
}

/// d_i ← f(d_i, u_i), in d's own buffer (see [`map_into`]).
fn map2_into(mut d: Tensor, u: &Tensor, f: impl Fn(f32, f32) -> f32 + Copy + Sync + Send) -> Tensor {
    assert_eq!(d.shape(), u.shape(), "elementwise: shapes differ");
    match (d.as_slice_mut(), u.as_slice()) {
        (Some(ds), Some(us)) if ds.len() >= PARALLEL_LEN => {
            let pieces = ds.par_chunks_mut(PARALLEL_PIECE).zip(us.par_chunks(PARALLEL_PIECE));
            pieces.for_each(|(d, u)| loops::update2(d, u, f));
        }
        (Some(ds), Some(us)) => loops::update2(ds, us, f),
        _ => Zip::from(&mut d).and(u).for_each(|d, &u| *d = f(*d, u)),
    }
    d
}

/// y_i = f(a_i, b_i) with `b` broadcast to the shape of `a`.
#[track_caller]
fn broadcast_map(op: &str, a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32 + Copy + Sync + Send) -> Tensor {
    let Some(bb) = b.broadcast(a.raw_dim()) else {
        panic!("{op}: cannot broadcast b of shape {:?} to a of shape {:?}", b.shape(), a.shape())
    };
    // Where b spans one run of a's axes, a is blocks of contiguous memory (see `repeat_of`):
    // rows against b through a kernel loop, or runs against one value of b each. Other
    // broadcasts walk ndarray's Zip.
    if let (Some(inner), Some(xs), Some(bs)) = (repeat_of(a.shape(), b.shape()), a.as_slice(), b.as_slice()) {
        let mid = bs.len();
        // One block: a row of `mid` values against b when inner = 1, else `inner` values
        // against b[q mod mid], q the block's index.
        let block = if inner == 1 { mid } else { inner };
        let blocks = |first: usize, y: &mut [f32], x: &[f32]| {
            for (q, (y, x)) in (first..).zip(y.chunks_mut(block).zip(x.chunks(block))) {
                match inner {
                    1 => loops::map2(x, bs, y, f),
                    _ => {
                        let b = bs[q % mid];
                        loops::map(x, y, move |x| f(x, b))
                    }
                }
            }
        };
        let mut y = vec![0.0f32; xs.len()];
        if xs.len() >= PARALLEL_LEN {
            let piece = block * (PARALLEL_PIECE / block).max(1); // whole blocks
            let pieces = y.par_chunks_mut(piece).zip(xs.par_chunks(piece)).enumerate();
            pieces.for_each(|(i, (y, x))| blocks(i * (piece / block), y, x));
        } else {
            blocks(0, &mut y, xs);
        }
        return Tensor::from_shape_vec(a.raw_dim(), y).expect("same length");
    }
    if a.len() >= PARALLEL_LEN {
        Zip::from(a).and(&bb).par_map_collect(|&a, &b| f(a, b))
    } else {
        Zip::from(a).and(&bb).map_collect(|&a, &b| f(a, b))
    }
}

/// When `b` (its shape padded with leading 1s to a's rank) is 1 on every axis but one run of
/// a's own axes j..k, `a` in memory is `outer` × b.len() × `inner` with inner = Π a[k..]:
/// returns inner. `[C]` against `[N, C]` gives 1 (rows); `[C, 1, 1, 1]` against `[C, I, K, K]`
/// gives I·K·K; `[1, C, 1, 1]` against `[I, C, K, K]` gives K·K; a single element gives a.len().
/// None for any other broadcast, or an empty `a`.
fn repeat_of(a: &[usize], b: &[usize]) -> Option<usize> {
    let lead = a.len().checked_sub(b.len())?;
    let padded: Vec<usize> = std::iter::repeat_n(1, lead).chain(b.iter().copied()).collect();
    let j = padded.iter().position(|&n| n != 1).unwrap_or(0);
    let k = padded.iter().rposition(|&n| n != 1).map_or(j, |k| k + 1);
    let spans_run = padded[j..k] == a[j..k];
    (spans_run && !a.contains(&0)).then(|| a[k..].iter().product())
}

/// Sums a gradient computed at the broadcast shape back to the shape of the operand:
/// a value that was copied to k places receives the sum of the k gradients.
pub(crate) fn sum_to_shape(d: CowArray<'_, f32, IxDyn>, shape: &[usize]) -> Tensor {
    // A view of dy is read where it lies: only the sums allocate.
    let mut d = d;
    while d.ndim() > shape.len() {
        d = d.sum_axis(Axis(0)).into();
    }
    for (axis, &n) in shape.iter().enumerate() {
        if n == 1 && d.shape()[axis] != 1 {
            d = d.sum_axis(Axis(axis)).insert_axis(Axis(axis)).into();
        }
    }
    d.into_owned().into_shape_with_order(IxDyn(shape)).expect("sum_to_shape: sizes agree")
}

impl Tape<'_> {
    /// y = a + b (`b` broadcast over `a`).
    #[track_caller]
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        let y = broadcast_map("add", self.value(a), self.value(b), |a, b| a + b);
        self.push(y, Op::Add(a, b))
    }

    /// y = a − b (`b` broadcast over `a`).
    #[track_caller]
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        let y = broadcast_map("sub", self.value(a), self.value(b), |a, b| a - b);
        self.push(y, Op::Sub(a, b))
    }

    /// y = a ⊙ b (`b` broadcast over `a`).
    #[track_caller]
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        let y = broadcast_map("mul", self.value(a), self.value(b), |a, b| a * b);
        self.push(y, Op::Mul(a, b))
    }

    /// y = a ⊘ b (`b` broadcast over `a`).
    #[track_caller]
    pub fn div(&mut self, a: Var, b: Var) -> Var {
        let y = broadcast_map("div", self.value(a), self.value(b), |a, b| a / b);
        self.push(y, Op::Div(a, b))
    }

    /// y = −x
    pub fn neg(&mut self, x: Var) -> Var {
        let y = map(self.value(x), |x| -x);
        self.push(y, Op::Neg(x))
    }

    /// y = c·x for a fixed number c.
    pub fn scale(&mut self, x: Var, c: f32) -> Var {
        let y = map(self.value(x), |x| c * x);
        self.push(y, Op::Scale(x, c))
    }

    /// y = eˣ
    pub fn exp(&mut self, x: Var) -> Var {
        let y = map(self.value(x), f32::exp);
        self.push(y, Op::Exp(x))
    }

    /// y = ln x
    pub fn log(&mut self, x: Var) -> Var {
        let y = map(self.value(x), f32::ln);
        self.push(y, Op::Log(x))
    }

    /// y = √x
    pub fn sqrt(&mut self, x: Var) -> Var {
        let y = map(self.value(x), f32::sqrt);
        self.push(y, Op::Sqrt(x))
    }

    /// y = x²
    pub fn square(&mut self, x: Var) -> Var {
        let y = map(self.value(x), |x| x * x);
        self.push(y, Op::Square(x))
    }

    /// y = max(x, 0)
    pub fn relu(&mut self, x: Var) -> Var {
        let y = map(self.value(x), |x| x.max(0.0));
        self.push(y, Op::Relu(x))
    }

    /// y = x for x > 0, α·x otherwise.
    pub fn leaky_relu(&mut self, x: Var, alpha: f32) -> Var {
        let y = map(self.value(x), |x| if x > 0.0 { x } else { alpha * x });
        self.push(y, Op::LeakyRelu(x, alpha))
    }

    /// y = x for x > 0, eˣ − 1 otherwise (the ELU of Clevert et al. 2016, with α = 1): smooth
    /// at 0, and its negative side saturates at −1 instead of cutting the gradient to 0.
    pub fn elu(&mut self, x: Var) -> Var {
        let y = map(self.value(x), fastmath::elu);
        self.push(y, Op::Elu(x))
    }

    /// y = σ(x) = 1 / (1 + e^(−x)), computed without overflow for any x.
    pub fn sigmoid(&mut self, x: Var) -> Var {
        let y = map(self.value(x), sigmoid);
        self.push(y, Op::Sigmoid(x))
    }

    /// y = tanh(x)
    pub fn tanh(&mut self, x: Var) -> Var {
        let y = map(self.value(x), fastmath::tanh);
        self.push(y, Op::Tanh(x))
    }

    /// y = softplus(x) = ln(1 + eˣ), computed without overflow for any x.
    pub fn softplus(&mut self, x: Var) -> Var {
        let y = map(self.value(x), softplus);
        self.push(y, Op::Softplus(x))
    }
}

pub use crate::fastmath::{sigmoid, softplus};

// ---- backward: each returns the contribution to its inputs' gradients -------------------

/// y = a + b  ⇒  da = dy,  db = Σ_broadcast dy
pub(crate) fn add_backward(
    b_shape: &[usize],
    dy: Tensor,
    need_a: bool,
    need_b: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    let db = need_b.then(|| sum_to_shape(dy.view().into(), b_shape));
    // dy passes to a unchanged: moved, not copied.
    (need_a.then_some(dy), db)
}

/// y = a − b  ⇒  da = dy,  db = −Σ_broadcast dy
pub(crate) fn sub_backward(
    b_shape: &[usize],
    dy: Tensor,
    need_a: bool,
    need_b: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    let db = need_b.then(|| sum_to_shape(map(&dy, |d| -d).into(), b_shape));
    (need_a.then_some(dy), db)
}

/// y = a ⊙ b  ⇒  da = dy ⊙ b,  db = Σ_broadcast dy ⊙ a
pub(crate) fn mul_backward(
    a: &Tensor,
    b: &Tensor,
    dy: &Tensor,
    need_a: bool,
    need_b: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    let da = need_a.then(|| broadcast_map("mul_backward", dy, b, |d, b| d * b));
    let db = need_b.then(|| sum_to_shape(map2(dy, a, |d, a| d * a).into(), b.shape()));
    (da, db)
}

/// y = a / b  ⇒  da = dy / b,  db = −Σ_broadcast dy ⊙ a / b²
pub(crate) fn div_backward(
    a: &Tensor,
    b: &Tensor,
    dy: &Tensor,
    need_a: bool,
    need_b: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    let da = need_a.then(|| broadcast_map("div_backward", dy, b, |d, b| d / b));
    let db = need_b.then(|| {
        let bb = b.broadcast(a.raw_dim()).expect("checked in forward");
        let d = Zip::from(dy).and(a).and(&bb).map_collect(|&d, &a, &b| -d * a / (b * b));
        sum_to_shape(d.into(), b.shape())
    });
    (da, db)
}

/// y = −x  ⇒  dx = −dy
pub(crate) fn neg_backward(dy: Tensor) -> Tensor {
    map_into(dy, |d| -d)
}

/// y = c·x  ⇒  dx = c·dy
pub(crate) fn scale_backward(c: f32, dy: Tensor) -> Tensor {
    map_into(dy, |d| c * d)
}

/// y = eˣ  ⇒  dx = dy · eˣ = dy · y
pub(crate) fn exp_backward(y: &Tensor, dy: Tensor) -> Tensor {
    map2_into(dy, y, |d, y| d * y)
}

/// y = ln x  ⇒  dx = dy / x
pub(crate) fn log_backward(x: &Tensor, dy: Tensor) -> Tensor {
    map2_into(dy, x, |d, x| d / x)
}

/// y = √x  ⇒  dx = dy / (2√x) = dy / (2y)
pub(crate) fn sqrt_backward(y: &Tensor, dy: Tensor) -> Tensor {
    map2_into(dy, y, |d, y| d / (2.0 * y))
}

/// y = x²  ⇒  dx = 2x · dy
pub(crate) fn square_backward(x: &Tensor, dy: Tensor) -> Tensor {
    map2_into(dy, x, |d, x| 2.0 * x * d)
}

/// y = max(x, 0)  ⇒  dx = dy · [x > 0]
pub(crate) fn relu_backward(x: &Tensor, dy: Tensor) -> Tensor {
    map2_into(dy, x, |d, x| if x > 0.0 { d } else { 0.0 })
}

/// y = x if x > 0 else αx  ⇒  dx = dy · (1 if x > 0 else α)
pub(crate) fn leaky_relu_backward(x: &Tensor, alpha: f32, dy: Tensor) -> Tensor {
    map2_into(dy, x, |d, x| if x > 0.0 { d } else { alpha * d })
}

/// y = x (x > 0), eˣ − 1 (x ≤ 0)  ⇒  dx = dy (x > 0), dy · eˣ = dy · (y + 1) (x ≤ 0).
/// y > 0 exactly where x > 0, and at x = 0 both slopes are 1, so y alone decides.
pub(crate) fn elu_backward(y: &Tensor, dy: Tensor) -> Tensor {
    map2_into(dy, y, |d, y| if y > 0.0 { d } else { d * (y + 1.0) })
}

/// y = σ(x)  ⇒  dx = dy · σ(x)(1 − σ(x)) = dy · y(1 − y)
pub(crate) fn sigmoid_backward(y: &Tensor, dy: Tensor) -> Tensor {
    map2_into(dy, y, |d, y| d * y * (1.0 - y))
}

/// y = tanh(x)  ⇒  dx = dy · (1 − tanh²x) = dy · (1 − y²)
pub(crate) fn tanh_backward(y: &Tensor, dy: Tensor) -> Tensor {
    map2_into(dy, y, |d, y| d * (1.0 - y * y))
}

/// y = ln(1 + eˣ)  ⇒  dx = dy · eˣ/(1 + eˣ) = dy · σ(x)
pub(crate) fn softplus_backward(x: &Tensor, dy: Tensor) -> Tensor {
    map2_into(dy, x, dy_times_sigmoid)
}

/// d · σ(x), the softplus backward per element (`#[inline(always)]`: see `kernels::loops`).
#[inline(always)]
fn dy_times_sigmoid(d: f32, x: f32) -> f32 {
    d * sigmoid(x)
}
