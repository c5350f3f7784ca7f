//! Convolutions against finite differences and against the direct loops, over a table of
//! geometries (odd sizes, stride 2 with padding 1, kernels 3 and 4).

use vae_autodiff::conv::{conv2d_naive, conv_transpose2d_naive};
use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::{ConvGeom, Tape, Tensor};

/// One convolution to test: input [n, c_in, h, w], kernel k×k, stride, padding, c_out.
struct Case {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    padding: usize,
}

const CASES: &[Case] = &[
    Case { n: 2, c_in: 3, h: 5, w: 7, c_out: 4, k: 3, stride: 2, padding: 1 },
    Case { n: 2, c_in: 3, h: 5, w: 7, c_out: 4, k: 4, stride: 2, padding: 1 },
    Case { n: 2, c_in: 3, h: 5, w: 7, c_out: 2, k: 3, stride: 1, padding: 1 },
    Case { n: 1, c_in: 2, h: 6, w: 5, c_out: 3, k: 4, stride: 1, padding: 0 },
    // more images than one GEMM group (8): a full group and a partial one
    Case { n: 9, c_in: 2, h: 4, w: 5, c_out: 3, k: 3, stride: 2, padding: 1 },
];

/// Agreement to f32 rounding at the scale of the tensor: a sum of hundreds of products can
/// cancel to a small value whose own relative error is large, so the bound is relative to the
/// largest entry, not to each entry.
fn assert_close(got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape());
    let scale = want.iter().fold(1.0f32, |m, w| m.max(w.abs()));
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((g - w).abs() <= 1e-5 * scale, "{g} vs {w} (scale {scale})");
    }
}

#[test]
fn conv2d_matches_finite_differences() {
    for (i, c) in CASES.iter().enumerate() {
        let x = random_tensor(&[c.n, c.c_in, c.h, c.w], 10 + i as u64);
        let w = random_tensor(&[c.c_out, c.c_in, c.k, c.k], 20 + i as u64);
        let b = random_tensor(&[c.c_out], 30 + i as u64);
        let geom = ConvGeom::new(c.stride, c.padding);
        let report = check_gradients(&[x, w, b], |t, v| t.conv2d(v[0], v[1], Some(v[2]), geom));
        report.assert_within(1e-3, 1e-2);
    }
}

#[test]
fn conv_transpose2d_matches_finite_differences() {
    for (i, c) in CASES.iter().enumerate() {
        let x = random_tensor(&[c.n, c.c_in, c.h, c.w], 40 + i as u64);
        let w = random_tensor(&[c.c_in, c.c_out, c.k, c.k], 50 + i as u64);
        let b = random_tensor(&[c.c_out], 60 + i as u64);
        let geom = ConvGeom::new(c.stride, c.padding);
        let report = check_gradients(&[x, w, b], |t, v| t.conv_transpose2d(v[0], v[1], Some(v[2]), geom));
        report.assert_within(1e-3, 1e-2);
    }
}

#[test]
fn convolutions_match_the_direct_loops_including_the_mnist_model_shapes() {
    let mnist = [
        Case { n: 10, c_in: 1, h: 28, w: 28, c_out: 32, k: 4, stride: 2, padding: 1 },
        Case { n: 10, c_in: 32, h: 14, w: 14, c_out: 64, k: 4, stride: 2, padding: 1 },
    ];
    for (i, c) in CASES.iter().chain(&mnist).enumerate() {
        let geom = ConvGeom::new(c.stride, c.padding);
        let x = random_tensor(&[c.n, c.c_in, c.h, c.w], 70 + i as u64);
        let w = random_tensor(&[c.c_out, c.c_in, c.k, c.k], 80 + i as u64);
        let b = random_tensor(&[c.c_out], 90 + i as u64);
        let mut tape = Tape::new();
        let (xv, wv, bv) = (tape.constant(x.clone()), tape.constant(w.clone()), tape.constant(b.clone()));
        let y = tape.conv2d(xv, wv, Some(bv), geom);
        assert_close(tape.value(y), &conv2d_naive(&x, &w, Some(&b), geom));

        // The transposed convolution maps the conv's output shape back to its input shape.
        let wt = random_tensor(&[c.c_out, c.c_in, c.k, c.k], 100 + i as u64);
        let bt = random_tensor(&[c.c_in], 110 + i as u64);
        let y_val = tape.value(y).clone();
        let (wtv, btv) = (tape.constant(wt.clone()), tape.constant(bt.clone()));
        let yt = tape.conv_transpose2d(y, wtv, Some(btv), geom);
        assert_close(tape.value(yt), &conv_transpose2d_naive(&y_val, &wt, Some(&bt), geom));
    }
}

#[test]
fn the_input_gradient_of_a_convolution_is_a_transposed_convolution() {
    // ⟨conv(x, w), u⟩ = ⟨x, conv_transpose(u, w)⟩ for every x, u: the two are adjoint.
    let geom = ConvGeom::new(2, 1);
    let x = random_tensor(&[2, 3, 5, 7], 1);
    let w = random_tensor(&[4, 3, 3, 3], 2);
    let y = conv2d_naive(&x, &w, None, geom);
    let u = random_tensor(y.shape(), 3);
    let xt = conv_transpose2d_naive(&u, &w, None, geom);
    let lhs: f64 = y.iter().zip(u.iter()).map(|(a, b)| (a * b) as f64).sum();
    let rhs: f64 = x.iter().zip(xt.iter()).map(|(a, b)| (a * b) as f64).sum();
    assert!((lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
}

#[test]
#[should_panic(expected = "conv2d: x has 3 channels, w [4, 2, 3, 3] expects 2")]
fn channel_mismatch_panics_naming_both_shapes() {
    let mut tape = Tape::new();
    let x = tape.constant(Tensor::zeros(vec![1, 3, 5, 5]));
    let w = tape.constant(Tensor::zeros(vec![4, 2, 3, 3]));
    tape.conv2d(x, w, None, ConvGeom::new(1, 1));
}
