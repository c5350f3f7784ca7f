//! Sum or mean over the batch (book, chapter 5), measured: the default model trained twice on
//! the same batches with the same noise, once on the mean of the per-example losses (this
//! engine's choice) and once on their sum (PyTorch's example: the gradient 128 times larger).
//!
//! cargo run --release --example batch_reduction        # 10 epochs each, about a minute
//! cargo run --release --example batch_reduction -- 3   # 3 epochs each
//!
//! Adam divides each gradient by the root of its own running second moment, so a constant
//! factor cancels except against its ε = 1e-8. The example prints both test losses after every
//! epoch and, at the end, how far apart the two parameter vectors have drifted.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use vae::data::{Binarize, Dataset};
use vae::model::standard_normal;
use vae::objective::{self, Objective};
use vae::step::{batch_gradients, update, CHUNK_ROWS};
use vae::train::evaluate_split;
use vae::{Vae, VaeConfig};
use vae_autodiff::Tensor;
use vae_layers::optim::Adam;

/// A model in training: its parameters and its optimizer.
struct Run {
    model: Vae,
    adam: Adam,
}

impl Run {
    /// One step on batch x with noise eps, the gradient of the batch's mean loss times `scale`.
    fn step(&mut self, x: &Tensor, eps: &Tensor, scale: f32) -> Result<(), Box<dyn std::error::Error>> {
        let model = &self.model;
        let chunk_loss = |tape: &mut vae_autodiff::Tape, p: &vae_layers::ParamVars, start: usize, end: usize| {
            let rows = ndarray::Slice::from(start..end);
            let xv = tape.constant(x.slice_axis(ndarray::Axis(0), rows).to_owned());
            let epsv = tape.constant(eps.slice_axis(ndarray::Axis(0), rows).to_owned());
            let l = objective::loss(model, tape, p, xv, epsv, Objective::default(), 1.0);
            (l.loss, vec![tape.scalar(l.loss) as f64])
        };
        let (sums, grads) = batch_gradients(&model.params, x.shape()[0], CHUNK_ROWS, chunk_loss);
        let grads = grads.into_iter().map(|g| g * scale).collect();
        update(&mut self.model.params, &mut self.adam, grads, sums[0], None)?;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs: u64 = std::env::args().nth(1).map_or(Ok(10), |a| a.parse())?;
    let data = Dataset::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"))?;
    let fresh = || -> Result<Run, Box<dyn std::error::Error>> {
        Ok(Run { model: Vae::new(VaeConfig::mlp_mnist(), &mut StdRng::seed_from_u64(1))?, adam: Adam::new(1e-3) })
    };
    let (mut mean, mut sum) = (fresh()?, fresh()?);
    let mut rng = StdRng::seed_from_u64(2);
    let test = |model: &Vae, epoch: u64| {
        let noise = |c: u64| StdRng::seed_from_u64(epoch * 1_000_003 + c);
        evaluate_split(model, &data.test, Binarize::None, Objective::default(), noise).mean(1.0).loss
    };
    println!("test loss (negative ELBO, nats per image) after each epoch:");
    println!("epoch  mean over the batch  sum over the batch");
    for epoch in 1..=epochs {
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        order.shuffle(&mut rng);
        for idx in order.chunks(128) {
            let x = data.train.batch(idx, Binarize::None, &mut rng);
            let eps = standard_normal(&[idx.len(), 20], &mut rng);
            mean.step(&x, &eps, 1.0)?;
            sum.step(&x, &eps, idx.len() as f32)?;
        }
        println!("{epoch:>5}  {:>19.2}  {:>18.2}", test(&mean.model, epoch), test(&sum.model, epoch));
    }
    let (mut largest, mut total) = (0f32, 0f64);
    for (a, b) in mean.model.params.values().iter().zip(sum.model.params.values()) {
        for (x, y) in a.iter().zip(b.iter()) {
            largest = largest.max((x - y).abs());
            total += ((x - y) as f64).powi(2);
        }
    }
    println!("parameters apart: largest difference {largest:.3e}, root of the summed squares {:.3e}", total.sqrt());
    Ok(())
}
