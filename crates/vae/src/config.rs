//! What a VAE is made of: architecture, sizes, activation, likelihood. Stored in every
//! checkpoint. (The KL weight β is not part of the model: it is a setting of the training
//! objective, passed to [`crate::Vae::elbo`] and [`crate::train::train_step`], its one place.)

use std::collections::HashMap;

use crate::error::Error;

/// The largest model accepted (a guard against absurd sizes in a damaged checkpoint).
pub const MAX_PARAMETERS: usize = 1 << 30;

/// The decoder's distribution p(x|z).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Likelihood {
    /// Independent Bernoulli pixels with the decoder's output as logits.
    Bernoulli,
    /// Independent Gaussians with the decoder's output as mean and a fixed σ.
    Gaussian {
        /// The standard deviation σ > 0.
        sigma: f32,
    },
    /// 8-bit pixels under the discretized logistic (Kingma et al. 2016, Salimans et al. 2017):
    /// the decoder gives each value a mean and a log-scale (two outputs per value: the means
    /// first, then the log-scales), and each pixel k/255 has the mass of its bin. With
    /// `mixtures` M > 1, each value's distribution is a mixture of M of them, with weights from
    /// M more outputs (3M per value: the weights' logits, the means, the log-scales).
    DLogistic {
        /// M ≥ 1 components per value.
        mixtures: usize,
    },
}

impl Likelihood {
    /// Writes the `likelihood` and `sigma` entries of checkpoint metadata.
    pub fn insert_metadata(self, m: &mut HashMap<String, String>) {
        let (lik, sigma) = match self {
            Likelihood::Bernoulli => ("bernoulli", 1.0),
            Likelihood::Gaussian { sigma } => ("gaussian", sigma),
            Likelihood::DLogistic { .. } => ("dlogistic", 1.0),
        };
        m.insert("likelihood".into(), lik.into());
        m.insert("sigma".into(), sigma.to_string());
        if let Likelihood::DLogistic { mixtures } = self {
            m.insert("mixtures".into(), mixtures.to_string());
        }
    }

    /// Reads what [`Likelihood::insert_metadata`] wrote.
    pub fn from_metadata(m: &HashMap<String, String>) -> Result<Self, Error> {
        match m.get("likelihood").map(String::as_str) {
            Some("bernoulli") => Ok(Likelihood::Bernoulli),
            // Files from before mixtures existed hold one component.
            Some("dlogistic") => match m.get("mixtures").map(|s| s.parse::<usize>()) {
                None => Ok(Likelihood::DLogistic { mixtures: 1 }),
                Some(Ok(mixtures)) if mixtures >= 1 => Ok(Likelihood::DLogistic { mixtures }),
                _ => Err(Error::config("configuration entry \"mixtures\" is not a whole number ≥ 1".into())),
            },
            Some("gaussian") => match m.get("sigma").map(|s| s.parse::<f32>()) {
                Some(Ok(sigma)) => Ok(Likelihood::Gaussian { sigma }),
                _ => Err(Error::config("configuration entry \"sigma\" is missing or not a number".into())),
            },
            Some(other) => Err(Error::config(format!("unknown likelihood {other:?}"))),
            None => Err(Error::config("the model configuration has no \"likelihood\" entry".into())),
        }
    }
}

/// The prior p(z) of the latent layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PriorKind {
    /// N(0, I): the ELBO's KL in closed form.
    #[default]
    Normal,
    /// The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) Σ_k q(z | u_k), the mixture of
    /// the encoder's own posteriors at K learned pseudo-inputs u_k. Its KL has no closed form:
    /// the ELBO takes it from the sample, log q(z|x) − log p(z).
    Vamp {
        /// K ≥ 1 pseudo-inputs.
        components: usize,
    },
}

