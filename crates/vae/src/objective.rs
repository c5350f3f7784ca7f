//! Training objectives with K samples of z per example: the K-sample ELBO and Burda et al.'s
//! importance-weighted bound (IWAE), on the tape.
//!
//! Shape legend
//! - N: examples, K: samples of z per example, J: latent dimension, D: values per example
//! - x [N, D]; mu, logvar [N, J]; eps, z [K·N, J] with row k·N + n holding sample k of
//!   example n (the layout of a [K, N, J] array read row by row)
//! - log_w, recon, log_pz, log_qz [K·N]; the loss []
//!
//! With z_kn = mu_n + exp(½·logvar_n) ⊙ eps_kn, the importance weight of a sample is
//!
//! ```text
//!   log w_kn = log p(x_n|z_kn) + log p(z_kn) − log q(z_kn|x_n)
//!   log p(z)   = −½‖z‖² − (J/2)·ln 2π
//!   log q(z|x) = −½‖eps‖² − ½ Σ_j logvar_j − (J/2)·ln 2π     ((z − mu)/σ = eps)
//! ```
//!
//! every density with its normalizer (the two ln 2π terms cancel in log w). Then
//!
//! ```text
//!   IWAE:          loss = −(1/N) Σ_n [ logsumexp_k log w_kn − ln K ]   (= −L_K)
//!   ELBO, K draws: loss = (1/(K·N)) Σ_kn −log p(x_n|z_kn) + β·(1/N) Σ_n KL(q(z|x_n) ‖ p(z))
//! ```
//!
//! The ELBO is [`Vae::elbo`] itself, which takes K·N rows of noise; it keeps its KL in closed
//! form, so K = 1 is exactly the plain VAE's loss. L_1 ≤ L_K ≤ L_{K+1} ≤ log p(x): chapter 10 of the book derives why.
//!
//! The evaluation's −log p(x) ([`crate::train::iw_log_likelihood`]) runs the same
//! [`log_weights`] on constants, K = 5000 samples a chunk at a time, and the same
//! [`iw_bound`] over them: one formula, with and without gradients.

use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::{ParamStore, ParamVars};

use crate::model::Vae;
use crate::parts::gaussian::log_prob_of_own_sample;
use crate::parts::{standard_normal_log_prob, tile};

/// What a training step minimizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// The negative ELBO, its reconstruction term averaged over `k` draws of z and its KL in
    /// closed form (Burda et al.'s "VAE, k" rows; k = 1 is the plain VAE).
    Elbo {
        /// Samples of z per example, K ≥ 1.
        k: usize,
    },
    /// The negative importance-weighted bound −L_K with `k` samples (Burda et al.'s IWAE).
    Iwae {
        /// Samples of z per example, K ≥ 1.
        k: usize,
    },
}

impl Default for Objective {
    /// The plain VAE: the one-sample ELBO.
    fn default() -> Self {
        Objective::Elbo { k: 1 }
    }
}

/// Rows (examples × samples) a tape holds when K > 1: a batch is cut into chunks of
/// `max(1, IW_CHUNK_ROWS / K)` examples, so that memory stays bounded for any K (K = 50, batch
/// 20: chunks of 5 examples, 250 rows each, on as many cores). The cut depends only on the batch
/// size and K, never on the thread count.
pub const IW_CHUNK_ROWS: usize = 256;

impl Objective {
    /// Samples of z per example.
    pub fn k(self) -> usize {
        match self {
            Objective::Elbo { k } | Objective::Iwae { k } => k,
        }
    }

    /// The name used on the command line and in checkpoints: `elbo` or `iwae`.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Elbo { .. } => "elbo",
            Objective::Iwae { .. } => "iwae",
        }
    }

    /// Reads `name` and `k` as written by [`Objective::name`] and [`Objective::k`].
    pub fn parse(name: &str, k: usize) -> Result<Self, String> {
        if k == 0 {
            return Err("the number of samples K must be at least 1".into());
        }
        match name {
            "elbo" => Ok(Objective::Elbo { k }),
            "iwae" => Ok(Objective::Iwae { k }),
            other => Err(format!("unknown objective {other:?} (expected elbo or iwae)")),
        }
    }

    /// Examples per tape in a training step or a test pass: the plain VAE's
    /// [`crate::step::CHUNK_ROWS`] at K = 1 (so its numbers never move), and
    /// [`IW_CHUNK_ROWS`] / K otherwise.
    pub fn chunk_examples(self) -> usize {
        match self.k() {
            1 => crate::step::CHUNK_ROWS,
            k => (IW_CHUNK_ROWS / k).max(1),
        }
    }
}

