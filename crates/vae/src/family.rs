//! Model families behind one interface: what training, evaluation, checkpoints, resume and the
//! command line need of a model, whatever its latent variables are.
//!
//! | family | module | latent | loss terms (nats or squared distances per example) |
//! |---|---|---|---|
//! | `vae` | [`crate::model`] | z ~ N(mu, diag(exp(logvar))) | recon, kl |
//! | `cvae` | [`crate::cvae`] (a [`Vae`] with classes) | z given the label y | recon, kl |
//! | `vqvae` | [`crate::vqvae`] | the nearest codebook rows | recon, codebook, commit |
//! | `hvae` | [`crate::hvae`] | a chain h1, …, hL of Gaussian layers | recon, kl (sampled, all layers) |
//!
//! What only some families have is a capability, handed out as an `Option` by
//! [`Family::importance_weighted`], [`Family::latent_layers`] and [`Family::latent_space`], so
//! that a command asks for what it needs and refuses a model without it by name.
//!
//! A family is a type implementing [`Family`] in its own module (the plain VAE's in
//! [`crate::plain`]); [`crate::checkpoint::family_from_metadata`] names every family a
//! checkpoint can hold. How to add one: docs/ARCHITECTURE.md, "How to add a model family".

use std::collections::HashMap;

use rand::rngs::StdRng;
use rayon::prelude::*;
use vae_autodiff::Tensor;
use vae_layers::optim::Optimizer;
use vae_layers::ParamStore;

use crate::data::{Binarize, Split};
use crate::model::Vae;
use crate::objective::{ImportanceWeighted, Objective};
use crate::step::NonFinite;

/// The VQ-VAE's commitment weight β in the paper (van den Oord et al. 2017).
pub const DEFAULT_COMMITMENT: f32 = 0.25;

/// The knobs of a training step that are not part of the model; each family reads the ones
/// its loss has.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepSettings {
    /// The Gaussian families' objective (the K-sample ELBO or the IWAE bound).
    pub objective: Objective,
    /// The KL weight β of the ELBO (1 for the bound itself).
    pub kl_weight: f32,
    /// The VQ-VAE's commitment weight β.
    pub commitment: f32,
    /// Clip the gradient's global norm to this, if set.
    pub clip: Option<f32>,
    /// Free bits: λ nats per latent unit, if set ([`crate::objective::FreeBits`]).
    pub free_bits: Option<f32>,
}

impl StepSettings {
    /// The bound itself for every family: the one-sample ELBO at β = 1, the VQ-VAE's
    /// commitment weight at the paper's 0.25, no clipping.
    pub fn bound() -> Self {
        StepSettings {
            objective: Objective::default(),
            kl_weight: 1.0,
            commitment: DEFAULT_COMMITMENT,
            clip: None,
            free_bits: None,
        }
    }
}

/// The value of the term called `name` among per-example means listed in the order of
/// `names` (a family's [`Family::terms`]).
///
/// # Panics
/// If no term has that name: a family's loss names only its own terms.
#[track_caller]
pub fn term(names: &[&str], means: &[f64], name: &str) -> f64 {
    let i = names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no loss term {name:?} among {names:?}"));
    means[i]
}

/// A model with one continuous latent space to explore: images are encoded to points of it and
/// points decoded to images. The explorer and the pictures of interpolation, the manifold and
/// the latent scatter need this; for a chain of stochastic layers it is the top layer.
pub trait LatentSpace {
    /// J, the dimension of the space.
    fn latent_dim(&self) -> usize;
    /// The space's name in reports: `z`, or the top layer of a chain (`h2`).
    fn latent_name(&self) -> String {
        "z".into()
    }
    /// The points of rows x [N, ·]: the posterior means [N, J] and, where the space has them,
    /// the posterior log-variances [N, J].
    fn encode_points(&self, x: Tensor) -> (Tensor, Option<Tensor>);
    /// The images [N, D] (pixel means) decoded from points z [N, J]; a conditional model
    /// decodes row n as class `labels[n]`, any other ignores `labels`.
    fn decode_points(&self, z: Tensor, labels: &[usize]) -> Tensor;
    /// The space's prior, if it is N(0, I), or its name: pictures that lay a grid over the
    /// prior's quantiles (`manifold`) need the standard normal and refuse any other by name.
    fn prior_if_not_standard(&self) -> Option<String> {
        None
    }
}

/// A model whose latents are Gaussian layers, whose posterior means can be read: what the
/// active units (and the latent pictures) need.
pub trait LatentLayers {
    /// Each stochastic layer's name and width, from the data side (`z`; or `h1`, `h2`, …).
    fn latent_layers(&self) -> Vec<(String, usize)>;
    /// E_q[h_l | x] for each layer l and each row of x [N, ·], estimated where it has no closed
    /// form from draws of `rng`; one [N, J_l] per layer.
    fn posterior_means(&self, x: Tensor, rng: &mut StdRng) -> Vec<Tensor>;
}

