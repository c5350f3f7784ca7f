//! The engine's training step, whatever the model: a batch cut into chunks of a fixed size,
//! each chunk's forward and backward on its own tape and core, the gradients summed in chunk
//! order (so any thread count gives the same numbers), and the update, refused when the loss
//! or a gradient is not finite. Every family's step runs through [`batch_gradients`] and
//! [`update`].

use ndarray::{Axis, Slice};
use rayon::prelude::*;
use vae_autodiff::{Tape, Tensor, Var};
use vae_layers::optim::{clip_grad_norm, Optimizer};
use vae_layers::{ParamId, ParamStore, ParamVars};

/// Why a step was refused: the loss or a gradient was NaN or infinite. The parameters were
/// left as they were.
#[derive(Clone, Debug, PartialEq)]
pub struct NonFinite {
    /// The loss of the failed step (possibly NaN).
    pub loss: f64,
    /// The first parameter whose gradient is not finite, if the loss itself was finite.
    pub param: Option<String>,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.param {
            None => write!(f, "the loss is not finite ({})", self.loss),
            Some(p) => write!(f, "the gradient of {p} is not finite (loss {})", self.loss),
        }
    }
}

impl std::error::Error for NonFinite {}

/// Rows of a batch handled by one tape. A batch is cut into chunks of this many rows, each
/// chunk's forward and backward runs on its own core, and the chunks' gradients are summed in
/// chunk order. The cut depends only on the batch size, never on the number of threads, so a
/// run gives the same numbers on any machine.
pub const CHUNK_ROWS: usize = 64;

/// Rows of [`Derived`] values computed on one tape: enough pieces to keep two cores busy, each
/// wide enough for the products to run at speed. An epoch of 200 steps with the VampPrior's 500
/// pseudo-inputs (MLP 300-300, J = 40, batch 100; an AMD EPYC with AVX2) took 4.98 s on two
/// cores and 5.48 s on one with all 500 on one tape, 4.02 s and 7.82 s in pieces of 64 rows,
/// and takes 3.41–3.50 s and 5.64–6.05 s in pieces of 256.
pub const DERIVED_ROWS: usize = 256;

/// Rows of a batch evaluated on one tape (`train::evaluate_batch`), as many as a training chunk. A
/// forward pass keeps every intermediate value until its tape is dropped, and larger tapes made
/// the C allocator hand memory back to the kernel and fault it in again: the conv model's test
/// pass (`vae-cli eval`) took 2.06 s with tapes of 500 rows and 1.67 s with 128, both with
/// 522,000 page faults, and takes 1.20–1.26 s with 64 (43,000 faults).
pub const EVAL_ROWS: usize = CHUNK_ROWS;

/// The gradient of any model's loss on a batch of `n` examples: the engine's loop that every
/// family's training step runs through. The batch is cut into chunks of `per_chunk` examples;
/// for each, on its own tape and core, `chunk_loss(tape, p, start, end)` builds the loss of
/// examples `start..end` and reports its terms (the loss first) as per-example means. The
/// batch loss is the mean over examples, so with chunks c of n_c examples,
/// L = Σ_c (n_c/N)·L_c and ∂L/∂θ = Σ_c (n_c/N)·∂L_c/∂θ: each chunk's backward is seeded with
/// its weight n_c/N, and gradients and terms are added in chunk order (the cut depends only on
/// n, so any thread count gives the same sums). Returns the batch's terms, in `chunk_loss`'s
/// order, and one gradient per parameter.
pub fn batch_gradients<F>(params: &ParamStore, n: usize, per_chunk: usize, chunk_loss: F) -> (Vec<f64>, Vec<Tensor>)
where
    F: Fn(&mut Tape, &ParamVars, usize, usize) -> (Var, Vec<f64>) + Sync,
{
    let no_derived = Derived { rows: 0, derive: |_: &mut Tape, _: &ParamVars, _, _| Vec::new() };
    batch_gradients_derived(params, n, per_chunk, no_derived, chunk_loss)
}

/// Values s = S(θ) of the parameters alone that every chunk of a step reads (the VampPrior's
/// components: its K pseudo-inputs encoded, mu and logvar [K, J]), made of `rows` rows that
/// are computed independently: `derive(tape, p, start, end)` records rows `start..end` of
/// each value on `tape`.
pub struct Derived<S> {
    /// Rows of every derived value (0: none).
    pub rows: usize,
    /// Rows start..end of each derived value, on the given tape.
    pub derive: S,
}

