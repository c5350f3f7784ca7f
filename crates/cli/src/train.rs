//! `vae-cli train`: its flags, the model they describe, and a model's training as the shared
//! epoch loop (`epochs.rs`, with Ctrl-C and partial epochs) runs it: each step's batch and
//! noise, the learning-rate schedule, the KL warm-up, the per-epoch test pass, metrics row and
//! pictures. The run folder and resume are in `rundir.rs`, the settings a run keeps in
//! `settings.rs`, the random streams in `streams.rs`, the data in `data.rs`.

use std::path::{Path, PathBuf};

use clap::Args;
use rand::seq::IndexedRandom;
use vae::data::{Binarize, Prep, Split};
use vae::family::{StepSettings, Sums};
use vae::objective::Objective;
use vae::train::NonFinite;
use vae::{Activation, Arch, Family, Likelihood, Vae, VaeConfig};

use crate::control::Control;
use crate::data::{check_split, data_dir, prep, prepare_data};
use crate::epochs::{train_epochs, RunState, Trainer};
use crate::family_hvae::{self, HvaeFlags};
use crate::family_vqvae::VqFlags;
use crate::interrupt;
use crate::options::{
    check_number, ActivationKind, BinarizeKind, DataArgs, FamilyKind, LikelihoodKind, LrScheduleKind, ModelKind,
    ObjectiveKind, OptimizerKind, OutputBias, Preset, Result,
};
use crate::rundir::{metrics_header, write_pictures, Run, CHECKPOINT, MODEL, MODEL_RUN};
use crate::say::say;
use crate::settings::{enum_name, Settings, DEFAULT_LR};
use crate::streams::{stream, Purpose};
use crate::testpass::evaluate;

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
    /// Nonlinearity of the hidden layers [default: relu].
    #[arg(long, value_enum)]
    pub activation: Option<ActivationKind>,
    /// Decoder likelihood p(x|z).
    #[arg(long, value_enum, default_value_t = LikelihoodKind::Bernoulli)]
    pub likelihood: LikelihoodKind,
    /// Standard deviation of the Gaussian likelihood.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub sigma: f32,
    /// Components of the discretized logistic's mixture per value (--likelihood dlogistic).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub mixtures: u64,
    /// Initial bias of the decoder's output layer [default: default; data-mean with --preset burda and --likelihood dlogistic].
    #[arg(long, value_enum)]
    pub output_bias: Option<OutputBias>,
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
    /// The data and its preparation.
    #[command(flatten)]
    pub data: DataArgs,
    /// Run folder for the model, checkpoint, metrics and pictures (default: a new folder under runs/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint, with its saved settings.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// A hook for tests: pause once this many steps are taken and say so on standard output,
    /// so that a test signals the run at a known step rather than after a delay.
    #[arg(long, value_name = "N", hide = true)]
    pub pause_at_step: Option<u64>,
    /// Use only the first N training images (for quick experiments and tests).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub train_limit: Option<u64>,
    /// Use only the first N test images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub test_limit: Option<u64>,
    /// The VQ-VAE's own flags.
    #[command(flatten)]
    pub vq: VqFlags,
    /// The chain of stochastic layers' own flags.
    #[command(flatten)]
    pub hvae: HvaeFlags,
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
            upper_latent: self.hvae.upper_latent(if two_layer { &[50] } else { &[] }),
            upper_hidden: self.hvae.upper_hidden(),
            activation: pick(burda, self.activation, ActivationKind::Tanh, ActivationKind::Relu),
            // The discretized logistic starts from the data's means and spreads (see init_output_bias).
            output_bias: match self.likelihood {
                LikelihoodKind::Dlogistic => self.output_bias.unwrap_or(OutputBias::DataMean),
                _ => pick(burda, self.output_bias, OutputBias::DataMean, OutputBias::Default),
            },
            lr_schedule: pick(burda, self.lr_schedule, LrScheduleKind::Burda, LrScheduleKind::Constant),
            adam_eps: pick(burda, self.adam_eps, 1e-4, 1e-8),
            batch_size: pick(burda, self.batch_size, 20, 128) as usize,
            epochs: pick(burda, self.epochs, 3280, 10),
            binarize: pick(burda, self.binarize, BinarizeKind::Dynamic, BinarizeKind::None),
        }
    }
}

