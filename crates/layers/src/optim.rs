//! Optimizers, each one fused pass over every parameter per step, and gradient clipping.
//!
//! Shape legend: every state tensor (m, v, momentum, sum of squares) has the shape of its
//! parameter θ and of its gradient g.
//!
//! | optimizer | update (per element, step t ≥ 1) |
//! |---|---|
//! | Adam (PyTorch's form) | g ← g + λθ; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; θ ← θ − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε) |
//! | SGD with momentum | g ← g + λθ; b ← μb + g (b = g at t = 1); θ ← θ − lr·b |
//! | Adagrad | g ← g + λθ; s ← s + g²; θ ← θ − lr·g / (√s + ε) |
//! | Adamax (PyTorch's form) | g ← g + λθ; m ← β₁m + (1−β₁)g; u ← max(β₂u, \|g\| + ε); θ ← θ − lr·(m/(1−β₁ᵗ)) / u |
//! | Averaged (any of them) | its step, then θ̄ ← dθ̄ + (1−d)θ: the weights' running average, for evaluation |

use ndarray::Zip;
use vae_autodiff::kernels::loops;
use vae_autodiff::Tensor;

/// Tensors at least this long are updated in parallel. Below it, waking the other core (30–70
/// µs, `examples/join_latency.rs`) costs about what the split saves: Burda's weights of 156,800
/// values update on one core, and its step, with nothing else waking the other core, took 0.83
/// ms instead of 0.97–0.98 (docs/PERFORMANCE.md, 2026-12-04, fourth session). The MLP's
/// weights of 313,600 values still gain from two.
const PARALLEL_LEN: usize = 1 << 18;
/// Values per piece of a parallel update.
const PARALLEL_PIECE: usize = 1 << 14;

/// A first-order optimizer: updates parameters in place from their gradients.
pub trait Optimizer: Send {
    /// One update of every parameter; `grads[i]` is the gradient of `params[i]`.
    fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]);
    /// The learning rate used by the next step.
    fn lr(&self) -> f32;
    /// Changes the learning rate.
    fn set_lr(&mut self, lr: f32);
    /// Steps taken so far.
    fn steps(&self) -> u64;
    /// The optimizer's state as named tensors (for checkpoints), and the step count.
    fn state(&self) -> (u64, Vec<(String, Tensor)>);
    /// Restores a state written by [`Optimizer::state`] for the parameters `params`; `Err`
    /// says what does not match (a missing, unexpected or misshapen tensor).
    fn load_state(&mut self, steps: u64, tensors: Vec<(String, Tensor)>, params: &[Tensor]) -> Result<(), String>;
    /// Exchanges the weights `params` with their running average, if the optimizer keeps one
    /// ([`Averaged`]) and has taken a step: a second call exchanges them back. Returns whether
    /// it did. Between two steps only.
    fn swap_average(&mut self, _params: &mut [Tensor]) -> bool {
        false
    }
}

/// Runs `f` over four equally shaped tensors element by element, on their contiguous
/// memory (a kernel loop, at the CPU's SIMD width), in parallel pieces when they are long.
fn zip4(
    theta: &mut Tensor,
    g: &Tensor,
    a: &mut Tensor,
    b: &mut Tensor,
    f: impl Fn(&mut f32, f32, &mut f32, &mut f32) + Copy + Sync + Send,
) {
    let slices = (theta.as_slice_mut(), g.as_slice(), a.as_slice_mut(), b.as_slice_mut());
    let (Some(t), Some(g), Some(a), Some(b)) = slices else {
        return Zip::from(theta).and(g).and(a).and(b).for_each(|t, &g, a, b| f(t, g, a, b));
    };
    if g.len() >= PARALLEL_LEN {
        use rayon::prelude::*;
        let piece = PARALLEL_PIECE;
        t.par_chunks_mut(piece)
            .zip(g.par_chunks(piece))
            .zip(a.par_chunks_mut(piece).zip(b.par_chunks_mut(piece)))
            .for_each(|((t, g), (a, b))| loops::update_with_state(t, g, a, b, f));
    } else {
        loops::update_with_state(t, g, a, b, f);
    }
}