impl PriorKind {
    /// Writes the `prior` entry of checkpoint metadata (and `pseudo_inputs` for the VampPrior).
    pub fn insert_metadata(self, m: &mut HashMap<String, String>) {
        match self {
            PriorKind::Normal => m.insert("prior".into(), "normal".into()),
            PriorKind::Vamp { components } => {
                m.insert("pseudo_inputs".into(), components.to_string());
                m.insert("prior".into(), "vamp".into())
            }
        };
    }

    /// The VampPrior's pseudo-inputs K, 0 for N(0, I): the rows of the components a step
    /// computes once ([`crate::step::Derived`]).
    pub fn components(self) -> usize {
        match self {
            PriorKind::Normal => 0,
            PriorKind::Vamp { components } => components,
        }
    }

    /// None for N(0, I); otherwise its name, for the pictures that lay a grid over N(0, I)'s
    /// quantiles and refuse any other prior ([`crate::family::LatentSpace::prior_if_not_standard`]).
    pub fn if_not_standard(self) -> Option<String> {
        match self {
            PriorKind::Normal => None,
            PriorKind::Vamp { components } => Some(format!("a VampPrior of {components} pseudo-inputs")),
        }
    }

    /// Reads what [`PriorKind::insert_metadata`] wrote; files from before priors were parts
    /// have the standard normal.
    pub fn from_metadata(m: &HashMap<String, String>) -> Result<Self, Error> {
        match m.get("prior").map(String::as_str) {
            None | Some("normal") => Ok(PriorKind::Normal),
            Some("vamp") => match m.get("pseudo_inputs").map(|k| k.parse::<usize>()) {
                Some(Ok(components)) if components >= 1 => Ok(PriorKind::Vamp { components }),
                _ => Err(Error::config(
                    "configuration entry \"pseudo_inputs\" is missing or not a whole number ≥ 1".into(),
                )),
            },
            Some(other) => Err(Error::config(format!("unknown prior {other:?} (expected normal or vamp)"))),
        }
    }
}

/// An inverse autoregressive flow on q(z|x)'s sample: `depth` steps, each a MADE of `width`
/// hidden units ([`crate::parts::iaf`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSpec {
    /// Steps T ≥ 1.
    pub depth: usize,
    /// Hidden units of each step's MADE, W ≥ 1.
    pub width: usize,
}

impl FlowSpec {
    /// Writes the `flow`, `flow_depth` and `flow_width` entries of checkpoint metadata.
    pub fn insert_metadata(self, m: &mut HashMap<String, String>) {
        m.insert("flow".into(), "iaf".into());
        m.insert("flow_depth".into(), self.depth.to_string());
        m.insert("flow_width".into(), self.width.to_string());
    }

    /// Reads what [`FlowSpec::insert_metadata`] wrote; none in files of models without a flow.
    pub fn from_metadata(m: &HashMap<String, String>) -> Result<Option<Self>, Error> {
        let whole = |k: &str| match m.get(k).map(|v| v.parse::<usize>()) {
            Some(Ok(v)) if v >= 1 => Ok(v),
            _ => Err(Error::config(format!("configuration entry {k:?} is missing or not a whole number ≥ 1"))),
        };
        match m.get("flow").map(String::as_str) {
            None => Ok(None),
            Some("iaf") => Ok(Some(FlowSpec { depth: whole("flow_depth")?, width: whole("flow_width")? })),
            Some(other) => Err(Error::config(format!("unknown flow {other:?} (expected iaf)"))),
        }
    }
}

/// The nonlinearity after every hidden layer of the encoder and the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// max(x, 0), as PyTorch's example.
    #[default]
    Relu,
    /// tanh(x), as Burda et al.'s density-estimation models.
    Tanh,
    /// x for x > 0, eˣ − 1 otherwise, as Kingma et al.'s ResNet VAE (2016).
    Elu,
}