/// The model the flags describe, for the images and labels of `train`, initialized from `seed`.
fn model_from_args(a: &TrainArgs, p: &Protocol, train: &Split) -> Result<Box<dyn Family>> {
    let likelihood = a.likelihood.likelihood(a.sigma, a.mixtures as usize);
    let activation = match p.activation {
        ActivationKind::Relu => Activation::Relu,
        ActivationKind::Tanh => Activation::Tanh,
    };
    let input = train.shape();
    let rng = &mut stream(a.seed, 0, 0, Purpose::Init);
    let parts = (activation, likelihood);
    match p.family {
        FamilyKind::Hvae => {
            let upper = (p.upper_hidden.as_slice(), p.upper_latent.as_slice());
            return family_hvae::build((&p.hidden, p.latent), upper, input, parts, rng);
        }
        FamilyKind::Vqvae => return a.vq.build(a.model, (&p.hidden, p.latent), input, parts, rng),
        FamilyKind::Vae | FamilyKind::Cvae => {}
    }
    let base = match a.model {
        ModelKind::Mlp => VaeConfig { arch: Arch::Mlp { hidden: p.hidden.clone() }, ..VaeConfig::mlp_mnist() },
        ModelKind::Conv => VaeConfig::conv_mnist(),
    };
    // A conditional model has a class per label the training set uses.
    let classes = match p.family {
        FamilyKind::Cvae if train.classes() >= 2 => train.classes(),
        FamilyKind::Cvae => return Err("--family cvae needs a training set with at least two labels".into()),
        _ => 0,
    };
    let config = VaeConfig { input, latent: p.latent, activation, likelihood, classes, ..base };
    Ok(Box::new(Vae::new(config, rng)?))
}

/// The learning rate of `epoch` (0-based): `lr` throughout, or Burda et al.'s schedule, whose
/// 3,280 epochs (stage i = 0..7 lasting 3^i epochs at lr·10^(−i/7)) are mapped in proportion
/// onto the run's `epochs`: an epoch takes the rate of the stage in which its midpoint falls.
/// With 3,280 epochs this is the paper's schedule exactly.
pub fn lr_at(schedule: LrScheduleKind, lr: f32, epoch: u64, epochs: u64) -> f32 {
    match schedule {
        LrScheduleKind::Constant => lr,
        LrScheduleKind::Burda => {
            let position = (epoch as f64 + 0.5) * 3280.0 / epochs.max(1) as f64;
            // Stages 0..=i end after (3^(i+1) − 1)/2 epochs of the full schedule.
            let stage = (0..8).find(|&i| position < ((3u64.pow(i + 1) - 1) / 2) as f64).unwrap_or(7);
            (lr as f64 * 10f64.powf(-(stage as f64) / 7.0)) as f32
        }
    }
}

/// Sets the decoder's output bias from the training images, as Burda et al. initialize it:
/// Bernoulli, the logit of each pixel's mean (clipped to [0.001, 0.999]); Gaussian, the mean;
/// the discretized logistic, the mean and the log of the logistic scale with each pixel's
/// standard deviation (std·√3/π, at least a bin's 1/255), so that training starts from the
/// data's spread instead of a scale of 1, which it would take thousands of steps to leave.
fn init_output_bias(model: &mut dyn Family, likelihood: Likelihood, train: &Split) -> Result<()> {
    let mean = train.pixel_mean();
    let bias: Vec<f32> = match likelihood {
        Likelihood::Bernoulli => mean
            .iter()
            .map(|&m| {
                let m = m.clamp(1e-3, 1.0 - 1e-3);
                (m / (1.0 - m)).ln()
            })
            .collect(),
        Likelihood::Gaussian { .. } => mean,
        Likelihood::DLogistic { mixtures } => {
            let spread = train.pixel_std();
            let log_scale: Vec<f32> =
                spread.iter().map(|&sd| (sd.max(1.0 / 255.0) * 3f32.sqrt() / std::f32::consts::PI).ln()).collect();
            // A mixture's weights start equal (logits 0) and every component at the data.
            let logits = vec![0.0; if mixtures > 1 { mixtures * mean.len() } else { 0 }];
            let (means, log_scales) = (mean.repeat(mixtures), log_scale.repeat(mixtures));
            logits.into_iter().chain(means).chain(log_scales).collect()
        }
    };
    if model.set_output_bias(&bias) {
        Ok(())
    } else {
        Err(format!("--output-bias data-mean is not available for the {} family", model.name()).into())
    }
}