/// The nodes of a K-sample loss, for reading values and for backward.
#[derive(Clone, Copy, Debug)]
pub struct Loss {
    /// The objective's loss [] (nats per example).
    pub loss: Var,
    /// −log p(x|z) averaged over the K·N samples [].
    pub recon_mean: Var,
    /// The KL term averaged over examples []: in closed form for the ELBO; for the IWAE the
    /// sampled log q(z|x) − log p(z), averaged over the K·N samples.
    pub kl_mean: Var,
}

/// The log weights of K samples of each example, and the pieces they are made of.
#[derive(Clone, Copy, Debug)]
pub struct LogWeights {
    /// z [K·N, J].
    pub z: Var,
    /// The decoder output [K·N, D].
    pub out: Var,
    /// −log p(x|z) [K·N].
    pub recon: Var,
    /// log p(z) [K·N].
    pub log_pz: Var,
    /// log q(z|x) [K·N].
    pub log_qz: Var,
    /// log w = log p(x|z) + log p(z) − log q(z|x) [K·N].
    pub log_w: Var,
}

/// log N(z; 0, I) per row of z [M, J] (the prior part, [`crate::parts::prior`]). `[M]`.
pub fn log_prior(tape: &mut Tape, z: Var) -> Var {
    standard_normal_log_prob(tape, z)
}

/// log N(z; mu, diag(exp(logvar))) per row, for z = mu + exp(½·logvar) ⊙ eps: since
/// (z − mu)/σ = eps, it is −½‖eps‖² − ½ Σ_j logvar_j − (J/2)·ln 2π. logvar, eps [M, J] → `[M]`
/// (the Gaussian part, [`crate::parts::gaussian::log_prob_of_own_sample`]).
///
/// As a function of (mu, logvar) with eps fixed this is the same function as the density
/// evaluated at z(mu, logvar, eps), so its gradient is the same total derivative.
pub fn log_posterior(tape: &mut Tape, logvar: Var, eps: Var) -> Var {
    log_prob_of_own_sample(tape, logvar, eps)
}

/// −L_K = −(1/N) Σ_n [ logsumexp_k log w_kn − ln K ] for log_w [K·N] in the layout above. [].
pub fn iw_bound(tape: &mut Tape, log_w: Var, k: usize) -> Var {
    let n = tape.value(log_w).len() / k;
    let grid = tape.reshape(log_w, &[k, n]); // [K, N]
    let lse = tape.log_sum_exp(grid, 0); // [N]
    let mean = tape.mean(lse);
    let neg = tape.scale(mean, -1.0);
    let ln_k = tape.constant(Tensor::from_elem(vec![], (k as f32).ln()));
    tape.add(neg, ln_k)
}

/// log w for tiled inputs: x_rep [K·N, D + Y] (a conditional model's labels after the pixels), mu_rep and logvar_rep [K·N, J] (the posterior of
/// each row's example) and eps [K·N, J].
pub fn log_weights(
    model: &Vae,
    tape: &mut Tape,
    p: &ParamVars,
    x_rep: Var,
    mu_rep: Var,
    logvar_rep: Var,
    eps: Var,
) -> LogWeights {
    let (z, log_qz) = model.posterior_sample(tape, p, mu_rep, logvar_rep, eps); // through the flow, if any
    let z_y = model.join_label(tape, z, x_rep); // [z, y]; z itself for the plain VAE
    let out = model.decode(tape, p, z_y);
    let recon = model.recon_nll(tape, out, x_rep); // −log p(x|z)
    let log_pz = model.log_prior(tape, p, z);
    let log_joint = tape.sub(log_pz, recon);
    let log_w = tape.sub(log_joint, log_qz);
    LogWeights { z, out, recon, log_pz, log_qz, log_w }
}

/// The objective's loss for x [N, D] and noise eps [K·N, J], with KL weight `beta` (used by
/// the ELBO; the IWAE bound is defined for β = 1 only and ignores it). The plain VAE's ELBO
/// keeps its KL in closed form ([`Vae::elbo`]); its IWAE is [`weighted_loss`].
pub fn loss(model: &Vae, tape: &mut Tape, p: &ParamVars, x: Var, eps: Var, objective: Objective, beta: f32) -> Loss {
    match objective {
        Objective::Elbo { .. } => {
            let e = model.elbo(tape, p, x, eps, beta);
            Loss { loss: e.loss, recon_mean: e.recon_mean, kl_mean: e.kl_mean }
        }
        Objective::Iwae { .. } => weighted_loss(model, tape, p, x, eps, objective, beta),
    }
}