/// A model family: its parameters, its metadata, its loss with named terms, a training step,
/// a forward-only pass over a batch, and decoded pictures.
///
/// Terms are reported in the order of [`Family::terms`], as per-example means by
/// [`Family::train_step`] and as sums over rows by [`Family::evaluate`]; [`Family::loss`]
/// puts them together into the objective.
pub trait Family: Send + Sync {
    /// The family's name on the command line and in checkpoints (`vae`, `cvae`, `vqvae`).
    fn name(&self) -> &'static str;
    /// Its trainable tensors.
    fn params(&self) -> &ParamStore;
    /// The same, to update.
    fn params_mut(&mut self) -> &mut ParamStore;
    /// Everything needed to build the model again (checkpoint metadata, `family` included).
    fn metadata(&self) -> HashMap<String, String>;
    /// Input shape [C, H, W].
    fn input(&self) -> [usize; 3];
    /// Classes of a conditional model (its rows carry a one-hot label), else 0.
    fn classes(&self) -> usize {
        0
    }
    /// How many scalars of [`Family::params`] are running statistics rather than parameters
    /// (the EMA codebook's moving averages, like buffers in a PyTorch state dict); 0 for most.
    fn buffer_scalars(&self) -> usize {
        0
    }
    /// The names of the terms a step and an evaluation report; by default a model with
    /// Gaussian latents' ([`GAUSSIAN_TERMS`]: recon, kl and the IWAE's gain).
    fn terms(&self) -> &'static [&'static str] {
        GAUSSIAN_TERMS
    }
    /// The terms shown in metrics.csv and on screen: all of them, but the Gaussian families'
    /// gain, which stays internal.
    fn shown(&self) -> &'static [&'static str] {
        match self.terms() {
            t if t == GAUSSIAN_TERMS => &GAUSSIAN_TERMS[..2],
            t => t,
        }
    }
    /// The objective from per-example means of the terms; by default a Gaussian family's,
    /// [`gaussian_loss`].
    fn loss(&self, means: &[f64], s: &StepSettings) -> f64 {
        gaussian_loss(means, s)
    }
    /// One optimization step on rows x [N, D + Y], drawing any noise from `rng`; returns the
    /// terms' per-example means.
    fn train_step(
        &mut self,
        opt: &mut dyn Optimizer,
        x: &Tensor,
        s: &StepSettings,
        rng: &mut StdRng,
    ) -> Result<Vec<f64>, NonFinite>;
    /// The forward pass only over rows x, drawing any noise from `rng`: the terms' sums over
    /// the rows, and statistics of the pass named by [`Family::statistics`] as counts to add up
    /// across batches.
    fn evaluate(&self, x: Tensor, s: &StepSettings, rng: &mut StdRng) -> (Vec<f64>, Vec<u64>);
    /// Names of statistics computed from the added-up counts of [`Family::evaluate`] (the
    /// VQ-VAE's perplexity of code use); none by default.
    fn statistics(&self, _counts: &[u64]) -> Vec<(&'static str, f64)> {
        vec![]
    }
    /// Housekeeping after an epoch, given the test pass's counts and a batch of training rows:
    /// the VQ-VAE restarts its dead codes. Returns a line to report, if anything was done.
    fn after_epoch(&mut self, _counts: &[u64], _x: &Tensor, _rng: &mut StdRng) -> Option<String> {
        None
    }
    /// What [`Family::sample`] draws from, for reports: `the prior`.
    fn sample_source(&self) -> &'static str {
        "the prior"
    }
    /// n decoded samples from the prior; a conditional model draws sample i of class
    /// `labels[i % labels.len()]`. [n, D].
    fn sample(&self, n: usize, labels: &[usize], rng: &mut StdRng) -> Tensor;
    /// Reconstructions of rows x: the decoder mean at the encoder's most likely latent. [N, D].
    fn reconstruct(&self, x: Tensor) -> Tensor;
    /// The single-layer Gaussian VAE inside, for the pictures and the explorer that decode
    /// points of its one latent space (a conditional model's with a label).
    fn as_vae(&self) -> Option<&Vae> {
        None
    }
    /// The model's log weights, if its latents are Gaussian: what the importance-weighted
    /// bound (`eval --iw-samples`) needs.
    fn importance_weighted(&self) -> Option<&dyn ImportanceWeighted> {
        None
    }
    /// The model's latent space, if it has a continuous one: what the explorer and the latent
    /// pictures need.
    fn latent_space(&self) -> Option<&dyn LatentSpace> {
        None
    }
    /// The model's Gaussian latent layers, if it has them: what active units need.
    fn latent_layers(&self) -> Option<&dyn LatentLayers> {
        None
    }
    /// The one line `vae-cli` prints for the model, such as `mlp 784-400-20 bernoulli`.
    fn describe(&self) -> String;
    /// What [`Family::loss`] is, with its unit, for reports: `nats per image (negative ELBO, z
    /// sampled)` by default ([`gaussian_loss_name`]; the bound on log p(x|y) for a model with
    /// classes).
    fn loss_name(&self, s: &StepSettings) -> String {
        gaussian_loss_name(self.classes() > 0, s)
    }
    /// The knobs of [`StepSettings`] this family's steps read, as one phrase for the start of
    /// a run: `objective iwae K=5` by default ([`gaussian_knobs`]).
    fn describe_knobs(&self, s: &StepSettings) -> String {
        gaussian_knobs(s)
    }
    /// Sets the decoder's output bias from pixel values (see [`Vae::set_output_bias`]); false
    /// if the family has no such option.
    fn set_output_bias(&mut self, _bias: &[f32]) -> bool {
        false
    }
}

