//! `vae-cli prior`: the VQ-VAE's second stage. Encodes the training and test images to their
//! codes, trains the autoregressive prior (`vae::prior`) on them, reports its negative
//! log-likelihood and the bound it gives on −log p(x), and draws pictures: samples through the
//! prior beside samples of uniform random codes, and the codes' use.

use std::path::Path;

use rand::seq::SliceRandom;
use vae::checkpoint;
use vae::data::{Binarize, Dataset, Split};
use vae::prior::{train_step, Prior, PriorConfig};
use vae::vqvae::{perplexity, VqVae};
use vae_layers::optim::Adam;

use crate::commands::{PriorArgs, Result};
use crate::data::{check_split, data_dir};
use crate::image::{grid, Canvas, PALETTE};
use crate::plot::{padded_range, Chart};
use crate::progress::Progress;
use crate::streams::{stream, Purpose};

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

/// The prior of a file written by `vae-cli prior`, over the codes of `model`.
pub fn load_prior(path: &Path, model: &VqVae) -> Result<Prior> {
    let (tensors, metadata) = checkpoint::read_tensors(path)?;
    let config = PriorConfig::from_metadata(&metadata).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut prior = Prior::new(config, model.params.get(model.codebook).clone(), &mut stream(0, 0, 0, Purpose::Init))
        .map_err(|e| format!("{}: {e} (was it trained for this VQ-VAE?)", path.display()))?;
    checkpoint::restore_params(&mut prior.params, tensors).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(prior)
}

/// The codes of every image of a split (grey values), image after image.
fn codes_of(model: &VqVae, split: &Split) -> Vec<usize> {
    let idx: Vec<usize> = (0..split.len()).collect();
    let mut codes = Vec::with_capacity(split.len() * model.config.codes());
    for chunk in idx.chunks(1000) {
        let x = split.batch(chunk, Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures));
        codes.extend(model.encode_codes(&x));
    }
    codes
}

