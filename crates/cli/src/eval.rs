//! `vae-cli eval`: the negative ELBO on the test set and, with K importance samples, the
//! estimate of −log p(x) (Burda et al.), as text or one JSON object.

use std::path::{Path, PathBuf};

use clap::Args;
use rayon::prelude::*;
use vae::checkpoint;
use vae::family::StepSettings;
use vae::run::streams::{stream, Purpose};
use vae::run::testpass::evaluate;
use vae::run::{binarize, bits_per_dim, counts_bits, Part};
use vae::train::{active_units, iw_log_likelihood, ACTIVE_UNIT_THRESHOLD};

use crate::consistency::{label_consistency, Consistency};
use crate::data::load_test;
use crate::figure::{self, Format, Layout, Mark, Panel, Series};
use crate::image::PALETTE;
use crate::options::{BinarizeKind, Result};
use crate::progress::Progress;
use crate::say::{say, say_err};

/// Flags of `vae-cli eval`.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A model.safetensors or checkpoint.safetensors written by `vae-cli train`.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The data and its preparation.
    #[command(flatten)]
    pub data: crate::options::DataArgs,
    /// Also estimate −log p(x) with K importance samples per image (Burda et al. use 5000).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub iw_samples: Option<u64>,
    /// Also count the active latent units: those whose posterior mean varies across the test
    /// images with variance above 0.01 (Burda et al.).
    #[arg(long)]
    pub active_units: bool,
    /// With --active-units: also draw each unit's variance, most active first, on a
    /// logarithmic axis with the 0.01 threshold, into this PNG.
    #[arg(long, value_name = "FILE", requires = "active_units")]
    pub units_png: Option<PathBuf>,
    /// Conditional models only: draw N samples of every class from the prior (500 when N is
    /// left out) and report the share that look like their class, judged by their nearest
    /// training image (and that judge's own accuracy on 1,000 test images).
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "500", value_parser = clap::value_parser!(u64).range(1..))]
    pub label_consistency: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Pixel binarization of the test images (use the one the model was trained with).
    #[arg(long, value_enum, default_value_t = BinarizeKind::None)]
    pub binarize: BinarizeKind,
    /// Seed of the sampled z (and of binarization).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use only the first N test images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub test_limit: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
}

/// Images per importance-sampling task.
const IW_IMAGES: usize = 10;

/// Decoded rows per chunk (K samples × images), bounding memory whatever K is. Small tapes also
/// let the C allocator reuse its memory: with 2000 rows, `eval --iw-samples 200` on the MLP took
/// 22.0 s, 17.6 s of CPU in the kernel faulting in 6.9 million fresh pages; with 100 to 500
/// rows it takes 12.6–13.1 s and 35,000 faults, with the same result (the noise is drawn in
/// the same order whatever the chunk).
const IW_ROWS: usize = 200;

