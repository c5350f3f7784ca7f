//! The command line: every subcommand, its flags with defaults, and their checks.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Errors reach `main` as one printable line.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Train, evaluate and draw variational autoencoders (our own autodiff, on the CPU).
#[derive(Parser, Debug)]
#[command(name = "vae-cli", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Train a model: a VAE by default (PyTorch's MNIST example, 784-400-20, Bernoulli, Adam 1e-3, 10 epochs); --family cvae or vqvae for the others.
    Train(TrainArgs),
    /// Report the negative ELBO on the test set (and optionally −log p(x) by importance sampling, active units, a conditional model's label consistency); a VQ-VAE's terms and code use.
    Eval(EvalArgs),
    /// Draw a grid of samples from the prior, decoded (a row per class for a conditional model).
    Sample(SampleArgs),
    /// Draw test images above their reconstructions.
    Reconstruct(ReconstructArgs),
    /// Decode the straight line between the latent means of two test images.
    Interpolate(InterpolateArgs),
    /// Decode a grid of latent points (Kingma & Welling's Fig. 4).
    Manifold(ManifoldArgs),
    /// Scatter the test set's latent means, coloured by label.
    Latent(LatentArgs),
    /// Plot the training curves of a run from its metrics.csv (several runs: their test losses on one chart); epochs on a logarithmic axis past 200.
    Plot(PlotArgs),
    /// Train the autoregressive prior over a VQ-VAE's codes; report −log p(x) bounds; draw samples.
    Prior(PriorArgs),
    /// Explore a model's latent space in the browser: scatter, sliders, interpolation.
    Serve(ServeArgs),
}

/// Flags shared by the picture commands: the model and the data.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A model.safetensors or checkpoint.safetensors written by `vae-cli train`.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Folder with the four MNIST-format IDX files (default: the shipped datasets/mnist).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// The class a conditional model draws; an unconditional model refuses the flag.
#[derive(Args, Debug, Clone)]
pub struct LabelArgs {
    /// Conditional models (`--family cvae`) only: the class to draw, 0 to Y − 1.
    #[arg(long)]
    pub label: Option<usize>,
}

/// Flags of `vae-cli sample`.
#[derive(Args, Debug, Clone)]
pub struct SampleArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of samples.
    #[arg(short = 'n', long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub count: u64,
    /// Seed of the latent draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "samples.png")]
    pub out: PathBuf,
    /// A conditional model draws this class; without it, one row per class.
    #[command(flatten)]
    pub label: LabelArgs,
    /// Also write the drawn images as an IDX file (MNIST's own format, unsigned bytes 0–255,
    /// [n, H, W]) that other tools can read.
    #[arg(long, value_name = "FILE")]
    pub idx: Option<PathBuf>,
    /// VQ-VAE only: draw the codes from this learned prior (`vae-cli prior` writes
    /// prior.safetensors) instead of uniformly.
    #[arg(long, value_name = "FILE")]
    pub prior: Option<PathBuf>,
}

/// Flags of `vae-cli reconstruct`.
#[derive(Args, Debug, Clone)]
pub struct ReconstructArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of test images (the first ones).
    #[arg(short = 'n', long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub count: u64,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "reconstructions.png")]
    pub out: PathBuf,
}

/// Flags of `vae-cli interpolate`.
#[derive(Args, Debug, Clone)]
pub struct InterpolateArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Index of the first test image.
    #[arg(long)]
    pub from: usize,
    /// Index of the second test image.
    #[arg(long)]
    pub to: usize,
    /// Points on the line, both ends included.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=100))]
    pub steps: u64,
    /// A conditional model decodes the line with this class [default: the first image's label].
    #[command(flatten)]
    pub label: LabelArgs,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "interpolation.png")]
    pub out: PathBuf,
}

/// Flags of `vae-cli manifold`.
#[derive(Args, Debug, Clone)]
pub struct ManifoldArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Points per side of the grid.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=60))]
    pub grid: u64,
    /// The two latent dimensions to vary (0-based); the others stay at 0.
    #[arg(long, value_delimiter = ',', default_value = "0,1", num_args = 1)]
    pub dims: Vec<usize>,
    /// A conditional model decodes the grid with this class [default: 0].
    #[command(flatten)]
    pub label: LabelArgs,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "manifold.png")]
    pub out: PathBuf,
}

