//! The model parts against finite differences on odd, non-square shapes, and each shortcut
//! against its definition: the Gaussian's log-density at its own sample (from eps) against the
//! log-density at any point, the standard-normal prior against a Gaussian with mu = 0,
//! logvar = 0, the VampPrior's mixture against its sum written out in f64; MADE's outputs
//! against the autoregressive property and an IAF step's log-determinant against the
//! determinant of its whole Jacobian.

use vae::parts::iaf::IafStep;
use vae::parts::made::{hidden_degrees, input_degrees, Made};
use vae::parts::resnet::{level_sizes, ResBlock, ResnetDecoder, ResnetEncoder, UpBlock};
use vae::parts::vamp::mixture_log_prob;
use vae::parts::{standard_normal_log_prob, Gaussian, GaussianLayer};
use vae::Activation;
use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::Tape;
use vae_layers::ParamStore;

/// log N(h; mu, diag(exp(logvar))) at any h: gradients for mu, logvar and h, M = 3 rows, J = 5.
#[test]
fn the_gaussian_log_density_matches_finite_differences() {
    let mu = random_tensor(&[3, 5], 1);
    let logvar = random_tensor(&[3, 5], 2).mapv(|v| 0.5 * v);
    let h = random_tensor(&[3, 5], 3);
    let report = check_gradients(&[mu, logvar, h], |t, v| Gaussian { mu: v[0], logvar: v[1] }.log_prob(t, v[2]));
    report.assert_within(1e-3, 1e-2);
}

/// The sample h = mu + exp(½·logvar) ⊙ eps and its log-density from eps, through mu and logvar.
#[test]
fn the_sample_and_its_log_density_match_finite_differences() {
    let mu = random_tensor(&[3, 5], 4);
    let logvar = random_tensor(&[3, 5], 5).mapv(|v| 0.5 * v);
    let eps = random_tensor(&[3, 5], 6);
    let e = eps.clone();
    check_gradients(&[mu.clone(), logvar.clone()], |t, v| {
        let eps = t.constant(e.clone());
        Gaussian { mu: v[0], logvar: v[1] }.sample(t, eps)
    })
    .assert_within(1e-3, 1e-2);
    check_gradients(&[mu, logvar], |t, v| {
        let eps = t.constant(eps.clone());
        Gaussian { mu: v[0], logvar: v[1] }.log_prob_of_sample(t, eps)
    })
    .assert_within(1e-3, 1e-2);
}

/// The shortcut from eps is the density at the sample: same values, and the same total
/// derivative with respect to mu and logvar (the sample moves with them); with respect to mu
/// both are zero, since h − mu = σ ⊙ eps does not depend on mu.
#[test]
fn the_log_density_from_eps_is_the_log_density_at_the_sample() {
    let mu = random_tensor(&[4, 3], 7);
    let logvar = random_tensor(&[4, 3], 8).mapv(|v| 0.5 * v);
    let eps = random_tensor(&[4, 3], 9);
    let run = |shortcut: bool| {
        let mut tape = Tape::new();
        let (m, lv, e) = (tape.input(mu.clone()), tape.input(logvar.clone()), tape.constant(eps.clone()));
        let g = Gaussian { mu: m, logvar: lv };
        let h = g.sample(&mut tape, e);
        let logp = if shortcut { g.log_prob_of_sample(&mut tape, e) } else { g.log_prob(&mut tape, h) };
        let r = tape.constant(random_tensor(&[4], 10));
        let y = tape.mul(logp, r);
        let loss = tape.sum(y);
        let grads = tape.backward(loss);
        let value = tape.value(logp).clone();
        // No gradient reaches mu through the shortcut (mu drops out): that is a zero.
        let zero = vae_autodiff::Tensor::zeros(vec![4, 3]);
        (value, grads.get(m).cloned().unwrap_or(zero), grads.get(lv).unwrap().clone())
    };
    let (a, b) = (run(true), run(false));
    for (x, y) in [(&a.0, &b.0), (&a.1, &b.1), (&a.2, &b.2)] {
        for (p, q) in x.iter().zip(y.iter()) {
            assert!((p - q).abs() <= 1e-5 * q.abs().max(1.0), "{p} against {q}");
        }
    }
}

