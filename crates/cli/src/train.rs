//! `vae-cli train`: the training loop, per-epoch evaluation, run folder and resume.
//!
//! Every random choice comes from its own stream, seeded by (seed, epoch, step, purpose):
//! the shuffle of an epoch, the noise and binarization of a step, the noise of a test pass.
//! Nothing depends on how many steps ran before in this process, so a run resumed from its
//! checkpoint produces exactly the numbers of an uninterrupted one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use vae::checkpoint;
use vae::data::{Binarize, Dataset, Split};
use vae::model::standard_normal;
use vae::objective::Objective;
use vae::train::{evaluate_split, train_step_objective, Terms, Totals};
use vae::{Activation, Arch, Likelihood, Vae, VaeConfig};
use vae_layers::optim::{Adagrad, Adam, Optimizer, Sgd};

use crate::commands::{
    check_image_size, check_number, data_dir, ActivationKind, BinarizeKind, LikelihoodKind, LrScheduleKind, ModelKind,
    ObjectiveKind, OptimizerKind, OutputBias, Protocol, Result, TrainArgs,
};
use crate::image;
use crate::progress::Progress;

/// The learning rate when --lr is not given (PyTorch's example).
pub const DEFAULT_LR: f32 = 1e-3;

/// Set by Ctrl-C: the training loop saves a checkpoint after the current step and stops.
static STOP: AtomicBool = AtomicBool::new(false);

/// The first Ctrl-C asks training to stop after the current step; a second one exits at once
/// (files are written atomically, so nothing is left half-written either way).
fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving a checkpoint after this step (Ctrl-C again to quit at once)");
    });
}

/// Header of `metrics.csv`.
pub const METRICS_HEADER: &str = "epoch,train_loss,train_recon,train_kl,test_loss,test_recon,test_kl,seconds";

/// What each random stream is for.
#[derive(Clone, Copy)]
pub enum Purpose {
    /// Parameter initialization.
    Init = 1,
    /// The order of an epoch.
    Shuffle = 2,
    /// Noise and binarization of one training step.
    Step = 3,
    /// Noise of the test pass.
    Test = 4,
    /// Static binarization of the data.
    Binarize = 5,
    /// The fixed latents of the sample pictures.
    Pictures = 6,
}

/// SplitMix64's finalizer: spreads nearby integers over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The random stream for (seed, epoch, step, purpose).
pub fn stream(seed: u64, epoch: u64, step: u64, purpose: Purpose) -> StdRng {
    StdRng::seed_from_u64(mix(mix(mix(mix(seed) ^ purpose as u64) ^ epoch) ^ step))
}

/// The training settings a run keeps in its checkpoint, so that `--resume` continues with them.
#[derive(Clone, Debug, PartialEq)]
struct Settings {
    seed: u64,
    batch_size: usize,
    lr: f32,
    optimizer: OptimizerKind,
    binarize: BinarizeKind,
    kl_warmup: f32,
    clip_norm: Option<f32>,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
    objective: Objective,
    /// The KL weight β of the ELBO objective.
    beta: f32,
    lr_schedule: LrScheduleKind,
    adam_eps: f32,
    /// The run's planned epochs: the length the learning-rate schedule spans.
    epochs: u64,
}

fn enum_name<T: clap::ValueEnum>(v: T) -> String {
    v.to_possible_value().expect("no skipped variants").get_name().to_string()
}

impl Settings {
    fn from_args(a: &TrainArgs, p: &Protocol) -> Self {
        let objective = match a.objective {
            ObjectiveKind::Elbo => Objective::Elbo { k: a.k as usize },
            ObjectiveKind::Iwae => Objective::Iwae { k: a.k as usize },
        };
        Self {
            seed: a.seed,
            batch_size: p.batch_size,
            lr: a.lr.unwrap_or(DEFAULT_LR),
            optimizer: a.optimizer,
            binarize: p.binarize,
            kl_warmup: a.kl_warmup,
            clip_norm: a.clip_norm,
            train_limit: a.train_limit.map(|n| n as usize),
            test_limit: a.test_limit.map(|n| n as usize),
            objective,
            beta: a.beta,
            lr_schedule: p.lr_schedule,
            adam_eps: p.adam_eps,
            epochs: p.epochs,
        }
    }

