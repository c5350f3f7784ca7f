//! The ELBO's pieces: the closed-form KL against Monte Carlo, training on synthetic data, and
//! the importance-weighted bound.

mod common;

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::model::standard_normal;
use vae::train::{evaluate_batch, iw_log_likelihood};
use vae::Vae;
use vae_autodiff::{Tape, Tensor};

#[test]
fn closed_form_kl_agrees_with_a_monte_carlo_estimate() {
    // KL(q ‖ p) = E_q[log q(z) − log p(z)]; with z = mu + σ·eps,
    // log q(z) − log p(z) = Σ_j −½eps_j² − ½logvar_j + ½z_j².
    let mu = [0.3f64, -1.2, 0.0];
    let logvar = [-0.5f64, 0.8, -2.0];
    let mut tape = Tape::new();
    let m = tape.constant(Tensor::from_shape_vec(vec![1, 3], mu.iter().map(|&v| v as f32).collect()).unwrap());
    let lv = tape.constant(Tensor::from_shape_vec(vec![1, 3], logvar.iter().map(|&v| v as f32).collect()).unwrap());
    let kl = tape.kl_std_normal(m, lv);
    let closed = tape.scalar(kl) as f64;

    let samples = 200_000;
    let eps = standard_normal(&[samples, 3], &mut StdRng::seed_from_u64(3));
    let terms: Vec<f64> = eps
        .outer_iter()
        .map(|e| {
            (0..3)
                .map(|j| {
                    let (e, s) = (e[j] as f64, (0.5 * logvar[j]).exp());
                    let z = mu[j] + s * e;
                    -0.5 * e * e - 0.5 * logvar[j] + 0.5 * z * z
                })
                .sum()
        })
        .collect();
    let mean = terms.iter().sum::<f64>() / samples as f64;
    let var = terms.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (samples - 1) as f64;
    let stderr = (var / samples as f64).sqrt();
    assert!((mean - closed).abs() < 4.0 * stderr, "Monte Carlo {mean} ± {stderr} vs closed form {closed}");
}

#[test]
fn a_small_model_lowers_its_loss_on_synthetic_data() {
    let x = common::stripes(64, 1);
    let mut model = Vae::new(common::small_config(), &mut StdRng::seed_from_u64(2)).unwrap();
    let losses = common::train(&mut model, &x, 300, 3);
    let first: f64 = losses[..20].iter().sum::<f64>() / 20.0;
    let last: f64 = losses[280..].iter().sum::<f64>() / 20.0;
    // An untrained model starts near 16·ln 2 ≈ 11.1 nats; stripes with 5% noise cost far less.
    assert!(first > 9.0, "first losses {first}");
    assert!(last < 0.6 * first, "loss fell only from {first} to {last}");
    assert!(losses.iter().all(|l| l.is_finite()));
}

#[test]
fn the_importance_weighted_bound_is_above_the_elbo_and_rises_with_k() {
    let x = common::stripes(64, 4);
    let mut model = Vae::new(common::small_config(), &mut StdRng::seed_from_u64(5)).unwrap();
    common::train(&mut model, &x, 300, 6);

    // The ELBO averaged over many noise draws, to remove its sampling noise.
    let mut rng = StdRng::seed_from_u64(7);
    let reps = 200;
    let elbo: f64 =
        (0..reps).map(|_| -evaluate_batch(&model, x.clone(), &mut rng).mean(1.0).loss).sum::<f64>() / reps as f64;

    let mean_iw = |k: usize| {
        let v = iw_log_likelihood(&model, &x, k, 7, &mut StdRng::seed_from_u64(8));
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (k1, k10, k100, k1000) = (mean_iw(1), mean_iw(10), mean_iw(100), mean_iw(1000));
    println!("ELBO {elbo:.4}  IW K=1 {k1:.4}  K=10 {k10:.4}  K=100 {k100:.4}  K=1000 {k1000:.4}");
    // K = 1 is itself an unbiased estimate of the ELBO.
    assert!((k1 - elbo).abs() < 0.1 * elbo.abs().max(1.0), "K=1 {k1} vs ELBO {elbo}");
    assert!(k10 > elbo && k100 > k10 && k1000 > k100, "bound does not rise: {k10}, {k100}, {k1000} over ELBO {elbo}");
}

#[test]
fn the_bound_does_not_depend_on_the_chunk_size() {
    let x = common::stripes(8, 9);
    let model = Vae::new(common::small_config(), &mut StdRng::seed_from_u64(10)).unwrap();
    // Same seed: the noise is drawn chunk after chunk in the same order.
    let a = iw_log_likelihood(&model, &x, 60, 60, &mut StdRng::seed_from_u64(11));
    let b = iw_log_likelihood(&model, &x, 60, 60, &mut StdRng::seed_from_u64(11));
    assert_eq!(a, b);
    let c = iw_log_likelihood(&model, &x, 60, 7, &mut StdRng::seed_from_u64(11));
    for (a, c) in a.iter().zip(&c) {
        // The same samples, combined chunk by chunk: equal up to the rounding of the merge
        // (measured: equal to the last bit).
        assert!((a - c).abs() <= 1e-6 * a.abs().max(1.0), "chunked {c} differs from unchunked {a}");
    }
}
