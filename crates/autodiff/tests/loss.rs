//! The fused losses against finite differences and against the compositions of primitives
//! they replace, values and gradients both.

use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::loss::HALF_LN_2PI;
use vae_autodiff::{Tape, Tensor, Var};

/// Pixel-like targets in [0, 1], not binary.
fn targets(shape: &[usize], seed: u64) -> Tensor {
    random_tensor(shape, seed).mapv(vae_autodiff::elementwise::sigmoid)
}

/// Runs `f` (fused) and `g` (composition) on the same inputs, seeds both backwards with the
/// same random dy, and requires equal values and equal gradients.
fn assert_fused_matches(inputs: &[Tensor], f: impl Fn(&mut Tape, &[Var]) -> Var, g: impl Fn(&mut Tape, &[Var]) -> Var) {
    let run = |h: &dyn Fn(&mut Tape, &[Var]) -> Var| {
        let mut tape = Tape::new();
        let vars: Vec<Var> = inputs.iter().map(|x| tape.input(x.clone())).collect();
        let y = h(&mut tape, &vars);
        let dy = random_tensor(tape.value(y).shape(), 99);
        let mut grads = tape.backward_from(y, dy);
        let gs: Vec<Tensor> = vars.iter().map(|&v| grads.take(v).unwrap()).collect();
        (tape.value(y).clone(), gs)
    };
    let (y_fused, g_fused) = run(&f);
    let (y_comp, g_comp) = run(&g);
    assert_eq!(y_fused.shape(), y_comp.shape());
    for (a, b) in y_fused.iter().chain(g_fused.iter().flatten()).zip(y_comp.iter().chain(g_comp.iter().flatten())) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "fused {a} vs composed {b}");
    }
}

#[test]
fn bce_with_logits_matches_finite_differences_and_its_composition() {
    let logits = random_tensor(&[3, 5], 1).mapv(|v| 3.0 * v);
    let x = targets(&[3, 5], 2);
    let xc = x.clone();
    check_gradients(std::slice::from_ref(&logits), |t, v| {
        let x = t.constant(xc.clone());
        t.bce_with_logits(v[0], x)
    })
    .assert_within(1e-3, 1e-2);
    assert_fused_matches(
        &[logits],
        |t, v| {
            let x = t.constant(x.clone());
            t.bce_with_logits(v[0], x)
        },
        |t, v| {
            // Σ_i softplus(l) − x·l
            let x = t.constant(x.clone());
            let sp = t.softplus(v[0]);
            let xl = t.mul(x, v[0]);
            let e = t.sub(sp, xl);
            t.sum_axis(e, 1)
        },
    );
}

#[test]
fn bce_with_logits_is_finite_for_extreme_logits() {
    let mut tape = Tape::new();
    let l = tape.input(Tensor::from_shape_vec(vec![1, 4], vec![-1000.0, -100.0, 100.0, 1000.0]).unwrap());
    let x = tape.constant(Tensor::from_shape_vec(vec![1, 4], vec![1.0, 0.0, 0.5, 1.0]).unwrap());
    let y = tape.bce_with_logits(l, x);
    // softplus(−1000) + 1000 = 1000; softplus(−100) = 0; softplus(100) − 50 = 50; 1000 − 1000 = 0
    assert_eq!(tape.scalar(y), 1050.0);
    let loss = tape.sum(y);
    let grads = tape.backward(loss);
    // dl = σ(l) − x. σ(−100) is 3.7e-44 exactly, but fastmath::exp clamps its argument at −87,
    // so the engine gives e^−87 / (1 + e^−87) ≈ 1.65e-38: finite and tiny, not exact.
    let dl = grads.get(l).unwrap();
    assert_eq!([dl[[0, 0]], dl[[0, 2]], dl[[0, 3]]], [-1.0, 0.5, 0.0], "{dl}");
    let clamped = (-87.0f64).exp() / (1.0 + (-87.0f64).exp());
    assert!((dl[[0, 1]] as f64 - clamped).abs() < 1e-6 * clamped, "σ(−100) gave {}", dl[[0, 1]]);
}

