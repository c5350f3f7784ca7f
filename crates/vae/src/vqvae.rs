//! The vector-quantized VAE (van den Oord, Vinyals & Kavukcuoglu 2017).
//!
//! The encoder maps x to a grid of L vectors z_e, each of width Dc; each is replaced by the
//! nearest row of a learned codebook e [Kc, Dc], and the decoder reads the quantized grid:
//!
//! ```text
//!  x ──encoder──► z_e [N·L, Dc] ──nearest row──► k [N·L] ──► e_k ──decoder──► out [N, D]
//! ```
//!
//! The posterior is a point mass on the codes k, q(k|x) = 1 for the nearest ones, so with a
//! uniform prior over Kc codes its KL is the constant L·ln Kc; what is trained is
//!
//!   loss = recon + ‖sg(z_e) − e_k‖² + β‖z_e − sg(e_k)‖²       (per example, β = 0.25),
//!
//! sg(·) stopping the gradient: the **codebook** term moves the chosen codes toward the
//! encoder's outputs, the **commitment** term keeps the encoder close to its codes. The
//! nearest-row choice has no gradient; the **straight-through** estimator lets the decoder's
//! gradient pass it unchanged: the decoder reads z_q = z_e + sg(e_k − z_e), the value of e_k
//! with the gradient of z_e.
//!
//! Shape legend
//! - N batch, D = C·H·W pixels, L code vectors per image, Dc their width, Kc codebook rows
//! - MLP: x [N, D] → hidden → z_e [N, L·Dc], viewed [N·L, Dc]
//! - conv: x [N, C, H, W] → convolutions → [N, Dc, h, w], its pixels as rows [N·h·w, Dc]
//!   (L = h·w); the decoder mirrors the convolutions
//! - codebook e [Kc, Dc]; index [N·L]; recon, codebook, commit []

use std::collections::HashMap;

use ndarray::{Axis, Slice};
use rand::rngs::StdRng;
use rand::Rng;
use vae_autodiff::{ConvGeom, Tape, Tensor, Var};
use vae_layers::optim::Optimizer;
use vae_layers::{Conv2d, ConvTranspose2d, Linear, ParamId, ParamStore, ParamVars};

use crate::config::{Activation, Likelihood};
use crate::error::Error;
use crate::family::{term, Family, StepSettings};
pub use crate::parts::codebook::nearest_codes;
use crate::parts::codebook::{quantize, Quantized};
use crate::parts::conv::{ConvStack, DeconvStack};
use crate::parts::Mlp;
use crate::step::{batch_gradients, update, NonFinite, CHUNK_ROWS, EVAL_ROWS};

/// The commitment weight β of the paper.
pub const DEFAULT_BETA: f32 = crate::family::DEFAULT_COMMITMENT;

/// The network shape of a VQ-VAE.
#[derive(Clone, Debug, PartialEq)]
pub enum VqArch {
    /// Dense layers: D → hidden → L·Dc; L·Dc → hidden reversed → D.
    Mlp {
        /// Hidden widths, from the input side.
        hidden: Vec<usize>,
        /// L, the code vectors per image.
        codes: usize,
    },
    /// Convolutions (kernel 4, stride 2, padding 1, each halving the image) and a 1×1
    /// convolution to Dc channels: a grid of h·w codes; the decoder mirrors them.
    Conv {
        /// Output channels of each halving convolution, from the input side.
        channels: Vec<usize>,
    },
}

/// A complete VQ-VAE description, stored in its checkpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct VqConfig {
    /// The architecture.
    pub arch: VqArch,
    /// Input shape [C, H, W].
    pub input: [usize; 3],
    /// Dc, the width of a code vector.
    pub code_dim: usize,
    /// Kc, the rows of the codebook.
    pub codebook_size: usize,
    /// The nonlinearity of the hidden layers.
    pub activation: Activation,
    /// The decoder's likelihood.
    pub likelihood: Likelihood,
    /// Learn the codebook by exponential moving averages with this decay γ (the paper's
    /// appendix) instead of by the gradient of the codebook term; `None`: by gradient.
    pub ema_decay: Option<f32>,
}

impl VqConfig {
    /// The MNIST model: 28×28 → conv 32 → conv 64 (7×7) → 1×1 conv to Dc = 16: a 7×7 grid of
    /// 49 codes from a codebook of 128; Bernoulli pixels.
    pub fn conv_mnist() -> Self {
        Self {
            arch: VqArch::Conv { channels: vec![32, 64] },
            input: [1, 28, 28],
            code_dim: 16,
            codebook_size: 128,
            activation: Activation::Relu,
            likelihood: Likelihood::Bernoulli,
            ema_decay: None,
        }
    }

    /// D = C·H·W.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// The code grid: (h, w) with L = h·w for a conv model, (1, L) for an MLP.
    pub fn grid(&self) -> (usize, usize) {
        match &self.arch {
            VqArch::Mlp { codes, .. } => (1, *codes),
            VqArch::Conv { channels } => {
                let halve = |s: usize| channels.iter().fold(s, |s, _| s / 2);
                (halve(self.input[1]), halve(self.input[2]))
            }
        }
    }

