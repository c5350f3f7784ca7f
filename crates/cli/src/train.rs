//! `vae-cli train`: the training loop, with its per-epoch evaluation, the learning-rate schedule
//! and Ctrl-C. The run folder and resume are in `rundir.rs`, the settings a run keeps in
//! `settings.rs`, the random streams in `streams.rs`, the data in `data.rs`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::seq::SliceRandom;
use vae::data::{Binarize, Dataset, Split};
use vae::model::standard_normal;
use vae::train::{train_step_objective, NonFinite, Terms, Totals};
use vae::{Activation, Arch, Likelihood, Vae, VaeConfig};

use crate::commands::{
    check_number, ActivationKind, FamilyKind, LikelihoodKind, LrScheduleKind, ModelKind, ObjectiveKind, OutputBias,
    Protocol, Result, TrainArgs,
};
use crate::data::{check_split, data_dir, prepare_data};
use crate::eval::{describe, evaluate};
use crate::progress::Progress;
use crate::rundir::{default_out, write_metrics, write_pictures, Run, CHECKPOINT, MODEL};
use crate::settings::Settings;
use crate::streams::{stream, Purpose};

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

/// The model configuration the flags describe, for the images and labels of `train`.
fn config_from_args(a: &TrainArgs, p: &Protocol, train: &Split) -> Result<VaeConfig> {
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
    // A conditional model has a class per label the training set uses.
    let classes = match a.family {
        FamilyKind::Vae => 0,
        FamilyKind::Cvae if train.classes() >= 2 => train.classes(),
        FamilyKind::Cvae => return Err("--family cvae needs a training set with at least two labels".into()),
    };
    let input = [1, train.rows, train.cols];
    let config = VaeConfig { input, latent: p.latent, activation, likelihood, classes, ..base };
    config.validate()?;
    Ok(config)
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

/// `vae-cli train`.
pub fn run(args: TrainArgs) -> Result<()> {
    check_flags(&args)?;
    let protocol = args.protocol();
    let fresh = Settings::from_args(&args, &protocol);
    let dir = data_dir(&args.data);
    let out = args.out.clone().unwrap_or_else(|| default_out(&args, &protocol, fresh.objective));
    let mut run = if args.resume { resume(&args, &out)? } else { start(&args, &protocol, fresh, &dir, &out)? };
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create the output folder {}: {e}", out.display()))?;
    let s = run.settings.clone();
    // A resumed run goes on to its planned epochs unless --epochs says otherwise.
    let epochs = if args.resume { args.epochs.unwrap_or(s.epochs) } else { protocol.epochs };
    let (train, test, mode) = prepare_data(&dir, &s)?;
    check_split(&run.model, &train, &dir)?;
    check_split(&run.model, &test, &dir)?;
    if train.is_empty() || test.is_empty() {
        return Err(format!("{}: the training and test sets must not be empty", dir.display()).into());
    }
    let session =
        Session { train: &train, test: &test, mode, out: &out, steps: train.len().div_ceil(s.batch_size), epochs };
    println!(
        "training {} ({} parameters, objective {} K={}) on {} images from {}; {} steps per epoch; run folder {}",
        describe(&run.model.config),
        run.model.params.num_scalars(),
        s.objective.name(),
        s.objective.k(),
        train.len(),
        dir.display(),
        session.steps,
        out.display()
    );
    install_interrupt_handler();
    write_metrics(&out, &run.metrics)?;
    for epoch in run.epochs_done..epochs {
        let interrupted = train_epoch(&mut run, &session, epoch)?;
        if interrupted || (STOP.load(Ordering::SeqCst) && epoch + 1 < epochs) {
            let at = if interrupted {
                format!("at epoch {} step {} of {}; checkpoint saved", epoch + 1, run.step_in_epoch, session.steps)
            } else {
                format!("after epoch {}", epoch + 1)
            };
            println!("interrupted {at}. Continue with: vae-cli train --resume --out {}", out.display());
            return Ok(());
        }
    }
    println!("done: {} holds {MODEL}, {CHECKPOINT}, metrics.csv, samples.png, reconstructions.png", out.display());
    Ok(())
}

/// The numeric flags clap cannot check, and the combinations that make no sense.
fn check_flags(args: &TrainArgs) -> Result<()> {
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
    if args.objective == ObjectiveKind::Iwae && (args.beta != 1.0 || args.kl_warmup != 0.0) {
        return Err("--objective iwae is the bound on log p(x) itself: it takes no --beta or --kl-warmup".into());
    }
    Ok(())
}

/// The run in `out`, from its checkpoint; `--lr`, if given, replaces its learning rate.
fn resume(args: &TrainArgs, out: &Path) -> Result<Run> {
    let mut run = Run::resume(out)?;
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
    Ok(run)
}

/// A new run: the model initialized from the seed (its output bias from the data if asked), a
/// fresh optimizer. Refuses a folder that already holds a run.
fn start(args: &TrainArgs, protocol: &Protocol, settings: Settings, dir: &Path, out: &Path) -> Result<Run> {
    if out.join(CHECKPOINT).exists() {
        return Err(format!(
            "{} already holds a run; continue it with --resume, or choose another --out",
            out.display()
        )
        .into());
    }
    let probe = Dataset::load(dir)?; // fail early, before creating a folder
    let config = config_from_args(args, protocol, &probe.train)?;
    let mut model = Vae::new(config, &mut stream(args.seed, 0, 0, Purpose::Init))?;
    if protocol.output_bias == OutputBias::DataMean {
        check_split(&model, &probe.train, dir)?;
        init_output_bias(&mut model, &probe.train);
    }
    Ok(Run {
        model,
        opt: settings.optimizer(),
        settings,
        epochs_done: 0,
        metrics: vec![],
        step_in_epoch: 0,
        partial: Totals::default(),
        partial_seconds: 0.0,
    })
}

/// What every epoch of a run reads.
struct Session<'a> {
    train: &'a Split,
    test: &'a Split,
    mode: Binarize,
    out: &'a Path,
    steps: usize,
    epochs: u64,
}