/// Flags of `vae-cli latent`.
#[derive(Args, Debug, Clone)]
pub struct LatentArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "latent.png")]
    pub out: PathBuf,
    /// Also write label, mu and logvar of every test image to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// Flags of `vae-cli plot`.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// A run folder written by `vae-cli train` (it holds metrics.csv). Give it more than once
    /// to compare runs: their test losses on one chart, each named by its folder.
    #[arg(long, value_name = "DIR", required = true)]
    pub run: Vec<PathBuf>,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "curves.png")]
    pub out: PathBuf,
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

/// Flags of `vae-cli serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The checkpoint (a VAE or conditional VAE) and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on; the default serves this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// Epochs of `vae-cli prior` when --epochs is not given.
pub const DEFAULT_PRIOR_EPOCHS: u64 = 10;

/// Flags of `vae-cli prior`.
#[derive(Args, Debug, Clone)]
pub struct PriorArgs {
    /// A model.safetensors of a VQ-VAE (`vae-cli train --family vqvae`).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Folder with the four MNIST-format IDX files (default: the shipped datasets/mnist).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Folder for prior.safetensors, prior_checkpoint.safetensors (the resumable state: prior,
    /// Adam's moments, progress), prior.json, prior_metrics.csv and the pictures [default: the
    /// checkpoint's].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the prior's training in the output folder from prior_checkpoint.safetensors,
    /// with its saved settings (Ctrl-C saves one mid-epoch; --epochs may extend the run).
    #[arg(long)]
    pub resume: bool,
    /// Hidden widths of the masked MLP, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "512,512", value_parser = clap::value_parser!(u64).range(1..))]
    pub hidden: Vec<u64>,
    /// Epochs over the training codes (in total, when resuming) [default: 10].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Code grids per step.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Seed of initialization, shuffling and samples.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use only the first N training images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub train_limit: Option<u64>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub test_limit: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
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
    /// The logit of each pixel's mean over the training set (its mean, for a Gaussian decoder).
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

/// Flags of `vae-cli train`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Set a whole published protocol at once (the flags below override its pieces).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Model family [default: vae; hvae with --preset burda2].
    #[arg(long, value_enum)]
    pub family: Option<FamilyKind>,
    /// Architecture.
    #[arg(long, value_enum, default_value_t = ModelKind::Mlp)]
    pub model: ModelKind,
    /// Hidden layer widths of the MLP, comma-separated, e.g. 512,256 [default: 400].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub hidden: Option<Vec<u64>>,
    /// Latent dimension J (of h1, the lowest layer, for --family hvae) [default: 20].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub latent_dim: Option<u64>,
    /// --family hvae: units of each stochastic layer above h1, comma-separated (h2, h3, …)
    /// [default: none; 50 with --preset burda2].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub upper_latent: Option<Vec<u64>>,
    /// --family hvae: hidden widths of the nets between consecutive stochastic layers
    /// (q(hl|hl−1) and, reversed, p(hl−1|hl)), comma-separated [default: 100,100].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub upper_hidden: Option<Vec<u64>>,
    /// Nonlinearity of the hidden layers [default: relu].
    #[arg(long, value_enum)]
    pub activation: Option<ActivationKind>,
    /// Decoder likelihood p(x|z).
    #[arg(long, value_enum, default_value_t = LikelihoodKind::Bernoulli)]
    pub likelihood: LikelihoodKind,
    /// Standard deviation of the Gaussian likelihood.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub sigma: f32,
    /// Initial bias of the decoder's output layer [default: default].
    #[arg(long, value_enum)]
    pub output_bias: Option<OutputBias>,
    /// VQ-VAE: rows of the codebook (Kc).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(2..=65_536))]
    pub codebook_size: u64,
    /// VQ-VAE: width of a code vector (Dc).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub code_dim: u64,
    /// VQ-VAE: weight β of the commitment term ‖z_e − sg(e)‖².
    #[arg(long, default_value_t = 0.25, allow_negative_numbers = true)]
    pub commitment: f32,
    /// VQ-VAE: learn the codebook by exponential moving averages with this decay (the paper
    /// uses 0.99) instead of by the gradient of the codebook term.
    #[arg(long, value_name = "DECAY")]
    pub codebook_ema: Option<f32>,
    /// VQ-VAE: leave codes that no test image used where they are (by default each epoch moves
    /// them onto encoder outputs of random training images).
    #[arg(long)]
    pub keep_dead_codes: bool,
    /// Training objective.
    #[arg(long, value_enum, default_value_t = ObjectiveKind::Elbo)]
    pub objective: ObjectiveKind,
    /// Samples of z per example (K) for the objective.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub k: u64,
    /// Weight of the KL term (1 = the true negative ELBO; the IWAE objective needs 1).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub beta: f32,
    /// Ramp the KL weight linearly from 0 to --beta over this many epochs (0 = off; ELBO only).
    #[arg(long, default_value_t = 0.0, value_name = "EPOCHS", allow_negative_numbers = true)]
    pub kl_warmup: f32,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    pub optimizer: OptimizerKind,
    /// Learning rate [default: 0.001]; with --resume, replaces the run's own (to recover from a divergence).
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Learning-rate schedule [default: constant].
    #[arg(long, value_enum)]
    pub lr_schedule: Option<LrScheduleKind>,
    /// The epochs the learning-rate schedule spans [default: --epochs]. With fewer --epochs the
    /// run stops part-way through the schedule: `--preset burda --epochs 27 --schedule-epochs
    /// 3280` trains the paper's first 27 epochs.
    #[arg(long, value_name = "EPOCHS", value_parser = clap::value_parser!(u64).range(1..))]
    pub schedule_epochs: Option<u64>,
    /// Adam's ε, the constant under the square root's denominator [default: 1e-8].
    #[arg(long, allow_negative_numbers = true)]
    pub adam_eps: Option<f32>,
    /// Clip the gradient's global norm to this value (off by default).
    #[arg(long, value_name = "NORM", allow_negative_numbers = true)]
    pub clip_norm: Option<f32>,
    /// Examples per step [default: 128].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: Option<u64>,
    /// Epochs to train (in total, when resuming) [default: 10].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Pixel binarization [default: none].
    #[arg(long, value_enum)]
    pub binarize: Option<BinarizeKind>,
    /// Seed of every random choice (initialization, shuffling, noise).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
    /// Folder with the four MNIST-format IDX files (default: the shipped datasets/mnist).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Run folder for the model, checkpoint, metrics and pictures (default: a new folder under runs/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint, with its saved settings.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Use only the first N training images (for quick experiments and tests).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub train_limit: Option<u64>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub test_limit: Option<u64>,
}

