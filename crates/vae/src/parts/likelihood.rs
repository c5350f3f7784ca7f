//! The likelihood p(x|h) of the pixels given the decoder's output, as the two things a model
//! needs of it: the negative log-density (the reconstruction term) and the mean (the picture).
//!
//! Shape legend: N rows, D pixels; out, x [N, D] → −log p(x|h) `[N]`, mean [N, D].
//!
//! ```text
//!   Bernoulli on logits a:  −log p(x|h) = Σ_d softplus(a_d) − x_d·a_d,     mean σ(a)
//!   Gaussian, fixed σ:      −log p(x|h) = Σ_d (x_d − a_d)²/2σ² + ln σ + ½ ln 2π,   mean a
//! ```

use vae_autodiff::{Tape, Var};

use crate::config::Likelihood;

impl Likelihood {
    /// −log p(x|h) per row, in nats, from the decoder output `out` and the pixels `x`, both
    /// [N, D]. `[N]`.
    pub fn neg_log_prob(self, tape: &mut Tape, out: Var, x: Var) -> Var {
        match self {
            Likelihood::Bernoulli => tape.bce_with_logits(out, x),
            Likelihood::Gaussian { sigma } => tape.gaussian_nll(out, x, sigma),
        }
    }

    /// The mean of p(x|h) given the decoder output [N, D]: pixel probabilities σ(out) for
    /// Bernoulli, `out` itself for Gaussian. [N, D].
    pub fn mean(self, tape: &mut Tape, out: Var) -> Var {
        match self {
            Likelihood::Bernoulli => tape.sigmoid(out),
            Likelihood::Gaussian { .. } => out,
        }
    }
}
