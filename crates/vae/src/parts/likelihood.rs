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
//!   a mixture of M, out = [logits, m, s] (each M·D):
//!                 −log p(x|h) = −Σ_d log Σ_k π_kd P(x_d | m_kd, e^s_kd),   mean Σ_k π_kd m_kd
//! ```

use vae_autodiff::{Tape, Var};

use crate::config::Likelihood;

impl Likelihood {
    /// O: the decoder outputs per pixel value (the discretized logistic's mean and log-scale,
    /// and with M > 1 components, M weights' logits, M means and M log-scales).
    pub fn outputs_per_value(self) -> usize {
        match self {
            Likelihood::DLogistic { mixtures: 1 } => 2,
            Likelihood::DLogistic { mixtures } => 3 * mixtures,
            Likelihood::Bernoulli | Likelihood::Gaussian { .. } => 1,
        }
    }

    /// Whether p(x|h) is a distribution over 8-bit pixel values, so that −log p(x) is a number
    /// of bits per dimension comparable with other models of the same 8-bit data.
    pub fn is_discrete_8bit(self) -> bool {
        matches!(self, Likelihood::DLogistic { .. })
    }

    /// The decoder output [N, O·D] cut into its O parts of D values, in order.
    fn parts(self, tape: &mut Tape, out: Var) -> Vec<Var> {
        let o = self.outputs_per_value();
        let d = tape.value(out).shape()[1] / o;
        (0..o).map(|i| if o == 1 { out } else { tape.slice(out, 1, i * d, d) }).collect()
    }

    /// −log p(x|h) per row, in nats, from the decoder output `out` [N, O·D] and the pixels
    /// `x` [N, D]. `[N]`.
    pub fn neg_log_prob(self, tape: &mut Tape, out: Var, x: Var) -> Var {
        match self {
            Likelihood::Bernoulli => tape.bce_with_logits(out, x),
            Likelihood::Gaussian { sigma } => tape.gaussian_nll(out, x, sigma),
            Likelihood::DLogistic { mixtures: 1 } => {
                let p = self.parts(tape, out);
                tape.dlogistic_nll(p[0], p[1], x)
            }
            Likelihood::DLogistic { mixtures } => mixture_nll(tape, out, x, mixtures),
        }
    }

    /// The mean of p(x|h) given the decoder output [N, O·D]: pixel probabilities σ(out) for
    /// Bernoulli, the mean output itself otherwise (the discretized logistic's mean is its
    /// location, up to the clipping of the edge bins; a mixture's, Σ_k π_k m_k). [N, D].
    pub fn mean(self, tape: &mut Tape, out: Var) -> Var {
        match self {
            Likelihood::Bernoulli => tape.sigmoid(out),
            Likelihood::Gaussian { .. } => out,
            Likelihood::DLogistic { mixtures: 1 } => self.parts(tape, out)[0],
            Likelihood::DLogistic { mixtures } => {
                let (log_pi, means, _) = mixture_parts(tape, out, mixtures);
                let pi = tape.exp(log_pi);
                let weighted = tape.mul(pi, means);
                tape.sum_axis(weighted, 1)
            }
        }
    }
}

/// A mixture's decoder output [N, 3·M·D] as (log π [N, M, D], means, log-scales [N, M, D]):
/// the first M·D outputs are the weights' logits (component k's D values together), then the
/// means, then the log-scales; log π = logits − logsumexp_k logits.
fn mixture_parts(tape: &mut Tape, out: Var, m: usize) -> (Var, Var, Var) {
    let n = tape.value(out).shape()[0];
    let d = tape.value(out).shape()[1] / (3 * m);
    let mut part = |i: usize| {
        let p = tape.slice(out, 1, i * m * d, m * d);
        tape.reshape(p, &[n, m, d])
    };
    let (logits, means, log_scales) = (part(0), part(1), part(2));
    let norm = tape.log_sum_exp(logits, 1); // [N, D]
    let norm = tape.reshape(norm, &[n, 1, d]);
    let log_pi = tape.sub(logits, norm);
    (log_pi, means, log_scales)
}

/// −log Σ_k π_k P(x | m_k, s_k) per row, each value its own mixture of M discretized logistics:
/// log p(x_d) = logsumexp_k (log π_kd + log P(x_d | m_kd, s_kd)), summed over d. `[N]`.
fn mixture_nll(tape: &mut Tape, out: Var, x: Var, m: usize) -> Var {
    let (log_pi, means, log_scales) = mixture_parts(tape, out, m);
    let (n, d) = (tape.value(x).shape()[0], tape.value(x).shape()[1]);
    let copies = vec![x; m];
    let xs = tape.concat(&copies, 1); // the pixels once per component, [N, M·D]
    let xs = tape.reshape(xs, &[n, m, d]);
    let log_p = tape.dlogistic_log_prob(means, log_scales, xs); // [N, M, D]
    let joint = tape.add(log_pi, log_p);
    let per_value = tape.log_sum_exp(joint, 1); // [N, D]
    let per_row = tape.sum_axis(per_value, 1);
    tape.neg(per_row)
}