/// The protocol flags of `train` with the preset and the defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Protocol {
    /// The model family.
    pub family: FamilyKind,
    /// MLP hidden widths.
    pub hidden: Vec<usize>,
    /// Latent dimension J (of h1 for a chain).
    pub latent: usize,
    /// A chain's units of h2, h3, … (empty for the other families).
    pub upper_latent: Vec<usize>,
    /// A chain's hidden widths between consecutive stochastic layers.
    pub upper_hidden: Vec<usize>,
    /// Hidden-layer nonlinearity.
    pub activation: ActivationKind,
    /// Initial output bias.
    pub output_bias: OutputBias,
    /// Learning-rate schedule.
    pub lr_schedule: LrScheduleKind,
    /// Adam's ε.
    pub adam_eps: f32,
    /// Examples per step.
    pub batch_size: usize,
    /// Epochs in all.
    pub epochs: u64,
    /// Pixel binarization.
    pub binarize: BinarizeKind,
}

impl TrainArgs {
    /// Each protocol flag: its own value if given, else the preset's, else the default.
    pub fn protocol(&self) -> Protocol {
        // Both of Burda et al.'s models share the protocol; the two-layer one has its own sizes.
        let burda = matches!(self.preset, Some(Preset::Burda | Preset::Burda2));
        let two_layer = self.preset == Some(Preset::Burda2);
        fn pick<T>(burda: bool, given: Option<T>, preset: T, default: T) -> T {
            given.unwrap_or(if burda { preset } else { default })
        }
        let widths = |v: &Option<Vec<u64>>| v.as_ref().map(|v| v.iter().map(|&w| w as usize).collect::<Vec<_>>());
        Protocol {
            family: pick(two_layer, self.family, FamilyKind::Hvae, FamilyKind::Vae),
            hidden: match &self.hidden {
                Some(h) => h.iter().map(|&h| h as usize).collect(),
                None if burda => vec![200, 200],
                None => vec![400],
            },
            latent: self.latent_dim.unwrap_or(if two_layer {
                100
            } else if burda {
                50
            } else {
                20
            }) as usize,
            upper_latent: pick(two_layer, widths(&self.upper_latent), vec![50], vec![]),
            upper_hidden: widths(&self.upper_hidden).unwrap_or_else(|| vec![100, 100]),
            activation: pick(burda, self.activation, ActivationKind::Tanh, ActivationKind::Relu),
            output_bias: pick(burda, self.output_bias, OutputBias::DataMean, OutputBias::Default),
            lr_schedule: pick(burda, self.lr_schedule, LrScheduleKind::Burda, LrScheduleKind::Constant),
            adam_eps: pick(burda, self.adam_eps, 1e-4, 1e-8),
            batch_size: pick(burda, self.batch_size, 20, 128) as usize,
            epochs: pick(burda, self.epochs, 3280, 10),
            binarize: pick(burda, self.binarize, BinarizeKind::Dynamic, BinarizeKind::None),
        }
    }
}

