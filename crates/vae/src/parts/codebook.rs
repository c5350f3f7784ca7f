//! The codebook of a VQ-VAE: each encoder output snapped to its nearest code, and the
//! straight-through copy that lets the decoder's gradient reach the encoder.
//!
//! Shape legend: M encoder outputs (N images × L places), Dc code width, Kc codes;
//! z_e [M, Dc], codebook e [Kc, Dc], index `[M]`, e_k and z_q [M, Dc].
//!
//! ```text
//!   k_m  = argmin_k ‖z_e,m − e_k‖²      (no gradient: a choice)
//!   z_q  = z_e + sg(e_k − z_e)          value e_k, gradient that of z_e (straight through)
//! ```

use vae_autodiff::{Tape, Tensor, Var};

/// For each row of z_e [M, Dc], the index of the nearest row of `codebook` [Kc, Dc] in
/// Euclidean distance (the first one on a tie). Computed as ‖e_k‖² − 2·z·e_k, the part of
/// ‖z − e_k‖² that depends on k.
pub fn nearest_codes(z_e: &Tensor, codebook: &Tensor) -> Vec<usize> {
    let z = z_e.view().into_dimensionality::<ndarray::Ix2>().expect("z_e is [M, Dc]");
    let e = codebook.view().into_dimensionality::<ndarray::Ix2>().expect("the codebook is [Kc, Dc]");
    let e_sq: Vec<f32> = e.rows().into_iter().map(|r| r.dot(&r)).collect();
    let scores = z.dot(&e.t()); // [M, Kc]: z·e_k
    scores
        .rows()
        .into_iter()
        .map(|s| {
            let mut best = (0, f32::INFINITY);
            for (k, (&ze, &ee)) in s.iter().zip(&e_sq).enumerate() {
                let d = ee - 2.0 * ze;
                if d < best.1 {
                    best = (k, d);
                }
            }
            best.0
        })
        .collect()
}

/// The nodes of one quantization.
#[derive(Clone, Debug)]
pub struct Quantized {
    /// The chosen code of each row `[M]`.
    pub index: Vec<usize>,
    /// The chosen codes e_k [M, Dc], rows of the table (their gradient goes to the table).
    pub e: Var,
    /// z_e + sg(e_k − z_e) [M, Dc]: e_k's values, z_e's gradient.
    pub z_q: Var,
}

/// Snaps each row of z_e [M, Dc] to its nearest row of `table` [Kc, Dc] (a parameter, or a
/// constant for an EMA codebook) and builds the straight-through copy.
pub fn quantize(tape: &mut Tape, z_e: Var, table: Var) -> Quantized {
    let index = nearest_codes(tape.value(z_e), tape.value(table));
    let e = tape.gather_rows(table, &index);
    let e_minus_z = tape.sub(e, z_e);
    let shift = tape.stop_gradient(e_minus_z);
    let z_q = tape.add(z_e, shift);
    Quantized { index, e, z_q }
}
