//! Fused losses of a VAE, one value per example.
//!
//! Shape legend
//! - N: batch, D: values per example (pixels: everything after the first axis), J: latent size
//! - `bce_with_logits`, `gaussian_nll`: logits / mean [N, …], target [N, …] → y `[N]`
//! - `kl_std_normal`: mu [N, J], logvar [N, J] → y `[N]`
//! - `dlogistic_nll`: mean [N, D], log_scale [N, D], target [N, D] on the 256 levels k/255 →
//!   y `[N]`
//! - `dlogistic_log_prob`: mean, log_scale, target [N, …] → log P per value, the same shape
//!
//! Each is a composition of primitives whose gradient simplifies once written out; the tests
//! check every fused op against the composition it replaces. Targets are data: they get no
//! gradient, and a target that would need one (a trainable leaf, or computed from one) is
//! refused with a panic rather than silently left without its gradient.

use std::borrow::Cow;

use crate::fastmath::{sigmoid, softplus};
use crate::kernels::{self, loops};
use crate::tape::{Op, Tape, Tensor, Var};

/// ½ ln 2π, the normalizing constant of a unit Gaussian in nats.
pub const HALF_LN_2PI: f32 = 0.918_938_5;

/// A loss target is data: refuse one that would need a gradient, rather than silently give it
/// none (`Op::inputs` of a loss does not list its target).
#[track_caller]
fn check_constant_target(op: &str, tape: &Tape, target: Var) {
    assert!(
        !tape.needs_grad(target),
        "{op}: the target Var({}) is trainable (or depends on a trainable value), but a loss target \
         receives no gradient; record it with `tape.constant`",
        target.index()
    );
}

#[track_caller]
fn check_same(op: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape(), "{op}: shapes differ: {:?} and {:?}", a.shape(), b.shape());
    assert!(a.ndim() >= 1, "{op}: inputs need a batch axis, found a scalar");
}

/// The values of a tensor in standard (row-major) order: borrowed when they already are.
fn contiguous(x: &Tensor) -> Cow<'_, [f32]> {
    match x.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(x.iter().copied().collect()),
    }
}

/// Σ_i v_i in f64, in eight interleaved partial sums (so the loop vectorizes) added in a
/// fixed order: the same numbers always give the same sum. Callers run it through
/// [`kernels::vectorized`].
#[inline(always)]
fn sum_f64(v: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|&x| x as f64).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x as f64;
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// Per-example sums y_n = Σ_i f(a_ni, b_ni) of two [N, …] tensors of the same shape: [N].
/// Each row's terms are computed in one vectorized pass, then summed in f64.
fn per_example_sum(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32 + Copy) -> Tensor {
    let n = a.shape()[0];
    let d = a.len() / n.max(1);
    let (a, b) = (contiguous(a), contiguous(b));
    let mut terms = vec![0.0f32; d];
    let y: Vec<f32> = (0..n)
        .map(|r| {
            loops::map2(&a[r * d..(r + 1) * d], &b[r * d..(r + 1) * d], &mut terms, f);
            kernels::vectorized(
                #[inline(always)]
                || sum_f64(&terms),
            ) as f32
        })
        .collect();
    Tensor::from_shape_vec(vec![n], y).expect("[N]")
}

/// d_ni = dy_n · f(a_ni, b_ni): a per-example gradient dy [N] times a pointwise factor, in the
/// shape of `a`.
fn per_example_grad(dy: &Tensor, a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32 + Copy) -> Tensor {
    let n = a.shape()[0];
    let d = a.len() / n.max(1);
    let (av, bv, dy) = (contiguous(a), contiguous(b), contiguous(dy));
    let mut out = vec![0.0f32; a.len()];
    if d > 0 {
        for (r, row) in out.chunks_exact_mut(d).enumerate() {
            let (ar, br, dyr) = (&av[r * d..(r + 1) * d], &bv[r * d..(r + 1) * d], dy[r]);
            loops::map2(
                ar,
                br,
                row,
                #[inline(always)]
                |a, b| dyr * f(a, b),
            );
        }
    }
    Tensor::from_shape_vec(a.raw_dim(), out).expect("shape of a")
}