    fn to_metadata(&self) -> HashMap<String, String> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        HashMap::from([
            ("train.seed".into(), self.seed.to_string()),
            ("train.batch_size".into(), self.batch_size.to_string()),
            ("train.lr".into(), self.lr.to_string()),
            ("train.optimizer".into(), enum_name(self.optimizer)),
            ("train.binarize".into(), enum_name(self.binarize)),
            ("train.kl_warmup".into(), self.kl_warmup.to_string()),
            ("train.clip_norm".into(), opt(self.clip_norm.map(|v| v.to_string()))),
            ("train.train_limit".into(), opt(self.train_limit.map(|v| v.to_string()))),
            ("train.test_limit".into(), opt(self.test_limit.map(|v| v.to_string()))),
            ("train.objective".into(), self.objective.name().into()),
            ("train.k".into(), self.objective.k().to_string()),
            ("train.beta".into(), self.beta.to_string()),
            ("train.lr_schedule".into(), enum_name(self.lr_schedule)),
            ("train.adam_eps".into(), self.adam_eps.to_string()),
            ("train.epochs".into(), self.epochs.to_string()),
        ])
    }

    fn from_metadata(m: &HashMap<String, String>) -> std::result::Result<Self, String> {
        let get = |k: &str| m.get(&format!("train.{k}")).ok_or(format!("the checkpoint has no training setting {k:?}"));
        fn parse<T: std::str::FromStr>(k: &str, v: &str) -> std::result::Result<T, String> {
            v.parse().map_err(|_| format!("training setting {k:?} = {v:?} is malformed"))
        }
        let optional = |k: &str| -> std::result::Result<Option<String>, String> {
            let v = get(k)?;
            Ok((!v.is_empty()).then(|| v.clone()))
        };
        let value_enum = |k: &str| -> std::result::Result<String, String> { get(k).cloned() };
        // Keys added with the IWAE objective; checkpoints written before them hold the plain
        // protocol (the one-sample ELBO, a constant rate, Adam's ε 1e-8, 10 epochs planned).
        let or = |k: &str, default: &str| m.get(&format!("train.{k}")).cloned().unwrap_or_else(|| default.to_string());
        let k: usize = parse("k", &or("k", "1"))?;
        Ok(Self {
            objective: Objective::parse(&or("objective", "elbo"), k)?,
            // Older files kept β among the model's keys.
            beta: parse("beta", &or("beta", m.get("beta").map_or("1", String::as_str)))?,
            lr_schedule: LrScheduleKind::from_str(&or("lr_schedule", "constant"), false)?,
            adam_eps: parse("adam_eps", &or("adam_eps", "1e-8"))?,
            epochs: parse("epochs", &or("epochs", "10"))?,
            seed: parse("seed", get("seed")?)?,
            batch_size: parse("batch_size", get("batch_size")?)?,
            lr: parse("lr", get("lr")?)?,
            optimizer: OptimizerKind::from_str(&value_enum("optimizer")?, false)?,
            binarize: BinarizeKind::from_str(&value_enum("binarize")?, false)?,
            kl_warmup: parse("kl_warmup", get("kl_warmup")?)?,
            clip_norm: optional("clip_norm")?.map(|v| parse("clip_norm", &v)).transpose()?,
            train_limit: optional("train_limit")?.map(|v| parse("train_limit", &v)).transpose()?,
            test_limit: optional("test_limit")?.map(|v| parse("test_limit", &v)).transpose()?,
        })
    }

    fn optimizer(&self) -> Box<dyn Optimizer> {
        match self.optimizer {
            OptimizerKind::Adam => {
                let mut adam = Adam::new(self.lr);
                adam.eps = self.adam_eps;
                Box::new(adam)
            }
            OptimizerKind::Sgd => Box::new(Sgd::new(self.lr, 0.9)),
            OptimizerKind::Adagrad => Box::new(Adagrad::new(self.lr)),
        }
    }
}

/// A run in progress: model, optimizer, settings and finished epochs.
struct Run {
    model: Vae,
    opt: Box<dyn Optimizer>,
    settings: Settings,
    epochs_done: u64,
    /// metrics.csv rows of the finished epochs (no header).
    metrics: Vec<String>,
    /// Steps of epoch `epochs_done` already taken (non-zero after an interruption).
    step_in_epoch: usize,
    /// Loss sums of those steps.
    partial: Totals,
    /// Seconds spent on those steps.
    partial_seconds: f64,
}

const CHECKPOINT: &str = "checkpoint.safetensors";
const MODEL: &str = "model.safetensors";