#[test]
fn gaussian_nll_matches_finite_differences_and_its_composition() {
    let mean = random_tensor(&[3, 5], 3);
    let x = targets(&[3, 5], 4);
    let sigma = 0.7f32;
    let xc = x.clone();
    check_gradients(std::slice::from_ref(&mean), |t, v| {
        let x = t.constant(xc.clone());
        t.gaussian_nll(v[0], x, sigma)
    })
    .assert_within(1e-3, 1e-2);
    assert_fused_matches(
        &[mean],
        |t, v| {
            let x = t.constant(x.clone());
            t.gaussian_nll(v[0], x, sigma)
        },
        |t, v| {
            // Σ_i (x − m)²/(2σ²) + D·(ln σ + ½ ln 2π)
            let x = t.constant(x.clone());
            let r = t.sub(x, v[0]);
            let r2 = t.square(r);
            let q = t.scale(r2, 1.0 / (2.0 * sigma * sigma));
            let s = t.sum_axis(q, 1);
            let c = t.constant(Tensor::from_elem(vec![], 5.0 * (sigma.ln() + HALF_LN_2PI)));
            t.add(s, c)
        },
    );
}

#[test]
fn kl_std_normal_matches_finite_differences_and_its_composition() {
    let mu = random_tensor(&[3, 5], 5);
    let logvar = random_tensor(&[3, 5], 6);
    check_gradients(&[mu.clone(), logvar.clone()], |t, v| t.kl_std_normal(v[0], v[1])).assert_within(1e-3, 1e-2);
    assert_fused_matches(
        &[mu, logvar],
        |t, v| t.kl_std_normal(v[0], v[1]),
        |t, v| {
            // −½ Σ_j (1 + logvar − mu² − exp(logvar))
            let one = t.constant(Tensor::from_elem(vec![], 1.0));
            let mu2 = t.square(v[0]);
            let var = t.exp(v[1]);
            let a = t.add(v[1], one);
            let b = t.sub(a, mu2);
            let c = t.sub(b, var);
            let s = t.sum_axis(c, 1);
            t.scale(s, -0.5)
        },
    );
}

#[test]
fn kl_is_zero_exactly_at_the_prior() {
    let mut tape = Tape::new();
    let mu = tape.input(Tensor::zeros(vec![2, 3]));
    let logvar = tape.input(Tensor::zeros(vec![2, 3]));
    let kl = tape.kl_std_normal(mu, logvar);
    assert_eq!(tape.value(kl).as_slice().unwrap(), &[0.0, 0.0]);
}

#[test]
#[should_panic(expected = "bce_with_logits: the target Var(1) is trainable")]
fn a_trainable_target_is_refused_rather_than_left_without_gradient() {
    let mut tape = Tape::new();
    let logits = tape.input(random_tensor(&[2, 3], 7));
    let target = tape.input(targets(&[2, 3], 8));
    tape.bce_with_logits(logits, target);
}

/// Pixels on the 256 levels k/255, the first and last level included.
fn levels(shape: &[usize], seed: u64) -> Tensor {
    let mut x =
        random_tensor(shape, seed).mapv(|v| (vae_autodiff::elementwise::sigmoid(2.0 * v) * 255.0).round() / 255.0);
    let n = x.len();
    let flat = x.as_slice_mut().unwrap();
    flat[0] = 0.0;
    flat[n - 1] = 1.0;
    flat[n / 2] = 0.0;
    flat[n / 3] = 1.0;
    x
}

/// The mass of level k under the logistic (m, e^s), in f64 by the textbook difference of CDFs,
/// the edge bins taking the tails: the definition `dlogistic_nll` must agree with.
fn mass_by_definition(m: f64, s: f64, k: u32) -> f64 {
    let cdf = |v: f64| 1.0 / (1.0 + (-(v - m) / s.exp()).exp());
    let (x, h) = (k as f64 / 255.0, 0.5 / 255.0);
    let upper = if k == 255 { 1.0 } else { cdf(x + h) };
    let lower = if k == 0 { 0.0 } else { cdf(x - h) };
    upper - lower
}

fn dlogistic_nll_of(m: f32, s: f32, x: f32) -> f32 {
    let mut tape = Tape::new();
    let (mv, sv) = (tape.input(Tensor::from_elem(vec![1, 1], m)), tape.input(Tensor::from_elem(vec![1, 1], s)));
    let xv = tape.constant(Tensor::from_elem(vec![1, 1], x));
    let y = tape.dlogistic_nll(mv, sv, xv);
    tape.value(y)[[0]]
}

