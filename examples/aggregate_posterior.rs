//! How much of the KL term is information about the image? The aggregate posterior
//! q(z) = (1/N) Σₙ q(z|xₙ) of a trained model, measured (book, chapter 8).
//!
//! vae-cli latent --checkpoint runs/mlp-z20-seed1/model.safetensors --csv latent.csv
//! cargo run --release --example aggregate_posterior -- latent.csv
//!
//! The CSV holds mu and logvar of every test image. Over those N images the average KL term
//! splits exactly into two parts,
//!
//!   (1/N) Σₙ KL(q(z|xₙ) ‖ p(z)) = I(x; z) + KL(q(z) ‖ p(z)),
//!
//! the mutual information between image and code under the encoder (at most ln N, since the
//! code can at best tell the N images apart) and how far the aggregate posterior is from the
//! prior. The first is computed in closed form; I(x; z) = E[log q(z|x) − log q(z)] is estimated
//! from 4,000 pairs (an image drawn at random, then z from its posterior), with log q(z) summed
//! over all N posteriors; the second is their difference. Then the prior's side: for z drawn
//! from p(z), the share where q(z) < p(z)/100, regions the decoder was almost never trained on.
//!
//! Last, how much of the class the code holds: the share of test images whose label is that
//! of the nearest other image's posterior mean (1-nearest-neighbour, leave one out; chance is
//! about 10%). A conditional VAE's decoder is given y, so its z need not hold it. (The mutual
//! information I(z; y) estimated like I(x; z) says nothing here: with posteriors this narrow, z
//! identifies its image and so its class, and the estimate sits at H(y).)

use std::error::Error;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// ½ ln 2π
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// Every test image's posterior N(mu, diag(exp(logvar))).
struct Posteriors {
    dim: usize,
    labels: Vec<usize>,
    mu: Vec<f64>,
    logvar: Vec<f64>,
}

impl Posteriors {
    /// Reads `label,mu1..muJ,logvar1..logvarJ` rows as written by `vae-cli latent --csv`.
    fn read(path: &str) -> Result<Self, Box<dyn Error>> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let mut lines = text.lines();
        let header = lines.next().ok_or("an empty file")?;
        let dim = header.split(',').filter(|h| h.starts_with("mu")).count();
        let (mut labels, mut mu, mut logvar) = (Vec::new(), Vec::new(), Vec::new());
        for (i, line) in lines.enumerate() {
            let (label, rest) = line.split_once(',').ok_or_else(|| format!("row {}: no label", i + 2))?;
            labels.push(label.parse()?);
            let v: Vec<f64> = rest.split(',').map(str::parse).collect::<Result<_, _>>()?;
            if v.len() != 2 * dim {
                return Err(format!("row {}: {} numbers, expected {}", i + 2, v.len(), 2 * dim).into());
            }
            mu.extend_from_slice(&v[..dim]);
            logvar.extend_from_slice(&v[dim..]);
        }
        Ok(Posteriors { dim, labels, mu, logvar })
    }

    fn len(&self) -> usize {
        self.mu.len() / self.dim
    }

    /// log q(z|xₙ)
    fn log_q(&self, n: usize, z: &[f64]) -> f64 {
        let (mu, lv) = (&self.mu[n * self.dim..][..self.dim], &self.logvar[n * self.dim..][..self.dim]);
        z.iter().zip(mu).zip(lv).map(|((z, m), lv)| -HALF_LN_2PI - 0.5 * lv - 0.5 * (z - m).powi(2) * (-lv).exp()).sum()
    }

    /// log q(z) = log (1/N) Σₙ q(z|xₙ), a log-sum-exp over every posterior.
    fn log_aggregate(&self, z: &[f64]) -> f64 {
        let logs: Vec<f64> = (0..self.len()).map(|n| self.log_q(n, z)).collect();
        let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + (logs.iter().map(|l| (l - top).exp()).sum::<f64>() / logs.len() as f64).ln()
    }

    /// The share of images whose nearest other posterior mean has their label.
    fn nearest_mean_accuracy(&self) -> f64 {
        let d = self.dim;
        let mu = |n: usize| &self.mu[n * d..(n + 1) * d];
        let right = (0..self.len())
            .filter(|&i| {
                let dist = |j: usize| mu(i).iter().zip(mu(j)).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
                let nearest = (0..self.len()).filter(|&j| j != i).min_by(|&a, &b| dist(a).total_cmp(&dist(b)));
                nearest.is_some_and(|j| self.labels[j] == self.labels[i])
            })
            .count();
        right as f64 / self.len() as f64
    }

    /// z ~ q(z|xₙ)
    fn sample(&self, n: usize, rng: &mut StdRng) -> Vec<f64> {
        (0..self.dim)
            .map(|j| {
                let eps: f64 = rng.sample(StandardNormal);
                self.mu[n * self.dim + j] + (0.5 * self.logvar[n * self.dim + j]).exp() * eps
            })
            .collect()
    }

    /// The average closed-form KL(q(z|xₙ) ‖ N(0, I)).
    fn mean_kl(&self) -> f64 {
        let kl: f64 = self.mu.iter().zip(&self.logvar).map(|(m, lv)| -0.5 * (1.0 + lv - m * m - lv.exp())).sum();
        kl / self.len() as f64
    }
}

/// log N(z; 0, I)
fn log_prior(z: &[f64]) -> f64 {
    z.iter().map(|z| -HALF_LN_2PI - 0.5 * z * z).sum()
}

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args().nth(1).ok_or("usage: aggregate_posterior LATENT.csv (from vae-cli latent --csv)")?;
    let q = Posteriors::read(&path)?;
    let (n, pairs) = (q.len(), 4000);
    let mut rng = StdRng::seed_from_u64(1);
    let info: Vec<f64> = (0..pairs)
        .map(|_| {
            let i = rng.random_range(0..n);
            let z = q.sample(i, &mut rng);
            q.log_q(i, &z) - q.log_aggregate(&z)
        })
        .collect();
    let mean_sd = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        (mean, (var / v.len() as f64).sqrt())
    };
    let (mean, se) = mean_sd(&info);
    let kl = q.mean_kl();
    println!("{n} posteriors of {} dimensions", q.dim);
    println!("average KL(q(z|x) ‖ p(z)):      {kl:.2} nats (closed form)");
    println!(
        "I(x; z):                        {mean:.2} ± {se:.2} nats ({pairs} pairs; at most ln N = {:.2})",
        (n as f64).ln()
    );
    println!("KL(q(z) ‖ p(z)), the difference: {:.2} nats", kl - mean);
    let thin = (0..pairs)
        .filter(|_| {
            let z: Vec<f64> = (0..q.dim).map(|_| rng.sample(StandardNormal)).collect();
            q.log_aggregate(&z) < log_prior(&z) - 100f64.ln()
        })
        .count();
    println!("prior draws where q(z) < p(z)/100: {thin} of {pairs} ({:.1}%)", 100.0 * thin as f64 / pairs as f64);
    println!("the class read from z (nearest other mean): {:.1}% of the images", 100.0 * q.nearest_mean_accuracy());
    Ok(())
}