/// N(0, I) is the Gaussian with mu = 0 and logvar = 0, and its gradient checks out (M = 3, J = 7).
#[test]
fn the_standard_normal_prior_is_the_gaussian_at_zero() {
    let z = random_tensor(&[3, 7], 11);
    let mut tape = Tape::new();
    let zv = tape.constant(z.clone());
    let zero = tape.constant(vae_autodiff::Tensor::zeros(vec![3, 7]));
    let prior = standard_normal_log_prob(&mut tape, zv);
    let general = Gaussian { mu: zero, logvar: zero }.log_prob(&mut tape, zv);
    for (p, q) in tape.value(prior).iter().zip(tape.value(general).iter()) {
        assert!((p - q).abs() <= 1e-5 * q.abs(), "{p} against {q}");
    }
    check_gradients(&[z], |t, v| standard_normal_log_prob(t, v[0])).assert_within(1e-3, 1e-2);
}

/// A whole stochastic layer (tanh body 5 → 7 → 4, heads to J = 3) on M = 3 rows: the gradient of
/// its log-density at a fixed point, with respect to its input.
#[test]
fn a_gaussian_layer_matches_finite_differences() {
    let mut params = ParamStore::new();
    let rng = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let layer = GaussianLayer::new(&mut params, "q1", 5, &[7, 4], 3, Activation::Tanh, rng);
    assert_eq!(layer.latent(), 3);
    let names: Vec<&str> = params.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "q1_fc1.weight",
            "q1_fc1.bias",
            "q1_fc2.weight",
            "q1_fc2.bias",
            "q1_mu.weight",
            "q1_mu.bias",
            "q1_logvar.weight",
            "q1_logvar.bias"
        ]
    );
    // The check's tapes live inside check_gradients, so the parameters they borrow must outlive it.
    let params: &'static ParamStore = Box::leak(Box::new(params));
    let x = random_tensor(&[3, 5], 12);
    let h = random_tensor(&[3, 3], 13);
    check_gradients(&[x], |t, v| {
        let p = params.on_tape(t);
        let g = layer.forward(t, &p, v[0]);
        let hv = t.constant(h.clone());
        g.log_prob(t, hv)
    })
    .assert_within(1e-3, 1e-2);
}

/// The VampPrior's log-density, through z, the components' mu and logvar: M = 3 latents,
/// K = 5 components, J = 2.
#[test]
fn the_mixture_log_density_matches_finite_differences() {
    let z = random_tensor(&[3, 2], 21);
    let mu = random_tensor(&[5, 2], 22);
    let logvar = random_tensor(&[5, 2], 23).mapv(|v| 0.5 * v);
    check_gradients(&[z, mu, logvar], |t, v| mixture_log_prob(t, v[0], v[1], v[2])).assert_within(1e-3, 1e-2);
}

/// log p(z) = log (1/K) Σ_k N(z; mu_k, diag(exp(logvar_k))), summed term by term in f64; and a
/// mixture of one component is that Gaussian.
#[test]
fn the_mixture_log_density_is_its_definition() {
    let (m, k, j) = (4, 7, 3);
    let (z, mu) = (random_tensor(&[m, j], 24), random_tensor(&[k, j], 25));
    let logvar = random_tensor(&[k, j], 26).mapv(|v| 0.8 * v);
    let mut tape = Tape::new();
    let (zv, muv, lvv) = (tape.constant(z.clone()), tape.constant(mu.clone()), tape.constant(logvar.clone()));
    let ours = mixture_log_prob(&mut tape, zv, muv, lvv);
    for row in 0..m {
        let density: f64 = (0..k)
            .map(|c| {
                let log_n: f64 = (0..j)
                    .map(|d| {
                        let (x, mean, lv) = (z[[row, d]] as f64, mu[[c, d]] as f64, logvar[[c, d]] as f64);
                        -0.5 * ((x - mean).powi(2) / lv.exp() + lv + (2.0 * std::f64::consts::PI).ln())
                    })
                    .sum();
                log_n.exp() / k as f64
            })
            .sum();
        let got = tape.value(ours)[[row]] as f64;
        assert!((got - density.ln()).abs() < 1e-5, "row {row}: {got} against {}", density.ln());
    }
    let one = tape.slice(muv, 0, 2, 1);
    let one_lv = tape.slice(lvv, 0, 2, 1);
    let single = mixture_log_prob(&mut tape, zv, one, one_lv);
    let (one_rep, lv_rep) = (tape.gather_rows(one, &[0; 4]), tape.gather_rows(one_lv, &[0; 4]));
    let direct = Gaussian { mu: one_rep, logvar: lv_rep }.log_prob(&mut tape, zv);
    for row in 0..m {
        assert!((tape.value(single)[[row]] - tape.value(direct)[[row]]).abs() < 1e-5);
    }
}

