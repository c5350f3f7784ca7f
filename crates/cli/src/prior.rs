//! `vae-cli prior`: the VQ-VAE's second stage. Encodes the training and test images to their
//! codes, trains the autoregressive prior (`vae::prior`) on them, reports its negative
//! log-likelihood and the bound it gives on −log p(x), and draws pictures: samples through the
//! prior beside samples of uniform random codes, and the codes' use. The training runs in the
//! epoch loop `train` uses (`vae::run::epochs`); a checkpoint after every epoch and on Ctrl-C
//! (`prior_run.rs`) lets `--resume` continue an interrupted training.

use std::path::{Path, PathBuf};

use clap::Args;
use vae::checkpoint;
use vae::data::{Binarize, Dataset, Split};
use vae::family::Sums;
use vae::prior::train_step;
use vae::run::epochs::{train_epochs, RunState, Trainer, Watch};
use vae::run::streams::{stream, Purpose};
use vae::vqvae::{perplexity, VqVae};
use vae::Error;

use crate::data::data_dir;
use crate::figure::{self, Format, Layout, Mark, Panel, Series};
use crate::image::{grid, PALETTE};
use crate::interrupt;
use crate::options::{check_number, Result};
use crate::prior_run::{load_vq, save_prior, PriorRun, PriorSettings, PRIOR, PRIOR_CHECKPOINT, PRIOR_RUN};
use crate::say::say;

/// Epochs of `vae-cli prior` when --epochs is not given.
pub const DEFAULT_PRIOR_EPOCHS: u64 = 10;

/// Flags of `vae-cli prior`.
#[derive(Args, Debug, Clone)]
pub struct PriorArgs {
    /// A model.safetensors of a VQ-VAE (`vae-cli train --family vqvae`).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The data and its preparation.
    #[command(flatten)]
    pub data: crate::options::DataArgs,
    /// Folder for prior.safetensors, prior_checkpoint.safetensors (the resumable state: prior,
    /// Adam's moments, progress), prior.json, prior_metrics.csv and the pictures [default: the
    /// checkpoint's].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the prior's training in the output folder from prior_checkpoint.safetensors,
    /// with its saved settings (Ctrl-C saves one mid-epoch; --epochs may extend the run).
    #[arg(long)]
    pub resume: bool,
    /// A hook for tests: pause once this many steps are taken and say so on standard output
    /// (see `train --pause-at-step`).
    #[arg(long, value_name = "N", hide = true)]
    pub pause_at_step: Option<u64>,
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

/// The codes of every image of a split (grey values), image after image.
fn codes_of(model: &VqVae, split: &Split) -> Vec<usize> {
    let idx: Vec<usize> = (0..split.len()).collect();
    let mut codes = Vec::with_capacity(split.len() * model.config.codes());
    for chunk in idx.chunks(1000) {
        let x = split.batch(chunk, Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures));
        codes.extend(model.encode_codes(&x));
    }
    codes
}

/// The header of prior_metrics.csv.
const METRICS_HEADER: &str = "epoch,train_nll,test_nll,seconds";