/// The KL weight at a step: a linear ramp from 0 to β over `warmup` epochs, then β.
fn kl_weight(beta: f32, warmup: f32, epoch: u64, step: usize, steps: usize) -> f32 {
    if warmup <= 0.0 {
        return beta;
    }
    let progress = (epoch as f32 + step as f32 / steps as f32) / warmup;
    beta * progress.min(1.0)
}

/// The default run folder: `runs/<model>-z<latent>-seed<seed>` (`<family>-` before it for
/// any family but the plain VAE; with `-<objective>-k<K>`
/// for any objective but the one-sample ELBO), and `-2`, `-3`, … if taken.
pub fn default_out(a: &TrainArgs, p: &Protocol, objective: Objective) -> PathBuf {
    let latents: Vec<String> =
        std::iter::once(p.latent).chain(p.upper_latent.iter().copied()).map(|j| j.to_string()).collect();
    let mut base = format!("{}-z{}-seed{}", enum_name(a.model), latents.join("-"), a.seed);
    if p.family != FamilyKind::Vae {
        base = format!("{}-{base}", enum_name(p.family));
    }
    if objective != Objective::default() {
        base.push_str(&format!("-{}-k{}", objective.name(), objective.k()));
    }
    let runs = Path::new("runs");
    (1..)
        .map(|i| if i == 1 { runs.join(&base) } else { runs.join(format!("{base}-{i}")) })
        .find(|p| !p.exists())
        .expect("an unused name")
}

/// The settings of a new run, from its flags.
fn settings_from_args(a: &TrainArgs, p: &Protocol) -> Settings {
    Settings {
        seed: a.seed,
        batch_size: p.batch_size,
        lr: a.lr.unwrap_or(DEFAULT_LR),
        optimizer: a.optimizer,
        binarize: p.binarize,
        kl_warmup: a.kl_warmup,
        clip_norm: a.clip_norm,
        train_limit: a.train_limit.map(|n| n as usize),
        test_limit: a.test_limit.map(|n| n as usize),
        objective: a.objective,
        k: a.k as usize,
        beta: a.beta,
        commitment: a.vq.commitment,
        restart_codes: !a.vq.keep_dead_codes,
        lr_schedule: p.lr_schedule,
        adam_eps: p.adam_eps,
        epochs: p.epochs,
        schedule_epochs: a.schedule_epochs.unwrap_or(p.epochs),
        test_fraction: a.data.test_fraction.unwrap_or(Prep::default().test_fraction),
        image_size: a.data.image_size,
        channels: a.data.channels,
    }
}

/// `vae-cli train`: Ctrl-C stops it.
pub fn run(args: TrainArgs) -> Result<()> {
    interrupt::install();
    if let Some(n) = args.pause_at_step {
        interrupt::control().pause_at_step(n);
    }
    run_controlled(args, interrupt::control())
}