impl Run {
    /// Saves the model alone, then the full checkpoint (model, optimizer state, settings,
    /// metrics), each atomically.
    fn save(&self, out: &Path) -> Result<()> {
        checkpoint::save(&out.join(MODEL), &self.model, &[], &HashMap::new())?;
        let (steps, state) = self.opt.state();
        let state = checkpoint::optimizer_state_to_file(&self.model, state);
        let mut meta = self.settings.to_metadata();
        meta.insert("train.epochs_done".into(), self.epochs_done.to_string());
        meta.insert("train.optimizer_steps".into(), steps.to_string());
        meta.insert("train.metrics".into(), self.metrics.join("\n"));
        // `{:?}` prints the shortest decimal that parses back to the same f64.
        meta.insert("train.step_in_epoch".into(), self.step_in_epoch.to_string());
        meta.insert("train.partial_recon".into(), format!("{:?}", self.partial.recon));
        meta.insert("train.partial_kl".into(), format!("{:?}", self.partial.kl));
        meta.insert("train.partial_gain".into(), format!("{:?}", self.partial.gain));
        meta.insert("train.partial_count".into(), self.partial.count.to_string());
        meta.insert("train.partial_seconds".into(), format!("{:?}", self.partial_seconds));
        checkpoint::save(&out.join(CHECKPOINT), &self.model, &state, &meta)?;
        Ok(())
    }

    /// Reads the checkpoint of the run in `out`.
    fn resume(out: &Path) -> Result<Self> {
        let path = out.join(CHECKPOINT);
        if !path.is_file() {
            return Err(format!(
                "--resume: there is no {CHECKPOINT} in {} to resume; start a new run without --resume",
                out.display()
            )
            .into());
        }
        let loaded = checkpoint::load(&path)?;
        let bad = |m: String| format!("{}: {m}", path.display());
        let settings = Settings::from_metadata(&loaded.metadata).map_err(bad)?;
        let num = |k: &str| -> std::result::Result<u64, String> {
            loaded.metadata.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| bad(format!("missing or malformed {k}")))
        };
        let (epochs_done, steps) = (num("train.epochs_done")?, num("train.optimizer_steps")?);
        let mut opt = settings.optimizer();
        let state = checkpoint::optimizer_state_from_file(&loaded.model, loaded.extra);
        opt.load_state(steps, state, loaded.model.params.values()).map_err(bad)?;
        let metrics = loaded.metadata.get("train.metrics").map_or(vec![], |m| m.lines().map(String::from).collect());
        let float = |k: &str| -> std::result::Result<f64, String> {
            loaded.metadata.get(k).map_or(Ok(0.0), |v| v.parse().map_err(|_| bad(format!("malformed {k}"))))
        };
        let partial = Totals {
            recon: float("train.partial_recon")?,
            kl: float("train.partial_kl")?,
            gain: float("train.partial_gain")?,
            count: float("train.partial_count")? as usize,
        };
        let step_in_epoch = float("train.step_in_epoch")? as usize;
        let partial_seconds = float("train.partial_seconds")?;
        Ok(Self { model: loaded.model, opt, settings, epochs_done, metrics, step_in_epoch, partial, partial_seconds })
    }
}

/// The model configuration the flags describe, for images of `rows`×`cols`.
fn config_from_args(a: &TrainArgs, p: &Protocol, rows: usize, cols: usize) -> Result<VaeConfig> {
    let base = match a.model {
        ModelKind::Mlp => VaeConfig { arch: Arch::Mlp { hidden: p.hidden.clone() }, ..VaeConfig::mlp_mnist() },
        ModelKind::Conv => VaeConfig::conv_mnist(),
    };
    let likelihood = match a.likelihood {
        LikelihoodKind::Bernoulli => Likelihood::Bernoulli,
        LikelihoodKind::Gaussian => Likelihood::Gaussian { sigma: a.sigma },
    };
    let activation = match p.activation {
        ActivationKind::Relu => Activation::Relu,
        ActivationKind::Tanh => Activation::Tanh,
    };
    let config = VaeConfig { input: [1, rows, cols], latent: p.latent, activation, likelihood, ..base };
    config.validate()?;
    Ok(config)
}

