//! Checkpoints: bit-exact round trips and precise errors for files that do not fit.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::checkpoint::{load, save};
use vae::{Likelihood, Vae, VaeConfig};
use vae_autodiff::Tensor;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vae-ckpt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_checkpoint_round_trips_bit_exactly_for_both_architectures() {
    let mut gaussian = VaeConfig::mlp_mnist();
    gaussian.arch = vae::Arch::Mlp { hidden: vec![64, 32] };
    gaussian.likelihood = Likelihood::Gaussian { sigma: 0.25 };
    gaussian.activation = vae::Activation::Tanh;
    for (i, config) in [gaussian, VaeConfig::conv_mnist()].into_iter().enumerate() {
        let model = Vae::new(config, &mut StdRng::seed_from_u64(i as u64)).unwrap();
        let path = tmp(&format!("roundtrip{i}.safetensors"));
        let extra = vec![("m.0".to_string(), Tensor::from_elem(vec![2, 3], 0.125f32))];
        let meta = HashMap::from([("epoch".to_string(), "3".to_string())]);
        save(&path, &model, &extra, &meta).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.model.config, model.config);
        for ((n1, a), (n2, b)) in model.params.iter().zip(loaded.model.params.iter()) {
            assert_eq!(n1, n2);
            assert!(a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "{n1} changed");
        }
        assert_eq!(loaded.extra, extra);
        assert_eq!(loaded.metadata["epoch"], "3");
        assert!(!path.with_extension("safetensors.tmp").exists(), "temporary file left behind");
    }
}

