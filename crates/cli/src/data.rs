//! The data of a command: the source (`--data` and its preparation flags, detected and
//! described by `vae::data`), the splits checked against the model and prepared for a run. A
//! long-lived process that trains many runs (the playground) keeps the data it has read
//! ([`keep_loaded`]) instead of reading and unpacking it again for every run.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use vae::data::{Dataset, Format, Prep, Split};

use crate::options::{DataArgs, Result};
use crate::progress::Progress;

/// The data path: the one given, else `datasets/mnist` under the current folder, else the
/// copy shipped in this repository.
pub fn data_dir(given: &DataArgs) -> PathBuf {
    if let Some(d) = &given.data {
        return d.clone();
    }
    let local = Path::new("datasets/mnist");
    if local.is_dir() {
        local.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist")
    }
}

/// The preparation the flags ask for. Nothing is resized or converted unless asked: a model's
/// commands given data of another shape say so and name the flags that would prepare it.
pub fn prep(args: &DataArgs) -> Prep {
    Prep {
        image_size: args.image_size,
        channels: args.channels,
        test_fraction: args.test_fraction.unwrap_or(Prep::default().test_fraction),
        skip_bad: args.skip_bad,
        cache: if args.no_cache { None } else { args.cache.clone().or_else(default_cache) },
    }
}

/// The user's cache folder for decoded images: $XDG_CACHE_HOME/vae-engine, else
/// ~/.cache/vae-engine; none if neither variable is set.
fn default_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("vae-engine"))
}

/// The data flags of a command that reads the model at `checkpoint`: those given, and for
/// each preparation flag not given (`--test-fraction`, `--image-size`, `--channels`), the
/// value the model's run used, when its file says (files of older runs do not).
pub fn for_model(given: &DataArgs, checkpoint: &Path) -> Result<DataArgs> {
    let m = vae::checkpoint::read_metadata(checkpoint)?;
    let read = |key: &str| m.get(&format!("train.{key}")).filter(|v| !v.is_empty());
    let number = |key: &str| read(key).and_then(|v| v.parse::<usize>().ok());
    Ok(DataArgs {
        test_fraction: given.test_fraction.or_else(|| read("test_fraction").and_then(|v| v.parse().ok())),
        image_size: given.image_size.or_else(|| number("image_size")),
        channels: given.channels.or_else(|| number("channels")),
        ..given.clone()
    })
}

/// The data set for a command on the model at `checkpoint` (read as [`for_model`] says),
/// checked against the model.
pub fn load_for_model(data: &DataArgs, checkpoint: &Path, model: &dyn vae::Family) -> Result<(Arc<Dataset>, PathBuf)> {
    let data = for_model(data, checkpoint)?;
    let dir = data_dir(&data);
    let set = load(&dir, &prep(&data))?;
    vae::run::check_split(model, &set.test, &dir)?;
    Ok((set, dir))
}

/// The test split of the data (`--data` or the default) for the model at `checkpoint`, checked
/// against the model.
pub fn load_test(data: &DataArgs, checkpoint: &Path, model: &dyn vae::Family) -> Result<(Split, PathBuf)> {
    let (set, dir) = load_for_model(data, checkpoint, model)?;
    Ok((set.test.clone(), dir))
}

/// The dataset kept by [`keep_loaded`]: its path, its preparation and the data.
static KEPT: Mutex<Option<(PathBuf, Prep, Arc<Dataset>)>> = Mutex::new(None);
/// Whether [`load`] keeps what it reads.
static KEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, [`load`] keeps the last dataset it read and hands it out again for the same
/// path and preparation (the playground: one process, many runs).
pub fn keep_loaded() {
    KEEP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Reads and prepares the data at `path`, with a progress bar while a folder of images is
/// decoded.
fn read(path: &Path, prep: &Prep) -> Result<Dataset> {
    let bar: OnceLock<Progress> = OnceLock::new();
    let decoding = vae::data::detect(path).is_ok_and(|f| f == Format::ImageFolder);
    let progress = |_done: usize, total: usize| {
        if decoding {
            bar.get_or_init(|| Progress::new(total as u64, "decoding images".into())).step(String::new);
        }
    };
    let set = Dataset::open(path, prep, &progress);
    if let Some(bar) = bar.get() {
        bar.finish();
    }
    Ok(set?)
}

/// The dataset at `path` prepared as `prep` says: read, or the kept copy (see [`keep_loaded`]).
pub fn load(path: &Path, prep: &Prep) -> Result<Arc<Dataset>> {
    if !KEEP.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(Arc::new(read(path, prep)?));
    }
    let mut kept = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, data)) = kept.as_ref().filter(|(kept_path, kept_prep, _)| kept_path == path && kept_prep == prep)
    {
        return Ok(data.clone());
    }
    let data = Arc::new(read(path, prep)?);
    *kept = Some((path.to_path_buf(), prep.clone(), data.clone()));
    Ok(data)
}

/// The data of `run`: read (or the kept copy), limited and binarized as its settings say. A
/// dataset of this run alone is taken apart without a copy; a kept one is copied as far as the
/// limits say.
pub fn prepare_data(dir: &Path, prep: &Prep, run: &vae::run::Run) -> Result<vae::run::Splits> {
    let s = &run.settings;
    let (train, test) = match Arc::try_unwrap(load(dir, prep)?) {
        Ok(data) => (data.train, data.test),
        Err(shared) => {
            let part = |split: &Split, limit: Option<usize>| split.truncated(limit.unwrap_or(split.len()));
            (part(&shared.train, s.train_limit), part(&shared.test, s.test_limit))
        }
    };
    Ok(run.splits(train, test))
}
