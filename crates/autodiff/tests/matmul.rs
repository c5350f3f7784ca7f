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

/// A random [m, k] matrix in which about `density` of the entries are nonzero, with row 0 all
/// zeros (an empty row of the sparse form).
fn sparse_tensor(m: usize, k: usize, density: f64, seed: u64) -> vae_autodiff::Tensor {
    let values = random_tensor(&[m, k], seed);
    let coin = random_tensor(&[m, k], seed + 1);
    // P(|N(0,1)| < t) = density at t = Φ⁻¹((1 + density)/2); a threshold on a second normal
    // draw keeps the pattern independent of the values.
    let t = [(0.1, 0.1257), (0.2, 0.2533), (0.3, 0.3853)].iter().find(|(d, _)| *d == density).expect("table").1;
    let mut a = values;
    a.indexed_iter_mut().for_each(|(ix, v)| {
        if ix[0] == 0 || coin[[ix[0], ix[1]]].abs() >= t {
            *v = 0.0
        }
    });
    a
}

#[test]
fn sparse_left_operands_match_the_naive_triple_loop() {
    // (m, k, n): n below one tile (80), two overlapping tiles, the MLP's first layer (5 tiles).
    for (m, k, n, density, seed) in [(7, 11, 3, 0.2, 20), (5, 37, 130, 0.1, 21), (64, 784, 400, 0.2, 22)] {
        let a = sparse_tensor(m, k, density, seed);
        let b = random_tensor(&[k, n], seed + 100);
        let mut tape = Tape::new();
        let (av, bv) = (tape.constant(a.clone()), tape.constant(b.clone()));
        let y = tape.matmul(av, bv);
        assert_close(tape.value(y), &matmul_naive(&a, &b), 1e-5);
        let btv = tape.constant(b.t().as_standard_layout().into_owned());
        let y_nt = tape.matmul_nt(av, btv);
        assert_close(tape.value(y_nt), &matmul_naive(&a, &b), 1e-5);
    }
}

#[test]
fn sparse_left_operands_match_finite_differences() {
    // Both inputs get gradients: b through the sparse aᵀ·dy, a through the dense dy·bᵀ
    // (matmul_nt is always dense: the second check covers its path with the same a).
    let a = sparse_tensor(5, 9, 0.2, 30);
    // 83 columns: two tiles of 80 that overlap, in the product and in the weight gradient.
    check_gradients(&[a.clone(), random_tensor(&[9, 83], 31)], |t, v| t.matmul(v[0], v[1])).assert_within(1e-3, 1e-2);
    check_gradients(&[a, random_tensor(&[83, 9], 32)], |t, v| t.matmul_nt(v[0], v[1])).assert_within(1e-3, 1e-2);
}

#[test]
fn sparse_weight_gradient_matches_the_naive_one_at_the_first_layer() {
    // dW = xᵀ·dy for a first layer W [784, n]: sparse path vs the naive triple loop. The MLP's
    // chunk (64 rows, n = 400: about 10,000 nonzeros × 400) splits its rows across the pool;
    // Burda's batch (20 rows, n = 200: about 1,600 × 200) stays below the split's threshold of
    // 2^20 multiply-adds and runs on one core.
    for (m, n, density, seed) in [(64, 400, 0.2, 40), (20, 200, 0.1, 50)] {
        let x = sparse_tensor(m, 784, density, seed);
        let w = random_tensor(&[784, n], seed + 1);
        let dy = random_tensor(&[m, n], seed + 2);
        let mut tape = Tape::new();
        let xv = tape.constant(x.clone());
        let wv = tape.param(&w);
        let y = tape.matmul(xv, wv);
        let grads = tape.backward_from(y, dy.clone());
        let dw = grads.get(wv).expect("a gradient for w");
        let want = matmul_naive(&x.t().as_standard_layout().into_owned().into_dyn(), &dy);
        assert_close(dw, &want, 1e-5);
    }
}

#[test]
fn an_empty_inner_dimension_gives_zeros_and_zero_gradients() {
    // The GEMM writes its output without a zero-filled buffer first; with K = 0 there is
    // nothing to add, and every entry must still come out 0 (and the gradients empty or 0).
    let mut tape = Tape::new();
    let a = tape.input(random_tensor(&[300, 0], 1));
    let b = tape.input(random_tensor(&[0, 400], 2));
    let y = tape.matmul(a, b);
    assert_eq!(tape.value(y).shape(), [300, 400]);
    assert!(tape.value(y).iter().all(|&v| v == 0.0));
    let grads = tape.backward_from(y, random_tensor(&[300, 400], 3));
    assert_eq!(grads.get(a).expect("a gradient for a").shape(), [300, 0]);
    assert_eq!(grads.get(b).expect("a gradient for b").shape(), [0, 400]);
}
