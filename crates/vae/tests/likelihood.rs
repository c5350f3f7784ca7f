//! The likelihoods against their definitions: the discretized logistic's mixture gives every
//! value a probability (the 256 masses sum to 1), reduces to one component when its components
//! agree, and its mean is the weighted mean of the components'.

use vae::Likelihood;
use vae_autodiff::{Tape, Tensor};

/// −log p(x|out) of one row under `lik`, the decoder output `out` and the pixels `x` given.
fn nll(lik: Likelihood, out: &[f32], x: &[f32]) -> f64 {
    let mut tape = Tape::new();
    let o = tape.input(Tensor::from_shape_vec(vec![1, out.len()], out.to_vec()).unwrap());
    let xv = tape.constant(Tensor::from_shape_vec(vec![1, x.len()], x.to_vec()).unwrap());
    let y = lik.neg_log_prob(&mut tape, o, xv);
    tape.value(y)[[0]] as f64
}

#[test]
fn a_mixtures_256_masses_sum_to_one() {
    // One value, three components: logits, means, log-scales.
    let lik = Likelihood::DLogistic { mixtures: 3 };
    for out in [[0.3, -1.0, 2.0, 0.2, 0.5, 0.9, -3.0, -4.5, -2.0], [0.0, 0.0, 0.0, -0.1, 1.2, 0.5, 0.0, -6.0, -1.0]] {
        let total: f64 = (0..=255).map(|k| (-nll(lik, &out, &[k as f32 / 255.0])).exp()).sum();
        assert!((total - 1.0).abs() < 1e-4, "{out:?}: the masses sum to {total}");
    }
}

#[test]
fn a_mixture_of_equal_components_is_one_component() {
    // Two values; two components with the same means and scales, any weights.
    let (x, m, s) = ([0.0f32, 0.6], [0.1f32, 0.55], [-3.0f32, -4.0]);
    let one = nll(Likelihood::DLogistic { mixtures: 1 }, &[m[0], m[1], s[0], s[1]], &x);
    let out = [0.7, -0.2, -1.3, 0.4, m[0], m[1], m[0], m[1], s[0], s[1], s[0], s[1]];
    let two = nll(Likelihood::DLogistic { mixtures: 2 }, &out, &x);
    assert!((one - two).abs() < 1e-4 * one.abs().max(1.0), "{one} against {two}");
}

#[test]
fn a_mixtures_mean_weighs_its_components() {
    // One value, two components: weights softmax(0, ln 3) = (¼, ¾), means 0.2 and 0.6.
    let lik = Likelihood::DLogistic { mixtures: 2 };
    let mut tape = Tape::new();
    let out = [0.0, 3f32.ln(), 0.2, 0.6, -3.0, -3.0];
    let o = tape.constant(Tensor::from_shape_vec(vec![1, 6], out.to_vec()).unwrap());
    let mean = lik.mean(&mut tape, o);
    let got = tape.value(mean)[[0, 0]];
    assert!((got - (0.25 * 0.2 + 0.75 * 0.6)).abs() < 1e-6, "{got}");
}
