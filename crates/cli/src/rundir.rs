//! The run folder: `model.safetensors`, the resumable `checkpoint.safetensors`, `metrics.csv`
//! and the pictures, each written atomically; and reading a run back for `--resume`.

use std::collections::HashMap;
use std::path::Path;

use vae::checkpoint;
use vae::data::{Binarize, Split};
use vae::Family;
use vae_layers::optim::Optimizer;

use crate::epochs::RunState;
use crate::image;
use crate::options::Result;
use crate::settings::Settings;
use crate::streams::{stream, Purpose};

/// Header of the plain VAE's `metrics.csv` (every Gaussian family's: the conditional VAE's too).
pub const METRICS_HEADER: &str = "epoch,train_loss,train_recon,train_kl,test_loss,test_recon,test_kl,seconds";

/// The header of a family's `metrics.csv`: the epoch, the loss and each shown term on the
/// training and the test set, the test pass's statistics, the seconds. For the plain VAE this
/// is [`METRICS_HEADER`].
pub fn metrics_header(model: &dyn Family) -> String {
    let mut cols = vec!["epoch".to_string()];
    for part in ["train", "test"] {
        cols.push(format!("{part}_loss"));
        cols.extend(model.shown().iter().map(|t| format!("{part}_{t}")));
    }
    cols.extend(model.statistics(&[]).iter().map(|(name, _)| format!("test_{name}")));
    cols.push("seconds".into());
    cols.join(",")
}

/// A run in progress: model, optimizer, settings, and how far it has got.
pub struct Run {
    /// The model being trained.
    pub model: Box<dyn Family>,
    /// Its optimizer, with its state.
    pub opt: Box<dyn Optimizer>,
    /// The run's settings.
    pub settings: Settings,
    /// Finished epochs, metrics rows and any partial epoch (the epoch loop holds it while it
    /// runs and hands it to [`Run::save`]).
    pub state: RunState,
}

/// The resumable checkpoint of a run folder: model, optimizer state, settings, progress.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The model alone, for the other commands.
pub const MODEL: &str = "model.safetensors";

impl Run {
    /// Saves the model alone, then the full checkpoint (model, optimizer state, settings,
    /// and the run's `state`: `train.epochs_done`, `train.metrics`, `train.partial_<term>`, …),
    /// each atomically.
    pub fn save(&self, out: &Path, state: &RunState) -> Result<()> {
        checkpoint::save(&out.join(MODEL), self.model.as_ref(), &[], &HashMap::new())?;
        let (steps, opt_state) = self.opt.state();
        let opt_state = checkpoint::optimizer_state_to_file(self.model.params(), opt_state);
        let mut meta = self.settings.to_metadata();
        meta.extend(state.to_metadata("train.", self.model.terms(), steps));
        checkpoint::save(&out.join(CHECKPOINT), self.model.as_ref(), &opt_state, &meta)?;
        Ok(())
    }

    /// Reads the checkpoint of the run in `out`.
    pub fn resume(out: &Path) -> Result<Self> {
        let path = MODEL_RUN.to_resume(out)?;
        let loaded = checkpoint::load_family(&path)?;
        let bad = |m: String| format!("{}: {m}", path.display());
        let settings = Settings::from_metadata(&loaded.metadata).map_err(bad)?;
        let (state, steps) =
            RunState::from_metadata(&loaded.metadata, "train.", loaded.model.terms(), &[]).map_err(bad)?;
        let mut opt = settings.optimizer();
        let opt_state = checkpoint::optimizer_state_from_file(loaded.model.params(), loaded.extra);
        opt.load_state(steps, opt_state, loaded.model.params().values()).map_err(bad)?;
        Ok(Self { model: loaded.model, opt, settings, state })
    }
}

/// The files of a run folder, whichever trainer fills it: a model's (`train`) or a code
/// prior's (`prior`, which writes into its VQ-VAE's folder beside the model's own files).
#[derive(Clone, Copy, Debug)]
pub struct RunFiles {
    /// What the folder holds a training of, for messages: `a run`, `a prior's training`.
    pub what: &'static str,
    /// The trained model alone.
    pub model: &'static str,
    /// The resumable checkpoint: model, optimizer state, settings, progress.
    pub checkpoint: &'static str,
    /// One row per finished epoch.
    pub metrics: &'static str,
}

/// A model's run folder.
pub const MODEL_RUN: RunFiles =
    RunFiles { what: "a run", model: MODEL, checkpoint: CHECKPOINT, metrics: "metrics.csv" };

impl RunFiles {
    /// Refuses a folder that already holds such a training (a new one would overwrite it).
    pub fn check_fresh(&self, out: &Path) -> Result<()> {
        if out.join(self.checkpoint).exists() {
            return Err(format!(
                "{} already holds {}; continue it with --resume, or choose another --out",
                out.display(),
                self.what
            )
            .into());
        }
        Ok(())
    }

    /// The checkpoint to resume from, or why there is none.
    pub fn to_resume(&self, out: &Path) -> Result<std::path::PathBuf> {
        let path = out.join(self.checkpoint);
        if !path.is_file() {
            return Err(format!(
                "--resume: there is no {} in {} to resume; start a new run without --resume",
                self.checkpoint,
                out.display()
            )
            .into());
        }
        Ok(path)
    }

    /// Writes the metrics file from its header and the rows of the finished epochs, atomically.
    pub fn write_metrics(&self, out: &Path, header: &str, rows: &[String]) -> Result<()> {
        let text: String =
            std::iter::once(header).chain(rows.iter().map(String::as_str)).map(|r| format!("{r}\n")).collect();
        checkpoint::write_atomic(&out.join(self.metrics), text.as_bytes())?;
        Ok(())
    }
}

/// Writes samples.png (8×8 prior samples; for a conditional model a row of 8 per class) and
/// reconstructions.png (8 test images above their reconstructions).
pub fn write_pictures(model: &dyn Family, test: &Split, seed: u64, out: &Path) -> Result<()> {
    let (h, w) = (test.rows, test.cols);
    let classes = model.classes();
    let rows = if classes > 0 { classes } else { 8 };
    let labels: Vec<usize> = (0..rows * 8).map(|i| i / 8).collect();
    let samples = model.sample(rows * 8, &labels, &mut stream(seed, 0, 0, Purpose::Pictures));
    image::grid(&samples, rows, 8, h, w).save(&out.join("samples.png"))?;
    let idx: Vec<usize> = (0..8.min(test.len())).collect();
    let x = test.rows(&idx, Binarize::None, &mut stream(seed, 0, 1, Purpose::Pictures), classes);
    let recon = model.reconstruct(x.clone());
    let x = x.slice_axis(ndarray::Axis(1), ndarray::Slice::from(..test.pixels()));
    let both = ndarray::concatenate(ndarray::Axis(0), &[x, recon.view()]).expect("same widths");
    image::grid(&both, 2, idx.len(), h, w).save(&out.join("reconstructions.png"))?;
    Ok(())
}
