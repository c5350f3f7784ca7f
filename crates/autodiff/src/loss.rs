//! Fused losses of a VAE, one value per example.
//!
//! Shape legend
//! - N: batch, D: values per example (pixels: everything after the first axis), J: latent size
//! - `bce_with_logits`, `gaussian_nll`: logits / mean [N, …], target [N, …] → y [N]
//! - `kl_std_normal`: mu [N, J], logvar [N, J] → y [N]
//!
//! Each is a composition of primitives whose gradient simplifies once written out; the tests
//! check every fused op against the composition it replaces. Targets are data: they get no
//! gradient.

use ndarray::Zip;

use crate::elementwise::{map2, sigmoid, softplus};
use crate::tape::{Op, Tape, Tensor, Var};

/// ½ ln 2π, the normalizing constant of a unit Gaussian in nats.
pub const HALF_LN_2PI: f32 = 0.918_938_5;

#[track_caller]
fn check_same(op: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape(), "{op}: shapes differ: {:?} and {:?}", a.shape(), b.shape());
    assert!(a.ndim() >= 1, "{op}: inputs need a batch axis, found a scalar");
}

/// Σ over every axis but the first, per example, accumulated in f64: [N, …] → [N].
fn per_example_sum(n: usize, d: usize, values: impl Fn(usize, usize) -> f64) -> Tensor {
    Tensor::from_shape_fn(vec![n], |i| (0..d).map(|j| values(i[0], j)).sum::<f64>() as f32)
}

/// Views an [N, …] tensor as rows [N, D] (a no-copy reshape of a standard-layout array).
fn rows(x: &Tensor) -> ndarray::ArrayView2<'_, f32> {
    let n = x.shape()[0];
    x.view().into_shape_with_order((n, x.len() / n.max(1))).expect("standard layout")
}

/// dy [N] broadcast over the values of each example: [N] → [N, 1, …] matching `like`.
fn per_example_grad(dy: &Tensor, like: &Tensor) -> Tensor {
    let mut shape = vec![1; like.ndim()];
    shape[0] = dy.len();
    let d = dy.view().into_shape_with_order(shape).expect("[N]");
    d.broadcast(like.raw_dim()).expect("per-example broadcast").to_owned()
}

impl Tape<'_> {
    /// Negative Bernoulli log-likelihood on logits, per example:
    /// y_n = Σ_i softplus(l_ni) − x_ni·l_ni  (= BCE(σ(l), x) without ever forming σ(l)),
    /// finite for any finite logit.
    #[track_caller]
    pub fn bce_with_logits(&mut self, logits: Var, target: Var) -> Var {
        let (l, x) = (self.value(logits), self.value(target));
        check_same("bce_with_logits", l, x);
        let (l2, x2) = (rows(l), rows(x));
        let y = per_example_sum(l2.nrows(), l2.ncols(), |n, i| {
            let (l, x) = (l2[[n, i]], x2[[n, i]]);
            (softplus(l) - x * l) as f64
        });
        self.push(y, Op::BceWithLogits { logits, target })
    }

    /// Negative Gaussian log-likelihood with fixed σ, per example, normalizing constant
    /// included: y_n = Σ_i (x_ni − m_ni)² / (2σ²) + ln σ + ½ ln 2π.
    #[track_caller]
    pub fn gaussian_nll(&mut self, mean: Var, target: Var, sigma: f32) -> Var {
        assert!(sigma > 0.0 && sigma.is_finite(), "gaussian_nll: sigma must be positive, found {sigma}");
        let (m, x) = (self.value(mean), self.value(target));
        check_same("gaussian_nll", m, x);
        let (m2, x2) = (rows(m), rows(x));
        let (inv_two_var, log_norm) =
            (1.0 / (2.0 * sigma as f64 * sigma as f64), (sigma as f64).ln() + HALF_LN_2PI as f64);
        let y = per_example_sum(m2.nrows(), m2.ncols(), |n, i| {
            let r = (x2[[n, i]] - m2[[n, i]]) as f64;
            r * r * inv_two_var + log_norm
        });
        self.push(y, Op::GaussianNll { mean, target, sigma })
    }

    /// KL( N(mu, exp(logvar)) ‖ N(0, I) ) per example, in closed form:
    /// y_n = −½ Σ_j (1 + logvar_nj − mu_nj² − exp(logvar_nj)).
    #[track_caller]
    pub fn kl_std_normal(&mut self, mu: Var, logvar: Var) -> Var {
        let (m, lv) = (self.value(mu), self.value(logvar));
        check_same("kl_std_normal", m, lv);
        let (m2, lv2) = (rows(m), rows(lv));
        let y = per_example_sum(m2.nrows(), m2.ncols(), |n, j| {
            let (mu, lv) = (m2[[n, j]] as f64, lv2[[n, j]] as f64);
            -0.5 * (1.0 + lv - mu * mu - lv.exp())
        });
        self.push(y, Op::KlStdNormal { mu, logvar })
    }
}

/// y_n = Σ_i softplus(l_ni) − x_ni·l_ni  ⇒  dl_ni = dy_n · (σ(l_ni) − x_ni)
pub(crate) fn bce_with_logits_backward(logits: &Tensor, target: &Tensor, dy: &Tensor) -> Tensor {
    let mut dl = per_example_grad(dy, logits);
    Zip::from(&mut dl).and(logits).and(target).for_each(|d, &l, &x| *d *= sigmoid(l) - x);
    dl
}

/// y_n = Σ_i (x_ni − m_ni)²/(2σ²) + const  ⇒  dm_ni = dy_n · (m_ni − x_ni) / σ²
pub(crate) fn gaussian_nll_backward(mean: &Tensor, target: &Tensor, sigma: f32, dy: &Tensor) -> Tensor {
    let inv_var = 1.0 / (sigma * sigma);
    let mut dm = per_example_grad(dy, mean);
    Zip::from(&mut dm).and(mean).and(target).for_each(|d, &m, &x| *d *= (m - x) * inv_var);
    dm
}

/// y_n = −½ Σ_j (1 + lv − mu² − e^lv)  ⇒  dmu = dy_n · mu,  dlogvar = dy_n · ½(e^lv − 1)
pub(crate) fn kl_std_normal_backward(mu: &Tensor, logvar: &Tensor, dy: &Tensor) -> (Tensor, Tensor) {
    let d = per_example_grad(dy, mu);
    let dmu = map2(&d, mu, |d, m| d * m);
    let dlogvar = map2(&d, logvar, |d, lv| d * 0.5 * (lv.exp() - 1.0));
    (dmu, dlogvar)
}
