//! The epoch loop every trainer runs (a model's, a VQ-VAE's code prior's), and the progress
//! a run's checkpoint keeps, so that a stop and a resume behave the same for both.
//!
//! An epoch: the examples shuffled by the stream (seed, epoch, shuffle); steps of a batch each,
//! each reported to the run's [`Watch`] (a progress bar); after the last step the trainer's test pass and
//! metrics row, then the metrics file and the checkpoint. Between two steps the run's
//! [`Control`] may pause it, or stop it (Ctrl-C, a closed standard output, the playground's Stop
//! button): a stop saves the partial epoch (steps taken, sums, seconds) in the checkpoint; a
//! resumed run skips those steps and goes on with the same sums, so its numbers are those of an
//! uninterrupted run.

use std::collections::HashMap;
use std::time::Instant;

use rand::seq::SliceRandom;

use crate::error::Error;
use crate::family::Sums;
use crate::run::control::Control;
use crate::run::streams::{stream, Purpose};

/// What the loop and its trainers return.
type Result<T> = std::result::Result<T, Error>;

/// Whoever watches a run: the command line's progress bar and epoch lines, the playground's
/// page, or nobody ([`Quiet`]). Every method has a default that does nothing.
pub trait Watch {
    /// An epoch begins, named `label` (`epoch 3/10`), of `steps` steps of which `done` were
    /// taken before an interruption.
    fn epoch_begins(&mut self, _label: &str, _steps: usize, _done: usize) {}
    /// A step was taken; `means` gives the text of the running means, if wanted.
    fn step_taken(&mut self, _means: &dyn Fn() -> String) {}
    /// The epoch's steps are over (finished, stopped, or failed).
    fn steps_end(&mut self) {}
    /// A finished epoch's lines of report.
    fn report(&mut self, _lines: &[String]) {}
    /// After each epoch of a model's training: the model and the test images, for pictures.
    fn pictures(&mut self, _model: &dyn crate::Family, _test: &crate::data::Split) -> Result<()> {
        Ok(())
    }
}

/// A watcher that watches nothing.
pub struct Quiet;

impl Watch for Quiet {}

/// How far a run has got: what its checkpoint keeps besides the model, the optimizer and the
/// settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunState {
    /// Epochs finished.
    pub epochs_done: u64,
    /// Rows of the metrics file for the finished epochs (no header).
    pub metrics: Vec<String>,
    /// Steps of epoch `epochs_done` already taken (non-zero after an interruption).
    pub step_in_epoch: usize,
    /// Sums of the trainer's terms over those steps.
    pub partial: Sums,
    /// Seconds spent on those steps.
    pub partial_seconds: f64,
}

impl RunState {
    /// The state as checkpoint metadata under `prefix` (`train.` or `prior.`): epochs done,
    /// the optimizer's step count, the metrics rows, and the partial epoch, one entry per term
    /// (`<prefix>partial_<term>`).
    pub fn to_metadata(&self, prefix: &str, terms: &[&str], optimizer_steps: u64) -> HashMap<String, String> {
        let mut m = HashMap::new();
        let mut put = |k: &str, v: String| m.insert(format!("{prefix}{k}"), v);
        put("epochs_done", self.epochs_done.to_string());
        put("optimizer_steps", optimizer_steps.to_string());
        put("metrics", self.metrics.join("\n"));
        put("step_in_epoch", self.step_in_epoch.to_string());
        // `{:?}` prints the shortest decimal that parses back to the same f64.
        for (name, sum) in terms.iter().zip(&self.partial.terms) {
            put(&format!("partial_{name}"), format!("{sum:?}"));
        }
        put("partial_count", self.partial.count.to_string());
        put("partial_seconds", format!("{:?}", self.partial_seconds));
        m
    }

    /// Reads what [`RunState::to_metadata`] wrote, and the optimizer's step count. Epochs done
    /// and the step count must be there; a partial epoch may be missing (none was saved).
    /// `aliases` names older keys of a term: (term, key suffix it was once written under).
    pub fn from_metadata(
        m: &HashMap<String, String>,
        prefix: &str,
        terms: &[&str],
        aliases: &[(&str, &str)],
    ) -> std::result::Result<(Self, u64), String> {
        let key = |k: &str| format!("{prefix}{k}");
        let whole = |k: &str| -> std::result::Result<u64, String> {
            m.get(&key(k)).and_then(|v| v.parse().ok()).ok_or_else(|| format!("missing or malformed {}", key(k)))
        };
        let float = |k: &str| -> std::result::Result<f64, String> {
            m.get(&key(k)).map_or(Ok(0.0), |v| v.parse().map_err(|_| format!("malformed {}", key(k))))
        };
        let partial_of = |name: &str| {
            let old = aliases.iter().find(|(t, _)| *t == name).map(|(_, k)| *k);
            match old {
                Some(old) if !m.contains_key(&key(&format!("partial_{name}"))) => float(old),
                _ => float(&format!("partial_{name}")),
            }
        };
        let terms: std::result::Result<Vec<f64>, String> = terms.iter().map(|name| partial_of(name)).collect();
        let state = RunState {
            epochs_done: whole("epochs_done")?,
            metrics: m.get(&key("metrics")).map_or(vec![], |v| v.lines().map(String::from).collect()),
            step_in_epoch: float("step_in_epoch")? as usize,
            partial: Sums { terms: terms?, count: float("partial_count")? as usize, counts: vec![] },
            partial_seconds: float("partial_seconds")?,
        };
        Ok((state, whole("optimizer_steps")?))
    }
}

