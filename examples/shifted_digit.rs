//! Why squared distance in pixel space misjudges images (Doersch's shifted-digit argument,
//! chapter 1 of docs/book): a digit moved by one pixel is, pixel by pixel, about as far from
//! itself as a different image of the same digit, so a Gaussian p(x|z) = N(x; f(z), σ²I) that
//! scores the shifted copy as likely must score the other digit as likely too.
//!
//! For each of the first 100 MNIST test images x (grey values in [0, 1]) it prints the medians
//! of ‖x − shift(x)‖² for shifts by one and two pixels, and of the squared distance to the
//! nearest other image of the same label and of another label among the first 2,000 test
//! images; and what a Gaussian with σ = 0.1 makes of those distances, −‖d‖²/(2σ²) nats.
//!
//! ```sh
//! cargo run --release --example shifted_digit
//! ```

use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::data::{Binarize, Dataset};

/// x shifted right by `s` pixels, zeros entering on the left (28×28).
fn shift_right(x: &[f32], side: usize, s: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for r in 0..side {
        for c in s..side {
            out[r * side + c] = x[r * side + c - s];
        }
    }
    out
}

fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&u, &v)| ((u - v) as f64).powi(2)).sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Dataset::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"))?;
    let (n, pool) = (100, 2000);
    let idx: Vec<usize> = (0..pool).collect();
    let x = data.test.batch(&idx, Binarize::None, &mut StdRng::seed_from_u64(0));
    let x = x.as_slice().expect("standard layout");
    let (d, side) = (data.test.pixels(), data.test.cols);
    let img = |i: usize| &x[i * d..(i + 1) * d];
    let label = |i: usize| data.test.labels[i];
    let (mut s1, mut s2, mut same, mut other) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        s1.push(dist2(img(i), &shift_right(img(i), side, 1)));
        s2.push(dist2(img(i), &shift_right(img(i), side, 2)));
        let nearest = |want_same: bool| {
            (0..pool)
                .filter(|&j| j != i && (label(j) == label(i)) == want_same)
                .map(|j| dist2(img(i), img(j)))
                .fold(f64::INFINITY, f64::min)
        };
        same.push(nearest(true));
        other.push(nearest(false));
    }
    let sigma2 = 0.1f64 * 0.1;
    println!("median over the first {n} test images of the squared pixel distance ‖x − x'‖²:");
    for (what, v) in [
        ("x' = x shifted right by one pixel", s1),
        ("x' = x shifted right by two pixels", s2),
        ("x' = nearest other image, same digit", same),
        ("x' = nearest image of another digit", other),
    ] {
        let m = median(v);
        println!("  {what:<40} {m:7.1}   Gaussian σ = 0.1: −‖d‖²/2σ² = {:8.0} nats", -m / (2.0 * sigma2));
    }
    Ok(())
}
