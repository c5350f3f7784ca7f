//! What the picture commands (`sample`, `reconstruct`, `interpolate`, `manifold`, `latent`)
//! and the explorer share: loading a model with a latent space, the test images as the rows a
//! model reads, the `--label` check, the principal axes of the latent means; and the two
//! pictures a training run writes after every epoch.

use std::path::Path;

use ndarray::{Axis, Slice};
use vae::checkpoint;
use vae::data::{Binarize, Split};
use vae::family::LatentSpace;
use vae::Family;
use vae_autodiff::Tensor;

use vae::run::streams::{stream, Purpose};

use crate::image;
use crate::options::{LabelArgs, ModelArgs, Result};
use crate::say::say;

/// The model of a checkpoint, if it has a continuous latent space to encode to and decode
/// from (the latent commands and the explorer need one); `command` names the asker in the error.
pub fn load_with_space(path: &Path, command: &str) -> Result<Box<dyn Family>> {
    let model = checkpoint::load_family(path)?.model;
    if model.latent_space().is_none() {
        return Err(format!(
            "{command} decodes points of a continuous latent space; this checkpoint holds a {}, which has none",
            model.name()
        )
        .into());
    }
    Ok(model)
}

/// The latent space of a model from [`load_with_space`].
pub fn space(model: &dyn Family) -> &dyn LatentSpace {
    model.latent_space().expect("load_with_space checked that the model has a latent space")
}

/// The test split, checked against the model's image size.
pub fn load_test(args: &ModelArgs, model: &dyn Family) -> Result<Split> {
    Ok(crate::data::load_test(&args.data, &args.checkpoint, model)?.0)
}

/// The height and width of the model's images.
pub fn image_size(model: &dyn Family) -> (usize, usize) {
    let [_, h, w] = model.input();
    (h, w)
}

/// Reports a written picture.
pub fn done(out: &Path, what: &str) -> Result<()> {
    say!("wrote {what} to {}", out.display());
    Ok(())
}

/// The test images `idx` as the rows the model reads, in [0, 1]: [N, D], with a conditional
/// model's one-hot labels after the pixels, [N, D + Y].
pub fn test_rows(model: &dyn Family, test: &Split, idx: &[usize]) -> Tensor {
    test.rows(idx, Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures), model.classes())
}

/// The pixels of rows [N, D + Y]: [N, D].
pub fn pixels(model: &dyn Family, rows: &Tensor) -> Tensor {
    rows.slice_axis(Axis(1), Slice::from(..model.input().iter().product::<usize>())).to_owned()
}

/// `--label`, checked: a class of a conditional model (`default` when not given), or `None`
/// for a model without classes, which refuses the flag.
pub fn chosen_label(model: &dyn Family, args: &LabelArgs, default: usize) -> Result<Option<usize>> {
    match (model.classes(), args.label) {
        (0, None) => Ok(None),
        (0, Some(_)) => {
            Err("--label is for conditional models (trained with --family cvae); this one has no classes".into())
        }
        (c, Some(l)) if l >= c => {
            Err(format!("--label {l} is out of range: the model knows classes 0 to {}", c - 1).into())
        }
        (_, l) => Ok(Some(l.unwrap_or(default))),
    }
}

/// Checks a test-set index given on the command line.
pub fn check_index(flag: &str, i: usize, test: &Split) -> Result<()> {
    if i < test.len() {
        Ok(())
    } else {
        Err(format!(
            "--{flag} {i} is out of range: the test set has {} images (indices 0 to {})",
            test.len(),
            test.len() - 1
        )
        .into())
    }
}

/// The top two principal axes of the rows of `x` [N, J] (power iteration with deflation on
/// the J×J covariance), as two unit vectors.
pub fn top_two_axes(x: &Tensor) -> [Vec<f64>; 2] {
    let (n, j) = (x.shape()[0], x.shape()[1]);
    let mean: Vec<f64> =
        (0..j).map(|k| x.index_axis(Axis(1), k).iter().map(|&v| v as f64).sum::<f64>() / n as f64).collect();
    let mut cov = vec![vec![0.0f64; j]; j];
    for row in x.outer_iter() {
        for a in 0..j {
            for b in 0..j {
                cov[a][b] += (row[a] as f64 - mean[a]) * (row[b] as f64 - mean[b]) / n as f64;
            }
        }
    }
    let mut axes: [Vec<f64>; 2] = [vec![], vec![]];
    for axis in &mut axes {
        let mut v: Vec<f64> = (0..j).map(|k| 1.0 + k as f64 * 0.1).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let w: Vec<f64> = (0..j).map(|a| (0..j).map(|b| cov[a][b] * v[b]).sum()).collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            lambda = norm;
            v = w.iter().map(|x| x / norm).collect();
        }
        // Deflate: remove this axis's variance before finding the next.
        for a in 0..j {
            for b in 0..j {
                cov[a][b] -= lambda * v[a] * v[b];
            }
        }
        *axis = v;
    }
    axes
}

/// Writes samples.png (8×8 prior samples; for a conditional model a row of 8 per class) and
/// reconstructions.png (8 test images above their reconstructions).
pub fn write_pictures(model: &dyn Family, test: &Split, seed: u64, out: &Path) -> Result<()> {
    let (h, w) = (test.rows, test.cols);
    let classes = model.classes();
    let rows = if classes > 0 { classes } else { 8 };
    let labels: Vec<usize> = (0..rows * 8).map(|i| i / 8).collect();
    let samples = model.sample(rows * 8, &labels, &mut stream(seed, 0, 0, Purpose::Pictures));
    image::grid(&samples, rows, 8, h, w).save(&out.join("samples.png"))?;
    let idx: Vec<usize> = (0..8.min(test.len())).collect();
    let x = test.rows(&idx, Binarize::None, &mut stream(seed, 0, 1, Purpose::Pictures), classes);
    let recon = model.reconstruct(x.clone());
    let x = x.slice_axis(ndarray::Axis(1), ndarray::Slice::from(..test.pixels()));
    let both = ndarray::concatenate(ndarray::Axis(0), &[x, recon.view()]).expect("same widths");
    image::grid(&both, 2, idx.len(), h, w).save(&out.join("reconstructions.png"))?;
    Ok(())
}