/// `vae-cli eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let model = checkpoint::load_family(&args.checkpoint)?.model;
    let model = model.as_ref();
    // What each flag needs of the model, asked before any work starts.
    let weighted = match (args.iw_samples, model.importance_weighted()) {
        (Some(_), None) => return Err(format!("--iw-samples needs a model with Gaussian latents; this checkpoint holds a {} (its bound on −log p(x) comes from its prior: vae-cli prior)", model.name()).into()),
        (_, w) => w,
    };
    let layers = match (args.active_units, model.latent_layers()) {
        (true, None) => {
            return Err(format!(
                "--active-units needs a model with Gaussian latents; this checkpoint holds a {}",
                model.name()
            )
            .into())
        }
        (true, Some(l)) => Some(l),
        (false, _) => None,
    };
    let conditional = match (args.label_consistency, model.as_vae()) {
        (Some(_), Some(vae)) if vae.config.classes > 0 => Some(vae),
        (Some(_), _) => return Err("--label-consistency is for conditional models (vae-cli train --family cvae); this checkpoint's samples have no class to keep".into()),
        (None, _) => None,
    };
    let (mut test, dir) = load_test(&args.data, &args.checkpoint, model)?;
    if let Some(n) = args.test_limit {
        test = test.truncated(n as usize);
    }
    let (test, mode) = binarize(test, args.binarize, args.seed, Part::Test);
    // The bound itself (β = 1), whatever β the model was trained with; a VQ-VAE's loss with
    // the paper's commitment weight.
    let knobs = StepSettings::bound();
    let result = evaluate(model, &test, mode, &knobs, args.seed, 0);
    let loss = model.loss(&result.means, &knobs);

    let active = layers.map(|l| {
        let idx: Vec<usize> = (0..test.len()).collect();
        let mut rng = stream(args.seed, 0, 0, Purpose::Test);
        let x = test.rows(&idx, mode, &mut rng, model.classes());
        let names = l.latent_layers();
        let means = l.posterior_means(x, &mut rng);
        names.into_iter().zip(means.iter().map(active_units)).map(|((name, _), a)| (name, a)).collect::<Vec<_>>()
    });
    if let (Some(path), Some(active)) = (&args.units_png, &active) {
        let variances: Vec<f64> = active.iter().flat_map(|(_, (_, v))| v.iter().copied()).collect();
        units_chart(&variances, ACTIVE_UNIT_THRESHOLD, path)?;
        // On stderr, so that --json keeps standard output to the one JSON object.
        say_err!("wrote the activity of {} latent units to {}", variances.len(), path.display());
    }

    let nll = args.iw_samples.zip(weighted).map(|(k, weighted)| {
        let k = k as usize;
        let groups: Vec<usize> = (0..test.len().div_ceil(IW_IMAGES)).collect();
        let bar = Progress::new(groups.len() as u64, format!("−log p(x), K={k}"));
        let per_group: Vec<f64> = groups
            .par_iter()
            .map(|&g| {
                let mut rng = stream(args.seed, 0, g as u64, Purpose::Test);
                let idx: Vec<usize> = (g * IW_IMAGES..((g + 1) * IW_IMAGES).min(test.len())).collect();
                let x = test.rows(&idx, mode, &mut rng, model.classes());
                let chunk = (IW_ROWS / idx.len()).max(1);
                let ll: f64 = iw_log_likelihood(weighted, &x, k, chunk, &mut rng).iter().sum();
                bar.step(String::new);
                -ll
            })
            .collect();
        let total: f64 = per_group.iter().sum(); // in group order: the same on any thread count
        bar.finish();
        (k, total / test.len() as f64)
    });

    let consistency = match conditional {
        Some(vae) => {
            let (data, _) = crate::data::load_for_model(&args.data, &args.checkpoint, model)?;
            Some(label_consistency(
                vae,
                &data.train,
                &data.test,
                args.label_consistency.unwrap_or(500) as usize,
                args.seed,
            ))
        }
        None => None,
    };

    let shown: Vec<(&str, f64)> =
        model.shown().iter().map(|&name| (name, vae::family::term(model.terms(), &result.means, name))).collect();
    if args.json {
        let mut obj = serde_json::json!({ "family": model.name(), "test_loss": loss });
        for (name, v) in shown.iter().copied().chain(result.statistics.iter().copied()) {
            obj[name] = serde_json::json!(v);
        }
        if let Some((k, nll)) = nll {
            obj["nll"] = serde_json::json!(nll);
            if counts_bits(model, args.binarize) {
                obj["nll_bits_per_dim"] = serde_json::json!(bits_per_dim(nll, model));
            }
            obj["iw_samples"] = serde_json::json!(k);
        }
        if let Some(active) = &active {
            let total: usize = active.iter().map(|(_, (count, _))| count).sum();
            let variances: Vec<f64> = active.iter().flat_map(|(_, (_, v))| v.iter().copied()).collect();
            obj["active_units"] = serde_json::json!(total);
            obj["latent_variances"] = serde_json::json!(variances);
            if active.len() > 1 {
                let per_layer: Vec<_> = active
                    .iter()
                    .map(|(name, (count, v))| serde_json::json!({ "layer": name, "active_units": count, "units": v.len(), "latent_variances": v }))
                    .collect();
                obj["layers"] = serde_json::json!(per_layer);
            }
        }
        if let Some(c) = &consistency {
            obj["label_consistency"] = serde_json::json!(c.mean());
            obj["label_consistency_per_class"] = serde_json::json!(c.per_class);
            obj["label_confusion"] = serde_json::json!(c.confusion);
            obj["nearest_neighbour_test_accuracy"] = serde_json::json!(c.classifier_accuracy.0);
        }
        say!("{obj}");
    } else {
        say!("model      {}", model.describe());
        say!("test set   {} images from {}", test.len(), dir.display());
        say!("test loss  {loss:.4} {}", model.loss_name(&knobs));
        for (name, v) in &shown {
            say!("  {name:<8} {v:.4}");
        }
        for (name, v) in &result.statistics {
            say!("{name:<10} {v:.2}");
        }
        // A conditional model's bound is that of log p(x|y), the label given.
        let of = if model.classes() > 0 { "(x|y)" } else { "(x)" };
        if let Some((k, nll)) = nll {
            let bpd = match counts_bits(model, args.binarize) {
                true => format!(", {:.4} bits per dimension", bits_per_dim(nll, model)),
                false => String::new(),
            };
            say!("−log p{of}  {nll:.4} nats per image (importance-weighted, K = {k}){bpd}");
        }
        if let Some(active) = &active {
            for (name, (count, variances)) in active {
                let j = variances.len();
                let layer = if active.len() > 1 { format!(" of {name}") } else { String::new() };
                say!(
                    "active units{layer}  {count} of {j} (variance of the posterior mean across test images above {ACTIVE_UNIT_THRESHOLD})"
                );
            }
        }
        if let Some(c) = &consistency {
            print_consistency(c);
        }
    }
    Ok(())
}

