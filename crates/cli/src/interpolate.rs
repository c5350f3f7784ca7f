//! `vae-cli interpolate`: the decoded straight line between the latent points of two test images.

use std::path::PathBuf;

use clap::Args;
use ndarray::{Axis, Slice};
use vae_autodiff::Tensor;

use crate::image::grid;
use crate::options::{LabelArgs, ModelArgs, Result};
use crate::pictures::{
    check_index, chosen_label, done, image_size, load_test, load_with_space, pixels, space, test_rows,
};

/// Flags of `vae-cli interpolate`.
#[derive(Args, Debug, Clone)]
pub struct InterpolateArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Index of the first test image.
    #[arg(long)]
    pub from: usize,
    /// Index of the second test image.
    #[arg(long)]
    pub to: usize,
    /// Points on the line, both ends included.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=100))]
    pub steps: u64,
    /// A conditional model decodes the line with this class [default: the first image's label].
    #[command(flatten)]
    pub label: LabelArgs,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "interpolation.png")]
    pub out: PathBuf,
}

/// `vae-cli interpolate`: x_from, the decoded points of (1 − t)·mu_from + t·mu_to, x_to.
pub fn run(args: InterpolateArgs) -> Result<()> {
    let model = load_with_space(&args.model.checkpoint, "interpolate")?;
    let (model, space) = (model.as_ref(), space(model.as_ref()));
    let test = load_test(&args.model, model)?;
    check_index("from", args.from, &test)?;
    check_index("to", args.to, &test)?;
    let label = chosen_label(model, &args.label, test.labels[args.from] as usize)?;
    let rows_in = test_rows(model, &test, &[args.from, args.to]);
    let (mu, _) = space.encode_points(rows_in.clone());
    let x = pixels(model, &rows_in);
    let steps = args.steps as usize;
    let j = space.latent_dim();
    let z = Tensor::from_shape_fn(vec![steps, j], |i| {
        let t = i[0] as f32 / (steps - 1) as f32;
        (1.0 - t) * mu[[0, i[1]]] + t * mu[[1, i[1]]]
    });
    let path = space.decode_points(z, &vec![label.unwrap_or(0); steps]);
    let row = ndarray::concatenate(
        Axis(0),
        &[x.slice_axis(Axis(0), Slice::from(0..1)), path.view(), x.slice_axis(Axis(0), Slice::from(1..2))],
    )
    .expect("same widths");
    let (h, w) = image_size(model);
    grid(&row, 1, steps + 2, h, w).save(&args.out)?;
    done(&args.out, &format!("{steps} points between test images {} and {}", args.from, args.to))
}
