//! `vae-cli train`: its flags, the recipe they describe, and the reports of a run. The run
//! itself (the model from the recipe, the epochs, the schedule, the warm-up, the checkpoints
//! and metrics) is the library's, `vae::run`: this file turns flags into a
//! [`vae::run::Recipe`] and shows what the run reports (a progress bar, a line per epoch, the
//! pictures).

use std::path::{Path, PathBuf};

use clap::Args;
use vae::data::Split;
use vae::objective::Objective;
use vae::run::files::{CHECKPOINT, MODEL, MODEL_RUN};
use vae::run::{check_split, Control, Recipe, Run, Watch};
use vae::{Activation, Family};

use crate::data::{data_dir, prep, prepare_data};
use crate::family_hvae::HvaeFlags;
use crate::family_vqvae::VqFlags;
use crate::interrupt;
use crate::options::{
    check_number, enum_name, ActivationKind, BinarizeKind, DataArgs, FamilyKind, FlowChoice, LikelihoodKind,
    LrScheduleKind, ModelKind, ObjectiveKind, OptimizerKind, OutputBias, Preset, PriorChoice, Result,
};
use crate::pictures::write_pictures;
use crate::progress::Progress;
use crate::say::say;

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
    /// Feature maps of each level of --model resnet, comma-separated [default: 16,32,32].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub feature_maps: Option<Vec<u64>>,
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
    /// The prior p(z) (--family vae).
    #[arg(long, value_enum, default_value_t = PriorChoice::Normal)]
    pub prior: PriorChoice,
    /// Pseudo-inputs K of the VampPrior [default: 500, Tomczak & Welling's].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub pseudo_inputs: Option<u64>,
    /// A flow on q(z|x)'s sample (--family vae or cvae).
    #[arg(long, value_enum, default_value_t = FlowChoice::None)]
    pub flow: FlowChoice,
    /// Steps of the flow [default: 2].
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub flow_depth: Option<u64>,
    /// Hidden units of each flow step's MADE [default: 320].
    #[arg(long, value_name = "W", value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub flow_width: Option<u64>,
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
    /// Polyak averaging: keep a running average of the weights, θ̄ ← d·θ̄ + (1 − d)·θ after
    /// every step, with this decay d in [0, 1) (0.999 in Kingma et al.'s IAF code). The test
    /// pass, the pictures and model.safetensors then use the average; training goes on with the
    /// weights themselves, kept in checkpoint.safetensors (off by default).
    #[arg(long, value_name = "DECAY", allow_negative_numbers = true)]
    pub polyak: Option<f32>,
    /// Free bits (Kingma et al. 2016): charge each latent unit's KL, averaged over the batch,
    /// at least this many nats, so that training leaves a unit alone below it (0.25 in their
    /// code). Training only: the reported KL and the test pass are the true ELBO's. For
    /// --family vae or cvae with --prior normal and --objective elbo (off by default).
    #[arg(long, value_name = "NATS", allow_negative_numbers = true)]
    pub free_bits: Option<f32>,
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
    /// A hook for tests: stop halfway through the N-th write of the run's file NAME
    /// (`checkpoint.safetensors:2`), say so on standard output and wait there, so that a test
    /// kills the run in the middle of a write.
    #[arg(long, value_name = "NAME:N", hide = true, value_parser = parse_pause_in_write)]
    pub pause_in_write: Option<(String, usize)>,
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

