//! The K-sample objectives: the IWAE bound's gradient against finite differences, its K = 1 case
//! against the sampled-KL ELBO, the bound rising with K, and the training step on any chunking.

mod common;

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::family::StepSettings;
use vae::model::standard_normal;
use vae::objective::{self, iw_bound, log_posterior, log_prior, sample_rows, Objective};
use vae::parts::tile;
use vae::train::{active_units, iw_log_likelihood, train_step_objective, train_step_with};
use vae::Vae;
use vae_autodiff::gradcheck::{check_gradients, random_tensor};
use vae_autodiff::{Tape, Tensor};
use vae_layers::optim::Adam;

/// The IWAE loss of a tiny model written out on the tape: N = 3 examples, J = 2, D = 5 pixels,
/// K = 4 samples, a linear decoder W [D, J], Bernoulli targets. Inputs: mu, logvar, W.
#[test]
fn the_iwae_bound_matches_finite_differences() {
    let (n, j, d, k) = (3, 2, 5, 4);
    let mu = random_tensor(&[n, j], 1);
    let logvar = random_tensor(&[n, j], 2).mapv(|v| 0.5 * v);
    let w = random_tensor(&[d, j], 3);
    let x = random_tensor(&[n, d], 4).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
    let eps = random_tensor(&[k * n, j], 5);
    let report = check_gradients(&[mu, logvar, w], |t, v| {
        let (mu_rep, logvar_rep) = (tile(t, v[0], k), tile(t, v[1], k));
        let epsv = t.constant(eps.clone());
        let z = vae::model::reparameterize(t, mu_rep, logvar_rep, epsv);
        let logits = t.matmul_nt(z, v[2]);
        let xv = t.constant(x.clone());
        let x_rep = tile(t, xv, k);
        let recon = t.bce_with_logits(logits, x_rep);
        let log_pz = log_prior(t, z);
        let log_qz = log_posterior(t, logvar_rep, epsv);
        let joint = t.sub(log_pz, recon);
        let log_w = t.sub(joint, log_qz);
        iw_bound(t, log_w, k)
    });
    report.assert_within(1e-3, 1e-2);
}

/// log N(z; mu, σ²) written with eps equals the density at z written out directly, in f64.
#[test]
fn log_posterior_and_log_prior_are_the_gaussian_densities() {
    let (m, j) = (7, 3);
    let (mu, logvar, eps) = (random_tensor(&[m, j], 6), random_tensor(&[m, j], 7), random_tensor(&[m, j], 8));
    let mut tape = Tape::new();
    let (muv, lvv, epsv) = (tape.constant(mu.clone()), tape.constant(logvar.clone()), tape.constant(eps.clone()));
    let z = vae::model::reparameterize(&mut tape, muv, lvv, epsv);
    let (lq, lp) = (log_posterior(&mut tape, lvv, epsv), log_prior(&mut tape, z));
    let ln_2pi = (2.0 * std::f64::consts::PI).ln();
    for r in 0..m {
        let (mut want_q, mut want_p) = (0.0f64, 0.0f64);
        for c in 0..j {
            let (mu, lv, zv) = (mu[[r, c]] as f64, logvar[[r, c]] as f64, tape.value(z)[[r, c]] as f64);
            want_q += -0.5 * ((zv - mu).powi(2) / lv.exp() + lv + ln_2pi);
            want_p += -0.5 * (zv * zv + ln_2pi);
        }
        assert!((tape.value(lq)[[r]] as f64 - want_q).abs() < 1e-5, "log q row {r}");
        assert!((tape.value(lp)[[r]] as f64 - want_p).abs() < 1e-5, "log p row {r}");
    }
}

