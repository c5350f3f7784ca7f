//! Shape ops against finite differences.

use vae_autodiff::gradcheck::{check_gradients, random_tensor};

#[test]
fn reshape_flatten_and_transpose_match_finite_differences() {
    let x = random_tensor(&[2, 3, 5], 1);
    check_gradients(std::slice::from_ref(&x), |t, v| t.reshape(v[0], &[5, 6])).assert_within(1e-3, 1e-2);
    check_gradients(&[x], |t, v| t.flatten(v[0])).assert_within(1e-3, 1e-2);
    let m = random_tensor(&[3, 5], 2);
    check_gradients(&[m], |t, v| t.transpose(v[0])).assert_within(1e-3, 1e-2);
}

#[test]
fn slice_and_concat_match_finite_differences() {
    let x = random_tensor(&[3, 7], 3);
    check_gradients(std::slice::from_ref(&x), |t, v| t.slice(v[0], 1, 2, 4)).assert_within(1e-3, 1e-2);
    check_gradients(&[x], |t, v| t.slice(v[0], 0, 1, 2)).assert_within(1e-3, 1e-2);
    let a = random_tensor(&[3, 2], 4);
    let b = random_tensor(&[3, 5], 5);
    check_gradients(&[a, b], |t, v| t.concat(&[v[0], v[1]], 1)).assert_within(1e-3, 1e-2);
    let c = random_tensor(&[2, 5], 6);
    let d = random_tensor(&[1, 5], 7);
    check_gradients(&[c, d], |t, v| t.concat(&[v[0], v[1], v[0]], 0)).assert_within(1e-3, 1e-2);
}
