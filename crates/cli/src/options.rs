//! What several commands share: the error type every command returns, the flags that name a
//! checkpoint and its data or a class, the value sets of flags (families, likelihoods,
//! optimizers, …), and the check of numeric flags. It imports no other module of the crate.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
pub use vae::run::recipe::{FamilyKind, ModelKind, OutputBias, Preset};
pub use vae::run::settings::{BinarizeKind, LrScheduleKind, ObjectiveKind, OptimizerKind};

/// Errors reach `main` as one printable line.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Flags shared by the picture commands: the model and the data.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A model.safetensors or checkpoint.safetensors written by `vae-cli train`.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The data: see [`DataArgs`].
    #[command(flatten)]
    pub data: DataArgs,
}

/// Where the images come from and how they are prepared (every command that reads data).
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct DataArgs {
    /// The data (default: the shipped datasets/mnist): a folder of MNIST-format IDX files
    /// (MNIST, Fashion-MNIST, KMNIST), a folder of PNG/JPEG images (class subfolders give
    /// labels; train/ and test/ subfolders give the split), a NumPy .npy/.npz of uint8 images,
    /// or a folder of CIFAR-10/100 binary batches.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Crop each image to its centred square and resize it to S×S (a triangle filter); needed
    /// when the images differ in size. Give a model's commands the flags it was trained with.
    #[arg(long, value_name = "S")]
    pub image_size: Option<usize>,
    /// 1 (grey) or 3 (colour) channels [default: what the data has].
    #[arg(long, value_name = "C")]
    pub channels: Option<usize>,
    /// The share of images held out for testing, drawn with a fixed seed, when the data has no
    /// split of its own (no train/ and test/ folders, no x_train and x_test) [default: 0.1].
    #[arg(long, value_name = "F")]
    pub test_fraction: Option<f64>,
    /// Skip (and count) images that cannot be decoded instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// Where decoded image folders are cached, so that the next run on an unchanged folder
    /// starts at once [default: $XDG_CACHE_HOME/vae-engine, else ~/.cache/vae-engine].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Decode image folders every time, without reading or writing the cache.
    #[arg(long, conflicts_with = "cache")]
    pub no_cache: bool,
}

/// The class a conditional model draws; an unconditional model refuses the flag.
#[derive(Args, Debug, Clone)]
pub struct LabelArgs {
    /// Conditional models (`--family cvae`) only: the class to draw, 0 to Y − 1.
    #[arg(long)]
    pub label: Option<usize>,
}

/// Decoder distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LikelihoodKind {
    /// Bernoulli pixels on logits (binary cross-entropy).
    Bernoulli,
    /// Gaussian pixels with fixed --sigma (squared error plus its normalizer).
    Gaussian,
    /// 8-bit pixels under the discretized logistic (Kingma et al. 2016): a mean and a
    /// log-scale per value from the decoder, 256 bins; reports bits per dimension.
    Dlogistic,
}

impl LikelihoodKind {
    /// The model's likelihood, with --sigma for the Gaussian and --mixtures for the
    /// discretized logistic.
    pub fn likelihood(self, sigma: f32, mixtures: usize) -> vae::Likelihood {
        match self {
            LikelihoodKind::Bernoulli => vae::Likelihood::Bernoulli,
            LikelihoodKind::Gaussian => vae::Likelihood::Gaussian { sigma },
            LikelihoodKind::Dlogistic => vae::Likelihood::DLogistic { mixtures },
        }
    }
}

/// The prior p(z) of a Gaussian-latent family (`--family vae`, `cvae`, or `hvae` over its top layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PriorChoice {
    /// N(0, I): the KL in closed form.
    Normal,
    /// The VampPrior (Tomczak & Welling 2018): the mixture of the encoder's posteriors at
    /// --pseudo-inputs learned pseudo-inputs, started at training images (for --family cvae,
    /// pseudo-input k at an image of class k mod Y, encoded with that label; for --family hvae
    /// over the top layer, through the means of the layers below); the KL is sampled.
    Vamp,
}

/// A flow on the posterior's sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlowChoice {
    /// None: q(z|x) is the diagonal Gaussian.
    None,
    /// Inverse autoregressive flow (Kingma et al. 2016): --flow-depth steps, each a MADE of
    /// --flow-width hidden units with the stable update z ← σ ⊙ z + (1 − σ) ⊙ m.
    Iaf,
}

/// Hidden-layer nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ActivationKind {
    /// max(x, 0) (PyTorch's example).
    Relu,
    /// tanh(x) (Burda et al.).
    Tanh,
    /// x for x > 0, eˣ − 1 otherwise (Kingma et al.'s ResNet VAE).
    Elu,
}

/// The command-line name of a value of a flag's enum.
pub fn enum_name<T: ValueEnum>(v: T) -> String {
    v.to_possible_value().expect("no skipped variants").get_name().to_string()
}

/// Checks that a float flag is a finite number above `min` (or at least, when `inclusive`).
pub fn check_number(flag: &str, value: f32, min: f32, inclusive: bool) -> Result<()> {
    let ok = value.is_finite() && if inclusive { value >= min } else { value > min };
    if ok {
        Ok(())
    } else {
        let bound = if inclusive { "at least" } else { "greater than" };
        Err(format!("--{flag} must be a finite number {bound} {min}, found {value}").into())
    }
}