/// Free bits (Kingma et al. 2016; `kl_min` in their released code): each
/// latent unit's KL, averaged over the batch, is charged at least λ nats,
///
/// ```text
///   loss_λ = recon + β·Σ_j max(λ, KL_j),      KL_j = (1/N) Σ_n kl_nj
/// ```
///
/// so a unit below λ gets no gradient from its KL (its charge is the constant λ): q may carry
/// λ nats in every unit before it pays for them, which keeps units from collapsing early. The
/// max needs the whole batch's KL_j, while a step computes its chunks on separate tapes: the
/// gate g_j = 1(KL_j > λ) is read first from a forward pass of q over the batch
/// ([`FreeBits::from_batch`]), and each chunk then charges (1/n_c) Σ_{n∈c} Σ_j [g_j·kl_nj +
/// (1 − g_j)·λ] ([`FreeBits::kl_term`]), whose chunk-weighted sum is Σ_j max(λ, KL_j) exactly,
/// and so is its gradient. Training only: the reported terms and every test pass keep the true
/// KL.
#[derive(Clone, Debug)]
pub struct FreeBits {
    /// λ, nats per unit.
    pub lambda: f32,
    /// g_j: 1 where the batch's KL_j exceeds λ, 0 elsewhere. `[J]`.
    pub gate: Tensor,
}

impl FreeBits {
    /// The gate of a batch from its KL per example and unit, kl [N, J].
    pub fn from_batch(kl: &Tensor, lambda: f32) -> Self {
        let mean = kl.mean_axis(ndarray::Axis(0)).expect("a batch of at least one example");
        FreeBits { lambda, gate: mean.mapv(|m| if m > lambda { 1.0 } else { 0.0 }) }
    }

    /// A chunk's KL charge, (1/n) Σ_n Σ_j g_j·kl_nj + λ·Σ_j (1 − g_j), from its kl [n, J]. [].
    pub fn kl_term(&self, tape: &mut Tape, kl: Var) -> Var {
        let gate = tape.constant(self.gate.clone());
        let charged = tape.mul(kl, gate);
        let per_example = tape.sum_axis(charged, 1);
        let mean = tape.mean(per_example);
        let free: f32 = self.gate.iter().map(|g| (1.0 - g) * self.lambda).sum();
        let free = tape.constant(Tensor::from_elem(vec![], free));
        tape.add(mean, free)
    }
}

/// The plain VAE's ELBO with free bits: [`Vae::elbo`]'s terms, and the loss
/// recon + β·[`FreeBits::kl_term`] of the KL per unit ([`Vae::kl_units`]). `kl_mean` stays
/// the true KL.
pub fn free_bits_loss(model: &Vae, tape: &mut Tape, p: &ParamVars, x: Var, eps: Var, fb: &FreeBits, beta: f32) -> Loss {
    let e = model.elbo(tape, p, x, eps, beta);
    let kl = model.kl_units(tape, p, e.mu, e.logvar, eps);
    let charge = fb.kl_term(tape, kl);
    let weighted = tape.scale(charge, beta);
    let loss = tape.add(e.recon_mean, weighted);
    Loss { loss, recon_mean: e.recon_mean, kl_mean: e.kl_mean }
}