/// `vae-cli prior`.
pub fn run(args: PriorArgs) -> Result<()> {
    check_number("lr", args.lr, 0.0, false)?;
    let model = load_vq(&args.checkpoint)?;
    let out = args.out.clone().unwrap_or_else(|| args.checkpoint.parent().unwrap_or(Path::new(".")).to_path_buf());
    let mut run = if args.resume {
        let run = PriorRun::resume(&out, &model)?;
        say!(
            "resuming the prior in {} at epoch {} step {} (its saved settings apply)",
            out.display(),
            run.state.epochs_done + 1,
            run.state.step_in_epoch + 1
        );
        run
    } else {
        PRIOR_RUN.check_fresh(&out)?;
        let settings = PriorSettings {
            epochs: args.epochs.unwrap_or(DEFAULT_PRIOR_EPOCHS),
            batch_size: args.batch_size as usize,
            lr: args.lr,
            seed: args.seed,
            train_limit: args.train_limit,
            test_limit: args.test_limit,
        };
        PriorRun::start(settings, args.hidden.iter().map(|&h| h as usize).collect(), &model)?
    };
    // A resumed run goes on to its planned epochs unless --epochs says otherwise.
    let epochs = args.epochs.unwrap_or(run.settings.epochs);
    run.settings.epochs = epochs;

    let dir = data_dir(&args.data);
    let data: Dataset = Dataset::clone(&*crate::data::load(&dir, &crate::data::prep(&args.data))?);
    vae::run::check_split(&model, &data.train, &dir)?;
    let (mut train, mut test) = (data.train, data.test);
    if let Some(n) = run.settings.train_limit {
        train = train.truncated(n as usize);
    }
    if let Some(n) = run.settings.test_limit {
        test = test.truncated(n as usize);
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let (l, kc) = (model.config.codes(), model.config.codebook_size);
    say!("encoding {} training and {} test images to {l} codes each", train.len(), test.len());
    let codes = Codes { train: codes_of(&model, &train), test: codes_of(&model, &test), places: l };
    say!(
        "training a masked autoregressive prior ({} parameters) over {l} places × {kc} codes for {epochs} epochs; checkpoint {}",
        run.prior.params.num_scalars(),
        out.join(PRIOR_CHECKPOINT).display()
    );
    interrupt::install();
    if let Some(n) = args.pause_at_step {
        interrupt::control().pause_at_step(n);
    }
    let (mut state, seed) = (std::mem::take(&mut run.state), run.settings.seed);
    let stopped = train_epochs(
        &mut PriorTrainer { run: &mut run, codes: &codes, out: &out },
        &mut state,
        epochs,
        interrupt::control(),
        &mut crate::train::Reports { bar: None, seed, out: &out },
    )?;
    run.state = state;
    if let Some(at) = stopped {
        say!(
            "interrupted {at}. Continue with: vae-cli prior --checkpoint {} --out {} --resume",
            args.checkpoint.display(),
            out.display()
        );
        return Ok(());
    }
    report(&model, &run, &test, &codes.test, &out)
}

/// The code grids of the training and test images, L places each.
struct Codes {
    train: Vec<usize>,
    test: Vec<usize>,
    places: usize,
}

/// The prior's training as the epoch loop sees it ([`Trainer`]).
struct PriorTrainer<'a> {
    run: &'a mut PriorRun,
    codes: &'a Codes,
    out: &'a Path,
}

impl Trainer for PriorTrainer<'_> {
    /// Code grids of the training images.
    fn examples(&self) -> usize {
        self.codes.train.len() / self.codes.places
    }
    fn batch_size(&self) -> usize {
        self.run.settings.batch_size
    }
    fn seed(&self) -> u64 {
        self.run.settings.seed
    }
    fn epoch_name(&self) -> &'static str {
        "prior epoch"
    }
    /// A step on the grids `idx`: its mean −log p(k) per image.
    fn step(&mut self, idx: &[usize], epoch: u64, step: usize, _steps: usize) -> std::result::Result<Vec<f64>, Error> {
        let l = self.codes.places;
        let grids: Vec<usize> =
            idx.iter().flat_map(|&i| self.codes.train[i * l..(i + 1) * l].iter().copied()).collect();
        let nll = train_step(&mut self.run.prior, &mut self.run.adam, &grids).map_err(|e| {
            Error::run(format!(
                "training the prior diverged at epoch {} step {}: {e}; the checkpoint of the last finished epoch in {} is intact",
                epoch + 1,
                step + 1,
                self.out.display()
            ))
        })?;
        Ok(vec![nll])
    }
    fn show(&self, means: &[f64]) -> String {
        format!("nll {:.2}", means[0])
    }
    /// The test set's −log p(k) per image and the metrics row.
    fn finish_epoch(
        &mut self,
        epoch: u64,
        train: &Sums,
        seconds: f64,
        _watch: &mut dyn Watch,
    ) -> std::result::Result<(String, Vec<String>), Error> {
        let test_nll = self.run.prior.nll_value(&self.codes.test);
        let train_nll = train.means()[0];
        let row = format!("{},{train_nll:.4},{test_nll:.4},{seconds:.2}", epoch + 1);
        let line = format!(
            "prior epoch {:>3}/{}  train nll {train_nll:.2}  test nll {test_nll:.2} nats per image  {seconds:.1}s",
            epoch + 1,
            self.run.settings.epochs
        );
        Ok((row, vec![line]))
    }
    fn write_metrics(&self, rows: &[String]) -> std::result::Result<(), Error> {
        PRIOR_RUN.write_metrics(self.out, METRICS_HEADER, rows)
    }
    fn save(&mut self, state: &RunState) -> std::result::Result<(), Error> {
        self.run.save(self.out, state).map_err(|e| Error::run(e.to_string()))
    }
}