impl Tape<'_> {
    /// Negative Bernoulli log-likelihood on logits, per example:
    /// y_n = Σ_i softplus(l_ni) − x_ni·l_ni  (= BCE(σ(l), x) without ever forming σ(l)),
    /// finite for any finite logit.
    #[track_caller]
    pub fn bce_with_logits(&mut self, logits: Var, target: Var) -> Var {
        check_constant_target("bce_with_logits", self, target);
        let (l, x) = (self.value(logits), self.value(target));
        check_same("bce_with_logits", l, x);
        let y = per_example_sum(l, x, bernoulli_nll);
        self.push(y, Op::BceWithLogits { logits, target })
    }

    /// Negative Gaussian log-likelihood with fixed σ, per example, normalizing constant
    /// included: y_n = Σ_i (x_ni − m_ni)² / (2σ²) + ln σ + ½ ln 2π.
    #[track_caller]
    pub fn gaussian_nll(&mut self, mean: Var, target: Var, sigma: f32) -> Var {
        assert!(sigma > 0.0 && sigma.is_finite(), "gaussian_nll: sigma must be positive, found {sigma}");
        check_constant_target("gaussian_nll", self, target);
        let (m, x) = (self.value(mean), self.value(target));
        check_same("gaussian_nll", m, x);
        let (inv_two_var, log_norm) = (1.0 / (2.0 * sigma * sigma), sigma.ln() + HALF_LN_2PI);
        let y = per_example_sum(m, x, |m, x| (x - m) * (x - m) * inv_two_var + log_norm);
        self.push(y, Op::GaussianNll { mean, target, sigma })
    }

    /// KL( N(mu, exp(logvar)) ‖ N(0, I) ) per example, in closed form:
    /// y_n = −½ Σ_j (1 + logvar_nj − mu_nj² − exp(logvar_nj)).
    #[track_caller]
    pub fn kl_std_normal(&mut self, mu: Var, logvar: Var) -> Var {
        let (m, lv) = (self.value(mu), self.value(logvar));
        check_same("kl_std_normal", m, lv);
        let y = per_example_sum(m, lv, |mu, lv| -0.5 * (1.0 + lv - mu * mu - lv.exp()));
        self.push(y, Op::KlStdNormal { mu, logvar })
    }
}

/// The 256 levels of an 8-bit pixel are k/255, k = 0 … 255; each owns a bin of this width.
pub const BIN: f32 = 1.0 / 255.0;

impl Tape<'_> {
    /// Negative log-likelihood of 8-bit pixels under the discretized logistic (Kingma et al.
    /// 2016, Salimans et al. 2017), per example: pixel x = k/255 has the probability mass the
    /// logistic of mean m and scale e^s puts on its bin [x − ½/255, x + ½/255], the first bin
    /// taking everything below and the last everything above:
    ///
    /// ```text
    ///   a = (x − m + ½/255)·e^−s,  b = (x − m − ½/255)·e^−s,  Δ = a − b = e^−s/255
    ///   k = 0:       log P = log σ(a)                      = −softplus(−a)
    ///   k = 255:     log P = log(1 − σ(b))                 = −softplus(b)
    ///   otherwise:   log P = log(σ(a) − σ(b))              = −softplus(−a) − softplus(b) + ln(1 − e^−Δ)
    /// ```
    ///
    /// The last line is exact (σ(a) − σ(b) = σ(a)·σ(−b)·(1 − e^−Δ)), so no difference of two
    /// nearly equal probabilities is ever formed: finite for every scale e^s from far below a
    /// bin (a mass near 0 or 1) to far above it (a mass near Δ·density), where PixelCNN++'s
    /// subtraction needs its mid-bin fallback. y_n = −Σ_i log P_ni, in nats.
    ///
    /// # Panics
    /// If the shapes differ, or the target needs a gradient.
    #[track_caller]
    pub fn dlogistic_nll(&mut self, mean: Var, log_scale: Var, target: Var) -> Var {
        check_constant_target("dlogistic_nll", self, target);
        let (m, s, x) = (self.value(mean), self.value(log_scale), self.value(target));
        check_same("dlogistic_nll", m, x);
        check_same("dlogistic_nll", s, x);
        let n = m.shape()[0];
        let d = m.len() / n.max(1);
        let (m, s, x) = (contiguous(m), contiguous(s), contiguous(x));
        // One buffer of D terms, reused row after row (as `per_example_sum` does).
        let mut terms = vec![0.0f32; d];
        let y: Vec<f32> = (0..n)
            .map(|r| {
                let row = r * d..(r + 1) * d;
                let inputs = m[row.clone()].iter().zip(&s[row.clone()]).zip(&x[row]);
                for (t, ((&m, &s), &x)) in terms.iter_mut().zip(inputs) {
                    *t = dlogistic(m, s, x).0;
                }
                sum_f64(&terms) as f32
            })
            .collect();
        let y = Tensor::from_shape_vec(vec![n], y).expect("[N]");
        self.push(y, Op::DLogisticNll { mean, log_scale, target })
    }
}

