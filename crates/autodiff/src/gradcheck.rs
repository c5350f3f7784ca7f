//! Finite-difference gradient checks, reused by every crate of the workspace.
//!
//! The function under test maps some inputs to an output y of any shape. The check reduces y
//! to a scalar with a fixed random projection, L = Σ_j y_j·r_j with r ~ N(0, 1): unlike `sum`
//! or `mean`, whose upstream gradient is the same everywhere, a random r makes a transposed
//! index or a swapped axis in a backward show up as a wrong number. The analytic gradient is
//! the tape's backward seeded with dy = r; the numeric one is the central difference
//!
//!   ∂L/∂x_i ≈ (L(x + h·e_i) − L(x − h·e_i)) / 2h,
//!
//! with L accumulated in f64. The forward pass runs in f32, so h must not be tiny: its
//! rounding error grows like ε_f32·|L|/h, the truncation error like h². The default
//! h = 1e-2 balances the two for values of order one.
//!
//! ```
//! use vae_autodiff::gradcheck::{check_gradients, random_tensor};
//! let x = random_tensor(&[3, 5], 1);
//! let report = check_gradients(&[x], |tape, v| tape.tanh(v[0]));
//! report.assert_within(1e-3, 1e-2);
//! ```

use std::fmt;

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::tape::{Tape, Tensor, Var};

/// Step of the central difference used by [`check_gradients`].
pub const DEFAULT_STEP: f64 = 1e-2;

/// Seed of the random projection r.
const PROJECTION_SEED: u64 = 0x0005_eed0_f9ad;

/// A tensor of standard-normal values from a fixed seed.
pub fn random_tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::from_shape_simple_fn(shape.to_vec(), || StandardNormal.sample(&mut rng))
}

/// How far the analytic gradient of one input is from the numeric one.
#[derive(Clone, Debug)]
pub struct InputError {
    /// The tape's gradient, entry by entry.
    pub analytic: Vec<f64>,
    /// The central-difference estimate, entry by entry.
    pub numeric: Vec<f64>,
    /// max_i |analytic_i − numeric_i|
    pub max_abs: f64,
    /// max_i |analytic_i − numeric_i| / max(|numeric_i|, 1e-3)
    pub max_rel: f64,
}

impl InputError {
    #[track_caller]
    fn new(analytic: Vec<f64>, numeric: Vec<f64>) -> Self {
        // `zip` would stop at the shorter side and hide a gradient of the wrong size.
        assert_eq!(
            analytic.len(),
            numeric.len(),
            "gradcheck: the analytic gradient has {} entries, the input {}",
            analytic.len(),
            numeric.len()
        );
        let pairs = analytic.iter().zip(&numeric);
        let max_abs = pairs.clone().map(|(a, n)| (a - n).abs()).fold(0.0, f64::max);
        let max_rel = pairs.map(|(a, n)| (a - n).abs() / n.abs().max(1e-3)).fold(0.0, f64::max);
        Self { analytic, numeric, max_abs, max_rel }
    }

    /// The entry with the largest absolute error: (index, analytic, numeric).
    pub fn worst(&self) -> (usize, f64, f64) {
        let pairs = self.analytic.iter().zip(&self.numeric).enumerate();
        pairs.map(|(i, (&a, &n))| (i, a, n)).fold((0, 0.0, 0.0), |w, e| {
            if (e.1 - e.2).abs() > (w.1 - w.2).abs() {
                e
            } else {
                w
            }
        })
    }
}

/// The outcome of a gradient check: one [`InputError`] per input.
#[derive(Clone, Debug)]
pub struct GradReport {
    /// Per input, in the order given.
    pub inputs: Vec<InputError>,
}

/// Checks the backward of `f` at `inputs` against central differences (step [`DEFAULT_STEP`]).
pub fn check_gradients(inputs: &[Tensor], f: impl Fn(&mut Tape, &[Var]) -> Var) -> GradReport {
    check_gradients_with_step(inputs, DEFAULT_STEP, f)
}

/// [`check_gradients`] with a chosen finite-difference step `h`.
pub fn check_gradients_with_step(inputs: &[Tensor], h: f64, f: impl Fn(&mut Tape, &[Var]) -> Var) -> GradReport {
    // The projection r, of the output's shape, from a fixed seed.
    let r = {
        let mut tape = Tape::new();
        let vars: Vec<Var> = inputs.iter().map(|x| tape.input(x.clone())).collect();
        let y = f(&mut tape, &vars);
        random_tensor(tape.value(y).shape(), PROJECTION_SEED)
    };
    let projected = |xs: &[Tensor]| -> f64 {
        let mut tape = Tape::new();
        let vars: Vec<Var> = xs.iter().map(|x| tape.constant(x.clone())).collect();
        let y = f(&mut tape, &vars);
        tape.value(y).iter().zip(r.iter()).map(|(&y, &r)| y as f64 * r as f64).sum()
    };

    // Analytic: backward seeded with dL/dy = r.
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|x| tape.input(x.clone())).collect();
    let y = f(&mut tape, &vars);
    let grads = tape.backward_from(y, r.clone());

    let mut report = GradReport { inputs: Vec::new() };
    let mut xs: Vec<Tensor> = inputs.to_vec();
    for (k, &var) in vars.iter().enumerate() {
        let zeros = Tensor::zeros(inputs[k].raw_dim());
        let analytic = grads.get(var).unwrap_or(&zeros).clone();
        assert_eq!(analytic.shape(), inputs[k].shape(), "gradcheck: the gradient of input {k} has the wrong shape");
        let mut numeric = Vec::with_capacity(inputs[k].len());
        for i in 0..inputs[k].len() {
            let x0 = inputs[k].as_slice().expect("standard layout")[i];
            xs[k].as_slice_mut().expect("standard layout")[i] = (x0 as f64 + h) as f32;
            let up = projected(&xs);
            xs[k].as_slice_mut().expect("standard layout")[i] = (x0 as f64 - h) as f32;
            let down = projected(&xs);
            xs[k].as_slice_mut().expect("standard layout")[i] = x0;
            numeric.push((up - down) / (2.0 * h));
        }
        let analytic = analytic.iter().map(|&a| a as f64).collect();
        report.inputs.push(InputError::new(analytic, numeric));
    }
    report
}

impl GradReport {
    /// Panics, printing the whole report, unless every entry of every input satisfies
    /// |analytic − numeric| ≤ atol + rtol·|numeric|.
    #[track_caller]
    pub fn assert_within(&self, atol: f64, rtol: f64) {
        // Written so that a NaN on either side counts as a failure.
        let within = |a: f64, n: f64| (a - n).abs() <= atol + rtol * n.abs();
        let failed = self.inputs.iter().any(|e| e.analytic.iter().zip(&e.numeric).any(|(&a, &n)| !within(a, n)));
        assert!(!failed, "gradient check failed (atol {atol}, rtol {rtol}):\n{self}");
    }
}

impl fmt::Display for GradReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "input  max_abs     max_rel     max|numeric|  worst (index: analytic vs numeric)")?;
        for (k, e) in self.inputs.iter().enumerate() {
            let (i, a, n) = e.worst();
            let max_numeric = e.numeric.iter().fold(0.0f64, |m, n| m.max(n.abs()));
            writeln!(
                f,
                "{k:<6} {:<11.3e} {:<11.3e} {:<13.3e} {i}: {a:.6e} vs {n:.6e}",
                e.max_abs, e.max_rel, max_numeric
            )?;
        }
        Ok(())
    }
}
