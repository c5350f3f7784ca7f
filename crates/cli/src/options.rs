//! What several commands share: the error type every command returns, the flags that name a
//! checkpoint and its data or a class, the value sets of flags (families, likelihoods,
//! optimizers, …), and the check of numeric flags. It imports no other module of the crate.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

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

/// Model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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

/// Network shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// Dense layers (sizes from --hidden).
    Mlp,
    /// Two stride-2 convolutions and their mirror (28×28 → 7×7 → 28×28).
    Conv,
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

/// Optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam, PyTorch's form (β 0.9, 0.999; ε 1e-8).
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
    /// Adagrad (Kingma & Welling's choice).
    Adagrad,
}

/// Pixel binarization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinarizeKind {
    /// Grey values in [0, 1] as they are.
    None,
    /// A fresh Bernoulli sample of every pixel each time it is used.
    Dynamic,
    /// One fixed Bernoulli sample of every pixel, drawn once from --seed.
    Static,
}

/// Hidden-layer nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ActivationKind {
    /// max(x, 0) (PyTorch's example).
    Relu,
    /// tanh(x) (Burda et al.).
    Tanh,
}

/// Training objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectiveKind {
    /// The negative ELBO: reconstruction averaged over --k samples of z, KL in closed form.
    Elbo,
    /// The negative importance-weighted bound −L_K with --k samples (Burda et al.'s IWAE).
    Iwae,
}

/// Learning-rate schedule over the run's epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrScheduleKind {
    /// --lr throughout.
    Constant,
    /// Burda et al.'s 8 stages: stage i = 0..7 lasts 3^i of 3,280 epochs at --lr·10^(−i/7);
    /// mapped in proportion onto --epochs when that is not 3,280.
    Burda,
}

/// Initial bias of the decoder's output layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Burda, Grosse & Salakhutdinov (2015), one stochastic layer: --hidden 200,200
    /// --latent-dim 50 --activation tanh --binarize dynamic --batch-size 20 --lr-schedule burda
    /// --adam-eps 1e-4 --output-bias data-mean --epochs 3280.
    Burda,
    /// Their two-stochastic-layer model, same protocol: --family hvae --hidden 200,200
    /// --latent-dim 100 --upper-hidden 100,100 --upper-latent 50, and the rest as burda.
    Burda2,
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
