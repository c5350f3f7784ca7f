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
//! First it evaluates both cross-entropies on a few logits, where the naive form fails
//! outright. Then each model is the 784-400-2 MLP, Adam 1e-3, batch 128, up to 5 epochs; a step
//! whose loss is not finite ends that run. It prints the test loss per epoch (and the largest
//! logit the decoder produced on the test images), or where the NaN appeared.
//!
//! ```sh
//! cargo run --release --example naive_bce          # the logits, then the three trainings
//! cargo run --release --example naive_bce -- demo  # the logits only
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

/// The largest decoder output over the test images, decoded at their posterior means.
fn largest_logit(model: &Vae, x: &Tensor) -> f32 {
    let mut tape = Tape::new();
    let p = model.params.on_tape(&mut tape);
    let (mu, _) = model.encode_values(x.clone());
    let z = tape.constant(mu);
    let out = model.decode(&mut tape, &p, z);
    tape.value(out).iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
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

/// Both cross-entropies, per pixel, at a few (logit, target) pairs.
fn demo() {
    let pairs = [(5.0f32, 1.0f32), (17.0, 1.0), (17.5, 1.0), (20.0, 1.0), (-20.0, 0.0), (-100.0, 0.0), (1000.0, 1.0)];
    println!(
        "logit  target   naive −[x·log σ(l) + (1 − x)·log(1 − σ(l))]   on logits softplus(l) − x·l   naive gradient"
    );
    for (l, x) in pairs {
        let mut tape = Tape::new();
        let lv = tape.input(Tensor::from_elem(vec![1, 1], l));
        let xv = tape.constant(Tensor::from_elem(vec![1, 1], x));
        let naive = recon_nll(&mut tape, Recon::Naive, lv, xv);
        let grad = tape.backward(naive).get(lv).map_or(f32::NAN, |g| g[[0, 0]]);
        let logits = tape.bce_with_logits(lv, xv);
        println!("{l:>6} {x:>6}   {:>44.3e}   {:>28.3e}   {grad:>14.3e}", tape.scalar(naive), tape.scalar(logits));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo();
    if std::env::args().nth(1).as_deref() == Some("demo") {
        return Ok(());
    }
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
            let out = largest_logit(&model, &test);
            println!(
                "  epoch {epoch}: test loss {:.2} nats per image (2,000 test images), largest logit {out:.1}",
                tape.scalar(l)
            );
        }
    }
    Ok(())
}
