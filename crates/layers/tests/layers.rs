//! Layers: gradients against finite differences, PyTorch's initialization bounds, names.

use rand::SeedableRng;
use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::ConvGeom;
use vae_layers::{Conv2d, ConvTranspose2d, Layout, Linear, ParamStore};

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(42)
}

#[test]
fn linear_matches_finite_differences_in_input_weight_and_bias() {
    let x = random_tensor(&[3, 5], 1);
    let w = random_tensor(&[5, 7], 2);
    let b = random_tensor(&[7], 3);
    // y = x·W + b with W [I, O], as Linear::forward records it
    check_gradients(&[x, w, b], |t, v| {
        let xw = t.matmul(v[0], v[1]);
        t.add(xw, v[2])
    })
    .assert_within(1e-3, 1e-2);
}

#[test]
fn linear_weights_are_kept_transposed_and_exported_in_pytorch_layout() {
    let mut store = ParamStore::new();
    let fc = Linear::new(&mut store, "fc", 3, 2, &mut rng());
    // Drawn as PyTorch's [O, I] = [2, 3], held as [I, O] = [3, 2].
    assert_eq!(store.get(fc.weight).shape(), [3, 2]);
    assert_eq!(store.layout(fc.weight), Layout::Transposed);
    assert_eq!(store.pytorch_shape(fc.weight), [2, 3]);
    let pytorch = store.to_pytorch(fc.weight, store.get(fc.weight)).into_owned();
    assert_eq!(pytorch.shape(), [2, 3]);
    assert_eq!(pytorch[[1, 2]], store.get(fc.weight)[[2, 1]]);
    assert_eq!(store.from_pytorch(fc.weight, pytorch), *store.get(fc.weight));
    // Biases are kept as they are.
    assert_eq!(store.layout(fc.bias), Layout::AsPytorch);
    // The same draws as PyTorch's layout: U(−1/√3, 1/√3) in the order of its [2, 3] matrix.
    let want = vae_layers::init::uniform_fan_in(&[2, 3], 3, &mut rng());
    assert_eq!(store.to_pytorch(fc.weight, store.get(fc.weight)).into_owned(), want);
}

#[test]
fn initialization_follows_pytorch_bounds_and_names() {
    let mut store = ParamStore::new();
    let fc = Linear::new(&mut store, "enc_fc1", 784, 400, &mut rng());
    let conv = Conv2d::new(&mut store, "enc_conv1", 1, 32, 4, ConvGeom::new(2, 1), &mut rng());
    let deconv = ConvTranspose2d::new(&mut store, "dec_deconv1", 64, 32, 4, ConvGeom::new(2, 1), &mut rng());
    assert_eq!(store.name(fc.weight), "enc_fc1.weight");
    assert_eq!(store.pytorch_shape(fc.weight), [400, 784]);
    assert_eq!(store.get(conv.weight).shape(), [32, 1, 4, 4]);
    assert_eq!(store.get(deconv.weight).shape(), [64, 32, 4, 4]);
    // bound 1/√fan_in; a uniform variable has variance bound²/3
    for (id, fan_in) in [(fc.weight, 784), (conv.weight, 16), (deconv.weight, 32 * 16), (deconv.bias, 32 * 16)] {
        let w = store.get(id);
        let bound = 1.0 / (fan_in as f32).sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound), "{} exceeds ±{bound}", store.name(id));
        let var = w.iter().map(|v| (v * v) as f64).sum::<f64>() / w.len() as f64;
        let want = (bound * bound) as f64 / 3.0;
        assert!((var - want).abs() < 0.35 * want, "{}: variance {var} vs {want}", store.name(id));
    }
}

#[test]
#[should_panic(expected = "parameter \"fc.weight\" already exists")]
fn duplicate_names_are_refused() {
    let mut store = ParamStore::new();
    Linear::new(&mut store, "fc", 2, 2, &mut rng());
    Linear::new(&mut store, "fc", 2, 2, &mut rng());
}
