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
