//! The chain of stochastic layers: with one layer it is the VAE (the same log weights from the
//! same parameters), its configuration survives the checkpoint metadata and bad metadata is
//! refused by name, and its ancestral samples and posterior means have the right shapes.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::family::{Family, LatentLayers, LatentSpace};
use vae::hvae::{Hvae, HvaeConfig, LayerSpec};
use vae::model::standard_normal;
use vae::objective::ImportanceWeighted;
use vae::parts::tile;
use vae::{Activation, Arch, Likelihood, PriorKind, Vae, VaeConfig};
use vae_autodiff::{Tape, Tensor};

fn rows(n: usize, d: usize, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::from_shape_simple_fn(vec![n, d], || rand::Rng::random_range(&mut rng, 0.0..1.0))
}

/// log w of K samples of each row of x, by a model's own two steps.
fn log_weights(model: &dyn ImportanceWeighted, x: &Tensor, eps: &Tensor, k: usize) -> Vec<f32> {
    let mut tape = Tape::new();
    let p = model.param_store().on_tape(&mut tape);
    let xv = tape.constant(x.clone());
    let once = model.encode_once(&mut tape, &p, xv);
    let x_rep = tile(&mut tape, xv, k);
    let once_rep: Vec<_> = once.iter().map(|&v| tile(&mut tape, v, k)).collect();
    let epsv = tape.constant(eps.clone());
    let w = model.log_weights_given(&mut tape, &p, x_rep, &once_rep, epsv);
    tape.value(w.log_w).iter().copied().collect()
}

/// A one-layer chain with the VAE's parameters, renamed, has the VAE's log weights: the chain
/// is the VAE's IWAE generalized, not another model.
#[test]
fn a_chain_of_one_layer_is_the_vae() {
    let (n, d, j, k) = (3, 7, 2, 4);
    let rng = &mut StdRng::seed_from_u64(5);
    let vae_config = VaeConfig {
        arch: Arch::Mlp { hidden: vec![6, 5] },
        input: [1, 1, d],
        latent: j,
        activation: Activation::Tanh,
        ..VaeConfig::mlp_mnist()
    };
    let vae = Vae::new(vae_config, rng).unwrap();
    let config = HvaeConfig {
        input: [1, 1, d],
        layers: vec![LayerSpec { hidden: vec![6, 5], latent: j }],
        activation: Activation::Tanh,
        likelihood: Likelihood::Bernoulli,
        prior: PriorKind::Normal,
    };
    let mut chain = Hvae::new(config, rng).unwrap();
    let rename = |name: &str| {
        name.replacen("enc_fc", "q1_fc", 1)
            .replacen("enc_mu", "q1_mu", 1)
            .replacen("enc_logvar", "q1_logvar", 1)
            .replacen("dec_fc", "px_fc", 1)
            .replacen("dec_out", "px_out", 1)
    };
    let tensors: Vec<(String, Tensor)> = vae.params.iter_pytorch().map(|(n, t)| (rename(n), t.into_owned())).collect();
    vae::checkpoint::restore_params(&mut chain.params, tensors).unwrap();

    let x = rows(n, d, 6);
    let eps = standard_normal(&[k * n, j], rng);
    let (a, b) = (log_weights(&vae, &x, &eps, k), log_weights(&chain, &x, &eps, k));
    assert_eq!(a.len(), k * n);
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() <= 1e-5 * u.abs().max(1.0), "VAE {u} against chain {v}");
    }
}

#[test]
fn the_configuration_survives_its_metadata_and_bad_entries_are_named() {
    let config = HvaeConfig::burda2_mnist();
    assert_eq!(HvaeConfig::from_metadata(&config.to_metadata()).unwrap(), config);
    let m = config.to_metadata();
    let with = |k: &str, v: &str| -> HashMap<String, String> {
        let mut m = m.clone();
        m.insert(k.into(), v.into());
        m
    };
    for (bad, needle) in [
        (with("latent", "[100]"), "2 hidden stacks for 1 stochastic layers"),
        (with("latent", "[100, 0]"), "h2"),
        (with("hidden", "[[200, 200], 7]"), "hidden"),
        (with("input", "[1, 28]"), "input"),
        (with("latent", "[]"), "2 hidden stacks for 0"),
    ] {
        let e = HvaeConfig::from_metadata(&bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{e:?} should mention {needle:?}");
    }
    let mut missing = m.clone();
    missing.remove("hidden");
    assert!(HvaeConfig::from_metadata(&missing).unwrap_err().to_string().contains("\"hidden\""));
    // Through the family registry, as a checkpoint is read.
    let model = vae::checkpoint::family_from_metadata(&m).unwrap();
    assert_eq!((model.name(), model.params().num_scalars()), ("hvae", 521_084));
}

#[test]
fn samples_reconstructions_and_means_have_their_shapes() {
    let config = HvaeConfig {
        input: [1, 3, 3],
        layers: vec![LayerSpec { hidden: vec![5], latent: 4 }, LayerSpec { hidden: vec![3], latent: 2 }],
        activation: Activation::Tanh,
        likelihood: Likelihood::Bernoulli,
        prior: PriorKind::Normal,
    };
    let rng = &mut StdRng::seed_from_u64(1);
    let model = Hvae::new(config, rng).unwrap();
    let samples = Family::sample(&model, 6, &[], rng);
    assert_eq!(samples.shape(), &[6, 9]);
    assert!(samples.iter().all(|&p| (0.0..=1.0).contains(&p)), "pixel means are probabilities");
    let x = rows(5, 9, 2);
    assert_eq!(Family::reconstruct(&model, x.clone()).shape(), &[5, 9]);
    let means = model.posterior_means(x.clone(), rng);
    let shapes: Vec<&[usize]> = means.iter().map(|m| m.shape()).collect();
    assert_eq!(shapes, [&[5, 4][..], &[5, 2][..]]);
    let names: Vec<String> = LatentLayers::latent_layers(&model).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["h1", "h2"]);
    let (points, logvars) = model.encode_points(x);
    assert_eq!((points.shape(), logvars.unwrap().shape()), (&[5, 2][..], &[5, 2][..]));
    assert_eq!(model.decode_points(Tensor::zeros(vec![3, 2]), &[]).shape(), &[3, 9]);
}
