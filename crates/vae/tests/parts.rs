//! The model parts against finite differences on odd, non-square shapes, and each shortcut
//! against its definition: the Gaussian's log-density at its own sample (from eps) against the
//! log-density at any point, and the standard-normal prior against a Gaussian with mu = 0,
//! logvar = 0.

use vae::parts::{standard_normal_log_prob, Gaussian, GaussianLayer};
use vae::Activation;
use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::Tape;
use vae_layers::ParamStore;

/// log N(h; mu, diag(exp(logvar))) at any h: gradients for mu, logvar and h, M = 3 rows, J = 5.
#[test]
fn the_gaussian_log_density_matches_finite_differences() {
    let mu = random_tensor(&[3, 5], 1);
    let logvar = random_tensor(&[3, 5], 2).mapv(|v| 0.5 * v);
    let h = random_tensor(&[3, 5], 3);
    let report = check_gradients(&[mu, logvar, h], |t, v| Gaussian { mu: v[0], logvar: v[1] }.log_prob(t, v[2]));
    report.assert_within(1e-3, 1e-2);
}

/// The sample h = mu + exp(½·logvar) ⊙ eps and its log-density from eps, through mu and logvar.
#[test]
fn the_sample_and_its_log_density_match_finite_differences() {
    let mu = random_tensor(&[3, 5], 4);
    let logvar = random_tensor(&[3, 5], 5).mapv(|v| 0.5 * v);
    let eps = random_tensor(&[3, 5], 6);
    let e = eps.clone();
    check_gradients(&[mu.clone(), logvar.clone()], |t, v| {
        let eps = t.constant(e.clone());
        Gaussian { mu: v[0], logvar: v[1] }.sample(t, eps)
    })
    .assert_within(1e-3, 1e-2);
    check_gradients(&[mu, logvar], |t, v| {
        let eps = t.constant(eps.clone());
        Gaussian { mu: v[0], logvar: v[1] }.log_prob_of_sample(t, eps)
    })
    .assert_within(1e-3, 1e-2);
}

/// The shortcut from eps is the density at the sample: same values, and the same total
/// derivative with respect to mu and logvar (the sample moves with them); with respect to mu
/// both are zero, since h − mu = σ ⊙ eps does not depend on mu.
#[test]
fn the_log_density_from_eps_is_the_log_density_at_the_sample() {
    let mu = random_tensor(&[4, 3], 7);
    let logvar = random_tensor(&[4, 3], 8).mapv(|v| 0.5 * v);
    let eps = random_tensor(&[4, 3], 9);
    let run = |shortcut: bool| {
        let mut tape = Tape::new();
        let (m, lv, e) = (tape.input(mu.clone()), tape.input(logvar.clone()), tape.constant(eps.clone()));
        let g = Gaussian { mu: m, logvar: lv };
        let h = g.sample(&mut tape, e);
        let logp = if shortcut { g.log_prob_of_sample(&mut tape, e) } else { g.log_prob(&mut tape, h) };
        let r = tape.constant(random_tensor(&[4], 10));
        let y = tape.mul(logp, r);
        let loss = tape.sum(y);
        let grads = tape.backward(loss);
        let value = tape.value(logp).clone();
        // No gradient reaches mu through the shortcut (mu drops out): that is a zero.
        let zero = vae_autodiff::Tensor::zeros(vec![4, 3]);
        (value, grads.get(m).cloned().unwrap_or(zero), grads.get(lv).unwrap().clone())
    };
    let (a, b) = (run(true), run(false));
    for (x, y) in [(&a.0, &b.0), (&a.1, &b.1), (&a.2, &b.2)] {
        for (p, q) in x.iter().zip(y.iter()) {
            assert!((p - q).abs() <= 1e-5 * q.abs().max(1.0), "{p} against {q}");
        }
    }
}

/// N(0, I) is the Gaussian with mu = 0 and logvar = 0, and its gradient checks out (M = 3, J = 7).
#[test]
fn the_standard_normal_prior_is_the_gaussian_at_zero() {
    let z = random_tensor(&[3, 7], 11);
    let mut tape = Tape::new();
    let zv = tape.constant(z.clone());
    let zero = tape.constant(vae_autodiff::Tensor::zeros(vec![3, 7]));
    let prior = standard_normal_log_prob(&mut tape, zv);
    let general = Gaussian { mu: zero, logvar: zero }.log_prob(&mut tape, zv);
    for (p, q) in tape.value(prior).iter().zip(tape.value(general).iter()) {
        assert!((p - q).abs() <= 1e-5 * q.abs(), "{p} against {q}");
    }
    check_gradients(&[z], |t, v| standard_normal_log_prob(t, v[0])).assert_within(1e-3, 1e-2);
}

/// A whole stochastic layer (tanh body 5 → 7 → 4, heads to J = 3) on M = 3 rows: the gradient of
/// its log-density at a fixed point, with respect to its input.
#[test]
fn a_gaussian_layer_matches_finite_differences() {
    let mut params = ParamStore::new();
    let rng = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let layer = GaussianLayer::new(&mut params, "q1", 5, &[7, 4], 3, Activation::Tanh, rng);
    assert_eq!(layer.latent(), 3);
    let names: Vec<&str> = params.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "q1_fc1.weight",
            "q1_fc1.bias",
            "q1_fc2.weight",
            "q1_fc2.bias",
            "q1_mu.weight",
            "q1_mu.bias",
            "q1_logvar.weight",
            "q1_logvar.bias"
        ]
    );
    // The check's tapes live inside check_gradients, so the parameters they borrow must outlive it.
    let params: &'static ParamStore = Box::leak(Box::new(params));
    let x = random_tensor(&[3, 5], 12);
    let h = random_tensor(&[3, 3], 13);
    check_gradients(&[x], |t, v| {
        let p = params.on_tape(t);
        let g = layer.forward(t, &p, v[0]);
        let hv = t.constant(h.clone());
        g.log_prob(t, hv)
    })
    .assert_within(1e-3, 1e-2);
}
