//! Shape ops: they move values around and never change them, so each backward moves the
//! gradient back the same way.
//!
//! Shape legend
//! - `reshape`: x [any] → y [any with the same number of elements]; `flatten`: [N, …] → [N, D]
//! - `transpose`: x [M, N] → y [N, M]
//! - `slice`: x [.., d_axis, ..] → y [.., len, ..]
//! - `concat`: xᵢ [.., d_i, ..] → y [.., Σ d_i, ..] (all other axes equal)

use ndarray::{Axis, IxDyn, Slice};

use crate::matmul::as_matrix;
use crate::tape::{Op, Tape, Tensor, Var};

impl Tape<'_> {
    /// The same values under a new shape (row-major order is kept).
    #[track_caller]
    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Var {
        let x_val = self.value(x);
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            x_val.len(),
            "reshape: cannot view shape {:?} ({} elements) as {shape:?} ({n} elements)",
            x_val.shape(),
            x_val.len()
        );
        let y = x_val.to_shape(IxDyn(shape)).expect("standard layout").into_owned();
        self.push(y, Op::Reshape(x))
    }

    /// [N, d₁, d₂, …] → [N, d₁·d₂·…]: one row per example.
    #[track_caller]
    pub fn flatten(&mut self, x: Var) -> Var {
        let shape = self.value(x).shape();
        let n = shape[0];
        let d = shape[1..].iter().product();
        self.reshape(x, &[n, d])
    }

    /// y = xᵀ for a 2-D x.
    #[track_caller]
    pub fn transpose(&mut self, x: Var) -> Var {
        let y = as_matrix("transpose", self.value(x)).t().as_standard_layout().into_owned();
        self.push(y.into_dyn(), Op::Transpose(x))
    }

    /// y = x[start .. start + len] along `axis`.
    #[track_caller]
    pub fn slice(&mut self, x: Var, axis: usize, start: usize, len: usize) -> Var {
        let x_val = self.value(x);
        assert!(
            axis < x_val.ndim() && start + len <= x_val.shape()[axis],
            "slice: range {start}..{} along axis {axis} is outside shape {:?}",
            start + len,
            x_val.shape()
        );
        let y = x_val.slice_axis(Axis(axis), Slice::from(start..start + len)).to_owned();
        self.push(y, Op::Slice { x, axis, start })
    }

    /// y = the `xs` joined along `axis`.
    #[track_caller]
    pub fn concat(&mut self, xs: &[Var], axis: usize) -> Var {
        assert!(!xs.is_empty(), "concat: nothing to join");
        let views: Vec<_> = xs.iter().map(|&x| self.value(x).view()).collect();
        let y = match ndarray::concatenate(Axis(axis), &views) {
            Ok(y) => y,
            Err(e) => {
                let shapes: Vec<_> = views.iter().map(|v| v.shape().to_vec()).collect();
                panic!("concat: cannot join shapes {shapes:?} along axis {axis}: {e}")
            }
        };
        self.push(y, Op::Concat(xs.to_vec(), axis))
    }
}

/// y = reshape(x)  ⇒  dx = reshape(dy) back to the shape of x
pub(crate) fn reshape_backward(x: &Tensor, dy: Tensor) -> Tensor {
    // dy's own buffer, relabelled (copied first only if it is not in row-major order).
    let dy = if dy.is_standard_layout() { dy } else { dy.as_standard_layout().into_owned() };
    dy.into_shape_with_order(x.raw_dim()).expect("reshape_backward: sizes agree")
}

/// y = xᵀ  ⇒  dx = dyᵀ
pub(crate) fn transpose_backward(dy: &Tensor) -> Tensor {
    as_matrix("transpose", dy).t().as_standard_layout().into_owned().into_dyn()
}

/// y = x[start..start+len]  ⇒  dx = dy in that range, 0 elsewhere
pub(crate) fn slice_backward(x: &Tensor, axis: usize, start: usize, dy: &Tensor) -> Tensor {
    let mut dx = Tensor::zeros(x.raw_dim());
    let len = dy.shape()[axis];
    dx.slice_axis_mut(Axis(axis), Slice::from(start..start + len)).assign(dy);
    dx
}

/// y = [x₀, x₁, …]  ⇒  dxᵢ = the piece of dy where xᵢ sits
pub(crate) fn concat_backward(xs: &[Var], axis: usize, tape: &Tape, dy: &Tensor) -> Vec<Option<Tensor>> {
    let mut start = 0;
    xs.iter()
        .map(|&x| {
            let len = tape.value(x).shape()[axis];
            let piece = dy.slice_axis(Axis(axis), Slice::from(start..start + len));
            start += len;
            tape.needs_grad(x).then(|| piece.to_owned())
        })
        .collect()
}
