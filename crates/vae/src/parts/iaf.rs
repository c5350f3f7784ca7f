//! An inverse autoregressive flow step (Kingma et al. 2016) on a Gaussian layer's sample: a
//! [`Made`] reads z and gives (m, s); with σ = sigmoid(s), the stable update
//!
//! ```text
//!   z' = σ ⊙ z + (1 − σ) ⊙ m,          log q(z') = log q(z) − Σ_j log σ_j,
//! ```
//!
//! since m_j and σ_j depend only on the z of lower degree, ∂z'/∂z is triangular in degree order
//! with σ on its diagonal: log |det ∂z'/∂z| = Σ_j log σ_j. Steps alternate the order of z
//! (reversed degrees), so that every unit of z can depend on every other after two.
//!
//! Shape legend: M rows, J latent units: z [M, J] → z' [M, J], log σ summed `[M]`.
//!
//! The s head starts with a bias of [`S_BIAS`], so σ = sigmoid(s) starts near sigmoid(1) ≈
//! 0.73 and the step near an identity plus a small move: the flow begins as the plain
//! Gaussian and learns to depart from it. (Kingma et al. also feed each MADE a context h
//! from the encoder; these steps read z alone.)

use rand::Rng;
use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::{ParamStore, ParamVars};

use crate::config::Activation;
use crate::parts::made::Made;

/// The initial bias of the s head.
pub const S_BIAS: f32 = 1.0;

/// One IAF step.
#[derive(Clone, Debug)]
pub struct IafStep {
    /// The autoregressive network giving m and s.
    pub made: Made,
}

impl IafStep {
    /// `<name>.hidden`, `<name>.m`, `<name>.s` for J latent units and W hidden units; the
    /// order of z reversed when `reversed`.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        (j, w): (usize, usize),
        reversed: bool,
        activation: Activation,
        rng: &mut impl Rng,
    ) -> Self {
        let made = Made::new(store, name, (j, w), reversed, activation, rng);
        let bias = made.head_s.linear.bias;
        store.values_mut()[bias.0] = Tensor::from_elem(vec![j], S_BIAS);
        IafStep { made }
    }

    /// z' = σ ⊙ z + (1 − σ) ⊙ m for z [M, J], and Σ_j log σ_j `[M]`, the log-determinant of
    /// ∂z'/∂z.
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, z: Var) -> (Var, Var) {
        let (z_new, minus_log_sigma) = self.forward_units(tape, p, z);
        let sum = tape.sum_axis(minus_log_sigma, 1);
        (z_new, tape.neg(sum))
    }

    /// z' as [`IafStep::forward`] gives it, and −log σ [M, J], each unit's share of the
    /// log-determinant (with the sign it takes in log q(z')).
    pub fn forward_units(&self, tape: &mut Tape, p: &ParamVars, z: Var) -> (Var, Var) {
        let (m, s) = self.made.forward(tape, p, z);
        let sigma = tape.sigmoid(s);
        // σ ⊙ z + (1 − σ) ⊙ m = m + σ ⊙ (z − m)
        let from_m = tape.sub(z, m);
        let gated = tape.mul(sigma, from_m);
        let z_new = tape.add(m, gated);
        // log σ = −softplus(−s), finite for any s.
        let minus_s = tape.neg(s);
        (z_new, tape.softplus(minus_s))
    }
}