/// One epoch (or the rest of an interrupted one): the steps, the test pass, metrics.csv, the
/// pictures and the checkpoint. Returns `true` when Ctrl-C stopped it mid-epoch (the
/// checkpoint then holds the partial epoch).
fn train_epoch(run: &mut Run, ses: &Session, epoch: u64) -> Result<bool> {
    let s = run.settings.clone();
    let t0 = Instant::now();
    let mut order: Vec<usize> = (0..ses.train.len()).collect();
    order.shuffle(&mut stream(s.seed, epoch, 0, Purpose::Shuffle));
    let bar = Progress::new(ses.steps as u64, format!("epoch {}/{}", epoch + 1, ses.epochs));
    // After an interruption, the epoch continues where it stopped, with its sums so far.
    let first_step = std::mem::take(&mut run.step_in_epoch);
    let mut totals = std::mem::take(&mut run.partial);
    let seconds_before = std::mem::take(&mut run.partial_seconds);
    bar.skip(first_step as u64);
    run.opt.set_lr(lr_at(s.lr_schedule, s.lr, epoch, s.schedule_epochs));
    let k = s.objective.k();
    for (step, idx) in order.chunks(s.batch_size).enumerate().skip(first_step) {
        let mut rng = stream(s.seed, epoch, step as u64, Purpose::Step);
        let x = ses.train.rows(idx, ses.mode, &mut rng, run.model.config.classes); // [x, y] for a cvae
                                                                                   // K·n draws, row k·n + i for sample k of example i (n draws for the plain VAE).
        let eps = standard_normal(&[k * idx.len(), run.model.config.latent], &mut rng);
        let beta = kl_weight(s.beta, s.kl_warmup, epoch, step, ses.steps);
        let (model, opt) = (&mut run.model, run.opt.as_mut());
        let terms = train_step_objective(model, opt, &x, eps, s.objective, beta, s.clip_norm).map_err(|nf| {
            bar.finish();
            diverged(&nf, (epoch, step, ses.steps), ses.out, run.opt.lr())
        })?;
        totals.add(&terms, idx.len());
        bar.step(|| format!("loss {}", show(&totals.mean(s.beta))));
        if STOP.load(Ordering::SeqCst) && step + 1 < ses.steps {
            bar.finish();
            run.step_in_epoch = step + 1;
            run.partial = totals;
            run.partial_seconds = seconds_before + t0.elapsed().as_secs_f64();
            run.save(ses.out)?;
            return Ok(true);
        }
    }
    bar.finish();
    let train_terms = totals.mean(s.beta);
    let test_terms = evaluate(&run.model, ses.test, ses.mode, (s.objective, s.beta), s.seed, epoch);
    let seconds = seconds_before + t0.elapsed().as_secs_f64();
    let (tr, te) = (&train_terms, &test_terms);
    run.metrics.push(format!(
        "{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{seconds:.2}",
        epoch + 1,
        tr.loss,
        tr.recon,
        tr.kl,
        te.loss,
        te.recon,
        te.kl
    ));
    run.epochs_done = epoch + 1;
    write_pictures(&run.model, ses.test, s.seed, ses.out)?;
    write_metrics(ses.out, &run.metrics)?;
    run.save(ses.out)?;
    println!("epoch {:>3}/{}  train {}  test {}  {seconds:.1}s", epoch + 1, ses.epochs, show(tr), show(te));
    Ok(false)
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

/// `loss (recon …, kl …)` with two decimals.
fn show(t: &Terms) -> String {
    format!("{:.2} (recon {:.2}, kl {:.2})", t.loss, t.recon, t.kl)
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
