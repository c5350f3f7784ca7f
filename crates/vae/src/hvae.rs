//! A VAE with a chain of Gaussian stochastic layers (Burda, Grosse & Salakhutdinov's
//! two-stochastic-layer model, of any depth L), built from the parts in [`crate::parts`]:
//!
//! ```text
//!   recognition  q(h|x) = q(h1|x) · q(h2|h1) · … · q(hL|hL−1)      each a GaussianLayer
//!   generative   p(x, h) = p(x|h1) · p(h1|h2) · … · p(hL−1|hL) · p(hL)
//!                p(x|h1) Bernoulli (or Gaussian), p(hl|hl+1) GaussianLayers with learned
//!                mean and log-variance, p(hL) = N(0, I) or a VampPrior
//!
//!   log w = log p(x|h1) + Σ_{l<L} log p(hl|hl+1) + log p(hL) − Σ_l log q(hl|hl−1)
//! ```
//!
//! every density with its normalizer. The objectives read only log w
//! ([`crate::objective::ImportanceWeighted`]): the IWAE bound, the K-sample ELBO (its KL term
//! sampled: there is no closed form for the KL of a chain), and the evaluation's −log p(x).
//!
//! Shape legend
//! - N examples, K samples of each, D pixels, L stochastic layers of J_1, …, J_L units
//! - x [N, D]; h_l [K·N, J_l] (row k·N + n: sample k of example n); eps [K·N, J_1 + … + J_L]
//!   (layer 1's noise in the first J_1 columns, then layer 2's, …)
//! - log-densities, log w `[K·N]`
//!
//! Parameters (PyTorch state-dict names): `q<l>_fc<i>`, `q<l>_mu`, `q<l>_logvar` for
//! q(hl|hl−1); `p<l>_fc<i>`, `p<l>_mu`, `p<l>_logvar` for p(hl|hl+1), l < L; `px_fc<i>`,
//! `px_out` for p(x|h1). Layer l's hidden widths serve q(hl|hl−1) and, reversed, the network
//! that undoes it, p(hl−1|hl) (p(x|h1) for l = 1).
//!
//! Under the VampPrior (`prior.pseudo_inputs` [K, D], after every other parameter) the top
//! layer's prior is a mixture over K learned pseudo-inputs u_k of the recognition chain's top
//! posterior, reached through the means of the layers below:
//!
//! ```text
//!   p(hL) = (1/K) Σ_k N(hL; mu_L(m_k), diag(exp(logvar_L(m_k)))),   m_k = mu_{L−1}(… mu_1(u_k))
//! ```
//!
//! (q(hL|u) itself integrates over the lower layers and has no closed form; the means give
//! one Gaussian per pseudo-input, so p(hL) is a proper density that follows the encoder.)

use std::collections::HashMap;

use ndarray::Axis;
use rand::rngs::StdRng;
use rand::Rng;
use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::optim::Optimizer;
use vae_layers::{Linear, ParamId, ParamStore, ParamVars};

use crate::config::{Activation, Likelihood, PriorKind};
use crate::error::Error;
use crate::family::{Family, LatentLayers, LatentSpace, StepSettings};
use crate::model::standard_normal;
use crate::objective::{ImportanceWeighted, Weights};
use crate::parts::{standard_normal_log_prob, vamp, Gaussian, GaussianLayer, Mlp};
use crate::step::{update, NonFinite};
use crate::train::{evaluate_weighted, weighted_gradients};

/// The most parameters a configuration may ask for (as [`crate::config`]'s limit for the VAE).
const MAX_PARAMETERS: usize = 1 << 28;

/// One stochastic layer of the chain: the hidden widths of the net that reads the layer below
/// (x for the first), and its Gaussian units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// Hidden widths of q(hl|hl−1), from the data side; reversed in p(hl−1|hl).
    pub hidden: Vec<usize>,
    /// J_l, the units of hl.
    pub latent: usize,
}

/// A complete description of a model with a chain of stochastic layers.
#[derive(Clone, Debug, PartialEq)]
pub struct HvaeConfig {
    /// Input shape [C, H, W]; the networks see C·H·W values.
    pub input: [usize; 3],
    /// The stochastic layers, from the data side (h1 first).
    pub layers: Vec<LayerSpec>,
    /// The nonlinearity of every hidden layer.
    pub activation: Activation,
    /// p(x|h1).
    pub likelihood: Likelihood,
    /// p(hL): N(0, I), or a VampPrior over the top layer (module header).
    pub prior: PriorKind,
}

