//! Your own pictures trained through the library in one call, `vae::run::train`: any data source
//! `vae-cli train --data` reads (a folder of PNG/JPEG images, a .npy/.npz array, an IDX folder,
//! CIFAR batches), at 32×32, by the conv model under the discretized logistic, with a line per
//! epoch in nats and bits per dimension. The run folder holds what `vae-cli train` writes
//! (model, resumable checkpoint, metrics.csv), so `vae-cli sample --checkpoint OUT/model.safetensors`
//! draws from it, and `vae-cli train --resume --out OUT` continues it.
//!
//! ```sh
//! cargo run --release --example make_shapes -- data/shapes 32 5000
//! cargo run --release --example train_folder -- data/shapes runs/shapes-example 5
//! ```
//!
//! It gives the numbers of `vae-cli train --data data/shapes --image-size 32 --model conv
//! --likelihood dlogistic --epochs 5 --out OUT`, to the last digit (tests/images.rs checks it).

use std::path::Path;

use vae::data::{Dataset, Prep};
use vae::run::{bits_per_dim, Recipe, Watch};
use vae::Likelihood;

/// Prints each finished epoch's report line; the rest of what a run reports is left alone.
struct EpochLines;

impl Watch for EpochLines {
    fn report(&mut self, lines: &[String]) {
        lines.iter().for_each(|line| println!("{line}"));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, out, rest @ ..] = args.as_slice() else {
        return Err("usage: train_folder DATA OUT [EPOCHS]".into());
    };
    let epochs: u64 = rest.first().map_or(Ok(5), |e| e.parse())?;

    // Decode (or read from the cache) once, cropped and resized to 32×32.
    let prep = Prep { image_size: Some(32), ..Prep::default() };
    let data = Dataset::open(Path::new(data), &prep, &|_, _| {})?;
    println!("data: {}", data.describe());

    // PyTorch's example's protocol, with the conv body and 8-bit pixels.
    let mut recipe = Recipe { model: vae::run::recipe::ModelKind::Conv, ..Recipe::default() }
        .with_likelihood(Likelihood::DLogistic { mixtures: 1 });
    (recipe.settings.epochs, recipe.settings.schedule_epochs) = (epochs, epochs);

    let run = vae::run::train(&recipe, data, Path::new(out), &mut EpochLines)?;
    let last = run.state.metrics.last().ok_or("no epoch ran")?;
    let test_loss: f64 = last.split(',').nth(4).ok_or("a metrics row")?.parse()?;
    println!("test −ELBO {test_loss:.2} nats, ≤ {:.3} bits/dim", bits_per_dim(test_loss, run.model.as_ref()));
    Ok(())
}