#[test]
fn files_that_are_not_checkpoints_are_refused_with_a_reason() {
    let path = tmp("garbage.safetensors");
    std::fs::write(&path, b"this is not a checkpoint").unwrap();
    let err = load(&path).err().unwrap().to_string();
    assert!(err.contains("not a readable safetensors checkpoint"), "{err}");

    // Truncated: a real checkpoint cut in half.
    let model = Vae::new(VaeConfig::mlp_mnist(), &mut StdRng::seed_from_u64(1)).unwrap();
    let good = tmp("good.safetensors");
    save(&good, &model, &[], &HashMap::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cut = tmp("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(&cut).err().unwrap().to_string();
    assert!(err.contains("not a readable safetensors checkpoint"), "{err}");

    let err = load(&tmp("missing.safetensors")).err().unwrap().to_string();
    assert!(err.starts_with("cannot read"), "{err}");
}

#[test]
fn a_checkpoint_from_another_model_says_which_tensors_differ() {
    let model = Vae::new(VaeConfig::mlp_mnist(), &mut StdRng::seed_from_u64(1)).unwrap();
    // Same tensors, but metadata claiming a latent size of 8 instead of 20.
    let mut meta = model.config.to_metadata();
    meta.insert("latent".into(), "8".into());
    meta.insert("format".into(), vae::checkpoint::FORMAT.into());
    let state_dict: Vec<(String, Tensor)> =
        model.params.iter_pytorch().map(|(n, t)| (n.to_string(), t.into_owned())).collect();
    let tensors: Vec<(String, &Tensor)> = state_dict.iter().map(|(n, t)| (n.clone(), t)).collect();
    let path = tmp("other.safetensors");
    vae::checkpoint::write_atomic(&path, &vae::checkpoint::encode(&tensors, meta).unwrap()).unwrap();
    let err = load(&path).err().unwrap().to_string();
    assert!(err.contains("tensor enc_mu.weight has shape [20, 400], the model expects [8, 400]"), "{err}");

    // No configuration at all.
    let path = tmp("noconfig.safetensors");
    vae::checkpoint::write_atomic(&path, &vae::checkpoint::encode(&tensors, HashMap::new()).unwrap()).unwrap();
    let err = load(&path).err().unwrap().to_string();
    assert!(err.contains("no model configuration"), "{err}");
}

#[test]
fn configurations_survive_their_metadata_form() {
    let cvae = |c: VaeConfig| VaeConfig { classes: 10, ..c };
    for config in
        [VaeConfig::mlp_mnist(), VaeConfig::conv_mnist(), cvae(VaeConfig::mlp_mnist()), cvae(VaeConfig::conv_mnist())]
    {
        assert_eq!(VaeConfig::from_metadata(&config.to_metadata()).unwrap(), config);
        // The configuration counts exactly the parameters the model builds.
        let model = Vae::new(config.clone(), &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(Some(model.params.num_scalars()), config.parameter_count(), "{config:?}");
    }
    let mut bad = VaeConfig::mlp_mnist().to_metadata();
    bad.remove("latent");
    assert!(VaeConfig::from_metadata(&bad).unwrap_err().to_string().contains("\"latent\""));
    // Files from before the families hold no "family": plain VAEs.
    let mut old = VaeConfig::mlp_mnist().to_metadata();
    old.remove("family");
    assert_eq!(VaeConfig::from_metadata(&old).unwrap(), VaeConfig::mlp_mnist());
    let mut unknown = VaeConfig::mlp_mnist().to_metadata();
    unknown.insert("family".into(), "gan".into());
    assert!(VaeConfig::from_metadata(&unknown).unwrap_err().to_string().contains("unknown model family \"gan\""));
}

#[test]
fn a_conv_stack_whose_mirror_does_not_restore_the_input_is_refused() {
    let mut config = VaeConfig::conv_mnist();
    config.input = [1, 27, 27]; // 27 → 13 → 26 ≠ 27
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("not back to 27×27"), "{err}");
}

#[test]
fn a_tensor_of_another_dtype_is_named() {
    let model = Vae::new(VaeConfig::mlp_mnist(), &mut StdRng::seed_from_u64(1)).unwrap();
    let mut meta = model.config.to_metadata();
    meta.insert("format".into(), vae::checkpoint::FORMAT.into());
    let bytes = vec![0u8; 8 * 20];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![20], &bytes).unwrap();
    let file = safetensors::serialize(vec![("enc_mu.bias", view)], &Some(meta)).unwrap();
    let path = tmp("f64.safetensors");
    std::fs::write(&path, file).unwrap();
    let err = load(&path).err().unwrap().to_string();
    assert!(err.contains("tensor enc_mu.bias has dtype F64; expected F32"), "{err}");
}

#[test]
fn absurd_sizes_in_a_configuration_are_refused_before_allocating() {
    let mut meta = VaeConfig::mlp_mnist().to_metadata();
    meta.insert("hidden".into(), "[4000000000, 4000000000]".into());
    let err = VaeConfig::from_metadata(&meta).unwrap_err().to_string();
    assert!(err.contains("more than"), "{err}");
    let mut meta = VaeConfig::conv_mnist().to_metadata();
    meta.insert("conv_layers".into(), "[[8, 3, 1, 99999999999]]".into());
    let err = VaeConfig::from_metadata(&meta).unwrap_err().to_string();
    assert!(err.contains("padding below the kernel size"), "{err}");
}

#[test]
fn optimizer_state_is_written_in_the_layout_of_its_parameter() {
    use vae::checkpoint::{optimizer_state_from_file, optimizer_state_to_file};
    let model = Vae::new(VaeConfig::mlp_mnist(), &mut StdRng::seed_from_u64(1)).unwrap();
    // Parameter 0 is enc_fc1.weight: [784, 400] in memory, [400, 784] in files.
    let m0 = vae_autodiff::gradcheck::random_tensor(model.params.values()[0].shape(), 3);
    let b0 = Tensor::zeros(model.params.values()[1].raw_dim());
    let state = vec![("m.0".to_string(), m0.clone()), ("m.1".to_string(), b0.clone())];
    let file = optimizer_state_to_file(&model.params, state);
    assert_eq!(file[0].1.shape(), [400, 784]);
    assert_eq!(file[0].1[[5, 700]], m0[[700, 5]]);
    assert_eq!(file[1].1, b0);
    let back = optimizer_state_from_file(&model.params, file);
    assert_eq!(back[0].1, m0);
}
