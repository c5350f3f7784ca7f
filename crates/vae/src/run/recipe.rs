//! What a new run is: the model (family, body, sizes, nonlinearity, likelihood, output bias)
//! and its [`Settings`], with the published protocols as presets. [`Recipe::build`] makes the
//! model for the data's shape from the run's initialization stream, so that any caller (the
//! command line, the playground, a program of the user's) starts from the same parameters.

use crate::data::Split;
use crate::error::Error;
use crate::family::Family;
use crate::hvae::{Hvae, HvaeConfig, LayerSpec};
use crate::run::settings::{BinarizeKind, LrScheduleKind, ObjectiveKind, Settings};
use crate::run::streams::{stream, Purpose};
use crate::vqvae::{VqArch, VqConfig, VqVae};
use crate::{Activation, Arch, FlowSpec, Likelihood, PriorKind, Vae, VaeConfig};

/// Model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum FamilyKind {
    /// The VAE: q(z|x), p(x|z), prior N(0, I).
    Vae,
    /// The conditional VAE: the one-hot label y joins the encoder's input [x, y] and the
    /// decoder's [z, y] (labels from the IDX label files); `sample --label 7` draws sevens.
    Cvae,
    /// The VQ-VAE: a grid of code vectors, each snapped to the nearest of --codebook-size
    /// learned rows (with --model conv, 7×7 codes for MNIST; with mlp, --latent-dim codes).
    Vqvae,
    /// A VAE with a chain of Gaussian stochastic layers (Burda et al.'s two-layer model with
    /// --preset burda2): q(h1|x) through --hidden to --latent-dim units, then each layer of
    /// --upper-latent through --upper-hidden; p(hl|hl+1) learned Gaussians, p(x|h1), p(hL) =
    /// N(0, I). MLP only.
    Hvae,
}

impl FamilyKind {
    /// The family of a model by its name in checkpoints ([`Family::name`]).
    pub fn from_name(name: &str) -> Option<FamilyKind> {
        match name {
            "vae" => Some(FamilyKind::Vae),
            "cvae" => Some(FamilyKind::Cvae),
            "vqvae" => Some(FamilyKind::Vqvae),
            "hvae" => Some(FamilyKind::Hvae),
            _ => None,
        }
    }
}

/// Whether a family with this prior trains with these settings: free bits need one Gaussian
/// latent layer, the prior N(0, I) and the ELBO. Checked when a run starts
/// ([`Recipe::check_parts`]) and when it resumes, whose settings come from its checkpoint.
pub fn check_settings(family: FamilyKind, prior: PriorKind, settings: &Settings) -> Result<(), Error> {
    if settings.free_bits.is_none() {
        return Ok(());
    }
    let refused = if !matches!(family, FamilyKind::Vae | FamilyKind::Cvae) {
        Some("--free-bits is for --family vae or cvae (one Gaussian latent layer)")
    } else if prior != PriorKind::Normal {
        Some("--free-bits needs the prior N(0, I): the VampPrior's KL does not split into units")
    } else if settings.objective != ObjectiveKind::Elbo {
        Some("--free-bits is for --objective elbo: the IWAE bound has no KL term to charge")
    } else {
        None
    };
    match refused {
        Some(why) => Err(Error::config(why.into())),
        None => Ok(()),
    }
}

/// Network shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ModelKind {
    /// Dense layers (sizes from --hidden).
    Mlp,
    /// Two stride-2 convolutions and their mirror (28×28 → 7×7 → 28×28).
    Conv,
    /// Residual blocks of weight-normalized 3×3 convolutions with ELU (Kingma et al.'s ResNet
    /// VAE): per level of --feature-maps, a stride-2 block and a stride-1 block; the decoder
    /// mirrors them; started from the data (every layer's outputs standardized on a batch).
    Resnet,
}

/// Initial bias of the decoder's output layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum OutputBias {
    /// PyTorch's default initialization, like every other bias.
    Default,
    /// The logit of each pixel's mean over the training set (its mean, for a Gaussian decoder;
    /// for the discretized logistic, its mean and a log-scale from its spread: the default
    /// there).
    DataMean,
}

