//! `vae-cli eval`: the negative ELBO on the test set and, with K importance samples, the
//! estimate of −log p(x) (Burda et al.), as text or one JSON object.

use rayon::prelude::*;
use vae::checkpoint;
use vae::data::{Binarize, Split};
use vae::family::{evaluate_split, StepSettings};
use vae::train::{active_units, iw_log_likelihood, ACTIVE_UNIT_THRESHOLD};
use vae::Family;

use crate::commands::{EvalArgs, Result};
use crate::consistency::{label_consistency, Consistency};
use crate::data::{binarize, load_test, Part};
use crate::progress::Progress;
use crate::say::{say, say_err};
use crate::streams::{stream, Purpose};

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
    let (mut test, dir) = load_test(&args.data, model)?;
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
        crate::pictures::units_chart(&variances, ACTIVE_UNIT_THRESHOLD, path)?;
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
            let data = vae::data::Dataset::load(&dir)?;
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
            obj["nll_bits_per_dim"] = serde_json::json!(bits_per_dim(nll, model));
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
        say!("model      {}", describe(model));
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
            let bpd = bits_per_dim(nll, model);
            say!("−log p{of}  {nll:.4} nats per image (importance-weighted, K = {k}), {bpd:.4} bits per dimension");
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

/// Nats per image as bits per dimension, the unit of papers on natural images: divided by the
/// number of pixels D and by ln 2 (book chapter 10).
fn bits_per_dim(nats: f64, model: &dyn Family) -> f64 {
    let [c, h, w] = model.input();
    nats / ((c * h * w) as f64 * std::f64::consts::LN_2)
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

/// What a test pass gives: the family's term means and its statistics.
pub struct Evaluation {
    /// Per-image means of the family's terms.
    pub means: Vec<f64>,
    /// The statistics of the pass (the VQ-VAE's perplexity).
    pub statistics: Vec<(&'static str, f64)>,
    /// The counts they were computed from (the VQ-VAE's uses of each code).
    pub counts: Vec<u64>,
}

/// The family's terms per image over a split (the negative ELBO's recon and kl, and the IWAE's
/// gain, with z sampled from q(z|x); or the VQ-VAE's terms): chunk c of the split draws from
/// the stream (seed, epoch, c, test), so the numbers are the same on any number of threads.
pub fn evaluate(
    model: &dyn Family,
    split: &Split,
    mode: Binarize,
    knobs: &StepSettings,
    seed: u64,
    epoch: u64,
) -> Evaluation {
    let sums = evaluate_split(model, split, mode, knobs, |c| stream(seed, epoch, c, Purpose::Test));
    Evaluation { means: sums.means(), statistics: model.statistics(&sums.counts), counts: sums.counts }
}

/// The model's one-line description ([`Family::describe`]), such as `mlp 784-400-20 bernoulli`.
pub fn describe(model: &dyn Family) -> String {
    model.describe()
}
