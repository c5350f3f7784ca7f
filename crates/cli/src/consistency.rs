//! `vae-cli eval --label-consistency N`: how often a conditional model's samples of class y
//! look like a y. N samples per class are drawn from the prior, z ~ N(0, I), decoded with their
//! label, and each is labelled by its nearest training image (Euclidean distance on grey
//! pixels: the 1-nearest-neighbour classifier, right on about 96% of MNIST's test digits; the
//! command measures that too, on the first test images, so the reader can judge the judge).
//!
//! Why it is worth measuring: the encoder of a conditional VAE sees the image, class included,
//! so z can carry the class as well as the label does. Decoded from a z of the prior, such a
//! model may write the class its z points to rather than the one it was given.
//!
//! Shape legend: Q query images, R reference (training) images, D pixels; distances [Q, R].

use ndarray::{s, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use vae::data::{Binarize, Split};
use vae::Vae;

use vae::run::streams::{stream, Purpose};

/// Query images per parallel task.
const QUERY_BLOCK: usize = 64;
/// Training images compared at once (a [64, 6000] block of distances: 1.5 MB).
const REFERENCE_BLOCK: usize = 6000;
/// Test images on which the classifier's own accuracy is measured.
pub const CLASSIFIER_CHECK: usize = 1000;

/// What `--label-consistency` measures.
pub struct Consistency {
    /// Samples drawn per class.
    pub per_class_samples: usize,
    /// For each class y, the share of its samples whose nearest training image is a y.
    pub per_class: Vec<f64>,
    /// `confusion[y][c]`: samples of class y labelled c.
    pub confusion: Vec<Vec<u64>>,
    /// The share of the first test images the classifier labels right (and how many).
    pub classifier_accuracy: (f64, usize),
}

impl Consistency {
    /// The mean over classes of the per-class shares.
    pub fn mean(&self) -> f64 {
        self.per_class.iter().sum::<f64>() / self.per_class.len().max(1) as f64
    }
}

/// The label of each query row [Q, D]: that of its nearest image of `reference` (the first
/// one, on a tie). ‖q − r‖² = ‖q‖² − 2 q·r + ‖r‖², and ‖q‖² is the same for every r, so each
/// query keeps the r with the least ‖r‖² − 2 q·r. The same on any number of threads: every
/// query is compared with the references in the same order.
pub fn nearest_labels(queries: ArrayView2<f32>, reference: &Split) -> Vec<u8> {
    let mut best = vec![(f32::INFINITY, 0u8); queries.nrows()];
    for start in (0..reference.len()).step_by(REFERENCE_BLOCK) {
        let idx: Vec<usize> = (start..(start + REFERENCE_BLOCK).min(reference.len())).collect();
        let r = reference.batch(&idx, Binarize::None, &mut stream(0, 0, 0, Purpose::Test));
        let r = r.into_dimensionality::<ndarray::Ix2>().expect("[R, D] images");
        let r_sq: Vec<f32> = r.rows().into_iter().map(|row| row.dot(&row)).collect();
        best.par_chunks_mut(QUERY_BLOCK).enumerate().for_each(|(b, best)| {
            let q = queries.slice(s![b * QUERY_BLOCK..b * QUERY_BLOCK + best.len(), ..]);
            let qr = q.dot(&r.t()); // [q, R]
            for (row, slot) in qr.axis_iter(Axis(0)).zip(best.iter_mut()) {
                for (j, &dot) in row.iter().enumerate() {
                    let d = r_sq[j] - 2.0 * dot;
                    if d < slot.0 {
                        *slot = (d, reference.labels[idx[j]]);
                    }
                }
            }
        });
    }
    best.into_iter().map(|(_, label)| label).collect()
}

/// Draws `per_class` samples of every class from `model` (stream (seed, 0, 0, pictures)), labels
/// them by their nearest image of `train`, and checks that classifier on the first
/// [`CLASSIFIER_CHECK`] images of `test`.
pub fn label_consistency(model: &Vae, train: &Split, test: &Split, per_class: usize, seed: u64) -> Consistency {
    let classes = model.config.classes;
    let labels: Vec<usize> = (0..classes * per_class).map(|i| i / per_class).collect();
    let samples = model.sample(labels.len(), &labels, &mut stream(seed, 0, 0, Purpose::Pictures));
    let samples = samples.to_shape((labels.len(), train.pixels())).expect("[N, D] samples");
    let found = nearest_labels(samples.view(), train);
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (&y, &c) in labels.iter().zip(&found) {
        if (c as usize) < classes {
            confusion[y][c as usize] += 1;
        }
    }
    let per_class_share = confusion.iter().enumerate().map(|(y, row)| row[y] as f64 / per_class as f64).collect();

    let n = test.len().min(CLASSIFIER_CHECK);
    let idx: Vec<usize> = (0..n).collect();
    let x: Array2<f32> = test
        .batch(&idx, Binarize::None, &mut stream(0, 0, 0, Purpose::Test))
        .into_dimensionality()
        .expect("[n, D] images");
    let right = nearest_labels(x.view(), train).iter().zip(&test.labels).filter(|(a, b)| a == b).count();
    Consistency {
        per_class_samples: per_class,
        per_class: per_class_share,
        confusion,
        classifier_accuracy: (right as f64 / n.max(1) as f64, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A split of 2×2 images with the given pixels and labels.
    fn split(images: &[[u8; 4]], labels: &[u8]) -> Split {
        Split { images: images.concat(), labels: labels.to_vec(), channels: 1, rows: 2, cols: 2 }
    }

    #[test]
    fn each_query_takes_the_label_of_its_nearest_reference() {
        let reference = split(&[[0, 0, 0, 0], [255, 255, 0, 0], [0, 0, 255, 255], [255, 255, 255, 255]], &[5, 1, 2, 3]);
        let q = |v: [f32; 4]| v.to_vec();
        let queries: Vec<f32> = [
            q([0.1, 0.0, 0.2, 0.0]), // near the blank image
            q([0.9, 0.8, 0.1, 0.0]), // the top half
            q([0.0, 0.2, 0.7, 0.9]), // the bottom half
            q([0.8, 0.9, 0.7, 0.6]), // all of it
            q([1.0, 1.0, 0.0, 0.0]), // exactly image 1
        ]
        .concat();
        let queries = Array2::from_shape_vec((5, 4), queries).unwrap();
        assert_eq!(nearest_labels(queries.view(), &reference), vec![5, 1, 2, 3, 1]);
    }

    #[test]
    fn a_tie_goes_to_the_first_reference_across_blocks() {
        // Two identical references REFERENCE_BLOCK apart, with different labels.
        let n = REFERENCE_BLOCK + 1;
        let mut images = vec![[0u8; 4]; n];
        let mut labels = vec![9u8; n];
        images[0] = [200, 0, 0, 0];
        images[REFERENCE_BLOCK] = [200, 0, 0, 0];
        (labels[0], labels[REFERENCE_BLOCK]) = (4, 7);
        let reference = split(&images, &labels);
        let query = Array2::from_shape_vec((1, 4), vec![0.8, 0.0, 0.0, 0.0]).unwrap();
        assert_eq!(nearest_labels(query.view(), &reference), vec![4]);
    }
}
