//! The matrix product against finite differences and against the naive triple loop.

use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::matmul::matmul_naive;
use vae_autodiff::Tape;

fn assert_close(a: &vae_autodiff::Tensor, b: &vae_autodiff::Tensor, tol: f32) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.iter().zip(b.iter()) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
    }
}

#[test]
fn matmul_matches_finite_differences() {
    let a = random_tensor(&[3, 5], 1);
    let b = random_tensor(&[5, 7], 2);
    check_gradients(&[a, b], |t, v| t.matmul(v[0], v[1])).assert_within(1e-3, 1e-2);
}

#[test]
fn matmul_nt_matches_finite_differences() {
    let a = random_tensor(&[3, 5], 3);
    let b = random_tensor(&[7, 5], 4);
    check_gradients(&[a, b], |t, v| t.matmul_nt(v[0], v[1])).assert_within(1e-3, 1e-2);
}

#[test]
fn matmul_matches_the_naive_triple_loop_at_model_shapes() {
    for (m, k, n, seed) in [(3, 5, 7, 5), (128, 784, 400, 6), (33, 65, 17, 7)] {
        let a = random_tensor(&[m, k], seed);
        let b = random_tensor(&[k, n], seed + 100);
        let mut tape = Tape::new();
        let (av, bv) = (tape.constant(a.clone()), tape.constant(b.clone()));
        let y = tape.matmul(av, bv);
        assert_close(tape.value(y), &matmul_naive(&a, &b), 1e-4);
        // a·bᵀ with b given as [n, k]
        let bt = b.t().as_standard_layout().into_owned();
        let btv = tape.constant(bt);
        let y_nt = tape.matmul_nt(av, btv);
        assert_close(tape.value(y_nt), &matmul_naive(&a, &b), 1e-4);
    }
}

#[test]
#[should_panic(expected = "matmul: inner dimensions differ: a is [3, 5], b is [4, 7]")]
fn mismatched_inner_dimensions_panic_with_both_shapes() {
    let mut tape = Tape::new();
    let a = tape.constant(random_tensor(&[3, 5], 1));
    let b = tape.constant(random_tensor(&[4, 7], 2));
    tape.matmul(a, b);
}