/// Trains as `vae-cli train` does, pausing and stopping as `control` says (the playground's
/// runs each have their own).
pub fn run_controlled(args: TrainArgs, control: &Control) -> Result<()> {
    check_flags(&args)?;
    let protocol = args.protocol();
    let fresh = settings_from_args(&args, &protocol);
    let dir = data_dir(&args.data);
    let out = args.out.clone().unwrap_or_else(|| default_out(&args, &protocol, fresh.objective()));
    let mut run = if args.resume { resume(&args, &out)? } else { start(&args, &protocol, fresh, &dir, &out)? };
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create the output folder {}: {e}", out.display()))?;
    let s = run.settings.clone();
    // A resumed run goes on to its planned epochs unless --epochs says otherwise.
    let epochs = if args.resume { args.epochs.unwrap_or(s.epochs) } else { protocol.epochs };
    // The run's own preparation of the data (a resumed run keeps what it started with).
    let prep =
        Prep { image_size: s.image_size, channels: s.channels, test_fraction: s.test_fraction, ..prep(&args.data) };
    let (train, test, mode) = prepare_data(&dir, &prep, &s)?;
    check_split(run.model.as_ref(), &train, &dir)?;
    check_split(run.model.as_ref(), &test, &dir)?;
    if train.is_empty() || test.is_empty() {
        return Err(format!("{}: the training and test sets must not be empty", dir.display()).into());
    }
    let steps = train.len().div_ceil(s.batch_size);
    let objective = run.model.describe_knobs(&step_settings(&s, s.beta));
    let buffers = run.model.buffer_scalars();
    let sizes = match buffers {
        0 => format!("{} parameters", run.model.params().num_scalars()),
        b => format!("{} parameters and {b} buffer values", run.model.params().num_scalars() - b),
    };
    say!(
        "training {} ({sizes}, {objective}) on {} images from {}; {} steps per epoch; run folder {}",
        run.model.describe(),
        train.len(),
        dir.display(),
        steps,
        out.display()
    );
    let mut state = std::mem::take(&mut run.state);
    let mut trainer = ModelTrainer { run: &mut run, train: &train, test: &test, mode, out: &out, epochs };
    if let Some(at) = train_epochs(&mut trainer, &mut state, epochs, control)? {
        say!("interrupted {at}. Continue with: vae-cli train --resume --out {}", out.display());
        return Ok(());
    }
    say!("done: {} holds {MODEL}, {CHECKPOINT}, metrics.csv, samples.png, reconstructions.png", out.display());
    Ok(())
}

/// The numeric flags clap cannot check, and the combinations that make no sense.
pub fn check_flags(args: &TrainArgs) -> Result<()> {
    if let Some(lr) = args.lr {
        check_number("lr", lr, 0.0, false)?;
    }
    check_number("sigma", args.sigma, 0.0, false)?;
    if args.mixtures > 1 && args.likelihood != LikelihoodKind::Dlogistic {
        return Err("--mixtures is for --likelihood dlogistic, a mixture of discretized logistics".into());
    }
    check_number("beta", args.beta, 0.0, true)?;
    check_number("kl-warmup", args.kl_warmup, 0.0, true)?;
    if let Some(c) = args.clip_norm {
        check_number("clip-norm", c, 0.0, false)?;
    }
    if let Some(e) = args.adam_eps {
        check_number("adam-eps", e, 0.0, false)?;
    }
    if args.objective == ObjectiveKind::Iwae && (args.beta != 1.0 || args.kl_warmup != 0.0) {
        return Err("--objective iwae is the bound on log p(x) itself: it takes no --beta or --kl-warmup".into());
    }
    // Each family checks its own flags.
    let family = args.protocol().family;
    let gaussian_knobs =
        args.objective != ObjectiveKind::Elbo || args.k != 1 || args.beta != 1.0 || args.kl_warmup != 0.0;
    args.vq.check(family == FamilyKind::Vqvae, gaussian_knobs)?;
    args.hvae.check(family == FamilyKind::Hvae, args.model)
}

/// The run in `out`, from its checkpoint; `--lr`, if given, replaces its learning rate.
fn resume(args: &TrainArgs, out: &Path) -> Result<Run> {
    let mut run = Run::resume(out)?;
    say!(
        "resuming {} at epoch {} step {} (its saved settings apply)",
        out.display(),
        run.state.epochs_done + 1,
        run.state.step_in_epoch + 1
    );
    if let Some(lr) = args.lr {
        say!("learning rate {} (was {})", lr, run.settings.lr);
        run.settings.lr = lr;
        run.opt.set_lr(lr);
    }
    Ok(run)
}

