//! The data of a command: the folder, the splits checked against the model, and the one
//! mapping from `--binarize` to what the batches do. A long-lived process that trains many
//! runs (the playground) keeps the data it has read ([`keep_loaded`]) instead of reading and
//! unpacking 55 MB again for every run.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vae::data::{Binarize, Dataset, Split};

use crate::options::{BinarizeKind, Result};
use crate::settings::Settings;
use crate::streams::{stream, Purpose};

/// The data folder: the one given, else `datasets/mnist` under the current folder, else the
/// copy shipped in this repository.
pub fn data_dir(given: &Option<PathBuf>) -> PathBuf {
    if let Some(d) = given {
        return d.clone();
    }
    let local = Path::new("datasets/mnist");
    if local.is_dir() {
        local.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist")
    }
}

/// Checks that the images of `split` (read from `dir`) have the size the model takes and, for
/// a conditional model, that every label is one of its classes.
pub fn check_split(model: &dyn vae::Family, split: &vae::data::Split, dir: &Path) -> Result<()> {
    let [_, rows, cols] = model.input();
    if (split.rows, split.cols) != (rows, cols) {
        return Err(format!(
            "the model takes {rows}×{cols} images but {} holds {}×{} images",
            dir.display(),
            split.rows,
            split.cols
        )
        .into());
    }
    let classes = model.classes();
    if classes > 0 && split.classes() > classes {
        return Err(format!(
            "the model knows {classes} classes (labels 0 to {}) but {} holds the label {}",
            classes - 1,
            dir.display(),
            split.classes() - 1
        )
        .into());
    }
    Ok(())
}

/// The test split of the data folder (`--data` or the default), checked against the model.
pub fn load_test(data: &Option<PathBuf>, model: &dyn vae::Family) -> Result<(vae::data::Split, PathBuf)> {
    let dir = data_dir(data);
    let test = load(&dir)?.test.clone();
    check_split(model, &test, &dir)?;
    Ok((test, dir))
}

/// Which split a static binarization is drawn for: each has its own stream.
#[derive(Clone, Copy)]
pub enum Part {
    /// The training images.
    Train = 0,
    /// The test images.
    Test = 1,
}

/// `--binarize` applied to a split: `static` replaces it, once, by Bernoulli draws from the
/// stream (seed, part, 0, binarize) and leaves the batches alone; `dynamic` keeps the grey
/// values and has every batch draw fresh pixels; `none` keeps grey values. Returns the split
/// and the mode its batches take.
pub fn binarize(split: Split, kind: BinarizeKind, seed: u64, part: Part) -> (Split, Binarize) {
    match kind {
        BinarizeKind::None => (split, Binarize::None),
        BinarizeKind::Dynamic => (split, Binarize::Dynamic),
        BinarizeKind::Static => (split.binarized(&mut stream(seed, part as u64, 0, Purpose::Binarize)), Binarize::None),
    }
}

/// The dataset kept by [`keep_loaded`]: its folder and the data.
static KEPT: Mutex<Option<(PathBuf, Arc<Dataset>)>> = Mutex::new(None);
/// Whether [`load`] keeps what it reads.
static KEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, [`load`] keeps the last dataset it read and hands it out again for the same
/// folder (the playground: one process, many runs).
pub fn keep_loaded() {
    KEEP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The dataset in `dir`: read from its files, or the kept copy (see [`keep_loaded`]).
pub fn load(dir: &Path) -> Result<Arc<Dataset>> {
    if !KEEP.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(Arc::new(Dataset::load(dir)?));
    }
    let mut kept = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, data)) = kept.as_ref().filter(|(kept_dir, _)| kept_dir == dir) {
        return Ok(data.clone());
    }
    let data = Arc::new(Dataset::load(dir)?);
    *kept = Some((dir.to_path_buf(), data.clone()));
    Ok(data)
}

/// The data, limited and binarized as the settings say; the mode for batches. A dataset of
/// this run alone is taken apart without a copy; a kept one is copied as far as the limits say.
pub fn prepare_data(dir: &Path, s: &Settings) -> Result<(Split, Split, Binarize)> {
    let limited = |split: Split, limit: Option<usize>| match limit {
        Some(n) => split.truncated(n),
        None => split,
    };
    let (train, test) = match Arc::try_unwrap(load(dir)?) {
        Ok(data) => (limited(data.train, s.train_limit), limited(data.test, s.test_limit)),
        Err(shared) => {
            let part = |split: &Split, limit: Option<usize>| split.truncated(limit.unwrap_or(split.len()));
            (part(&shared.train, s.train_limit), part(&shared.test, s.test_limit))
        }
    };
    let (train, mode) = binarize(train, s.binarize, s.seed, Part::Train);
    let (test, _) = binarize(test, s.binarize, s.seed, Part::Test);
    Ok((train, test, mode))
}