/// The text report of `--label-consistency`: the mean, then a row of shares per class.
fn print_consistency(c: &Consistency) {
    let (accuracy, checked) = c.classifier_accuracy;
    say!(
        "label consistency  {:.3}: the share of samples of class y whose nearest training image is a y, mean over classes ({} samples per class; that classifier labels {:.1}% of the first {checked} test images right)",
        c.mean(),
        c.per_class_samples,
        100.0 * accuracy
    );
    let cells = |f: &dyn Fn(usize) -> String| (0..c.per_class.len()).map(f).collect::<Vec<_>>().join(" ");
    say!("  class  {}", cells(&|y| format!("{y:>5}")));
    say!("  share  {}", cells(&|y| format!("{:>5.2}", c.per_class[y])));
}

/// `eval --units-png`: each latent unit's activity, the variance of its posterior mean across
/// the test images, sorted from the most active down, on a logarithmic axis, with Burda et al.'s
/// threshold of 0.01 drawn across: the units above the line carry information about x, those
/// below have collapsed onto the prior.
pub fn units_chart(variances: &[f64], threshold: f64, out: &Path) -> Result<()> {
    let mut sorted: Vec<f64> = variances.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let active = sorted.iter().filter(|&&v| v > threshold).count();
    // Decades that hold every variance and the threshold; a zero variance sits on the floor.
    let positive = sorted.iter().copied().filter(|&v| v > 0.0);
    let lo = positive.clone().fold(threshold, f64::min);
    let hi = positive.fold(threshold, f64::max);
    let y = 10f64.powf(lo.log10().floor())..10f64.powf(hi.log10().ceil());
    let x = 0.0..sorted.len() as f64 + 1.0;
    let ranked = |keep: &dyn Fn(f64) -> bool| -> Vec<(f64, f64)> {
        let at = sorted.iter().enumerate().map(|(rank, &v)| (rank as f64 + 1.0, v.max(y.start)));
        at.filter(|&(rank, _)| keep(sorted[rank as usize - 1])).collect()
    };
    let dots = |name: &str, points, color| Series { mark: Mark::Dots(5), ..Series::line(name, points) }.colored(color);
    let series = vec![
        Series::line(&format!("threshold {threshold}"), vec![(x.start, threshold), (x.end, threshold)])
            .colored(PALETTE[7]),
        dots("active", ranked(&|v| v > threshold), PALETTE[0]),
        dots("inactive", ranked(&|v| v <= threshold), PALETTE[1]),
    ];
    let panel = Panel {
        log_y: true,
        range: Some((x, y)),
        ..Panel::new("", ("units, most active first", "variance of the posterior mean over x"), series)
    };
    let title = format!("active units: {active} of {}", sorted.len());
    let chart = figure::draw(&title, &[panel], ((900, 460), Layout::Row), Format::of(out))?;
    Ok(checkpoint::write_atomic(out, &chart)?)
}
