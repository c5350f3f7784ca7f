//! The data of a command: the folder, the splits checked against the model, and the one
//! mapping from `--binarize` to what the batches do.

use std::path::{Path, PathBuf};

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
    let test = vae::data::Dataset::load(&dir)?.test;
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

/// The data, limited and binarized as the settings say; the mode for batches.
pub fn prepare_data(dir: &Path, s: &Settings) -> Result<(Split, Split, Binarize)> {
    let data = Dataset::load(dir)?;
    let (mut train, mut test) = (data.train, data.test);
    if let Some(n) = s.train_limit {
        train = train.truncated(n);
    }
    if let Some(n) = s.test_limit {
        test = test.truncated(n);
    }
    let (train, mode) = binarize(train, s.binarize, s.seed, Part::Train);
    let (test, _) = binarize(test, s.binarize, s.seed, Part::Test);
    Ok((train, test, mode))
}