impl TrainArgs {
    /// The recipe the flags describe: the preset's (PyTorch's example without one), each piece
    /// replaced by its own flag where given.
    pub fn recipe(&self) -> Recipe {
        let base = self.preset.map_or_else(Recipe::default, Recipe::preset);
        let mut r = base.with_likelihood(self.likelihood.likelihood(self.sigma, self.mixtures as usize));
        let widths = |v: &Vec<u64>| v.iter().map(|&w| w as usize).collect::<Vec<usize>>();
        r.family = self.family.unwrap_or(r.family);
        r.model = self.model;
        r.hidden = self.hidden.as_ref().map_or(r.hidden, widths);
        r.feature_maps = self.feature_maps.as_ref().map_or(r.feature_maps, widths);
        r.latent = self.latent_dim.map_or(r.latent, |j| j as usize);
        r.upper_latent = self.hvae.upper_latent.as_ref().map_or(r.upper_latent, widths);
        r.upper_hidden = self.hvae.upper_hidden.as_ref().map_or(r.upper_hidden, widths);
        r.activation = match self.activation {
            Some(ActivationKind::Relu) => Activation::Relu,
            Some(ActivationKind::Tanh) => Activation::Tanh,
            Some(ActivationKind::Elu) => Activation::Elu,
            None => r.activation,
        };
        r.output_bias = self.output_bias.unwrap_or(r.output_bias);
        r.flow = match self.flow {
            FlowChoice::None => None,
            FlowChoice::Iaf => Some(vae::FlowSpec {
                depth: self.flow_depth.unwrap_or(2) as usize,
                width: self.flow_width.unwrap_or(320) as usize,
            }),
        };
        r.prior = match self.prior {
            PriorChoice::Normal => vae::PriorKind::Normal,
            PriorChoice::Vamp => vae::PriorKind::Vamp { components: self.pseudo_inputs.unwrap_or(500) as usize },
        };
        r.vq = self.vq.sizes();
        let s = &mut r.settings;
        s.seed = self.seed;
        s.lr = self.lr.unwrap_or(s.lr);
        s.optimizer = self.optimizer;
        s.binarize = self.binarize.unwrap_or(s.binarize);
        s.kl_warmup = self.kl_warmup;
        s.clip_norm = self.clip_norm;
        s.train_limit = self.train_limit.map(|n| n as usize);
        s.test_limit = self.test_limit.map(|n| n as usize);
        s.objective = self.objective;
        s.k = self.k as usize;
        s.beta = self.beta;
        s.commitment = self.vq.commitment;
        s.restart_codes = !self.vq.keep_dead_codes;
        s.lr_schedule = self.lr_schedule.unwrap_or(s.lr_schedule);
        s.adam_eps = self.adam_eps.unwrap_or(s.adam_eps);
        s.batch_size = self.batch_size.map_or(s.batch_size, |b| b as usize);
        s.epochs = self.epochs.unwrap_or(s.epochs);
        s.schedule_epochs = self.schedule_epochs.unwrap_or(s.epochs);
        s.test_fraction = self.data.test_fraction.unwrap_or(s.test_fraction);
        s.image_size = self.data.image_size;
        s.channels = self.data.channels;
        s.polyak = self.polyak;
        s.free_bits = self.free_bits;
        r
    }
}

/// The default run folder: `runs/<model>-z<latent>-seed<seed>` (`<family>-` before it for
/// any family but the plain VAE; with `-<objective>-k<K>`
/// for any objective but the one-sample ELBO), and `-2`, `-3`, … if taken.
pub fn default_out(r: &Recipe) -> PathBuf {
    let latents: Vec<String> =
        std::iter::once(r.latent).chain(r.upper_latent.iter().copied()).map(|j| j.to_string()).collect();
    let mut base = format!("{}-z{}-seed{}", enum_name(r.model), latents.join("-"), r.settings.seed);
    if r.family != FamilyKind::Vae {
        base = format!("{}-{base}", enum_name(r.family));
    }
    let objective = r.settings.objective();
    if objective != Objective::default() {
        base.push_str(&format!("-{}-k{}", objective.name(), objective.k()));
    }
    let runs = Path::new("runs");
    (1..)
        .map(|i| if i == 1 { runs.join(&base) } else { runs.join(format!("{base}-{i}")) })
        .find(|p| !p.exists())
        .expect("an unused name")
}

