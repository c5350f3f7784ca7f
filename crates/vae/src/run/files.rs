//! The run folder: `model.safetensors`, the resumable `checkpoint.safetensors` and
//! `metrics.csv`, each written atomically (the pictures are the watcher's).

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::Error;
use crate::family::Family;

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

/// The resumable checkpoint of a run folder: model, optimizer state, settings, progress.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The model alone, for the other commands.
pub const MODEL: &str = "model.safetensors";

/// The files of a run folder, whichever trainer fills it: a model's or a code prior's (which
/// writes into its VQ-VAE's folder beside the model's own files).
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
    pub fn check_fresh(&self, out: &Path) -> Result<(), Error> {
        if out.join(self.checkpoint).exists() {
            return Err(Error::run(format!(
                "{} already holds {}; continue it with --resume, or choose another --out",
                out.display(),
                self.what
            )));
        }
        Ok(())
    }

    /// The checkpoint to resume from, or why there is none.
    pub fn to_resume(&self, out: &Path) -> Result<PathBuf, Error> {
        let path = out.join(self.checkpoint);
        if !path.is_file() {
            return Err(Error::run(format!(
                "--resume: there is no {} in {} to resume; start a new run without --resume",
                self.checkpoint,
                out.display()
            )));
        }
        Ok(path)
    }

    /// Writes the metrics file from its header and the rows of the finished epochs, atomically.
    pub fn write_metrics(&self, out: &Path, header: &str, rows: &[String]) -> Result<(), Error> {
        let text: String =
            std::iter::once(header).chain(rows.iter().map(String::as_str)).map(|r| format!("{r}\n")).collect();
        checkpoint::write_atomic(&out.join(self.metrics), text.as_bytes())
    }
}
