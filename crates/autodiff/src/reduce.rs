//! Reductions: sum and mean over everything or along one axis, and a stable log-sum-exp.
//!
//! Shape legend
//! - `x`: any shape [d₀, …, d_axis, …]
//! - `sum`, `mean`: `y` is a 0-dimensional scalar, shape []
//! - `sum_axis`, `mean_axis`, `log_sum_exp`: `y` is `x` with `axis` removed
//!
//! Backward puts the axis back (`insert_axis`) and broadcasts `dy` along it.

use ndarray::{Axis, Zip};

use crate::tape::{Op, Tape, Tensor, Var};

#[track_caller]
fn check_axis(op: &str, x: &Tensor, axis: usize) {
    assert!(axis < x.ndim(), "{op}: axis {axis} out of range for shape {:?}", x.shape());
}

impl Tape<'_> {
    /// y = Σ_i x_i, a scalar (shape []). Accumulated in f64 so long sums stay exact to f32.
    pub fn sum(&mut self, x: Var) -> Var {
        let s: f64 = self.value(x).iter().map(|&v| v as f64).sum();
        self.push(Tensor::from_elem(vec![], s as f32), Op::Sum(x))
    }

    /// y = (1/n) Σ_i x_i over all n elements, a scalar (shape []).
    pub fn mean(&mut self, x: Var) -> Var {
        let x_val = self.value(x);
        let s: f64 = x_val.iter().map(|&v| v as f64).sum();
        let y = (s / x_val.len() as f64) as f32;
        self.push(Tensor::from_elem(vec![], y), Op::Mean(x))
    }

    /// y = Σ along `axis` (the axis is removed).
    #[track_caller]
    pub fn sum_axis(&mut self, x: Var, axis: usize) -> Var {
        check_axis("sum_axis", self.value(x), axis);
        let y = self.value(x).sum_axis(Axis(axis));
        self.push(y, Op::SumAxis(x, axis))
    }

    /// y = mean along `axis` (the axis is removed).
    #[track_caller]
    pub fn mean_axis(&mut self, x: Var, axis: usize) -> Var {
        check_axis("mean_axis", self.value(x), axis);
        let n = self.value(x).shape()[axis] as f32;
        let y = self.value(x).sum_axis(Axis(axis)) / n;
        self.push(y, Op::MeanAxis(x, axis))
    }

    /// y = log Σ_axis exp(x), computed as m + log Σ exp(x − m) with m the maximum along the
    /// axis, so that no exp overflows (the axis is removed).
    #[track_caller]
    pub fn log_sum_exp(&mut self, x: Var, axis: usize) -> Var {
        let x_val = self.value(x);
        check_axis("log_sum_exp", x_val, axis);
        let y = Zip::from(x_val.lanes(Axis(axis))).map_collect(|lane| {
            let m = lane.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            if m == f32::NEG_INFINITY {
                return m; // every term is exp(−∞) = 0
            }
            let s: f64 = lane.iter().map(|&v| ((v - m) as f64).exp()).sum();
            m + s.ln() as f32
        });
        self.push(y, Op::LogSumExp(x, axis))
    }
}

/// y = Σ x  ⇒  dx_i = dy
pub(crate) fn sum_backward(x: &Tensor, dy: &Tensor) -> Tensor {
    Tensor::from_elem(x.raw_dim(), dy.iter().next().copied().unwrap_or(0.0))
}

/// y = (1/n) Σ x  ⇒  dx_i = dy / n
pub(crate) fn mean_backward(x: &Tensor, dy: &Tensor) -> Tensor {
    let d = dy.iter().next().copied().unwrap_or(0.0) / x.len() as f32;
    Tensor::from_elem(x.raw_dim(), d)
}

/// y = Σ_axis x  ⇒  dx = dy broadcast along `axis`
pub(crate) fn sum_axis_backward(x: &Tensor, axis: usize, dy: &Tensor) -> Tensor {
    let dy = dy.view().insert_axis(Axis(axis));
    dy.broadcast(x.raw_dim()).expect("sum_axis: shapes agree").to_owned()
}

/// y = mean_axis x  ⇒  dx = dy / n_axis broadcast along `axis`
pub(crate) fn mean_axis_backward(x: &Tensor, axis: usize, dy: &Tensor) -> Tensor {
    let n = x.shape()[axis] as f32;
    sum_axis_backward(x, axis, dy) / n
}

/// Softmax weights below e^−64 ≈ 1.6·10⁻²⁸ are flushed to exactly 0 in the backward of
/// `log_sum_exp`. The largest weight of a lane is at least 1/n, so a flushed term is 10²⁴ times
/// smaller than it: invisible in f32. Kept, such weights become denormal numbers further down
/// the backward pass, and x86 arithmetic on denormals is many times slower: an IWAE with K = 50,
/// where most samples weigh next to nothing, trained 2.7 times slower than the same network on
/// the ELBO (GEMM 73% of its time against 51%).
pub const SOFTMAX_FLUSH: f32 = -64.0;

/// y = log Σ_axis exp(x)  ⇒  dx = dy · exp(x − y) = dy · softmax_axis(x)
/// (weights below e^[`SOFTMAX_FLUSH`] taken as 0)
pub(crate) fn log_sum_exp_backward(x: &Tensor, y: &Tensor, axis: usize, dy: &Tensor) -> Tensor {
    let y = y.view().insert_axis(Axis(axis));
    let dy = dy.view().insert_axis(Axis(axis));
    let (y, dy) = (y.broadcast(x.raw_dim()).unwrap(), dy.broadcast(x.raw_dim()).unwrap());
    Zip::from(x).and(&y).and(&dy).map_collect(|&x, &y, &d| {
        let shifted = x - y; // ≤ 0, or NaN when y = −∞ (every term exp(−∞) = 0)
        if shifted >= SOFTMAX_FLUSH {
            d * shifted.exp()
        } else {
            0.0
        }
    })
}
