//! `vae-cli eval`: the negative ELBO on the test set and, with K importance samples, the
//! estimate of −log p(x) (Burda et al.), as text or one JSON object.

use rayon::prelude::*;
use vae::checkpoint;
use vae::data::{Binarize, Split};
use vae::family::{evaluate_split, StepSettings};
use vae::objective::Objective;
use vae::train::{active_units, iw_log_likelihood, Terms, ACTIVE_UNIT_THRESHOLD};
use vae::{Activation, Arch, Family, Likelihood, VaeConfig};

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
    let family = checkpoint::load_family(&args.checkpoint)?.model;
    if args.label_consistency.is_some() && family.classes() == 0 {
        return Err("--label-consistency is for conditional models (vae-cli train --family cvae); this checkpoint's samples have no class to keep".into());
    }
    let (mut test, dir) = load_test(&args.data, family.as_ref())?;
    if let Some(n) = args.test_limit {
        test = test.truncated(n as usize);
    }
    let (test, mode) = binarize(test, args.binarize, args.seed, Part::Test);
    // The negative ELBO itself (β = 1), whatever β the model was trained with; a VQ-VAE's
    // loss with the paper's commitment weight.
    let beta = if family.as_vae().is_some() { 1.0 } else { vae::vqvae::DEFAULT_BETA };
    let knobs = StepSettings { objective: Objective::default(), beta, clip: None };
    let result = evaluate(family.as_ref(), &test, mode, &knobs, args.seed, 0);
    let Some(model) = family.as_vae() else {
        return report_vq(&args, family.as_ref(), &result, &knobs, test.len(), &dir);
    };
    let terms =
        Terms { loss: family.loss(&result.means, &knobs), recon: result.means[0], kl: result.means[1], gain: 0.0 };
    let active = args.active_units.then(|| {
        let idx: Vec<usize> = (0..test.len()).collect();
        let x = test.rows(&idx, mode, &mut stream(args.seed, 0, 0, Purpose::Test), model.config.classes);
        active_units(&model.encode_values(x).0)
    });

    if let (Some(path), Some((_, variances))) = (&args.units_png, &active) {
        crate::pictures::units_chart(variances, ACTIVE_UNIT_THRESHOLD, path)?;
        // On stderr, so that --json keeps standard output to the one JSON object.
        say_err!("wrote the activity of {} latent units to {}", variances.len(), path.display());
    }

    let nll = args.iw_samples.map(|k| {
        let k = k as usize;
        let groups: Vec<usize> = (0..test.len().div_ceil(IW_IMAGES)).collect();
        let bar = Progress::new(groups.len() as u64, format!("−log p(x), K={k}"));
        let per_group: Vec<f64> = groups
            .par_iter()
            .map(|&g| {
                let mut rng = stream(args.seed, 0, g as u64, Purpose::Test);
                let idx: Vec<usize> = (g * IW_IMAGES..((g + 1) * IW_IMAGES).min(test.len())).collect();
                let x = test.rows(&idx, mode, &mut rng, model.config.classes);
                let chunk = (IW_ROWS / idx.len()).max(1);
                let ll: f64 = iw_log_likelihood(model, &x, k, chunk, &mut rng).iter().sum();
                bar.step(String::new);
                -ll
            })
            .collect();
        let total: f64 = per_group.iter().sum(); // in group order: the same on any thread count
        bar.finish();
        (k, total / test.len() as f64)
    });

    let consistency = match args.label_consistency {
        Some(n) => {
            let data = vae::data::Dataset::load(&dir)?;
            Some(label_consistency(model, &data.train, &data.test, n as usize, args.seed))
        }
        None => None,
    };

    if args.json {
        let family = model.config.family();
        let mut obj =
            serde_json::json!({ "family": family, "test_loss": terms.loss, "recon": terms.recon, "kl": terms.kl });
        if let Some((k, nll)) = nll {
            obj["nll"] = serde_json::json!(nll);
            obj["nll_bits_per_dim"] = serde_json::json!(bits_per_dim(nll, model));
            obj["iw_samples"] = serde_json::json!(k);
        }
        if let Some((count, variances)) = &active {
            obj["active_units"] = serde_json::json!(count);
            obj["latent_variances"] = serde_json::json!(variances);
        }
        if let Some(c) = &consistency {
            obj["label_consistency"] = serde_json::json!(c.mean());
            obj["label_consistency_per_class"] = serde_json::json!(c.per_class);
            obj["label_confusion"] = serde_json::json!(c.confusion);
            obj["nearest_neighbour_test_accuracy"] = serde_json::json!(c.classifier_accuracy.0);
        }
        say!("{obj}");
    } else {
        say!("model      {}", describe(family.as_ref()));
        say!("test set   {} images from {}", test.len(), dir.display());
        // A conditional model's bound is that of log p(x|y), the label given.
        let (bound, of) = if model.config.classes > 0 { ("conditional ", "(x|y)") } else { ("", "(x)") };
        say!("test loss  {:.4} nats per image ({bound}negative ELBO, z sampled)", terms.loss);
        say!("  recon    {:.4}", terms.recon);
        say!("  kl       {:.4}", terms.kl);
        if let Some((k, nll)) = nll {
            let bpd = bits_per_dim(nll, model);
            say!("−log p{of}  {nll:.4} nats per image (importance-weighted, K = {k}), {bpd:.4} bits per dimension");
        }
        if let Some((count, variances)) = &active {
            let j = variances.len();
            say!(
                "active units  {count} of {j} (variance of the posterior mean across test images above {ACTIVE_UNIT_THRESHOLD})"
            );
        }
        if let Some(c) = &consistency {
            print_consistency(c);
        }
    }
    Ok(())
}

