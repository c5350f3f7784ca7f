//! Convolution layers.
//!
//! Shape legend
//! - N: batch, C_in / C_out: channels, K: kernel size (square), H, W: spatial sizes
//! - `Conv2d`: x [N, C_in, H, W], W [C_out, C_in, K, K], b `[C_out]` → y [N, C_out, H_o, W_o]
//! - `ConvTranspose2d`: x [N, C_in, H, W], W [C_in, C_out, K, K], b `[C_out]` → y [N, C_out, H_o, W_o]

use rand::Rng;
use vae_autodiff::{ConvGeom, Tape, Var};

use crate::init::uniform_fan_in;
use crate::params::{ParamId, ParamStore, ParamVars};

/// A 2-D convolution with bias.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// W [C_out, C_in, K, K], named `<name>.weight`
    pub weight: ParamId,
    /// b `[C_out]`, named `<name>.bias`
    pub bias: ParamId,
    /// Stride and padding.
    pub geom: ConvGeom,
}

impl Conv2d {
    /// Creates the layer's parameters with PyTorch's initialization (fan_in = C_in·K·K).
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        geom: ConvGeom,
        rng: &mut impl Rng,
    ) -> Self {
        let fan_in = c_in * kernel * kernel;
        let weight = store.add(&format!("{name}.weight"), uniform_fan_in(&[c_out, c_in, kernel, kernel], fan_in, rng));
        let bias = store.add(&format!("{name}.bias"), uniform_fan_in(&[c_out], fan_in, rng));
        Self { weight, bias, geom }
    }

    /// y = conv2d(x, W) + b
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        tape.conv2d(x, p.var(self.weight), Some(p.var(self.bias)), self.geom)
    }
}

/// A 2-D transposed convolution with bias.
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    /// W [C_in, C_out, K, K], named `<name>.weight`
    pub weight: ParamId,
    /// b `[C_out]`, named `<name>.bias`
    pub bias: ParamId,
    /// Stride and padding.
    pub geom: ConvGeom,
}

impl ConvTranspose2d {
    /// Creates the layer's parameters with PyTorch's initialization (fan_in = C_out·K·K, read
    /// from dimension 1 of the weight as PyTorch does).
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        geom: ConvGeom,
        rng: &mut impl Rng,
    ) -> Self {
        let fan_in = c_out * kernel * kernel;
        let weight = store.add(&format!("{name}.weight"), uniform_fan_in(&[c_in, c_out, kernel, kernel], fan_in, rng));
        let bias = store.add(&format!("{name}.bias"), uniform_fan_in(&[c_out], fan_in, rng));
        Self { weight, bias, geom }
    }

    /// y = conv_transpose2d(x, W) + b
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        tape.conv_transpose2d(x, p.var(self.weight), Some(p.var(self.bias)), self.geom)
    }
}