/// After training: the bound on −log p(x) it gives, prior.safetensors, prior.json and the
/// pictures.
fn report(model: &VqVae, run: &PriorRun, test: &Split, test_codes: &[usize], out: &Path) -> Result<()> {
    let (prior, (l, kc)) = (&run.prior, (model.config.codes(), model.config.codebook_size));
    // The bound: p(x) = Σ_k p(x|k) p(k) ≥ p(x|k*) p(k*) for the encoder's codes k*, so
    // −log p(x) ≤ −log p(x|k*) − log p(k*): the VQ-VAE's recon plus the prior's NLL.
    let x_test =
        test.batch(&(0..test.len()).collect::<Vec<_>>(), Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures));
    let totals = vae::vqvae::evaluate_batch(model, &x_test);
    let recon = totals.mean(0.0).recon;
    let prior_nll = prior.nll_value(test_codes);
    let uniform_nll = l as f64 * (kc as f64).ln();
    let bound = recon + prior_nll;
    let ppl = perplexity(&totals.code_counts);
    say!("test: recon −log p(x|k*) {recon:.2}, prior −log p(k*) {prior_nll:.2} (uniform codes: {uniform_nll:.2}) nats per image");
    say!("−log p(x) ≤ {bound:.2} nats per image with the learned prior ({:.2} with uniform codes); codes in use: perplexity {ppl:.1} of {kc}", recon + uniform_nll);

    save_prior(&out.join(PRIOR), prior)?;
    let summary = serde_json::json!({
        "test_recon": recon, "test_prior_nll": prior_nll, "uniform_prior_nll": uniform_nll,
        "nll_bound": bound, "uniform_nll_bound": recon + uniform_nll, "perplexity": ppl,
        "codebook_size": kc, "places": l, "epochs": run.state.epochs_done,
    });
    checkpoint::write_atomic(&out.join("prior.json"), format!("{summary}\n").as_bytes())?;

    // Pictures: 64 samples through the prior beside 64 of uniform codes; the codes' use.
    let [_, h, w] = model.config.input;
    let mut rng = stream(run.settings.seed, 0, 0, Purpose::Pictures);
    grid(&model.decode_codes(&prior.sample(64, &mut rng)), 8, 8, h, w).save(&out.join("prior_samples.png"))?;
    let uniform: Vec<usize> = (0..64 * l).map(|_| rand::Rng::random_range(&mut rng, 0..kc)).collect();
    grid(&model.decode_codes(&uniform), 8, 8, h, w).save(&out.join("uniform_samples.png"))?;
    code_histogram(&totals.code_counts, &out.join("code_use.png"))?;
    prior_curves(&run.state.metrics, uniform_nll, &out.join("prior_curves.png"))?;
    say!(
        "wrote {PRIOR}, {PRIOR_CHECKPOINT}, prior.json, prior_metrics.csv, prior_samples.png, uniform_samples.png, code_use.png and prior_curves.png to {}",
        out.display()
    );
    Ok(())
}

/// The prior's training curves from its prior_metrics.csv rows (epoch, train, test, seconds):
/// train and test NLL per epoch, under the uniform prior's L·ln Kc for scale.
fn prior_curves(rows: &[String], uniform_nll: f64, path: &Path) -> Result<()> {
    let points: Vec<[f64; 3]> = rows
        .iter()
        .filter_map(|r| {
            let v: Vec<f64> = r.split(',').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 4).then(|| [v[0], v[1], v[2]])
        })
        .collect();
    let (Some(first), Some(last)) = (points.first(), points.last()) else { return Ok(()) };
    let uniform = vec![(first[0], uniform_nll), (last[0], uniform_nll)];
    let series = vec![
        Series::line("train", points.iter().map(|p| (p[0], p[1])).collect()),
        Series::line("test", points.iter().map(|p| (p[0], p[2])).collect()),
        Series::line("uniform codes", uniform).colored(PALETTE[7]),
    ];
    let title = "prior training: negative log-likelihood of the codes per image";
    let panel = Panel::new("", ("epoch", "nats per image"), series);
    let chart = figure::draw(title, &[panel], ((900, 460), Layout::Row), Format::Png)?;
    Ok(checkpoint::write_atomic(path, &chart)?)
}

/// A bar chart of how often each code was chosen, most used first.
fn code_histogram(counts: &[u64], path: &Path) -> Result<()> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let mut share: Vec<f64> = counts.iter().map(|&c| 100.0 * c as f64 / total).collect();
    share.sort_by(|a, b| b.total_cmp(a));
    let used = counts.iter().filter(|&&c| c > 0).count();
    let title =
        format!("code use on the test set: {used} of {} codes, perplexity {:.1}", counts.len(), perplexity(counts));
    let bars = share.iter().enumerate().map(|(k, &s)| (k as f64 + 0.5, s)).collect();
    let top = share.first().copied().unwrap_or(1.0).max(1e-9) * 1.05;
    let panel = Panel {
        range: Some((0.0..counts.len() as f64, 0.0..top)),
        ..Panel::new(
            "",
            ("codes, most used first", "percent of the test set's code slots"),
            vec![Series { mark: Mark::Bars, ..Series::line("", bars) }],
        )
    };
    let chart = figure::draw(&title, &[panel], ((900, 460), Layout::Row), Format::Png)?;
    Ok(checkpoint::write_atomic(path, &chart)?)
}