/// Flags of `vae-cli eval`.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A model.safetensors or checkpoint.safetensors written by `vae-cli train`.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Folder with the four MNIST-format IDX files (default: the shipped datasets/mnist).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Also estimate −log p(x) with K importance samples per image (Burda et al. use 5000).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub iw_samples: Option<u64>,
    /// Also count the active latent units: those whose posterior mean varies across the test
    /// images with variance above 0.01 (Burda et al.).
    #[arg(long)]
    pub active_units: bool,
    /// With --active-units: also draw each unit's variance, most active first, on a
    /// logarithmic axis with the 0.01 threshold, into this PNG.
    #[arg(long, value_name = "FILE", requires = "active_units")]
    pub units_png: Option<PathBuf>,
    /// Conditional models only: draw N samples of every class from the prior (500 when N is
    /// left out) and report the share that look like their class, judged by their nearest
    /// training image (and that judge's own accuracy on 1,000 test images).
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "500", value_parser = clap::value_parser!(u64).range(1..))]
    pub label_consistency: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Pixel binarization of the test images (use the one the model was trained with).
    #[arg(long, value_enum, default_value_t = BinarizeKind::None)]
    pub binarize: BinarizeKind,
    /// Seed of the sampled z (and of binarization).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use only the first N test images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub test_limit: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => on_pool(args.threads, args, crate::train::run),
        Command::Eval(args) => on_pool(args.threads, args, crate::eval::run),
        Command::Sample(args) => crate::pictures::sample(args),
        Command::Reconstruct(args) => crate::pictures::reconstruct(args),
        Command::Interpolate(args) => crate::pictures::interpolate(args),
        Command::Manifold(args) => crate::pictures::manifold(args),
        Command::Latent(args) => crate::pictures::latent(args),
        Command::Plot(args) => crate::pictures::plot(args),
        Command::Serve(args) => crate::serve::run(args),
        Command::Prior(args) => {
            check_number("lr", args.lr, 0.0, false)?;
            on_pool(args.threads, args, crate::prior::run)
        }
    }
}

/// Sizes rayon's global pool and runs `work(args)` on one of its threads.
///
/// Why on a worker: a parallel loop started from outside the pool hands its work to a worker
/// and puts the calling thread to sleep until it is done, a wake-up and a sleep per loop; a
/// training step of Burda et al.'s model (batch 20) starts a dozen such loops, most of them
/// tiny. Started from a worker, a loop runs in place and the other workers steal what they
/// can: the step took 1.14–1.34 ms instead of 1.52–2.04 (`examples/step_timer.rs burda`, with
/// and without `INSIDE_POOL`, docs/PERFORMANCE.md). The numbers are the same either way.
fn on_pool<A: Send>(threads: Option<u64>, args: A, work: fn(A) -> Result<()>) -> Result<()> {
    init_threads(threads)?;
    let mut outcome = Ok(());
    // A boxed error need not be Send: it crosses back to this thread as its message.
    rayon::scope(|_| outcome = work(args).map_err(|e| e.to_string()));
    outcome.map_err(Into::into)
}

/// Sizes rayon's one global pool; every parallel loop of the engine runs on it.
fn init_threads(threads: Option<u64>) -> Result<()> {
    let n = match threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| format!("cannot start {n} worker threads: {e}"))?;
    Ok(())
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
