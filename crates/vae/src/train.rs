//! One optimization step, evaluation of the negative ELBO, and the importance-weighted bound.
//!
//! Shape legend: N batch, D values per example, J latent dimension, K importance samples.

use ndarray::{Axis, Slice};
use rand::Rng;
use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::optim::Optimizer;
use vae_layers::{ParamStore, ParamVars};

use crate::data::{Binarize, Split};
use crate::family::StepSettings;
use crate::model::{standard_normal, Vae};
use crate::objective::{self, sample_rows, FreeBits, ImportanceWeighted, Objective};
use crate::step::{batch_gradients_derived, update, Derived, NonFinite};

/// Loss terms in nats per example.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Terms {
    /// The objective: recon + β·kl for the ELBO; −L_K = recon + kl − gain for the IWAE
    pub loss: f64,
    /// −E_q[log p(x|z)], estimated with the step's samples of z
    pub recon: f64,
    /// KL(q(z|x) ‖ N(0, I)): in closed form for the ELBO, sampled for the IWAE
    pub kl: f64,
    /// IWAE only (0 otherwise): how far the bound L_K lies above the average of its K sampled
    /// ELBO terms, recon + kl − loss ≥ 0
    pub gain: f64,
}

/// One training step of the plain VAE (the one-sample ELBO) on a batch x [N, D] with noise
/// eps [N, J]: [`train_step_objective`] with [`Objective::default`].
pub fn train_step(
    model: &mut Vae,
    opt: &mut dyn Optimizer,
    x: &Tensor,
    eps: Tensor,
    beta: f32,
    clip: Option<f32>,
) -> Result<Terms, NonFinite> {
    train_step_objective(model, opt, x, eps, Objective::default(), beta, clip)
}

/// One training step on a batch x [N, D] with noise eps [K·N, J] (row k·N + n: sample k of
/// example n): forward, backward, optional clipping of the gradient's global norm, and the
/// optimizer's update. `beta` weights the ELBO's KL term and is passed per step so that a KL
/// warm-up can change it. The batch runs through [`batch_gradients_derived`] in chunks of
/// [`Objective::chunk_examples`] examples, the prior's components computed once.
pub fn train_step_objective(
    model: &mut Vae,
    opt: &mut dyn Optimizer,
    x: &Tensor,
    eps: Tensor,
    objective: Objective,
    beta: f32,
    clip: Option<f32>,
) -> Result<Terms, NonFinite> {
    let knobs = StepSettings { objective, kl_weight: beta, clip, ..StepSettings::bound() };
    train_step_with(model, opt, x, eps, &knobs)
}

/// [`train_step_objective`] with every knob of a step: the objective, the KL weight β, the
/// clipping, and free bits ([`FreeBits`], whose gate is read from the batch first).
pub fn train_step_with(
    model: &mut Vae,
    opt: &mut dyn Optimizer,
    x: &Tensor,
    eps: Tensor,
    s: &StepSettings,
) -> Result<Terms, NonFinite> {
    let (objective, beta, clip) = (s.objective, s.kl_weight, s.clip);
    let (n, k) = (x.shape()[0], objective.k());
    assert_eq!(eps.shape()[0], k * n, "train_step: eps needs K·N = {}·{n} rows, found {:?}", k, eps.shape());
    let model_ref: &Vae = model;
    let free_bits = s.free_bits.map(|lambda| FreeBits::from_batch(&kl_units_of_batch(model_ref, x, &eps), lambda));
    let chunk_loss = |tape: &mut Tape, p: &ParamVars, start: usize, end: usize| {
        let xv = tape.constant(x.slice_axis(Axis(0), Slice::from(start..end)).to_owned());
        let epsv = tape.constant(sample_rows(&eps, k, start, end));
        let l = match &free_bits {
            None => objective::loss(model_ref, tape, p, xv, epsv, objective, beta),
            Some(fb) => objective::free_bits_loss(model_ref, tape, p, xv, epsv, fb, beta),
        };
        let t = weighted_terms(tape, &l, objective, 1.0);
        (l.loss, vec![t.loss, t.recon, t.kl, t.gain])
    };
    let components = |tape: &mut Tape, p: &ParamVars, start, end| model_ref.prior_components(tape, p, start, end);
    let derived = Derived { rows: model.prior_rows(), derive: components };
    let (sums, grads) = batch_gradients_derived(&model.params, n, objective.chunk_examples(), derived, chunk_loss);
    update(&mut model.params, opt, grads, sums[0], clip)?;
    Ok(Terms { loss: sums[0], recon: sums[1], kl: sums[2], gain: sums[3] })
}