impl Activation {
    /// Reads the `activation` entry of checkpoint metadata; files written before the activation
    /// was a choice hold none: they are ReLU models.
    pub fn from_metadata(m: &HashMap<String, String>) -> Result<Self, Error> {
        match m.get("activation").map(String::as_str) {
            None | Some("relu") => Ok(Activation::Relu),
            Some("tanh") => Ok(Activation::Tanh),
            Some("elu") => Ok(Activation::Elu),
            Some(other) => Err(Error::config(format!("unknown activation {other:?} (expected relu, tanh or elu)"))),
        }
    }

    /// The nonlinearity applied to a pre-activation a.
    pub fn apply(self, tape: &mut vae_autodiff::Tape, a: vae_autodiff::Var) -> vae_autodiff::Var {
        match self {
            Activation::Relu => tape.relu(a),
            Activation::Tanh => tape.tanh(a),
            Activation::Elu => tape.elu(a),
        }
    }

    /// The name used on the command line and in checkpoint metadata.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Elu => "elu",
        }
    }
}

/// One convolution of the encoder, mirrored by a transposed convolution in the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Output channels of the encoder's convolution.
    pub channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub padding: usize,
}

/// The network shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Arch {
    /// Dense layers: D → `hidden[0]` → … → (mu, logvar); J → … → `hidden[0]` → D.
    Mlp {
        /// Hidden layer widths, from the input side.
        hidden: Vec<usize>,
    },
    /// Convolutions, then dense heads; the decoder mirrors them with transposed convolutions.
    Conv {
        /// The encoder's convolutions, from the input side.
        layers: Vec<ConvSpec>,
    },
    /// Residual blocks of weight-normalized convolutions with ELU (Kingma et al.'s ResNet VAE,
    /// [`crate::parts::resnet`]): per level, a stride-2 block into C_l maps and a stride-1
    /// block; dense heads; the decoder mirrors them with transposed convolutions.
    Resnet {
        /// The feature maps C_l of each level, from the input side.
        channels: Vec<usize>,
    },
}

/// The map sizes of a ResNet body on an H-row input, one per level from the input: H, then
/// ⌈H/2⌉ after each stride-2 block.
pub fn level_sizes(h: usize, levels: usize) -> Vec<usize> {
    std::iter::successors(Some(h), |&s| Some(s.div_ceil(2))).take(levels + 1).collect()
}

/// A complete VAE description.
#[derive(Clone, Debug, PartialEq)]
pub struct VaeConfig {
    /// The architecture.
    pub arch: Arch,
    /// Input shape [C, H, W]; an MLP sees C·H·W values.
    pub input: [usize; 3],
    /// Latent dimension J ≥ 1.
    pub latent: usize,
    /// The nonlinearity of the hidden layers.
    pub activation: Activation,
    /// The decoder's likelihood.
    pub likelihood: Likelihood,
    /// Classes C of a conditional VAE (its family is `cvae`): the one-hot label y joins the
    /// encoder's input [x, y] and the decoder's input [z, y]. 0 for the plain VAE.
    pub classes: usize,
    /// The prior p(z).
    pub prior: PriorKind,
    /// An inverse autoregressive flow on the posterior's sample, if any.
    pub flow: Option<FlowSpec>,
}

impl VaeConfig {
    /// PyTorch's example model for MNIST: 784 → 400 → 20 (mu, logvar), 20 → 400 → 784, Bernoulli.
    pub fn mlp_mnist() -> Self {
        Self {
            arch: Arch::Mlp { hidden: vec![400] },
            input: [1, 28, 28],
            latent: 20,
            activation: Activation::Relu,
            likelihood: Likelihood::Bernoulli,
            classes: 0,
            prior: PriorKind::Normal,
            flow: None,
        }
    }

    /// The convolutional MNIST model: Conv(1→32, k4 s2 p1), Conv(32→64, k4 s2 p1), dense heads,
    /// and the mirrored decoder.
    pub fn conv_mnist() -> Self {
        let spec = |channels| ConvSpec { channels, kernel: 4, stride: 2, padding: 1 };
        Self { arch: Arch::Conv { layers: vec![spec(32), spec(64)] }, ..Self::mlp_mnist() }
    }