/// A new run: the model initialized from the seed (its output bias from the data if asked), a
/// fresh optimizer. Refuses a folder that already holds a run.
fn start(args: &TrainArgs, protocol: &Protocol, settings: Settings, dir: &Path, out: &Path) -> Result<Run> {
    MODEL_RUN.check_fresh(out)?;
    let probe = crate::data::load(dir, &prep(&args.data))?; // fail early, before creating a folder
    say!("data: {}", probe.describe());
    let mut model = model_from_args(args, protocol, &probe.train)?;
    if protocol.output_bias == OutputBias::DataMean {
        check_split(model.as_ref(), &probe.train, dir)?;
        init_output_bias(model.as_mut(), args.likelihood.likelihood(args.sigma, args.mixtures as usize), &probe.train)?;
    }
    Ok(Run { model, opt: settings.optimizer(), settings, state: RunState::default() })
}

/// A model's training as the epoch loop sees it ([`Trainer`]): the run and what every epoch
/// reads.
struct ModelTrainer<'a> {
    run: &'a mut Run,
    train: &'a Split,
    test: &'a Split,
    mode: Binarize,
    out: &'a Path,
    epochs: u64,
}

impl Trainer for ModelTrainer<'_> {
    fn examples(&self) -> usize {
        self.train.len()
    }
    fn batch_size(&self) -> usize {
        self.run.settings.batch_size
    }
    fn seed(&self) -> u64 {
        self.run.settings.seed
    }
    fn epoch_name(&self) -> &'static str {
        "epoch"
    }
    /// The learning rate of the epoch, from the schedule.
    fn start_epoch(&mut self, epoch: u64) {
        let s = &self.run.settings;
        self.run.opt.set_lr(lr_at(s.lr_schedule, s.lr, epoch, s.schedule_epochs));
    }
    /// The batch's images (binarized) and the step's noise both come from the stream (seed,
    /// epoch, step); the KL weight follows the warm-up.
    fn step(&mut self, idx: &[usize], epoch: u64, step: usize, steps: usize) -> Result<Vec<f64>> {
        let s = &self.run.settings;
        let mut rng = stream(s.seed, epoch, step as u64, Purpose::Step);
        let x = self.train.rows(idx, self.mode, &mut rng, self.run.model.classes()); // [x, y] for a cvae
        let knobs = step_settings(s, kl_weight(s.beta, s.kl_warmup, epoch, step, steps));
        let run = &mut *self.run;
        run.model
            .train_step(run.opt.as_mut(), &x, &knobs, &mut rng)
            .map_err(|nf| diverged(&nf, (epoch, step, steps), self.out, run.opt.lr()).into())
    }
    fn show(&self, means: &[f64]) -> String {
        format!(
            "loss {}",
            show(self.run.model.as_ref(), means, &step_settings(&self.run.settings, self.run.settings.beta))
        )
    }
    /// The test pass, the metrics row (the loss and the shown terms of train and test, the test
    /// statistics, the seconds), the family's housekeeping and the pictures.
    fn finish_epoch(&mut self, epoch: u64, train: &Sums, seconds: f64) -> Result<(String, Vec<String>)> {
        let s = self.run.settings.clone();
        let knobs = step_settings(&s, s.beta);
        let train_means = train.means();
        let test = evaluate(self.run.model.as_ref(), self.test, self.mode, &knobs, s.seed, epoch);
        let model = self.run.model.as_ref();
        let mut row = vec![(epoch + 1).to_string()];
        for means in [&train_means, &test.means] {
            row.push(format!("{:.4}", model.loss(means, &knobs)));
            row.extend(shown_values(model, means).iter().map(|v| format!("{v:.4}")));
        }
        row.extend(test.statistics.iter().map(|(_, v)| format!("{v:.4}")));
        row.push(format!("{seconds:.2}"));
        let mut stats: String = test.statistics.iter().map(|(name, v)| format!("  {name} {v:.1}")).collect();
        if crate::eval::counts_bits(model, s.binarize) && s.beta == 1.0 {
            // The test −ELBO bounds −log p(x): in bits per dimension, as papers on images report.
            let bits = crate::eval::bits_per_dim(model.loss(&test.means, &knobs), model);
            stats += &format!("  ≤ {bits:.3} bits/dim");
        }
        let mut lines = vec![format!(
            "epoch {:>3}/{}  train {}  test {}{stats}  {seconds:.1}s",
            epoch + 1,
            self.epochs,
            show(model, &train_means, &knobs),
            show(model, &test.means, &knobs)
        )];
        if s.restart_codes {
            // A batch of training images for the family's housekeeping (the VQ-VAE's dead codes).
            let mut rng = stream(s.seed, epoch, 0, Purpose::Housekeeping);
            let idx: Vec<usize> = (0..self.train.len()).collect();
            let idx: Vec<usize> = idx.choose_multiple(&mut rng, 256.min(idx.len())).copied().collect();
            let x = self.train.rows(&idx, self.mode, &mut rng, model.classes());
            if let Some(note) = self.run.model.after_epoch(&test.counts, &x, &mut rng) {
                lines.push(format!("           {note}"));
            }
        }
        write_pictures(self.run.model.as_ref(), self.test, s.seed, self.out)?;
        Ok((row.join(","), lines))
    }
    fn write_metrics(&self, rows: &[String]) -> Result<()> {
        MODEL_RUN.write_metrics(self.out, &metrics_header(self.run.model.as_ref()), rows)
    }
    fn save(&self, state: &RunState) -> Result<()> {
        self.run.save(self.out, state)
    }
}