/// The KL per example and unit of a batch x [N, ·] with noise eps [K·N, J]
/// ([`Vae::kl_units`]): one forward pass of q, for the free-bits gate.
fn kl_units_of_batch(model: &Vae, x: &Tensor, eps: &Tensor) -> Tensor {
    let mut tape = Tape::new();
    let p = model.params.on_tape(&mut tape);
    let (xv, epsv) = (tape.constant(x.clone()), tape.constant(eps.clone()));
    let (mu, logvar) = model.encode(&mut tape, &p, xv);
    let kl = model.kl_units(&mut tape, &p, mu, logvar, epsv);
    tape.value(kl).clone()
}

/// The gradient of any [`ImportanceWeighted`] model's objective on a batch x [N, ·] with noise
/// eps [K·N, W] (row k·N + n: sample k of example n), through [`batch_gradients_derived`] in chunks
/// of [`Objective::chunk_examples`] examples: the batch's terms and one gradient per
/// parameter, for [`update`] to apply. `beta` weights the ELBO's sampled KL term.
pub fn weighted_gradients<M: ImportanceWeighted + ?Sized>(
    model: &M,
    x: &Tensor,
    eps: &Tensor,
    objective: Objective,
    beta: f32,
) -> (Terms, Vec<Tensor>) {
    let (n, k) = (x.shape()[0], objective.k());
    assert_eq!(eps.shape()[0], k * n, "weighted_gradients: eps needs K·N = {k}·{n} rows, found {:?}", eps.shape());
    let chunk_loss = |tape: &mut Tape, p: &ParamVars, start: usize, end: usize| {
        let xv = tape.constant(x.slice_axis(Axis(0), Slice::from(start..end)).to_owned());
        let epsv = tape.constant(sample_rows(eps, k, start, end));
        let l = objective::weighted_loss(model, tape, p, xv, epsv, objective, beta);
        let t = weighted_terms(tape, &l, objective, 1.0);
        (l.loss, vec![t.loss, t.recon, t.kl, t.gain])
    };
    let derive = |tape: &mut Tape, p: &ParamVars, start, end| model.derived(tape, p, start, end);
    let derived = Derived { rows: model.derived_rows(), derive };
    let (sums, grads) =
        batch_gradients_derived(model.param_store(), n, objective.chunk_examples(), derived, chunk_loss);
    (Terms { loss: sums[0], recon: sums[1], kl: sums[2], gain: sums[3] }, grads)
}

/// Any [`ImportanceWeighted`] model's test pass on x [N, ·]: the objective's per-example sums
/// (β = 1), noise for all K·N samples drawn first, then [`Objective::chunk_examples`] examples
/// per tape, so the result does not depend on that cut.
pub fn evaluate_weighted<M: ImportanceWeighted + ?Sized>(
    model: &M,
    x: Tensor,
    objective: Objective,
    rng: &mut impl Rng,
) -> Totals {
    let (n, k) = (x.shape()[0], objective.k());
    let eps = standard_normal(&[k * n, model.noise_width()], rng);
    let mut totals = Totals::default();
    let per_chunk = objective.chunk_examples();
    let derived = derived_values(model.param_store(), |tape, p| model.derived(tape, p, 0, model.derived_rows()));
    for start in (0..n).step_by(per_chunk) {
        let end = (start + per_chunk).min(n);
        let mut tape = Tape::new();
        let p = on_tape_with(model.param_store(), &mut tape, &derived);
        let xv = tape.constant(x.slice_axis(Axis(0), Slice::from(start..end)).to_owned());
        let epsv = tape.constant(sample_rows(&eps, k, start, end));
        let l = objective::weighted_loss(model, &mut tape, &p, xv, epsv, objective, 1.0);
        totals.add(&weighted_terms(&tape, &l, objective, 1.0), end - start);
    }
    totals
}

/// The values a model derives from its parameters alone (`derive`, e.g. the VampPrior's
/// components), computed once for a pass without gradients.
fn derived_values(params: &ParamStore, derive: impl FnOnce(&mut Tape, &ParamVars) -> Vec<Var>) -> Vec<Tensor> {
    let mut tape = Tape::new();
    let p = params.on_tape(&mut tape);
    derive(&mut tape, &p).iter().map(|&v| tape.value(v).clone()).collect()
}