    /// L, code vectors per image.
    pub fn codes(&self) -> usize {
        let (h, w) = self.grid();
        h * w
    }

    /// Checks sizes: every width at least 1; a conv model's halvings must divide the image.
    pub fn validate(&self) -> Result<(), Error> {
        if self.input.contains(&0) || self.code_dim == 0 || self.codebook_size < 2 {
            return Err(Error::config(format!(
                "a VQ-VAE needs a non-empty input, code_dim ≥ 1 and at least 2 codes (found input {:?}, code_dim {}, codebook {})",
                self.input, self.code_dim, self.codebook_size
            )));
        }
        if self.likelihood.outputs_per_value() != 1 {
            return Err(Error::config(
                "the discretized logistic is for the vae and cvae families so far; use bernoulli or gaussian".into(),
            ));
        }
        if let Some(g) = self.ema_decay {
            if !(g > 0.0 && g < 1.0) {
                return Err(Error::config(format!("the EMA decay must lie strictly between 0 and 1, found {g}")));
            }
        }
        match &self.arch {
            VqArch::Mlp { hidden, codes } if hidden.contains(&0) || *codes == 0 => {
                Err(Error::config(format!("hidden sizes {hidden:?} and codes {codes} must be at least 1")))
            }
            VqArch::Conv { channels } => {
                let scale = 1usize.checked_shl(channels.len() as u32).unwrap_or(0);
                if channels.is_empty() || channels.contains(&0) || scale == 0 {
                    return Err(Error::config(
                        "a conv VQ-VAE needs at least one convolution, each with ≥ 1 channel".into(),
                    ));
                }
                if !self.input[1].is_multiple_of(scale) || !self.input[2].is_multiple_of(scale) {
                    return Err(Error::config(format!(
                        "{} halvings do not divide a {}×{} image evenly",
                        channels.len(),
                        self.input[1],
                        self.input[2]
                    )));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A one-line description such as `vqvae conv 1×28×28, codebook 128×16`.
    pub fn describe(&self) -> String {
        let kind = match self.arch {
            VqArch::Mlp { .. } => "mlp",
            VqArch::Conv { .. } => "conv",
        };
        let input: Vec<String> = self.input.iter().map(|s| s.to_string()).collect();
        format!("vqvae {kind} {}, codebook {}×{}", input.join("×"), self.codebook_size, self.code_dim)
    }

    /// The configuration as checkpoint metadata (family `vqvae`).
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("family".into(), "vqvae".into());
        match &self.arch {
            VqArch::Mlp { hidden, codes } => {
                m.insert("model".into(), "mlp".into());
                m.insert("hidden".into(), format!("{hidden:?}"));
                m.insert("codes".into(), codes.to_string());
            }
            VqArch::Conv { channels } => {
                m.insert("model".into(), "conv".into());
                m.insert("channels".into(), format!("{channels:?}"));
            }
        }
        m.insert("input".into(), format!("{:?}", self.input));
        m.insert("code_dim".into(), self.code_dim.to_string());
        m.insert("codebook_size".into(), self.codebook_size.to_string());
        m.insert("activation".into(), self.activation.name().into());
        self.likelihood.insert_metadata(&mut m);
        if let Some(g) = self.ema_decay {
            m.insert("ema_decay".into(), g.to_string());
        }
        m
    }

    /// Reads a configuration written by [`VqConfig::to_metadata`].
    pub fn from_metadata(m: &HashMap<String, String>) -> Result<Self, Error> {
        let get =
            |k: &str| m.get(k).ok_or_else(|| Error::config(format!("the VQ-VAE configuration has no {k:?} entry")));
        let list = |k: &str| -> Result<Vec<usize>, Error> {
            serde_json::from_str(get(k)?).map_err(|_| Error::config(format!("{k} must be a list of whole numbers")))
        };
        let whole = |k: &str| -> Result<usize, Error> {
            get(k)?.parse().map_err(|_| Error::config(format!("{k} must be a whole number")))
        };
        let arch = match get("model")?.as_str() {
            "mlp" => VqArch::Mlp { hidden: list("hidden")?, codes: whole("codes")? },
            "conv" => VqArch::Conv { channels: list("channels")? },
            other => return Err(Error::config(format!("unknown VQ-VAE model kind {other:?} (expected mlp or conv)"))),
        };
        let input: [usize; 3] =
            list("input")?.try_into().map_err(|_| Error::config("input must be [C, H, W]".into()))?;
        let (activation, likelihood) = (Activation::from_metadata(m)?, Likelihood::from_metadata(m)?);
        let config = Self {
            arch,
            input,
            code_dim: whole("code_dim")?,
            codebook_size: whole("codebook_size")?,
            activation,
            likelihood,
            ema_decay: match m.get("ema_decay") {
                None => None,
                Some(v) => Some(v.parse().map_err(|_| Error::config("ema_decay is not a number".into()))?),
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// The layers on either side of the codes.
#[derive(Clone, Debug)]
enum Body {
    Mlp { encoder: Mlp, enc_out: Linear, decoder: Mlp, dec_out: Linear },
    Conv { encoder: ConvStack, enc_out: Conv2d, dec_in: Conv2d, decoder: DeconvStack },
}

/// A VQ-VAE: configuration, parameters (the codebook among them, `codebook.weight` [Kc, Dc])
/// and layers.
#[derive(Clone, Debug)]
pub struct VqVae {
    /// What the model is.
    pub config: VqConfig,
    /// Its trainable tensors, named as in PyTorch state dicts.
    pub params: ParamStore,
    /// The codebook's parameter.
    pub codebook: ParamId,
    /// With an EMA codebook: the moving averages N_k `[Kc]` (`codebook.ema_count`) and m_k
    /// [Kc, Dc] (`codebook.ema_sum`), kept with the parameters so that checkpoints hold them
    /// (like buffers in a PyTorch state dict); they never get a gradient.
    pub ema: Option<(ParamId, ParamId)>,
    body: Body,
}

/// The nodes and values of one forward pass.
#[derive(Clone, Debug)]
pub struct VqForward {
    /// Encoder outputs as rows [N·L, Dc].
    pub z_e: Var,
    /// The nearest code of each row [N·L].
    pub index: Vec<usize>,
    /// The decoder's input, z_e + sg(e_k − z_e) [N·L, Dc] (the value of e_k).
    pub z_q: Var,
    /// Decoder output [N, D] (logits for Bernoulli).
    pub out: Var,
    /// −log p(x|z_q), summed over pixels, averaged over examples [].
    pub recon: Var,
    /// ‖sg(z_e) − e_k‖² summed per example, averaged over examples [].
    pub codebook: Var,
    /// ‖z_e − sg(e_k)‖² likewise [].
    pub commit: Var,
    /// recon + codebook + β·commit [].
    pub loss: Var,
}

/// Perplexity of code use, exp(−Σ_k p_k ln p_k) over the codes' frequencies p_k: Kc when all
/// codes are used equally, 1 when only one is.
pub fn perplexity(counts: &[u64]) -> f64 {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let entropy: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / total).map(|p| -p * p.ln()).sum();
    entropy.exp()
}

impl VqVae {
    /// A new model; layers get PyTorch's default initialization and the codebook
    /// uniform(−1/Kc, 1/Kc), the paper's authors' choice.
    pub fn new(config: VqConfig, rng: &mut impl Rng) -> Result<Self, Error> {
        config.validate()?;
        let mut params = ParamStore::new();
        let (d, dc, kc) = (config.input_len(), config.code_dim, config.codebook_size);
        let body = match &config.arch {
            VqArch::Mlp { hidden, codes } => {
                let act = config.activation;
                let encoder = Mlp::new(&mut params, "enc", d, hidden, act, rng);
                let enc_out = Linear::new(&mut params, "enc_out", encoder.width(), codes * dc, rng);
                let back: Vec<usize> = hidden.iter().rev().copied().collect();
                let decoder = Mlp::new(&mut params, "dec", codes * dc, &back, act, rng);
                let dec_out = Linear::new(&mut params, "dec_out", decoder.width(), d, rng);
                Body::Mlp { encoder, enc_out, decoder, dec_out }
            }
            VqArch::Conv { channels } => {
                let halve = ConvGeom::new(2, 1);
                let one = ConvGeom::new(1, 0);
                let mut encoder = Vec::new();
                let mut c = config.input[0];
                for (i, &ch) in channels.iter().enumerate() {
                    encoder.push(Conv2d::new(&mut params, &format!("enc_conv{}", i + 1), c, ch, 4, halve, rng));
                    c = ch;
                }
                let enc_out = Conv2d::new(&mut params, "enc_out", c, dc, 1, one, rng);
                let dec_in = Conv2d::new(&mut params, "dec_in", dc, c, 1, one, rng);
                let mut decoder = Vec::new();
                let widths: Vec<usize> = std::iter::once(config.input[0]).chain(channels.iter().copied()).collect();
                for (i, w) in widths.windows(2).rev().enumerate() {
                    let name = format!("dec_deconv{}", i + 1);
                    decoder.push(ConvTranspose2d::new(&mut params, &name, w[1], w[0], 4, halve, rng));
                }
                let act = config.activation;
                Body::Conv {
                    encoder: ConvStack::new(encoder, act),
                    enc_out,
                    dec_in,
                    decoder: DeconvStack::new(decoder, act),
                }
            }
        };
        let bound = 1.0 / kc as f32;
        let table = Tensor::from_shape_simple_fn(vec![kc, dc], || rng.random_range(-bound..bound));
        // EMA state as if each code had been chosen once at its own value: N = 1, m = e, so a
        // code no batch chooses keeps e = m/N where it is.
        let ema = config.ema_decay.map(|_| {
            let count = params.add("codebook.ema_count", Tensor::ones(vec![kc]));
            let sum = params.add("codebook.ema_sum", table.clone());
            (count, sum)
        });
        let codebook = params.add("codebook.weight", table);
        Ok(Self { config, params, codebook, ema, body })
    }

    fn activate(&self, tape: &mut Tape, a: Var) -> Var {
        self.config.activation.apply(tape, a)
    }

    /// The encoder: x [N, D] → z_e as rows [N·L, Dc].
    pub fn encode(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        let n = tape.value(x).shape()[0];
        let dc = self.config.code_dim;
        match &self.body {
            Body::Mlp { encoder, enc_out, .. } => {
                let h = encoder.forward(tape, p, x);
                let z = enc_out.forward(tape, p, h);
                tape.reshape(z, &[n * self.config.codes(), dc])
            }
            Body::Conv { encoder, enc_out, .. } => {
                let [c, hh, w] = self.config.input;
                let img = tape.reshape(x, &[n, c, hh, w]);
                let h = encoder.forward(tape, p, img);
                let z = enc_out.forward(tape, p, h); // [N, Dc, h, w]
                let z = tape.permute(z, &[0, 2, 3, 1]); // [N, h, w, Dc]: a code vector per pixel
                tape.reshape(z, &[n * self.config.codes(), dc])
            }
        }
    }

    /// The decoder: quantized rows z_q [N·L, Dc] → out [N, D] (logits for Bernoulli).
    pub fn decode(&self, tape: &mut Tape, p: &ParamVars, z_q: Var) -> Var {
        let l = self.config.codes();
        let n = tape.value(z_q).shape()[0] / l;
        let dc = self.config.code_dim;
        match &self.body {
            Body::Mlp { decoder, dec_out, .. } => {
                let z = tape.reshape(z_q, &[n, l * dc]);
                let h = decoder.forward(tape, p, z);
                dec_out.forward(tape, p, h)
            }
            Body::Conv { dec_in, decoder, .. } => {
                let (gh, gw) = self.config.grid();
                let z = tape.reshape(z_q, &[n, gh, gw, dc]);
                let z = tape.permute(z, &[0, 3, 1, 2]); // [N, Dc, h, w]
                let a = dec_in.forward(tape, p, z);
                let h = self.activate(tape, a);
                let out = decoder.forward(tape, p, h); // no activation on the logits
                tape.flatten(out)
            }
        }
    }

    /// The whole forward pass and the loss recon + codebook + β·commit for x [N, D], each term
    /// summed over an example and averaged over the batch.
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var, beta: f32) -> VqForward {
        let n = tape.value(x).shape()[0].max(1) as f32;
        let z_e = self.encode(tape, p, x);
        // An EMA codebook is read as a constant: moving averages update it, not the gradient.
        let table = match self.ema {
            None => p.var(self.codebook),
            Some(_) => tape.constant(self.params.get(self.codebook).clone()),
        };
        let Quantized { index, e, z_q } = quantize(tape, z_e, table);
        let out = self.decode(tape, p, z_q);
        let recon_n = self.config.likelihood.neg_log_prob(tape, out, x); // −log p(x|z_q) [N]
        let recon = tape.mean(recon_n);
        let sq_sum_per_example = |tape: &mut Tape, a: Var, b: Var| {
            let d = tape.sub(a, b);
            let d2 = tape.square(d);
            let s = tape.sum(d2);
            tape.scale(s, 1.0 / n)
        };
        let z_e_const = tape.stop_gradient(z_e);
        let codebook = sq_sum_per_example(tape, z_e_const, e); // moves the codes
        let e_const = tape.stop_gradient(e);
        let commit = sq_sum_per_example(tape, z_e, e_const); // moves the encoder
        let weighted = tape.scale(commit, beta);
        // With an EMA codebook the codebook term has no trainable input; it is left out of the
        // loss (and still reported).
        let recon_and_codebook = if self.ema.is_some() { recon } else { tape.add(recon, codebook) };
        let loss = tape.add(recon_and_codebook, weighted);
        VqForward { z_e, index, z_q, out, recon, codebook, commit, loss }
    }
}

impl VqVae {
    /// The decoder's means for code indices [n·L] (image after image): pixel probabilities
    /// for Bernoulli, the Gaussian mean otherwise. [n, D].
    ///
    /// # Panics
    /// If the count is not a multiple of L or an index is not below Kc.
    pub fn decode_codes(&self, codes: &[usize]) -> Tensor {
        assert_eq!(
            codes.len() % self.config.codes(),
            0,
            "decode_codes: {} codes for images of {}",
            codes.len(),
            self.config.codes()
        );
        let mut tape = Tape::new();
        let p = self.params.on_tape(&mut tape);
        let e = tape.gather_rows(p.var(self.codebook), codes);
        let out = self.decode(&mut tape, &p, e);
        let mean = self.config.likelihood.mean(&mut tape, out);
        tape.value(mean).clone()
    }

    /// The nearest code of each of the L places of each image of x [N, D]: [N·L].
    pub fn encode_codes(&self, x: &Tensor) -> Vec<usize> {
        let mut codes = Vec::with_capacity(x.shape()[0] * self.config.codes());
        for start in (0..x.shape()[0]).step_by(EVAL_ROWS) {
            let end = (start + EVAL_ROWS).min(x.shape()[0]);
            let mut tape = Tape::new();
            let p = self.params.on_tape(&mut tape);
            let xv = tape.constant(x.slice_axis(Axis(0), Slice::from(start..end)).to_owned());
            let z_e = self.encode(&mut tape, &p, xv);
            codes.extend(nearest_codes(tape.value(z_e), self.params.get(self.codebook)));
        }
        codes
    }

    /// Restarts dead codes: each code that `counts` (uses per code, e.g. over a test pass)
    /// shows unused is moved onto the encoder output z_e of a random place of a random row of
    /// x, where data actually are. Without it, codes that start far from every z_e are never
    /// chosen, never get a gradient (only chosen codes are in the codebook term) and stay dead:
    /// measured on MNIST, 15 of 128 codes in use after 3 epochs. Returns how many were moved.
    pub fn restart_dead_codes(&mut self, counts: &[u64], x: &Tensor, rng: &mut impl Rng) -> usize {
        let dead: Vec<usize> = (0..self.config.codebook_size).filter(|&k| counts.get(k) == Some(&0)).collect();
        if dead.is_empty() || x.shape()[0] == 0 {
            return 0;
        }
        let mut tape = Tape::new();
        let p = self.params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let z_e = self.encode(&mut tape, &p, xv);
        let z_e = tape.value(z_e).clone();
        drop(tape);
        for &k in &dead {
            let m = rng.random_range(0..z_e.shape()[0]);
            let row = z_e.index_axis(Axis(0), m);
            self.params.values_mut()[self.codebook.0].index_axis_mut(Axis(0), k).assign(&row);
            // An EMA code restarts as if chosen once there: N_k = 1, m_k = e_k.
            if let Some((count, sum)) = self.ema {
                self.params.values_mut()[count.0][[k]] = 1.0;
                self.params.values_mut()[sum.0].index_axis_mut(Axis(0), k).assign(&row);
            }
        }
        dead.len()
    }

    /// Reconstructions of x [N, D]: its codes, decoded. [N, D].
    pub fn reconstruct(&self, x: &Tensor) -> Tensor {
        self.decode_codes(&self.encode_codes(x))
    }
}

/// The loss terms of a VQ-VAE in nats (recon) and squared distances (the others) per example.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct VqTerms {
    /// recon + codebook + β·commit
    pub loss: f64,
    /// −log p(x|z_q)
    pub recon: f64,
    /// ‖sg(z_e) − e_k‖²
    pub codebook: f64,
    /// ‖z_e − sg(e_k)‖²
    pub commit: f64,
}

impl VqTerms {
    fn from_values(v: &[f64]) -> Self {
        Self { loss: v[0], recon: v[1], codebook: v[2], commit: v[3] }
    }
}

/// One training step on x [N, D]: the batch through [`crate::step::batch_gradients`] in
/// chunks of [`crate::step::CHUNK_ROWS`] examples, then the optimizer's update.
pub fn train_step(
    model: &mut VqVae,
    opt: &mut dyn Optimizer,
    x: &Tensor,
    beta: f32,
    clip: Option<f32>,
) -> Result<VqTerms, NonFinite> {
    let model_ref: &VqVae = model;
    // An EMA codebook needs each chunk's encoder outputs and codes after the step.
    let chosen = std::sync::Mutex::new(Vec::new());
    let chunk_loss = |tape: &mut Tape, p: &ParamVars, start: usize, end: usize| {
        let xv = tape.constant(x.slice_axis(Axis(0), Slice::from(start..end)).to_owned());
        let f = model_ref.forward(tape, p, xv, beta);
        if model_ref.ema.is_some() {
            let z_e = tape.value(f.z_e).clone();
            chosen.lock().expect("no chunk panicked").push((start, z_e, f.index.clone()));
        }
        let values = [f.loss, f.recon, f.codebook, f.commit].map(|v| tape.scalar(v) as f64);
        (f.loss, values.to_vec())
    };
    let (sums, grads) = batch_gradients(&model.params, x.shape()[0], CHUNK_ROWS, chunk_loss);
    update(&mut model.params, opt, grads, sums[0], clip)?;
    let mut chosen = chosen.into_inner().expect("no chunk panicked");
    chosen.sort_by_key(|c| c.0); // chunk order, whatever order the threads finished in
    model.ema_update(&chosen);
    Ok(VqTerms::from_values(&sums))
}

impl VqVae {
    /// The EMA codebook update (van den Oord et al., appendix A.1) for a batch's encoder outputs
    /// and codes, given per chunk: with n_k the rows that chose code k and s_k the sum of their
    /// z_e,
    ///
    ///   N_k ← γ·N_k + (1 − γ)·n_k,   m_k ← γ·m_k + (1 − γ)·s_k,   e_k = m_k / N̂_k,
    ///
    /// N̂_k = (N_k + ε)/(Σ N + Kc·ε)·Σ N with ε = 1e-5 (Laplace smoothing, so no code divides by
    /// zero). Each code moves toward the mean of the outputs that chose it. A no-op without EMA.
    fn ema_update(&mut self, chosen: &[(usize, Tensor, Vec<usize>)]) {
        let (Some(gamma), Some((count_id, sum_id))) = (self.config.ema_decay, self.ema) else { return };
        let (kc, dc) = (self.config.codebook_size, self.config.code_dim);
        let (mut n, mut s) = (vec![0f64; kc], vec![0f64; kc * dc]);
        for (_, z_e, index) in chosen {
            for (row, &k) in z_e.outer_iter().zip(index) {
                n[k] += 1.0;
                s[k * dc..(k + 1) * dc].iter_mut().zip(row.iter()).for_each(|(a, &v)| *a += v as f64);
            }
        }
        let g = gamma as f64;
        let values = self.params.values_mut();
        let counts = values[count_id.0].as_slice_mut().expect("contiguous");
        counts.iter_mut().zip(&n).for_each(|(c, &nk)| *c = (g * *c as f64 + (1.0 - g) * nk) as f32);
        let counts: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        let sums = values[sum_id.0].as_slice_mut().expect("contiguous");
        sums.iter_mut().zip(&s).for_each(|(m, &sk)| *m = (g * *m as f64 + (1.0 - g) * sk) as f32);
        let sums: Vec<f32> = sums.to_vec();
        const EPS: f64 = 1e-5;
        let total: f64 = counts.iter().sum();
        let table = values[self.codebook.0].as_slice_mut().expect("contiguous");
        for k in 0..kc {
            let smoothed = (counts[k] + EPS) / (total + kc as f64 * EPS) * total;
            for d in 0..dc {
                table[k * dc + d] = (sums[k * dc + d] as f64 / smoothed) as f32;
            }
        }
    }
}

/// Sums of a VQ-VAE's terms over examples, and how often each code was chosen.
#[derive(Clone, Debug, Default)]
pub struct VqTotals {
    /// Σ over examples of recon, codebook and commit.
    pub sums: [f64; 3],
    /// Examples seen.
    pub count: usize,
    /// How many times each code was the nearest, `[Kc]`.
    pub code_counts: Vec<u64>,
}

impl VqTotals {
    /// Per-example averages, with the loss recon + codebook + β·commit.
    pub fn mean(&self, beta: f32) -> VqTerms {
        let n = self.count.max(1) as f64;
        let [recon, codebook, commit] = self.sums.map(|s| s / n);
        VqTerms { loss: recon + codebook + beta as f64 * commit, recon, codebook, commit }
    }

    /// The sums of both, `self`'s first.
    pub fn plus(&self, other: &VqTotals) -> VqTotals {
        let mut code_counts = self.code_counts.clone();
        code_counts.resize(other.code_counts.len().max(code_counts.len()), 0);
        code_counts.iter_mut().zip(&other.code_counts).for_each(|(a, b)| *a += b);
        let sums = [0, 1, 2].map(|i| self.sums[i] + other.sums[i]);
        VqTotals { sums, count: self.count + other.count, code_counts }
    }
}

/// The forward pass only, over x [N, D] in chunks of [`crate::step::EVAL_ROWS`] rows: the
/// terms' sums and the codes' use.
pub fn evaluate_batch(model: &VqVae, x: &Tensor) -> VqTotals {
    let n = x.shape()[0];
    let mut totals = VqTotals { code_counts: vec![0; model.config.codebook_size], ..Default::default() };
    for start in (0..n).step_by(EVAL_ROWS) {
        let end = (start + EVAL_ROWS).min(n);
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x.slice_axis(Axis(0), Slice::from(start..end)).to_owned());
        let f = model.forward(&mut tape, &p, xv, 1.0);
        let rows = (end - start) as f64;
        for (sum, v) in totals.sums.iter_mut().zip([f.recon, f.codebook, f.commit]) {
            *sum += tape.scalar(v) as f64 * rows;
        }
        f.index.iter().for_each(|&k| totals.code_counts[k] += 1);
        totals.count += end - start;
    }
    totals
}

impl Family for VqVae {
    fn name(&self) -> &'static str {
        "vqvae"
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
    fn buffer_scalars(&self) -> usize {
        self.ema.map_or(0, |(count, sum)| self.params.get(count).len() + self.params.get(sum).len())
    }
    fn input(&self) -> [usize; 3] {
        self.config.input
    }
    fn terms(&self) -> &'static [&'static str] {
        &["recon", "codebook", "commit"]
    }
    /// recon + codebook + β·commit; an EMA codebook's term is reported but not trained.
    fn loss(&self, m: &[f64], s: &StepSettings) -> f64 {
        let t = |name| term(self.terms(), m, name);
        let codebook = if self.ema.is_some() { 0.0 } else { t("codebook") };
        t("recon") + codebook + s.commitment as f64 * t("commit")
    }
    fn train_step(
        &mut self,
        opt: &mut dyn Optimizer,
        x: &Tensor,
        s: &StepSettings,
        _rng: &mut StdRng,
    ) -> Result<Vec<f64>, NonFinite> {
        let t = train_step(self, opt, x, s.commitment, s.clip)?;
        Ok(vec![t.recon, t.codebook, t.commit])
    }
    fn evaluate(&self, x: Tensor, _s: &StepSettings, _rng: &mut StdRng) -> (Vec<f64>, Vec<u64>) {
        let t = evaluate_batch(self, &x);
        (t.sums.to_vec(), t.code_counts)
    }
    fn statistics(&self, counts: &[u64]) -> Vec<(&'static str, f64)> {
        vec![("perplexity", perplexity(counts))]
    }
    fn after_epoch(&mut self, counts: &[u64], x: &Tensor, rng: &mut StdRng) -> Option<String> {
        let moved = self.restart_dead_codes(counts, x, rng);
        (moved > 0).then(|| format!("restarted {moved} unused codes at encoder outputs"))
    }
    /// Without a learned prior: codes drawn uniformly and independently (what the second stage,
    /// `vae-cli prior`, improves on).
    fn sample(&self, n: usize, _labels: &[usize], rng: &mut StdRng) -> Tensor {
        let codes: Vec<usize> =
            (0..n * self.config.codes()).map(|_| rand::Rng::random_range(rng, 0..self.config.codebook_size)).collect();
        self.decode_codes(&codes)
    }
    fn reconstruct(&self, x: Tensor) -> Tensor {
        self.reconstruct(&x)
    }
    fn describe(&self) -> String {
        self.config.describe()
    }
    fn loss_name(&self, s: &StepSettings) -> String {
        format!("per image (recon + codebook + {}·commit)", s.commitment)
    }
    fn describe_knobs(&self, s: &StepSettings) -> String {
        format!("commitment β={}", s.commitment)
    }
    fn sample_source(&self) -> &'static str {
        "uniformly drawn codes (no learned prior: see --prior)"
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::model::standard_normal;

    /// The fast form ‖e_k‖² − 2·z·e_k picks what the definition, argmin_k ‖z − e_k‖², picks.
    #[test]
    fn nearest_codes_are_the_argmin_of_the_distance() {
        let mut rng = StdRng::seed_from_u64(1);
        let (z, e) = (standard_normal(&[37, 5], &mut rng), standard_normal(&[11, 5], &mut rng));
        let fast = nearest_codes(&z, &e);
        for (m, &k) in fast.iter().enumerate() {
            let dist = |j: usize| (0..5).map(|c| ((z[[m, c]] - e[[j, c]]) as f64).powi(2)).sum::<f64>();
            let best = (0..11).min_by(|&a, &b| dist(a).total_cmp(&dist(b))).unwrap();
            assert!(dist(k) <= dist(best) + 1e-5, "row {m}: picked {k}, nearest {best}");
        }
    }

    /// A 6-5-(2 codes of width `code_dim`) MLP with a codebook of 4.
    fn small_mlp(code_dim: usize, ema_decay: Option<f32>) -> VqConfig {
        VqConfig {
            arch: VqArch::Mlp { hidden: vec![5], codes: 2 },
            input: [1, 1, 6],
            code_dim,
            codebook_size: 4,
            activation: Activation::Relu,
            likelihood: Likelihood::Bernoulli,
            ema_decay,
        }
    }

    #[test]
    fn only_the_ema_averages_count_as_buffers() {
        use crate::family::Family;
        let plain = VqVae::new(small_mlp(2, None), &mut StdRng::seed_from_u64(4)).unwrap();
        let ema = VqVae::new(small_mlp(2, Some(0.9)), &mut StdRng::seed_from_u64(4)).unwrap();
        assert_eq!(plain.buffer_scalars(), 0);
        // N_k [4] and m_k [4, 2]; the codebook [4, 2] they set is a parameter in both.
        assert_eq!(ema.buffer_scalars(), 4 + 4 * 2);
        assert_eq!(ema.params.num_scalars() - ema.buffer_scalars(), plain.params.num_scalars());
    }

    /// One step of an EMA codebook against the definition, computed here in f64 from the
    /// step's own encoder outputs and codes.
    #[test]
    fn the_ema_codebook_moves_as_its_definition_says() {
        let config = small_mlp(2, Some(0.9));
        let mut model = VqVae::new(config, &mut StdRng::seed_from_u64(4)).unwrap();
        // Codes spread over the encoder's range, so that several are chosen.
        let x = Tensor::from_shape_fn(vec![8, 6], |i| ((i[0] * 5 + i[1] * 3) % 7) as f32 / 6.0);
        let (z_e, e0) = {
            let mut tape = Tape::new();
            let p = model.params.on_tape(&mut tape);
            let xv = tape.constant(x.clone());
            let z = model.encode(&mut tape, &p, xv);
            let z = tape.value(z).clone();
            let table = Tensor::from_shape_fn(vec![4, 2], |i| z[[(i[0] * 3) % 16, i[1]]]);
            (z, table)
        };
        let (count, sum) = model.ema.unwrap();
        model.params.values_mut()[model.codebook.0] = e0.clone();
        model.params.values_mut()[sum.0] = e0.clone();
        let chosen = nearest_codes(&z_e, &e0);
        let mut adam = vae_layers::optim::Adam::new(1e-2);
        train_step(&mut model, &mut adam, &x, DEFAULT_BETA, None).unwrap();
        let n: Vec<f64> = (0..4).map(|k| chosen.iter().filter(|&&c| c == k).count() as f64).collect();
        let counts: Vec<f64> = n.iter().map(|&nk| 0.9 + 0.1 * nk).collect();
        let total: f64 = counts.iter().sum();
        for k in 0..4 {
            assert!((model.params.get(count)[[k]] as f64 - counts[k]).abs() < 1e-6);
            let smoothed = (counts[k] + 1e-5) / (total + 4e-5) * total;
            for d in 0..2 {
                let s: f64 = (0..16).filter(|&r| chosen[r] == k).map(|r| z_e[[r, d]] as f64).sum();
                let m = 0.9 * e0[[k, d]] as f64 + 0.1 * s;
                let e = model.params.get(model.codebook)[[k, d]] as f64;
                assert!((e - m / smoothed).abs() < 1e-5, "code {k}: {e} vs {}", m / smoothed);
            }
        }
        assert!(n.iter().filter(|&&nk| nk > 0.0).count() >= 2, "the test should move several codes: {n:?}");
    }

    /// The codebook's gradient comes from the codebook term alone: the reconstruction and the
    /// commitment term give it none (the straight-through copy and sg(e)), and the codebook
    /// term gives the encoder none (sg(z_e)).
    #[test]
    fn the_codebook_gets_its_gradient_only_from_its_own_term() {
        let config = small_mlp(3, None);
        let model = VqVae::new(config, &mut StdRng::seed_from_u64(5)).unwrap();
        let x = Tensor::from_shape_fn(vec![3, 6], |i| ((i[0] + 2 * i[1]) % 5) as f32 / 4.0);
        let grads_of = |pick: &dyn Fn(&mut Tape, &VqForward) -> Var| {
            let mut tape = Tape::new();
            let p = model.params.on_tape(&mut tape);
            let xv = tape.constant(x.clone());
            let f = model.forward(&mut tape, &p, xv, DEFAULT_BETA);
            let target = pick(&mut tape, &f);
            p.gradients(&tape, tape.backward(target))
        };
        let all = grads_of(&|_, f| f.loss);
        let codebook_term = grads_of(&|_, f| f.codebook);
        let rest = grads_of(&|t, f| {
            let w = t.scale(f.commit, DEFAULT_BETA);
            t.add(f.recon, w)
        });
        let k = model.codebook.0;
        assert!(all[k].iter().any(|&g| g != 0.0), "the codebook gets a gradient");
        assert_eq!(all[k], codebook_term[k]);
        assert!(rest[k].iter().all(|&g| g == 0.0));
        for (i, g) in codebook_term.iter().enumerate() {
            if i != k {
                assert!(g.iter().all(|&v| v == 0.0), "the codebook term reaches parameter {i}");
            }
        }
    }

    #[test]
    fn perplexity_counts_the_codes_in_use() {
        assert!((perplexity(&[5, 5, 5, 5]) - 4.0).abs() < 1e-12);
        assert!((perplexity(&[9, 0, 0]) - 1.0).abs() < 1e-12);
        assert!(perplexity(&[8, 1, 1]) < 2.0);
    }

    #[test]
    fn a_conv_model_reads_a_grid_of_codes_and_gives_back_the_image_size() {
        let config = VqConfig { codebook_size: 8, code_dim: 3, ..VqConfig::conv_mnist() };
        assert_eq!((config.grid(), config.codes()), ((7, 7), 49));
        let model = VqVae::new(config, &mut StdRng::seed_from_u64(2)).unwrap();
        let x = Tensor::from_shape_fn(vec![2, 784], |i| ((i[0] + i[1]) % 3) as f32 / 2.0);
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x);
        let f = model.forward(&mut tape, &p, xv, DEFAULT_BETA);
        assert_eq!(tape.value(f.z_e).shape(), &[98, 3]);
        assert_eq!(tape.value(f.out).shape(), &[2, 784]);
        assert!(tape.scalar(f.loss).is_finite());
        let meta = model.config.to_metadata();
        assert_eq!(VqConfig::from_metadata(&meta).unwrap(), model.config);
    }
}
