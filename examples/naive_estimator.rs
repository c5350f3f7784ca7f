//! Why a VAE needs an encoder: the naive Monte Carlo estimate of log p(x) against the ELBO and
//! the importance-weighted bound, on MNIST test images (chapter 1 of docs/book).
//!
//! p(x) = ∫ p(x|z) p(z) dz = E_{z~p(z)}[p(x|z)] suggests log p(x) ≈ log (1/K) Σ_k p(x|z_k) with
//! z_k drawn from the prior. For images almost every prior sample decodes to another digit, so
//! p(x|z_k) is astronomically small for nearly all k and the estimate is dominated by the rare
//! lucky draw: it is far below the truth and varies wildly from one run to the next.
//!
//! ```sh
//! cargo run -p vae-cli -- train                  # a trained model in runs/mlp-z20-seed1
//! cargo run --example naive_estimator -- runs/mlp-z20-seed1/model.safetensors
//! ```

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::data::{Binarize, Dataset};
use vae::model::standard_normal;
use vae::train::{evaluate_batch, iw_log_likelihood};
use vae_autodiff::Tape;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ckpt =
        std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| "runs/mlp-z20-seed1/model.safetensors".into());
    let model = vae::checkpoint::load(&ckpt)?.model;
    let data = Dataset::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"))?;
    let n = 100;
    let idx: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(1);
    let x = data.test.batch(&idx, Binarize::None, &mut rng);

    // The ELBO (z from the encoder), averaged over 20 noise draws.
    let elbo: f64 = (0..20).map(|_| -evaluate_batch(&model, x.clone(), &mut rng).mean(1.0).loss).sum::<f64>() / 20.0;
    let iw: f64 = iw_log_likelihood(&model, &x, 1000, 100, &mut rng).iter().sum::<f64>() / n as f64;
    println!("over the first {n} test images, in nats per image:");
    println!("  ELBO (encoder samples, K = 1)           {elbo:9.2}");
    println!("  importance-weighted bound (K = 1000)    {iw:9.2}");

    // Naive: z_k ~ N(0, I), log p(x) ≈ log_sum_exp_k log p(x|z_k) − log K, repeated 5 times.
    // Decoding a few hundred samples per tape keeps the allocator reusing its memory (one tape
    // of 10,000 rows spent a third of the run faulting in fresh pages).
    const ROWS: usize = 500;
    let mut typical = Vec::new(); // log p(x|z) of every prior draw of the first run, K = 1000
    for k in [1000usize, 10_000] {
        let mut runs = Vec::new();
        for run in 0..5 {
            let mut total = 0.0f64;
            for i in 0..n {
                let xi = x.index_axis(ndarray::Axis(0), i).to_owned().insert_axis(ndarray::Axis(0));
                // log p(x|z_k) for k = 1..K, decoded ROWS samples per tape (the prior draws
                // come in the same order whatever ROWS is), then one log_sum_exp over all K.
                let mut log_lik = Vec::with_capacity(k);
                for start in (0..k).step_by(ROWS) {
                    let rows = ROWS.min(k - start);
                    let mut tape = Tape::new();
                    let p = model.params.on_tape(&mut tape);
                    let z = tape.constant(standard_normal(&[rows, model.config.latent], &mut rng));
                    let out = model.decode(&mut tape, &p, z);
                    let xv = tape.constant(xi.broadcast(vec![rows, xi.shape()[1]]).unwrap().to_owned());
                    let recon = model.recon_nll(&mut tape, out, xv); // −log p(x|z_k), [rows]
                    log_lik.extend(tape.value(recon).iter().map(|&r| -r));
                }
                if k == 1000 && run == 0 {
                    typical.extend(log_lik.iter().map(|&v| v as f64));
                }
                let mut tape = Tape::new();
                let log_lik = tape.constant(vae_autodiff::Tensor::from_shape_vec(vec![k], log_lik)?);
                let lse = tape.log_sum_exp(log_lik, 0);
                total += tape.scalar(lse) as f64 - (k as f64).ln();
            }
            runs.push(total / n as f64);
        }
        let shown: Vec<String> = runs.iter().map(|r| format!("{r:.1}")).collect();
        println!("  naive prior sampling (K = {k:>5}), 5 runs: {}", shown.join(", "));
    }
    // What a random code says about an image: log p(x|z) for z from the prior, over all
    // 100 images × 1000 draws.
    typical.sort_by(f64::total_cmp);
    let q = |f: f64| typical[((typical.len() - 1) as f64 * f) as usize];
    println!(
        "  log p(x|z), z from the prior: median {:.0}, 10% {:.0}, 90% {:.0}, largest {:.0}",
        q(0.5),
        q(0.1),
        q(0.9),
        q(1.0)
    );
    Ok(())
}