/// The Jacobian ∂y/∂z [J_out, J_in] of `f` at a single row z [1, J_in], one backward per output.
fn jacobian(z: &vae_autodiff::Tensor, f: impl Fn(&mut Tape, vae_autodiff::Var) -> vae_autodiff::Var) -> Vec<Vec<f64>> {
    let j_in = z.shape()[1];
    let mut tape = Tape::new();
    let zv = tape.input(z.clone());
    let y = f(&mut tape, zv);
    let j_out = tape.value(y).shape()[1];
    (0..j_out)
        .map(|i| {
            let seed = vae_autodiff::Tensor::from_shape_fn(vec![1, j_out], |ix| if ix[1] == i { 1.0 } else { 0.0 });
            let g = tape.backward_from(y, seed);
            let dz = g.get(zv).cloned().unwrap_or_else(|| vae_autodiff::Tensor::zeros(vec![1, j_in]));
            (0..j_in).map(|d| dz[[0, d]] as f64).collect()
        })
        .collect()
}

/// Each MADE output depends only on the inputs of lower degree: every other entry of its
/// Jacobian is exactly zero (the masks), and the allowed ones are not all zero; in both orders.
#[test]
fn made_outputs_depend_only_on_inputs_of_lower_degree() {
    let (j, w) = (5, 11);
    for reversed in [false, true] {
        let mut params = ParamStore::new();
        let rng = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(31);
        let made = Made::new(&mut params, "made", (j, w), reversed, Activation::Tanh, rng);
        let params: &'static ParamStore = Box::leak(Box::new(params));
        let deg = input_degrees(j, reversed);
        assert_eq!(hidden_degrees(w, j), [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3]);
        let z = random_tensor(&[1, j], 32);
        for head in [0, 1] {
            let jac = jacobian(&z, |t, zv| {
                let p = params.on_tape(t);
                let (m, s) = made.forward(t, &p, zv);
                if head == 0 {
                    m
                } else {
                    s
                }
            });
            let mut allowed_nonzero = 0;
            for (out, row) in jac.iter().enumerate() {
                for (inp, &v) in row.iter().enumerate() {
                    if deg[inp] >= deg[out] {
                        assert_eq!(
                            v, 0.0,
                            "output {out} (degree {}) reads input {inp} (degree {})",
                            deg[out], deg[inp]
                        );
                    } else if v != 0.0 {
                        allowed_nonzero += 1;
                    }
                }
            }
            assert_eq!(allowed_nonzero, j * (j - 1) / 2, "every allowed dependence is used (reversed: {reversed})");
        }
    }
}

/// An IAF step's log-determinant, Σ_j log σ_j, is log |det ∂z'/∂z| of its whole Jacobian (by
/// elimination in f64), which is triangular in degree order with σ on its diagonal.
#[test]
fn an_iaf_steps_log_determinant_is_that_of_its_jacobian() {
    let (j, w) = (4, 9);
    for reversed in [false, true] {
        let mut params = ParamStore::new();
        let rng = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(33);
        let step = IafStep::new(&mut params, "flow1", (j, w), reversed, Activation::Relu, rng);
        // Move the s head's bias off its start so that σ varies between units.
        let bias = params.find("flow1.s.bias").unwrap();
        params.values_mut()[bias.0] = random_tensor(&[j], 34);
        let params: &'static ParamStore = Box::leak(Box::new(params));
        let z = random_tensor(&[1, j], 35);
        let jac = jacobian(&z, |t, zv| {
            let p = params.on_tape(t);
            step.forward(t, &p, zv).0
        });
        let mut tape = Tape::new();
        let p = params.on_tape(&mut tape);
        let zv = tape.constant(z.clone());
        let (_, log_det) = step.forward(&mut tape, &p, zv);
        let log_det = tape.value(log_det)[[0]] as f64;
        // |det| by Gaussian elimination with partial pivoting.
        let mut a = jac.clone();
        let mut log_abs_det = 0.0;
        for c in 0..j {
            let pivot = (c..j).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs())).unwrap();
            a.swap(c, pivot);
            log_abs_det += a[c][c].abs().ln();
            for r in c + 1..j {
                let f = a[r][c] / a[c][c];
                for k in c..j {
                    a[r][k] -= f * a[c][k];
                }
            }
        }
        assert!((log_det - log_abs_det).abs() < 1e-5, "Σ log σ {log_det} against log |det J| {log_abs_det}");
        let deg = input_degrees(j, reversed);
        for (out, row) in jac.iter().enumerate() {
            for (inp, &v) in row.iter().enumerate() {
                if deg[inp] > deg[out] {
                    assert_eq!(v, 0.0, "z'_{out} reads z_{inp} of a higher degree");
                }
            }
        }
    }
}

