//! The training run: everything between a data set and a trained model, the same for every
//! caller (the command line, the playground, a program of the user's).
//!
//! | module | what |
//! |---|---|
//! | [`recipe`] | what a new run is: the model and its [`Settings`], with the published presets |
//! | [`settings`] | the settings a checkpoint keeps, so that a resumed run goes on with them |
//! | [`streams`] | every random choice from its own stream (seed, epoch, step, purpose) |
//! | [`schedule`] | the learning rate of an epoch, the KL weight of a step, the output bias from the data |
//! | [`epochs`] | the epoch loop, its progress in the checkpoint, and the [`Watch`] that sees it |
//! | [`control`] | stop, pause and resume between two steps |
//! | [`testpass`] | the test pass after each epoch |
//! | [`files`] | the run folder: model, checkpoint, metrics |
//!
//! One call trains a recipe on any data source ([`train`]); the command line does the same in
//! two ([`Run::start`] or [`Run::resume`], then [`Run::fit`]), so both give the same numbers.
//!
//! ```no_run
//! use vae::data::{Dataset, Prep};
//! use vae::run::{train, Quiet, Recipe};
//!
//! let data = Dataset::open("my-pictures".as_ref(), &Prep { image_size: Some(32), ..Prep::default() }, &|_, _| {})?;
//! let recipe = Recipe::default().with_likelihood(vae::Likelihood::DLogistic { mixtures: 1 });
//! let run = train(&recipe, data, "runs/my-pictures".as_ref(), &mut Quiet)?;
//! println!("{}", run.state.metrics.last().unwrap());
//! # Ok::<(), vae::Error>(())
//! ```

pub mod control;
pub mod epochs;
pub mod files;
mod fit;
pub mod recipe;
pub mod schedule;
pub mod settings;
pub mod streams;
pub mod testpass;

use std::path::Path;

use vae_layers::optim::Optimizer;

pub use control::Control;
pub use epochs::{Quiet, RunState, Trainer, Watch};
pub use fit::{bits_per_dim, counts_bits, show, shown_values, step_settings};
pub use recipe::Recipe;
pub use settings::Settings;

use crate::checkpoint;
use crate::data::{Binarize, Dataset, Split};
use crate::error::Error;
use crate::family::Family;
use crate::run::files::{CHECKPOINT, MODEL, MODEL_RUN};
use crate::run::recipe::FamilyKind;
use crate::run::settings::BinarizeKind;
use crate::run::streams::{stream, Purpose};
use crate::PriorKind;

/// A run in progress: model, optimizer, settings, and how far it has got.
pub struct Run {
    /// The model being trained.
    pub model: Box<dyn Family>,
    /// Its optimizer, with its state.
    pub opt: Box<dyn Optimizer>,
    /// The run's settings.
    pub settings: Settings,
    /// Finished epochs, metrics rows and any partial epoch.
    pub state: RunState,
}

/// The data of a run: its training and test images, limited and binarized as its settings
/// say, and what its batches do to pixels.
pub struct Splits {
    /// The training images.
    pub train: Split,
    /// The test images.
    pub test: Split,
    /// What a batch does to its pixels (a fresh binarization, or nothing).
    pub mode: Binarize,
}

impl Run {
    /// A new run of `recipe`: the model for the images of `train`, initialized from the seed
    /// (its output bias from `train` if the recipe says so), and a fresh optimizer. What the
    /// model starts from (the output bias, a VampPrior's pseudo-inputs, a ResNet's first batch)
    /// is read from the images the run trains on: the first `train_limit`, if the settings set
    /// one.
    pub fn start(recipe: &Recipe, train: &Split) -> Result<Run, Error> {
        let model = match recipe.settings.train_limit {
            Some(n) if n < train.len() => recipe.build(&train.truncated(n))?,
            _ => recipe.build(train)?,
        };
        let settings = recipe.settings.clone();
        Ok(Run { model, opt: settings.optimizer(), settings, state: RunState::default() })
    }

    /// The run whose checkpoint is in the folder `out`.
    pub fn resume(out: &Path) -> Result<Run, Error> {
        let path = MODEL_RUN.to_resume(out)?;
        let loaded = checkpoint::load_family(&path)?;
        let bad = |m: String| Error::Checkpoint(format!("{}: {m}", path.display()));
        let settings = Settings::from_metadata(&loaded.metadata).map_err(bad)?;
        // The settings were checked against the model when the run started; a file edited
        // since, or written by another program, is checked again.
        let family = FamilyKind::from_name(loaded.model.name())
            .ok_or_else(|| bad(format!("unknown model family {:?}", loaded.model.name())))?;
        let prior = PriorKind::from_metadata(&loaded.metadata).map_err(|e| bad(e.to_string()))?;
        recipe::check_settings(family, prior, &settings).map_err(|e| bad(e.to_string()))?;
        let (state, steps) =
            RunState::from_metadata(&loaded.metadata, "train.", loaded.model.terms(), &[]).map_err(bad)?;
        let mut opt = settings.optimizer();
        let opt_state = checkpoint::optimizer_state_from_file(loaded.model.params(), loaded.extra);
        opt.load_state(steps, opt_state, loaded.model.params().values()).map_err(bad)?;
        Ok(Run { model: loaded.model, opt, settings, state })
    }

