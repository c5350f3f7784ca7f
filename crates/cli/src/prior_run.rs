//! The prior's training in progress, as `prior_checkpoint.safetensors` keeps it: the prior, the
//! state of its Adam, the settings it was started with and how far it got (epochs, and steps of
//! an interrupted epoch). `vae-cli prior --resume` reads it back and continues with exactly the
//! numbers of an uninterrupted run; the codebook's fingerprint ties it to its VQ-VAE.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use vae::checkpoint;
use vae::prior::{Prior, PriorConfig};
use vae::run::epochs::RunState;
use vae::run::files::RunFiles;
use vae::run::settings::{fields_from_metadata, fields_to_metadata};
use vae::run::streams::{stream, Purpose};
use vae::vqvae::VqVae;
use vae_autodiff::Tensor;
use vae_layers::optim::{Adam, Optimizer};

use crate::options::Result;

/// The trained prior, for `vae-cli sample --prior`.
pub const PRIOR: &str = "prior.safetensors";
/// The resumable state of its training.
pub const PRIOR_CHECKPOINT: &str = "prior_checkpoint.safetensors";
/// A prior's run: its files in the VQ-VAE's run folder, beside the model's.
pub const PRIOR_RUN: RunFiles =
    RunFiles { what: "a prior's training", model: PRIOR, checkpoint: PRIOR_CHECKPOINT, metrics: "prior_metrics.csv" };
/// The format entry of a prior file.
const PRIOR_FORMAT: &str = "vae-engine-prior/1";
/// The format entry of a prior checkpoint.
const CHECKPOINT_FORMAT: &str = "vae-engine-prior-checkpoint/1";
/// The prefix of the settings' metadata entries (and of the progress entries beside them).
const SETTINGS_PREFIX: &str = "prior.";
/// The VQ-VAE of a checkpoint.
pub fn load_vq(path: &Path) -> Result<VqVae> {
    let (tensors, metadata) = checkpoint::read_tensors(path)?;
    if metadata.get("family").map(String::as_str) != Some("vqvae") {
        return Err(format!(
            "{}: not a VQ-VAE (its family is {:?}); train one with --family vqvae",
            path.display(),
            metadata.get("family").map_or("vae", String::as_str)
        )
        .into());
    }
    let config = vae::vqvae::VqConfig::from_metadata(&metadata)?;
    let mut model = VqVae::new(config, &mut stream(0, 0, 0, Purpose::Init))?;
    checkpoint::restore_params(&mut model.params, tensors).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(model)
}

/// The metadata entry holding the codebook's fingerprint.
const FINGERPRINT: &str = "codebook_fingerprint";

/// The settings a prior's training keeps, so that `--resume` continues with them: one
/// `prior.<field>` metadata entry each, written and read by serde as `train`'s settings are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriorSettings {
    /// Epochs planned.
    pub epochs: u64,
    /// Code grids per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Seed of initialization, shuffling and samples.
    pub seed: u64,
    /// Training and test images used (all when `None`).
    pub train_limit: Option<u64>,
    /// See `train_limit`.
    pub test_limit: Option<u64>,
}

/// A prior's training: the model, its optimizer, settings, finished epochs and the partial
/// sums of an interrupted one.
pub struct PriorRun {
    /// The prior being trained.
    pub prior: Prior,
    /// Its optimizer, with its state.
    pub adam: Adam,
    /// The run's settings.
    pub settings: PriorSettings,
    /// Finished epochs, prior_metrics.csv rows and any partial epoch (the epoch loop holds it
    /// while it runs and hands it to [`PriorRun::save`]).
    pub state: RunState,
}

/// The prior's one loss term, the negative log-likelihood of the code grids.
pub const PRIOR_TERMS: &[&str] = &["nll"];

impl PriorRun {
    /// A new run over the codes of `model`, with a prior of these `hidden` widths.
    pub fn start(settings: PriorSettings, hidden: Vec<usize>, model: &VqVae) -> Result<Self> {
        let config = PriorConfig {
            places: model.config.codes(),
            codebook_size: model.config.codebook_size,
            code_dim: model.config.code_dim,
            hidden,
        };
        let codebook = model.params.get(model.codebook).clone();
        let prior = Prior::new(config, codebook, &mut stream(settings.seed, 0, 0, Purpose::Init))?;
        Ok(Self { prior, adam: Adam::new(settings.lr), settings, state: RunState::default() })
    }

    /// Writes the checkpoint into `out`, atomically: the prior, Adam's state, the settings and
    /// the run's `state` (`prior.epochs_done`, `prior.metrics`, `prior.partial_nll`, …).
    pub fn save(&self, out: &Path, run_state: &RunState) -> Result<()> {
        let mut meta = prior_metadata(&self.prior, CHECKPOINT_FORMAT);
        meta.extend(fields_to_metadata(&self.settings, SETTINGS_PREFIX));
        let (steps, state) = self.adam.state();
        meta.extend(run_state.to_metadata(SETTINGS_PREFIX, PRIOR_TERMS, steps));
        let state = checkpoint::optimizer_state_to_file(&self.prior.params, state);
        let extra: Vec<(String, Tensor)> =
            state.into_iter().map(|(n, t)| (format!("{}{n}", checkpoint::EXTRA_PREFIX), t)).collect();
        write_prior(&out.join(PRIOR_CHECKPOINT), &self.prior, meta, &extra)
    }