#[test]
fn dlogistic_nll_matches_finite_differences_at_every_kind_of_bin() {
    // Odd, non-square shapes; means around the pixels; scales from a tenth of a bin to 0.2.
    for (shape, lo, hi) in [([3usize, 5usize], -3.5f32, -1.5f32), ([2, 7], -7.5, -5.0)] {
        let mean = random_tensor(&shape, 3).mapv(|v| 0.5 + 0.4 * v);
        let log_scale = random_tensor(&shape, 4).mapv(|v| lo + (hi - lo) * vae_autodiff::elementwise::sigmoid(v));
        let x = levels(&shape, 5);
        check_gradients(&[mean, log_scale], |t, v| {
            let x = t.constant(x.clone());
            t.dlogistic_nll(v[0], v[1], x)
        })
        .assert_within(2e-3, 2e-2);
    }
}

#[test]
fn dlogistic_masses_sum_to_one_and_match_the_difference_of_cdfs() {
    for (m, s) in [(0.5f32, -3.0f32), (0.02, -4.5), (0.97, -2.0), (0.3, -6.0), (1.4, -1.0), (-0.2, 0.5)] {
        let mut total = 0.0f64;
        for k in 0..=255u32 {
            let p = (-dlogistic_nll_of(m, s, k as f32 / 255.0) as f64).exp();
            let want = mass_by_definition(m as f64, s as f64, k);
            assert!((p - want).abs() <= 2e-6 + 1e-4 * want, "m {m} s {s} k {k}: {p} against {want}");
            total += p;
        }
        assert!((total - 1.0).abs() < 1e-4, "m {m} s {s}: the 256 masses sum to {total}");
    }
}

#[test]
fn dlogistic_nll_is_finite_for_tiny_and_huge_scales_at_the_edges_and_inside() {
    for s in [-40.0f32, -12.0, 0.0, 6.0] {
        for (m, x) in [(0.0f32, 0.0f32), (1.0, 1.0), (0.5, 0.5), (0.0, 1.0), (1.0, 0.0), (0.5, 128.0 / 255.0)] {
            let y = dlogistic_nll_of(m, s, x);
            assert!(y.is_finite() && y >= -1e-6, "s {s} m {m} x {x}: {y}");
            let (_, dm, ds) = vae_autodiff::loss::dlogistic(m, s, x);
            assert!(dm.is_finite() && ds.is_finite(), "s {s} m {m} x {x}: {dm} {ds}");
        }
    }
    // A tiny scale on the pixel itself: all the mass in its bin.
    assert!(dlogistic_nll_of(0.5, -12.0, 0.5) < 1e-3);
    // A huge scale: the mass of an inner bin is about its width times the density at the mean,
    // 1/(255·4·e^s).
    let y = dlogistic_nll_of(0.5, 6.0, 0.5) as f64;
    assert!((y - (255.0 * 4.0 * 6f64.exp()).ln()).abs() < 1e-3, "{y}");
}

#[test]
fn dlogistic_log_prob_matches_finite_differences_and_sums_to_minus_the_nll() {
    let shape = [2usize, 3, 5];
    let mean = random_tensor(&shape, 13).mapv(|v| 0.5 + 0.4 * v);
    let log_scale = random_tensor(&shape, 14).mapv(|v| -4.0 + 1.5 * v);
    let x = levels(&shape, 15);
    let xc = x.clone();
    check_gradients(&[mean.clone(), log_scale.clone()], |t, v| {
        let x = t.constant(xc.clone());
        t.dlogistic_log_prob(v[0], v[1], x)
    })
    .assert_within(2e-3, 2e-2);
    // Its terms summed per example are minus dlogistic_nll, values and gradients both.
    let flat = |t: &Tensor| t.to_shape((2, 15)).unwrap().to_owned().into_dyn();
    assert_fused_matches(
        &[flat(&mean), flat(&log_scale)],
        |t, v| {
            let x = t.constant(flat(&x));
            let nll = t.dlogistic_nll(v[0], v[1], x);
            t.neg(nll)
        },
        |t, v| {
            let x = t.constant(flat(&x));
            let lp = t.dlogistic_log_prob(v[0], v[1], x);
            t.sum_axis(lp, 1)
        },
    );
}