/// With K = 1, −L_1 = −log w = recon + log q − log p: the ELBO with its KL sampled.
#[test]
fn iwae_with_one_sample_is_the_sampled_kl_elbo() {
    let x = common::stripes(6, 1);
    let model = Vae::new(common::small_config(), &mut StdRng::seed_from_u64(2)).unwrap();
    let eps = standard_normal(&[6, 2], &mut StdRng::seed_from_u64(3));
    let mut tape = Tape::new();
    let p = model.params.on_tape(&mut tape);
    let (xv, epsv) = (tape.constant(x.clone()), tape.constant(eps.clone()));
    let iwae = objective::loss(&model, &mut tape, &p, xv, epsv, Objective::Iwae { k: 1 }, 1.0);
    // The same ELBO from the plain model's pieces, with its KL estimated from the one sample z
    // by the densities written out (not the objective's functions).
    let e = model.elbo(&mut tape, &p, xv, epsv, 1.0);
    let (mu, logvar, z) = (tape.value(e.mu), tape.value(e.logvar), tape.value(e.z));
    let mut sampled_kl = 0.0f64;
    for r in 0..6 {
        for c in 0..2 {
            let (m, lv, zv) = (mu[[r, c]] as f64, logvar[[r, c]] as f64, z[[r, c]] as f64);
            sampled_kl += -0.5 * ((zv - m).powi(2) / lv.exp() + lv) + 0.5 * zv * zv;
        }
    }
    let elbo = tape.scalar(e.recon_mean) as f64 + sampled_kl / 6.0;
    let ours = tape.scalar(iwae.loss) as f64;
    assert!((ours - elbo).abs() < 1e-4 * elbo.abs(), "IWAE K=1 {ours} vs sampled-KL ELBO {elbo}");
}

/// On a trained toy, the K-sample bound's average over fresh noise rises with K, and every
/// estimate lies above the ELBO: ELBO ≤ L_1 ≈ ELBO ≤ L_5 ≤ L_50 (in expectation).
#[test]
fn the_training_bound_rises_with_k() {
    let x = common::stripes(32, 4);
    let mut model = Vae::new(common::small_config(), &mut StdRng::seed_from_u64(5)).unwrap();
    common::train(&mut model, &x, 200, 6);
    let bound = |k: usize| {
        let mut rng = StdRng::seed_from_u64(9);
        let reps = 40;
        let total: f64 = (0..reps)
            .map(|_| {
                let mut tape = Tape::new();
                let p = model.params.on_tape(&mut tape);
                let xv = tape.constant(x.clone());
                let epsv = tape.constant(standard_normal(&[k * 32, 2], &mut rng));
                let l = objective::loss(&model, &mut tape, &p, xv, epsv, Objective::Iwae { k }, 1.0);
                -(tape.scalar(l.loss) as f64)
            })
            .sum();
        total / reps as f64
    };
    let (l1, l5, l50) = (bound(1), bound(5), bound(50));
    println!("L_1 {l1:.4}  L_5 {l5:.4}  L_50 {l50:.4}");
    assert!(l5 > l1 && l50 > l5, "the bound does not rise with K: {l1}, {l5}, {l50}");
}

/// The evaluation's estimate is the training objective's bound on constants: per example, on
/// the same noise, the same numbers.
#[test]
fn evaluation_and_training_share_the_bound() {
    let x = common::stripes(5, 10);
    let model = Vae::new(common::small_config(), &mut StdRng::seed_from_u64(11)).unwrap();
    let k = 7;
    // iw_log_likelihood draws its noise [K·N, J] in one chunk when chunk ≥ K.
    let ll = iw_log_likelihood(&model, &x, k, k, &mut StdRng::seed_from_u64(12));
    let eps = standard_normal(&[k * 5, 2], &mut StdRng::seed_from_u64(12));
    for (i, &want) in ll.iter().enumerate() {
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x.slice(ndarray::s![i..i + 1, ..]).to_owned().into_dyn());
        let epsv = tape.constant(sample_rows(&eps, k, i, i + 1));
        let l = objective::loss(&model, &mut tape, &p, xv, epsv, Objective::Iwae { k }, 1.0);
        let got = -(tape.scalar(l.loss) as f64);
        assert!((got - want).abs() < 1e-4 * want.abs().max(1.0), "example {i}: training {got} vs evaluation {want}");
    }
}

/// A batch cut into chunks (K = 50: 5 examples per tape) gives the loss of one whole-batch tape.
#[test]
fn a_chunked_step_equals_the_whole_batch() {
    let (n, k) = (12, 50);
    let x = common::stripes(n, 13);
    let model = Vae::new(common::small_config(), &mut StdRng::seed_from_u64(14)).unwrap();
    let eps = standard_normal(&[k * n, 2], &mut StdRng::seed_from_u64(15));
    assert!(Objective::Iwae { k }.chunk_examples() < n, "the test must cut the batch");
    let mut tape = Tape::new();
    let p = model.params.on_tape(&mut tape);
    let (xv, epsv) = (tape.constant(x.clone()), tape.constant(eps.clone()));
    let l = objective::loss(&model, &mut tape, &p, xv, epsv, Objective::Iwae { k }, 1.0);
    let whole = tape.scalar(l.loss) as f64;
    let mut stepped = model.clone();
    let mut adam = Adam::new(0.0);
    let terms = train_step_objective(&mut stepped, &mut adam, &x, eps, Objective::Iwae { k }, 1.0, None).unwrap();
    assert!((terms.loss - whole).abs() < 1e-5 * whole.abs(), "chunked {} vs whole {whole}", terms.loss);
    assert!(terms.gain >= 0.0 && terms.gain < terms.recon + terms.kl, "gain {}", terms.gain);
}