/// The default run folder: `runs/<model>-z<latent>-seed<seed>` (with `-<objective>-k<K>`
/// for any objective but the one-sample ELBO), and `-2`, `-3`, … if taken.
fn default_out(a: &TrainArgs, p: &Protocol, objective: Objective) -> PathBuf {
    let mut base = format!("{}-z{}-seed{}", enum_name(a.model), p.latent, a.seed);
    if objective != Objective::default() {
        base.push_str(&format!("-{}-k{}", objective.name(), objective.k()));
    }
    let runs = Path::new("runs");
    (1..)
        .map(|i| if i == 1 { runs.join(&base) } else { runs.join(format!("{base}-{i}")) })
        .find(|p| !p.exists())
        .expect("an unused name")
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

/// Sets the decoder's output bias to the logit of each pixel's mean over `train` (clipped to
/// [0.001, 0.999]), as Burda et al. initialize it; for a Gaussian decoder, to the mean itself.
fn init_output_bias(model: &mut Vae, train: &Split) {
    let mean = train.pixel_mean();
    let bias: Vec<f32> = match model.config.likelihood {
        Likelihood::Bernoulli => mean
            .iter()
            .map(|&m| {
                let m = m.clamp(1e-3, 1.0 - 1e-3);
                (m / (1.0 - m)).ln()
            })
            .collect(),
        Likelihood::Gaussian { .. } => mean,
    };
    model.set_output_bias(&bias);
}

/// The KL weight at a step: a linear ramp from 0 to β over `warmup` epochs, then β.
fn kl_weight(beta: f32, warmup: f32, epoch: u64, step: usize, steps: usize) -> f32 {
    if warmup <= 0.0 {
        return beta;
    }
    let progress = (epoch as f32 + step as f32 / steps as f32) / warmup;
    beta * progress.min(1.0)
}

/// The data, limited and binarized as the settings say; the mode for batches.
fn prepare_data(dir: &Path, s: &Settings) -> Result<(Split, Split, Binarize)> {
    let data = Dataset::load(dir)?;
    let (mut train, mut test) = (data.train, data.test);
    if let Some(n) = s.train_limit {
        train = train.truncated(n);
    }
    if let Some(n) = s.test_limit {
        test = test.truncated(n);
    }
    let mode = match s.binarize {
        BinarizeKind::None => Binarize::None,
        BinarizeKind::Dynamic => Binarize::Dynamic,
        BinarizeKind::Static => {
            train = train.binarized(&mut stream(s.seed, 0, 0, Purpose::Binarize));
            test = test.binarized(&mut stream(s.seed, 1, 0, Purpose::Binarize));
            Binarize::None
        }
    };
    Ok((train, test, mode))
}

/// The objective's loss per image over a split (recon + β·kl, the negative ELBO at β = 1; or
/// −L_K for the IWAE), with z sampled from q(z|x): chunk c of the split draws from the stream
/// (seed, epoch, c, test), so the numbers are the same on any number of threads.
pub fn evaluate(
    model: &Vae,
    split: &Split,
    mode: Binarize,
    (objective, beta): (Objective, f32),
    seed: u64,
    epoch: u64,
) -> Terms {
    let totals = evaluate_split(model, split, mode, objective, |c| stream(seed, epoch, c, Purpose::Test));
    totals.mean(beta)
}

/// Writes samples.png (8×8 prior samples) and reconstructions.png (8 test images above their
/// reconstructions).
pub fn write_pictures(model: &Vae, test: &Split, seed: u64, out: &Path) -> Result<()> {
    let (h, w) = (test.rows, test.cols);
    let z = standard_normal(&[64, model.config.latent], &mut stream(seed, 0, 0, Purpose::Pictures));
    image::grid(&model.decode_mean(z), 8, 8, h, w).save(&out.join("samples.png"))?;
    let idx: Vec<usize> = (0..8.min(test.len())).collect();
    let x = test.batch(&idx, Binarize::None, &mut stream(seed, 0, 1, Purpose::Pictures));
    let recon = model.reconstruct(x.clone());
    let both = ndarray::concatenate(ndarray::Axis(0), &[x.view(), recon.view()]).expect("same widths");
    image::grid(&both, 2, idx.len(), h, w).save(&out.join("reconstructions.png"))?;
    Ok(())
}

/// `vae-cli train`.
pub fn run(args: TrainArgs) -> Result<()> {
    if let Some(lr) = args.lr {
        check_number("lr", lr, 0.0, false)?;
    }
    check_number("sigma", args.sigma, 0.0, false)?;
    check_number("beta", args.beta, 0.0, true)?;
    check_number("kl-warmup", args.kl_warmup, 0.0, true)?;
    if let Some(c) = args.clip_norm {
        check_number("clip-norm", c, 0.0, false)?;
    }
    if let Some(e) = args.adam_eps {
        check_number("adam-eps", e, 0.0, false)?;
    }
    let protocol = args.protocol();
    let fresh = Settings::from_args(&args, &protocol);
    if matches!(fresh.objective, Objective::Iwae { .. }) && (args.beta != 1.0 || args.kl_warmup != 0.0) {
        return Err("--objective iwae is the bound on log p(x) itself: it takes no --beta or --kl-warmup".into());
    }
    let dir = data_dir(&args.data);
    let out = args.out.clone().unwrap_or_else(|| default_out(&args, &protocol, fresh.objective));

    let mut run = if args.resume {
        let mut run = Run::resume(&out)?;
        println!(
            "resuming {} at epoch {} step {} (its saved settings apply)",
            out.display(),
            run.epochs_done + 1,
            run.step_in_epoch + 1
        );
        if let Some(lr) = args.lr {
            println!("learning rate {} (was {})", lr, run.settings.lr);
            run.settings.lr = lr;
            run.opt.set_lr(lr);
        }
        run
    } else {
        if out.join(CHECKPOINT).exists() {
            return Err(format!(
                "{} already holds a run; continue it with --resume, or choose another --out",
                out.display()
            )
            .into());
        }
        let settings = fresh;
        let probe = Dataset::load(&dir)?; // fail early, before creating a folder
        let config = config_from_args(&args, &protocol, probe.train.rows, probe.train.cols)?;
        let mut model = Vae::new(config, &mut stream(args.seed, 0, 0, Purpose::Init))?;
        if protocol.output_bias == OutputBias::DataMean {
            check_image_size(&model, &probe.train, &dir)?;
            init_output_bias(&mut model, &probe.train);
        }
        Run {
            model,
            opt: settings.optimizer(),
            settings,
            epochs_done: 0,
            metrics: vec![],
            step_in_epoch: 0,
            partial: Totals::default(),
            partial_seconds: 0.0,
        }
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create the output folder {}: {e}", out.display()))?;
    let s = run.settings.clone();
    // A resumed run goes on to its planned epochs unless --epochs says otherwise.
    let epochs = if args.resume { args.epochs.unwrap_or(s.epochs) } else { protocol.epochs };
    let (train, test, mode) = prepare_data(&dir, &s)?;
    check_image_size(&run.model, &train, &dir)?;
    if train.is_empty() || test.is_empty() {
        return Err(format!("{}: the training and test sets must not be empty", dir.display()).into());
    }

    let steps = train.len().div_ceil(s.batch_size);
    println!(
        "training {} ({} parameters, objective {} K={}) on {} images from {}; {} steps per epoch; run folder {}",
        describe(&run.model.config),
        run.model.params.num_scalars(),
        s.objective.name(),
        s.objective.k(),
        train.len(),
        dir.display(),
        steps,
        out.display()
    );
    install_interrupt_handler();
    write_metrics(&out, &run.metrics)?;
    for epoch in run.epochs_done..epochs {
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut stream(s.seed, epoch, 0, Purpose::Shuffle));
        let bar = Progress::new(steps as u64, format!("epoch {}/{}", epoch + 1, epochs));
        // After an interruption, the epoch continues where it stopped, with its sums so far.
        let first_step = std::mem::take(&mut run.step_in_epoch);
        let mut totals = std::mem::take(&mut run.partial);
        let seconds_before = std::mem::take(&mut run.partial_seconds);
        bar.skip(first_step as u64);
        run.opt.set_lr(lr_at(s.lr_schedule, s.lr, epoch, s.epochs));
        let k = s.objective.k();
        for (step, idx) in order.chunks(s.batch_size).enumerate().skip(first_step) {
            let mut rng = stream(s.seed, epoch, step as u64, Purpose::Step);
            let x = train.batch(idx, mode, &mut rng);
            // K·n draws, row k·n + i for sample k of example i (n draws for the plain VAE).
            let eps = standard_normal(&[k * idx.len(), run.model.config.latent], &mut rng);
            let beta = kl_weight(s.beta, s.kl_warmup, epoch, step, steps);
            let (model, opt) = (&mut run.model, run.opt.as_mut());
            let terms = train_step_objective(model, opt, &x, eps, s.objective, beta, s.clip_norm).map_err(|nf| {
                bar.finish();
                let what = match &nf.param {
                    None => format!("the loss is {}", nf.terms.loss),
                    Some(p) => format!("the gradient of {p} is not finite"),
                };
                let kept = if out.join(CHECKPOINT).exists() {
                    format!("the last good checkpoint in {} is intact; resume it", out.display())
                } else {
                    "no checkpoint had been written yet; start again".to_string()
                };
                format!(
                    "training diverged at epoch {} step {} of {steps}: {what}. Nothing was saved from this step: {kept} \
                     with a lower --lr (now {}), or add --clip-norm 100",
                    epoch + 1,
                    step + 1,
                    run.opt.lr()
                )
            })?;
            totals.add(&terms, idx.len());
            bar.step(|| format!("loss {}", show(&totals.mean(s.beta))));
            if STOP.load(Ordering::SeqCst) && step + 1 < steps {
                bar.finish();
                run.step_in_epoch = step + 1;
                run.partial = totals;
                run.partial_seconds = seconds_before + t0.elapsed().as_secs_f64();
                run.save(&out)?;
                println!(
                    "interrupted at epoch {} step {} of {steps}; checkpoint saved. Continue with: vae-cli train --resume --out {}",
                    epoch + 1,
                    step + 1,
                    out.display()
                );
                return Ok(());
            }
        }
        bar.finish();
        let train_terms = totals.mean(s.beta);
        let test_terms = evaluate(&run.model, &test, mode, (s.objective, s.beta), s.seed, epoch);
        let seconds = seconds_before + t0.elapsed().as_secs_f64();
        run.metrics.push(format!(
            "{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.2}",
            epoch + 1,
            train_terms.loss,
            train_terms.recon,
            train_terms.kl,
            test_terms.loss,
            test_terms.recon,
            test_terms.kl,
            seconds
        ));
        run.epochs_done = epoch + 1;
        write_pictures(&run.model, &test, s.seed, &out)?;
        write_metrics(&out, &run.metrics)?;
        run.save(&out)?;
        println!(
            "epoch {:>3}/{}  train {}  test {}  {seconds:.1}s",
            epoch + 1,
            epochs,
            show(&train_terms),
            show(&test_terms)
        );
        if STOP.load(Ordering::SeqCst) && epoch + 1 < epochs {
            println!(
                "interrupted after epoch {}; continue with: vae-cli train --resume --out {}",
                epoch + 1,
                out.display()
            );
            return Ok(());
        }
    }
    println!("done: {} holds {MODEL}, {CHECKPOINT}, metrics.csv, samples.png, reconstructions.png", out.display());
    Ok(())
}

/// `loss (recon …, kl …)` with two decimals.
fn show(t: &Terms) -> String {
    format!("{:.2} (recon {:.2}, kl {:.2})", t.loss, t.recon, t.kl)
}

/// Writes metrics.csv from the rows of the finished epochs.
fn write_metrics(out: &Path, rows: &[String]) -> Result<()> {
    let mut text = String::from(METRICS_HEADER);
    text.push('\n');
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    checkpoint::write_atomic(&out.join("metrics.csv"), text.as_bytes())?;
    Ok(())
}

/// A one-line description such as `mlp 784-400-20 bernoulli` (`tanh` named when chosen).
pub fn describe(c: &VaeConfig) -> String {
    let mut lik = match c.likelihood {
        Likelihood::Bernoulli => "bernoulli".to_string(),
        Likelihood::Gaussian { sigma } => format!("gaussian σ={sigma}"),
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

#[cfg(test)]
mod tests {
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
        let train = Split { images: vec![255, 0, 0, 0], labels: vec![0, 1], rows: 1, cols: 2 };
        let config =
            VaeConfig { arch: Arch::Mlp { hidden: vec![3] }, input: [1, 1, 2], latent: 1, ..VaeConfig::mlp_mnist() };
        let mut model = Vae::new(config, &mut StdRng::seed_from_u64(0)).unwrap();
        init_output_bias(&mut model, &train);
        let bias = model.params.get(model.params.find("dec_out.bias").unwrap());
        assert_eq!(bias[[0]], 0.0);
        assert!((bias[[1]] - (0.001f32 / 0.999).ln()).abs() < 1e-6);
    }
}
