//! The training settings a run keeps in its checkpoint's metadata (`train.*` keys), so that
//! `--resume` continues with exactly them.

use std::collections::HashMap;

use clap::ValueEnum;
use vae::objective::Objective;
use vae_layers::optim::{Adagrad, Adam, Optimizer, Sgd};

use crate::commands::{BinarizeKind, LrScheduleKind, ObjectiveKind, OptimizerKind, Protocol, TrainArgs};

/// The learning rate when --lr is not given (PyTorch's example).
pub const DEFAULT_LR: f32 = 1e-3;

/// The training settings a run keeps in its checkpoint, so that `--resume` continues with them.
#[derive(Clone, Debug, PartialEq)]
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
    /// What a step minimizes, with its K.
    pub objective: Objective,
    /// The KL weight β of the ELBO objective.
    pub beta: f32,
    /// The VQ-VAE's commitment weight β.
    pub commitment: f32,
    /// Whether the VQ-VAE moves codes unused in an epoch's test pass onto encoder outputs.
    pub restart_codes: bool,
    /// The learning-rate schedule.
    pub lr_schedule: LrScheduleKind,
    /// Adam's ε.
    pub adam_eps: f32,
    /// The run's planned epochs.
    pub epochs: u64,
    /// The epochs the learning-rate schedule spans (usually `epochs`).
    pub schedule_epochs: u64,
}

/// The command-line name of a value of a flag's enum.
pub fn enum_name<T: clap::ValueEnum>(v: T) -> String {
    v.to_possible_value().expect("no skipped variants").get_name().to_string()
}

impl Settings {
    /// The settings of a new run, from its flags.
    pub fn from_args(a: &TrainArgs, p: &Protocol) -> Self {
        let objective = match a.objective {
            ObjectiveKind::Elbo => Objective::Elbo { k: a.k as usize },
            ObjectiveKind::Iwae => Objective::Iwae { k: a.k as usize },
        };
        Self {
            seed: a.seed,
            batch_size: p.batch_size,
            lr: a.lr.unwrap_or(DEFAULT_LR),
            optimizer: a.optimizer,
            binarize: p.binarize,
            kl_warmup: a.kl_warmup,
            clip_norm: a.clip_norm,
            train_limit: a.train_limit.map(|n| n as usize),
            test_limit: a.test_limit.map(|n| n as usize),
            objective,
            beta: a.beta,
            commitment: a.commitment,
            restart_codes: !a.keep_dead_codes,
            lr_schedule: p.lr_schedule,
            adam_eps: p.adam_eps,
            epochs: p.epochs,
            schedule_epochs: a.schedule_epochs.unwrap_or(p.epochs),
        }
    }

    /// The settings as `train.*` metadata entries.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        HashMap::from([
            ("train.seed".into(), self.seed.to_string()),
            ("train.batch_size".into(), self.batch_size.to_string()),
            ("train.lr".into(), self.lr.to_string()),
            ("train.optimizer".into(), enum_name(self.optimizer)),
            ("train.binarize".into(), enum_name(self.binarize)),
            ("train.kl_warmup".into(), self.kl_warmup.to_string()),
            ("train.clip_norm".into(), opt(self.clip_norm.map(|v| v.to_string()))),
            ("train.train_limit".into(), opt(self.train_limit.map(|v| v.to_string()))),
            ("train.test_limit".into(), opt(self.test_limit.map(|v| v.to_string()))),
            ("train.objective".into(), self.objective.name().into()),
            ("train.k".into(), self.objective.k().to_string()),
            ("train.beta".into(), self.beta.to_string()),
            ("train.commitment".into(), self.commitment.to_string()),
            ("train.restart_codes".into(), self.restart_codes.to_string()),
            ("train.lr_schedule".into(), enum_name(self.lr_schedule)),
            ("train.adam_eps".into(), self.adam_eps.to_string()),
            ("train.epochs".into(), self.epochs.to_string()),
            ("train.schedule_epochs".into(), self.schedule_epochs.to_string()),
        ])
    }

    /// Reads the entries [`Settings::to_metadata`] wrote; older files lack some, which then
    /// take the values those files were trained with.
    pub fn from_metadata(m: &HashMap<String, String>) -> std::result::Result<Self, String> {
        let get = |k: &str| m.get(&format!("train.{k}")).ok_or(format!("the checkpoint has no training setting {k:?}"));
        fn parse<T: std::str::FromStr>(k: &str, v: &str) -> std::result::Result<T, String> {
            v.parse().map_err(|_| format!("training setting {k:?} = {v:?} is malformed"))
        }
        let optional = |k: &str| -> std::result::Result<Option<String>, String> {
            let v = get(k)?;
            Ok((!v.is_empty()).then(|| v.clone()))
        };
        let value_enum = |k: &str| -> std::result::Result<String, String> { get(k).cloned() };
        // Keys added with the IWAE objective; checkpoints written before them hold the plain
        // protocol (the one-sample ELBO, a constant rate, Adam's ε 1e-8, 10 epochs planned).
        let or = |k: &str, default: &str| m.get(&format!("train.{k}")).cloned().unwrap_or_else(|| default.to_string());
        let k: usize = parse("k", &or("k", "1"))?;
        Ok(Self {
            objective: Objective::parse(&or("objective", "elbo"), k)?,
            // Older files kept β among the model's keys.
            beta: parse("beta", &or("beta", m.get("beta").map_or("1", String::as_str)))?,
            commitment: parse("commitment", &or("commitment", "0.25"))?,
            restart_codes: parse("restart_codes", &or("restart_codes", "false"))?,
            lr_schedule: LrScheduleKind::from_str(&or("lr_schedule", "constant"), false)?,
            adam_eps: parse("adam_eps", &or("adam_eps", "1e-8"))?,
            epochs: parse("epochs", &or("epochs", "10"))?,
            schedule_epochs: parse("schedule_epochs", &or("schedule_epochs", &or("epochs", "10")))?,
            seed: parse("seed", get("seed")?)?,
            batch_size: parse("batch_size", get("batch_size")?)?,
            lr: parse("lr", get("lr")?)?,
            optimizer: OptimizerKind::from_str(&value_enum("optimizer")?, false)?,
            binarize: BinarizeKind::from_str(&value_enum("binarize")?, false)?,
            kl_warmup: parse("kl_warmup", get("kl_warmup")?)?,
            clip_norm: optional("clip_norm")?.map(|v| parse("clip_norm", &v)).transpose()?,
            train_limit: optional("train_limit")?.map(|v| parse("train_limit", &v)).transpose()?,
            test_limit: optional("test_limit")?.map(|v| parse("test_limit", &v)).transpose()?,
        })
    }

    /// A fresh optimizer as the settings describe it.
    pub fn optimizer(&self) -> Box<dyn Optimizer> {
        match self.optimizer {
            OptimizerKind::Adam => {
                let mut adam = Adam::new(self.lr);
                adam.eps = self.adam_eps;
                Box::new(adam)
            }
            OptimizerKind::Sgd => Box::new(Sgd::new(self.lr, 0.9)),
            OptimizerKind::Adagrad => Box::new(Adagrad::new(self.lr)),
        }
    }
}
