//! A network body: dense layers, each followed by the hidden nonlinearity.
//!
//! Shape legend: N rows; widths W₀ (the input), W₁, …, W_L (the output).
//! x [N, W₀] → h₁ = act(x·W + b) [N, W₁] → … → h_L [N, W_L].

use rand::Rng;
use vae_autodiff::{Tape, Var};
use vae_layers::{Linear, ParamStore, ParamVars};

use crate::config::Activation;

/// Dense layers `<prefix>_fc1`, `<prefix>_fc2`, …, each followed by the activation. With no
/// hidden widths it is the identity.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
    width: usize,
}

impl Mlp {
    /// Layers from `input` through each width of `hidden`, in `params` under `<prefix>_fc<i>`
    /// (i from 1), with PyTorch's initialization drawn from `rng`.
    pub fn new(
        params: &mut ParamStore,
        prefix: &str,
        input: usize,
        hidden: &[usize],
        activation: Activation,
        rng: &mut impl Rng,
    ) -> Self {
        let mut width = input;
        let mut layers = Vec::with_capacity(hidden.len());
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(Linear::new(params, &format!("{prefix}_fc{}", i + 1), width, h, rng));
            width = h;
        }
        Self { layers, activation, width }
    }

    /// The width of the output, W_L (the input's when there are no layers).
    pub fn width(&self) -> usize {
        self.width
    }

    /// x [N, W₀] → [N, W_L].
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        self.layers.iter().fold(x, |h, fc| {
            let a = fc.forward(tape, p, h);
            self.activation.apply(tape, a)
        })
    }
}
