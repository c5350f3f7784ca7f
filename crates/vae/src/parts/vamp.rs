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
//! Every (latent, component) pair is one row of a [M·K, J] table (row m·K + k), so that the
//! density is the Gaussian part's own `log_prob`, row by row, and its gradient that of the
//! ops it is made of (gather, sub, square, exp, sum, logsumexp).

use vae_autodiff::{Tape, Tensor, Var};

use crate::parts::Gaussian;

/// log p(z_m) = logsumexp_k log N(z_m; mu_k, diag(exp(logvar_k))) − ln K for each row of z
/// [M, J], the components' mu and logvar [K, J]. `[M]`.
pub fn mixture_log_prob(tape: &mut Tape, z: Var, mu: Var, logvar: Var) -> Var {
    let (m, k) = (tape.value(z).shape()[0], tape.value(mu).shape()[0]);
    // Row m·K + k pairs latent m with component k.
    let latent_of: Vec<usize> = (0..m * k).map(|r| r / k).collect();
    let component_of: Vec<usize> = (0..m * k).map(|r| r % k).collect();
    let z_pairs = tape.gather_rows(z, &latent_of);
    let mu_pairs = tape.gather_rows(mu, &component_of);
    let logvar_pairs = tape.gather_rows(logvar, &component_of);
    let log_n = Gaussian { mu: mu_pairs, logvar: logvar_pairs }.log_prob(tape, z_pairs); // [M·K]
    let grid = tape.reshape(log_n, &[m, k]);
    let lse = tape.log_sum_exp(grid, 1); // [M]
    let ln_k = tape.constant(Tensor::from_elem(vec![], (k as f32).ln()));
    tape.sub(lse, ln_k)
}