/// What the objectives need of a model whose latents are Gaussian, however many layers deep:
/// its log weights. A model computes, for K samples of each example,
///
/// ```text
///   log w = log p(x, h) − log q(h|x) = −recon − (log q(h|x) − log p(h))
/// ```
///
/// in two steps: what depends on x alone ([`ImportanceWeighted::encode_once`], run once per
/// example), then the K samples given those values tiled K times. The K-sample ELBO, the IWAE
/// bound ([`weighted_loss`]) and the evaluation's −log p(x)
/// ([`crate::train::iw_log_likelihood`]) are written once over these.
pub trait ImportanceWeighted: Sync {
    /// The model's trainable tensors.
    fn param_store(&self) -> &ParamStore;
    /// Standard-normal noise values per sample: Σ_l J_l, the units of every stochastic layer.
    fn noise_width(&self) -> usize;
    /// The nodes that depend on the rows x [N, ·] alone (the first recognition layer's mu and
    /// logvar), each [N, ·].
    fn encode_once(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Vec<Var>;
    /// The log weights of K·N samples (row k·N + n: sample k of example n) from x_rep
    /// [K·N, ·], the values of [`ImportanceWeighted::encode_once`] tiled the same way, and
    /// eps [K·N, noise_width].
    fn log_weights_given(&self, tape: &mut Tape, p: &ParamVars, x_rep: Var, once_rep: &[Var], eps: Var) -> Weights;
    /// Rows start..end of the values computed from the parameters alone that every chunk
    /// reads (the VampPrior's components), for a step or a pass to compute once and hand to
    /// each tape as [`ParamVars::derived`]; none by default.
    fn derived(&self, _tape: &mut Tape, _p: &ParamVars, _start: usize, _end: usize) -> Vec<Var> {
        Vec::new()
    }
    /// Rows of [`ImportanceWeighted::derived`] (0: none).
    fn derived_rows(&self) -> usize {
        0
    }
}

/// A sample's log weight and the two terms it is reported by, each [K·N].
#[derive(Clone, Copy, Debug)]
pub struct Weights {
    /// −log p(x|h), the reconstruction term.
    pub recon: Var,
    /// log q(h|x) − log p(h): the sampled KL term.
    pub log_ratio: Var,
    /// log w = −recon − log_ratio.
    pub log_w: Var,
}

/// Any [`ImportanceWeighted`] model's loss for rows x [N, ·] and noise eps [K·N, W]: the IWAE
/// bound −L_K, or the K-sample ELBO with a sampled KL term, recon + β·(log q − log p) averaged
/// over the K·N samples (at β = 1, −(1/KN) Σ log w).
pub fn weighted_loss<M: ImportanceWeighted + ?Sized>(
    model: &M,
    tape: &mut Tape,
    p: &ParamVars,
    x: Var,
    eps: Var,
    objective: Objective,
    beta: f32,
) -> Loss {
    let k = objective.k();
    let once = model.encode_once(tape, p, x);
    let x_rep = tile(tape, x, k);
    let once_rep: Vec<Var> = once.iter().map(|&v| tile(tape, v, k)).collect();
    let w = model.log_weights_given(tape, p, x_rep, &once_rep, eps);
    let recon_mean = tape.mean(w.recon);
    let kl_mean = tape.mean(w.log_ratio);
    let loss = match objective {
        Objective::Iwae { k } => iw_bound(tape, w.log_w, k),
        Objective::Elbo { .. } => {
            let weighted_kl = tape.scale(kl_mean, beta);
            tape.add(recon_mean, weighted_kl)
        }
    };
    Loss { loss, recon_mean, kl_mean }
}

impl ImportanceWeighted for Vae {
    fn param_store(&self) -> &ParamStore {
        &self.params
    }
    fn noise_width(&self) -> usize {
        self.config.latent
    }
    fn encode_once(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Vec<Var> {
        let (mu, logvar) = self.encode(tape, p, x);
        vec![mu, logvar]
    }
    fn log_weights_given(&self, tape: &mut Tape, p: &ParamVars, x_rep: Var, once_rep: &[Var], eps: Var) -> Weights {
        let w = log_weights(self, tape, p, x_rep, once_rep[0], once_rep[1], eps);
        let log_ratio = tape.sub(w.log_qz, w.log_pz);
        Weights { recon: w.recon, log_ratio, log_w: w.log_w }
    }
    fn derived(&self, tape: &mut Tape, p: &ParamVars, start: usize, end: usize) -> Vec<Var> {
        self.prior_components(tape, p, start, end)
    }
    fn derived_rows(&self) -> usize {
        self.prior_rows()
    }
}

/// The rows of eps [K·N, J] that belong to examples `start..end`, in the same layout for the
/// chunk: [K·(end − start), J], row k·(end − start) + i = row k·N + start + i.
pub fn sample_rows(eps: &Tensor, k: usize, start: usize, end: usize) -> Tensor {
    use ndarray::{Axis, Slice};
    let n = eps.shape()[0] / k;
    let views: Vec<_> = (0..k).map(|s| eps.slice_axis(Axis(0), Slice::from(s * n + start..s * n + end))).collect();
    ndarray::concatenate(Axis(0), &views).expect("rows of the same width")
}