impl HvaeConfig {
    /// Burda et al.'s two-stochastic-layer MNIST model: q(h1|x) 784-200-200 → 100 units,
    /// q(h2|h1) 100-100-100 → 50; p(h1|h2) 50-100-100 → 100, p(x|h1) 100-200-200-784
    /// Bernoulli; tanh everywhere.
    pub fn burda2_mnist() -> Self {
        Self {
            input: [1, 28, 28],
            layers: vec![
                LayerSpec { hidden: vec![200, 200], latent: 100 },
                LayerSpec { hidden: vec![100, 100], latent: 50 },
            ],
            activation: Activation::Tanh,
            likelihood: Likelihood::Bernoulli,
            prior: PriorKind::Normal,
        }
    }

    /// D = C·H·W.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Checks sizes and the parameter count.
    pub fn validate(&self) -> Result<(), Error> {
        if self.input.contains(&0) {
            return Err(Error::config(format!("input shape {:?} has a zero size", self.input)));
        }
        if self.layers.is_empty() {
            return Err(Error::config("a chain of stochastic layers needs at least one layer".into()));
        }
        for (l, spec) in self.layers.iter().enumerate() {
            if spec.latent == 0 || spec.hidden.contains(&0) {
                return Err(Error::config(format!(
                    "stochastic layer h{} needs at least one unit and non-zero hidden widths (found {} units, hidden {:?})",
                    l + 1,
                    spec.latent,
                    spec.hidden
                )));
            }
        }
        if let Likelihood::Gaussian { sigma } = self.likelihood {
            if !(sigma > 0.0 && sigma.is_finite()) {
                return Err(Error::config(format!("sigma must be a positive number, found {sigma}")));
            }
        }
        if self.prior == (PriorKind::Vamp { components: 0 }) {
            return Err(Error::config("a VampPrior needs at least one pseudo-input".to_string()));
        }
        if self.likelihood.outputs_per_value() != 1 {
            return Err(Error::config(
                "the discretized logistic is for the vae and cvae families so far; use bernoulli or gaussian".into(),
            ));
        }
        if self.parameter_count().is_none_or(|n| n > MAX_PARAMETERS) {
            return Err(Error::config(format!("the model would have more than {MAX_PARAMETERS} parameters")));
        }
        Ok(())
    }

    /// The number of scalar parameters, or `None` on overflow.
    pub fn parameter_count(&self) -> Option<usize> {
        let linear = |i: usize, o: usize| i.checked_mul(o)?.checked_add(o);
        // A Gaussian layer: its body's layers and two heads.
        let gaussian = |input: usize, hidden: &[usize], out: usize| -> Option<usize> {
            let mut total = 0usize;
            let mut width = input;
            for &h in hidden {
                total = total.checked_add(linear(width, h)?)?;
                width = h;
            }
            total.checked_add(linear(width, out)?.checked_mul(2)?)
        };
        let d = self.input.iter().try_fold(1usize, |a, &b| a.checked_mul(b))?;
        let mut total = 0usize;
        let mut below = d;
        for (l, spec) in self.layers.iter().enumerate() {
            total = total.checked_add(gaussian(below, &spec.hidden, spec.latent)?)?; // q(hl|hl−1)
            let back: Vec<usize> = spec.hidden.iter().rev().copied().collect();
            if l > 0 {
                total = total.checked_add(gaussian(spec.latent, &back, below)?)?;
            // p(hl−1|hl)
            } else {
                let mut width = spec.latent; // p(x|h1): body, then the output layer
                for &h in &back {
                    total = total.checked_add(linear(width, h)?)?;
                    width = h;
                }
                total = total.checked_add(linear(width, d)?)?;
            }
            below = spec.latent;
        }
        match self.prior {
            PriorKind::Normal => Some(total),
            PriorKind::Vamp { components } => total.checked_add(components.checked_mul(d)?),
        }
    }

