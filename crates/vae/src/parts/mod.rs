//! The parts a model is built from, each named as in the math and each in its own file.
//!
//! | part | file | what it is |
//! |---|---|---|
//! | [`Mlp`] | `mlp.rs` | a network body: dense layers, each followed by the nonlinearity |
//! | [`conv::ConvStack`], [`conv::DeconvStack`] | `conv.rs` | convolutional bodies: an encoder's convolutions, a decoder's transposed convolutions |
//! | [`Gaussian`], [`GaussianLayer`] | `gaussian.rs` | a diagonal Gaussian on the tape (sample, log-density); a net that outputs one (a stochastic layer) |
//! | [`crate::Likelihood`] | `likelihood.rs` | p(x\|h): Bernoulli on logits or Gaussian with fixed σ, as a negative log-density and a mean |
//! | [`standard_normal_log_prob`] | `prior.rs` | the prior p(z) = N(0, I) |
//! | [`made::Made`], [`made::MaskedLinear`] | `made.rs` | a network autoregressive in its input, by masked weights |
//! | [`iaf::IafStep`] | `iaf.rs` | an inverse autoregressive flow step on a Gaussian sample, with its log-determinant |
//! | [`resnet::ResBlock`] | `resnet.rs` | a residual block of weight-normalized convolutions with ELU |
//! | [`vamp::mixture_log_prob`] | `vamp.rs` | the VampPrior: the mixture of the posteriors at learned pseudo-inputs |
//! | [`codebook::quantize`] | `codebook.rs` | the VQ-VAE's nearest codes and straight-through copy |
//!
//! A learned conditional prior such as p(h1|h2) is a [`GaussianLayer`] reading h2; the VQ-VAE's
//! autoregressive code prior is [`crate::prior`]. A model composes parts into its log weights
//! ([`crate::objective::ImportanceWeighted`]), or, for the VQ-VAE, its named terms; the
//! objectives read only those.

pub mod codebook;
pub mod conv;
pub mod gaussian;
pub mod iaf;
pub mod likelihood;
pub mod made;
pub mod mlp;
pub mod prior;
pub mod resnet;
pub mod vamp;

pub use gaussian::{Gaussian, GaussianLayer};
pub use mlp::Mlp;
pub use prior::standard_normal_log_prob;

/// K copies of x [N, …] stacked along the first axis: [K·N, …], row k·N + n = row n. The
/// backward of the concatenation adds the K gradients back into x's.
pub fn tile(tape: &mut vae_autodiff::Tape, x: vae_autodiff::Var, k: usize) -> vae_autodiff::Var {
    if k == 1 {
        return x;
    }
    tape.concat(&vec![x; k], 0)
}
