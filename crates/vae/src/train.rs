//! One optimization step, evaluation of the negative ELBO, and the importance-weighted bound.
//!
//! Shape legend: N batch, D values per example, J latent dimension, K importance samples.

use ndarray::{Axis, Slice};
use rand::Rng;
use rayon::prelude::*;
use vae_autodiff::{Tape, Tensor};
use vae_layers::optim::{clip_grad_norm, Optimizer};

use crate::model::{reparameterize, standard_normal, Vae};

/// Loss terms in nats per example.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Terms {
    /// recon + β·kl
    pub loss: f64,
    /// −E_q[log p(x|z)], estimated with one sample of z
    pub recon: f64,
    /// KL(q(z|x) ‖ N(0, I)), in closed form
    pub kl: f64,
}

/// Why a step was refused: the loss or a gradient was NaN or infinite. The parameters were
/// left as they were.
#[derive(Clone, Debug, PartialEq)]
pub struct NonFinite {
    /// The loss terms of the failed step (possibly NaN).
    pub terms: Terms,
    /// The first parameter whose gradient is not finite, if the loss itself was finite.
    pub param: Option<String>,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.param {
            None => write!(f, "the loss is not finite ({})", self.terms.loss),
            Some(p) => write!(f, "the gradient of {p} is not finite (loss {})", self.terms.loss),
        }
    }
}

impl std::error::Error for NonFinite {}

/// Rows of a batch handled by one tape. A batch is cut into chunks of this many rows, each
/// chunk's forward and backward runs on its own core, and the chunks' gradients are summed in
/// chunk order. The cut depends only on the batch size, never on the number of threads, so a
/// run gives the same numbers on any machine.
pub const CHUNK_ROWS: usize = 64;

/// One training step on a batch x [N, D] with noise eps [N, J]: forward, backward, optional
/// clipping of the gradient's global norm, and the optimizer's update. The loss is
/// recon + β·kl; `beta` is passed per step so that a KL warm-up can change it.
///
/// The batch loss is the mean over examples, so with chunks c of n_c rows,
/// L = Σ_c (n_c/N)·L_c and ∂L/∂θ = Σ_c (n_c/N)·∂L_c/∂θ: each chunk's backward is seeded with
/// its weight n_c/N and the gradients are added.
pub fn train_step(
    model: &mut Vae,
    opt: &mut dyn Optimizer,
    x: &Tensor,
    eps: Tensor,
    beta: f32,
    clip: Option<f32>,
) -> Result<Terms, NonFinite> {
    let n = x.shape()[0];
    let ranges: Vec<(usize, usize)> = (0..n).step_by(CHUNK_ROWS).map(|s| (s, (s + CHUNK_ROWS).min(n))).collect();
    let model_ref: &Vae = model;
    let chunk_results: Vec<(Terms, Vec<Tensor>)> = ranges
        .par_iter()
        .map(|&(start, end)| {
            let rows = |t: &Tensor| t.slice_axis(Axis(0), Slice::from(start..end)).to_owned();
            let weight = (end - start) as f64 / n as f64;
            let mut tape = Tape::new();
            let p = model_ref.params.on_tape(&mut tape);
            let xv = tape.constant(rows(x));
            let epsv = tape.constant(rows(&eps));
            let e = model_ref.elbo(&mut tape, &p, xv, epsv, beta);
            let terms = Terms {
                loss: weight * tape.scalar(e.loss) as f64,
                recon: weight * tape.scalar(e.recon_mean) as f64,
                kl: weight * tape.scalar(e.kl_mean) as f64,
            };
            let seed = Tensor::from_elem(vec![], weight as f32);
            (terms, p.gradients(&tape, tape.backward_from(e.loss, seed)))
        })
        .collect();
    let mut terms = Terms::default();
    let mut chunk_grads = Vec::with_capacity(chunk_results.len());
    for (t, g) in chunk_results {
        (terms.loss, terms.recon, terms.kl) = (terms.loss + t.loss, terms.recon + t.recon, terms.kl + t.kl);
        chunk_grads.push(g);
    }
    let mut grads = sum_in_chunk_order(chunk_grads);
    if !terms.loss.is_finite() {
        return Err(NonFinite { terms, param: None });
    }
    if let Some(i) = grads.iter().position(|g| !all_finite(g)) {
        let name = model.params.iter().nth(i).map(|(n, _)| n.to_string());
        return Err(NonFinite { terms, param: name });
    }
    if let Some(max_norm) = clip {
        clip_grad_norm(&mut grads, max_norm);
    }
    opt.step(model.params.values_mut(), &grads);
    Ok(terms)
}

/// Σ_c g_c for each parameter, the chunks added in order (so the sum is the same on any
/// number of threads); parameters are summed in parallel, each in one contiguous pass.
fn sum_in_chunk_order(chunk_grads: Vec<Vec<Tensor>>) -> Vec<Tensor> {
    let mut chunks = chunk_grads.into_iter();
    let mut grads = chunks.next().unwrap_or_default();
    let rest: Vec<Vec<Tensor>> = chunks.collect();
    grads.par_iter_mut().enumerate().for_each(|(p, acc)| {
        for chunk in &rest {
            match (acc.as_slice_mut(), chunk[p].as_slice()) {
                (Some(a), Some(g)) => a.iter_mut().zip(g).for_each(|(a, &g)| *a += g),
                _ => *acc += &chunk[p],
            }
        }
    });
    grads
}

