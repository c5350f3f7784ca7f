//! The tape: an append-order list of nodes, walked backwards to get gradients.
//!
//! Every op appends one [`Node`] holding its forward value and an [`Op`] that names the op and
//! its inputs. Inputs always have smaller indices than the node that uses them, so the order in
//! which nodes were appended is already a topological order: walking the list from the end to
//! the start visits every node after all of its consumers, which is exactly what reverse-mode
//! differentiation needs.
//!
//! ```text
//!  index:   0        1        2          3            4
//!  node:    x        W        h = x·Wᵀ   r = relu(h)  L = sum(r)
//!  op:      Leaf     Leaf     MatMul     Relu         Sum
//!  backward ←──────────────────────────────────────────  starts at L with dL = 1
//! ```

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn};

use crate::conv::ConvGeom;
use crate::{conv, elementwise, loss, matmul, reduce, shape};

/// The value type of the engine: a dynamically shaped `f32` array in standard (C) layout.
pub type Tensor = ArrayD<f32>;

/// A handle to one node of a [`Tape`]: small, `Copy`, and meaningful only on the tape that
/// made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(pub(crate) usize);

impl Var {
    /// The node's position on its tape (the order in which it was recorded).
    pub fn index(self) -> usize {
        self.0
    }
}

/// What produced a node: the op and the nodes it read. One variant per op; [`Tape::backward`]
/// dispatches on it with one `match`, which reads as the table of derivatives of the engine.
#[derive(Clone, Debug)]
pub enum Op {
    /// A parameter, an input or a constant: nothing to differentiate through.
    Leaf,
    // ---- elementwise (elementwise.rs); `b` may be a row vector or a scalar, broadcast over `a`
    /// y = a + b
    Add(Var, Var),
    /// y = a − b
    Sub(Var, Var),
    /// y = a ⊙ b
    Mul(Var, Var),
    /// y = a ⊘ b
    Div(Var, Var),
    /// y = −x
    Neg(Var),
    /// y = c·x
    Scale(Var, f32),
    /// y = exp(x)
    Exp(Var),
    /// y = ln(x)
    Log(Var),
    /// y = √x
    Sqrt(Var),
    /// y = x²
    Square(Var),
    /// y = max(x, 0)
    Relu(Var),
    /// y = x if x > 0 else α·x
    LeakyRelu(Var, f32),
    /// y = x if x > 0 else eˣ − 1
    Elu(Var),
    /// y = 1 / (1 + e^(−x))
    Sigmoid(Var),
    /// y = tanh(x)
    Tanh(Var),
    /// y = ln(1 + eˣ)
    Softplus(Var),
    // ---- matrix product (matmul.rs)
    /// y = a·b, or a·bᵀ when the flag is set
    MatMul {
        /// left operand [M, K]
        a: Var,
        /// right operand [K, N], or [N, K] when `b_transposed`
        b: Var,
        /// whether `b` enters transposed
        b_transposed: bool,
        /// `a` as sparse rows, when the forward pass took the sparse path; the weight gradient
        /// aᵀ·dy reuses it
        a_sparse: Option<matmul::SparseRows>,
    },
    // ---- reductions (reduce.rs)
    /// y = Σ x (a scalar)
    Sum(Var),
    /// y = Σ x / n (a scalar)
    Mean(Var),
    /// y = Σ_axis x
    SumAxis(Var, usize),
    /// y = Σ_axis x / n_axis
    MeanAxis(Var, usize),
    /// y = log Σ_axis exp(x)
    LogSumExp(Var, usize),
    // ---- shape (shape.rs)
    /// same values, new shape
    Reshape(Var),
    /// y = xᵀ (2-D)
    Transpose(Var),
    /// y = x[.., start..start+len, ..] along `axis`
    Slice {
        /// the sliced input
        x: Var,
        /// the axis sliced
        axis: usize,
        /// the first index kept
        start: usize,
    },
    /// y = [x₀, x₁, …] joined along `axis`
    Concat(Vec<Var>, usize),
    /// y = x with its axes reordered: axis i of y is axis `.1[i]` of x
    Permute(Var, Vec<usize>),
    /// `y[m] = table[rows[m]]`
    GatherRows {
        /// the table [K, D]
        table: Var,
        /// the row read for each output row
        rows: Vec<usize>,
    },
    // ---- convolutions (conv.rs)
    /// y = conv2d(x, w) + b
    Conv2d {
        /// input [N, C_in, H, W]
        x: Var,
        /// weight [C_out, C_in, K_h, K_w]
        w: Var,
        /// optional bias `[C_out]`
        b: Option<Var>,
        /// stride and padding
        geom: ConvGeom,
    },
    /// y = conv_transpose2d(x, w) + b
    ConvTranspose2d {
        /// input [N, C_in, H, W]
        x: Var,
        /// weight [C_in, C_out, K_h, K_w]
        w: Var,
        /// optional bias `[C_out]`
        b: Option<Var>,
        /// stride and padding
        geom: ConvGeom,
    },
    // ---- fused losses (loss.rs); each returns one value per example, shape [N]
    /// y_n = Σ_i softplus(l_ni) − x_ni·l_ni (target x is a constant)
    BceWithLogits {
        /// logits [N, …]
        logits: Var,
        /// targets in [0, 1], same shape
        target: Var,
    },
    /// y_n = Σ_i (x_ni − m_ni)²/(2σ²) + ln σ + ½ ln 2π (target x is a constant)
    GaussianNll {
        /// Gaussian mean [N, …]
        mean: Var,
        /// observed values, same shape
        target: Var,
        /// fixed standard deviation
        sigma: f32,
    },
    /// y_n = −Σ_i log P(x_ni) under the discretized logistic of mean m and scale e^s (target x
    /// on the levels k/255 is a constant)
    DLogisticNll {
        /// logistic means [N, …]
        mean: Var,
        /// log-scales, same shape
        log_scale: Var,
        /// pixels k/255, same shape
        target: Var,
    },
    /// y = log P(x | m, e^s) of each value under the discretized logistic (target x a constant)
    DLogisticLogProb {
        /// logistic means [N, …]
        mean: Var,
        /// log-scales, same shape
        log_scale: Var,
        /// pixels k/255, same shape
        target: Var,
    },
    /// y_n = −½ Σ_j (1 + logvar_nj − mu_nj² − exp(logvar_nj))
    KlStdNormal {
        /// posterior mean [N, J]
        mu: Var,
        /// posterior log-variance [N, J]
        logvar: Var,
    },
}

