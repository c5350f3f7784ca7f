//! Convolutional network bodies: a stack of convolutions, each followed by the nonlinearity (an
//! encoder's), and a stack of transposed convolutions with the nonlinearity between them but
//! not after the last, whose output is the decoder's logits or mean (a decoder's).
//!
//! Shape legend: N images; x [N, C, H, W] → [N, C', H', W'] through each layer in turn.

use vae_autodiff::{Tape, Var};
use vae_layers::{Conv2d, ConvTranspose2d, ParamVars};

use crate::config::Activation;

/// Convolutions, each followed by the activation.
#[derive(Clone, Debug)]
pub struct ConvStack {
    layers: Vec<Conv2d>,
    activation: Activation,
}

impl ConvStack {
    /// The stack of `layers`, in order.
    pub fn new(layers: Vec<Conv2d>, activation: Activation) -> Self {
        Self { layers, activation }
    }

    /// x [N, C, H, W] → act(conv_L(… act(conv_1(x)))).
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        self.layers.iter().fold(x, |h, conv| {
            let a = conv.forward(tape, p, h);
            self.activation.apply(tape, a)
        })
    }
}

/// Transposed convolutions with the activation after each but the last.
#[derive(Clone, Debug)]
pub struct DeconvStack {
    layers: Vec<ConvTranspose2d>,
    activation: Activation,
}

impl DeconvStack {
    /// The stack of `layers`, in order.
    ///
    /// # Panics
    /// If `layers` is empty: a decoder needs an output layer.
    pub fn new(layers: Vec<ConvTranspose2d>, activation: Activation) -> Self {
        assert!(!layers.is_empty(), "a stack of transposed convolutions needs at least one");
        Self { layers, activation }
    }

    /// The last layer, whose output is the decoder's (its bias sets the output bias).
    pub fn last(&self) -> &ConvTranspose2d {
        self.layers.last().expect("at least one layer")
    }

    /// h [N, C, H, W] → deconv_L(act(… act(deconv_1(h)))): no activation on the output.
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, h: Var) -> Var {
        let mut h = h;
        for (i, deconv) in self.layers.iter().enumerate() {
            h = deconv.forward(tape, p, h);
            if i + 1 < self.layers.len() {
                h = self.activation.apply(tape, h);
            }
        }
        h
    }
}
