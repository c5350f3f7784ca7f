//! The training settings a run keeps in its checkpoint's metadata (`train.*` keys), so that a
//! resumed run continues with exactly them, and the named choices among them (optimizer,
//! binarization, objective, learning-rate schedule).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use vae_layers::optim::{Adagrad, Adam, Adamax, Averaged, Optimizer, Sgd};

use crate::objective::Objective;

/// Optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam, PyTorch's form (β 0.9, 0.999; ε 1e-8).
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
    /// Adagrad (Kingma & Welling's choice).
    Adagrad,
    /// Adamax, Adam with an infinity norm (β 0.9, 0.999; ε 1e-8; Kingma et al.'s IAF experiments).
    Adamax,
}

/// Pixel binarization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum BinarizeKind {
    /// Grey values in [0, 1] as they are.
    None,
    /// A fresh Bernoulli sample of every pixel each time it is used.
    Dynamic,
    /// One fixed Bernoulli sample of every pixel, drawn once from --seed.
    Static,
}

/// Training objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ObjectiveKind {
    /// The negative ELBO: reconstruction averaged over --k samples of z, KL in closed form.
    Elbo,
    /// The negative importance-weighted bound −L_K with --k samples (Burda et al.'s IWAE).
    Iwae,
}

/// Learning-rate schedule over the run's epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum LrScheduleKind {
    /// --lr throughout.
    Constant,
    /// Burda et al.'s 8 stages: stage i = 0..7 lasts 3^i of 3,280 epochs at --lr·10^(−i/7);
    /// mapped in proportion onto --epochs when that is not 3,280.
    Burda,
}

/// The fields of [`Settings`] that say how the data was prepared.
pub const DATA_KEYS: [&str; 3] = ["test_fraction", "image_size", "channels"];

/// The learning rate of PyTorch's example, the default.
pub const DEFAULT_LR: f32 = 1e-3;

/// The training settings a run keeps in its checkpoint, so that `--resume` continues with them.
/// serde writes each field as one `train.<field>` metadata entry and reads them back; fields
/// added after the first checkpoints were written default to the values those runs used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Seed of every random stream.
    pub seed: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Learning rate (the first stage's, under a schedule).
    pub lr: f32,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Pixel binarization.
    pub binarize: BinarizeKind,
    /// Epochs of the KL warm-up (0 = off).
    pub kl_warmup: f32,
    /// Global gradient-norm clipping, if any.
    pub clip_norm: Option<f32>,
    /// Training images used (the first N), if limited.
    pub train_limit: Option<usize>,
    /// Test images used (the first N), if limited.
    pub test_limit: Option<usize>,
    /// What a step minimizes (with `k`, see [`Settings::objective`]).
    #[serde(default = "default_objective")]
    pub objective: ObjectiveKind,
    /// Samples of z per example.
    #[serde(default = "one")]
    pub k: usize,
    /// The KL weight β of the ELBO objective.
    #[serde(default = "one_f32")]
    pub beta: f32,
    /// The VQ-VAE's commitment weight β.
    #[serde(default = "default_commitment")]
    pub commitment: f32,
    /// Whether the VQ-VAE moves codes unused in an epoch's test pass onto encoder outputs.
    #[serde(default)]
    pub restart_codes: bool,
    /// The learning-rate schedule.
    #[serde(default = "default_schedule")]
    pub lr_schedule: LrScheduleKind,
    /// Adam's ε.
    #[serde(default = "default_adam_eps")]
    pub adam_eps: f32,
    /// The run's planned epochs.
    #[serde(default = "default_epochs")]
    pub epochs: u64,
    /// The epochs the learning-rate schedule spans (usually `epochs`; older files: `epochs`).
    pub schedule_epochs: u64,
    /// The share of images held out for testing when the data has no split of its own.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// `--image-size`: the side images were cropped and resized to, if any.
    #[serde(default)]
    pub image_size: Option<usize>,
    /// `--channels`: the channels images were converted to, if asked.
    #[serde(default)]
    pub channels: Option<usize>,
    /// `--polyak`: the decay d of a running average of the weights, θ̄ ← d·θ̄ + (1 − d)·θ after
    /// every step, which the test pass, the pictures and the model file then use
    /// ([`vae_layers::optim::Averaged`]); none by default.
    #[serde(default)]
    pub polyak: Option<f32>,
    /// `--free-bits`: λ, nats of KL per latent unit that training charges at least
    /// ([`crate::objective::FreeBits`]); none by default.
    #[serde(default)]
    pub free_bits: Option<f32>,
}

impl Default for Settings {
    /// PyTorch's example: seed 1, Adam at 1e-3 (ε 1e-8), batches of 128, grey pixels as they
    /// are, the one-sample ELBO at β = 1, a constant rate, 10 epochs; 10% of the images held
    /// out for testing when the data has no split of its own.
    fn default() -> Self {
        Settings {
            seed: 1,
            batch_size: 128,
            lr: DEFAULT_LR,
            optimizer: OptimizerKind::Adam,
            binarize: BinarizeKind::None,
            kl_warmup: 0.0,
            clip_norm: None,
            train_limit: None,
            test_limit: None,
            objective: ObjectiveKind::Elbo,
            k: 1,
            beta: 1.0,
            commitment: default_commitment(),
            restart_codes: true,
            lr_schedule: LrScheduleKind::Constant,
            adam_eps: default_adam_eps(),
            epochs: default_epochs(),
            schedule_epochs: default_epochs(),
            test_fraction: default_test_fraction(),
            image_size: None,
            channels: None,
            polyak: None,
            free_bits: None,
        }
    }
}