/// One recorded value and how it was made.
pub(crate) struct Node<'p> {
    /// The forward value. Parameters are borrowed (no copy), everything else is owned.
    pub(crate) value: Cow<'p, Tensor>,
    /// The op that produced `value`.
    pub(crate) op: Op,
    /// Whether any trainable leaf lies upstream: if not, backward skips the node.
    pub(crate) needs_grad: bool,
}

/// A reverse-mode autodiff tape. The lifetime `'p` is that of borrowed parameters.
///
/// Ops are methods (`tape.matmul(a, b)`, `tape.relu(h)`, …) defined in the op family files, each
/// beside its backward.
#[derive(Default)]
pub struct Tape<'p> {
    pub(crate) nodes: Vec<Node<'p>>,
}

impl<'p> Tape<'p> {
    /// An empty tape.
    pub fn new() -> Self {
        Self { nodes: Vec::new() }
    }

    /// Records a trainable parameter, borrowed rather than copied: it lives as long as the tape.
    pub fn param(&mut self, value: &'p Tensor) -> Var {
        self.push_leaf(Cow::Borrowed(value), true)
    }

    /// Records an owned value that receives a gradient (an input we differentiate against).
    pub fn input(&mut self, value: Tensor) -> Var {
        self.push_leaf(Cow::Owned(value), true)
    }

    /// Records a constant: it takes part in the forward pass and gets no gradient.
    pub fn constant(&mut self, value: Tensor) -> Var {
        self.push_leaf(Cow::Owned(value), false)
    }

    fn push_leaf(&mut self, value: Cow<'p, Tensor>, needs_grad: bool) -> Var {
        let value =
            if value.is_standard_layout() { value } else { Cow::Owned(value.as_standard_layout().into_owned()) };
        self.nodes.push(Node { value, op: Op::Leaf, needs_grad });
        Var(self.nodes.len() - 1)
    }

    /// Appends the result of an op (used by the op files). Every stored value is kept in
    /// standard layout, so kernels may take its contiguous slice.
    pub(crate) fn push(&mut self, value: Tensor, op: Op) -> Var {
        let value = if value.is_standard_layout() { value } else { value.as_standard_layout().into_owned() };
        let needs_grad = op.inputs().iter().any(|v| self.nodes[v.0].needs_grad);
        self.nodes.push(Node { value: Cow::Owned(value), op, needs_grad });
        Var(self.nodes.len() - 1)
    }

    /// The forward value of `v`.
    #[track_caller]
    pub fn value(&self, v: Var) -> &Tensor {
        match self.nodes.get(v.0) {
            Some(node) => &node.value,
            None => panic!("Var({}) does not belong to this tape ({} nodes)", v.0, self.len()),
        }
    }

