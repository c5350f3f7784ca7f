//! The VAE: encoder q(z|x), reparameterization, decoder p(x|z), and the negative ELBO.
//!
//! Shape legend
//! - N: batch, D = C·H·W: values per example, J: latent dimension, Y: classes of a
//!   conditional model (0 for the plain VAE)
//! - x [N, D + Y] (a conv model views its first D values as [N, C, H, W] inside; a conditional
//!   model's one-hot label y fills the last Y), mu, logvar, eps, z [N, J], the decoder's input
//!   [N, J + Y] ([z, y]), out [N, D] (logits for Bernoulli, the mean for Gaussian), recon and
//!   kl `[N]`, loss `[]`
//!
//! ```text
//!  x ──encoder──► mu, logvar ──► z = mu + exp(½·logvar) ⊙ eps ──decoder──► out
//!                     │                                                      │
//!                     └──► KL(q(z|x) ‖ p(z))             −log p(x|z) ◄──────┘
//!  loss = mean_n [ recon_n + β·kl_n ]  (nats per example)
//! ```
//!
//! The prior p(z) is N(0, I), whose KL has a closed form, or the VampPrior
//! ([`crate::parts::vamp`]): the mixture of the encoder's posteriors at K learned
//! pseudo-inputs u [K, D]. q(z|x) is the Gaussian, or its sample carried through T inverse
//! autoregressive flow steps ([`crate::parts::iaf`]), z_T = f_T(… f_1(z_0)), with
//! log q(z_T|x) = log N(z_0; mu, σ²) − Σ_t log |det ∂z_t/∂z_{t−1}|. Beyond N(0, I) and the
//! plain Gaussian, the KL has no closed form and is taken from the sample,
//! log q(z|x) − log p(z).

use ndarray::{Axis, Slice};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use vae_autodiff::{ConvGeom, Tape, Tensor, Var};
use vae_layers::{Conv2d, ConvTranspose2d, Linear, ParamStore, ParamVars};

use crate::config::{Arch, PriorKind, VaeConfig};
use crate::error::Error;
use crate::parts::conv::{ConvStack, DeconvStack};
use crate::parts::gaussian::log_prob_of_own_sample;
use crate::parts::iaf::IafStep;
use crate::parts::resnet::{ResnetDecoder, ResnetEncoder};
use crate::parts::{standard_normal_log_prob, tile, vamp, Gaussian, Mlp};
use vae_layers::ParamId;

/// The encoder's layers before the two heads.
#[derive(Clone, Debug)]
enum EncoderBody {
    Mlp(Mlp),
    Conv(ConvStack),
    Resnet(ResnetEncoder),
}

/// The decoder's layers.
#[derive(Clone, Debug)]
enum DecoderBody {
    Mlp { hidden: Mlp, out: Linear },
    Conv { fc: Linear, shape: [usize; 3], deconvs: DeconvStack },
    Resnet { fc: Linear, shape: [usize; 3], body: ResnetDecoder },
}

/// A variational autoencoder: its configuration, its parameters and its layers.
#[derive(Clone, Debug)]
pub struct Vae {
    /// What the model is.
    pub config: VaeConfig,
    /// Its trainable tensors, named as in PyTorch state dicts (`enc_fc1.weight`, …).
    pub params: ParamStore,
    encoder: EncoderBody,
    enc_mu: Linear,
    enc_logvar: Linear,
    decoder: DecoderBody,
    /// The VampPrior's pseudo-inputs u [K, D], if the prior is one.
    pseudo_inputs: Option<ParamId>,
    /// The inverse autoregressive flow on q's sample (no steps: the plain Gaussian).
    flow: Vec<IafStep>,
}

