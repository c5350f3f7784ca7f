//! The dense layer y = x·W + b.
//!
//! Shape legend
//! - N: batch, I: input features, O: output features
//! - x [N, I], W [I, O], b `[O]` → y [N, O]
//!
//! PyTorch keeps the same matrix as its transpose, [O, I], and computes x·Wᵀ. Here W is kept
//! [I, O] so that row k of W is what input feature k adds to the output: when x is mostly zeros
//! (MNIST images are about 19% nonzero), `matmul` then multiplies only the nonzeros, reading
//! whole rows of W, and the gradient dW = xᵀ·dy comes out in the same layout. Checkpoints and
//! parameter names still use PyTorch's [O, I] (see `ParamStore::to_pytorch`).

use rand::Rng;
use vae_autodiff::{Tape, Var};

use crate::init::uniform_fan_in;
use crate::params::{ParamId, ParamStore, ParamVars};

/// A dense (fully connected) layer; its gradient comes from the tape's `matmul` and `add`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// W [I, O] (PyTorch's [O, I] transposed), named `<name>.weight`
    pub weight: ParamId,
    /// b `[O]`, named `<name>.bias`
    pub bias: ParamId,
    /// I
    pub in_features: usize,
    /// O
    pub out_features: usize,
}

impl Linear {
    /// Creates `<name>.weight` and `<name>.bias` in `store` with PyTorch's initialization.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        in_features: usize,
        out_features: usize,
        rng: &mut impl Rng,
    ) -> Self {
        // Drawn in PyTorch's layout, so the same seed gives the same values as before the
        // transpose.
        let weight = store
            .add_transposed(&format!("{name}.weight"), uniform_fan_in(&[out_features, in_features], in_features, rng));
        let bias = store.add(&format!("{name}.bias"), uniform_fan_in(&[out_features], in_features, rng));
        Self { weight, bias, in_features, out_features }
    }

    /// y = x·W + b
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        let xw = tape.matmul(x, p.var(self.weight));
        tape.add(xw, p.var(self.bias))
    }
}