/// Whether every value is finite: one branch-free pass (an OR of "exponent all ones" flags)
/// that vectorizes, instead of a test and an early exit per value.
fn all_finite(g: &Tensor) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    match g.as_slice() {
        Some(s) => !s.iter().fold(false, |bad, v| bad | (v.to_bits() & EXPONENT == EXPONENT)),
        None => g.iter().all(|v| v.is_finite()),
    }
}

/// Sums of per-example loss terms over a data set, for an average in nats per example.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Σ recon_n
    pub recon: f64,
    /// Σ kl_n
    pub kl: f64,
    /// Examples seen.
    pub count: usize,
}

impl Totals {
    /// Averages, with the loss recon + β·kl.
    pub fn mean(&self, beta: f32) -> Terms {
        let n = self.count.max(1) as f64;
        let (recon, kl) = (self.recon / n, self.kl / n);
        Terms { loss: recon + beta as f64 * kl, recon, kl }
    }
}

/// Rows of a batch evaluated on one tape by [`evaluate_batch`], as many as a training chunk. A
/// forward pass keeps every intermediate value until its tape is dropped, and larger tapes made
/// the C allocator hand memory back to the kernel and fault it in again: the conv model's test
/// pass (`vae-cli eval`) took 2.06 s with tapes of 500 rows and 1.67 s with 128, both with
/// 522,000 page faults, and takes 1.20–1.26 s with 64 (43,000 faults).
pub const EVAL_ROWS: usize = CHUNK_ROWS;

/// Forward pass only on x [N, D] with z sampled (not the mean): the per-example sums of the
/// reconstruction and KL terms. The noise for all N rows is drawn first; the rows then go
/// through the model [`EVAL_ROWS`] at a time, and the sums run over the rows in order, so the
/// result does not depend on that cut.
pub fn evaluate_batch(model: &Vae, x: Tensor, rng: &mut impl Rng) -> Totals {
    let n = x.shape()[0];
    let eps = standard_normal(&[n, model.config.latent], rng);
    let mut totals = Totals { count: n, ..Totals::default() };
    for start in (0..n).step_by(EVAL_ROWS) {
        let rows = |t: &Tensor| t.slice_axis(Axis(0), Slice::from(start..(start + EVAL_ROWS).min(n))).to_owned();
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(rows(&x));
        let epsv = tape.constant(rows(&eps));
        let e = model.elbo(&mut tape, &p, xv, epsv, 1.0);
        tape.value(e.recon).iter().for_each(|&v| totals.recon += v as f64);
        tape.value(e.kl).iter().for_each(|&v| totals.kl += v as f64);
    }
    totals
}

/// The importance-weighted estimate of log p(x) (Burda et al.) for each row of x [N, D]:
///
///   log p(x) ≥ log (1/K) Σ_k p(x, z_k) / q(z_k|x),   z_k ~ q(z|x),
///
/// with log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x)
///             = −recon(z_k) − ½‖z_k‖² + ½‖eps_k‖² + ½ Σ_j logvar_j   (the 2π terms cancel).
///
/// The K samples are decoded `chunk` at a time so that K = 5000 fits in memory; the bound is
/// then one stable `log_sum_exp` over K. K = 1 gives an unbiased estimate of the ELBO itself.
pub fn iw_log_likelihood(model: &Vae, x: &Tensor, k: usize, chunk: usize, rng: &mut impl Rng) -> Vec<f64> {
    assert!(k >= 1, "iw_log_likelihood: K must be at least 1");
    let (n, j) = (x.shape()[0], model.config.latent);
    let (mu, logvar) = model.encode_values(x.clone());
    let half_sum_logvar: Vec<f32> = logvar.rows().into_iter().map(|r| 0.5 * r.sum()).collect();
    let mut log_w = Tensor::zeros(vec![k, n]); // [K, N]
    let chunk = chunk.max(1);
    let mut done = 0;
    while done < k {
        let s = chunk.min(k - done);
        // Row i·N + b holds sample i of example b.
        let tile = |t: &Tensor| {
            let views: Vec<_> = (0..s).map(|_| t.view()).collect();
            ndarray::concatenate(ndarray::Axis(0), &views).expect("same shapes")
        };
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let eps_val = standard_normal(&[s * n, j], rng);
        let (muv, lvv) = (tape.constant(tile(&mu)), tape.constant(tile(&logvar)));
        let epsv = tape.constant(eps_val.clone());
        let z = reparameterize(&mut tape, muv, lvv, epsv);
        let out = model.decode(&mut tape, &p, z);
        let xv = tape.constant(tile(x));
        let recon = model.recon_nll(&mut tape, out, xv);
        let (recon, z) = (tape.value(recon), tape.value(z));
        for i in 0..s {
            for b in 0..n {
                let r = i * n + b;
                let z2: f32 = z.row_sum_sq(r);
                let e2: f32 = eps_val.row_sum_sq(r);
                log_w[[done + i, b]] = -recon[[r]] - 0.5 * z2 + 0.5 * e2 + half_sum_logvar[b];
            }
        }
        done += s;
    }
    let mut tape = Tape::new();
    let w = tape.constant(log_w);
    let lse = tape.log_sum_exp(w, 0); // [N]
    let ln_k = (k as f64).ln();
    tape.value(lse).iter().map(|&v| v as f64 - ln_k).collect()
}

/// Σ_j x[r, j]² for a row of a 2-D tensor.
trait RowSumSq {
    fn row_sum_sq(&self, r: usize) -> f32;
}

impl RowSumSq for Tensor {
    fn row_sum_sq(&self, r: usize) -> f32 {
        let cols = self.shape()[1];
        self.as_slice().expect("standard layout")[r * cols..(r + 1) * cols].iter().map(|v| v * v).sum()
    }
}
