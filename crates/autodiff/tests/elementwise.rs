//! Finite-difference checks of the elementwise ops, on odd non-square shapes, including
//! broadcasting of a row vector, of one value per channel and of a scalar.

use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::{Tape, Tensor, Var};

const ATOL: f64 = 1e-3;

/// The four broadcasting binary ops.
const BINARY: [fn(&mut Tape, Var, Var) -> Var; 4] =
    [|t, a, b| t.add(a, b), |t, a, b| t.sub(a, b), |t, a, b| t.mul(a, b), |t, a, b| t.div(a, b)];
const RTOL: f64 = 1e-2;

/// Random values kept at least `margin` away from zero (for kinks and poles at 0).
fn away_from_zero(shape: &[usize], seed: u64, margin: f32) -> Tensor {
    random_tensor(shape, seed).mapv(|v| v + margin.copysign(v))
}

fn positive(shape: &[usize], seed: u64) -> Tensor {
    random_tensor(shape, seed).mapv(|v| v.abs() + 0.5)
}

fn check_unary(x: Tensor, op: fn(&mut Tape, Var) -> Var) {
    check_gradients(&[x], |t, v| op(t, v[0])).assert_within(ATOL, RTOL);
}

#[test]
fn add_sub_mul_div_match_finite_differences_same_shape() {
    let a = random_tensor(&[3, 5], 1);
    let b = away_from_zero(&[3, 5], 2, 0.5);
    for op in BINARY {
        check_gradients(&[a.clone(), b.clone()], |t, v| op(t, v[0], v[1])).assert_within(ATOL, RTOL);
    }
}

#[test]
fn binary_ops_broadcast_a_row_vector_and_a_scalar() {
    let a = random_tensor(&[3, 5], 3);
    for b in [away_from_zero(&[5], 4, 0.5), away_from_zero(&[], 5, 0.5), away_from_zero(&[1], 6, 0.5)] {
        for op in BINARY {
            let report = check_gradients(&[a.clone(), b.clone()], |t, v| op(t, v[0], v[1]));
            report.assert_within(ATOL, RTOL);
        }
    }
}

/// One value per channel, as weight normalization scales a convolution's weight: b spans a run
/// of a's axes, ahead of or between others (`[C, 1, 1, 1]`, `[1, C, 1, 1]`, `[C, 1]`), and a
/// broadcast that is not one run (`[3, 1, 5]` against `[2, 3, 4, 5]`).
const PER_CHANNEL: [(&[usize], &[usize]); 4] =
    [(&[3, 4, 2, 5], &[3, 1, 1, 1]), (&[2, 3, 2, 3], &[1, 3, 1, 1]), (&[3, 5], &[3, 1]), (&[2, 3, 4, 5], &[3, 1, 5])];

#[test]
fn binary_ops_broadcast_one_value_per_channel() {
    for (seed, (a_shape, b_shape)) in (20..).zip(PER_CHANNEL) {
        let a = random_tensor(a_shape, seed);
        let b = away_from_zero(b_shape, seed + 100, 0.5);
        for op in BINARY {
            check_gradients(&[a.clone(), b.clone()], |t, v| op(t, v[0], v[1])).assert_within(ATOL, RTOL);
        }
    }
}

/// The broadcast's values, bit for bit, against ndarray's own broadcasting walk: small shapes,
/// one above the parallel threshold whose pieces start in the middle of b's period, and
/// single elements of every rank.
#[test]
fn broadcast_values_are_the_elementwise_definition_bit_for_bit() {
    let large: (&[usize], &[usize]) = (&[3, 37, 25, 29], &[1, 37, 1, 1]);
    let scalars: [(&[usize], &[usize]); 3] = [(&[3, 5], &[]), (&[3, 5], &[1]), (&[2, 3, 4], &[1, 1])];
    for (seed, (a_shape, b_shape)) in (40..).zip(PER_CHANNEL.into_iter().chain([large]).chain(scalars)) {
        let (a, b) = (random_tensor(a_shape, seed), away_from_zero(b_shape, seed + 100, 0.5));
        let bb = b.broadcast(a.raw_dim()).unwrap();
        for (name, op, f) in [
            ("add", BINARY[0], (|x, y| x + y) as fn(f32, f32) -> f32),
            ("sub", BINARY[1], |x, y| x - y),
            ("mul", BINARY[2], |x, y| x * y),
            ("div", BINARY[3], |x, y| x / y),
        ] {
            let mut tape = Tape::new();
            let (av, bv) = (tape.constant(a.clone()), tape.constant(b.clone()));
            let y = op(&mut tape, av, bv);
            let want = ndarray::Zip::from(&a).and(&bb).map_collect(|&x, &y| f(x, y));
            let same = tape.value(y).iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
            assert!(same, "{name}: {a_shape:?} with {b_shape:?} differs from the definition");
        }
    }
}

