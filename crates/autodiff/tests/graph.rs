//! Tests of the tape itself: accumulation, graph shapes, independence of tapes.

use ndarray::array;
use vae_autodiff::{Tape, Tensor};

fn t(v: &[f32]) -> Tensor {
    Tensor::from_shape_vec(vec![v.len()], v.to_vec()).unwrap()
}

#[test]
fn fan_out_accumulates_the_gradients_of_both_uses() {
    // y = x·x + x  ⇒  dy/dx = 2x + 1
    let mut tape = Tape::new();
    let x = tape.input(t(&[3.0, -2.0]));
    let xx = tape.mul(x, x);
    let y = tape.add(xx, x);
    let loss = tape.sum(y);
    let grads = tape.backward(loss);
    assert_eq!(grads.get(x).unwrap(), &t(&[7.0, -3.0]));
}

#[test]
fn a_diamond_sums_both_paths() {
    // a = exp(x); b = 2a; c = a²; y = b + c  ⇒  dy/dx = (2 + 2a)·a
    let mut tape = Tape::new();
    let x = tape.input(t(&[0.5]));
    let a = tape.exp(x);
    let b = tape.scale(a, 2.0);
    let c = tape.square(a);
    let y = tape.add(b, c);
    let loss = tape.sum(y);
    let grads = tape.backward(loss);
    let av = 0.5f32.exp();
    let want = (2.0 + 2.0 * av) * av;
    assert!((grads.get(x).unwrap()[[0]] - want).abs() < 1e-5);
}

#[test]
fn an_unused_branch_gets_no_gradient_and_changes_nothing() {
    let mut tape = Tape::new();
    let x = tape.input(t(&[1.0, 2.0]));
    let w = tape.input(t(&[5.0, 5.0]));
    let _unused = tape.mul(x, w); // recorded, never reaches the loss
    let y = tape.square(x);
    let loss = tape.sum(y);
    let grads = tape.backward(loss);
    assert_eq!(grads.get(x).unwrap(), &t(&[2.0, 4.0]));
    assert!(grads.get(w).is_none());
}

#[test]
fn two_tapes_in_a_row_share_nothing() {
    let w = array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn();
    let mut first = None;
    for _ in 0..2 {
        let mut tape = Tape::new();
        let wv = tape.param(&w);
        let x = tape.constant(array![[1.0f32, -1.0]].into_dyn());
        let h = tape.matmul_nt(x, wv);
        let loss = tape.sum(h);
        let grads = tape.backward(loss);
        let g = grads.get(wv).unwrap().clone();
        match &first {
            None => first = Some(g),
            Some(f) => assert_eq!(&g, f, "the second tape saw state of the first"),
        }
    }
}

#[test]
fn parameters_are_borrowed_not_copied() {
    let w = Tensor::ones(vec![2, 2]);
    let mut tape = Tape::new();
    let wv = tape.param(&w);
    assert!(std::ptr::eq(tape.value(wv), &w));
}

#[test]
fn constants_get_no_gradient() {
    let mut tape = Tape::new();
    let c = tape.constant(t(&[1.0]));
    let x = tape.input(t(&[2.0]));
    let y = tape.mul(x, c);
    let loss = tape.sum(y);
    let grads = tape.backward(loss);
    assert!(grads.get(c).is_none());
    assert_eq!(grads.get(x).unwrap(), &t(&[1.0]));
}

#[test]
#[should_panic(expected = "backward(): the loss must be a scalar, found shape [2]")]
fn backward_on_a_non_scalar_panics_clearly() {
    let mut tape = Tape::new();
    let x = tape.input(t(&[1.0, 2.0]));
    let y = tape.exp(x);
    tape.backward(y);
}

#[test]
fn a_constant_bias_of_a_convolution_gets_no_gradient() {
    use vae_autodiff::ConvGeom;
    let mut tape = Tape::new();
    let x = tape.input(Tensor::ones(vec![1, 1, 3, 3]));
    let w = tape.input(Tensor::ones(vec![2, 1, 2, 2]));
    let b = tape.constant(Tensor::ones(vec![2]));
    let y = tape.conv2d(x, w, Some(b), ConvGeom::new(1, 0));
    let loss = tape.sum(y);
    let grads = tape.backward(loss);
    assert!(grads.get(b).is_none());
    assert!(grads.get(w).is_some());
}

#[test]
fn seeding_several_outputs_gives_the_gradient_of_their_weighted_sum() {
    // y1 = exp(x), y2 = x·x (x used by both). Seeds dy1, dy2 ⇒ dx = dy1·exp(x) + dy2·2x, which
    // is also the gradient of the scalar Σ dy1⊙y1 + Σ dy2⊙y2.
    let x0 = [0.3f32, -1.2, 2.0];
    let (dy1, dy2) = (t(&[1.5, -0.5, 0.25]), t(&[-2.0, 0.75, 1.0]));
    let mut tape = Tape::new();
    let x = tape.input(t(&x0));
    let y1 = tape.exp(x);
    let y2 = tape.mul(x, x);
    let grads = tape.backward_from_many(vec![(y1, dy1.clone()), (y2, dy2.clone())]);
    let got = grads.get(x).unwrap();
    for i in 0..3 {
        let want = dy1[[i]] * x0[i].exp() + dy2[[i]] * 2.0 * x0[i];
        assert!((got[[i]] - want).abs() < 1e-5 * (1.0 + want.abs()), "dx[{i}] = {}, want {want}", got[[i]]);
    }
    // Seeding one node twice adds the seeds.
    let twice = tape.backward_from_many(vec![(y2, dy2.clone()), (y2, dy2.clone())]);
    let once = tape.backward_from(y2, dy2);
    assert_eq!(twice.get(x).unwrap(), &(once.get(x).unwrap() * 2.0));
}
