//! The dense layer y = x·Wᵀ + b.
//!
//! Shape legend
//! - N: batch, I: input features, O: output features
//! - x [N, I], W [O, I] (PyTorch's layout), b [O] → y [N, O]

use rand::Rng;
use vae_autodiff::{Tape, Var};

use crate::init::uniform_fan_in;
use crate::params::{ParamId, ParamStore, ParamVars};

/// A dense (fully connected) layer; its gradient comes from the tape's `matmul_nt` and `add`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// W [O, I], named `<name>.weight`
    pub weight: ParamId,
    /// b [O], named `<name>.bias`
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
        let weight =
            store.add(&format!("{name}.weight"), uniform_fan_in(&[out_features, in_features], in_features, rng));
        let bias = store.add(&format!("{name}.bias"), uniform_fan_in(&[out_features], in_features, rng));
        Self { weight, bias, in_features, out_features }
    }

    /// y = x·Wᵀ + b
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        let xw = tape.matmul_nt(x, p.var(self.weight));
        tape.add(xw, p.var(self.bias))
    }
}