impl Tape<'_> {
    /// log P(x | m, e^s) of each value under the discretized logistic, the terms that
    /// [`Tape::dlogistic_nll`] sums, in the shape of its inputs: what a mixture of them
    /// (`vae`'s `--mixtures`) combines with its weights before summing.
    ///
    /// # Panics
    /// If the shapes differ, or the target needs a gradient.
    #[track_caller]
    pub fn dlogistic_log_prob(&mut self, mean: Var, log_scale: Var, target: Var) -> Var {
        check_constant_target("dlogistic_log_prob", self, target);
        let (m, s, x) = (self.value(mean), self.value(log_scale), self.value(target));
        check_same("dlogistic_log_prob", m, x);
        check_same("dlogistic_log_prob", s, x);
        let y = ndarray::Zip::from(m).and(s).and(x).map_collect(|&m, &s, &x| -dlogistic(m, s, x).0);
        self.push(y, Op::DLogisticLogProb { mean, log_scale, target })
    }
}

/// y = log P(x | m, e^s) per value  ⇒  dm = −dy · ∂m,  ds = −dy · ∂s (the derivatives of −log P,
/// [`dlogistic`])
pub(crate) fn dlogistic_log_prob_backward(
    mean: &Tensor,
    log_scale: &Tensor,
    target: &Tensor,
    dy: &Tensor,
) -> (Tensor, Tensor) {
    let grads = ndarray::Zip::from(mean).and(log_scale).and(target).and(dy).map_collect(|&m, &s, &x, &d| {
        let (_, gm, gs) = dlogistic(m, s, x);
        (-d * gm, -d * gs)
    });
    (grads.mapv(|g| g.0), grads.mapv(|g| g.1))
}

/// One pixel's −log P under the discretized logistic and its two derivatives, (−log P,
/// ∂/∂m, ∂/∂s), from the terms of [`Tape::dlogistic_nll`] (∂a/∂m = ∂b/∂m = −e^−s, ∂a/∂s = −a,
/// ∂b/∂s = −b, ∂Δ/∂s = −Δ, and d softplus(u)/du = σ(u)):
///
/// ```text
///   k = 0:       −log P = softplus(−a)       ∂m = e^−s·σ(−a)                 ∂s = a·σ(−a)
///   k = 255:     −log P = softplus(b)        ∂m = −e^−s·σ(b)                 ∂s = −b·σ(b)
///   otherwise:   ∂m = e^−s·(σ(−a) − σ(b))    ∂s = a·σ(−a) − b·σ(b) + Δ/(e^Δ − 1)
/// ```
pub fn dlogistic(m: f32, s: f32, x: f32) -> (f32, f32, f32) {
    let inv = (-s).exp();
    let (a, b) = (inv * (x - m + 0.5 * BIN), inv * (x - m - 0.5 * BIN));
    if x < 0.5 * BIN {
        let sa = sigmoid(-a);
        (softplus(-a), inv * sa, a * sa)
    } else if x > 1.0 - 0.5 * BIN {
        let sb = sigmoid(b);
        (softplus(b), -inv * sb, -b * sb)
    } else {
        let delta = inv * BIN;
        let (sa, sb) = (sigmoid(-a), sigmoid(b));
        let nll = softplus(-a) + softplus(b) - (-(-delta).exp_m1()).ln();
        let ds = a * sa - b * sb + if delta > 0.0 { delta / delta.exp_m1() } else { 1.0 };
        (nll, inv * (sa - sb), ds)
    }
}

