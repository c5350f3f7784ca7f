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

#[test]
fn gather_rows_matches_finite_differences_with_repeated_and_unused_rows() {
    // 5 rows of width 3; row 1 read three times, rows 0 and 4 never: their gradient is 0.
    let table = random_tensor(&[5, 3], 8);
    let report = check_gradients(std::slice::from_ref(&table), |t, v| t.gather_rows(v[0], &[1, 3, 1, 2, 1, 3, 2]));
    report.assert_within(1e-3, 1e-2);
    let mut tape = vae_autodiff::Tape::new();
    let tv = tape.param(&table);
    let y = tape.gather_rows(tv, &[1, 3, 1]);
    assert_eq!(tape.value(y).shape(), &[3, 3]);
    assert_eq!(tape.value(y).index_axis(ndarray::Axis(0), 2), table.index_axis(ndarray::Axis(0), 1));
    let s = tape.sum(y);
    let g = tape.backward(s);
    let dt = g.get(tv).unwrap();
    assert_eq!(
        dt.iter().copied().collect::<Vec<_>>(),
        vec![0., 0., 0., 2., 2., 2., 0., 0., 0., 1., 1., 1., 0., 0., 0.]
    );
}

#[test]
#[should_panic(expected = "index 5 is outside a table of 5 rows")]
fn gather_rows_refuses_an_index_past_the_table() {
    let table = random_tensor(&[5, 3], 8);
    let mut tape = vae_autodiff::Tape::new();
    let tv = tape.param(&table);
    tape.gather_rows(tv, &[0, 5]);
}

#[test]
fn stop_gradient_passes_the_value_and_blocks_the_gradient() {
    let x = random_tensor(&[2, 3], 9);
    let mut tape = vae_autodiff::Tape::new();
    let xv = tape.param(&x);
    let sg = tape.stop_gradient(xv);
    assert_eq!(tape.value(sg), &x);
    // y = x + sg(x)²: dy/dx = 1 only, the squared copy contributes nothing.
    let sq = tape.square(sg);
    let y = tape.add(xv, sq);
    let s = tape.sum(y);
    let g = tape.backward(s);
    assert!(g.get(xv).unwrap().iter().all(|&d| d == 1.0));
}

#[test]
fn permute_matches_finite_differences_and_moves_values_as_numpy() {
    let x = random_tensor(&[2, 3, 4, 5], 10);
    check_gradients(std::slice::from_ref(&x), |t, v| t.permute(v[0], &[0, 2, 3, 1])).assert_within(1e-3, 1e-2);
    check_gradients(std::slice::from_ref(&x), |t, v| t.permute(v[0], &[3, 1, 0, 2])).assert_within(1e-3, 1e-2);
    let mut tape = vae_autodiff::Tape::new();
    let xv = tape.constant(x.clone());
    let y = tape.permute(xv, &[0, 2, 3, 1]);
    assert_eq!(tape.value(y).shape(), &[2, 4, 5, 3]);
    assert_eq!(tape.value(y)[[1, 2, 3, 0]], x[[1, 0, 2, 3]]);
}