    /// A one-line description such as `hvae 784-[200-200]-100-[100-100]-50 tanh bernoulli`.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.input_len().to_string()];
        for spec in &self.layers {
            let hidden: Vec<String> = spec.hidden.iter().map(|h| h.to_string()).collect();
            parts.push(format!("[{}]", hidden.join("-")));
            parts.push(spec.latent.to_string());
        }
        let lik = match self.likelihood {
            Likelihood::Bernoulli => "bernoulli".to_string(),
            Likelihood::Gaussian { sigma } => format!("gaussian σ={sigma}"),
            Likelihood::DLogistic { .. } => "discretized logistic".to_string(),
        };
        let prior = match self.prior {
            PriorKind::Normal => String::new(),
            PriorKind::Vamp { components } => format!(", VampPrior of {components} pseudo-inputs"),
        };
        format!("hvae {} {} {lik}{prior}", parts.join("-"), self.activation.name())
    }

    /// The configuration as checkpoint metadata (family `hvae`).
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("family".into(), "hvae".into());
        m.insert("model".into(), "mlp".into());
        m.insert("input".into(), format!("{:?}", self.input));
        let hidden: Vec<&Vec<usize>> = self.layers.iter().map(|s| &s.hidden).collect();
        let latent: Vec<usize> = self.layers.iter().map(|s| s.latent).collect();
        m.insert("hidden".into(), format!("{hidden:?}"));
        m.insert("latent".into(), format!("{latent:?}"));
        m.insert("activation".into(), self.activation.name().into());
        self.likelihood.insert_metadata(&mut m);
        self.prior.insert_metadata(&mut m);
        m
    }

    /// Reads what [`HvaeConfig::to_metadata`] wrote; the error names the entry at fault.
    pub fn from_metadata(m: &HashMap<String, String>) -> Result<Self, Error> {
        let get = |k: &str| m.get(k).ok_or_else(|| Error::config(format!("the hvae configuration has no {k:?} entry")));
        let bad = |k: &str, what: &str| Error::config(format!("configuration entry {k:?} must be {what}"));
        let input: Vec<usize> = serde_json::from_str(get("input")?).map_err(|_| bad("input", "[C, H, W]"))?;
        let input: [usize; 3] = input.try_into().map_err(|_| bad("input", "[C, H, W]"))?;
        let hidden: Vec<Vec<usize>> =
            serde_json::from_str(get("hidden")?).map_err(|_| bad("hidden", "a list of lists of whole numbers"))?;
        let latent: Vec<usize> =
            serde_json::from_str(get("latent")?).map_err(|_| bad("latent", "a list of whole numbers"))?;
        if hidden.len() != latent.len() {
            return Err(Error::config(format!(
                "the hvae configuration lists {} hidden stacks for {} stochastic layers",
                hidden.len(),
                latent.len()
            )));
        }
        let layers = hidden.into_iter().zip(latent).map(|(hidden, latent)| LayerSpec { hidden, latent }).collect();
        let config = Self {
            input,
            layers,
            activation: Activation::from_metadata(m)?,
            likelihood: Likelihood::from_metadata(m)?,
            prior: PriorKind::from_metadata(m)?,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The model: its configuration, parameters and parts.
#[derive(Clone, Debug)]
pub struct Hvae {
    /// What the model is.
    pub config: HvaeConfig,
    /// Its trainable tensors, under the names of the module header.
    pub params: ParamStore,
    /// q(hl|hl−1) for l = 1..L (q(h1|x) first).
    q: Vec<GaussianLayer>,
    /// p(hl|hl+1) for l = 1..L−1 (p(h1|h2) first).
    p: Vec<GaussianLayer>,
    /// The body of p(x|h1).
    px_body: Mlp,
    /// Its output layer: the logits (or the Gaussian mean) of the pixels.
    px_out: Linear,
    /// The VampPrior's pseudo-inputs u [K, D], if the prior is one.
    pseudo_inputs: Option<ParamId>,
}

/// Every node of one pass through the chain, for reading values (the reference test) and for
/// the log weights.
#[derive(Clone, Debug)]
pub struct Pass {
    /// The sampled h_l, [K·N, J_l] each, h1 first.
    pub h: Vec<Var>,
    /// log q(hl|hl−1) `[K·N]` each, layer 1 first.
    pub log_q: Vec<Var>,
    /// log p(hl|hl+1) `[K·N]` each, layer 1 first; the last is log p(hL) = log N(hL; 0, I).
    pub log_p: Vec<Var>,
    /// The output of p(x|h1) [K·N, D] (logits for Bernoulli).
    pub out: Var,
    /// The terms of the log weight.
    pub weights: Weights,
}

impl Hvae {
    /// A new model with PyTorch's default initialization drawn from `rng`: q(h1|x), …,
    /// q(hL|hL−1), then p(h1|h2), …, p(hL−1|hL), then p(x|h1).
    pub fn new(config: HvaeConfig, rng: &mut impl Rng) -> Result<Self, Error> {
        config.validate()?;
        let mut params = ParamStore::new();
        let (d, act) = (config.input_len(), config.activation);
        let mut q = Vec::new();
        let mut below = d;
        for (l, spec) in config.layers.iter().enumerate() {
            q.push(GaussianLayer::new(&mut params, &format!("q{}", l + 1), below, &spec.hidden, spec.latent, act, rng));
            below = spec.latent;
        }
        let mut p = Vec::new();
        for (l, pair) in config.layers.windows(2).enumerate() {
            let back: Vec<usize> = pair[1].hidden.iter().rev().copied().collect();
            let name = format!("p{}", l + 1);
            p.push(GaussianLayer::new(&mut params, &name, pair[1].latent, &back, pair[0].latent, act, rng));
        }
        let first = &config.layers[0];
        let back: Vec<usize> = first.hidden.iter().rev().copied().collect();
        let px_body = Mlp::new(&mut params, "px", first.latent, &back, act, rng);
        let px_out = Linear::new(&mut params, "px_out", px_body.width(), d, rng);
        let pseudo_inputs = match config.prior {
            PriorKind::Normal => None,
            // Uniform grey values until a run starts them at training images (`set_pseudo_inputs`).
            PriorKind::Vamp { components } => {
                let u = Tensor::from_shape_fn(vec![components, d], |_| rng.random::<f32>());
                Some(params.add("prior.pseudo_inputs", u))
            }
        };
        Ok(Self { config, params, q, p, px_body, px_out, pseudo_inputs })
    }

    /// log p(hL) per row of the top layer's sample hL [M, J_L]: N(0, I), or the VampPrior's
    /// mixture, its components from `p`'s derived values when a step computed them once, or
    /// else computed on this tape. `[M]`.
    pub fn log_prior_top(&self, tape: &mut Tape, p: &ParamVars, top: Var) -> Var {
        match self.pseudo_inputs {
            None => standard_normal_log_prob(tape, top),
            Some(_) => vamp::log_prob_with(tape, p, top, |tape| self.prior_components(tape, p, 0, self.prior_rows())),
        }
    }

    /// Rows start..end of the VampPrior's components, mu and logvar [end − start, J_L]: the
    /// top posterior of the recognition chain at pseudo-inputs start..end, through the means
    /// of the layers below (module header); nothing for N(0, I).
    pub fn prior_components(&self, tape: &mut Tape, p: &ParamVars, start: usize, end: usize) -> Vec<Var> {
        let Some(u) = self.pseudo_inputs else { return Vec::new() };
        let mut h = tape.slice(p.var(u), 0, start, end - start);
        let mut q = self.q[0].forward(tape, p, h);
        for layer in &self.q[1..] {
            h = q.mu;
            q = layer.forward(tape, p, h);
        }
        vec![q.mu, q.logvar]
    }

    /// Rows of [`Hvae::prior_components`]: K under the VampPrior, 0 for N(0, I).
    pub fn prior_rows(&self) -> usize {
        self.config.prior.components()
    }

    /// Sets the VampPrior's pseudo-inputs, K rows of D values (a run starts them at K training
    /// images); false if the prior is N(0, I).
    ///
    /// # Panics
    /// If `u` does not hold K·D values.
    pub fn set_pseudo_inputs(&mut self, u: &[f32]) -> bool {
        vamp::set_pseudo_inputs(&mut self.params, self.pseudo_inputs, u)
    }

    /// Units per layer, J_1, …, J_L.
    pub fn latents(&self) -> Vec<usize> {
        self.config.layers.iter().map(|s| s.latent).collect()
    }

    /// p(x|h1)'s output for h1 [M, J_1]: logits (or the Gaussian mean), [M, D].
    pub fn decode(&self, tape: &mut Tape, p: &ParamVars, h1: Var) -> Var {
        let h = self.px_body.forward(tape, p, h1);
        self.px_out.forward(tape, p, h)
    }

    /// The whole chain for x_rep [K·N, D], q(h1|x) (its mu and logvar tiled to K·N rows) and
    /// eps [K·N, Σ J_l]: sample h1, …, hL upward, score them under q and under p, decode h1.
    pub fn pass(&self, tape: &mut Tape, p: &ParamVars, x_rep: Var, q1: Gaussian, eps: Var) -> Pass {
        let latents = self.latents();
        let mut offset = 0;
        let mut noise = |tape: &mut Tape, j: usize| {
            let e = if latents.len() == 1 { eps } else { tape.slice(eps, 1, offset, j) };
            offset += j;
            e
        };
        // Upward through q: hl = mu + σ ⊙ eps_l, scored at its own sample.
        let (mut h, mut log_q) = (Vec::new(), Vec::new());
        let mut q_l = q1;
        for (l, &j) in latents.iter().enumerate() {
            if l > 0 {
                q_l = self.q[l].forward(tape, p, h[l - 1]);
            }
            let eps_l = noise(tape, j);
            h.push(q_l.sample(tape, eps_l));
            log_q.push(q_l.log_prob_of_sample(tape, eps_l));
        }
        // The generative side: p(hl|hl+1) at the same samples, and p(hL).
        let mut log_p: Vec<Var> = (0..latents.len() - 1)
            .map(|l| {
                let prior = self.p[l].forward(tape, p, h[l + 1]);
                prior.log_prob(tape, h[l])
            })
            .collect();
        log_p.push(self.log_prior_top(tape, p, h[latents.len() - 1]));
        let out = self.decode(tape, p, h[0]);
        let recon = self.config.likelihood.neg_log_prob(tape, out, x_rep); // −log p(x|h1)
        let sum = |tape: &mut Tape, terms: &[Var]| terms[1..].iter().fold(terms[0], |a, &b| tape.add(a, b));
        let (log_q_sum, log_p_sum) = (sum(tape, &log_q), sum(tape, &log_p));
        let log_joint = tape.sub(log_p_sum, recon);
        let log_w = tape.sub(log_joint, log_q_sum);
        let log_ratio = tape.sub(log_q_sum, log_p_sum);
        Pass { h, log_q, log_p, out, weights: Weights { recon, log_ratio, log_w } }
    }

    /// Means of p(x|h) for n draws of the generative model: hL ~ p(hL), then hl ~ p(hl|hl+1)
    /// down to h1, then the pixel means. [n, D].
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Tensor {
        let latents = self.latents();
        let mut tape = Tape::new();
        let p = self.params.on_tape(&mut tape);
        let top = standard_normal(&[n, latents[latents.len() - 1]], rng);
        let top = match *self.prior_components(&mut tape, &p, 0, self.prior_rows()) {
            [mu_u, logvar_u] => vamp::draw(tape.value(mu_u), tape.value(logvar_u), top, rng),
            _ => top,
        };
        let mut h = tape.constant(top);
        for l in (0..latents.len() - 1).rev() {
            let prior = self.p[l].forward(&mut tape, &p, h);
            let eps = tape.constant(standard_normal(&[n, latents[l]], rng));
            h = prior.sample(&mut tape, eps);
        }
        let out = self.decode(&mut tape, &p, h);
        let mean = self.config.likelihood.mean(&mut tape, out);
        tape.value(mean).clone()
    }

    /// Reconstructions of x [N, D]: the pixel means at h1 = the mean of q(h1|x). [N, D].
    pub fn reconstruct(&self, x: Tensor) -> Tensor {
        let mut tape = Tape::new();
        let p = self.params.on_tape(&mut tape);
        let xv = tape.constant(x);
        let q1 = self.q[0].forward(&mut tape, &p, xv);
        let out = self.decode(&mut tape, &p, q1.mu);
        let mean = self.config.likelihood.mean(&mut tape, out);
        tape.value(mean).clone()
    }

    /// Sets the bias of p(x|h1)'s output layer (D values), as Burda et al. initialize it.
    ///
    /// # Panics
    /// If `bias` does not hold D values.
    pub fn set_output_bias(&mut self, bias: &[f32]) {
        let slot = &mut self.params.values_mut()[self.px_out.bias.0];
        assert_eq!(slot.len(), bias.len(), "set_output_bias: {} values for a bias of {}", bias.len(), slot.len());
        *slot = Tensor::from_shape_vec(slot.raw_dim(), bias.to_vec()).expect("the bias's shape");
    }
}

impl ImportanceWeighted for Hvae {
    fn param_store(&self) -> &ParamStore {
        &self.params
    }
    fn noise_width(&self) -> usize {
        self.latents().iter().sum()
    }
    /// q(h1|x)'s mu and logvar: the only part that reads x.
    fn encode_once(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Vec<Var> {
        let q1 = self.q[0].forward(tape, p, x);
        vec![q1.mu, q1.logvar]
    }
    fn log_weights_given(&self, tape: &mut Tape, p: &ParamVars, x_rep: Var, once_rep: &[Var], eps: Var) -> Weights {
        self.pass(tape, p, x_rep, Gaussian { mu: once_rep[0], logvar: once_rep[1] }, eps).weights
    }
    fn derived(&self, tape: &mut Tape, p: &ParamVars, start: usize, end: usize) -> Vec<Var> {
        self.prior_components(tape, p, start, end)
    }
    fn derived_rows(&self) -> usize {
        self.prior_rows()
    }
}

impl LatentSpace for Hvae {
    /// J_L, the units of the top layer.
    fn latent_dim(&self) -> usize {
        self.config.layers[self.config.layers.len() - 1].latent
    }
    fn latent_name(&self) -> String {
        format!("h{}", self.config.layers.len())
    }
    fn prior_if_not_standard(&self) -> Option<String> {
        self.config.prior.if_not_standard()
    }
    /// The top layer's posterior at the means of the layers below: mu_1 = mu(x), mu_l =
    /// mu(mu_{l−1}) (no sampling, so a point per image; the exact E_q[hL|x] averages over the
    /// lower layers' draws, see [`LatentLayers::posterior_means`]). Means and log-variances
    /// [N, J_L].
    fn encode_points(&self, x: Tensor) -> (Tensor, Option<Tensor>) {
        let (mut mus, mut logvars) = (Vec::new(), Vec::new());
        let n = x.shape()[0];
        for start in (0..n.max(1)).step_by(crate::step::CHUNK_ROWS) {
            let rows =
                x.slice_axis(Axis(0), ndarray::Slice::from(start.min(n)..(start + crate::step::CHUNK_ROWS).min(n)));
            let mut tape = Tape::new();
            let p = self.params.on_tape(&mut tape);
            let mut h = tape.constant(rows.to_owned());
            let mut q = self.q[0].forward(&mut tape, &p, h);
            for layer in &self.q[1..] {
                h = q.mu;
                q = layer.forward(&mut tape, &p, h);
            }
            mus.push(tape.value(q.mu).clone());
            logvars.push(tape.value(q.logvar).clone());
        }
        let join = |parts: &[Tensor]| {
            let views: Vec<_> = parts.iter().map(|t| t.view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("rows of the same width")
        };
        (join(&mus), Some(join(&logvars)))
    }
    /// Down the generative chain at its means: hl = the mean of p(hl|hl+1), then the pixel
    /// means of p(x|h1). [N, D].
    fn decode_points(&self, z: Tensor, _labels: &[usize]) -> Tensor {
        let mut tape = Tape::new();
        let p = self.params.on_tape(&mut tape);
        let mut h = tape.constant(z);
        for prior in self.p.iter().rev() {
            h = prior.forward(&mut tape, &p, h).mu;
        }
        let out = self.decode(&mut tape, &p, h);
        let mean = self.config.likelihood.mean(&mut tape, out);
        tape.value(mean).clone()
    }
}

/// Draws of the lower layers per image when [`LatentLayers::posterior_means`] estimates
/// E_q[hl|x] for l ≥ 2, which has no closed form.
pub const MEAN_DRAWS: usize = 100;

impl LatentLayers for Hvae {
    fn latent_layers(&self) -> Vec<(String, usize)> {
        self.latents().iter().enumerate().map(|(l, &j)| (format!("h{}", l + 1), j)).collect()
    }
    /// E_q[h1|x] = mu1(x) exactly; E_q[hl|x] = E_{hl−1 ~ q(hl−1|x)}[mu_l(hl−1)] for l ≥ 2,
    /// averaged over [`MEAN_DRAWS`] draws of the chain below.
    fn posterior_means(&self, x: Tensor, rng: &mut StdRng) -> Vec<Tensor> {
        let latents = self.latents();
        let n = x.shape()[0];
        let mut means: Vec<Tensor> = latents.iter().map(|&j| Tensor::zeros(vec![n, j])).collect();
        // Images a tape at a time, so that memory stays bounded for the whole test set.
        for start in (0..n).step_by(crate::step::CHUNK_ROWS) {
            let end = (start + crate::step::CHUNK_ROWS).min(n);
            let rows = x.slice_axis(Axis(0), ndarray::Slice::from(start..end)).to_owned();
            let mut tape = Tape::new();
            let p = self.params.on_tape(&mut tape);
            let xv = tape.constant(rows);
            let q1 = self.q[0].forward(&mut tape, &p, xv);
            means[0].slice_axis_mut(Axis(0), ndarray::Slice::from(start..end)).assign(tape.value(q1.mu));
            if latents.len() == 1 {
                continue;
            }
            let draws = MEAN_DRAWS;
            let tile = |tape: &mut Tape, v: Var| tape.concat(&vec![v; draws], 0);
            let mut q_l = Gaussian { mu: tile(&mut tape, q1.mu), logvar: tile(&mut tape, q1.logvar) };
            for l in 1..latents.len() {
                let eps = tape.constant(standard_normal(&[draws * (end - start), latents[l - 1]], rng));
                let h = q_l.sample(&mut tape, eps);
                q_l = self.q[l].forward(&mut tape, &p, h);
                let mu =
                    tape.value(q_l.mu).to_shape((draws, end - start, latents[l])).expect("draws × rows").to_owned();
                let mean = mu.mean_axis(Axis(0)).expect("at least one draw").into_dyn();
                means[l].slice_axis_mut(Axis(0), ndarray::Slice::from(start..end)).assign(&mean);
            }
        }
        means
    }
}

/// The terms are the Gaussian families' (the trait's defaults); `kl` is the sampled
/// log q(h|x) − log p(h), summed over the layers.
impl Family for Hvae {
    fn name(&self) -> &'static str {
        "hvae"
    }
    fn params(&self) -> &ParamStore {
        &self.params
    }
    fn params_mut(&mut self) -> &mut ParamStore {
        &mut self.params
    }
    fn metadata(&self) -> HashMap<String, String> {
        self.config.to_metadata()
    }
    fn input(&self) -> [usize; 3] {
        self.config.input
    }
    fn train_step(
        &mut self,
        opt: &mut dyn Optimizer,
        x: &Tensor,
        s: &StepSettings,
        rng: &mut StdRng,
    ) -> Result<Vec<f64>, NonFinite> {
        let eps = standard_normal(&[s.objective.k() * x.shape()[0], self.noise_width()], rng);
        let (t, grads) = weighted_gradients(self, x, &eps, s.objective, s.kl_weight);
        update(&mut self.params, opt, grads, t.loss, s.clip)?;
        Ok(vec![t.recon, t.kl, t.gain])
    }
    fn evaluate(&self, x: Tensor, s: &StepSettings, rng: &mut StdRng) -> (Vec<f64>, Vec<u64>) {
        let t = evaluate_weighted(self, x, s.objective, rng);
        (vec![t.recon, t.kl, t.gain], vec![])
    }
    fn sample_source(&self) -> &'static str {
        "the generative chain (the top layer from N(0, I), each layer below from p(hl|hl+1))"
    }
    /// Ancestral samples; the model has no classes, so `labels` is ignored.
    fn sample(&self, n: usize, _labels: &[usize], rng: &mut StdRng) -> Tensor {
        Hvae::sample(self, n, rng)
    }
    fn reconstruct(&self, x: Tensor) -> Tensor {
        Hvae::reconstruct(self, x)
    }
    fn importance_weighted(&self) -> Option<&dyn ImportanceWeighted> {
        Some(self)
    }
    fn latent_layers(&self) -> Option<&dyn LatentLayers> {
        Some(self)
    }
    fn latent_space(&self) -> Option<&dyn LatentSpace> {
        Some(self)
    }
    fn describe(&self) -> String {
        self.config.describe()
    }
    fn set_output_bias(&mut self, bias: &[f32]) -> bool {
        Hvae::set_output_bias(self, bias);
        true
    }
}