/// `NAME:N` of `--pause-in-write`.
fn parse_pause_in_write(s: &str) -> std::result::Result<(String, usize), String> {
    let (name, n) = s.rsplit_once(':').ok_or("expected NAME:N")?;
    Ok((name.to_string(), n.parse().map_err(|_| format!("{n:?} is not a whole number"))?))
}

/// `vae-cli train`: Ctrl-C stops it.
pub fn run(args: TrainArgs) -> Result<()> {
    interrupt::install();
    if let Some(n) = args.pause_at_step {
        interrupt::control().pause_at_step(n);
    }
    if let Some((name, n)) = &args.pause_in_write {
        vae::atomic::pause_in_write(name, *n);
    }
    run_controlled(args, interrupt::control())
}

/// Trains as `vae-cli train` does, pausing and stopping as `control` says (the playground's
/// runs each have their own).
pub fn run_controlled(args: TrainArgs, control: &Control) -> Result<()> {
    check_flags(&args)?;
    let recipe = args.recipe();
    let dir = data_dir(&args.data);
    let out = args.out.clone().unwrap_or_else(|| default_out(&recipe));
    let mut run = if args.resume { resume(&args, &out)? } else { start(&args, &recipe, &dir, &out)? };
    // A resumed run goes on to its planned epochs unless --epochs says otherwise.
    let epochs = if args.resume { args.epochs.unwrap_or(run.settings.epochs) } else { recipe.settings.epochs };
    // The run's own preparation of the data (a resumed run keeps what it started with).
    let s = &run.settings;
    let prep = vae::data::Prep {
        image_size: s.image_size,
        channels: s.channels,
        test_fraction: s.test_fraction,
        ..prep(&args.data)
    };
    let data = prepare_data(&dir, &prep, &run)?;
    check_split(run.model.as_ref(), &data.train, &dir)?;
    check_split(run.model.as_ref(), &data.test, &dir)?;
    let steps = data.train.len().div_ceil(run.settings.batch_size);
    let objective = run.model.describe_knobs(&vae::run::step_settings(&run.settings, run.settings.beta));
    let buffers = run.model.buffer_scalars();
    let sizes = match buffers {
        0 => format!("{} parameters", run.model.params().num_scalars()),
        b => format!("{} parameters and {b} buffer values", run.model.params().num_scalars() - b),
    };
    say!(
        "training {} ({sizes}, {objective}) on {} images from {}; {} steps per epoch; run folder {}",
        run.model.describe(),
        data.train.len(),
        dir.display(),
        steps,
        out.display()
    );
    let mut watch = Reports { bar: None, seed: run.settings.seed, out: &out };
    if let Some(at) = run.fit(&data, &out, epochs, control, &mut watch)? {
        say!("interrupted {at}. Continue with: vae-cli train --resume --out {}", out.display());
        return Ok(());
    }
    say!("done: {} holds {MODEL}, {CHECKPOINT}, metrics.csv, samples.png, reconstructions.png", out.display());
    Ok(())
}

/// What the command line shows of a run: a progress bar on a terminal, a line per epoch, and
/// samples.png and reconstructions.png in the run folder after every epoch.
pub struct Reports<'a> {
    /// The bar of the epoch in progress.
    pub bar: Option<Progress>,
    /// The seed of the pictures' fixed latents.
    pub seed: u64,
    /// The run folder.
    pub out: &'a Path,
}

impl Watch for Reports<'_> {
    fn epoch_begins(&mut self, label: &str, steps: usize, done: usize) {
        let bar = Progress::new(steps as u64, label.to_string());
        bar.skip(done as u64);
        self.bar = Some(bar);
    }
    fn step_taken(&mut self, means: &dyn Fn() -> String) {
        if let Some(bar) = &self.bar {
            bar.step(means);
        }
    }
    fn steps_end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
    fn report(&mut self, lines: &[String]) {
        for line in lines {
            say!("{line}");
        }
    }
    fn pictures(&mut self, model: &dyn Family, test: &Split) -> std::result::Result<(), vae::Error> {
        write_pictures(model, test, self.seed, self.out).map_err(|e| vae::Error::run(e.to_string()))
    }
}

