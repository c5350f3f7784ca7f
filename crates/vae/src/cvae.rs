//! The conditional VAE (Sohn, Lee & Yan 2015): every distribution also reads a label y,
//!
//!   q(z|x, y) = N(mu(x, y), diag(exp(logvar(x, y)))),   p(x|z, y),   p(z|y) = N(0, I),
//!
//! and the bound is the ELBO of log p(x|y): E_q[log p(x|z, y)] − KL(q(z|x, y) ‖ N(0, I)).
//! Since the decoder knows the class, z is free to hold everything else (slant, thickness,
//! style): `vae-cli sample --label 7` draws sevens, and one z decoded with every label writes
//! the same style in every class.
//!
//! A conditional model is the Gaussian [`crate::Vae`] with [`crate::VaeConfig::classes`] = Y > 0:
//! its rows carry the one-hot label after the pixels, x = [pixels, y] [N, D + Y]; its encoder
//! reads [x, y], its decoder [z, y]. This module holds what is particular to it: one-hot
//! labels, and decoder inputs [z, y] for chosen classes.
//!
//! Shape legend: N rows, J latent dimension, Y classes; labels `[N]` in 0..Y.

use ndarray::Axis;
use vae_autodiff::Tensor;

/// One-hot rows [N, Y]: row n has a 1 in column `labels[n]`.
///
/// # Panics
/// If a label is not below `classes`.
pub fn one_hot(labels: &[usize], classes: usize) -> Tensor {
    let mut y = Tensor::zeros(vec![labels.len(), classes]);
    for (n, &l) in labels.iter().enumerate() {
        assert!(l < classes, "label {l} of row {n} is not below the number of classes, {classes}");
        y[[n, l]] = 1.0;
    }
    y
}

/// `t` [N, W] with the one-hot `labels` appended: [t, y] [N, W + Y]. Gives a conditional
/// model's rows from images (W = D) and its decoder inputs from latents (W = J).
///
/// # Panics
/// If `labels` are not N, or one is not below `classes`.
pub fn with_labels(t: &Tensor, labels: &[usize], classes: usize) -> Tensor {
    assert_eq!(t.shape()[0], labels.len(), "with_labels: {} rows, {} labels", t.shape()[0], labels.len());
    let y = one_hot(labels, classes);
    ndarray::concatenate(Axis(1), &[t.view(), y.view()]).expect("rows of the same count")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_values_as_one_hot_columns() {
        let t = Tensor::from_shape_vec(vec![2, 2], vec![0.5, -1.0, 2.0, 3.0]).unwrap();
        let rows = with_labels(&t, &[2, 0], 3);
        assert_eq!(rows.shape(), &[2, 5]);
        assert_eq!(rows.iter().copied().collect::<Vec<_>>(), vec![0.5, -1.0, 0.0, 0.0, 1.0, 2.0, 3.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    #[should_panic(expected = "not below the number of classes")]
    fn a_label_out_of_range_is_refused() {
        one_hot(&[3], 3);
    }
}