/// Runs `f` over three equally shaped tensors, in parallel when they are long.
fn zip3(theta: &mut Tensor, g: &Tensor, a: &mut Tensor, f: impl Fn(&mut f32, f32, &mut f32) + Sync + Send) {
    let z = Zip::from(theta).and(g).and(a);
    if g.len() >= PARALLEL_LEN {
        z.par_for_each(|t, &g, a| f(t, g, a));
    } else {
        z.for_each(|t, &g, a| f(t, g, a));
    }
}

/// Creates zeroed state tensors on the first step.
fn ensure_state(state: &mut Vec<Tensor>, params: &[Tensor]) {
    if state.len() != params.len() {
        *state = params.iter().map(|p| Tensor::zeros(p.raw_dim())).collect();
    }
}

#[track_caller]
fn check_grads(params: &[Tensor], grads: &[Tensor]) {
    assert_eq!(params.len(), grads.len(), "optimizer: {} parameters but {} gradients", params.len(), grads.len());
    for (i, (p, g)) in params.iter().zip(grads).enumerate() {
        assert_eq!(
            p.shape(),
            g.shape(),
            "optimizer: parameter {i} has shape {:?}, its gradient {:?}",
            p.shape(),
            g.shape()
        );
    }
}

/// Names state tensors `<slot>.<index>` and checks them on load.
fn export(slots: &[(&str, &Vec<Tensor>)]) -> Vec<(String, Tensor)> {
    slots
        .iter()
        .flat_map(|(slot, ts)| ts.iter().enumerate().map(move |(i, t)| (format!("{slot}.{i}"), t.clone())))
        .collect()
}

/// Reads back the slots written by [`export`]: for each slot name, one tensor per parameter
/// with the parameter's shape, and nothing else.
fn import(
    kind: &str,
    slots: &[&str],
    mut tensors: Vec<(String, Tensor)>,
    params: &[Tensor],
) -> Result<Vec<Vec<Tensor>>, String> {
    let mut out = Vec::new();
    for slot in slots {
        let mut found = Vec::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            let name = format!("{slot}.{i}");
            let Some(pos) = tensors.iter().position(|(n, _)| *n == name) else {
                return Err(format!("{kind} state: tensor {name} is missing"));
            };
            let (_, t) = tensors.swap_remove(pos);
            if t.shape() != p.shape() {
                return Err(format!("{kind} state: {name} has shape {:?}, its parameter {:?}", t.shape(), p.shape()));
            }
            found.push(t);
        }
        out.push(found);
    }
    if let Some((name, _)) = tensors.first() {
        return Err(format!("{kind} state: unexpected tensor {name}"));
    }
    Ok(out)
}

/// Adam (Kingma & Ba) in PyTorch's bias-corrected form, with optional L2 weight decay.
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to √v̂ to avoid division by zero.
    pub eps: f32,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f32,
    t: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// Adam with PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new(lr: f32) -> Self {
        Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, t: 0, m: vec![], v: vec![] }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]) {
        check_grads(params, grads);
        ensure_state(&mut self.m, params);
        ensure_state(&mut self.v, params);
        self.t += 1;
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        // Bias corrections, computed once per step in f64.
        let c1 = 1.0 - (b1 as f64).powi(self.t as i32);
        let c2 = 1.0 - (b2 as f64).powi(self.t as i32);
        let step_size = (self.lr as f64 / c1) as f32;
        let inv_sqrt_c2 = (1.0 / c2.sqrt()) as f32;
        for (((theta, g), m), v) in params.iter_mut().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            zip4(
                theta,
                g,
                m,
                v,
                #[inline(always)]
                |theta, g, m, v| {
                    let g = g + wd * *theta;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    // θ ← θ − lr·m̂/(√v̂ + ε), with m̂ = m/c₁ and √v̂ = √v/√c₂
                    *theta -= step_size * *m / (v.sqrt() * inv_sqrt_c2 + eps);
                },
            );
        }
    }
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn steps(&self) -> u64 {
        self.t
    }
    fn state(&self) -> (u64, Vec<(String, Tensor)>) {
        (self.t, export(&[("m", &self.m), ("v", &self.v)]))
    }
    fn load_state(&mut self, steps: u64, tensors: Vec<(String, Tensor)>, params: &[Tensor]) -> Result<(), String> {
        let mut slots = import("Adam", &["m", "v"], tensors, params)?;
        (self.t, self.v, self.m) = (steps, slots.pop().expect("v"), slots.pop().expect("m"));
        Ok(())
    }
}