/// The parameters on `tape`, with `derived` ([`derived_values`]) recorded as constants.
fn on_tape_with<'p>(params: &'p ParamStore, tape: &mut Tape<'p>, derived: &[Tensor]) -> ParamVars {
    let derived = derived.iter().map(|v| tape.constant(v.clone())).collect();
    params.on_tape(tape).with_derived(derived)
}

/// A chunk's loss terms, each times the chunk's share `weight` of the batch.
fn weighted_terms(tape: &Tape, l: &objective::Loss, objective: Objective, weight: f64) -> Terms {
    let (loss, recon, kl) =
        (tape.scalar(l.loss) as f64, tape.scalar(l.recon_mean) as f64, tape.scalar(l.kl_mean) as f64);
    let gain = if matches!(objective, Objective::Iwae { .. }) { recon + kl - loss } else { 0.0 };
    Terms { loss: weight * loss, recon: weight * recon, kl: weight * kl, gain: weight * gain }
}

/// Sums of per-example loss terms over a data set, for an average in nats per example.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Σ recon_n
    pub recon: f64,
    /// Σ kl_n
    pub kl: f64,
    /// Σ gain_n (IWAE only; see [`Terms::gain`])
    pub gain: f64,
    /// Examples seen.
    pub count: usize,
}

impl Totals {
    /// Averages, with the loss recon + β·kl − gain.
    pub fn mean(&self, beta: f32) -> Terms {
        let n = self.count.max(1) as f64;
        let (recon, kl, gain) = (self.recon / n, self.kl / n, self.gain / n);
        Terms { loss: recon + beta as f64 * kl - gain, recon, kl, gain }
    }

    /// Adds the terms of `n` examples (per-example averages, as a step returns them).
    pub fn add(&mut self, t: &Terms, n: usize) {
        self.recon += t.recon * n as f64;
        self.kl += t.kl * n as f64;
        self.gain += t.gain * n as f64;
        self.count += n;
    }

    /// The sums of both, `self`'s first.
    pub fn plus(&self, other: &Totals) -> Totals {
        Totals {
            recon: self.recon + other.recon,
            kl: self.kl + other.kl,
            gain: self.gain + other.gain,
            count: self.count + other.count,
        }
    }
}

/// The plain VAE's test pass on x [N, D]: [`evaluate_batch_objective`] with the one-sample
/// ELBO.
pub fn evaluate_batch(model: &Vae, x: Tensor, rng: &mut impl Rng) -> Totals {
    evaluate_batch_objective(model, x, Objective::default(), rng)
}

/// Forward pass only on x [N, D + Y] (a conditional model's labels after the pixels) with z sampled (not the mean): the per-example sums of the
/// objective's terms (β = 1). The noise for all N rows (K·N for K samples) is drawn first; the
/// rows then go through the model [`Objective::chunk_examples`] at a time ([`crate::step::EVAL_ROWS`] for the
/// plain VAE), and the sums run over the rows in order, so the result does not depend on that
/// cut.
pub fn evaluate_batch_objective(model: &Vae, x: Tensor, objective: Objective, rng: &mut impl Rng) -> Totals {
    let (n, k) = (x.shape()[0], objective.k());
    let eps = standard_normal(&[k * n, model.config.latent], rng);
    let mut totals = Totals::default();
    let per_chunk = objective.chunk_examples();
    let derived = derived_values(&model.params, |tape, p| model.prior_components(tape, p, 0, model.prior_rows()));
    for start in (0..n).step_by(per_chunk) {
        let end = (start + per_chunk).min(n);
        let mut tape = Tape::new();
        let p = on_tape_with(&model.params, &mut tape, &derived);
        let xv = tape.constant(x.slice_axis(Axis(0), Slice::from(start..end)).to_owned());
        let epsv = tape.constant(sample_rows(&eps, k, start, end));
        if objective == Objective::default() {
            // Per-example sums, as this pass has always added them.
            let e = model.elbo(&mut tape, &p, xv, epsv, 1.0);
            tape.value(e.recon).iter().for_each(|&v| totals.recon += v as f64);
            tape.value(e.kl).iter().for_each(|&v| totals.kl += v as f64);
            totals.count += end - start;
        } else {
            let l = objective::loss(model, &mut tape, &p, xv, epsv, objective, 1.0);
            totals.add(&weighted_terms(&tape, &l, objective, 1.0), end - start);
        }
    }
    totals
}