#[test]
fn broadcast_sums_the_gradient_of_a_row_vector_over_rows() {
    let mut tape = Tape::new();
    let a = tape.constant(Tensor::ones(vec![4, 3]));
    let b = tape.input(Tensor::zeros(vec![3]));
    let y = tape.add(a, b);
    let dy = Tensor::from_shape_fn(vec![4, 3], |i| (i[0] * 3 + i[1]) as f32);
    let grads = tape.backward_from(y, dy);
    // column sums of [[0,1,2],[3,4,5],[6,7,8],[9,10,11]]
    assert_eq!(grads.get(b).unwrap().as_slice().unwrap(), &[18.0, 22.0, 26.0]);
}

#[test]
fn unary_ops_match_finite_differences() {
    let x = random_tensor(&[3, 5], 7);
    check_unary(x.clone(), |t, v| t.neg(v));
    check_unary(x.clone(), |t, v| t.scale(v, -2.5));
    check_unary(x.clone(), |t, v| t.exp(v));
    check_unary(x.clone(), |t, v| t.square(v));
    check_unary(x.clone(), |t, v| t.sigmoid(v));
    check_unary(x.clone(), |t, v| t.tanh(v));
    check_unary(x, |t, v| t.softplus(v));
    check_unary(positive(&[3, 5], 8), |t, v| t.log(v));
    check_unary(positive(&[3, 5], 9), |t, v| t.sqrt(v));
}

/// The ELU is smooth at 0 (slope 1 on both sides), so it is checked across it too; and its
/// values are x above 0 and eˣ − 1 below.
#[test]
fn elu_matches_finite_differences_and_its_definition() {
    check_unary(random_tensor(&[2, 3, 5], 11).mapv(|v| 2.0 * v), |t, v| t.elu(v));
    let mut tape = Tape::new();
    let x = tape.constant(Tensor::from_shape_vec(vec![4], vec![-3.0, -0.5, 0.0, 2.0]).unwrap());
    let y = tape.elu(x);
    let want = [(-3.0f32).exp() - 1.0, (-0.5f32).exp() - 1.0, 0.0, 2.0];
    assert!(tape.value(y).iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-7));
}

#[test]
fn relu_and_leaky_relu_match_finite_differences_away_from_the_kink() {
    let x = away_from_zero(&[2, 3, 5], 10, 0.05);
    check_unary(x.clone(), |t, v| t.relu(v));
    check_unary(x, |t, v| t.leaky_relu(v, 0.2));
}

#[test]
fn sigmoid_and_softplus_stay_finite_for_huge_logits() {
    let mut tape = Tape::new();
    let x = tape.input(Tensor::from_shape_vec(vec![4], vec![-1000.0, -100.0, 100.0, 1000.0]).unwrap());
    let s = tape.sigmoid(x);
    let p = tape.softplus(x);
    let close = |got: &Tensor, want: [f32; 4]| {
        got.iter().zip(want).all(|(&g, w)| g.is_finite() && (g - w).abs() <= 1e-6 * (1.0 + w))
    };
    // σ(−100) = e^(−100)/(1 + e^(−100)) ≈ 3.7e-44: tiny, but not a NaN from ∞/∞.
    assert!(close(tape.value(s), [0.0, 0.0, 1.0, 1.0]), "{}", tape.value(s));
    assert!(close(tape.value(p), [0.0, 0.0, 100.0, 1000.0]), "{}", tape.value(p));
    let y = tape.add(s, p);
    let loss = tape.sum(y);
    let grads = tape.backward(loss);
    assert!(grads.get(x).unwrap().iter().all(|g| g.is_finite()));
}

#[test]
#[should_panic(expected = "add: cannot broadcast b of shape [4] to a of shape [3, 5]")]
fn mismatched_shapes_panic_naming_the_op_and_both_shapes() {
    let mut tape = Tape::new();
    let a = tape.constant(Tensor::zeros(vec![3, 5]));
    let b = tape.constant(Tensor::zeros(vec![4]));
    tape.add(a, b);
}
