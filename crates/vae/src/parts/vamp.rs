//! The VampPrior (Tomczak & Welling 2018): the prior as the mixture of the encoder's own
//! posteriors at K learned pseudo-inputs u_1 … u_K,
//!
//! ```text
//!   p(z) = (1/K) Σ_k q(z | u_k),   q(z | u_k) = N(z; mu_k, diag(exp(logvar_k))),
//!   log p(z) = logsumexp_k log N(z; mu_k, diag(exp(logvar_k))) − ln K.
//! ```
//!
//! The optimal prior of a VAE, for a fixed encoder, is the aggregate posterior
//! (1/N) Σ_n q(z | x_n); the VampPrior approximates it with K ≪ N learned points in the input
//! space, so that the prior follows the encoder as it trains.
//!
//! Shape legend: M latents z [M, J]; K components with mu, logvar [K, J]; log p(z) `[M]`.
//!
//! Every (latent, component) pair's log-density, an [M, K] table, comes from two matrix
//! products instead of an [M, K, J] array: with P = exp(−logvar) [K, J],
//!
//! ```text
//!   log N(z_m; mu_k, σ_k²) = −½ Σ_j [ (z_mj − mu_kj)² P_kj + logvar_kj ] − (J/2) ln 2π
//!                          = −½ [ (z ⊙ z)·Pᵀ − 2 z·(mu ⊙ P)ᵀ + c ]_mk − (J/2) ln 2π,
//!   c_k = Σ_j (mu_kj² P_kj + logvar_kj),
//! ```
//!
//! so the pairs cost what a dense layer of K outputs does (the VampPrior's 500 components
//! against a chunk of 64 latents: 64 × 500 × 40 multiply-adds twice, on the GEMM kernels).
//! The expansion trades a little rounding for that: in f32, with precisions P up to e⁶ ≈ 400
//! (logvar ≥ −6), the three terms are a few hundred where their sum may be near 1, which
//! leaves an error of about 10⁻⁴ nats per latent unit, far below the nats the terms are made
//! of. The gradient is that of the ops it is made of (exp, mul, matmul, sum, logsumexp).

use ndarray::Axis;
use rand::Rng;
use vae_autodiff::loss::HALF_LN_2PI;
use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::{ParamId, ParamStore, ParamVars};

/// [`mixture_log_prob`] of z [M, J] with the components mu and logvar [K, J] that a step
/// computed once and recorded on this tape as `p`'s derived values, or, when it did not,
/// `components(tape)` computes on this tape. `[M]`.
pub fn log_prob_with(tape: &mut Tape, p: &ParamVars, z: Var, components: impl FnOnce(&mut Tape) -> Vec<Var>) -> Var {
    let (mu, logvar) = match *p.derived() {
        [mu, logvar] => (mu, logvar),
        _ => match *components(tape) {
            [mu, logvar] => (mu, logvar),
            _ => unreachable!("a VampPrior has two components: mu and logvar"),
        },
    };
    mixture_log_prob(tape, z, mu, logvar)
}

/// Writes K rows of D values into the pseudo-inputs `id` [K, D] of `params` (a run starts
/// them at training images); false if there are none (the prior is N(0, I)).
///
/// # Panics
/// If `u` does not hold K·D values.
pub fn set_pseudo_inputs(params: &mut ParamStore, id: Option<ParamId>, u: &[f32]) -> bool {
    let Some(id) = id else { return false };
    let slot = &mut params.values_mut()[id.0];
    assert_eq!(u.len(), slot.len(), "set_pseudo_inputs: {} values for {:?}", u.len(), slot.shape());
    *slot = Tensor::from_shape_vec(slot.raw_dim(), u.to_vec()).expect("the pseudo-inputs' shape");
    true
}

/// Draws from the mixture with components mu, logvar [K, J], one per row of the standard
/// normal noise eps [n, J]: a component k drawn uniformly for each row, then
/// z = mu_k + exp(½·logvar_k) ⊙ eps. [n, J].
pub fn draw(mu: &Tensor, logvar: &Tensor, eps: Tensor, rng: &mut impl Rng) -> Tensor {
    let k = mu.shape()[0];
    let picks: Vec<usize> = (0..eps.shape()[0]).map(|_| rng.random_range(0..k)).collect();
    let (mu, logvar) = (mu.select(Axis(0), &picks), logvar.select(Axis(0), &picks));
    mu + (logvar * 0.5).mapv(f32::exp) * eps
}

/// log p(z_m) = logsumexp_k log N(z_m; mu_k, diag(exp(logvar_k))) − ln K for each row of z
/// [M, J], the components' mu and logvar [K, J]. `[M]`.
pub fn mixture_log_prob(tape: &mut Tape, z: Var, mu: Var, logvar: Var) -> Var {
    let (j, k) = (tape.value(z).shape()[1], tape.value(mu).shape()[0]);
    let neg_logvar = tape.scale(logvar, -1.0);
    let precision = tape.exp(neg_logvar); // P = 1/σ² [K, J]
    let z2 = tape.square(z);
    let quad = tape.matmul_nt(z2, precision); // Σ_j z² P [M, K]
    let mu_p = tape.mul(mu, precision);
    let cross = tape.matmul_nt(z, mu_p); // Σ_j z mu P [M, K]
    let mu2_p = tape.mul(mu, mu_p);
    let per_unit = tape.add(mu2_p, logvar);
    let c = tape.sum_axis(per_unit, 1); // c_k [K]
    let minus_2cross = tape.scale(cross, -2.0);
    let expanded = tape.add(quad, minus_2cross);
    let with_c = tape.add(expanded, c); // c broadcast over the M rows
    let half = tape.scale(with_c, -0.5);
    let norm = tape.constant(Tensor::from_elem(vec![], -(j as f32) * HALF_LN_2PI));
    let log_n = tape.add(half, norm); // [M, K]
    let lse = tape.log_sum_exp(log_n, 1); // [M]
    let ln_k = tape.constant(Tensor::from_elem(vec![], (k as f32).ln()));
    tape.sub(lse, ln_k)
}