/// The objective's per-example sums over a whole split: [`crate::family::evaluate_split`]
/// for a [`Vae`]. `.mean(beta)` of the result is the loss per image.
pub fn evaluate_split(
    model: &Vae,
    split: &Split,
    mode: Binarize,
    objective: Objective,
    rng_for: impl Fn(u64) -> rand::rngs::StdRng + Sync,
) -> Totals {
    let s = StepSettings { objective, ..StepSettings::bound() };
    let sums = crate::family::evaluate_split(model, split, mode, &s, rng_for);
    let t = |i: usize| sums.terms.get(i).copied().unwrap_or(0.0);
    Totals { recon: t(0), kl: t(1), gain: t(2), count: sums.count }
}

/// The importance-weighted estimate of log p(x) (Burda et al.; log p(x|y) for a conditional
/// model) for each row of x [N, D + Y], for any model with Gaussian latents:
///
///   log p(x) ≥ L_K = log (1/K) Σ_k w_k,   w_k = p(x, z_k) / q(z_k|x),   z_k ~ q(z|x),
///
/// computed by the model's own log weights, as the training objective computes them
/// ([`ImportanceWeighted::log_weights_given`]), on constants (no gradients): what depends on x
/// alone runs once ([`ImportanceWeighted::encode_once`]), the K samples go through the rest
/// `chunk` at a time so that K = 5000 fits in memory, and the bound is the same
/// [`objective::iw_bound`] over all K. K = 1 gives an unbiased estimate of the ELBO itself.
pub fn iw_log_likelihood<M: ImportanceWeighted + ?Sized>(
    model: &M,
    x: &Tensor,
    k: usize,
    chunk: usize,
    rng: &mut impl Rng,
) -> Vec<f64> {
    assert!(k >= 1, "iw_log_likelihood: K must be at least 1");
    let (n, width) = (x.shape()[0], model.noise_width());
    let params = model.param_store();
    // What depends on x alone (the first layer's mu and logvar), once.
    let once: Vec<Tensor> = {
        let mut tape = Tape::new();
        let p = params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let vars = model.encode_once(&mut tape, &p, xv);
        vars.iter().map(|&v| tape.value(v).clone()).collect()
    };
    let derived = derived_values(params, |tape, p| model.derived(tape, p, 0, model.derived_rows()));
    let mut log_w = Vec::with_capacity(k * n); // row k·N + n, as the objective lays it out
    let chunk = chunk.max(1);
    let mut done = 0;
    while done < k {
        let s = chunk.min(k - done);
        let tile = |t: &Tensor| {
            let views: Vec<_> = (0..s).map(|_| t.view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("same shapes")
        };
        let mut tape = Tape::new();
        let p = on_tape_with(params, &mut tape, &derived);
        let xv = tape.constant(tile(x));
        let once_rep: Vec<Var> = once.iter().map(|t| tape.constant(tile(t))).collect();
        let epsv = tape.constant(standard_normal(&[s * n, width], rng));
        let w = model.log_weights_given(&mut tape, &p, xv, &once_rep, epsv);
        log_w.extend(tape.value(w.log_w).iter().copied());
        done += s;
    }
    let mut tape = Tape::new();
    let log_w = tape.constant(Tensor::from_shape_vec(vec![k * n], log_w).expect("K·N values"));
    // The bound per example: iw_bound over one example at a time is −(lse − ln K).
    let grid = tape.reshape(log_w, &[k, n]);
    let per_example: Vec<Var> = (0..n)
        .map(|b| {
            let column = tape.slice(grid, 1, b, 1);
            let flat = tape.reshape(column, &[k]);
            objective::iw_bound(&mut tape, flat, k)
        })
        .collect();
    per_example.iter().map(|&v| -(tape.scalar(v) as f64)).collect()
}

/// Burda et al.'s threshold for an active latent unit: Cov_x(E_q[z_j | x]) > 0.01.
pub const ACTIVE_UNIT_THRESHOLD: f64 = 1e-2;

/// Active units (Burda et al. 2015, section 5.2): for posterior means mu [N, J] of N inputs,
/// the variance of each unit's mean across the inputs, A_j = Var_n(mu_nj), and how many exceed
/// [`ACTIVE_UNIT_THRESHOLD`]. An inactive unit's posterior is the same for every input: it
/// carries no information about x (its KL is then driven to zero, q = p on that axis).
pub fn active_units(mu: &Tensor) -> (usize, Vec<f64>) {
    let n = mu.shape()[0].max(1) as f64;
    let variances: Vec<f64> = mu
        .columns()
        .into_iter()
        .map(|c| {
            let mean = c.iter().map(|&v| v as f64).sum::<f64>() / n;
            c.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n
        })
        .collect();
    (variances.iter().filter(|&&v| v > ACTIVE_UNIT_THRESHOLD).count(), variances)
}
