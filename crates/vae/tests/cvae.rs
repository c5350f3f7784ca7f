//! The conditional VAE learns to use its label: on stripes whose prototype is the label, the
//! right label explains an image far better than a wrong one, and samples drawn for a class
//! look like that class.

mod common;

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::cvae::with_labels;
use vae::train::evaluate_batch;
use vae::{Vae, VaeConfig};

/// The stripes' prototype of row n (see `common::stripes`), used as its label.
fn label(n: usize) -> usize {
    (n * 7 + 3) % 4
}

fn trained_cvae() -> Vae {
    let x = common::stripes(64, 1);
    let labels: Vec<usize> = (0..64).map(label).collect();
    let config = VaeConfig { classes: 4, ..common::small_config() };
    let mut model = Vae::new(config, &mut StdRng::seed_from_u64(2)).unwrap();
    common::train(&mut model, &with_labels(&x, &labels, 4), 300, 3);
    model
}

#[test]
fn the_right_label_explains_an_image_better_than_a_wrong_one() {
    let model = trained_cvae();
    let x = common::stripes(200, 9);
    let right: Vec<usize> = (0..200).map(label).collect();
    let wrong: Vec<usize> = right.iter().map(|l| (l + 1) % 4).collect();
    let loss = |labels: &[usize]| {
        evaluate_batch(&model, with_labels(&x, labels, 4), &mut StdRng::seed_from_u64(4)).mean(1.0).loss
    };
    let (right, wrong) = (loss(&right), loss(&wrong));
    println!("negative conditional ELBO: right labels {right:.2}, wrong labels {wrong:.2} nats");
    assert!(right + 5.0 < wrong, "right labels {right:.2} vs wrong {wrong:.2}");
}

#[test]
fn samples_drawn_for_a_class_look_like_that_class() {
    let model = trained_cvae();
    // One clean image of each prototype: the nearest one names a sample's class.
    let protos: Vec<Vec<f32>> = (0..4)
        .map(|c| {
            let n = (0..).find(|&n| label(n) == c).unwrap();
            let x = common::stripes(n + 1, 0);
            x.index_axis(ndarray::Axis(0), n).iter().map(|&v| v.round()).collect()
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(5);
    for c in 0..4 {
        let images = model.sample(50, &[c], &mut rng);
        let hits = images
            .rows()
            .into_iter()
            .filter(|img| {
                let dist = |p: &Vec<f32>| img.iter().zip(p).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
                (0..4).min_by(|&a, &b| dist(&protos[a]).total_cmp(&dist(&protos[b]))) == Some(c)
            })
            .count();
        assert!(hits >= 45, "class {c}: {hits} of 50 samples nearest to its prototype");
    }
}

/// A conditional conv model: the label joins the dense parts (the heads read [h, y], the
/// decoder's dense layer [z, y]), so the same z decodes differently under different labels.
#[test]
fn a_conditional_conv_model_reads_the_label_in_its_dense_layers() {
    let mut config = VaeConfig { classes: 3, ..VaeConfig::conv_mnist() };
    config.input = [1, 8, 8];
    let model = Vae::new(config, &mut StdRng::seed_from_u64(6)).unwrap();
    let shapes: Vec<_> = ["enc_mu.weight", "dec_fc1.weight"]
        .iter()
        .map(|n| model.params.pytorch_shape(model.params.find(n).unwrap()))
        .collect();
    assert_eq!(shapes, vec![vec![20, 64 * 2 * 2 + 3], vec![64 * 2 * 2, 20 + 3]]);
    let z = vae::model::standard_normal(&[1, 20], &mut StdRng::seed_from_u64(7));
    let (a, b) = (model.decode_mean(with_labels(&z, &[0], 3)), model.decode_mean(with_labels(&z, &[2], 3)));
    assert_ne!(a, b);
    let x = common::stripes(4, 1);
    let x8 = ndarray::Array2::from_shape_fn((4, 64), |(n, i)| x[[n, i % 16]]).into_dyn();
    let totals = evaluate_batch(&model, with_labels(&x8, &[0, 1, 2, 0], 3), &mut StdRng::seed_from_u64(8));
    assert!(totals.mean(1.0).loss.is_finite());
}
