//! `vae-cli reconstruct`: test images above their reconstructions.

use std::path::PathBuf;

use clap::Args;
use ndarray::{Axis, Slice};
use vae::checkpoint;
use vae::data::Binarize;
use vae::run::streams::{stream, Purpose};
use vae_autodiff::Tensor;

use crate::image::grid;
use crate::options::{ModelArgs, Result};
use crate::pictures::done;

/// Flags of `vae-cli reconstruct`.
#[derive(Args, Debug, Clone)]
pub struct ReconstructArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of test images (the first ones).
    #[arg(short = 'n', long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub count: u64,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "reconstructions.png")]
    pub out: PathBuf,
}

/// `vae-cli reconstruct`: the first n test images above their reconstructions (decoder mean at
/// z = mu, or at the nearest codes).
pub fn run(args: ReconstructArgs) -> Result<()> {
    let model = checkpoint::load_family(&args.model.checkpoint)?.model;
    let test = crate::data::load_test(&args.model.data, &args.model.checkpoint, model.as_ref())?.0;
    let n = (args.count as usize).min(test.len());
    let idx: Vec<usize> = (0..n).collect();
    let rows_in = test.rows(&idx, Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures), model.classes());
    let recon = model.reconstruct(rows_in.clone());
    let x = rows_in.slice_axis(Axis(1), Slice::from(..test.pixels())).to_owned();
    let (h, w) = (test.rows, test.cols);
    // Rows of at most 16: originals, then their reconstructions, then the next originals, …
    let cols = n.min(16);
    let mut rows = Vec::new();
    for start in (0..n).step_by(cols) {
        let end = (start + cols).min(n);
        rows.push(pad_row(&x, start, end, cols));
        rows.push(pad_row(&recon, start, end, cols));
    }
    let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
    let all = ndarray::concatenate(Axis(0), &views).expect("same widths");
    grid(&all, rows.len(), cols, h, w).save(&args.out)?;
    done(&args.out, &format!("{n} test images and their reconstructions"))
}

/// Rows start..end of `x`, padded with blank images to `cols`.
fn pad_row(x: &Tensor, start: usize, end: usize, cols: usize) -> Tensor {
    let d = x.shape()[1];
    let mut row = Tensor::zeros(vec![cols, d]);
    row.slice_axis_mut(Axis(0), Slice::from(0..end - start)).assign(&x.slice_axis(Axis(0), Slice::from(start..end)));
    row
}