/// `vae-cli prior`.
pub fn run(args: PriorArgs) -> Result<()> {
    let model = load_vq(&args.checkpoint)?;
    let dir = data_dir(&args.data);
    let data = Dataset::load(&dir)?;
    check_split(&model, &data.train, &dir)?;
    let (mut train, mut test) = (data.train, data.test);
    if let Some(n) = args.train_limit {
        train = train.truncated(n as usize);
    }
    if let Some(n) = args.test_limit {
        test = test.truncated(n as usize);
    }
    let out = args.out.clone().unwrap_or_else(|| args.checkpoint.parent().unwrap_or(Path::new(".")).to_path_buf());
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let (l, kc) = (model.config.codes(), model.config.codebook_size);
    println!("encoding {} training and {} test images to {l} codes each", train.len(), test.len());
    let (train_codes, test_codes) = (codes_of(&model, &train), codes_of(&model, &test));

    let config = PriorConfig {
        places: l,
        codebook_size: kc,
        code_dim: model.config.code_dim,
        hidden: args.hidden.iter().map(|&h| h as usize).collect(),
    };
    let mut prior =
        Prior::new(config, model.params.get(model.codebook).clone(), &mut stream(args.seed, 0, 0, Purpose::Init))?;
    let mut adam = Adam::new(args.lr);
    let batch = args.batch_size as usize;
    println!(
        "training a masked autoregressive prior ({} parameters) over {l} places × {kc} codes for {} epochs",
        prior.params.num_scalars(),
        args.epochs
    );
    for epoch in 0..args.epochs {
        let t0 = std::time::Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut stream(args.seed, epoch, 0, Purpose::Shuffle));
        let steps = order.len().div_ceil(batch);
        let bar = Progress::new(steps as u64, format!("prior epoch {}/{}", epoch + 1, args.epochs));
        let (mut sum, mut count) = (0.0, 0);
        for idx in order.chunks(batch) {
            let codes: Vec<usize> = idx.iter().flat_map(|&i| train_codes[i * l..(i + 1) * l].iter().copied()).collect();
            let nll =
                train_step(&mut prior, &mut adam, &codes).map_err(|e| format!("training the prior diverged: {e}"))?;
            sum += nll * idx.len() as f64;
            count += idx.len();
            bar.step(|| format!("nll {:.2}", sum / count as f64));
        }
        bar.finish();
        let test_nll = prior.nll_value(&test_codes);
        println!(
            "prior epoch {:>3}/{}  train nll {:.2}  test nll {test_nll:.2} nats per image  {:.1}s",
            epoch + 1,
            args.epochs,
            sum / count.max(1) as f64,
            t0.elapsed().as_secs_f64()
        );
    }

    // The bound: p(x) = Σ_k p(x|k) p(k) ≥ p(x|k*) p(k*) for the encoder's codes k*, so
    // −log p(x) ≤ −log p(x|k*) − log p(k*): the VQ-VAE's recon plus the prior's NLL.
    let x_test =
        test.batch(&(0..test.len()).collect::<Vec<_>>(), Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures));
    let totals = vae::vqvae::evaluate_batch(&model, &x_test);
    let recon = totals.mean(0.0).recon;
    let prior_nll = prior.nll_value(&test_codes);
    let uniform_nll = l as f64 * (kc as f64).ln();
    let bound = recon + prior_nll;
    let ppl = perplexity(&totals.code_counts);
    println!("test: recon −log p(x|k*) {recon:.2}, prior −log p(k*) {prior_nll:.2} (uniform codes: {uniform_nll:.2}) nats per image");
    println!("−log p(x) ≤ {bound:.2} nats per image with the learned prior ({:.2} with uniform codes); codes in use: perplexity {ppl:.1} of {kc}", recon + uniform_nll);

    let mut meta = prior.config.to_metadata();
    meta.insert(checkpoint::FORMAT_KEY.into(), "vae-engine-prior/1".into());
    let tensors: Vec<(String, std::borrow::Cow<vae_autodiff::Tensor>)> =
        prior.params.iter_pytorch().map(|(n, t)| (n.to_string(), t)).collect();
    let refs: Vec<(String, &vae_autodiff::Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t.as_ref())).collect();
    checkpoint::write_atomic(&out.join("prior.safetensors"), &checkpoint::encode(&refs, meta)?)?;
    let summary = serde_json::json!({
        "test_recon": recon, "test_prior_nll": prior_nll, "uniform_prior_nll": uniform_nll,
        "nll_bound": bound, "uniform_nll_bound": recon + uniform_nll, "perplexity": ppl,
        "codebook_size": kc, "places": l, "epochs": args.epochs,
    });
    checkpoint::write_atomic(&out.join("prior.json"), format!("{summary}\n").as_bytes())?;

    // Pictures: 64 samples through the prior beside 64 of uniform codes; the codes' use.
    let [_, h, w] = model.config.input;
    let mut rng = stream(args.seed, 0, 0, Purpose::Pictures);
    grid(&model.decode_codes(&prior.sample(64, &mut rng)), 8, 8, h, w).save(&out.join("prior_samples.png"))?;
    let uniform: Vec<usize> = (0..64 * l).map(|_| rand::Rng::random_range(&mut rng, 0..kc)).collect();
    grid(&model.decode_codes(&uniform), 8, 8, h, w).save(&out.join("uniform_samples.png"))?;
    code_histogram(&totals.code_counts, &out.join("code_use.png"))?;
    println!(
        "wrote prior.safetensors, prior.json, prior_samples.png, uniform_samples.png and code_use.png to {}",
        out.display()
    );
    Ok(())
}

/// A bar chart of how often each code was chosen, most used first.
fn code_histogram(counts: &[u64], path: &Path) -> Result<()> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let mut share: Vec<f64> = counts.iter().map(|&c| 100.0 * c as f64 / total).collect();
    share.sort_by(|a, b| b.total_cmp(a));
    let mut canvas = Canvas::new(900, 500, [255, 255, 255]);
    let used = counts.iter().filter(|&&c| c > 0).count();
    let title =
        format!("CODE USE ON THE TEST SET: {used} OF {} CODES, PERPLEXITY {:.1}", counts.len(), perplexity(counts));
    let chart = Chart::draw(
        &mut canvas,
        (0, 0, 900, 500),
        (0.0, counts.len() as f64),
        padded_range(share.iter().copied().chain([0.0])),
        &title,
        "CODES, MOST USED FIRST",
        "PERCENT",
    );
    for (k, &s) in share.iter().enumerate() {
        chart.line(&mut canvas, &[(k as f64 + 0.5, 0.0), (k as f64 + 0.5, s)], PALETTE[0]);
    }
    canvas.save(path)?;
    Ok(())
}