/// What the epoch loop needs of a trainer.
pub trait Trainer {
    /// Training examples: a step takes a batch of indices in 0..n.
    fn examples(&self) -> usize;
    /// Examples per step.
    fn batch_size(&self) -> usize;
    /// The seed of the run's random streams.
    fn seed(&self) -> u64;
    /// The progress bar's name for an epoch: `epoch`, `prior epoch`.
    fn epoch_name(&self) -> &'static str;
    /// Before an epoch's steps (the learning rate of that epoch).
    fn start_epoch(&mut self, _epoch: u64) {}
    /// One step on the examples `idx`, the `step`-th of `steps` of `epoch`: per-example means
    /// of the trainer's terms, or why the step was refused (nothing was changed).
    fn step(&mut self, idx: &[usize], epoch: u64, step: usize, steps: usize) -> Result<Vec<f64>>;
    /// The progress bar's text for the running means.
    fn show(&self, means: &[f64]) -> String;
    /// After an epoch's last step, given the training sums and the seconds spent: the test
    /// pass, any pictures and housekeeping. Returns the metrics row and the lines to print.
    /// `watch` receives the pictures of a model's training.
    fn finish_epoch(
        &mut self,
        epoch: u64,
        train: &Sums,
        seconds: f64,
        watch: &mut dyn Watch,
    ) -> Result<(String, Vec<String>)>;
    /// Writes the metrics file from the rows of the finished epochs.
    fn write_metrics(&self, rows: &[String]) -> Result<()>;
    /// Writes the checkpoint: the trainer's model, optimizer and settings with `state`.
    fn save(&mut self, state: &RunState) -> Result<()>;
}

/// Runs epochs `state.epochs_done` to `epochs` (finishing a partial one first), pausing and
/// stopping as `control` says between steps, reporting to `watch`. Returns where a stop ended the run (`at epoch 3
/// step 20 of 100; checkpoint saved`, or `after epoch 3`), or `None` when every epoch is done.
pub fn train_epochs(
    t: &mut dyn Trainer,
    state: &mut RunState,
    epochs: u64,
    control: &Control,
    watch: &mut dyn Watch,
) -> Result<Option<String>> {
    t.write_metrics(&state.metrics)?;
    let steps = t.examples().div_ceil(t.batch_size());
    control.report(state.epochs_done, epochs, state.step_in_epoch, steps);
    for epoch in state.epochs_done..epochs {
        let interrupted = one_epoch(t, state, (epoch, epochs), control, watch)?;
        if interrupted {
            return Ok(Some(format!(
                "at epoch {} step {} of {steps}; checkpoint saved",
                epoch + 1,
                state.step_in_epoch
            )));
        }
        if epoch + 1 < epochs && control.wait_if_paused() {
            return Ok(Some(format!("after epoch {}", epoch + 1)));
        }
    }
    Ok(None)
}

/// One epoch (or the rest of an interrupted one). Returns `true` when a stop ended it
/// mid-epoch (the checkpoint then holds the partial epoch).
fn one_epoch(
    t: &mut dyn Trainer,
    state: &mut RunState,
    (epoch, epochs): (u64, u64),
    control: &Control,
    watch: &mut dyn Watch,
) -> Result<bool> {
    let t0 = Instant::now();
    let mut order: Vec<usize> = (0..t.examples()).collect();
    order.shuffle(&mut stream(t.seed(), epoch, 0, Purpose::Shuffle));
    let batch = t.batch_size();
    let steps = order.len().div_ceil(batch);
    // After an interruption, the epoch continues where it stopped, with its sums so far.
    let first_step = std::mem::take(&mut state.step_in_epoch);
    let mut totals = std::mem::take(&mut state.partial);
    let seconds_before = std::mem::take(&mut state.partial_seconds);
    watch.epoch_begins(&format!("{} {}/{epochs}", t.epoch_name(), epoch + 1), steps, first_step);
    t.start_epoch(epoch);
    for (step, idx) in order.chunks(batch).enumerate().skip(first_step) {
        let means = t.step(idx, epoch, step, steps).inspect_err(|_| watch.steps_end())?;
        totals.add_means(&means, idx.len());
        watch.step_taken(&|| t.show(&totals.means()));
        control.report(epoch, epochs, step + 1, steps);
        if step + 1 < steps && control.wait_if_paused() {
            watch.steps_end();
            state.step_in_epoch = step + 1;
            state.partial = totals;
            state.partial_seconds = seconds_before + t0.elapsed().as_secs_f64();
            t.save(state)?;
            return Ok(true);
        }
    }
    watch.steps_end();
    let (row, lines) = t.finish_epoch(epoch, &totals, seconds_before + t0.elapsed().as_secs_f64(), watch)?;
    state.metrics.push(row);
    state.epochs_done = epoch + 1;
    t.write_metrics(&state.metrics)?;
    t.save(state)?;
    control.epoch_finished(state.epochs_done);
    watch.report(&lines);
    Ok(false)
}
