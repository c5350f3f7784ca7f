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

use vae_autodiff::loss::HALF_LN_2PI;
use vae_autodiff::{Tape, Tensor, Var};

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
