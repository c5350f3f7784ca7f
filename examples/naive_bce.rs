//! The reading notes' experiment (chapter 5 of docs/book): a VAE with a 2-dimensional latent
//! space trained with three reconstruction losses, on the same data, noise and initialization.
//!
//! - `mse`: a Gaussian likelihood with σ = 1 (squared error): trains, with a high loss;
//! - `naive`: cross-entropy computed on probabilities, x·log σ(l) + (1 − x)·log(1 − σ(l)),
//!   as the notes (and many tutorials) write it: once the decoder is confident enough that
//!   σ(l) rounds to exactly 1 in f32 (l > 17.33) on a pixel whose x is 1, the term
//!   0·log(1 − 1) = 0·(−∞) is NaN, and training stops;
//! - `logits`: the same cross-entropy on logits, softplus(l) − x·l (the engine's
//!   `bce_with_logits`): finite for every finite logit.
//!
//! Each model is the 784-400-2 MLP, Adam 1e-3, batch 128, up to 5 epochs; a step whose loss is
//! not finite ends that run. It prints the test loss per epoch, or where the NaN appeared.
//!
//! ```sh
//! cargo run --release --example naive_bce
//! ```

use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use vae::data::{Binarize, Dataset};
use vae::model::{reparameterize, standard_normal};
use vae::{Arch, Likelihood, Vae, VaeConfig};
use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::optim::{Adam, Optimizer};

#[derive(Clone, Copy, PartialEq)]
enum Recon {
    Mse,
    Naive,
    Logits,
}

/// −log p(x|z) per example [N] for decoder output `out` [N, D].
fn recon_nll(tape: &mut Tape, kind: Recon, out: Var, x: Var) -> Var {
    match kind {
        Recon::Mse => tape.gaussian_nll(out, x, 1.0),
        Recon::Logits => tape.bce_with_logits(out, x),
        Recon::Naive => {
            // −Σ [x·log p + (1 − x)·log(1 − p)], p = σ(l): the form that breaks.
            let p = tape.sigmoid(out);
            let one = tape.constant(Tensor::from_elem(vec![], 1.0));
            let log_p = tape.log(p);
            let neg_p = tape.neg(p);
            let q = tape.add(neg_p, one); // 1 − p
            let log_q = tape.log(q);
            let neg_x = tape.neg(x);
            let one_minus_x = tape.add(neg_x, one);
            let a = tape.mul(x, log_p);
            let b = tape.mul(one_minus_x, log_q);
            let sum = tape.add(a, b);
            let per_example = tape.sum_axis(sum, 1);
            tape.neg(per_example)
        }
    }
}

/// Mean over the batch of recon + KL, the whole forward pass.
fn loss(model: &Vae, tape: &mut Tape, p: &vae_layers::ParamVars, kind: Recon, x: Var, eps: Var) -> Var {
    let (mu, logvar) = model.encode(tape, p, x);
    let z = reparameterize(tape, mu, logvar, eps);
    let out = model.decode(tape, p, z);
    let recon = recon_nll(tape, kind, out, x);
    let kl = tape.kl_std_normal(mu, logvar);
    let both = tape.add(recon, kl);
    tape.mean(both)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Dataset::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"))?;
    let test_idx: Vec<usize> = (0..2000).collect();
    let test = data.test.batch(&test_idx, Binarize::None, &mut StdRng::seed_from_u64(0));
    for (kind, name) in [
        (Recon::Mse, "mse (Gaussian, σ = 1)"),
        (Recon::Naive, "naive cross-entropy"),
        (Recon::Logits, "cross-entropy on logits"),
    ] {
        let likelihood = if kind == Recon::Mse { Likelihood::Gaussian { sigma: 1.0 } } else { Likelihood::Bernoulli };
        let config =
            VaeConfig { arch: Arch::Mlp { hidden: vec![400] }, latent: 2, likelihood, ..VaeConfig::mlp_mnist() };
        let mut model = Vae::new(config, &mut StdRng::seed_from_u64(1))?;
        let mut adam = Adam::new(1e-3);
        let mut rng = StdRng::seed_from_u64(2);
        println!("{name}:");
        'epochs: for epoch in 1..=5 {
            let mut order: Vec<usize> = (0..data.train.len()).collect();
            order.shuffle(&mut rng);
            for (step, idx) in order.chunks(128).enumerate() {
                let x = data.train.batch(idx, Binarize::None, &mut rng);
                let eps = standard_normal(&[idx.len(), 2], &mut rng);
                let mut tape = Tape::new();
                let p = model.params.on_tape(&mut tape);
                let (xv, epsv) = (tape.constant(x), tape.constant(eps));
                let l = loss(&model, &mut tape, &p, kind, xv, epsv);
                let value = tape.scalar(l);
                let grads = p.gradients(&tape, tape.backward(l));
                if !value.is_finite() || grads.iter().any(|g| g.iter().any(|v| !v.is_finite())) {
                    println!("  epoch {epoch}, step {step}: loss {value}, training stops (NaN)");
                    break 'epochs;
                }
                adam.step(model.params.values_mut(), &grads);
            }
            let mut tape = Tape::new();
            let p = model.params.on_tape(&mut tape);
            let xv = tape.constant(test.clone());
            let epsv = tape.constant(standard_normal(&[2000, 2], &mut rng));
            let l = loss(&model, &mut tape, &p, kind, xv, epsv);
            println!("  epoch {epoch}: test loss {:.2} nats per image (2,000 test images)", tape.scalar(l));
        }
    }
    Ok(())
}