#[test]
fn sample_rows_picks_each_samples_rows_of_the_chunk() {
    // eps rows k·N + n hold the number 10·k + n (N = 4, K = 3).
    let eps = Tensor::from_shape_fn(vec![12, 1], |i| (10 * (i[0] / 4) + i[0] % 4) as f32);
    let rows = sample_rows(&eps, 3, 1, 3);
    assert_eq!(rows.iter().copied().collect::<Vec<_>>(), vec![1.0, 2.0, 11.0, 12.0, 21.0, 22.0]);
}

#[test]
fn active_units_count_the_means_that_vary() {
    // Unit 0 varies across inputs (variance 1), unit 1 barely (variance 1e-4), unit 2 not at all.
    let mu = Tensor::from_shape_fn(vec![4, 3], |i| match i[1] {
        0 => [1.0, -1.0, 1.0, -1.0][i[0]],
        1 => [0.01, -0.01, 0.01, -0.01][i[0]],
        _ => 0.3,
    });
    let (count, var) = active_units(&mu);
    assert_eq!(count, 1);
    assert!((var[0] - 1.0).abs() < 1e-9 && (var[1] - 1e-4).abs() < 1e-9 && var[2] == 0.0);
}

/// Under the VampPrior a step encodes the pseudo-inputs once, in pieces, and hands their mu and
/// logvar to every chunk (`batch_gradients_derived`); its gradient must be the one of a single
/// tape that encodes them itself. A batch of 150 makes three chunks, 130 pseudo-inputs three
/// pieces; plain SGD with rate 1 turns the step's update into its gradient, θ − θ' = ∇L.
#[test]
fn a_step_that_encodes_the_pseudo_inputs_once_has_the_whole_batch_gradient() {
    let n = 150;
    let x = common::stripes(n, 21);
    let mut config = common::small_config();
    config.prior = vae::config::PriorKind::Vamp { components: 130 };
    let model = Vae::new(config, &mut StdRng::seed_from_u64(22)).unwrap();
    let eps = standard_normal(&[n, 2], &mut StdRng::seed_from_u64(23));
    assert!(Objective::default().chunk_examples() < n / 2, "the test must cut the batch in three");
    assert!(vae::step::CHUNK_ROWS < model.prior_rows() / 2, "the test must cut the pseudo-inputs in three");

    let mut tape = Tape::new();
    let p = model.params.on_tape(&mut tape);
    assert!(p.derived().is_empty(), "this tape must encode the pseudo-inputs itself");
    let (xv, epsv) = (tape.constant(x.clone()), tape.constant(eps.clone()));
    let l = objective::loss(&model, &mut tape, &p, xv, epsv, Objective::default(), 1.0);
    let whole = p.gradients(&tape, tape.backward(l.loss));

    let mut stepped = model.clone();
    let mut sgd = vae_layers::optim::Sgd::new(1.0, 0.0);
    train_step_objective(&mut stepped, &mut sgd, &x, eps, Objective::default(), 1.0, None).unwrap();
    common::assert_step_is_the_gradient(&model, &stepped, &whole, "the step");
    for ((name, _), want) in model.params.iter().zip(&whole) {
        if name == "prior.pseudo_inputs" || name.starts_with("enc") {
            let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(peak > 1e-6, "{name} got no gradient: the test would not see the derived path");
        }
    }
}