// The values of runs written before each setting existed: the plain protocol (the one-sample
// ELBO, a constant rate, Adam's ε 1e-8, 10 epochs planned).
fn default_objective() -> ObjectiveKind {
    ObjectiveKind::Elbo
}
fn one() -> usize {
    1
}
fn one_f32() -> f32 {
    1.0
}
fn default_commitment() -> f32 {
    crate::vqvae::DEFAULT_BETA
}
fn default_schedule() -> LrScheduleKind {
    LrScheduleKind::Constant
}
fn default_adam_eps() -> f32 {
    1e-8
}
fn default_test_fraction() -> f64 {
    crate::data::Prep::default().test_fraction
}
fn default_epochs() -> u64 {
    10
}

/// A struct of settings as metadata entries `<prefix><field>`: each field's JSON value, strings
/// without their quotes and `None` as an empty string (as the first checkpoints wrote them).
pub fn fields_to_metadata<T: Serialize>(value: &T, prefix: &str) -> HashMap<String, String> {
    // Through text: serde_json writes an f32 as its shortest decimal form ("0.001"), where
    // `to_value` would widen it to f64 first ("0.0010000000474974513").
    let text = serde_json::to_string(value).expect("a struct of numbers and names serializes");
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&text) else {
        unreachable!("a struct serializes to an object")
    };
    fields
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            (format!("{prefix}{k}"), text)
        })
        .collect()
}

/// The entries [`fields_to_metadata`] wrote under `prefix`, as JSON values by field name, for
/// `serde_json::from_value` (entries the struct does not name are ignored there).
pub fn fields_from_metadata(m: &HashMap<String, String>, prefix: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    for (key, text) in m {
        let Some(name) = key.strip_prefix(prefix) else { continue };
        let value = match text.as_str() {
            "" => serde_json::Value::Null,
            t => serde_json::from_str(t).unwrap_or_else(|_| serde_json::Value::String(t.to_string())),
        };
        fields.insert(name.to_string(), value);
    }
    fields
}

impl Settings {
    /// What a step minimizes, with its K.
    pub fn objective(&self) -> Objective {
        match self.objective {
            ObjectiveKind::Elbo => Objective::Elbo { k: self.k },
            ObjectiveKind::Iwae => Objective::Iwae { k: self.k },
        }
    }

    /// The settings as `train.*` metadata entries (see [`fields_to_metadata`]).
    pub fn to_metadata(&self) -> HashMap<String, String> {
        fields_to_metadata(self, "train.")
    }

    /// The entries of [`Settings::to_metadata`] that say how the data was prepared (the share
    /// held out for testing, the image size, the channels): the model file keeps them too, so
    /// that the commands that read a model prepare its data as its run did.
    pub fn data_metadata(&self) -> HashMap<String, String> {
        let mut m = self.to_metadata();
        m.retain(|k, _| DATA_KEYS.iter().any(|d| k.strip_prefix("train.") == Some(*d)));
        m
    }

    /// Reads the entries [`Settings::to_metadata`] wrote; older files lack some, which then
    /// take the values those files were trained with.
    pub fn from_metadata(m: &HashMap<String, String>) -> std::result::Result<Self, String> {
        let mut fields = fields_from_metadata(m, "train.");
        // Older files kept β among the model's keys, and planned no schedule of their own.
        if !fields.contains_key("beta") {
            if let Some(beta) = m.get("beta").and_then(|b| serde_json::from_str(b).ok()) {
                fields.insert("beta".into(), beta);
            }
        }
        if !fields.contains_key("schedule_epochs") {
            let epochs = fields.get("epochs").cloned().unwrap_or(serde_json::json!(default_epochs()));
            fields.insert("schedule_epochs".into(), epochs);
        }
        serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| format!("the checkpoint's training settings are unreadable: {e}"))
    }

    /// A fresh optimizer as the settings describe it.
    pub fn optimizer(&self) -> Box<dyn Optimizer> {
        let steps: Box<dyn Optimizer> = match self.optimizer {
            OptimizerKind::Adam => {
                let mut adam = Adam::new(self.lr);
                adam.eps = self.adam_eps;
                Box::new(adam)
            }
            OptimizerKind::Sgd => Box::new(Sgd::new(self.lr, 0.9)),
            OptimizerKind::Adagrad => Box::new(Adagrad::new(self.lr)),
            OptimizerKind::Adamax => Box::new(Adamax::new(self.lr)),
        };
        match self.polyak {
            Some(decay) => Box::new(Averaged::new(steps, decay)),
            None => steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint of the first format (before the IWAE objective): no objective, k, beta,
    /// schedule, ε or epochs among its `train.*` keys, β among the model's.
    #[test]
    fn the_first_checkpoints_settings_still_read() {
        let m: HashMap<String, String> = [
            ("train.seed", "1"),
            ("train.batch_size", "128"),
            ("train.lr", "0.001"),
            ("train.optimizer", "adam"),
            ("train.binarize", "none"),
            ("train.kl_warmup", "0"),
            ("train.clip_norm", ""),
            ("train.train_limit", ""),
            ("train.test_limit", "500"),
            ("train.metrics", "1,2,3\n4,5,6"),
            ("beta", "0.5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = Settings::from_metadata(&m).unwrap();
        assert_eq!((s.objective(), s.beta, s.epochs, s.schedule_epochs), (Objective::Elbo { k: 1 }, 0.5, 10, 10));
        assert_eq!((s.lr, s.clip_norm, s.test_limit, s.adam_eps), (1e-3, None, Some(500), 1e-8));
        let mut bad = m.clone();
        bad.insert("train.lr".into(), "fast".into());
        assert!(Settings::from_metadata(&bad).unwrap_err().contains("training settings"));
    }
}