/// Adamax (Kingma & Ba, section 7.1): Adam with the second moment replaced by an exponentially
/// weighted infinity norm u of the past gradients, which needs no bias correction. PyTorch's
/// form, ε added to |g| inside the max; the optimizer of Kingma et al.'s (2016) IAF
/// experiments.
#[derive(Clone, Debug)]
pub struct Adamax {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the infinity norm.
    pub beta2: f32,
    /// Added to |g| before the max, so that u > 0.
    pub eps: f32,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f32,
    t: u64,
    m: Vec<Tensor>,
    u: Vec<Tensor>,
}

impl Adamax {
    /// Adamax with PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new(lr: f32) -> Self {
        Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, t: 0, m: vec![], u: vec![] }
    }
}

impl Optimizer for Adamax {
    fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]) {
        check_grads(params, grads);
        ensure_state(&mut self.m, params);
        ensure_state(&mut self.u, params);
        self.t += 1;
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        let step_size = (self.lr as f64 / (1.0 - (b1 as f64).powi(self.t as i32))) as f32;
        for (((theta, g), m), u) in params.iter_mut().zip(grads).zip(&mut self.m).zip(&mut self.u) {
            zip4(
                theta,
                g,
                m,
                u,
                #[inline(always)]
                |theta, g, m, u| {
                    let g = g + wd * *theta;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *u = (b2 * *u).max(g.abs() + eps);
                    *theta -= step_size * *m / *u;
                },
            );
        }
    }
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn steps(&self) -> u64 {
        self.t
    }
    fn state(&self) -> (u64, Vec<(String, Tensor)>) {
        (self.t, export(&[("m", &self.m), ("u", &self.u)]))
    }
    fn load_state(&mut self, steps: u64, tensors: Vec<(String, Tensor)>, params: &[Tensor]) -> Result<(), String> {
        let mut slots = import("Adamax", &["m", "u"], tensors, params)?;
        (self.t, self.u, self.m) = (steps, slots.pop().expect("u"), slots.pop().expect("m"));
        Ok(())
    }
}

/// Stochastic gradient descent with (PyTorch-style) momentum and optional weight decay.
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum μ (0 for plain SGD).
    pub momentum: f32,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f32,
    t: u64,
    buf: Vec<Tensor>,
}

impl Sgd {
    /// SGD with the given learning rate and momentum.
    pub fn new(lr: f32, momentum: f32) -> Self {
        Self { lr, momentum, weight_decay: 0.0, t: 0, buf: vec![] }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]) {
        check_grads(params, grads);
        ensure_state(&mut self.buf, params);
        let (lr, mu, wd, first) = (self.lr, self.momentum, self.weight_decay, self.t == 0);
        self.t += 1;
        for ((theta, g), b) in params.iter_mut().zip(grads).zip(&mut self.buf) {
            zip3(theta, g, b, |theta, g, b| {
                let g = g + wd * *theta;
                // PyTorch starts the buffer at the first gradient: b₁ = g₁.
                *b = if first { g } else { mu * *b + g };
                *theta -= lr * *b;
            });
        }
    }
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn steps(&self) -> u64 {
        self.t
    }
    fn state(&self) -> (u64, Vec<(String, Tensor)>) {
        (self.t, export(&[("momentum", &self.buf)]))
    }
    fn load_state(&mut self, steps: u64, tensors: Vec<(String, Tensor)>, params: &[Tensor]) -> Result<(), String> {
        let mut slots = import("SGD", &["momentum"], tensors, params)?;
        (self.t, self.buf) = (steps, slots.pop().expect("momentum"));
        Ok(())
    }
}

/// Adagrad (Duchi et al.), the optimizer of Kingma & Welling's experiments.
#[derive(Clone, Debug)]
pub struct Adagrad {
    /// Learning rate.
    pub lr: f32,
    /// Added to √s (PyTorch's default 1e-10).
    pub eps: f32,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f32,
    t: u64,
    sum: Vec<Tensor>,
}