    /// The run whose checkpoint is in `out`, for the codes of `model`.
    pub fn resume(out: &Path, model: &VqVae) -> Result<Self> {
        let path = PRIOR_RUN.to_resume(out)?;
        let (prior, extra, m) = read_prior(&path, model, &[CHECKPOINT_FORMAT])?;
        let settings: PriorSettings =
            serde_json::from_value(serde_json::Value::Object(fields_from_metadata(&m, SETTINGS_PREFIX)))
                .map_err(|e| format!("{}: the prior's training settings are unreadable: {e}", path.display()))?;
        // Checkpoints written before the shared epoch loop kept the partial sum as `partial_sum`.
        let (state, steps) = RunState::from_metadata(&m, SETTINGS_PREFIX, PRIOR_TERMS, &[("nll", "partial_sum")])
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut adam = Adam::new(settings.lr);
        let opt_state = checkpoint::optimizer_state_from_file(&prior.params, extra);
        adam.load_state(steps, opt_state, prior.params.values()).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { prior, adam, settings, state })
    }
}

/// The prior's configuration, its codebook's fingerprint and a format entry.
fn prior_metadata(prior: &Prior, format: &str) -> HashMap<String, String> {
    let mut meta = prior.config.to_metadata();
    meta.insert(checkpoint::FORMAT_KEY.into(), format.into());
    meta.insert(FINGERPRINT.into(), prior.codebook_fingerprint());
    meta
}

/// Writes the prior's parameters (PyTorch's layout) and `extra` tensors to `path`, atomically.
fn write_prior(path: &Path, prior: &Prior, meta: HashMap<String, String>, extra: &[(String, Tensor)]) -> Result<()> {
    let params: Vec<(String, std::borrow::Cow<Tensor>)> =
        prior.params.iter_pytorch().map(|(n, t)| (n.to_string(), t)).collect();
    let mut refs: Vec<(String, &Tensor)> = params.iter().map(|(n, t)| (n.clone(), t.as_ref())).collect();
    refs.extend(extra.iter().map(|(n, t)| (n.clone(), t)));
    checkpoint::write_atomic(path, &checkpoint::encode(&refs, meta)?)?;
    Ok(())
}

/// Writes the trained prior alone to `path` (what `vae-cli sample --prior` reads).
pub fn save_prior(path: &Path, prior: &Prior) -> Result<()> {
    write_prior(path, prior, prior_metadata(prior, PRIOR_FORMAT), &[])
}

/// The prior of a file written by `vae-cli prior` (the prior alone or its checkpoint), over the
/// codes of `model`; refuses a prior trained on another VQ-VAE's codebook.
pub fn load_prior(path: &Path, model: &VqVae) -> Result<Prior> {
    Ok(read_prior(path, model, &[PRIOR_FORMAT, CHECKPOINT_FORMAT])?.0)
}

/// What a prior file holds: the prior, its extra (optimizer) tensors, its metadata.
type PriorFile = (Prior, Vec<(String, Tensor)>, HashMap<String, String>);

/// The prior in `path`, its extra (optimizer) tensors and its metadata, after checking that
/// its format entry is one of `formats` and that it was trained on `model`'s codebook.
fn read_prior(path: &Path, model: &VqVae, formats: &[&str]) -> Result<PriorFile> {
    let (tensors, metadata) = checkpoint::read_tensors(path)?;
    let found = metadata.get(checkpoint::FORMAT_KEY).map_or("", String::as_str);
    if !formats.contains(&found) {
        return Err(format!(
            "{}: not a file of vae-cli prior (its format entry is {found:?}, expected {})",
            path.display(),
            formats.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(" or ")
        )
        .into());
    }
    let config = PriorConfig::from_metadata(&metadata).map_err(|e| format!("{}: {e}", path.display()))?;
    let codebook = model.params.get(model.codebook).clone();
    let mut prior = Prior::new(config, codebook, &mut stream(0, 0, 0, Purpose::Init))
        .map_err(|e| format!("{}: {e} (was it trained for this VQ-VAE?)", path.display()))?;
    // Files written before the fingerprint existed have none and are taken on trust.
    if let Some(f) = metadata.get(FINGERPRINT) {
        if *f != prior.codebook_fingerprint() {
            return Err(format!(
                "{}: this prior was trained on the codes of another VQ-VAE (its codebook fingerprint is {f}, this model's {}); train one for this model with vae-cli prior",
                path.display(),
                prior.codebook_fingerprint()
            )
            .into());
        }
    }
    let extra =
        checkpoint::restore_params(&mut prior.params, tensors).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((prior, extra, metadata))
}
