//! Reductions against finite differences; log-sum-exp also against its unstable definition.

use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::{Tape, Tensor};

#[test]
fn sum_and_mean_match_finite_differences() {
    let x = random_tensor(&[3, 5], 1);
    check_gradients(std::slice::from_ref(&x), |t, v| t.sum(v[0])).assert_within(1e-3, 1e-2);
    check_gradients(&[x], |t, v| t.mean(v[0])).assert_within(1e-3, 1e-2);
}

#[test]
fn axis_reductions_match_finite_differences_on_every_axis() {
    let x = random_tensor(&[2, 3, 5], 2);
    for axis in 0..3 {
        check_gradients(std::slice::from_ref(&x), |t, v| t.sum_axis(v[0], axis)).assert_within(1e-3, 1e-2);
        check_gradients(std::slice::from_ref(&x), |t, v| t.mean_axis(v[0], axis)).assert_within(1e-3, 1e-2);
        check_gradients(std::slice::from_ref(&x), |t, v| t.log_sum_exp(v[0], axis)).assert_within(1e-3, 1e-2);
    }
}

#[test]
fn log_sum_exp_equals_its_definition_and_survives_large_values() {
    let x = random_tensor(&[3, 5], 3);
    let mut tape = Tape::new();
    let xv = tape.constant(x.clone());
    let y = tape.log_sum_exp(xv, 1);
    for (row, &got) in x.outer_iter().zip(tape.value(y).iter()) {
        let want = row.iter().map(|v| v.exp()).sum::<f32>().ln();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
    // exp(1000) overflows f32; the shifted form does not.
    let big = tape.constant(Tensor::from_shape_vec(vec![1, 2], vec![1000.0, 1000.0]).unwrap());
    let y = tape.log_sum_exp(big, 1);
    assert!((tape.scalar(y) - (1000.0 + 2f32.ln())).abs() < 1e-3);
}

#[test]
fn log_sum_exp_backward_flushes_negligible_weights_to_zero_not_denormals() {
    // Softmax weights of [0, −50, −90, −100]: e^−50 ≈ 2e−22 is kept; e^−90 and e^−100 would be
    // denormal in f32 and are exactly 0.
    let mut tape = Tape::new();
    let x = tape.input(Tensor::from_shape_vec(vec![1, 4], vec![0.0, -50.0, -90.0, -100.0]).unwrap());
    let y = tape.log_sum_exp(x, 1);
    let loss = tape.sum(y);
    let g = tape.backward(loss);
    let g = g.get(x).unwrap();
    assert_eq!(g[[0, 0]], 1.0);
    assert!((g[[0, 1]] as f64 - (-50f64).exp()).abs() < 1e-6 * (-50f64).exp());
    assert_eq!((g[[0, 2]], g[[0, 3]]), (0.0, 0.0));
    assert!(g.iter().all(|v| *v == 0.0 || v.is_normal()));
}
