//! MADE (Germain et al. 2015): a dense network whose outputs are autoregressive in its inputs,
//! made so by masks on its weights. Each input d gets a degree deg(d) in 1..J, each hidden unit
//! a degree in 1..J−1, and a weight is kept only where information may flow:
//!
//! ```text
//!   input d  → hidden k   kept iff  deg(k) ≥ deg(d)
//!   hidden k → output d   kept iff  deg(d) > deg(k)
//! ```
//!
//! so output d depends only on the inputs of lower degree: ∂out_d/∂z_d' = 0 unless
//! deg(d') < deg(d), and the Jacobian, in degree order, is strictly lower triangular.
//!
//! Shape legend: M rows, J inputs (and J outputs per head), W hidden units; z [M, J] →
//! hidden [M, W] → each head [M, J].

use rand::Rng;
use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::{Linear, ParamStore, ParamVars};

use crate::config::Activation;

/// A dense layer y = x·(W ⊙ mask) + b: [`Linear`]'s parameters (PyTorch's names and
/// initialization), with a constant 0/1 mask [I, O] on the weight.
#[derive(Clone, Debug)]
pub struct MaskedLinear {
    /// The layer's weight and bias.
    pub linear: Linear,
    /// Which weights are kept, [I, O] as the weight is held.
    pub mask: Tensor,
}

impl MaskedLinear {
    /// y = x·(W ⊙ mask) + b. The gradient of a masked weight is 0: dW = (xᵀ·dy) ⊙ mask.
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        let mask = tape.constant(self.mask.clone());
        let w = tape.mul(p.var(self.linear.weight), mask);
        let xw = tape.matmul(x, w);
        tape.add(xw, p.var(self.linear.bias))
    }
}

/// A one-hidden-layer MADE with two heads (an IAF step's m and s).
#[derive(Clone, Debug)]
pub struct Made {
    /// J inputs → W hidden units.
    pub hidden: MaskedLinear,
    /// W → J: the first head.
    pub head_m: MaskedLinear,
    /// W → J: the second head.
    pub head_s: MaskedLinear,
    /// The hidden layer's nonlinearity.
    pub activation: Activation,
}

/// The degrees of J inputs, 1..=J, or J..=1 when `reversed`.
pub fn input_degrees(j: usize, reversed: bool) -> Vec<usize> {
    (0..j).map(|d| if reversed { j - d } else { d + 1 }).collect()
}

/// The degrees of W hidden units: 1, 2, …, J−1, 1, 2, … (1 throughout when J = 1, where no
/// output may depend on any input).
pub fn hidden_degrees(w: usize, j: usize) -> Vec<usize> {
    (0..w).map(|k| k % (j.max(2) - 1) + 1).collect()
}

/// The mask [I, O] of a layer from inputs of degrees `from` to outputs of degrees `to`,
/// keeping a weight where `keep(from, to)`.
fn mask(from: &[usize], to: &[usize], keep: impl Fn(usize, usize) -> bool) -> Tensor {
    Tensor::from_shape_fn(vec![from.len(), to.len()], |ix| f32::from(u8::from(keep(from[ix[0]], to[ix[1]]))))
}

impl Made {
    /// `<name>.hidden`, `<name>.m`, `<name>.s` in `store`, with PyTorch's initialization; the
    /// inputs' degrees in reverse order when `reversed` (so that stacked steps alternate).
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        (j, w): (usize, usize),
        reversed: bool,
        activation: Activation,
        rng: &mut impl Rng,
    ) -> Self {
        let (deg_in, deg_hidden) = (input_degrees(j, reversed), hidden_degrees(w, j));
        let into_hidden = mask(&deg_in, &deg_hidden, |d, k| k >= d);
        let out_of_hidden = mask(&deg_hidden, &deg_in, |k, d| d > k);
        let layer = |store: &mut ParamStore, part: &str, (i, o), mask: &Tensor, rng: &mut _| MaskedLinear {
            linear: Linear::new(store, &format!("{name}.{part}"), i, o, rng),
            mask: mask.clone(),
        };
        let hidden = layer(store, "hidden", (j, w), &into_hidden, rng);
        let head_m = layer(store, "m", (w, j), &out_of_hidden, rng);
        let head_s = layer(store, "s", (w, j), &out_of_hidden, rng);
        Made { hidden, head_m, head_s, activation }
    }

    /// The two heads at z [M, J]: (m, s), each [M, J], autoregressive in z.
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, z: Var) -> (Var, Var) {
        let a = self.hidden.forward(tape, p, z);
        let h = self.activation.apply(tape, a);
        (self.head_m.forward(tape, p, h), self.head_s.forward(tape, p, h))
    }
}
