//! "The VAE objective is convex" (a claim of one of the tutorials this project grew from),
//! measured (book, chapter 3). A convex loss can never be higher at the midpoint of two
//! parameter vectors than the larger of its values at the two ends.
//!
//! cargo run --release --example convexity          # 2 epochs of the default model, about 10 s
//!
//! The default model (784-400-20) is trained for a few epochs; then its 400 hidden units are
//! shuffled, in the encoder and the decoder alike (the columns of the first layers, their
//! biases, and the rows of the layers after them). The shuffled model is the same function,
//! so it has the same loss, to float rounding. If the loss were convex in the parameters,
//! every point of the straight line between the two vectors would be at least as good; the
//! example prints the test loss along that line. Then the same model from three seeds: three
//! different test losses after the same training.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use vae::data::{Binarize, Dataset};
use vae::model::standard_normal;
use vae::objective::Objective;
use vae::train::{evaluate_split, train_step};
use vae::{Vae, VaeConfig};
use vae_layers::optim::Adam;

/// The default model trained for `epochs` epochs from `seed`.
fn trained(data: &Dataset, seed: u64, epochs: usize) -> Result<Vae, Box<dyn std::error::Error>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Vae::new(VaeConfig::mlp_mnist(), &mut rng)?;
    let mut adam = Adam::new(1e-3);
    for _ in 0..epochs {
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        order.shuffle(&mut rng);
        for idx in order.chunks(128) {
            let x = data.train.batch(idx, Binarize::None, &mut rng);
            let eps = standard_normal(&[idx.len(), model.config.latent], &mut rng);
            train_step(&mut model, &mut adam, &x, eps, 1.0, None)?;
        }
    }
    Ok(model)
}

/// The negative ELBO on the test set, the same noise for every model (chunk c seeded by c).
fn test_loss(model: &Vae, data: &Dataset) -> f64 {
    evaluate_split(model, &data.test, Binarize::None, Objective::default(), StdRng::seed_from_u64).mean(1.0).loss
}

/// The model with its hidden units reordered by `order` (unit h of the result is unit
/// order[h] of `model`): the same function.
fn permuted(model: &Vae, order: &[usize]) -> Vae {
    let mut out = model.clone();
    // Each parameter with a hidden-unit axis, and that axis (x·W layout: [in, out]).
    let hidden_axes = [
        ("enc_fc1.weight", 1),
        ("enc_fc1.bias", 0),
        ("enc_mu.weight", 0),
        ("enc_logvar.weight", 0),
        ("dec_fc1.weight", 1),
        ("dec_fc1.bias", 0),
        ("dec_out.weight", 0),
    ];
    for (name, axis) in hidden_axes {
        let id = model.params.find(name).expect("the default model's parameter");
        out.params.values_mut()[id.0] = model.params.get(id).select(ndarray::Axis(axis), order);
    }
    out
}

/// (1 − t)·a + t·b, parameter by parameter.
fn between(a: &Vae, b: &Vae, t: f32) -> Vae {
    let mut out = a.clone();
    for (o, (pa, pb)) in out.params.values_mut().iter_mut().zip(a.params.values().iter().zip(b.params.values())) {
        *o = pa * (1.0 - t) + &(pb * t);
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs: usize = std::env::args().nth(1).map_or(Ok(2), |a| a.parse())?;
    let data = Dataset::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"))?;
    let a = trained(&data, 1, epochs)?;
    let mut order: Vec<usize> = (0..400).collect();
    order.shuffle(&mut StdRng::seed_from_u64(99));
    let b = permuted(&a, &order);
    println!("test loss along the line from θ (t = 0) to θ with its hidden units shuffled (t = 1):");
    let ends = (test_loss(&a, &data), test_loss(&b, &data));
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let loss = test_loss(&between(&a, &b, t), &data);
        println!("  t = {t:.2}  {loss:>8.2}");
    }
    let mid = test_loss(&between(&a, &b, 0.5), &data);
    println!("a convex loss would be at most {:.2} at t = 0.5; it is {mid:.2}: not convex", ends.0.max(ends.1));
    println!("the same model and training from three seeds, test loss after {epochs} epochs:");
    for seed in [1, 2, 3] {
        println!("  seed {seed}  {:.2}", test_loss(&trained(&data, seed, epochs)?, &data));
    }
    Ok(())
}
