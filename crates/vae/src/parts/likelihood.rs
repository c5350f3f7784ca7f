//! The likelihood p(x|h) of the pixels given the decoder's output, as the two things a model
//! needs of it: the negative log-density (the reconstruction term) and the mean (the picture).
//!
//! Shape legend: N rows, D pixels, O outputs per pixel (1, or 2 for the discretized logistic);
//! out [N, O·D], x [N, D] → −log p(x|h) `[N]`, mean [N, D].
//!
//! ```text
//!   Bernoulli on logits a:  −log p(x|h) = Σ_d softplus(a_d) − x_d·a_d,     mean σ(a)
//!   Gaussian, fixed σ:      −log p(x|h) = Σ_d (x_d − a_d)²/2σ² + ln σ + ½ ln 2π,   mean a
//!   discretized logistic, out = [m, s]:  −log p(x|h) = −Σ_d log P(x_d | m_d, e^s_d),   mean m
//! ```

use vae_autodiff::{Tape, Var};

use crate::config::Likelihood;

impl Likelihood {
    /// O: the decoder outputs per pixel value (the discretized logistic's mean and log-scale).
    pub fn outputs_per_value(self) -> usize {
        match self {
            Likelihood::DLogistic => 2,
            Likelihood::Bernoulli | Likelihood::Gaussian { .. } => 1,
        }
    }

    /// Whether p(x|h) is a distribution over 8-bit pixel values, so that −log p(x) is a number
    /// of bits per dimension comparable with other models of the same 8-bit data.
    pub fn is_discrete_8bit(self) -> bool {
        matches!(self, Likelihood::DLogistic)
    }

    /// The decoder output [N, O·D] split into its O parts, each [N, D].
    fn parts(self, tape: &mut Tape, out: Var) -> (Var, Option<Var>) {
        if self.outputs_per_value() == 1 {
            return (out, None);
        }
        let d = tape.value(out).shape()[1] / 2;
        (tape.slice(out, 1, 0, d), Some(tape.slice(out, 1, d, d)))
    }

    /// −log p(x|h) per row, in nats, from the decoder output `out` [N, O·D] and the pixels
    /// `x` [N, D]. `[N]`.
    pub fn neg_log_prob(self, tape: &mut Tape, out: Var, x: Var) -> Var {
        match (self, self.parts(tape, out)) {
            (Likelihood::Bernoulli, (logits, _)) => tape.bce_with_logits(logits, x),
            (Likelihood::Gaussian { sigma }, (mean, _)) => tape.gaussian_nll(mean, x, sigma),
            (Likelihood::DLogistic, (mean, log_scale)) => {
                tape.dlogistic_nll(mean, log_scale.expect("two outputs per value"), x)
            }
        }
    }

    /// The mean of p(x|h) given the decoder output [N, O·D]: pixel probabilities σ(out) for
    /// Bernoulli, the mean output itself otherwise (the discretized logistic's mean is its
    /// location, up to the clipping of the edge bins). [N, D].
    pub fn mean(self, tape: &mut Tape, out: Var) -> Var {
        let (first, _) = self.parts(tape, out);
        match self {
            Likelihood::Bernoulli => tape.sigmoid(first),
            Likelihood::Gaussian { .. } | Likelihood::DLogistic => first,
        }
    }
}