/// The step's knobs from the run's settings: the objective, the clipping, the commitment
/// weight, and `kl_weight`, the KL weight of this step (β, or less during a warm-up).
fn step_settings(s: &Settings, kl_weight: f32) -> StepSettings {
    StepSettings { objective: s.objective(), kl_weight, commitment: s.commitment, clip: s.clip_norm }
}

/// The shown terms' values among a family's term means.
fn shown_values(model: &dyn Family, means: &[f64]) -> Vec<f64> {
    let at = |name: &&str| model.terms().iter().position(|t| t == name).map_or(0.0, |i| means[i]);
    model.shown().iter().map(at).collect()
}

/// The message of a step whose loss or gradient was not finite, at (epoch, step, steps).
fn diverged(nf: &NonFinite, (epoch, step, steps): (u64, usize, usize), out: &Path, lr: f32) -> String {
    let what = match &nf.param {
        None => format!("the loss is {}", nf.loss),
        Some(p) => format!("the gradient of {p} is not finite"),
    };
    let kept = if out.join(CHECKPOINT).exists() {
        format!("the last good checkpoint in {} is intact; resume it", out.display())
    } else {
        "no checkpoint had been written yet; start again".to_string()
    };
    format!(
        "training diverged at epoch {} step {} of {steps}: {what}. Nothing was saved from this step: {kept} \
         with a lower --lr (now {lr}), or add --clip-norm 100",
        epoch + 1,
        step + 1,
    )
}

