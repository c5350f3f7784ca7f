//! The test pass of any family, as a run takes it after every epoch and `vae-cli eval` once:
//! the family's terms per image over a split, each chunk with its own random stream.

use crate::data::{Binarize, Split};
use crate::family::{evaluate_split, Family, StepSettings};
use crate::run::streams::{stream, Purpose};

/// What a test pass gives: the family's term means and its statistics.
pub struct Evaluation {
    /// Per-image means of the family's terms.
    pub means: Vec<f64>,
    /// The statistics of the pass (the VQ-VAE's perplexity).
    pub statistics: Vec<(&'static str, f64)>,
    /// The counts they were computed from (the VQ-VAE's uses of each code).
    pub counts: Vec<u64>,
}

/// The family's terms per image over a split (the negative ELBO's recon and kl, and the IWAE's
/// gain, with z sampled from q(z|x); or the VQ-VAE's terms): chunk c of the split draws from
/// the stream (seed, epoch, c, test), so the numbers are the same on any number of threads.
pub fn evaluate(
    model: &dyn Family,
    split: &Split,
    mode: Binarize,
    knobs: &StepSettings,
    seed: u64,
    epoch: u64,
) -> Evaluation {
    let sums = evaluate_split(model, split, mode, knobs, |c| stream(seed, epoch, c, Purpose::Test));
    Evaluation { means: sums.means(), statistics: model.statistics(&sums.counts), counts: sums.counts }
}