/// A whole training protocol in one flag; each of its pieces can still be overridden by its
/// own flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Preset {
    /// Burda, Grosse & Salakhutdinov (2015), one stochastic layer: --hidden 200,200
    /// --latent-dim 50 --activation tanh --binarize dynamic --batch-size 20 --lr-schedule burda
    /// --adam-eps 1e-4 --output-bias data-mean --epochs 3280.
    Burda,
    /// Their two-stochastic-layer model, same protocol: --family hvae --hidden 200,200
    /// --latent-dim 100 --upper-hidden 100,100 --upper-latent 50, and the rest as burda.
    Burda2,
}

/// The VQ-VAE's own sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct VqSizes {
    /// Kc, the rows of the codebook.
    pub codebook_size: usize,
    /// Dc, the width of a code vector.
    pub code_dim: usize,
    /// Learn the codebook by moving averages with this decay instead of by gradient.
    pub codebook_ema: Option<f32>,
}

/// Hidden widths between a chain's upper layers unless said otherwise (Burda et al.'s).
pub const DEFAULT_UPPER_HIDDEN: [usize; 2] = [100, 100];

/// A new run: the model and the settings of its training.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// The model family.
    pub family: FamilyKind,
    /// The network body (MLP or conv).
    pub model: ModelKind,
    /// MLP hidden widths.
    pub hidden: Vec<usize>,
    /// The ResNet body's feature maps per level.
    pub feature_maps: Vec<usize>,
    /// Latent dimension J (of h1 for a chain; codes per image for an MLP VQ-VAE).
    pub latent: usize,
    /// A chain's units of h2, h3, … (empty: one stochastic layer).
    pub upper_latent: Vec<usize>,
    /// A chain's hidden widths between consecutive stochastic layers.
    pub upper_hidden: Vec<usize>,
    /// Hidden-layer nonlinearity.
    pub activation: Activation,
    /// The decoder's likelihood p(x|z).
    pub likelihood: Likelihood,
    /// The decoder's initial output bias.
    pub output_bias: OutputBias,
    /// The prior p(z) of a one-layer VAE (a VampPrior's pseudo-inputs start at training images).
    pub prior: PriorKind,
    /// An inverse autoregressive flow on a one-layer VAE's posterior sample, if any.
    pub flow: Option<FlowSpec>,
    /// The VQ-VAE's codebook.
    pub vq: VqSizes,
    /// How it is trained.
    pub settings: Settings,
}

impl Default for Recipe {
    /// PyTorch's example: a 784-400-20 MLP, ReLU, Bernoulli pixels, Adam at 1e-3, batches of
    /// 128, 10 epochs (the default run: a test loss of 105.48 nats on MNIST).
    fn default() -> Self {
        Recipe {
            family: FamilyKind::Vae,
            model: ModelKind::Mlp,
            hidden: vec![400],
            feature_maps: vec![16, 32, 32],
            latent: 20,
            upper_latent: vec![],
            upper_hidden: DEFAULT_UPPER_HIDDEN.to_vec(),
            activation: Activation::Relu,
            likelihood: Likelihood::Bernoulli,
            output_bias: OutputBias::Default,
            prior: PriorKind::Normal,
            flow: None,
            vq: VqSizes { codebook_size: 128, code_dim: 16, codebook_ema: None },
            settings: Settings::default(),
        }
    }
}

impl Recipe {
    /// A published protocol (see [`Preset`]).
    pub fn preset(preset: Preset) -> Self {
        let plain = Recipe::default();
        let settings = Settings {
            batch_size: 20,
            binarize: BinarizeKind::Dynamic,
            lr_schedule: LrScheduleKind::Burda,
            adam_eps: 1e-4,
            epochs: 3280,
            schedule_epochs: 3280,
            ..plain.settings.clone()
        };
        let burda = Recipe {
            hidden: vec![200, 200],
            latent: 50,
            activation: Activation::Tanh,
            output_bias: OutputBias::DataMean,
            settings,
            ..plain
        };
        match preset {
            Preset::Burda => burda,
            Preset::Burda2 => Recipe { family: FamilyKind::Hvae, latent: 100, upper_latent: vec![50], ..burda },
        }
    }