/// `loss (recon …, kl …)` with two decimals: the loss and the family's shown terms.
fn show(model: &dyn Family, means: &[f64], s: &StepSettings) -> String {
    let terms: Vec<String> =
        model.shown().iter().zip(shown_values(model, means)).map(|(name, v)| format!("{name} {v:.2}")).collect();
    format!("{:.2} ({})", model.loss(means, s), terms.join(", "))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    /// Over 3,280 epochs, stage i lasts 3^i epochs at 1e-3·10^(−i/7): the paper's schedule.
    #[test]
    fn the_burda_schedule_has_the_papers_stages() {
        let lrs: Vec<f32> = (0..3280).map(|e| lr_at(LrScheduleKind::Burda, 1e-3, e, 3280)).collect();
        let stage_lr = |i: u32| (1e-3f32 as f64 * 10f64.powf(-(i as f64) / 7.0)) as f32;
        let mut start = 0;
        for i in 0..8u32 {
            let len = 3usize.pow(i);
            let want = stage_lr(i);
            assert!(lrs[start..start + len].iter().all(|&lr| lr == want), "stage {i}");
            start += len;
        }
        assert_eq!(start, 3280);
        // Compressed onto 27 epochs: never rising, from stage 4 (the midpoint of the first
        // epoch lies 60.7 epochs into the full schedule, past stages 0–3's 40) down to stage 7.
        let short: Vec<f32> = (0..27).map(|e| lr_at(LrScheduleKind::Burda, 1e-3, e, 27)).collect();
        assert!(short.windows(2).all(|w| w[1] <= w[0]));
        assert_eq!((short[0], short[26]), (stage_lr(4), stage_lr(7)));
        assert_eq!(lr_at(LrScheduleKind::Constant, 3e-4, 5, 27), 3e-4);
    }

    /// The output bias starts at the logit of each pixel's mean (clipped away from 0 and 1).
    #[test]
    fn the_output_bias_starts_at_the_logit_of_the_pixel_means() {
        // Two 1×2 images: pixel 0 is 255 then 0 (mean ½), pixel 1 always 0 (clipped to 0.001).
        let train = Split { images: vec![255, 0, 0, 0], labels: vec![0, 1], channels: 1, rows: 1, cols: 2 };
        let config =
            VaeConfig { arch: Arch::Mlp { hidden: vec![3] }, input: [1, 1, 2], latent: 1, ..VaeConfig::mlp_mnist() };
        let mut model = Vae::new(config, &mut StdRng::seed_from_u64(0)).unwrap();
        init_output_bias(&mut model, Likelihood::Bernoulli, &train).unwrap();
        let bias = model.params.get(model.params.find("dec_out.bias").unwrap());
        assert_eq!(bias[[0]], 0.0);
        assert!((bias[[1]] - (0.001f32 / 0.999).ln()).abs() < 1e-6);
    }

    fn settings(args: &[&str]) -> Settings {
        /// `vae-cli train` with only its flags.
        #[derive(clap::Parser)]
        struct Train {
            #[command(flatten)]
            args: TrainArgs,
        }
        let a = <Train as clap::Parser>::try_parse_from([&["train"], args].concat()).unwrap().args;
        settings_from_args(&a, &a.protocol())
    }

    /// A process that keeps the data it read (the playground) gives every run the same
    /// splits as reading the files afresh, limited and binarized alike.
    #[test]
    fn kept_data_gives_the_same_splits_as_fresh_data() {
        let dir = data_dir(&DataArgs::default());
        let s = settings(&["--train-limit", "300", "--test-limit", "200", "--binarize", "static"]);
        let (train, test, mode) = prepare_data(&dir, &Prep::default(), &s).unwrap();
        crate::data::keep_loaded();
        for _ in 0..2 {
            let (kept_train, kept_test, kept_mode) = prepare_data(&dir, &Prep::default(), &s).unwrap();
            assert_eq!((kept_train.images, kept_train.labels), (train.images.clone(), train.labels.clone()));
            assert_eq!((kept_test.images, kept_test.labels), (test.images.clone(), test.labels.clone()));
            assert_eq!(kept_mode, mode);
        }
        assert_eq!(train.len(), 300);
    }

    #[test]
    fn settings_survive_their_metadata_form() {
        for args in [
            vec![],
            vec!["--preset", "burda", "--objective", "iwae", "--k", "5", "--clip-norm", "100"],
            vec!["--family", "vqvae", "--keep-dead-codes", "--lr", "3e-4", "--train-limit", "123"],
        ] {
            let s = settings(&args);
            assert_eq!(Settings::from_metadata(&s.to_metadata()).unwrap(), s, "{args:?}");
        }
    }

    /// Rates and weights go through JSON numbers (f64) on their way back to f32: every f32's
    /// shortest decimal form comes back as the same f32.
    #[test]
    fn f32_values_come_back_bit_for_bit() {
        let mut s = settings(&[]);
        let mut x: u32 = 0x3a83_126f; // 1e-3, then a scramble of bit patterns
        for _ in 0..200_000 {
            x = x.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
            let v = f32::from_bits(x & 0x7f7f_ffff); // finite, positive
            s.lr = v;
            assert_eq!(Settings::from_metadata(&s.to_metadata()).unwrap().lr.to_bits(), v.to_bits(), "{v:e}");
        }
    }
}
