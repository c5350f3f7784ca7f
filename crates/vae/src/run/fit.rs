//! A model's training as the epoch loop runs it ([`Trainer`]): each step's batch and noise
//! from the run's streams, the learning rate of the epoch, the KL weight of the step, the
//! test pass after each epoch, its metrics row and its line of report, the family's
//! housekeeping, and the message of a step that diverged.

use std::path::Path;

use rand::seq::IndexedRandom;

use crate::data::{Binarize, Split};
use crate::error::Error;
use crate::family::{Family, StepSettings, Sums};
use crate::run::epochs::{RunState, Trainer, Watch};
use crate::run::files::{metrics_header, CHECKPOINT, MODEL_RUN};
use crate::run::schedule::{kl_weight, lr_at};
use crate::run::settings::{BinarizeKind, Settings};
use crate::run::streams::{stream, Purpose};
use crate::run::testpass::evaluate;
use crate::run::Run;
use crate::step::NonFinite;
use crate::Likelihood;

/// A model's training as the epoch loop sees it: the run and what every epoch reads.
pub(crate) struct ModelTrainer<'a> {
    pub run: &'a mut Run,
    pub train: &'a Split,
    pub test: &'a Split,
    pub mode: Binarize,
    pub out: &'a Path,
    pub epochs: u64,
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
    fn step(&mut self, idx: &[usize], epoch: u64, step: usize, steps: usize) -> Result<Vec<f64>, Error> {
        let s = &self.run.settings;
        let mut rng = stream(s.seed, epoch, step as u64, Purpose::Step);
        let x = self.train.rows(idx, self.mode, &mut rng, self.run.model.classes()); // [x, y] for a cvae
        let knobs = step_settings(s, kl_weight(s.beta, s.kl_warmup, epoch, step, steps));
        let run = &mut *self.run;
        run.model
            .train_step(run.opt.as_mut(), &x, &knobs, &mut rng)
            .map_err(|nf| Error::run(diverged(&nf, (epoch, step, steps), self.out, run.opt.lr())))
    }
    fn show(&self, means: &[f64]) -> String {
        format!(
            "loss {}",
            show(self.run.model.as_ref(), means, &step_settings(&self.run.settings, self.run.settings.beta))
        )
    }
    /// The test pass, the metrics row (the loss and the shown terms of train and test, the test
    /// statistics, the seconds), the family's housekeeping and the pictures.
    fn finish_epoch(
        &mut self,
        epoch: u64,
        train: &Sums,
        seconds: f64,
        watch: &mut dyn Watch,
    ) -> Result<(String, Vec<String>), Error> {
        let s = self.run.settings.clone();
        let knobs = step_settings(&s, s.beta);
        let train_means = train.means();
        let (test_split, mode) = (self.test, self.mode);
        let test = self.run.with_average(|model| evaluate(model, test_split, mode, &knobs, s.seed, epoch));
        let model = self.run.model.as_ref();
        let mut row = vec![(epoch + 1).to_string()];
        for means in [&train_means, &test.means] {
            row.push(format!("{:.4}", model.loss(means, &knobs)));
            row.extend(shown_values(model, means).iter().map(|v| format!("{v:.4}")));
        }
        row.extend(test.statistics.iter().map(|(_, v)| format!("{v:.4}")));
        row.push(format!("{seconds:.2}"));
        let mut stats: String = test.statistics.iter().map(|(name, v)| format!("  {name} {v:.1}")).collect();
        if counts_bits(model, s.binarize) && s.beta == 1.0 {
            // The test −ELBO bounds −log p(x): in bits per dimension, as papers on images report.
            let bits = bits_per_dim(model.loss(&test.means, &knobs), model);
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
        self.run.with_average(|model| watch.pictures(model, test_split))?;
        Ok((row.join(","), lines))
    }
    fn write_metrics(&self, rows: &[String]) -> Result<(), Error> {
        MODEL_RUN.write_metrics(self.out, &metrics_header(self.run.model.as_ref()), rows)
    }
    fn save(&mut self, state: &RunState) -> Result<(), Error> {
        self.run.save(self.out, state)
    }
}

/// The step's knobs from the run's settings: the objective, the clipping, the commitment
/// weight, free bits, and `kl_weight`, the KL weight of this step (β, or less during a warm-up).
pub fn step_settings(s: &Settings, kl_weight: f32) -> StepSettings {
    StepSettings {
        objective: s.objective(),
        kl_weight,
        commitment: s.commitment,
        clip: s.clip_norm,
        free_bits: s.free_bits,
    }
}

/// The shown terms' values among a family's term means.
pub fn shown_values(model: &dyn Family, means: &[f64]) -> Vec<f64> {
    let at = |name: &&str| model.terms().iter().position(|t| t == name).map_or(0.0, |i| means[i]);
    model.shown().iter().map(at).collect()
}

/// `loss (recon …, kl …)` with two decimals: the loss and the family's shown terms.
pub fn show(model: &dyn Family, means: &[f64], s: &StepSettings) -> String {
    let terms: Vec<String> =
        model.shown().iter().zip(shown_values(model, means)).map(|(name, v)| format!("{name} {v:.2}")).collect();
    format!("{:.2} ({})", model.loss(means, s), terms.join(", "))
}

/// Whether −log p(x) is a count of bits of discrete data, so that bits per dimension compare
/// with other models of the same data: the discretized logistic on 8-bit pixels, or Bernoulli
/// pixels on binarized images. A density (the Gaussian) or Bernoulli on grey levels (no
/// probability mass of the 8-bit image) gives none.
pub fn counts_bits(model: &dyn Family, binarize: BinarizeKind) -> bool {
    match Likelihood::from_metadata(&model.metadata()) {
        Ok(Likelihood::DLogistic { .. }) => true,
        Ok(Likelihood::Bernoulli) => binarize != BinarizeKind::None,
        _ => false,
    }
}

/// Nats per image as bits per dimension, the unit of papers on natural images: divided by the
/// number of pixels D and by ln 2 (book chapter 10).
pub fn bits_per_dim(nats: f64, model: &dyn Family) -> f64 {
    let [c, h, w] = model.input();
    nats / ((c * h * w) as f64 * std::f64::consts::LN_2)
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
