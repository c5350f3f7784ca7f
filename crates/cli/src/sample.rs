//! `vae-cli sample`: decoded samples of a model's generative side, in a grid (a row per class
//! for a conditional model), optionally as an IDX file.

use std::path::PathBuf;

use clap::Args;
use vae::checkpoint;
use vae::run::streams::{stream, Purpose};

use crate::image::grid;
use crate::options::{LabelArgs, ModelArgs, Result};
use crate::pictures::{chosen_label, done};
use crate::say::say;

/// Flags of `vae-cli sample`.
#[derive(Args, Debug, Clone)]
pub struct SampleArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of samples.
    #[arg(short = 'n', long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub count: u64,
    /// Seed of the latent draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "samples.png")]
    pub out: PathBuf,
    /// A conditional model draws this class; without it, one row per class.
    #[command(flatten)]
    pub label: LabelArgs,
    /// Also write the drawn images as an IDX file (MNIST's own format, unsigned bytes 0–255,
    /// [n, H, W]) that other tools can read.
    #[arg(long, value_name = "FILE")]
    pub idx: Option<PathBuf>,
    /// VQ-VAE only: draw the codes from this learned prior (`vae-cli prior` writes
    /// prior.safetensors) instead of uniformly.
    #[arg(long, value_name = "FILE")]
    pub prior: Option<PathBuf>,
}

/// `vae-cli sample`: decoded samples from the prior, in a square-ish grid; a conditional model
/// draws the class of `--label`, or one row per class. `--idx` also writes the images as IDX.
pub fn run(args: SampleArgs) -> Result<()> {
    let model = checkpoint::load_family(&args.model.checkpoint)?.model;
    let n = args.count as usize;
    let label = chosen_label(model.as_ref(), &args.label, 0)?;
    // Rows and columns of the grid, and each image's class.
    let classes = model.classes();
    let (rows, cols, labels): (usize, usize, Vec<usize>) = match (classes, args.label.label) {
        (c, None) if c > 0 => {
            let cols = n.div_ceil(c);
            (c, cols, (0..c * cols).map(|i| i / cols).collect())
        }
        _ => {
            let cols = (n as f64).sqrt().ceil() as usize;
            (n.div_ceil(cols), cols, vec![label.unwrap_or(0); n])
        }
    };
    let rng = &mut stream(args.seed, 0, 0, Purpose::Pictures);
    let images = match &args.prior {
        None => model.sample(labels.len(), &labels, rng),
        Some(path) => {
            let vq = crate::prior_run::load_vq(&args.model.checkpoint)?;
            let prior = crate::prior_run::load_prior(path, &vq)?;
            vq.decode_codes(&prior.sample(labels.len(), rng))
        }
    };
    let [_, h, w] = model.input();
    grid(&images, rows, cols, h, w).save(&args.out)?;
    if let Some(path) = &args.idx {
        let bytes: Vec<u8> = images.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        checkpoint::write_atomic(path, &vae::data::encode_idx(&[labels.len(), h, w], &bytes))?;
        say!("wrote {} images as IDX ([{}, {h}, {w}], bytes 0–255) to {}", labels.len(), labels.len(), path.display());
    }
    let what = match (classes, label) {
        (0, _) if args.prior.is_some() => format!("{n} samples through the learned prior"),
        (0, _) => format!("{n} samples from {}", model.sample_source()),
        (_, Some(l)) if args.label.label.is_some() => format!("{n} samples of class {l}"),
        (c, _) => format!("{} samples, a row for each of {c} classes", labels.len()),
    };
    done(&args.out, &what)
}