    /// The value of a one-element node as a number (a loss, say).
    #[track_caller]
    pub fn scalar(&self, v: Var) -> f32 {
        let x = self.value(v);
        assert_eq!(x.len(), 1, "scalar(): Var({}) has shape {:?}, not one element", v.0, x.shape());
        x.iter().next().copied().unwrap_or(f32::NAN)
    }

    /// Whether a gradient flows to `v` (it is or depends on a trainable leaf).
    pub fn needs_grad(&self, v: Var) -> bool {
        self.nodes[v.0].needs_grad
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Reverse-mode differentiation of a scalar `loss`: dloss/dv for every leaf `v` that
    /// receives a gradient.
    ///
    /// # Panics
    /// If `loss` has more than one element: the gradient of a vector is not defined; reduce it
    /// first (or use [`Tape::backward_from`] with an explicit upstream gradient).
    #[track_caller]
    pub fn backward(&self, loss: Var) -> Gradients {
        let shape = self.value(loss).shape().to_vec();
        assert!(
            shape.iter().product::<usize>() == 1,
            "backward(): the loss must be a scalar, found shape {shape:?}; reduce it with sum or mean first"
        );
        self.backward_from(loss, Tensor::ones(IxDyn(&shape)))
    }

    /// Reverse-mode differentiation seeded with an upstream gradient `dy` of the same shape as
    /// `y`: returns the vector–Jacobian products dy·∂y/∂v for every leaf `v`.
    #[track_caller]
    pub fn backward_from(&self, y: Var, dy: Tensor) -> Gradients {
        self.backward_from_many(vec![(y, dy)])
    }

    /// Reverse-mode differentiation seeded at several nodes at once: for seeds (y_i, dy_i),
    /// returns Σ_i dy_i·∂y_i/∂v for every leaf `v`, the vector–Jacobian product of all the
    /// outputs in one pass. (It is the gradient of the scalar Σ_i ⟨y_i, dy_i⟩, with the dy_i
    /// held constant.) A step that computes values once and hands them to several tapes
    /// (`vae::step`) brings their gradients back to the parameters this way.
    ///
    /// # Panics
    /// If a seed's shape differs from its node's value.
    #[track_caller]
    pub fn backward_from_many(&self, seeds: Vec<(Var, Tensor)>) -> Gradients {
        let mut grads = Gradients { grads: vec![None; self.len()] };
        let mut last = 0;
        for (y, dy) in seeds {
            assert_eq!(
                self.value(y).shape(),
                dy.shape(),
                "backward_from(): the seed gradient must have the shape of Var({})",
                y.0
            );
            grads.add(y, Some(dy), self.value(y).shape());
            last = last.max(y.0);
        }
        for i in (0..=last).rev() {
            let node = &self.nodes[i];
            if !node.needs_grad || matches!(node.op, Op::Leaf) {
                continue; // leaves keep their gradient; constants never had one
            }
            // An interior gradient is used once, here, then dropped to free its memory.
            let Some(dy) = grads.grads[i].take() else { continue };
            self.backward_node(&node.op, &node.value, dy, &mut grads);
        }
        grads
    }

    /// One step of the chain rule: from dy (the gradient of node `y`) to its inputs' gradients.
    /// One arm per op; each calls its family's `*_backward`, which returns the contributions,
    /// and `grads.add` accumulates them (+=), so a value used twice receives the sum. dy is
    /// handed over: a sum passes it on as it is, an elementwise derivative overwrites it.
    fn backward_node(&self, op: &Op, y: &Tensor, dy: Tensor, grads: &mut Gradients) {
        let v = |x: &Var| self.value(*x);
        let need = |x: &Var| self.needs_grad(*x);
        let mut g = Accumulate { grads, tape: self };
        match op {
            Op::Leaf => {}
            Op::Add(a, b) => {
                let (da, db) = elementwise::add_backward(v(b).shape(), dy, need(a), need(b));
                g.add(*a, da);
                g.add(*b, db);
            }
            Op::Sub(a, b) => {
                let (da, db) = elementwise::sub_backward(v(b).shape(), dy, need(a), need(b));
                g.add(*a, da);
                g.add(*b, db);
            }
            Op::Mul(a, b) => {
                let (da, db) = elementwise::mul_backward(v(a), v(b), &dy, need(a), need(b));
                g.add(*a, da);
                g.add(*b, db);
            }
            Op::Div(a, b) => {
                let (da, db) = elementwise::div_backward(v(a), v(b), &dy, need(a), need(b));
                g.add(*a, da);
                g.add(*b, db);
            }
            Op::Neg(x) => g.add(*x, Some(elementwise::neg_backward(dy))),
            Op::Scale(x, c) => g.add(*x, Some(elementwise::scale_backward(*c, dy))),
            Op::Exp(x) => g.add(*x, Some(elementwise::exp_backward(y, dy))),
            Op::Log(x) => g.add(*x, Some(elementwise::log_backward(v(x), dy))),
            Op::Sqrt(x) => g.add(*x, Some(elementwise::sqrt_backward(y, dy))),
            Op::Square(x) => g.add(*x, Some(elementwise::square_backward(v(x), dy))),
            Op::Relu(x) => g.add(*x, Some(elementwise::relu_backward(v(x), dy))),
            Op::LeakyRelu(x, a) => g.add(*x, Some(elementwise::leaky_relu_backward(v(x), *a, dy))),
            Op::Elu(x) => g.add(*x, Some(elementwise::elu_backward(y, dy))),
            Op::Sigmoid(x) => g.add(*x, Some(elementwise::sigmoid_backward(y, dy))),
            Op::Tanh(x) => g.add(*x, Some(elementwise::tanh_backward(y, dy))),
            Op::Softplus(x) => g.add(*x, Some(elementwise::softplus_backward(v(x), dy))),
            Op::MatMul { a, b, b_transposed, a_sparse } => {
                let (da, db) =
                    matmul::matmul_backward(v(a), v(b), *b_transposed, a_sparse.as_ref(), &dy, need(a), need(b));
                g.add(*a, da);
                g.add(*b, db);
            }
            Op::Sum(x) => g.add(*x, Some(reduce::sum_backward(v(x), &dy))),
            Op::Mean(x) => g.add(*x, Some(reduce::mean_backward(v(x), &dy))),
            Op::SumAxis(x, axis) => g.add(*x, Some(reduce::sum_axis_backward(v(x), *axis, &dy))),
            Op::MeanAxis(x, axis) => g.add(*x, Some(reduce::mean_axis_backward(v(x), *axis, &dy))),
            Op::LogSumExp(x, axis) => g.add(*x, Some(reduce::log_sum_exp_backward(v(x), y, *axis, &dy))),
            Op::Reshape(x) => g.add(*x, Some(shape::reshape_backward(v(x), dy))),
            Op::Transpose(x) => g.add(*x, Some(shape::transpose_backward(&dy))),
            Op::Slice { x, axis, start } => g.add(*x, Some(shape::slice_backward(v(x), *axis, *start, &dy))),
            Op::Concat(xs, axis) => {
                for (x, dx) in xs.iter().zip(shape::concat_backward(xs, *axis, self, &dy)) {
                    g.add(*x, dx);
                }
            }
            Op::Permute(x, axes) => g.add(*x, Some(shape::permute_backward(axes, &dy))),
            Op::GatherRows { table, rows } => g.add(*table, Some(shape::gather_rows_backward(v(table), rows, &dy))),
            Op::Conv2d { x, w, b, geom } => {
                let (dx, dw, db) = conv::conv2d_backward(v(x), v(w), *geom, &dy, need(x), need(w));
                g.add(*x, dx);
                g.add(*w, dw);
                if let Some(b) = b.filter(|b| need(b)) {
                    g.add(b, Some(db));
                }
            }
            Op::ConvTranspose2d { x, w, b, geom } => {
                let (dx, dw, db) = conv::conv_transpose2d_backward(v(x), v(w), *geom, &dy, need(x), need(w));
                g.add(*x, dx);
                g.add(*w, dw);
                if let Some(b) = b.filter(|b| need(b)) {
                    g.add(b, Some(db));
                }
            }
            Op::BceWithLogits { logits, target } => {
                g.add(*logits, Some(loss::bce_with_logits_backward(v(logits), v(target), &dy)))
            }
            Op::GaussianNll { mean, target, sigma } => {
                g.add(*mean, Some(loss::gaussian_nll_backward(v(mean), v(target), *sigma, &dy)))
            }
            Op::DLogisticNll { mean, log_scale, target } => {
                let (dmean, dlog_scale) = loss::dlogistic_nll_backward(v(mean), v(log_scale), v(target), &dy);
                g.add(*mean, Some(dmean));
                g.add(*log_scale, Some(dlog_scale));
            }
            Op::DLogisticLogProb { mean, log_scale, target } => {
                let (dmean, dlog_scale) = loss::dlogistic_log_prob_backward(v(mean), v(log_scale), v(target), &dy);
                g.add(*mean, Some(dmean));
                g.add(*log_scale, Some(dlog_scale));
            }
            Op::KlStdNormal { mu, logvar } => {
                let (dmu, dlogvar) = loss::kl_std_normal_backward(v(mu), v(logvar), &dy);
                g.add(*mu, Some(dmu));
                g.add(*logvar, Some(dlogvar));
            }
        }
    }
}

impl Op {
    /// The nodes this op reads.
    pub fn inputs(&self) -> Vec<Var> {
        match self {
            Op::Leaf => vec![],
            Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) | Op::Div(a, b) => vec![*a, *b],
            Op::MatMul { a, b, .. } => vec![*a, *b],
            Op::Neg(x)
            | Op::Scale(x, _)
            | Op::Exp(x)
            | Op::Log(x)
            | Op::Sqrt(x)
            | Op::Square(x)
            | Op::Relu(x)
            | Op::LeakyRelu(x, _)
            | Op::Elu(x)
            | Op::Sigmoid(x)
            | Op::Tanh(x)
            | Op::Softplus(x)
            | Op::Sum(x)
            | Op::Mean(x)
            | Op::SumAxis(x, _)
            | Op::MeanAxis(x, _)
            | Op::LogSumExp(x, _)
            | Op::Reshape(x)
            | Op::Transpose(x)
            | Op::Slice { x, .. } => vec![*x],
            Op::GatherRows { table, .. } => vec![*table],
            Op::Permute(x, _) => vec![*x],
            Op::Concat(xs, _) => xs.clone(),
            Op::Conv2d { x, w, b, .. } | Op::ConvTranspose2d { x, w, b, .. } => {
                let mut v = vec![*x, *w];
                v.extend(b);
                v
            }
            // Targets are constants of the loss: their gradient is never computed.
            Op::BceWithLogits { logits, .. } => vec![*logits],
            Op::GaussianNll { mean, .. } => vec![*mean],
            Op::DLogisticNll { mean, log_scale, .. } | Op::DLogisticLogProb { mean, log_scale, .. } => {
                vec![*mean, *log_scale]
            }
            Op::KlStdNormal { mu, logvar } => vec![*mu, *logvar],
        }
    }
}

