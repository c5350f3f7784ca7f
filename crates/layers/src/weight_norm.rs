//! Weight normalization (Salimans & Kingma 2016): a convolution whose weight is a direction and
//! a length per output channel, w_o = g_o · v_o / ‖v_o‖, so that the optimizer moves the length
//! and the direction separately; and its data-dependent initialization, which sets g and b so
//! that on a first batch every output channel has mean 0 and standard deviation 1 (times a
//! chosen scale).
//!
//! Shape legend
//! - N: batch, C_in / C_out: channels, K: kernel size (square)
//! - v [C_out, C_in, K, K], g [C_out, 1, 1, 1] (PyTorch's `weight_v`, `weight_g`), b `[C_out]`
//! - x [N, C_in, H, W] → y [N, C_out, H_o, W_o]
//!
//! ```text
//!   ‖v_o‖ = √(Σ_{c,i,j} v_ocij²),   w = v ⊙ (g / ‖v‖),   y = conv2d(x, w) + b
//! ```
//!
//! The gradient needs no code of its own: it flows through the ops w is made of (square, sum,
//! sqrt, div, mul), which give PyTorch's ∂L/∂g_o = ⟨∂L/∂w_o, v_o⟩/‖v_o‖ and
//! ∂L/∂v_o = (g_o/‖v_o‖)(∂L/∂w_o − (⟨∂L/∂w_o, v_o⟩/‖v_o‖²) v_o).

use rand::Rng;
use vae_autodiff::{ConvGeom, Tape, Tensor, Var};

use crate::init::uniform_fan_in;
use crate::params::{ParamId, ParamStore, ParamVars};

/// A weight-normalized 2-D convolution with bias.
#[derive(Clone, Debug)]
pub struct WnConv2d {
    /// The direction v [C_out, C_in, K, K], named `<name>.weight_v`.
    pub v: ParamId,
    /// The length g [C_out, 1, 1, 1], named `<name>.weight_g`.
    pub g: ParamId,
    /// b `[C_out]`, named `<name>.bias`.
    pub bias: ParamId,
    /// Stride and padding.
    pub geom: ConvGeom,
}

impl WnConv2d {
    /// v drawn as PyTorch draws a convolution's weight, g = ‖v‖ per channel (so that w starts
    /// as that weight, as PyTorch's `weight_norm` does), b = 0; a run then sets g and b from
    /// data ([`WnConv2d::init_from_data`]).
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
        let v = uniform_fan_in(&[c_out, c_in, kernel, kernel], fan_in, rng);
        let norms: Vec<f32> = v.outer_iter().map(|vo| vo.iter().map(|x| x * x).sum::<f32>().sqrt()).collect();
        let g = Tensor::from_shape_vec(vec![c_out, 1, 1, 1], norms).expect("one length per output channel");
        let v = store.add(&format!("{name}.weight_v"), v);
        let g = store.add(&format!("{name}.weight_g"), g);
        let bias = store.add(&format!("{name}.bias"), Tensor::zeros(vec![c_out]));
        Self { v, g, bias, geom }
    }

    /// w = v ⊙ (g / ‖v‖) [C_out, C_in, K, K] on the tape.
    pub fn weight(&self, tape: &mut Tape, p: &ParamVars) -> Var {
        let v = p.var(self.v);
        let shape = tape.value(v).shape().to_vec();
        let flat = tape.reshape(v, &[shape[0], shape[1] * shape[2] * shape[3]]);
        let v2 = tape.square(flat);
        let sum = tape.sum_axis(v2, 1);
        let norm = tape.sqrt(sum); // ‖v_o‖ [C_out]
        let norm = tape.reshape(norm, &[shape[0], 1, 1, 1]);
        let scale = tape.div(p.var(self.g), norm);
        tape.mul(v, scale)
    }

    /// y = conv2d(x, w) + b
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        let w = self.weight(tape, p);
        tape.conv2d(x, w, Some(p.var(self.bias)), self.geom)
    }

    /// Data-dependent initialization on the layer's input x [N, C_in, H, W] (values): with
    /// t = conv2d(x, v/‖v‖), per output channel the mean μ_o and standard deviation σ_o of t over
    /// N, H and W; then g_o = scale/σ_o and b_o = −scale·μ_o/σ_o, so that y = g·t + b has mean 0
    /// and standard deviation `scale` in every channel on this batch. Returns that y.
    pub fn init_from_data(&self, store: &mut ParamStore, x: &Tensor, scale: f32) -> Tensor {
        let c_out = store.get(self.v).shape()[0];
        let t = {
            let mut tape = Tape::new();
            let xv = tape.constant(x.clone());
            let unit = self.unit_weight(store);
            let w = tape.constant(unit);
            let t = tape.conv2d(xv, w, None, self.geom);
            tape.value(t).clone()
        };
        let (mut g, mut b) = (vec![0f32; c_out], vec![0f32; c_out]);
        for o in 0..c_out {
            let channel = t.index_axis(ndarray::Axis(1), o);
            let n = channel.len().max(1) as f64;
            let mean = channel.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = channel.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            let sd = (var + 1e-10).sqrt();
            g[o] = (scale as f64 / sd) as f32;
            b[o] = (-scale as f64 * mean / sd) as f32;
        }
        let mut y = t.clone();
        for o in 0..c_out {
            y.index_axis_mut(ndarray::Axis(1), o).mapv_inplace(|v| g[o] * v + b[o]);
        }
        store.values_mut()[self.g.0] = Tensor::from_shape_vec(vec![c_out, 1, 1, 1], g).expect("one length per channel");
        store.values_mut()[self.bias.0] = Tensor::from_shape_vec(vec![c_out], b).expect("one bias per channel");
        y
    }

    /// v/‖v‖, each output channel's direction as a unit vector.
    fn unit_weight(&self, store: &ParamStore) -> Tensor {
        let mut v = store.get(self.v).clone();
        for mut vo in v.outer_iter_mut() {
            let norm = vo.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
            vo.mapv_inplace(|x| x / norm);
        }
        v
    }
}
