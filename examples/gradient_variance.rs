//! Two unbiased estimators of ∇_mu E_{z~q}[f(z)] and their variance (chapter 3 of docs/book).
//!
//! q = N(mu, σ²I) in J dimensions, f(z) = −½‖z − c‖² (a Gaussian log-likelihood), so the exact
//! gradient is ∇_mu E[f] = c − mu. For one sample z = mu + σ·eps:
//! - score function (REINFORCE): f(z) · ∇_mu log q(z) = f(z) · (z − mu)/σ²
//! - reparameterized: ∇_mu f(mu + σ·eps), computed here by the engine's tape
//!
//! Both average to c − mu; the example prints the mean and the variance of each over many
//! samples, for the first coordinate, in J = 1 and J = 20 dimensions.
//!
//! ```sh
//! cargo run --release --example gradient_variance
//! ```

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::model::standard_normal;
use vae_autodiff::{Tape, Tensor};

/// Samples per estimate of mean and variance.
const SAMPLES: usize = 100_000;

/// (mean, variance) of the values.
fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (mean, v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0))
}

fn main() {
    let (mu0, c0, sigma) = (0.5f32, 2.0f32, 1.0f32);
    println!("q = N(mu, σ²I), σ = {sigma}, f(z) = −½‖z − c‖², mu = {mu0}, c = {c0} in every coordinate");
    println!("exact ∂/∂mu₁ E[f] = c − mu = {}; {SAMPLES} single-sample estimates each:", c0 - mu0);
    println!("{:>4}  {:>26}  {:>26}  {:>7}", "J", "score function: mean, var", "reparameterized: mean, var", "ratio");
    for j in [1usize, 20] {
        let mut rng = StdRng::seed_from_u64(j as u64);
        let eps = standard_normal(&[SAMPLES, j], &mut rng);

        // Reparameterized, on the tape: each row has its own copy of mu, so its gradient row is
        // that sample's estimate.
        let mut tape = Tape::new();
        let mu = tape.input(Tensor::from_elem(vec![SAMPLES, j], mu0));
        let epsv = tape.constant(eps.clone());
        let noise = tape.scale(epsv, sigma);
        let z = tape.add(mu, noise);
        let c = tape.constant(Tensor::from_elem(vec![], c0));
        let diff = tape.sub(z, c);
        let sq = tape.square(diff);
        let per_sample = tape.sum_axis(sq, 1);
        let f = tape.scale(per_sample, -0.5); // f(z) per row
        let total = tape.sum(f);
        let grads = tape.backward(total);
        let dmu = grads.get(mu).unwrap();
        let reparam: Vec<f64> = (0..SAMPLES).map(|r| dmu[[r, 0]] as f64).collect();

        // Score function: f(z) · (z₁ − mu₁)/σ² = f(z) · eps₁/σ.
        let fz = tape.value(f);
        let score: Vec<f64> = (0..SAMPLES).map(|r| fz[[r]] as f64 * eps[[r, 0]] as f64 / sigma as f64).collect();

        let ((sm, sv), (rm, rv)) = (mean_var(&score), mean_var(&reparam));
        println!("{j:>4}  {sm:>12.3} {sv:>13.2}  {rm:>12.3} {rv:>13.2}  {:>7.1}", sv / rv);
    }
}
