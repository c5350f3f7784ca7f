//! Two classical density estimators on binarized MNIST, as baselines for the VAE's −log p(x):
//! a kernel density estimate with Bernoulli kernels and a mixture of Bernoullis fitted by EM.
//! Both give exact log-likelihoods (no bound), in nats per test image.
//!
//! The images are binarized once (each pixel white with its grey value as probability, from a
//! fixed seed), training and test alike; 50,000 training images fit each model, the other
//! 10,000 choose its one knob (the kernel's flip probability ε, the mixture's number of EM
//! steps is fixed), and the 10,000 test images are scored.
//!
//! ```text
//!   KDE:      p(x) = (1/N) Σ_n Π_d ε^[x_d ≠ x_nd] (1 − ε)^[x_d = x_nd]
//!             log p(x) = logsumexp_n [ h_n ln ε + (D − h_n) ln(1 − ε) ] − ln N,  h_n the Hamming distance
//!   mixture:  p(x) = Σ_k π_k Π_d θ_kd^x_d (1 − θ_kd)^(1 − x_d),  fitted by EM
//! ```
//!
//! ```sh
//! cargo run --release --example density_baselines -- 10,100     # mixtures of 10 and 100 components
//! ```

use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use vae::data::Dataset;

/// D, the pixels of an image.
const D: usize = 784;
/// u64 words holding an image's bits.
const WORDS: usize = D.div_ceil(64);

/// Images binarized once from `rng`: the bits (for Hamming distances) and 0/1 floats (for EM).
fn binarize(images: &[u8], rng: &mut StdRng) -> (Vec<[u64; WORDS]>, Array2<f32>) {
    let n = images.len() / D;
    let mut bits = vec![[0u64; WORDS]; n];
    let mut floats = Array2::zeros((n, D));
    for (i, img) in images.chunks_exact(D).enumerate() {
        for (d, &p) in img.iter().enumerate() {
            if rng.random::<f32>() < p as f32 / 255.0 {
                bits[i][d / 64] |= 1 << (d % 64);
                floats[[i, d]] = 1.0;
            }
        }
    }
    (bits, floats)
}

/// log Σ exp(v).
fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Mean −log p(x) of the KDE with centres `centres` and flip probability ε over `points`.
fn kde_nll(centres: &[[u64; WORDS]], points: &[[u64; WORDS]], eps: f64) -> f64 {
    let (ln_e, ln_1e, ln_n) = (eps.ln(), (1.0 - eps).ln(), (centres.len() as f64).ln());
    let total: f64 = points
        .par_iter()
        .map(|x| {
            let terms: Vec<f64> = centres
                .iter()
                .map(|c| {
                    let h: u32 = x.iter().zip(c).map(|(a, b)| (a ^ b).count_ones()).sum();
                    h as f64 * ln_e + (D as f64 - h as f64) * ln_1e
                })
                .collect();
            ln_n - log_sum_exp(&terms)
        })
        .sum();
    total / points.len() as f64
}

/// log p(x_n, k) = log π_k + Σ_d [x log θ + (1 − x) log(1 − θ)] for every image and component,
/// through two matrix products. [N, K].
fn joint(x: &Array2<f32>, log_pi: &Array1<f64>, theta: &Array2<f64>) -> Array2<f64> {
    let x = x.mapv(f64::from);
    let (lt, l1t) = (theta.mapv(f64::ln), theta.mapv(|t| (1.0 - t).ln()));
    let ones = Array2::<f64>::ones(x.raw_dim());
    let mut j = x.dot(&lt.t()) + (ones - &x).dot(&l1t.t());
    j += &log_pi.view().insert_axis(Axis(0));
    j
}

/// Mean −log p(x) under the mixture.
fn mixture_nll(x: &Array2<f32>, log_pi: &Array1<f64>, theta: &Array2<f64>) -> f64 {
    let j = joint(x, log_pi, theta);
    -j.outer_iter().map(|row| log_sum_exp(row.as_slice().expect("a row"))).sum::<f64>() / x.nrows() as f64
}

/// A mixture of `k` Bernoulli products fitted by `steps` EM steps from random training images
/// (softened towards ½); θ kept in [1e-4, 1 − 1e-4].
fn fit_mixture(x: &Array2<f32>, k: usize, steps: usize, rng: &mut StdRng) -> (Array1<f64>, Array2<f64>) {
    let n = x.nrows();
    let mut theta = Array2::from_shape_fn((k, D), |(c, d)| {
        let i = (c * 7919 + 13) % n;
        0.25 + 0.5 * x[[i, d]] as f64 + 0.05 * (rng.random::<f64>() - 0.5)
    });
    let mut log_pi = Array1::from_elem(k, -(k as f64).ln());
    for _ in 0..steps {
        // E: responsibilities r_nk = p(k | x_n).
        let mut r = joint(x, &log_pi, &theta);
        for mut row in r.outer_iter_mut() {
            let lse = log_sum_exp(row.as_slice().expect("a row"));
            row.mapv_inplace(|v| (v - lse).exp());
        }
        // M: π_k = mean of r_k, θ_k = the r-weighted mean image.
        let weight = r.sum_axis(Axis(0));
        log_pi = weight.mapv(|w| (w / n as f64).max(1e-300).ln());
        theta = r.t().dot(&x.mapv(f64::from));
        for (mut row, &w) in theta.outer_iter_mut().zip(&weight) {
            row.mapv_inplace(|v| (v / w.max(1e-12)).clamp(1e-4, 1.0 - 1e-4));
        }
    }
    (log_pi, theta)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ks: Vec<usize> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "10,100".into())
        .split(',')
        .map(|k| k.parse())
        .collect::<Result<_, _>>()?;
    let data = Dataset::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"))?;
    let rng = &mut StdRng::seed_from_u64(2026);
    let (train_bits, train_x) = binarize(&data.train.images, rng);
    let (test_bits, test_x) = binarize(&data.test.images, rng);
    let (fit, valid) = (50_000, 60_000);

    let t0 = std::time::Instant::now();
    let mut best = (f64::INFINITY, 0.0);
    for eps in [0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2] {
        let nll = kde_nll(&train_bits[..fit], &train_bits[fit..valid], eps);
        println!("KDE ε = {eps}: validation −log p(x) {nll:.2} nats");
        if nll < best.0 {
            best = (nll, eps);
        }
    }
    let test = kde_nll(&train_bits[..fit], &test_bits, best.1);
    println!(
        "KDE, ε = {} chosen on validation: test −log p(x) {test:.2} nats ({:.0} s)",
        best.1,
        t0.elapsed().as_secs_f64()
    );

    for k in ks {
        let t0 = std::time::Instant::now();
        let fit_x = train_x.slice(ndarray::s![..fit, ..]).to_owned();
        let (log_pi, theta) = fit_mixture(&fit_x, k, 30, rng);
        let valid_x = train_x.slice(ndarray::s![fit..valid, ..]).to_owned();
        let (v, t) = (mixture_nll(&valid_x, &log_pi, &theta), mixture_nll(&test_x, &log_pi, &theta));
        println!(
            "mixture of {k} Bernoulli products, 30 EM steps: validation {v:.2}, test −log p(x) {t:.2} nats ({:.0} s)",
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