/// The gradient store during one backward step, with the tape at hand so that every
/// contribution is checked against the shape of the value it belongs to.
struct Accumulate<'g, 't, 'p> {
    grads: &'g mut Gradients,
    tape: &'t Tape<'p>,
}

impl Accumulate<'_, '_, '_> {
    /// dv += d, after checking that d has v's shape.
    fn add(&mut self, v: Var, d: Option<Tensor>) {
        self.grads.add(v, d, self.tape.value(v).shape());
    }
}

/// The result of [`Tape::backward`]: the gradient of every leaf that needed one.
pub struct Gradients {
    grads: Vec<Option<Tensor>>,
}

impl Gradients {
    /// The gradient of `v`, or `None` when no gradient reached it (a constant, or unused).
    pub fn get(&self, v: Var) -> Option<&Tensor> {
        self.grads.get(v.0).and_then(Option::as_ref)
    }

    /// Moves the gradient of `v` out of the store.
    pub fn take(&mut self, v: Var) -> Option<Tensor> {
        self.grads.get_mut(v.0).and_then(Option::take)
    }

    /// Accumulates a contribution: dv += d (or dv = d when `v` has none yet).
    ///
    /// # Panics
    /// If `d` does not have the shape of `v`'s value: a backward returned a wrongly shaped
    /// gradient. This is a real check, on in every profile, so that a new op with such a bug
    /// fails at once (ndarray's `+=` would broadcast some wrong shapes without complaint).
    #[track_caller]
    fn add(&mut self, v: Var, d: Option<Tensor>, value_shape: &[usize]) {
        let Some(d) = d else { return };
        assert_eq!(
            d.shape(),
            value_shape,
            "backward: the gradient for Var({}) has shape {:?}, but its value has shape {:?}",
            v.0,
            d.shape(),
            value_shape
        );
        match &mut self.grads[v.0] {
            Some(acc) => *acc += &d,
            slot @ None => *slot = Some(d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backward that returned a [3] gradient for a [2, 3] value would be broadcast by `+=`
    /// without complaint; the store refuses it in every profile.
    #[test]
    #[should_panic(expected = "has shape [3], but its value has shape [2, 3]")]
    fn a_wrongly_shaped_gradient_is_refused() {
        let mut grads = Gradients { grads: vec![Some(Tensor::zeros(vec![2, 3]))] };
        grads.add(Var(0), Some(Tensor::zeros(vec![3])), &[2, 3]);
    }
}