    /// Burda, Grosse & Salakhutdinov's one-stochastic-layer MNIST model (IWAE paper, 2015):
    /// 784 → 200 → 200 → 50 (mu, logvar), 50 → 200 → 200 → 784, tanh, Bernoulli.
    pub fn burda_mnist() -> Self {
        Self {
            arch: Arch::Mlp { hidden: vec![200, 200] },
            latent: 50,
            activation: Activation::Tanh,
            ..Self::mlp_mnist()
        }
    }

    /// Values per example, D = C·H·W.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// The width of a row the model reads: D, and C more for a conditional model (the one-hot
    /// label after the pixels).
    pub fn row_len(&self) -> usize {
        self.input_len() + self.classes
    }

    /// The family's name, as on the command line and in checkpoints: `vae` or `cvae`.
    pub fn family(&self) -> &'static str {
        if self.classes > 0 {
            "cvae"
        } else {
            "vae"
        }
    }

    /// Checks sizes; for a conv model, also that the mirrored decoder gives back the input size.
    pub fn validate(&self) -> Result<(), Error> {
        if self.input.contains(&0) {
            return Err(Error::config(format!("input shape {:?} has a zero size", self.input)));
        }
        if self.latent == 0 {
            return Err(Error::config("latent dimension must be at least 1".to_string()));
        }
        if self.prior == (PriorKind::Vamp { components: 0 }) {
            return Err(Error::config("a VampPrior needs at least one pseudo-input".to_string()));
        }
        if let Some(f) = self.flow {
            if f.depth == 0 || f.width == 0 {
                return Err(Error::config("a flow needs at least one step of at least one hidden unit".to_string()));
            }
        }
        if let Likelihood::Gaussian { sigma } = self.likelihood {
            if !(sigma > 0.0 && sigma.is_finite()) {
                return Err(Error::config(format!("sigma must be a positive number, found {sigma}")));
            }
        }
        match &self.arch {
            Arch::Mlp { hidden } => {
                if hidden.contains(&0) {
                    return Err(Error::config(format!("hidden sizes {hidden:?} include a zero")));
                }
            }
            Arch::Resnet { channels } => {
                if channels.is_empty() || channels.contains(&0) {
                    return Err(Error::config(format!(
                        "ResNet feature maps {channels:?}: at least one level, none empty"
                    )));
                }
            }
            Arch::Conv { layers } => {
                if layers.iter().any(|l| l.channels == 0 || l.kernel == 0 || l.stride == 0 || l.padding >= l.kernel) {
                    return Err(Error::config(
                        "conv layers need channels, kernel and stride ≥ 1 and padding below the kernel size"
                            .to_string(),
                    ));
                }
                self.conv_shapes()?;
            }
        }
        if self.parameter_count().is_none_or(|n| n > MAX_PARAMETERS) {
            return Err(Error::config(format!("the model would have more than {MAX_PARAMETERS} parameters")));
        }
        Ok(())
    }

    /// The number of scalar parameters, or `None` if it overflows (an absurd configuration) or
    /// a conv stack does not fit its input.
    pub fn parameter_count(&self) -> Option<usize> {
        let add = |a: usize, b: usize| a.checked_add(b);
        let linear = |i: usize, o: usize| i.checked_mul(o)?.checked_add(o); // weight and bias
        let d = self.input.iter().try_fold(1usize, |a, &b| a.checked_mul(b))?;
        let (j, y, outputs) = (self.latent, self.classes, self.likelihood.outputs_per_value());
        // The encoder's body ends in a width w that the two heads read (with y appended); the
        // decoder's first layer reads [z, y].
        let (body, w, decoder) = match &self.arch {
            Arch::Mlp { hidden } => {
                let mut widths = vec![add(d, y)?];
                widths.extend(hidden);
                let mut enc = 0usize;
                let mut dec = linear(*widths.last()?, d.checked_mul(outputs)?)?; // dec_out, last hidden → D (2D)
                for p in widths.windows(2) {
                    enc = add(enc, linear(p[0], p[1])?)?;
                }
                let mut back: Vec<usize> = hidden.iter().rev().copied().collect();
                back.insert(0, add(j, y)?);
                for p in back.windows(2) {
                    dec = add(dec, linear(p[0], p[1])?)?;
                }
                (enc, *widths.last()?, dec)
            }
            Arch::Resnet { channels } => {
                // A weight-normalized convolution: v, and g and b per output channel.
                let wn = |i: usize, o: usize, k: usize| i.checked_mul(o)?.checked_mul(k * k)?.checked_add(2 * o);
                let block = |i: usize, o: usize, s: usize| {
                    let skip = if s != 1 || i != o { wn(i, o, 1)? } else { 0 };
                    add(add(wn(i, o, 3)?, wn(o, o, 3)?)?, skip)
                };
                let sizes = level_sizes(self.input[1], channels.len());
                let mut enc = 0usize;
                let mut dec = wn(channels[0], self.input[0].checked_mul(outputs)?, 3)?;
                let mut c = self.input[0];
                for (l, &c_l) in channels.iter().enumerate() {
                    enc = add(enc, add(block(c, c_l, 2)?, block(c_l, c_l, 1)?)?)?;
                    let below = channels[l.saturating_sub(1)];
                    let k = if sizes[l] % 2 == 1 { (3, 1) } else { (4, 2) };
                    let up = add(add(wn(c_l, below, k.0)?, wn(below, below, 3)?)?, wn(c_l, below, k.1)?)?;
                    dec = add(dec, add(block(c_l, c_l, 1)?, up)?)?;
                    c = c_l;
                }
                let top = self.conv_shapes().ok()?;
                let flat = top.last()?.iter().try_fold(1usize, |a, &b| a.checked_mul(b))?;
                (enc, add(flat, y)?, add(dec, linear(add(j, y)?, flat)?)?)
            }
            Arch::Conv { layers } => {
                let shapes = self.conv_shapes().ok()?;
                let mut enc = 0usize;
                let mut dec = 0usize;
                for (i, (l, s)) in layers.iter().zip(&shapes).enumerate() {
                    let area = l.kernel.checked_mul(l.kernel)?;
                    let weights = s[0].checked_mul(l.channels)?.checked_mul(area)?;
                    enc = add(enc, add(weights, l.channels)?)?; // convolution: bias per output channel
                                                                // Its mirror: back to the input channels (the output layer: `outputs` per channel).
                    let back = if i == 0 { s[0].checked_mul(outputs)? } else { s[0] };
                    dec = add(dec, add(back.checked_mul(l.channels)?.checked_mul(area)?, back)?)?;
                }
                let flat = shapes.last()?.iter().try_fold(1usize, |a, &b| a.checked_mul(b))?;
                (enc, add(flat, y)?, add(dec, linear(add(j, y)?, flat)?)?)
            }
        };
        let pseudo_inputs = match self.prior {
            PriorKind::Normal => 0,
            PriorKind::Vamp { components } => components.checked_mul(d)?,
        };
        add(add(add(body, linear(w, j)?.checked_mul(2)?)?, decoder)?, pseudo_inputs)
        // + mu and logvar heads
    }

    /// For a conv model: the [C, H, W] after each encoder convolution, starting with the input.
    pub fn conv_shapes(&self) -> Result<Vec<[usize; 3]>, Error> {
        if let Arch::Resnet { channels } = &self.arch {
            let [_, h, w] = self.input;
            let (hs, ws) = (level_sizes(h, channels.len()), level_sizes(w, channels.len()));
            return Ok(std::iter::once(self.input)
                .chain(channels.iter().enumerate().map(|(l, &c)| [c, hs[l + 1], ws[l + 1]]))
                .collect());
        }
        let Arch::Conv { layers } = &self.arch else { return Ok(vec![self.input]) };
        let mut shapes = vec![self.input];
        for (i, l) in layers.iter().enumerate() {
            let [_, h, w] = *shapes.last().expect("non-empty");
            let out = |s: usize| {
                let padded = s + 2 * l.padding;
                (padded >= l.kernel && l.stride > 0).then(|| (padded - l.kernel) / l.stride + 1)
            };
            let (Some(ho), Some(wo)) = (out(h), out(w)) else {
                return Err(Error::config(format!(
                    "conv layer {} (kernel {}) does not fit a {h}×{w} input",
                    i + 1,
                    l.kernel
                )));
            };
            // The mirrored transposed convolution must give back h×w exactly.
            let back = |s: usize| ((s - 1) * l.stride + l.kernel).checked_sub(2 * l.padding);
            if back(ho) != Some(h) || back(wo) != Some(w) {
                let show = |b: Option<usize>| b.map_or("nothing".to_string(), |b| b.to_string());
                return Err(Error::config(format!(
                    "conv layer {} maps {h}×{w} to {ho}×{wo}, and its mirror maps that to {}×{}, not back to {h}×{w}",
                    i + 1,
                    show(back(ho)),
                    show(back(wo))
                )));
            }
            shapes.push([l.channels, ho, wo]);
        }
        Ok(shapes)
    }

    /// A one-line description such as `mlp 784-400-20 bernoulli` (`tanh` named when chosen; a
    /// conditional model's begins `cvae, 10 classes,`).
    pub fn describe(&self) -> String {
        let mut prior = match self.prior {
            PriorKind::Normal => String::new(),
            PriorKind::Vamp { components } => format!(", VampPrior of {components} pseudo-inputs"),
        };
        if let Some(f) = self.flow {
            prior += &format!(", IAF of {} steps × {} units", f.depth, f.width);
        }
        match self.classes {
            0 => format!("{}{prior}", self.describe_body()),
            y => format!("cvae, {y} classes, {}{prior}", self.describe_body()),
        }
    }

    fn describe_body(&self) -> String {
        let c = self;
        let mut lik = match c.likelihood {
            Likelihood::Bernoulli => "bernoulli".to_string(),
            Likelihood::Gaussian { sigma } => format!("gaussian σ={sigma}"),
            Likelihood::DLogistic { mixtures: 1 } => "discretized logistic".to_string(),
            Likelihood::DLogistic { mixtures } => format!("discretized logistic, {mixtures} mixtures"),
        };
        if c.activation != Activation::Relu {
            lik = format!("{} {lik}", c.activation.name());
        }
        match &c.arch {
            Arch::Mlp { hidden } => {
                let sizes: Vec<String> = std::iter::once(c.input_len())
                    .chain(hidden.iter().copied())
                    .chain([c.latent])
                    .map(|s| s.to_string())
                    .collect();
                format!("mlp {} {lik}", sizes.join("-"))
            }
            Arch::Resnet { channels } => {
                let ch: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
                format!(
                    "resnet {}→{}→z{} {lik}",
                    c.input.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("×"),
                    ch.join("→"),
                    c.latent
                )
            }
            Arch::Conv { layers } => {
                let ch: Vec<String> = layers.iter().map(|l| l.channels.to_string()).collect();
                format!(
                    "conv {}→{}→z{} {lik}",
                    c.input.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("×"),
                    ch.join("→"),
                    c.latent
                )
            }
        }
    }

    /// The configuration as string metadata (for safetensors checkpoints).
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        let (model, arch) = match &self.arch {
            Arch::Mlp { hidden } => ("mlp", format!("{hidden:?}")),
            Arch::Conv { layers } => {
                let l: Vec<_> = layers.iter().map(|l| [l.channels, l.kernel, l.stride, l.padding]).collect();
                ("conv", format!("{l:?}"))
            }
            Arch::Resnet { channels } => ("resnet", format!("{channels:?}")),
        };
        m.insert("model".into(), model.into());
        let key = match model {
            "mlp" => "hidden",
            "conv" => "conv_layers",
            _ => "resnet_channels",
        };
        m.insert(key.into(), arch);
        m.insert("input".into(), format!("{:?}", self.input));
        m.insert("latent".into(), self.latent.to_string());
        m.insert("activation".into(), self.activation.name().into());
        self.likelihood.insert_metadata(&mut m);
        m.insert("family".into(), self.family().into());
        if self.classes > 0 {
            m.insert("classes".into(), self.classes.to_string());
        }
        if self.prior != PriorKind::Normal {
            self.prior.insert_metadata(&mut m); // files of N(0, I) models stay as they were
        }
        if let Some(flow) = self.flow {
            flow.insert_metadata(&mut m);
        }
        m
    }

    /// Reads a configuration written by [`VaeConfig::to_metadata`]; the error names the key
    /// that is missing or malformed.
    pub fn from_metadata(m: &HashMap<String, String>) -> Result<Self, Error> {
        let get =
            |k: &str| m.get(k).ok_or_else(|| Error::config(format!("the model configuration has no {k:?} entry")));
        let parse_list = |k: &str| -> Result<serde_json::Value, Error> {
            serde_json::from_str(get(k)?).map_err(|e| Error::config(format!("configuration entry {k:?}: {e}")))
        };
        let usizes = |v: &serde_json::Value, k: &str| -> Result<Vec<usize>, Error> {
            v.as_array()
                .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| Error::config(format!("configuration entry {k:?} must be a list of whole numbers")))
        };
        let arch = match get("model")?.as_str() {
            "mlp" => Arch::Mlp { hidden: usizes(&parse_list("hidden")?, "hidden")? },
            "conv" => {
                let v = parse_list("conv_layers")?;
                let rows = v.as_array().ok_or_else(|| Error::config("conv_layers must be a list".into()))?;
                let mut layers = Vec::new();
                for r in rows {
                    match usizes(r, "conv_layers")?.as_slice() {
                        &[channels, kernel, stride, padding] => {
                            layers.push(ConvSpec { channels, kernel, stride, padding })
                        }
                        _ => {
                            return Err(Error::config("each conv layer is [channels, kernel, stride, padding]".into()))
                        }
                    }
                }
                Arch::Conv { layers }
            }
            "resnet" => Arch::Resnet { channels: usizes(&parse_list("resnet_channels")?, "resnet_channels")? },
            other => return Err(Error::config(format!("unknown model kind {other:?} (expected mlp, conv or resnet)"))),
        };
        let input: [usize; 3] = usizes(&parse_list("input")?, "input")?
            .try_into()
            .map_err(|_| Error::config("input must be [C, H, W]".into()))?;
        let latent = get("latent")?.parse().map_err(|_| Error::config("latent must be a whole number".into()))?;
        let likelihood = Likelihood::from_metadata(m)?;
        // Files written before β became a training setting also hold a "beta" entry; a model
        // does not depend on it, so it is not read here.
        let activation = Activation::from_metadata(m)?;
        // Files written before the conditional VAE hold no "family": they are plain VAEs.
        let classes = match m.get("family").map(String::as_str) {
            None | Some("vae") => 0,
            Some("cvae") => match get("classes")?.parse::<usize>() {
                Ok(c) if c >= 1 => c,
                _ => return Err(Error::config("classes must be a whole number ≥ 1".into())),
            },
            Some(other) => return Err(Error::config(format!("unknown model family {other:?} (expected vae or cvae)"))),
        };
        let (prior, flow) = (PriorKind::from_metadata(m)?, FlowSpec::from_metadata(m)?);
        let config = Self { arch, input, latent, activation, likelihood, classes, prior, flow };
        config.validate()?;
        Ok(config)
    }
}
