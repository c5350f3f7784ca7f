//! The default model trained and evaluated through the library alone (no CLI): PyTorch's MNIST
//! example, 784-400-20 Bernoulli VAE, Adam 1e-3, batch 128. Chapter 8 of docs/book reads it.
//!
//! ```sh
//! cargo run --release --example train_mnist          # 10 epochs, about 30 s on 2 cores
//! cargo run --release --example train_mnist -- 2     # 2 epochs
//! ```

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use vae::data::{Binarize, Dataset};
use vae::model::standard_normal;
use vae::objective::Objective;
use vae::train::{evaluate_split, train_step, Totals};
use vae::{Vae, VaeConfig};
use vae_layers::optim::Adam;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs: usize = std::env::args().nth(1).map_or(Ok(10), |a| a.parse())?;
    let data = Dataset::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"))?;
    let mut rng = StdRng::seed_from_u64(1);
    let mut model = Vae::new(VaeConfig::mlp_mnist(), &mut rng)?;
    let mut adam = Adam::new(1e-3);
    let beta = 1.0; // the KL weight: 1 is the true negative ELBO
    for epoch in 1..=epochs {
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        order.shuffle(&mut rng);
        let mut train = Totals::default();
        for idx in order.chunks(128) {
            let x = data.train.batch(idx, Binarize::None, &mut rng); // [128, 784] in [0, 1]
            let eps = standard_normal(&[idx.len(), model.config.latent], &mut rng); // [128, 20]
            let terms = train_step(&mut model, &mut adam, &x, eps, beta, None)?;
            train.add(&terms, idx.len());
        }
        // The negative ELBO on the 10,000 test images, z sampled, chunk c seeded by (epoch, c).
        let test = evaluate_split(&model, &data.test, Binarize::None, Objective::default(), |c| {
            StdRng::seed_from_u64(epoch as u64 * 1_000_003 + c)
        });
        let (tr, te) = (train.mean(beta), test.mean(beta));
        println!(
            "epoch {epoch:>2}  train {:.2}  test {:.2} (recon {:.2}, kl {:.2})",
            tr.loss, te.loss, te.recon, te.kl
        );
    }
    Ok(())
}