/// The nodes of one forward pass, for reading values and for backward.
#[derive(Clone, Copy, Debug)]
pub struct Elbo {
    /// Posterior mean [N, J].
    pub mu: Var,
    /// Posterior log-variance [N, J].
    pub logvar: Var,
    /// The sampled latent [K·N, J].
    pub z: Var,
    /// Decoder output [K·N, D].
    pub out: Var,
    /// −log p(x|z) per draw [K·N].
    pub recon: Var,
    /// KL(q(z|x) ‖ p(z)) per example `[N]`.
    pub kl: Var,
    /// Mean of `recon` over the batch and the draws [].
    pub recon_mean: Var,
    /// Mean of `kl` over the batch [].
    pub kl_mean: Var,
    /// recon_mean + β·kl_mean [].
    pub loss: Var,
}

/// z = mu + exp(½·logvar) ⊙ eps: the sample is a differentiable function of (mu, logvar), and
/// the randomness sits in eps ~ N(0, I), a constant of the tape.
pub fn reparameterize(tape: &mut Tape, mu: Var, logvar: Var, eps: Var) -> Var {
    Gaussian { mu, logvar }.sample(tape, eps)
}

/// A tensor of independent N(0, 1) values.
pub fn standard_normal(shape: &[usize], rng: &mut impl Rng) -> Tensor {
    Tensor::from_shape_simple_fn(shape.to_vec(), || StandardNormal.sample(rng))
}

