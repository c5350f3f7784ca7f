//! Shape ops: they move values around and never change them, so each backward moves the
//! gradient back the same way.
//!
//! Shape legend
//! - `reshape`: x `[any]` → y `[any with the same number of elements]`; `flatten`: [N, …] → [N, D]
//! - `transpose`: x [M, N] → y [N, M]
//! - `slice`: x [.., d_axis, ..] → y [.., len, ..]
//! - `concat`: xᵢ [.., d_i, ..] → y [.., Σ d_i, ..] (all other axes equal)
//! - `permute`: x [d₀, d₁, …] → y `[d_axes[0], d_axes[1], …]` (e.g. [N, C, H, W] → [N, H, W, C])
//! - `gather_rows`: table [K, D], rows `[M]` (indices below K) → y [M, D]
//! - `stop_gradient`: x `[any]` → y `[same]`, a constant

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

    /// The axes of x reordered: axis i of y is axis `axes[i]` of x (NumPy's `transpose(axes)`,
    /// PyTorch's `permute`). [N, C, H, W] with axes [0, 2, 3, 1] gives [N, H, W, C]: each pixel's
    /// C channels become one contiguous vector.
    #[track_caller]
    pub fn permute(&mut self, x: Var, axes: &[usize]) -> Var {
        let x_val = self.value(x);
        let mut sorted = axes.to_vec();
        sorted.sort_unstable();
        assert!(
            sorted == (0..x_val.ndim()).collect::<Vec<_>>(),
            "permute: {axes:?} is not an order of the {} axes of shape {:?}",
            x_val.ndim(),
            x_val.shape()
        );
        let y = x_val.view().permuted_axes(IxDyn(axes)).as_standard_layout().into_owned();
        self.push(y, Op::Permute(x, axes.to_vec()))
    }

    /// `y[m] = table[rows[m]]`: the rows of a 2-D table picked by index, repeats allowed (an
    /// embedding lookup; the VQ-VAE reads its codebook this way).
    #[track_caller]
    pub fn gather_rows(&mut self, table: Var, rows: &[usize]) -> Var {
        let t = as_matrix("gather_rows", self.value(table));
        let k = t.nrows();
        if let Some(&bad) = rows.iter().find(|&&r| r >= k) {
            panic!("gather_rows: index {bad} is outside a table of {k} rows");
        }
        let y = t.select(Axis(0), rows).into_dyn();
        self.push(y, Op::GatherRows { table, rows: rows.to_vec() })
    }

    /// The value of x as a constant: y = x forward, no gradient back (sg(x), `detach` in
    /// PyTorch). The VQ-VAE's straight-through estimator and its codebook and commitment terms
    /// are written with it.
    pub fn stop_gradient(&mut self, x: Var) -> Var {
        let value = self.value(x).clone();
        self.constant(value)
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

/// y = x with axis i taken from axis axes[i]  ⇒  dx = dy with axis axes[i] taken from axis i:
/// the inverse permutation moves each gradient back to its value's place.
pub(crate) fn permute_backward(axes: &[usize], dy: &Tensor) -> Tensor {
    let mut inverse = vec![0; axes.len()];
    for (i, &a) in axes.iter().enumerate() {
        inverse[a] = i;
    }
    dy.view().permuted_axes(IxDyn(&inverse)).as_standard_layout().into_owned()
}

/// y[m] = table[rows[m]]  ⇒  dtable[k] = Σ_{m : rows[m] = k} dy[m]: each row of dy is added
/// back to the row it was read from (a scatter-add; rows never picked get 0).
pub(crate) fn gather_rows_backward(table: &Tensor, rows: &[usize], dy: &Tensor) -> Tensor {
    let mut dt = Tensor::zeros(table.raw_dim());
    let dy = as_matrix("gather_rows", dy);
    for (m, &r) in rows.iter().enumerate() {
        let mut target = dt.index_axis_mut(Axis(0), r);
        target += &dy.row(m);
    }
    dt
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