/// [`batch_gradients`] for a loss that also reads [`Derived`] values s = S(θ), computed once
/// per step instead of once per chunk: in pieces of [`DERIVED_ROWS`] rows, each on its own tape
/// and core, then joined. Each chunk's tape gets s as leaves ([`ParamVars::derived`]) and its
/// backward returns ∂L_c/∂s beside ∂L_c/∂θ. By the chain rule,
///
/// ```text
///   dL/dθ = Σ_c (n_c/N)·∂L_c/∂θ  +  ḡ·∂S/∂θ,    ḡ = Σ_c (n_c/N)·∂L_c/∂s,
/// ```
///
/// and the second term is one backward of each piece's tape, seeded with its rows of ḡ
/// ([`Tape::backward_from_many`]), the pieces' gradients added in order. The cuts depend only
/// on n and the rows, so any thread count gives the same numbers. With no derived values this
/// is [`batch_gradients`] exactly.
pub fn batch_gradients_derived<S, F>(
    params: &ParamStore,
    n: usize,
    per_chunk: usize,
    derived: Derived<S>,
    chunk_loss: F,
) -> (Vec<f64>, Vec<Tensor>)
where
    S: Fn(&mut Tape, &ParamVars, usize, usize) -> Vec<Var> + Sync,
    F: Fn(&mut Tape, &ParamVars, usize, usize) -> (Var, Vec<f64>) + Sync,
{
    let pieces: Vec<DerivedPiece> = cut(derived.rows, DERIVED_ROWS)
        .into_par_iter()
        .map(|(start, end)| {
            let mut tape = Tape::new();
            let p = params.on_tape(&mut tape);
            let s = (derived.derive)(&mut tape, &p, start, end);
            DerivedPiece { start, tape, p, s }
        })
        .collect();
    let (terms, mut grads, g_bar) = chunk_gradients(params, n, per_chunk, &join_rows(&pieces), chunk_loss);
    // ḡ·∂S/∂θ, piece by piece, added in piece order to the parameters S reads.
    let through_s: Vec<Vec<Option<Tensor>>> =
        pieces.par_iter().map(|piece| piece.backward(&g_bar, params.len())).collect();
    for piece in through_s {
        for (g, extra) in grads.iter_mut().zip(piece) {
            if let Some(extra) = extra {
                *g += &extra;
            }
        }
    }
    (terms, grads)
}

/// The chunks of a step, each on its own tape and core with the derived values `s` as leaves:
/// the batch's terms, Σ_c (n_c/N)·∂L_c/∂θ for each parameter and ḡ = Σ_c (n_c/N)·∂L_c/∂s for
/// each derived value, all summed in chunk order.
fn chunk_gradients<F>(
    params: &ParamStore,
    n: usize,
    per_chunk: usize,
    s: &[Tensor],
    chunk_loss: F,
) -> (Vec<f64>, Vec<Tensor>, Vec<Tensor>)
where
    F: Fn(&mut Tape, &ParamVars, usize, usize) -> (Var, Vec<f64>) + Sync,
{
    let chunk_results: Vec<ChunkResult> = cut(n, per_chunk)
        .into_par_iter()
        .map(|(start, end)| {
            let weight = (end - start) as f64 / n as f64;
            let mut tape = Tape::new();
            let s_leaves: Vec<Var> = s.iter().map(|v| tape.input(v.clone())).collect();
            let p = params.on_tape(&mut tape).with_derived(s_leaves.clone());
            let (loss, terms) = chunk_loss(&mut tape, &p, start, end);
            let seed = Tensor::from_elem(vec![], weight as f32);
            let terms = terms.iter().map(|t| weight * t).collect();
            let mut grads = tape.backward_from(loss, seed);
            let ds = s_leaves.iter().map(|&v| grads.take(v).unwrap_or_else(|| Tensor::zeros(tape.value(v).raw_dim())));
            let ds = ds.collect();
            ChunkResult { terms, grads: p.gradients(&tape, grads), ds }
        })
        .collect();
    let mut terms: Vec<f64> = Vec::new();
    let mut chunk_grads = Vec::with_capacity(chunk_results.len());
    let mut chunk_ds = Vec::with_capacity(chunk_results.len());
    for r in chunk_results {
        terms.resize(r.terms.len(), 0.0);
        terms.iter_mut().zip(&r.terms).for_each(|(sum, v)| *sum += v);
        chunk_grads.push(r.grads);
        chunk_ds.push(r.ds);
    }
    (terms, sum_in_chunk_order(chunk_grads), sum_in_chunk_order(chunk_ds))
}