/// The KL per unit that free bits charge adds up, over the units, to the ELBO's own KL per
/// example: in closed form, and sampled through a flow (K = 2 draws each).
#[test]
fn the_kl_per_unit_sums_to_the_elbos_kl() {
    let n = 7;
    let x = common::stripes(n, 31);
    for flow in [None, Some(vae::FlowSpec { depth: 2, width: 8 })] {
        let mut config = common::small_config();
        config.latent = 3;
        config.flow = flow;
        let k = if flow.is_some() { 2 } else { 1 };
        let model = Vae::new(config, &mut StdRng::seed_from_u64(32)).unwrap();
        let mut tape = Tape::new();
        let p = model.params.on_tape(&mut tape);
        let xv = tape.constant(x.clone());
        let epsv = tape.constant(standard_normal(&[k * n, 3], &mut StdRng::seed_from_u64(33)));
        let e = model.elbo(&mut tape, &p, xv, epsv, 1.0);
        let units = model.kl_units(&mut tape, &p, e.mu, e.logvar, epsv);
        assert_eq!(tape.value(units).shape(), &[n, 3]);
        let summed = tape.value(units).sum_axis(ndarray::Axis(1));
        for (got, want) in summed.iter().zip(tape.value(e.kl).iter()) {
            assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "flow {flow:?}: Σ_j kl_j {got} against KL {want}");
        }
    }
}

/// A step with free bits has the gradient of its definition, recon + β·Σ_j max(λ, KL_j) with
/// KL_j the batch's mean KL of unit j, written on one tape (max(λ, a) = λ + relu(a − λ)),
/// although the step cuts the batch of 150 into three chunks: the gate read from the whole
/// batch first. λ sits between the two units' KL, so one unit is charged and one is free;
/// plain SGD with rate 1 turns the update into the gradient.
#[test]
fn a_free_bits_step_has_the_gradient_of_its_definition() {
    let (n, beta) = (150, 0.7f32);
    let x = common::stripes(n, 41);
    let model = Vae::new(common::small_config(), &mut StdRng::seed_from_u64(42)).unwrap();
    let eps = standard_normal(&[n, 2], &mut StdRng::seed_from_u64(43));
    assert!(Objective::default().chunk_examples() < n / 2, "the test must cut the batch in three");

    let mut tape = Tape::new();
    let p = model.params.on_tape(&mut tape);
    let (xv, epsv) = (tape.constant(x.clone()), tape.constant(eps.clone()));
    let e = model.elbo(&mut tape, &p, xv, epsv, beta);
    let units = model.kl_units(&mut tape, &p, e.mu, e.logvar, epsv);
    let kl_j = tape.mean_axis(units, 0);
    let kl_values: Vec<f32> = tape.value(kl_j).iter().copied().collect();
    let lambda = 0.5 * (kl_values[0] + kl_values[1]);
    assert!((kl_values[0] - kl_values[1]).abs() > 1e-3, "the units' KL must differ: {kl_values:?}");
    let lambda_v = tape.constant(Tensor::from_elem(vec![], lambda));
    let above = tape.sub(kl_j, lambda_v);
    let above = tape.relu(above);
    let charged = tape.add(above, lambda_v);
    let charge = tape.sum_axis(charged, 0);
    let weighted = tape.scale(charge, beta);
    let loss = tape.add(e.recon_mean, weighted);
    let whole = p.gradients(&tape, tape.backward(loss));

    let mut stepped = model.clone();
    let mut sgd = vae_layers::optim::Sgd::new(1.0, 0.0);
    let knobs = StepSettings { kl_weight: beta, free_bits: Some(lambda), ..StepSettings::bound() };
    let terms = train_step_with(&mut stepped, &mut sgd, &x, eps, &knobs).unwrap();
    let true_kl: f32 = kl_values.iter().sum();
    assert!(
        (terms.kl - true_kl as f64).abs() < 1e-4,
        "the reported KL is the true one: {} against {true_kl}",
        terms.kl
    );
    common::assert_step_is_the_gradient(&model, &stepped, &whole, "the free-bits step");
    // The free unit's KL gives its heads no gradient: the only gradient of the logvar head's
    // row of that unit comes through the reconstruction, and differs from the full ELBO's.
    let mut plain = model.clone();
    let mut sgd = vae_layers::optim::Sgd::new(1.0, 0.0);
    let eps = standard_normal(&[n, 2], &mut StdRng::seed_from_u64(43));
    train_step_with(&mut plain, &mut sgd, &x, eps, &StepSettings { kl_weight: beta, ..StepSettings::bound() }).unwrap();
    assert_ne!(plain.params.values(), stepped.params.values(), "free bits change the step");
}