    /// The recipe with another likelihood. The discretized logistic also starts its output
    /// bias from the data (its means and spreads), since a scale of 1 takes thousands of steps
    /// to leave.
    pub fn with_likelihood(self, likelihood: Likelihood) -> Self {
        let output_bias =
            if matches!(likelihood, Likelihood::DLogistic { .. }) { OutputBias::DataMean } else { self.output_bias };
        Recipe { likelihood, output_bias, ..self }
    }

    /// Whether the family takes the recipe's prior and flow: checked before any data is read
    /// (`vae-cli train` calls it first) and again by [`Recipe::build`].
    pub fn check_parts(&self) -> Result<(), Error> {
        if self.prior != PriorKind::Normal && self.family == FamilyKind::Vqvae {
            return Err(Error::config(
                "--prior vamp is for the Gaussian-latent families (vae, cvae, hvae); the VQ-VAE learns its own code prior (vae-cli prior)"
                    .into(),
            ));
        }
        if self.flow.is_some() && !matches!(self.family, FamilyKind::Vae | FamilyKind::Cvae) {
            return Err(Error::config("--flow iaf is for --family vae or cvae (one Gaussian latent layer)".into()));
        }
        check_settings(self.family, self.prior, &self.settings)
    }

    /// The model for images shaped like `train`'s (and, for a conditional model, a class per
    /// label it uses), initialized from the stream (seed, 0, 0, init). The output bias is the
    /// data's if the recipe says so ([`crate::run::schedule::init_output_bias`]).
    pub fn build(&self, train: &Split) -> Result<Box<dyn Family>, Error> {
        self.check_parts()?;
        let rng = &mut stream(self.settings.seed, 0, 0, Purpose::Init);
        let (input, activation, likelihood) = (train.shape(), self.activation, self.likelihood);
        let mut model: Box<dyn Family> = match self.family {
            FamilyKind::Hvae => {
                let first = LayerSpec { hidden: self.hidden.clone(), latent: self.latent };
                let upper =
                    self.upper_latent.iter().map(|&latent| LayerSpec { hidden: self.upper_hidden.clone(), latent });
                let layers = std::iter::once(first).chain(upper).collect();
                let prior = self.prior;
                let mut hvae = Hvae::new(HvaeConfig { input, layers, activation, likelihood, prior }, rng)?;
                if let PriorKind::Vamp { components } = prior {
                    hvae.set_pseudo_inputs(&pseudo_inputs_from(train, components, 0, self.settings.seed)?);
                }
                Box::new(hvae)
            }
            FamilyKind::Vqvae => {
                let arch = match self.model {
                    ModelKind::Mlp => VqArch::Mlp { hidden: self.hidden.clone(), codes: self.latent },
                    ModelKind::Conv => VqArch::Conv { channels: vec![32, 64] },
                    ModelKind::Resnet => return Err(Error::config("--family vqvae takes --model mlp or conv".into())),
                };
                let VqSizes { codebook_size, code_dim, codebook_ema: ema_decay } = self.vq;
                let config = VqConfig { arch, input, code_dim, codebook_size, activation, likelihood, ema_decay };
                Box::new(VqVae::new(config, rng)?)
            }
            FamilyKind::Vae | FamilyKind::Cvae => {
                let base = match self.model {
                    ModelKind::Mlp => {
                        VaeConfig { arch: Arch::Mlp { hidden: self.hidden.clone() }, ..VaeConfig::mlp_mnist() }
                    }
                    ModelKind::Conv => VaeConfig::conv_mnist(),
                    ModelKind::Resnet => VaeConfig {
                        arch: Arch::Resnet { channels: self.feature_maps.clone() },
                        ..VaeConfig::mlp_mnist()
                    },
                };
                // A conditional model has a class per label the training set uses.
                let classes = match self.family {
                    FamilyKind::Cvae if train.classes() >= 2 => train.classes(),
                    FamilyKind::Cvae => {
                        return Err(Error::config(
                            "a conditional VAE (--family cvae) needs a training set with at least two labels".into(),
                        ))
                    }
                    _ => 0,
                };
                let (prior, flow) = (self.prior, self.flow);
                let config =
                    VaeConfig { input, latent: self.latent, activation, likelihood, classes, prior, flow, ..base };
                let mut vae = Vae::new(config, rng)?;
                if self.model == ModelKind::Resnet {
                    // A ResNet body starts from a batch of training images.
                    vae.init_from_data(&first_batch(train, classes, self.settings.seed));
                }
                if let PriorKind::Vamp { components } = prior {
                    vae.set_pseudo_inputs(&pseudo_inputs_from(train, components, classes, self.settings.seed)?);
                }
                Box::new(vae)
            }
        };
        if self.output_bias == OutputBias::DataMean {
            crate::run::schedule::init_output_bias(model.as_mut(), likelihood, train)?;
        }
        Ok(model)
    }
}