/// The numeric flags clap cannot check, and the combinations that make no sense.
pub fn check_flags(args: &TrainArgs) -> Result<()> {
    if let Some(lr) = args.lr {
        check_number("lr", lr, 0.0, false)?;
    }
    check_number("sigma", args.sigma, 0.0, false)?;
    if (args.flow_depth.is_some() || args.flow_width.is_some()) && args.flow != FlowChoice::Iaf {
        return Err("--flow-depth and --flow-width are for --flow iaf".into());
    }
    if args.feature_maps.is_some() && args.model != ModelKind::Resnet {
        return Err("--feature-maps is for --model resnet".into());
    }
    if args.pseudo_inputs.is_some() && args.prior != PriorChoice::Vamp {
        return Err("--pseudo-inputs is for --prior vamp".into());
    }
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
    if let Some(l) = args.free_bits {
        check_number("free-bits", l, 0.0, false)?;
    }
    if let Some(d) = args.polyak {
        if !(0.0..1.0).contains(&d) {
            return Err(format!("--polyak must be a decay in [0, 1), such as 0.999, found {d}").into());
        }
    }
    if args.objective == ObjectiveKind::Iwae && (args.beta != 1.0 || args.kl_warmup != 0.0) {
        return Err("--objective iwae is the bound on log p(x) itself: it takes no --beta or --kl-warmup".into());
    }
    // Each family checks its own flags.
    let family = args.family.unwrap_or(args.preset.map_or_else(Recipe::default, Recipe::preset).family);
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
        run.set_lr(lr);
    }
    Ok(run)
}

/// A new run of the recipe, the model for the data in `dir`. Refuses a folder that already
/// holds a run, and reads the data before creating anything.
fn start(args: &TrainArgs, recipe: &Recipe, dir: &Path, out: &Path) -> Result<Run> {
    MODEL_RUN.check_fresh(out)?;
    recipe.check_parts()?; // before reading the data
    let probe = crate::data::load(dir, &prep(&args.data))?; // fail early, before creating a folder
    say!("data: {}", probe.describe());
    let run = Run::start(recipe, &probe.train)?;
    check_split(run.model.as_ref(), &probe.train, dir)?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use vae::data::Prep;
    use vae::run::Settings;

    use super::*;

    fn settings(args: &[&str]) -> Settings {
        /// `vae-cli train` with only its flags.
        #[derive(clap::Parser)]
        struct Train {
            #[command(flatten)]
            args: TrainArgs,
        }
        let a = <Train as clap::Parser>::try_parse_from([&["train"], args].concat()).unwrap().args;
        a.recipe().settings
    }

    /// A process that keeps the data it read (the playground) gives every run the same
    /// splits as reading the files afresh, limited and binarized alike.
    #[test]
    fn kept_data_gives_the_same_splits_as_fresh_data() {
        let dir = data_dir(&DataArgs::default());
        let s = settings(&["--train-limit", "300", "--test-limit", "200", "--binarize", "static"]);
        let recipe = Recipe { settings: s, ..Recipe::default() };
        let probe = crate::data::load(&dir, &Prep::default()).unwrap();
        let run = Run::start(&recipe, &probe.train).unwrap();
        let fresh = prepare_data(&dir, &Prep::default(), &run).unwrap();
        crate::data::keep_loaded();
        for _ in 0..2 {
            let kept = prepare_data(&dir, &Prep::default(), &run).unwrap();
            assert_eq!((&kept.train.images, &kept.train.labels), (&fresh.train.images, &fresh.train.labels));
            assert_eq!((&kept.test.images, &kept.test.labels), (&fresh.test.images, &fresh.test.labels));
            assert_eq!(kept.mode, fresh.mode);
        }
        assert_eq!(fresh.train.len(), 300);
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