    /// Replaces the learning rate (to go on after a divergence with a lower one).
    pub fn set_lr(&mut self, lr: f32) {
        self.settings.lr = lr;
        self.opt.set_lr(lr);
    }

    /// Runs `f` on the model with the weights' running average in their place, if the run keeps
    /// one (`--polyak`), or on the model as it is; the weights are back in place afterwards.
    pub fn with_average<R>(&mut self, f: impl FnOnce(&mut dyn Family) -> R) -> R {
        let swapped = self.opt.swap_average(self.model.params_mut().values_mut());
        let r = f(self.model.as_mut());
        if swapped {
            self.opt.swap_average(self.model.params_mut().values_mut());
        }
        r
    }

    /// Saves the model alone (with the data's preparation, [`Settings::data_metadata`]; with
    /// the weights' average in place of the weights if the run keeps one), then the full
    /// checkpoint (model, optimizer state and any average, settings, and `state`:
    /// `train.epochs_done`, `train.metrics`, `train.partial_<term>`, …), each atomically.
    pub fn save(&mut self, out: &Path, state: &RunState) -> Result<(), Error> {
        let data = self.settings.data_metadata();
        self.with_average(|model| checkpoint::save(&out.join(MODEL), model, &[], &data))?;
        let (steps, opt_state) = self.opt.state();
        let opt_state = checkpoint::optimizer_state_to_file(self.model.params(), opt_state);
        let mut meta = self.settings.to_metadata();
        meta.extend(state.to_metadata("train.", self.model.terms(), steps));
        checkpoint::save(&out.join(CHECKPOINT), self.model.as_ref(), &opt_state, &meta)
    }

    /// The run's data from a data set's splits: the first `train_limit` and `test_limit`
    /// images, binarized as the settings say ([`binarize`]).
    pub fn splits(&self, train: Split, test: Split) -> Splits {
        let s = &self.settings;
        let limited = |split: Split, limit: Option<usize>| match limit {
            Some(n) if n < split.len() => split.truncated(n),
            _ => split,
        };
        let (train, test) = (limited(train, s.train_limit), limited(test, s.test_limit));
        let (train, mode) = binarize(train, s.binarize, s.seed, Part::Train);
        let (test, _) = binarize(test, s.binarize, s.seed, Part::Test);
        Splits { train, test, mode }
    }

    /// Trains to `epochs` epochs in all (finishing an interrupted one first) on images of the
    /// model's shape ([`check_split`] says whether they are), saving the
    /// checkpoint, the model and `metrics.csv` in the folder `out` after every epoch, pausing
    /// and stopping as `control` says, reporting to `watch`. Returns where a stop ended it
    /// (`at epoch 3 step 20 of 100; checkpoint saved`), or `None` when every epoch is done.
    pub fn fit(
        &mut self,
        data: &Splits,
        out: &Path,
        epochs: u64,
        control: &Control,
        watch: &mut dyn Watch,
    ) -> Result<Option<String>, Error> {
        if data.train.is_empty() || data.test.is_empty() {
            return Err(Error::Data("the training and test sets must not be empty".into()));
        }
        std::fs::create_dir_all(out).map_err(|e| Error::io("create the output folder", out, e))?;
        let mut state = std::mem::take(&mut self.state);
        let mut trainer =
            fit::ModelTrainer { run: self, train: &data.train, test: &data.test, mode: data.mode, out, epochs };
        let stopped = epochs::train_epochs(&mut trainer, &mut state, epochs, control, watch);
        self.state = state;
        stopped
    }
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

/// A new run of `recipe` on `data` in the folder `out` (refused if it holds a run already),
/// trained to the recipe's epochs: [`Run::start`], [`Run::splits`] and [`Run::fit`].
pub fn train(recipe: &Recipe, data: Dataset, out: &Path, watch: &mut dyn Watch) -> Result<Run, Error> {
    MODEL_RUN.check_fresh(out)?;
    let mut run = Run::start(recipe, &data.train)?;
    let splits = run.splits(data.train, data.test);
    run.fit(&splits, out, recipe.settings.epochs, &Control::new(), watch)?;
    Ok(run)
}

/// Checks that the images of `split` (of the data at `source`) have the shape the model takes
/// and, for a conditional model, that every label is one of its classes.
pub fn check_split(model: &dyn Family, split: &Split, source: &Path) -> Result<(), Error> {
    let [c, rows, cols] = model.input();
    if split.shape() != [c, rows, cols] {
        let [sc, sr, sw] = split.shape();
        let hint =
            if rows == cols { format!("; --image-size {rows} --channels {c} prepares it so") } else { String::new() };
        return Err(Error::Data(format!(
            "the model takes {rows}×{cols} images of {c} channel(s) but {} holds {sr}×{sw} images of {sc}{hint}",
            source.display(),
        )));
    }
    let classes = model.classes();
    if classes > 0 && split.classes() > classes {
        return Err(Error::Data(format!(
            "the model knows {classes} classes (labels 0 to {}) but {} holds the label {}",
            classes - 1,
            source.display(),
            split.classes() - 1
        )));
    }
    Ok(())
}