impl Vae {
    /// A new model with PyTorch's default initialization, drawn from `rng`.
    pub fn new(config: VaeConfig, rng: &mut impl Rng) -> Result<Self, Error> {
        config.validate()?;
        let mut params = ParamStore::new();
        let (d, j) = (config.input_len(), config.latent);
        let (encoder, enc_width) = match &config.arch {
            Arch::Mlp { hidden } => {
                // The first layer reads [x, y].
                let body = Mlp::new(&mut params, "enc", d + config.classes, hidden, config.activation, rng);
                let width = body.width();
                (EncoderBody::Mlp(body), width)
            }
            Arch::Resnet { channels } => {
                let body = ResnetEncoder::new(&mut params, config.input[0], channels, rng);
                let top = *config.conv_shapes()?.last().expect("non-empty");
                (EncoderBody::Resnet(body), top.iter().product::<usize>() + config.classes)
            }
            Arch::Conv { layers } => {
                let shapes = config.conv_shapes()?;
                let convs = layers
                    .iter()
                    .zip(&shapes)
                    .enumerate()
                    .map(|(i, (l, s))| {
                        let geom = ConvGeom::new(l.stride, l.padding);
                        Conv2d::new(&mut params, &format!("enc_conv{}", i + 1), s[0], l.channels, l.kernel, geom, rng)
                    })
                    .collect();
                // The dense heads read the flattened features and the label: [h, y].
                let flat: usize = shapes.last().expect("non-empty").iter().product();
                (EncoderBody::Conv(ConvStack::new(convs, config.activation)), flat + config.classes)
            }
        };
        let enc_mu = Linear::new(&mut params, "enc_mu", enc_width, j, rng);
        let enc_logvar = Linear::new(&mut params, "enc_logvar", enc_width, j, rng);
        let dec_width = j + config.classes; // [z, y]
        let decoder = match &config.arch {
            Arch::Mlp { hidden } => {
                let back: Vec<usize> = hidden.iter().rev().copied().collect();
                let body = Mlp::new(&mut params, "dec", dec_width, &back, config.activation, rng);
                let outputs = d * config.likelihood.outputs_per_value();
                let out = Linear::new(&mut params, "dec_out", body.width(), outputs, rng);
                DecoderBody::Mlp { hidden: body, out }
            }
            Arch::Resnet { channels } => {
                let shapes = config.conv_shapes()?;
                let top = *shapes.last().expect("non-empty");
                let fc = Linear::new(&mut params, "dec_fc1", dec_width, top.iter().product(), rng);
                let sizes: Vec<usize> = shapes.iter().map(|s| s[1]).collect();
                let outputs = config.input[0] * config.likelihood.outputs_per_value();
                let body = ResnetDecoder::new(&mut params, channels, &sizes, outputs, rng);
                DecoderBody::Resnet { fc, shape: top, body }
            }
            Arch::Conv { layers } => {
                let shapes = config.conv_shapes()?;
                let top = *shapes.last().expect("non-empty");
                let fc = Linear::new(&mut params, "dec_fc1", dec_width, top.iter().product(), rng);
                // Mirror: the i-th deconvolution undoes the (L−i)-th convolution.
                // The last gives O output channels per input channel (the means, then the log-scales).
                let last = layers.len();
                let deconvs = layers
                    .iter()
                    .zip(shapes.windows(2))
                    .rev()
                    .enumerate()
                    .map(|(i, (l, s))| {
                        let geom = ConvGeom::new(l.stride, l.padding);
                        let name = format!("dec_deconv{}", i + 1);
                        let out = if i + 1 == last { s[0][0] * config.likelihood.outputs_per_value() } else { s[0][0] };
                        ConvTranspose2d::new(&mut params, &name, s[1][0], out, l.kernel, geom, rng)
                    })
                    .collect();
                DecoderBody::Conv { fc, shape: top, deconvs: DeconvStack::new(deconvs, config.activation) }
            }
        };
        // Registered last, so that a model with N(0, I) draws exactly the parameters it did.
        let pseudo_inputs = match config.prior {
            PriorKind::Normal => None,
            PriorKind::Vamp { components } => {
                // Near-blank images, as Tomczak & Welling's default (their mean 0.05, std 0.01);
                // a run starts them at training images instead (`Vae::set_pseudo_inputs`).
                let u = Tensor::from_shape_simple_fn(vec![components, d], || {
                    0.05 + 0.01 * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng)
                });
                Some(params.add("prior.pseudo_inputs", u))
            }
        };
        // Each flow step reverses the order of z of the one before; its MADE uses the hidden
        // layers' nonlinearity.
        let flow = match config.flow {
            None => vec![],
            Some(f) => (0..f.depth)
                .map(|t| {
                    let name = format!("flow{}", t + 1);
                    IafStep::new(&mut params, &name, (j, f.width), t % 2 == 1, config.activation, rng)
                })
                .collect(),
        };
        Ok(Self { config, params, encoder, enc_mu, enc_logvar, decoder, pseudo_inputs, flow })
    }

    /// Whether the KL must be taken from the sample: beyond N(0, I) with a plain Gaussian q.
    pub fn kl_is_sampled(&self) -> bool {
        self.pseudo_inputs.is_some() || !self.flow.is_empty()
    }

    /// The KL per example `[N]` from K draws each: the mean over its draws of
    /// log q(z|x) − log p(z), with log q(z|x) = log N(z_0; mu, σ²) − log |det| of the flow, from
    /// the tiled logvar and eps [K·N, J] and the draws' z and log-determinant.
    fn kl_from_sample(
        &self,
        tape: &mut Tape,
        p: &ParamVars,
        (logvar, eps): (Var, Var),
        (z, log_det): (Var, Option<Var>),
        k: usize,
    ) -> Var {
        let log_q0 = log_prob_of_own_sample(tape, logvar, eps);
        let log_q = match log_det {
            None => log_q0,
            Some(log_det) => tape.sub(log_q0, log_det),
        };
        let log_p = self.log_prior(tape, p, z);
        let log_ratio = tape.sub(log_q, log_p);
        let n = tape.value(log_ratio).shape()[0] / k;
        let draws = tape.reshape(log_ratio, &[k, n]);
        tape.mean_axis(draws, 0)
    }

    /// The KL term of each example and latent unit [N, J], for free bits
    /// ([`crate::objective::FreeBits`]); summed over the units it is the KL of [`Vae::elbo`].
    /// With a diagonal Gaussian q, in closed form, ½(e^logvar + mu² − 1 − logvar); with a
    /// flow, the average over the K draws of eps [K·N, J] of the sampled
    ///
    /// ```text
    ///   log q(z_j|x) − log p(z_j) = −½(eps_j² + logvar_j) + Σ_t (−log σ_tj) + ½ z_j²
    /// ```
    ///
    /// (the ½ ln 2π of each density cancels). Under N(0, I) only: a mixture prior does not
    /// factorize over units ([`crate::run::Recipe::check_parts`] refuses the pair).
    pub fn kl_units(&self, tape: &mut Tape, p: &ParamVars, mu: Var, logvar: Var, eps: Var) -> Var {
        assert!(self.pseudo_inputs.is_none(), "kl_units: the VampPrior has no KL per unit");
        if self.flow.is_empty() {
            let var = tape.exp(logvar);
            let mu2 = tape.square(mu);
            let sum = tape.add(var, mu2);
            let sum = tape.sub(sum, logvar);
            let one = tape.constant(Tensor::from_elem(vec![], 1.0));
            let twice = tape.sub(sum, one);
            return tape.scale(twice, 0.5);
        }
        let (n, j) = (tape.value(mu).shape()[0], tape.value(mu).shape()[1]);
        let k = tape.value(eps).shape()[0] / n.max(1);
        let (mu_rep, logvar_rep) = (tile(tape, mu, k), tile(tape, logvar, k));
        let mut z = reparameterize(tape, mu_rep, logvar_rep, eps);
        let eps2 = tape.square(eps);
        let mut units = tape.add(eps2, logvar_rep);
        units = tape.scale(units, -0.5); // log q(z_0) per unit, up to ½ ln 2π
        for step in &self.flow {
            let (next, minus_log_sigma) = step.forward_units(tape, p, z);
            units = tape.add(units, minus_log_sigma);
            z = next;
        }
        let z2 = tape.square(z);
        let half_z2 = tape.scale(z2, 0.5); // −log p(z) per unit, up to ½ ln 2π
        let units = tape.add(units, half_z2);
        let draws = tape.reshape(units, &[k, n * j]);
        let mean = tape.mean_axis(draws, 0);
        tape.reshape(mean, &[n, j])
    }

    /// The flow's steps on a sample z_0 [M, J]: z_T and Σ_t log |det ∂z_t/∂z_{t−1}| `[M]`
    /// (z_0 itself and no log-determinant without a flow).
    pub fn flow(&self, tape: &mut Tape, p: &ParamVars, z0: Var) -> (Var, Option<Var>) {
        let mut z = z0;
        let mut log_det: Option<Var> = None;
        for step in &self.flow {
            let (next, ld) = step.forward(tape, p, z);
            z = next;
            log_det = Some(match log_det {
                None => ld,
                Some(sum) => tape.add(sum, ld),
            });
        }
        (z, log_det)
    }

    /// A sample of q(z|x) from the posterior's tiled mu, logvar and the noise eps [M, J]: the
    /// latent z (after the flow) and log q(z|x) `[M]`.
    pub fn posterior_sample(&self, tape: &mut Tape, p: &ParamVars, mu: Var, logvar: Var, eps: Var) -> (Var, Var) {
        let z0 = reparameterize(tape, mu, logvar, eps);
        let log_q0 = log_prob_of_own_sample(tape, logvar, eps);
        match self.flow(tape, p, z0) {
            (z, None) => (z, log_q0),
            (z, Some(log_det)) => (z, tape.sub(log_q0, log_det)),
        }
    }

    /// log p(z) per row of z [M, J] under the model's prior: N(0, I), or the VampPrior, the
    /// mixture of the posteriors q(z | u_k) at the pseudo-inputs. Their mu and logvar are
    /// [`Vae::prior_components`], taken from `p`'s derived values when a step computed them
    /// once for all its tapes, or else encoded on this tape; either way the gradient reaches
    /// the pseudo-inputs and the encoder. `[M]`.
    pub fn log_prior(&self, tape: &mut Tape, p: &ParamVars, z: Var) -> Var {
        match self.pseudo_inputs {
            None => standard_normal_log_prob(tape, z),
            Some(_) => vamp::log_prob_with(tape, p, z, |tape| self.prior_components(tape, p, 0, self.prior_rows())),
        }
    }

    /// What the prior computes from the parameters alone, for a step or a pass to compute once
    /// and hand to every tape ([`crate::step::batch_gradients_derived`]): under the VampPrior
    /// rows start..end of the components' mu and logvar [K, J], those pseudo-inputs encoded;
    /// nothing for N(0, I). [`Vae::prior_rows`] says how many rows there are. A conditional
    /// model's pseudo-input k stands for class k mod Y: it is encoded with that label, so the
    /// prior is a mixture over the classes as well (p(z) still reads no label).
    pub fn prior_components(&self, tape: &mut Tape, p: &ParamVars, start: usize, end: usize) -> Vec<Var> {
        match self.pseudo_inputs {
            None => Vec::new(),
            Some(u) => {
                let mut rows = tape.slice(p.var(u), 0, start, end - start);
                if self.config.classes > 0 {
                    let labels = tape
                        .constant(crate::cvae::one_hot(&self.pseudo_input_classes(start, end), self.config.classes));
                    rows = tape.concat(&[rows, labels], 1);
                }
                let (mu_u, logvar_u) = self.encode(tape, p, rows);
                vec![mu_u, logvar_u]
            }
        }
    }

    /// The class of each pseudo-input start..end of a conditional model: k mod Y.
    pub fn pseudo_input_classes(&self, start: usize, end: usize) -> Vec<usize> {
        (start..end).map(|k| k % self.config.classes.max(1)).collect()
    }

    /// Rows of [`Vae::prior_components`]: K under the VampPrior, 0 for N(0, I).
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

    /// The hidden layers' nonlinearity, applied to a pre-activation.
    fn activate(&self, tape: &mut Tape, a: Var) -> Var {
        self.config.activation.apply(tape, a)
    }

    /// The pixels of rows x [N, D + Y]: their first D values [N, D] (x itself when Y = 0).
    pub fn pixels(&self, tape: &mut Tape, x: Var) -> Var {
        if self.config.classes == 0 {
            return x;
        }
        tape.slice(x, 1, 0, self.config.input_len())
    }

    /// `h` [N, W] with the one-hot labels of rows x [N, D + Y] appended: [h, y] [N, W + Y]
    /// (`h` itself when Y = 0).
    pub fn join_label(&self, tape: &mut Tape, h: Var, x: Var) -> Var {
        if self.config.classes == 0 {
            return h;
        }
        let y = tape.slice(x, 1, self.config.input_len(), self.config.classes);
        tape.concat(&[h, y], 1)
    }

    /// The pixels of rows x [N, D + Y] as images [N, C, H, W].
    fn images(&self, tape: &mut Tape, x: Var) -> Var {
        let n = tape.value(x).shape()[0];
        let [c, h, w] = self.config.input;
        let pixels = self.pixels(tape, x);
        tape.reshape(pixels, &[n, c, h, w])
    }

    /// q(z|x): x [N, D + Y] → (mu, logvar), each [N, J]. A conditional MLP reads [x, y] in its
    /// first layer; a conditional conv model appends y to the flattened features.
    pub fn encode(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> (Var, Var) {
        let h = match &self.encoder {
            EncoderBody::Mlp(body) => body.forward(tape, p, x),
            EncoderBody::Conv(convs) => {
                let img = self.images(tape, x);
                let h = convs.forward(tape, p, img);
                let h = tape.flatten(h); // [N, C·H·W] in (C, H, W) order, as PyTorch's flatten
                self.join_label(tape, h, x)
            }
            EncoderBody::Resnet(blocks) => {
                let img = self.images(tape, x);
                let h = blocks.forward(tape, p, img);
                let h = tape.flatten(h);
                let h = tape.elu(h);
                self.join_label(tape, h, x)
            }
        };
        (self.enc_mu.forward(tape, p, h), self.enc_logvar.forward(tape, p, h))
    }

    /// The decoder: z [N, J] (or [z, y] [N, J + Y] for a conditional model) → out [N, D]
    /// (logits for Bernoulli, the mean for Gaussian).
    pub fn decode(&self, tape: &mut Tape, p: &ParamVars, z: Var) -> Var {
        match &self.decoder {
            DecoderBody::Mlp { hidden, out } => {
                let h = hidden.forward(tape, p, z);
                out.forward(tape, p, h)
            }
            DecoderBody::Resnet { fc, shape, body } => {
                let n = tape.value(z).shape()[0];
                let h = fc.forward(tape, p, z);
                let h = tape.reshape(h, &[n, shape[0], shape[1], shape[2]]);
                let out = body.forward(tape, p, h);
                tape.flatten(out)
            }
            DecoderBody::Conv { fc, shape, deconvs } => {
                let n = tape.value(z).shape()[0];
                let a = fc.forward(tape, p, z);
                let h = self.activate(tape, a);
                let h = tape.reshape(h, &[n, shape[0], shape[1], shape[2]]);
                let out = deconvs.forward(tape, p, h); // no activation on the logits
                tape.flatten(out)
            }
        }
    }

    /// −log p(x|z) per example `[N]`, in nats, from the decoder output and the rows x [N, D + Y].
    pub fn recon_nll(&self, tape: &mut Tape, out: Var, x: Var) -> Var {
        let x = self.pixels(tape, x);
        self.config.likelihood.neg_log_prob(tape, out, x)
    }

    /// The whole forward pass and the negative ELBO with KL weight `beta`, for x [N, D] and
    /// noise eps [K·N, J]: K draws of z per example (row k·N + n: draw k of example n; K = 1
    /// for the plain VAE), the reconstruction term averaged over all K·N draws, the KL per
    /// example: in closed form under N(0, I), else the average over its K draws of
    /// log q(z|x) − log p(z). A conditional model's decoder reads [z, y].
    pub fn elbo(&self, tape: &mut Tape, p: &ParamVars, x: Var, eps: Var, beta: f32) -> Elbo {
        let k = tape.value(eps).shape()[0] / tape.value(x).shape()[0].max(1);
        let (mu, logvar) = self.encode(tape, p, x);
        // K copies of each row (no op at all when K = 1).
        let (mu_rep, logvar_rep, x_rep) = (tile(tape, mu, k), tile(tape, logvar, k), tile(tape, x, k));
        let z0 = reparameterize(tape, mu_rep, logvar_rep, eps); // z ~ q(z|x)
        let (z, log_det) = self.flow(tape, p, z0); // z0 itself without a flow
        let z_y = self.join_label(tape, z, x_rep); // [z, y]; z itself for the plain VAE
        let out = self.decode(tape, p, z_y);
        let recon = self.recon_nll(tape, out, x_rep);
        let kl = match self.kl_is_sampled() {
            false => tape.kl_std_normal(mu, logvar), // closed form, [N]
            true => self.kl_from_sample(tape, p, (logvar_rep, eps), (z, log_det), k),
        };
        let recon_mean = tape.mean(recon);
        let kl_mean = tape.mean(kl);
        let weighted_kl = tape.scale(kl_mean, beta);
        let loss = tape.add(recon_mean, weighted_kl);
        Elbo { mu, logvar, z, out, recon, kl, recon_mean, kl_mean, loss }
    }

    /// Decoder means for given decoder inputs z [N, J] ([z, y] [N, J + Y] for a conditional
    /// model, see [`crate::cvae::with_labels`]): pixel probabilities σ(logits) for Bernoulli,
    /// the Gaussian mean otherwise. [N, D].
    pub fn decode_mean(&self, z: Tensor) -> Tensor {
        let mut tape = Tape::new();
        let p = self.params.on_tape(&mut tape);
        let z = tape.constant(z);
        let out = self.decode(&mut tape, &p, z);
        let mean = self.config.likelihood.mean(&mut tape, out);
        tape.value(mean).clone()
    }

    /// Decoded samples from the prior: z ~ p(z), then the decoder mean. [n, D]. A
    /// conditional model draws sample i of class `labels[i % labels.len()]` (the plain VAE
    /// ignores `labels`).
    ///
    /// # Panics
    /// If a conditional model gets no labels or a label ≥ Y.
    pub fn sample(&self, n: usize, labels: &[usize], rng: &mut impl Rng) -> Tensor {
        let z = self.sample_prior(n, rng);
        if self.config.classes == 0 {
            return self.decode_mean(z);
        }
        assert!(!labels.is_empty(), "a conditional model samples given labels");
        let labels: Vec<usize> = (0..n).map(|i| labels[i % labels.len()]).collect();
        self.decode_mean(crate::cvae::with_labels(&z, &labels, self.config.classes))
    }

    /// n draws z ~ p(z) [n, J]: N(0, I), or under the VampPrior a component k drawn uniformly
    /// for each, then z = mu_k + exp(½·logvar_k) ⊙ eps.
    pub fn sample_prior(&self, n: usize, rng: &mut impl Rng) -> Tensor {
        let eps = standard_normal(&[n, self.config.latent], rng);
        if self.pseudo_inputs.is_none() {
            return eps;
        }
        let mut tape = Tape::new();
        let p = self.params.on_tape(&mut tape);
        let c = self.prior_components(&mut tape, &p, 0, self.prior_rows());
        vamp::draw(tape.value(c[0]), tape.value(c[1]), eps, rng)
    }

    /// Sets the bias of the decoder's last layer from one value per decoder output, O·D values
    /// (O outputs per pixel value, [`crate::Likelihood::outputs_per_value`]): an MLP takes them
    /// as they are; a conv model's output channel (O·C of them) takes the mean of its H·W values.
    ///
    /// # Panics
    /// If `bias` does not hold O·D values.
    pub fn set_output_bias(&mut self, bias: &[f32]) {
        let outputs = self.config.input_len() * self.config.likelihood.outputs_per_value();
        assert_eq!(bias.len(), outputs, "set_output_bias: {} values for {outputs} decoder outputs", bias.len());
        let [_, h, w] = self.config.input;
        let mean = |plane: &[f32]| (plane.iter().map(|&b| b as f64).sum::<f64>() / plane.len() as f64) as f32;
        let (id, values) = match &self.decoder {
            DecoderBody::Mlp { out, .. } => (out.bias, bias.to_vec()),
            DecoderBody::Conv { deconvs, .. } => (deconvs.last().bias, bias.chunks_exact(h * w).map(mean).collect()),
            DecoderBody::Resnet { body, .. } => (body.out.bias, bias.chunks_exact(h * w).map(mean).collect()),
        };
        let slot = &mut self.params.values_mut()[id.0];
        assert_eq!(slot.len(), values.len(), "set_output_bias: {} values for a bias of {}", values.len(), slot.len());
        *slot = Tensor::from_shape_vec(slot.raw_dim(), values).expect("the bias's shape");
    }

    /// The posterior's parameters for x [N, D + Y]: (mu, logvar), each [N, J].
    pub fn encode_values(&self, x: Tensor) -> (Tensor, Tensor) {
        // A tape per `CHUNK_ROWS` rows: the 10,000 test images of `vae-cli latent` on one tape
        // spent most of their time faulting in fresh pages. Rows are independent, so the cut
        // does not change the result.
        let (n, rows_per_tape) = (x.shape()[0], crate::step::CHUNK_ROWS);
        let (mut mus, mut logvars) = (Vec::new(), Vec::new());
        // At least one tape, so that an empty x still gives [0, J] results.
        for start in (0..n.max(1)).step_by(rows_per_tape) {
            let rows = x.slice_axis(Axis(0), Slice::from(start.min(n)..(start + rows_per_tape).min(n)));
            let mut tape = Tape::new();
            let p = self.params.on_tape(&mut tape);
            let xv = tape.constant(rows.to_owned());
            let (mu, logvar) = self.encode(&mut tape, &p, xv);
            mus.push(tape.value(mu).clone());
            logvars.push(tape.value(logvar).clone());
        }
        let join = |parts: &[Tensor]| {
            let views: Vec<_> = parts.iter().map(|t| t.view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("rows of the same width")
        };
        (join(&mus), join(&logvars))
    }

    /// The data-dependent start of a ResNet body's weight-normalized layers (Salimans & Kingma
    /// 2016) on a batch x [N, D + Y]: the encoder's blocks in order on the images, then the
    /// decoder's on what the dense layer makes of the posterior means; every channel of every
    /// layer at mean 0 and deviation 1 on this batch (a residual branch's last layer at 0.1).
    /// Returns false (and changes nothing) for the other bodies.
    pub fn init_from_data(&mut self, x: &Tensor) -> bool {
        let (EncoderBody::Resnet(encoder), DecoderBody::Resnet { fc, shape, body }) = (&self.encoder, &self.decoder)
        else {
            return false;
        };
        let (encoder, fc, shape, body) = (encoder.clone(), fc.clone(), *shape, body.clone());
        let n = x.shape()[0];
        let [c, h, w] = self.config.input;
        let pixels = x.slice_axis(Axis(1), Slice::from(..self.config.input_len())).to_owned();
        let images = pixels.into_shape_with_order(vec![n, c, h, w]).expect("N images of C·H·W values");
        encoder.init_from_data(&mut self.params, &images);
        let mu = self.encode_values(x.clone()).0;
        let z = match self.config.classes {
            0 => mu,
            classes => {
                let y = x.slice_axis(Axis(1), Slice::from(self.config.input_len()..)).to_owned();
                let labels: Vec<usize> =
                    y.outer_iter().map(|row| row.iter().position(|&v| v > 0.5).unwrap_or(0)).collect();
                crate::cvae::with_labels(&mu, &labels, classes)
            }
        };
        let top = {
            let mut tape = Tape::new();
            let p = self.params.on_tape(&mut tape);
            let zv = tape.constant(z);
            let hv = fc.forward(&mut tape, &p, zv);
            tape.value(hv).clone()
        };
        let top = top.into_shape_with_order(vec![n, shape[0], shape[1], shape[2]]).expect("the top maps' shape");
        body.init_from_data(&mut self.params, &top);
        true
    }

    /// The posterior's centre for x [N, D + Y]: mu, carried through the flow if the model has
    /// one (the latent at eps = 0). [N, J].
    pub fn centre_values(&self, x: Tensor) -> Tensor {
        let (mu, _) = self.encode_values(x);
        if self.flow.is_empty() {
            return mu;
        }
        let mut tape = Tape::new();
        let p = self.params.on_tape(&mut tape);
        let mu = tape.constant(mu);
        let (z, _) = self.flow(&mut tape, &p, mu);
        tape.value(z).clone()
    }

    /// Reconstructions of x [N, D + Y]: the decoder mean at the posterior's centre (no
    /// sampling: z = mu, through the flow if any), given the same label for a conditional
    /// model. [N, D].
    pub fn reconstruct(&self, x: Tensor) -> Tensor {
        let mu = self.centre_values(x.clone());
        if self.config.classes == 0 {
            return self.decode_mean(mu);
        }
        let d = self.config.input_len();
        let y = x.slice_axis(Axis(1), Slice::from(d..));
        let z_y = ndarray::concatenate(Axis(1), &[mu.view(), y]).expect("rows of the same count");
        self.decode_mean(z_y)
    }
}