/// (start, end) of each piece when `n` rows are cut into pieces of `per_piece`.
fn cut(n: usize, per_piece: usize) -> Vec<(usize, usize)> {
    (0..n).step_by(per_piece.max(1)).map(|s| (s, (s + per_piece).min(n))).collect()
}

/// Rows start..end of the derived values, on their own tape.
struct DerivedPiece<'p> {
    /// The piece's first row.
    start: usize,
    tape: Tape<'p>,
    p: ParamVars,
    s: Vec<Var>,
}

impl DerivedPiece<'_> {
    /// This piece's rows of ḡ pushed back through its tape: ḡ·∂s/∂θ for each of the store's
    /// `n_params` parameters (None where the piece does not read it).
    fn backward(&self, g_bar: &[Tensor], n_params: usize) -> Vec<Option<Tensor>> {
        let start = self.start;
        let seeds = self.s.iter().zip(g_bar).map(|(&v, g)| {
            let rows = self.tape.value(v).shape()[0];
            (v, g.slice_axis(Axis(0), Slice::from(start..start + rows)).to_owned())
        });
        let mut grads = self.tape.backward_from_many(seeds.collect());
        (0..n_params).map(|i| grads.take(self.p.var(ParamId(i)))).collect()
    }
}

/// Each derived value whole: its pieces' rows, joined in order. None without pieces.
fn join_rows(pieces: &[DerivedPiece]) -> Vec<Tensor> {
    let Some(first) = pieces.first() else { return Vec::new() };
    (0..first.s.len())
        .map(|i| {
            let views: Vec<_> = pieces.iter().map(|piece| piece.tape.value(piece.s[i]).view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("pieces of one value share their other axes")
        })
        .collect()
}

/// What one chunk of a step returns: its weighted terms, its gradient for each parameter, and
/// for each derived value.
struct ChunkResult {
    terms: Vec<f64>,
    grads: Vec<Tensor>,
    ds: Vec<Tensor>,
}

/// The update of a step: refuses a non-finite `loss` or gradient (the parameters are then left
/// as they were), clips the gradient's global norm if asked, and lets the optimizer step.
pub fn update(
    params: &mut ParamStore,
    opt: &mut dyn Optimizer,
    mut grads: Vec<Tensor>,
    loss: f64,
    clip: Option<f32>,
) -> Result<(), NonFinite> {
    if !loss.is_finite() {
        return Err(NonFinite { loss, param: None });
    }
    if let Some(i) = grads.iter().position(|g| !all_finite(g)) {
        let name = params.iter().nth(i).map(|(n, _)| n.to_string());
        return Err(NonFinite { loss, param: name });
    }
    if let Some(max_norm) = clip {
        clip_grad_norm(&mut grads, max_norm);
    }
    opt.step(params.values_mut(), &grads);
    Ok(())
}

/// Σ_c g_c for each parameter, the chunks added in order (so the sum is the same on any
/// number of threads); parameters are summed in parallel, each in one contiguous pass.
fn sum_in_chunk_order(chunk_grads: Vec<Vec<Tensor>>) -> Vec<Tensor> {
    let mut chunks = chunk_grads.into_iter();
    let mut grads = chunks.next().unwrap_or_default();
    let rest: Vec<Vec<Tensor>> = chunks.collect();
    if rest.is_empty() {
        return grads; // one chunk: nothing to add, and no reason to wake the other cores
    }
    grads.par_iter_mut().enumerate().for_each(|(p, acc)| {
        for chunk in &rest {
            match (acc.as_slice_mut(), chunk[p].as_slice()) {
                (Some(a), Some(g)) => a.iter_mut().zip(g).for_each(|(a, &g)| *a += g),
                _ => *acc += &chunk[p],
            }
        }
    });
    grads
}

/// Whether every value is finite: one branch-free pass (an OR of "exponent all ones" flags)
/// that vectorizes, instead of a test and an early exit per value.
fn all_finite(g: &Tensor) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    match g.as_slice() {
        Some(s) => !s.iter().fold(false, |bad, v| bad | (v.to_bits() & EXPONENT == EXPONENT)),
        None => g.iter().all(|v| v.is_finite()),
    }
}