/// An IAF step through its input z, M = 3 rows, J = 4, W = 7: z' and the log-determinant.
#[test]
fn an_iaf_step_matches_finite_differences() {
    let mut params = ParamStore::new();
    let rng = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(36);
    let step = IafStep::new(&mut params, "flow1", (4, 7), true, Activation::Tanh, rng);
    let params: &'static ParamStore = Box::leak(Box::new(params));
    let z = random_tensor(&[3, 4], 37);
    check_gradients(std::slice::from_ref(&z), |t, v| {
        let p = params.on_tape(t);
        step.forward(t, &p, v[0]).0
    })
    .assert_within(1e-3, 1e-2);
    check_gradients(&[z], |t, v| {
        let p = params.on_tape(t);
        step.forward(t, &p, v[0]).1
    })
    .assert_within(1e-3, 1e-2);
}

/// A stride-2 residual block through its input (N = 2, 3 → 5 channels, 6×4 maps); after the
/// data-dependent start, its output is the one `init_from_data` returned, and the branch is a
/// tenth of the shortcut's size.
#[test]
fn a_residual_block_matches_finite_differences_and_starts_near_its_shortcut() {
    let mut params = ParamStore::new();
    let rng = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(41);
    let block = ResBlock::new(&mut params, "res1", (3, 5), 2, rng);
    let x = random_tensor(&[2, 3, 6, 4], 42);
    let returned = block.init_from_data(&mut params, &x);
    let params: &'static ParamStore = Box::leak(Box::new(params));
    let mut tape = Tape::new();
    let p = params.on_tape(&mut tape);
    let xv = tape.constant(x.clone());
    let y = block.forward(&mut tape, &p, xv);
    assert!(tape.value(y).iter().zip(returned.iter()).all(|(a, b)| (a - b).abs() < 1e-4));
    let skip = block.shortcut.as_ref().unwrap().forward(&mut tape, &p, xv);
    let branch = tape.sub(y, skip);
    let rms = |v: &vae_autodiff::Tensor| (v.iter().map(|&a| (a * a) as f64).sum::<f64>() / v.len() as f64).sqrt();
    let ratio = rms(tape.value(branch)) / rms(tape.value(skip));
    assert!((ratio - 0.1).abs() < 0.02, "branch/shortcut {ratio}");
    check_gradients(&[x], |t, v| {
        let p = params.on_tape(t);
        block.forward(t, &p, v[0])
    })
    .assert_within(1e-3, 1e-2);
}

/// An up block through its input, doubling a 3×2 map (4×4 and 2×2 transposed kernels) or
/// doubling it less one (3×3 and 1×1).
#[test]
fn an_up_block_matches_finite_differences_at_both_parities() {
    for (odd, want) in [(false, [6, 4]), (true, [5, 3])] {
        let mut params = ParamStore::new();
        let rng = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(43);
        let block = UpBlock::new(&mut params, "up", (3, 2), odd, rng);
        let params: &'static ParamStore = Box::leak(Box::new(params));
        let x = random_tensor(&[2, 3, 3, 2], 44);
        let mut tape = Tape::new();
        let p = params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let y = block.forward(&mut tape, &p, xv);
        assert_eq!(tape.value(y).shape(), [2, 2, want[0], want[1]]);
        check_gradients(&[x], |t, v| {
            let p = params.on_tape(t);
            block.forward(t, &p, v[0])
        })
        .assert_within(1e-3, 1e-2);
    }
}

/// The ResNet bodies give back the input's size exactly, odd sizes on the way included: MNIST's
/// 28 → 14 → 7 → 4 and back, and a 32-pixel colour image's 32 → 16 → 8 → 4.
#[test]
fn the_resnet_decoder_mirrors_the_encoder_at_every_size() {
    assert_eq!(level_sizes(28, 3), [28, 14, 7, 4]);
    for (c, h) in [(1, 28), (3, 32), (1, 9)] {
        let mut params = ParamStore::new();
        let rng = &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(45);
        let channels = [4, 6, 6];
        let sizes = level_sizes(h, channels.len());
        let encoder = ResnetEncoder::new(&mut params, c, &channels, rng);
        let decoder = ResnetDecoder::new(&mut params, &channels, &sizes, 2 * c, rng);
        let mut tape = Tape::new();
        let p = params.on_tape(&mut tape);
        let x = tape.constant(random_tensor(&[2, c, h, h], 46));
        let top = encoder.forward(&mut tape, &p, x);
        assert_eq!(tape.value(top).shape(), [2, 6, sizes[3], sizes[3]]);
        let out = decoder.forward(&mut tape, &p, top);
        assert_eq!(tape.value(out).shape(), [2, 2 * c, h, h], "input {c}×{h}×{h}");
    }
}