/// Sums of a family's terms over examples (in the order of [`Family::terms`]), the examples
/// counted, and the added-up counts of [`Family::evaluate`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sums {
    /// Σ over examples of each term.
    pub terms: Vec<f64>,
    /// Examples seen.
    pub count: usize,
    /// Counts for [`Family::statistics`].
    pub counts: Vec<u64>,
}

impl Sums {
    /// Adds the per-example means of `n` examples (as a step reports them).
    pub fn add_means(&mut self, means: &[f64], n: usize) {
        self.terms.resize(means.len(), 0.0);
        self.terms.iter_mut().zip(means).for_each(|(s, m)| *s += m * n as f64);
        self.count += n;
    }

    /// The sums of both, `self`'s first.
    pub fn plus(&self, other: &Sums) -> Sums {
        let add = |a: &[f64], b: &[f64]| {
            (0..a.len().max(b.len())).map(|i| a.get(i).unwrap_or(&0.0) + b.get(i).unwrap_or(&0.0)).collect()
        };
        let counts = (0..self.counts.len().max(other.counts.len()))
            .map(|i| self.counts.get(i).unwrap_or(&0) + other.counts.get(i).unwrap_or(&0))
            .collect();
        Sums { terms: add(&self.terms, &other.terms), count: self.count + other.count, counts }
    }

    /// Per-example means of the terms.
    pub fn means(&self) -> Vec<f64> {
        let n = self.count.max(1) as f64;
        self.terms.iter().map(|s| s / n).collect()
    }
}

/// Test images per chunk of [`evaluate_split`]: each chunk has its own random stream, so the
/// result does not depend on the number of threads.
pub const EVAL_CHUNK: usize = 500;

/// A family's forward pass over a whole split, in parallel: chunk c of [`EVAL_CHUNK`] images
/// draws its binarization (for [`Binarize::Dynamic`]) and its noise from `rng_for(c)`, goes
/// through [`Family::evaluate`], and the chunks' sums are added in chunk order, so any thread
/// count gives the same numbers.
pub fn evaluate_split(
    model: &dyn Family,
    split: &Split,
    mode: Binarize,
    s: &StepSettings,
    rng_for: impl Fn(u64) -> StdRng + Sync,
) -> Sums {
    let n = split.len();
    let chunks: Vec<usize> = (0..n.div_ceil(EVAL_CHUNK)).collect();
    let parts: Vec<Sums> = chunks
        .par_iter()
        .map(|&c| {
            let mut rng = rng_for(c as u64);
            let idx: Vec<usize> = (c * EVAL_CHUNK..((c + 1) * EVAL_CHUNK).min(n)).collect();
            let x = split.rows(&idx, mode, &mut rng, model.classes());
            let (terms, counts) = model.evaluate(x, s, &mut rng);
            Sums { terms, count: idx.len(), counts }
        })
        .collect();
    parts.iter().fold(Sums::default(), |a, b| a.plus(b))
}

/// The loss terms of every model with Gaussian latents: −log p(x|z) (`recon`), the KL term
/// (`kl`), and the IWAE's `gain`, how far L_K lies above the average of its K sampled ELBO
/// terms, kept to give its loss but not shown.
pub const GAUSSIAN_TERMS: &[&str] = &["recon", "kl", "gain"];

/// [`Family::loss`] of a model with Gaussian latents from the means of [`GAUSSIAN_TERMS`]:
/// recon + β·kl − gain (the ELBO's gain is 0; the IWAE's β is 1).
pub fn gaussian_loss(means: &[f64], s: &StepSettings) -> f64 {
    let t = |name| term(GAUSSIAN_TERMS, means, name);
    t("recon") + s.kl_weight as f64 * t("kl") - t("gain")
}

/// [`Family::loss_name`] of a model with Gaussian latents (of a conditional one when
/// `conditional`: the bound on log p(x|y)).
pub fn gaussian_loss_name(conditional: bool, s: &StepSettings) -> String {
    let bound = match s.objective {
        Objective::Elbo { .. } => "negative ELBO",
        Objective::Iwae { .. } => "negative importance-weighted bound",
    };
    let of = if conditional { "conditional " } else { "" };
    format!("nats per image ({of}{bound}, z sampled)")
}

/// [`Family::describe_knobs`] of a model with Gaussian latents: the objective and K.
pub fn gaussian_knobs(s: &StepSettings) -> String {
    format!("objective {} K={}", s.objective.name(), s.objective.k())
}