/// Nats per image as bits per dimension, the unit of papers on natural images: divided by the
/// number of pixels D and by ln 2 (book chapter 10).
fn bits_per_dim(nats: f64, model: &vae::Vae) -> f64 {
    let [c, h, w] = model.config.input;
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

/// `vae-cli eval` of a VQ-VAE: its terms and the perplexity of its codes on the test set. The
/// importance-weighted bound and active units belong to Gaussian latents.
fn report_vq(
    args: &EvalArgs,
    model: &dyn Family,
    r: &Evaluation,
    knobs: &StepSettings,
    n: usize,
    dir: &std::path::Path,
) -> Result<()> {
    if args.iw_samples.is_some() || args.active_units {
        return Err("--iw-samples and --active-units need a Gaussian latent; this checkpoint holds a VQ-VAE (its bound on −log p(x) comes from its prior: vae-cli prior)".into());
    }
    let loss = model.loss(&r.means, knobs);
    if args.json {
        let mut obj = serde_json::json!({ "family": model.name(), "test_loss": loss });
        for (name, v) in model.terms().iter().zip(&r.means) {
            obj[*name] = serde_json::json!(v);
        }
        for (name, v) in &r.statistics {
            obj[*name] = serde_json::json!(v);
        }
        say!("{obj}");
    } else {
        say!("model      {}", describe(model));
        say!("test set   {n} images from {}", dir.display());
        say!("test loss  {loss:.4} per image (recon + codebook + {}·commit)", knobs.beta);
        for (name, v) in model.terms().iter().zip(&r.means) {
            say!("  {name:<8} {v:.4}");
        }
        for (name, v) in &r.statistics {
            say!("{name:<10} {v:.2} of {} codes", model.metadata().get("codebook_size").map_or("?", String::as_str));
        }
    }
    Ok(())
}

/// A one-line description such as `mlp 784-400-20 bernoulli` (`tanh` named when chosen; a
/// conditional model's begins `cvae, 10 classes,`, a VQ-VAE's `vqvae`).
pub fn describe(model: &dyn Family) -> String {
    let Some(vae) = model.as_vae() else {
        let m = model.metadata();
        let get = |k: &str| m.get(k).map_or("?", String::as_str).to_string();
        return format!(
            "vqvae {} {}, codebook {}×{}",
            get("model"),
            get("input").replace(", ", "×").trim_matches(['[', ']']),
            get("codebook_size"),
            get("code_dim")
        );
    };
    let c = &vae.config;
    let body = describe_body(c);
    match c.classes {
        0 => body,
        y => format!("cvae, {y} classes, {body}"),
    }
}

fn describe_body(c: &VaeConfig) -> String {
    let mut lik = match c.likelihood {
        Likelihood::Bernoulli => "bernoulli".to_string(),
        Likelihood::Gaussian { sigma } => format!("gaussian σ={sigma}"),
    };
    if c.activation != Activation::Relu {
        lik = format!("{} {lik}", c.activation.name());
    }
    match &c.arch {
        Arch::Mlp { hidden } => {
            let sizes: Vec<String> = std::iter::once(c.input_len())
                .chain(hidden.iter().copied())
                .chain([c.latent])
                .map(|s| s.to_string())
                .collect();
            format!("mlp {} {lik}", sizes.join("-"))
        }
        Arch::Conv { layers } => {
            let ch: Vec<String> = layers.iter().map(|l| l.channels.to_string()).collect();
            format!(
                "conv {}→{}→z{} {lik}",
                c.input.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("×"),
                ch.join("→"),
                c.latent
            )
        }
    }
}
