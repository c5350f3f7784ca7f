//! The prior p(z) = N(0, I) of the top latent layer.
//!
//! Shape legend: M rows, J latent units; z [M, J] → log p(z) `[M]`.
//!
//! ```text
//!   log N(z; 0, I) = −½‖z‖² − (J/2)·ln 2π
//! ```

use vae_autodiff::loss::HALF_LN_2PI;
use vae_autodiff::{Tape, Tensor, Var};

/// log N(z; 0, I) per row of z [M, J], with its normalizer. `[M]`.
pub fn standard_normal_log_prob(tape: &mut Tape, z: Var) -> Var {
    let j = tape.value(z).shape()[1] as f32;
    let z2 = tape.square(z);
    let sum_z2 = tape.sum_axis(z2, 1);
    let half = tape.scale(sum_z2, -0.5);
    let norm = tape.constant(Tensor::from_elem(vec![], -j * HALF_LN_2PI));
    tape.add(half, norm)
}
