//! Optimizers against their update rules written out step by step in f64.

use vae_autodiff::Tensor;
use vae_layers::optim::{clip_grad_norm, Adagrad, Adam, Adamax, Averaged, Optimizer, Sgd};

fn t(v: &[f32]) -> Tensor {
    Tensor::from_shape_vec(vec![v.len()], v.to_vec()).unwrap()
}

/// Three gradients for a two-element parameter.
const GRADS: [[f32; 2]; 3] = [[0.5, -1.0], [0.25, 2.0], [-0.75, 0.1]];

fn run(opt: &mut dyn Optimizer) -> Vec<f32> {
    let mut params = vec![t(&[1.0, -2.0])];
    for g in GRADS {
        opt.step(&mut params, &[t(&g)]);
    }
    params[0].iter().copied().collect()
}

fn assert_close(got: &[f32], want: &[f64]) {
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() < 1e-6 * (1.0 + w.abs()), "{got:?} vs {want:?}");
    }
}

#[test]
fn adam_follows_pytorchs_bias_corrected_update() {
    let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.1);
    let mut theta = [1.0f64, -2.0];
    let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
    for (k, g) in GRADS.iter().enumerate() {
        let step = k as i32 + 1;
        for i in 0..2 {
            let g = g[i] as f64 + wd * theta[i];
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let m_hat = m[i] / (1.0 - b1.powi(step));
            let v_hat = v[i] / (1.0 - b2.powi(step));
            theta[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
    let mut adam = Adam::new(0.01);
    adam.weight_decay = 0.1;
    assert_close(&run(&mut adam), &theta);
}

#[test]
fn sgd_with_momentum_follows_pytorchs_update() {
    let (lr, mu) = (0.1, 0.9);
    let mut theta = [1.0f64, -2.0];
    let mut b = [0.0f64; 2];
    for (k, g) in GRADS.iter().enumerate() {
        for i in 0..2 {
            b[i] = if k == 0 { g[i] as f64 } else { mu * b[i] + g[i] as f64 };
            theta[i] -= lr * b[i];
        }
    }
    assert_close(&run(&mut Sgd::new(0.1, 0.9)), &theta);
}

#[test]
fn adagrad_follows_its_update() {
    let lr = 0.1;
    let mut theta = [1.0f64, -2.0];
    let mut s = [0.0f64; 2];
    for g in GRADS {
        for i in 0..2 {
            s[i] += (g[i] as f64).powi(2);
            theta[i] -= lr * g[i] as f64 / (s[i].sqrt() + 1e-10);
        }
    }
    assert_close(&run(&mut Adagrad::new(0.1)), &theta);
}

#[test]
fn adamax_follows_pytorchs_update() {
    let (lr, b1, b2, eps, wd) = (0.002, 0.9, 0.999, 1e-8, 0.1);
    let mut theta = [1.0f64, -2.0];
    let (mut m, mut u) = ([0.0f64; 2], [0.0f64; 2]);
    for (k, g) in GRADS.iter().enumerate() {
        let step = k as i32 + 1;
        for i in 0..2 {
            let g = g[i] as f64 + wd * theta[i];
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            u[i] = (b2 * u[i]).max(g.abs() + eps);
            theta[i] -= lr / (1.0 - b1.powi(step)) * m[i] / u[i];
        }
    }
    let mut adamax = Adamax::new(0.002);
    adamax.weight_decay = 0.1;
    let got = run(&mut adamax);
    assert_close(&got, &theta);
    // torch.optim.Adamax(lr=0.002, weight_decay=0.1) on the same gradients, in float64.
    assert_close(&got, &[0.9962666424759249, -1.998646143637984]);
    // The update moves each value by at most about lr: |m̂/u| ≤ 1 (Kingma & Ba's bound).
    let moved = run(&mut Adamax::new(0.002));
    assert!(moved.iter().zip([1.0f32, -2.0]).all(|(a, b)| (a - b).abs() <= 3.0 * 0.002 + 1e-6), "{moved:?}");
}

#[test]
fn every_optimizers_state_round_trips() {
    let fresh: [fn() -> Box<dyn Optimizer>; 5] = [
        || Box::new(Adam::new(0.01)),
        || Box::new(Sgd::new(0.1, 0.9)),
        || Box::new(Adagrad::new(0.1)),
        || Box::new(Adamax::new(0.002)),
        || Box::new(Averaged::new(Box::new(Adamax::new(0.002)), 0.9)),
    ];
    for make in fresh {
        let (mut a, mut b) = (make(), make());
        run(a.as_mut());
        let (steps, state) = a.state();
        let mut pa = vec![t(&[0.3, 0.4])];
        b.load_state(steps, state, &pa).unwrap();
        let mut pb = pa.clone();
        a.step(&mut pa, &[t(&[1.0, -1.0])]);
        b.step(&mut pb, &[t(&[1.0, -1.0])]);
        assert_eq!(pa, pb, "a restored optimizer steps as the original does");
        assert_eq!(b.steps(), steps + 1);
        let (mut avg_a, mut avg_b) = (pa.clone(), pb.clone());
        assert_eq!(a.swap_average(&mut avg_a), b.swap_average(&mut avg_b));
        assert_eq!(avg_a, avg_b, "and keeps the same average, if any");
    }
}

#[test]
fn the_average_follows_its_definition_and_leaves_the_steps_alone() {
    let d = 0.9f64;
    let mut plain = Adamax::new(0.002);
    let mut averaged = Averaged::new(Box::new(Adamax::new(0.002)), d as f32);
    let mut pa = vec![t(&[1.0, -2.0])];
    let mut pb = pa.clone();
    // θ̄ starts at the weights before the first step, then θ̄ ← d·θ̄ + (1 − d)·θ after each.
    let mut want: Vec<f64> = vec![1.0, -2.0];
    for g in GRADS {
        plain.step(&mut pa, &[t(&g)]);
        averaged.step(&mut pb, &[t(&g)]);
        assert_eq!(pa, pb, "the averaged optimizer steps the weights as the one it wraps");
        for (w, &theta) in want.iter_mut().zip(pb[0].iter()) {
            *w = d * *w + (1.0 - d) * theta as f64;
        }
    }
    let got: Vec<f32> = averaged.average()[0].iter().copied().collect();
    assert_close(&got, &want);
    // Swapping puts the average in the weights' place, and a second swap undoes it.
    let weights = pb.clone();
    assert!(averaged.swap_average(&mut pb));
    assert_close(&pb[0].iter().copied().collect::<Vec<_>>(), &want);
    assert!(averaged.swap_average(&mut pb));
    assert_eq!(pb, weights);
    assert!(!Adamax::new(0.002).swap_average(&mut pb), "an optimizer without an average swaps nothing");
    let err = Averaged::new(Box::new(Adamax::new(0.002)), 0.9).load_state(3, plain.state().1, &pb).unwrap_err();
    assert!(err.contains("avg.0 is missing"), "a state without the average is refused: {err}");
}

#[test]
fn optimizer_state_round_trips() {
    let mut a = Adam::new(0.01);
    run(&mut a);
    let (steps, state) = a.state();
    let mut b = Adam::new(0.01);
    let mut pa = vec![t(&[0.3, 0.4])];
    b.load_state(steps, state.clone(), &pa).unwrap();
    let mut pb = pa.clone();
    a.step(&mut pa, &[t(&[1.0, 1.0])]);
    b.step(&mut pb, &[t(&[1.0, 1.0])]);
    assert_eq!(pa, pb);
    let err = b.load_state(1, vec![("x.0".into(), t(&[1.0]))], &pa).unwrap_err();
    assert!(err.contains("m.0 is missing"), "{err}");
    let err = b.load_state(steps, state, &[t(&[1.0, 2.0, 3.0])]).unwrap_err();
    assert!(err.contains("m.0 has shape [2], its parameter [3]"), "{err}");
}

#[test]
fn clipping_scales_to_the_global_norm_and_leaves_small_gradients_alone() {
    let mut g = vec![t(&[3.0]), t(&[4.0])]; // norm 5
    assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
    let norm: f32 = g.iter().map(|g| g[[0]] * g[[0]]).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    assert!((g[0][[0]] / g[1][[0]] - 0.75).abs() < 1e-6, "direction kept");
    let mut small = vec![t(&[0.3])];
    clip_grad_norm(&mut small, 1.0);
    assert_eq!(small[0][[0]], 0.3);
}
