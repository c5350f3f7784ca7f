//! Weight normalization (Salimans & Kingma 2016): a convolution whose weight is a direction and
//! a length per output channel, w_o = g_o · v_o / ‖v_o‖, so that the optimizer moves the length
//! and the direction separately; and its data-dependent initialization, which sets g and b so
//! that on a first batch every output channel has mean 0 and standard deviation 1 (times a
//! chosen scale).
//!
//! Shape legend
//! - N: batch, C_in / C_out: channels, K: kernel size (square)
//! - v [C_out, C_in, K, K], g [C_out, 1, 1, 1] (PyTorch's `weight_v`, `weight_g`), b `[C_out]`;
//!   a transposed convolution's v [C_in, C_out, K, K] and g [1, C_out, 1, 1] (one length per
//!   output channel there too, so that the data-dependent start can scale each output)
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
    /// A transposed convolution (v [C_in, C_out, K, K]) rather than a convolution.
    pub transposed: bool,
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
        Self::with_direction(store, name, v, geom, false)
    }

    /// A weight-normalized transposed convolution, v drawn as PyTorch draws a
    /// `ConvTranspose2d`'s weight (fan-in C_out·K·K), g = ‖v‖ per output channel, b = 0.
    pub fn new_transposed(
        store: &mut ParamStore,
        name: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        geom: ConvGeom,
        rng: &mut impl Rng,
    ) -> Self {
        let v = uniform_fan_in(&[c_in, c_out, kernel, kernel], c_out * kernel * kernel, rng);
        Self::with_direction(store, name, v, geom, true)
    }

    /// The layer with direction v and g = ‖v‖ per output channel (axis 0, or 1 when
    /// `transposed`), so that w starts equal to v.
    fn with_direction(store: &mut ParamStore, name: &str, v: Tensor, geom: ConvGeom, transposed: bool) -> Self {
        let out_axis = usize::from(transposed);
        let c_out = v.shape()[out_axis];
        let norms: Vec<f32> =
            v.axis_iter(ndarray::Axis(out_axis)).map(|vo| vo.iter().map(|x| x * x).sum::<f32>().sqrt()).collect();
        let g_shape = if transposed { vec![1, c_out, 1, 1] } else { vec![c_out, 1, 1, 1] };
        let g = Tensor::from_shape_vec(g_shape, norms).expect("one length per output channel");
        let v = store.add(&format!("{name}.weight_v"), v);
        let g = store.add(&format!("{name}.weight_g"), g);
        let bias = store.add(&format!("{name}.bias"), Tensor::zeros(vec![c_out]));
        Self { v, g, bias, geom, transposed }
    }

    /// The convolution itself, of x by a weight w, with the bias if given.
    fn apply(&self, tape: &mut Tape, x: Var, w: Var, bias: Option<Var>) -> Var {
        match self.transposed {
            false => tape.conv2d(x, w, bias, self.geom),
            true => tape.conv_transpose2d(x, w, bias, self.geom),
        }
    }

    /// w = v ⊙ (g / ‖v‖) on the tape, in v's shape.
    pub fn weight(&self, tape: &mut Tape, p: &ParamVars) -> Var {
        let v = p.var(self.v);
        let shape = tape.value(v).shape().to_vec();
        let v2 = tape.square(v);
        // Σ over every axis but the output channel's: [C_out].
        let sum = match self.transposed {
            false => {
                let flat = tape.reshape(v2, &[shape[0], shape[1] * shape[2] * shape[3]]);
                tape.sum_axis(flat, 1)
            }
            true => {
                let over_inputs = tape.sum_axis(v2, 0); // [C_out, K, K]
                let flat = tape.reshape(over_inputs, &[shape[1], shape[2] * shape[3]]);
                tape.sum_axis(flat, 1)
            }
        };
        let norm = tape.sqrt(sum); // ‖v_o‖
        let g_shape = tape.value(p.var(self.g)).shape().to_vec();
        let norm = tape.reshape(norm, &g_shape);
        let scale = tape.div(p.var(self.g), norm);
        tape.mul(v, scale)
    }

    /// y = conv(x, w) + b (a transposed convolution if the layer is one).
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        let w = self.weight(tape, p);
        self.apply(tape, x, w, Some(p.var(self.bias)))
    }

    /// Data-dependent initialization on the layer's input x [N, C_in, H, W] (values): with
    /// t = conv2d(x, v/‖v‖), per output channel the mean μ_o and standard deviation σ_o of t over
    /// N, H and W; then g_o = scale/σ_o and b_o = −scale·μ_o/σ_o, so that y = g·t + b has mean 0
    /// and standard deviation `scale` in every channel on this batch. Returns that y.
    pub fn init_from_data(&self, store: &mut ParamStore, x: &Tensor, scale: f32) -> Tensor {
        let c_out = store.get(self.v).shape()[usize::from(self.transposed)];
        let t = {
            let mut tape = Tape::new();
            let xv = tape.constant(x.clone());
            let unit = self.unit_weight(store);
            let w = tape.constant(unit);
            let t = self.apply(&mut tape, xv, w, None);
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
        let g_shape = store.get(self.g).shape().to_vec();
        store.values_mut()[self.g.0] = Tensor::from_shape_vec(g_shape, g).expect("one length per channel");
        store.values_mut()[self.bias.0] = Tensor::from_shape_vec(vec![c_out], b).expect("one bias per channel");
        y
    }

    /// v/‖v‖, each output channel's direction as a unit vector.
    fn unit_weight(&self, store: &ParamStore) -> Tensor {
        let mut v = store.get(self.v).clone();
        for mut vo in v.axis_iter_mut(ndarray::Axis(usize::from(self.transposed))) {
            let norm = vo.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
            vo.mapv_inplace(|x| x / norm);
        }
        v
    }
}