impl Adagrad {
    /// Adagrad with the given learning rate and PyTorch's ε = 1e-10.
    pub fn new(lr: f32) -> Self {
        Self { lr, eps: 1e-10, weight_decay: 0.0, t: 0, sum: vec![] }
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]) {
        check_grads(params, grads);
        ensure_state(&mut self.sum, params);
        self.t += 1;
        let (lr, eps, wd) = (self.lr, self.eps, self.weight_decay);
        for ((theta, g), s) in params.iter_mut().zip(grads).zip(&mut self.sum) {
            zip3(theta, g, s, |theta, g, s| {
                let g = g + wd * *theta;
                *s += g * g;
                *theta -= lr * g / (s.sqrt() + eps);
            });
        }
    }
    fn lr(&self) -> f32 {
        self.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }
    fn steps(&self) -> u64 {
        self.t
    }
    fn state(&self) -> (u64, Vec<(String, Tensor)>) {
        (self.t, export(&[("sum", &self.sum)]))
    }
    fn load_state(&mut self, steps: u64, tensors: Vec<(String, Tensor)>, params: &[Tensor]) -> Result<(), String> {
        let mut slots = import("Adagrad", &["sum"], tensors, params)?;
        (self.t, self.sum) = (steps, slots.pop().expect("sum"));
        Ok(())
    }
}

/// Polyak averaging in the exponential form of Kingma et al.'s IAF code: another optimizer's
/// steps, and after each one a running average of the weights,
///
/// ```text
///   θ̄ ← d·θ̄ + (1 − d)·θ      (θ̄ = the weights before the first step; d = 0.999 in that code)
/// ```
///
/// an average over the last ~1/(1 − d) steps that smooths out the noise of small batches. The
/// average is what a run evaluates and saves as its model ([`Optimizer::swap_average`]); the
/// optimizer keeps stepping the weights themselves. Its state is the wrapped optimizer's with
/// one more slot, `avg`.
pub struct Averaged {
    /// The optimizer whose steps are averaged.
    pub inner: Box<dyn Optimizer>,
    /// The decay d of the average, in [0, 1).
    pub decay: f32,
    average: Vec<Tensor>,
}

impl Averaged {
    /// `inner`'s steps with their weights averaged at decay `decay`.
    pub fn new(inner: Box<dyn Optimizer>, decay: f32) -> Self {
        Self { inner, decay, average: Vec::new() }
    }

    /// The running average θ̄, one tensor per parameter (empty before the first step).
    pub fn average(&self) -> &[Tensor] {
        &self.average
    }
}

impl Optimizer for Averaged {
    fn step(&mut self, params: &mut [Tensor], grads: &[Tensor]) {
        if self.average.len() != params.len() {
            self.average = params.to_vec(); // θ̄₀ = θ₀
        }
        self.inner.step(params, grads);
        let d = self.decay;
        for (avg, theta) in self.average.iter_mut().zip(params.iter()) {
            Zip::from(avg).and(theta).for_each(|a, &t| *a = d * *a + (1.0 - d) * t);
        }
    }
    fn lr(&self) -> f32 {
        self.inner.lr()
    }
    fn set_lr(&mut self, lr: f32) {
        self.inner.set_lr(lr);
    }
    fn steps(&self) -> u64 {
        self.inner.steps()
    }
    fn state(&self) -> (u64, Vec<(String, Tensor)>) {
        let (steps, mut tensors) = self.inner.state();
        tensors.extend(export(&[("avg", &self.average)]));
        (steps, tensors)
    }
    fn load_state(&mut self, steps: u64, tensors: Vec<(String, Tensor)>, params: &[Tensor]) -> Result<(), String> {
        let (avg, rest): (Vec<_>, Vec<_>) = tensors.into_iter().partition(|(n, _)| n.starts_with("avg."));
        self.inner.load_state(steps, rest, params)?;
        self.average = match steps {
            0 => Vec::new(),
            _ => import("the weights' average", &["avg"], avg, params)?.pop().expect("avg"),
        };
        Ok(())
    }
    fn swap_average(&mut self, params: &mut [Tensor]) -> bool {
        if self.average.len() != params.len() {
            return false;
        }
        self.average.iter_mut().zip(params.iter_mut()).for_each(|(a, p)| std::mem::swap(a, p));
        true
    }
}

/// Scales all gradients by one factor so that their global L2 norm ‖g‖ = √(Σ g²) is at most
/// `max_norm` (as `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f32) -> f32 {
    let norm = grads.iter().flat_map(|g| g.iter()).map(|&v| v as f64 * v as f64).sum::<f64>().sqrt() as f32;
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 {
        grads.iter_mut().for_each(|g| g.mapv_inplace(|v| v * scale));
    }
    norm
}