/// y_n = −Σ_i log P(x_ni | m_ni, s_ni)  ⇒  dm_ni = dy_n · ∂m,  ds_ni = dy_n · ∂s ([`dlogistic`])
pub(crate) fn dlogistic_nll_backward(
    mean: &Tensor,
    log_scale: &Tensor,
    target: &Tensor,
    dy: &Tensor,
) -> (Tensor, Tensor) {
    let n = mean.shape()[0];
    let d = mean.len() / n.max(1);
    let (m, s, x, dy) = (contiguous(mean), contiguous(log_scale), contiguous(target), contiguous(dy));
    let (mut dm, mut ds) = (vec![0.0f32; m.len()], vec![0.0f32; m.len()]);
    for i in 0..m.len() {
        let (_, gm, gs) = dlogistic(m[i], s[i], x[i]);
        let dyn_ = dy[i / d.max(1)];
        dm[i] = dyn_ * gm;
        ds[i] = dyn_ * gs;
    }
    let shaped = |v| Tensor::from_shape_vec(mean.raw_dim(), v).expect("shape of mean");
    (shaped(dm), shaped(ds))
}

/// y_n = Σ_i softplus(l_ni) − x_ni·l_ni  ⇒  dl_ni = dy_n · (σ(l_ni) − x_ni)
pub(crate) fn bce_with_logits_backward(logits: &Tensor, target: &Tensor, dy: &Tensor) -> Tensor {
    per_example_grad(dy, logits, target, bernoulli_nll_dl)
}

/// One pixel's Bernoulli term on its logit, softplus(l) − x·l. Like every per-element function
/// that calls `fastmath`, it is `#[inline(always)]`, so that each SIMD level's loop compiles its
/// own copy (`kernels::loops`).
#[inline(always)]
fn bernoulli_nll(l: f32, x: f32) -> f32 {
    softplus(l) - x * l
}

/// ∂/∂l of [`bernoulli_nll`]: σ(l) − x.
#[inline(always)]
fn bernoulli_nll_dl(l: f32, x: f32) -> f32 {
    sigmoid(l) - x
}

/// y_n = Σ_i (x_ni − m_ni)²/(2σ²) + const  ⇒  dm_ni = dy_n · (m_ni − x_ni) / σ²
pub(crate) fn gaussian_nll_backward(mean: &Tensor, target: &Tensor, sigma: f32, dy: &Tensor) -> Tensor {
    let inv_var = 1.0 / (sigma * sigma);
    per_example_grad(dy, mean, target, |m, x| (m - x) * inv_var)
}

/// y_n = −½ Σ_j (1 + lv − mu² − e^lv)  ⇒  dmu = dy_n · mu,  dlogvar = dy_n · ½(e^lv − 1)
pub(crate) fn kl_std_normal_backward(mu: &Tensor, logvar: &Tensor, dy: &Tensor) -> (Tensor, Tensor) {
    let dmu = per_example_grad(dy, mu, mu, |m, _| m);
    let dlogvar = per_example_grad(dy, logvar, logvar, |lv, _| 0.5 * (lv.exp() - 1.0));
    (dmu, dlogvar)
}