/// The batch a ResNet body's data-dependent start reads: 256 training images (all, if fewer),
/// drawn without replacement from the stream (seed, 0, 2, init), as rows [x, y].
fn first_batch(train: &Split, classes: usize, seed: u64) -> vae_autodiff::Tensor {
    let rng = &mut stream(seed, 0, 2, Purpose::Init);
    let idx = rand::seq::index::sample(rng, train.len(), 256.min(train.len())).into_vec();
    train.rows(&idx, crate::data::Binarize::None, rng, classes)
}

/// K training images, drawn without replacement from the stream (seed, 0, 1, init), as rows of
/// grey values in [0, 1]: where a VampPrior's pseudo-inputs start (Tomczak & Welling's
/// initialization from training data), so that the prior begins as a mixture of posteriors of
/// real images. A conditional model's pseudo-input k stands for class k mod Y
/// ([`crate::Vae::pseudo_input_classes`]) and starts at an image of that class.
fn pseudo_inputs_from(train: &Split, k: usize, classes: usize, seed: u64) -> Result<Vec<f32>, Error> {
    if k > train.len() {
        return Err(Error::config(format!(
            "--pseudo-inputs {k} is more than the {} training images they start from",
            train.len()
        )));
    }
    let rng = &mut stream(seed, 0, 1, Purpose::Init);
    let idx = match classes {
        0 => rand::seq::index::sample(rng, train.len(), k).into_vec(),
        _ => {
            // Per class c, as many images as pseudo-inputs k ≡ c (mod Y), in the order they take them.
            let mut picks: Vec<std::vec::IntoIter<usize>> = Vec::with_capacity(classes);
            for c in 0..classes {
                let of_class: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] as usize == c).collect();
                let wanted = (k + classes - 1 - c) / classes;
                if wanted > of_class.len() {
                    return Err(Error::config(format!(
                        "--pseudo-inputs {k} asks for {wanted} images of class {c}, and the training set has {}",
                        of_class.len()
                    )));
                }
                let chosen = rand::seq::index::sample(rng, of_class.len(), wanted).into_iter().map(|j| of_class[j]);
                picks.push(chosen.collect::<Vec<_>>().into_iter());
            }
            (0..k).map(|i| picks[i % classes].next().expect("counted above")).collect()
        }
    };
    let rows = train.rows(&idx, crate::data::Binarize::None, rng, 0);
    Ok(rows.iter().copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The presets change only the pieces their documentation names.
    #[test]
    fn the_presets_are_burda_et_al_s_protocols() {
        let (plain, burda, burda2) = (Recipe::default(), Recipe::preset(Preset::Burda), Recipe::preset(Preset::Burda2));
        assert_eq!((burda.hidden.as_slice(), burda.latent, burda.activation), (&[200, 200][..], 50, Activation::Tanh));
        let s = &burda.settings;
        assert_eq!(
            (s.batch_size, s.binarize, s.lr_schedule, s.epochs),
            (20, BinarizeKind::Dynamic, LrScheduleKind::Burda, 3280)
        );
        assert_eq!((s.adam_eps, s.lr, s.seed), (1e-4, plain.settings.lr, plain.settings.seed));
        assert_eq!((burda2.family, burda2.latent, burda2.upper_latent.as_slice()), (FamilyKind::Hvae, 100, &[50][..]));
        assert_eq!(Recipe { family: FamilyKind::Vae, latent: 50, upper_latent: vec![], ..burda2 }, burda);
        let dlogistic = plain.with_likelihood(Likelihood::DLogistic { mixtures: 1 });
        assert_eq!(dlogistic.output_bias, OutputBias::DataMean);
    }

    /// A VampPrior's pseudo-inputs start at distinct training images, as many as asked, and
    /// never more than there are.
    #[test]
    fn the_pseudo_inputs_start_at_training_images() {
        let images: Vec<u8> = (0..6u8).flat_map(|i| [i * 40, 255 - i * 40]).collect();
        let train = Split { images, labels: vec![0; 6], channels: 1, rows: 1, cols: 2 };
        let recipe =
            |k| Recipe { hidden: vec![3], latent: 2, prior: PriorKind::Vamp { components: k }, ..Recipe::default() };
        let model = recipe(4).build(&train).unwrap();
        let params = model.params();
        let u = params.get(params.find("prior.pseudo_inputs").unwrap());
        let rows: Vec<Vec<u8>> =
            u.outer_iter().map(|r| r.iter().map(|&v| (v * 255.0).round() as u8).collect()).collect();
        let originals: Vec<&[u8]> = train.images.chunks(2).collect();
        assert!(rows.iter().all(|r| originals.contains(&r.as_slice())), "{rows:?}");
        assert!(rows.iter().enumerate().all(|(i, r)| !rows[..i].contains(r)), "distinct images: {rows:?}");
        let e = recipe(7).build(&train).err().unwrap().to_string();
        assert!(e.contains("more than the 6 training images"), "{e}");
    }

    /// A conditional model's pseudo-input k starts at a training image of class k mod Y; a
    /// class with too few images is named.
    #[test]
    fn a_conditional_models_pseudo_inputs_start_at_images_of_their_class() {
        let images: Vec<u8> = (0..9u8).flat_map(|i| [i * 25, 255 - i * 25]).collect();
        let labels = vec![0, 1, 2, 1, 0, 2, 1, 2, 1];
        let train = Split { images, labels: labels.clone(), channels: 1, rows: 1, cols: 2 };
        let recipe = |k| Recipe {
            family: FamilyKind::Cvae,
            hidden: vec![3],
            latent: 2,
            prior: PriorKind::Vamp { components: k },
            ..Recipe::default()
        };
        let model = recipe(5).build(&train).unwrap();
        let params = model.params();
        let u = params.get(params.find("prior.pseudo_inputs").unwrap());
        for (k, row) in u.outer_iter().enumerate() {
            let pixels: Vec<u8> = row.iter().map(|&v| (v * 255.0).round() as u8).collect();
            let image = train.images.chunks(2).position(|im| im == pixels.as_slice()).expect("a training image");
            assert_eq!(labels[image] as usize, k % 3, "pseudo-input {k} starts at image {image}");
        }
        let e = recipe(7).build(&train).err().unwrap().to_string();
        assert!(e.contains("asks for 3 images of class 0, and the training set has 2"), "{e}");
    }

    /// A run limited to the first n training images starts from those alone: its model is the
    /// one built on the first n, not on all of them.
    #[test]
    fn a_limited_run_starts_from_the_images_it_trains_on() {
        let images: Vec<u8> = (0..40u8).flat_map(|i| [i * 6, 255 - i * 6]).collect();
        let train = Split { images, labels: vec![0; 40], channels: 1, rows: 1, cols: 2 };
        let mut recipe = Recipe {
            hidden: vec![3],
            latent: 2,
            prior: PriorKind::Vamp { components: 5 },
            output_bias: OutputBias::DataMean,
            ..Recipe::default()
        };
        recipe.settings.train_limit = Some(10);
        let limited = crate::run::Run::start(&recipe, &train).unwrap();
        let on_first_10 = recipe.build(&train.truncated(10)).unwrap();
        let on_all = recipe.build(&train).unwrap();
        assert_eq!(limited.model.params().values(), on_first_10.params().values());
        assert_ne!(limited.model.params().values(), on_all.params().values(), "the test must tell them apart");
    }
}
