//! The Gaussian stochastic layer: a net that outputs a diagonal Gaussian, and the Gaussian as a
//! value on the tape that can be sampled and scored.
//!
//! Shape legend: M rows, I input width, J units of the latent; input [M, I] → mu, logvar
//! [M, J]; eps, h [M, J]; log-densities `[M]`.
//!
//! ```text
//!   N(h; mu, diag(exp(logvar)))
//!   sample:     h = mu + exp(½·logvar) ⊙ eps,   eps ~ N(0, I)          (reparameterization)
//!   log-density at any h:
//!     log N(h; mu, σ²) = −½ Σ_j [ (h_j − mu_j)²·exp(−logvar_j) + logvar_j ] − (J/2)·ln 2π
//!   at its own sample ((h − mu)/σ = eps):
//!     log N(h; mu, σ²) = −½ Σ_j [ eps_j² + logvar_j ] − (J/2)·ln 2π
//! ```
//!
//! The second form is the first with eps held fixed: as a function of (mu, logvar) it is the
//! same function, so its gradient is the same total derivative, with fewer ops.

use rand::Rng;
use vae_autodiff::loss::HALF_LN_2PI;
use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::{Linear, ParamStore, ParamVars};

use crate::config::Activation;
use crate::parts::Mlp;

/// A diagonal Gaussian N(mu, diag(exp(logvar))) whose parameters are nodes of a tape.
#[derive(Clone, Copy, Debug)]
pub struct Gaussian {
    /// The mean [M, J].
    pub mu: Var,
    /// The log-variance [M, J].
    pub logvar: Var,
}

impl Gaussian {
    /// h = mu + exp(½·logvar) ⊙ eps for eps [M, J] (a constant of the tape): a sample that is
    /// a differentiable function of (mu, logvar).
    pub fn sample(&self, tape: &mut Tape, eps: Var) -> Var {
        let half_logvar = tape.scale(self.logvar, 0.5);
        let std = tape.exp(half_logvar); // σ = exp(½·logvar)
        let noise = tape.mul(std, eps);
        tape.add(self.mu, noise)
    }

    /// log N(h; mu, diag(exp(logvar))) per row, at any h [M, J]. `[M]`.
    pub fn log_prob(&self, tape: &mut Tape, h: Var) -> Var {
        let j = tape.value(h).shape()[1] as f32;
        let diff = tape.sub(h, self.mu);
        let diff2 = tape.square(diff);
        let neg_logvar = tape.scale(self.logvar, -1.0);
        let precision = tape.exp(neg_logvar); // 1/σ² = exp(−logvar)
        let scaled = tape.mul(diff2, precision);
        let both = tape.add(scaled, self.logvar);
        let sum = tape.sum_axis(both, 1);
        let half = tape.scale(sum, -0.5);
        let norm = tape.constant(Tensor::from_elem(vec![], -j * HALF_LN_2PI));
        tape.add(half, norm)
    }

    /// log N(h; mu, diag(exp(logvar))) per row at the layer's own sample h = mu + σ ⊙ eps:
    /// [`log_prob_of_own_sample`] with this Gaussian's logvar. `[M]`.
    pub fn log_prob_of_sample(&self, tape: &mut Tape, eps: Var) -> Var {
        log_prob_of_own_sample(tape, self.logvar, eps)
    }
}

/// log N(h; mu, diag(exp(logvar))) per row for h = mu + exp(½·logvar) ⊙ eps, from logvar and
/// eps [M, J]: since (h − mu)/σ = eps, it is −½ Σ_j (eps_j² + logvar_j) − (J/2)·ln 2π (mu
/// drops out). `[M]`.
pub fn log_prob_of_own_sample(tape: &mut Tape, logvar: Var, eps: Var) -> Var {
    let j = tape.value(eps).shape()[1] as f32;
    let eps2 = tape.square(eps);
    let sum_eps2 = tape.sum_axis(eps2, 1);
    let sum_logvar = tape.sum_axis(logvar, 1);
    let both = tape.add(sum_eps2, sum_logvar);
    let half = tape.scale(both, -0.5);
    let norm = tape.constant(Tensor::from_elem(vec![], -j * HALF_LN_2PI));
    tape.add(half, norm)
}

/// A stochastic layer: a body `<prefix>_fc1, …` and two heads `<prefix>_mu`,
/// `<prefix>_logvar` that read its output: input [M, I] → N(mu, diag(exp(logvar))) over J
/// units. The recognition layers q(h1|x), q(h2|h1) and the learned conditional prior p(h1|h2)
/// are all of this kind.
#[derive(Clone, Debug)]
pub struct GaussianLayer {
    body: Mlp,
    mu: Linear,
    logvar: Linear,
}

impl GaussianLayer {
    /// A layer from `input` values through the `hidden` widths to `latent` Gaussian units.
    pub fn new(
        params: &mut ParamStore,
        prefix: &str,
        input: usize,
        hidden: &[usize],
        latent: usize,
        activation: Activation,
        rng: &mut impl Rng,
    ) -> Self {
        let body = Mlp::new(params, prefix, input, hidden, activation, rng);
        let mu = Linear::new(params, &format!("{prefix}_mu"), body.width(), latent, rng);
        let logvar = Linear::new(params, &format!("{prefix}_logvar"), body.width(), latent, rng);
        Self { body, mu, logvar }
    }

    /// J, the units of the Gaussian.
    pub fn latent(&self) -> usize {
        self.mu.out_features
    }

    /// input [M, I] → the Gaussian over [M, J].
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, input: Var) -> Gaussian {
        let h = self.body.forward(tape, p, input);
        Gaussian { mu: self.mu.forward(tape, p, h), logvar: self.logvar.forward(tape, p, h) }
    }
}
