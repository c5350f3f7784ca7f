//! The weight-normalized convolution: its input gradient against finite differences on odd
//! shapes; at creation, the plain convolution of its v; after the data-dependent
//! initialization, every output channel at mean 0 and standard deviation `scale` on that batch.

use rand::SeedableRng;
use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::{ConvGeom, Tape};
use vae_layers::{ParamStore, WnConv2d};

fn layer(c_in: usize, c_out: usize, geom: ConvGeom, transposed: bool) -> (ParamStore, WnConv2d) {
    let mut store = ParamStore::new();
    let rng = &mut rand::rngs::StdRng::seed_from_u64(5);
    let conv = match transposed {
        false => WnConv2d::new(&mut store, "res1", c_in, c_out, 3, geom, rng),
        true => WnConv2d::new_transposed(&mut store, "up1", c_in, c_out, 3, geom, rng),
    };
    (store, conv)
}

#[test]
fn a_weight_normalized_convolution_matches_finite_differences() {
    for transposed in [false, true] {
        let (store, conv) = layer(2, 3, ConvGeom::new(2, 1), transposed);
        let store: &'static ParamStore = Box::leak(Box::new(store));
        let x = random_tensor(&[2, 2, 5, 7], 6);
        check_gradients(&[x], |t, v| {
            let p = store.on_tape(t);
            conv.forward(t, &p, v[0])
        })
        .assert_within(1e-3, 1e-2);
    }
}

#[test]
fn it_starts_as_the_convolution_of_v_and_its_data_init_standardizes_each_channel() {
    for transposed in [false, true] {
        starts_as_v_and_standardizes(transposed);
    }
}

fn starts_as_v_and_standardizes(transposed: bool) {
    let (mut store, conv) = layer(3, 4, ConvGeom::new(1, 1), transposed);
    let x = random_tensor(&[5, 3, 6, 6], 7).mapv(|v| 2.0 * v + 0.5);
    let run = |store: &ParamStore| {
        let mut tape = Tape::new();
        let p = store.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let y = conv.forward(&mut tape, &p, xv);
        let plain = match transposed {
            false => tape.conv2d(xv, p.var(conv.v), None, conv.geom),
            true => tape.conv_transpose2d(xv, p.var(conv.v), None, conv.geom),
        };
        (tape.value(y).clone(), tape.value(plain).clone())
    };
    let (y, plain) = run(&store);
    assert!(y.iter().zip(plain.iter()).all(|(a, b)| (a - b).abs() < 1e-5), "g = ‖v‖ and b = 0: w = v");
    let returned = conv.init_from_data(&mut store, &x, 0.5);
    let (y, _) = run(&store);
    assert!(y.iter().zip(returned.iter()).all(|(a, b)| (a - b).abs() < 1e-4), "the returned output is the layer's");
    for o in 0..4 {
        let ch = y.index_axis(ndarray::Axis(1), o);
        let n = ch.len() as f64;
        let mean = ch.iter().map(|&v| v as f64).sum::<f64>() / n;
        let sd = (ch.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 1e-4 && (sd - 0.5).abs() < 1e-4, "channel {o}: mean {mean}, sd {sd}");
    }
}
