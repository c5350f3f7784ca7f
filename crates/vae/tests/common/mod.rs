//! Shared helpers: a small synthetic binary data set and a model trained on it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vae::model::standard_normal;
use vae::train::train_step;
use vae::{Vae, VaeConfig};
use vae_autodiff::Tensor;
use vae_layers::optim::Adam;

/// n binary 4×4 images, each one of four stripe prototypes with 5% of its pixels flipped.
pub fn stripes(n: usize, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::from_shape_fn(vec![n, 16], |i| {
        let (row, col) = (i[1] / 4, i[1] % 4);
        let proto = (i[0] * 7 + 3) % 4;
        let on = match proto {
            0 => row % 2 == 0,
            1 => col % 2 == 0,
            2 => row == col,
            _ => row < 2,
        };
        let flip = rng.random::<f32>() < 0.05;
        if on != flip {
            1.0
        } else {
            0.0
        }
    })
}

/// A 16-32-2 MLP VAE for the stripes.
pub fn small_config() -> VaeConfig {
    let mut c = VaeConfig::mlp_mnist();
    c.arch = vae::Arch::Mlp { hidden: vec![32] };
    c.input = [1, 4, 4];
    c.latent = 2;
    c
}

/// Trains `model` on `x` for `steps` full-batch Adam steps; returns every step's loss.
pub fn train(model: &mut Vae, x: &Tensor, steps: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut adam = Adam::new(1e-2);
    (0..steps)
        .map(|_| {
            let eps = standard_normal(&[x.shape()[0], model.config.latent], &mut rng);
            train_step(model, &mut adam, x, eps, 1.0, None).unwrap().loss
        })
        .collect()
}

/// Asserts that a step of plain SGD at rate 1 took `before` to `after` by exactly the gradient
/// `want` (one tensor per parameter, in order): θ − θ' = ∇L, to 1e-4 of each gradient's largest
/// entry. `what` names the step in the failure message.
#[allow(dead_code)] // cvae.rs and elbo.rs take no steps of their own
pub fn assert_step_is_the_gradient(before: &Vae, after: &Vae, want: &[Tensor], what: &str) {
    for ((name, before), (after, want)) in before.params.iter().zip(after.params.values().iter().zip(want)) {
        let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = (before - after).iter().zip(want.iter()).fold(0f32, |m, (g, w)| m.max((g - w).abs()));
        assert!(
            worst <= 1e-4 * peak.max(1e-6),
            "{name}: {what}'s gradient differs from the definition's by {worst} (largest entry {peak})"
        );
    }
}
