//! Times the thin-operand GEMM tiles (`vae_autodiff::kernels::gemm`), at every SIMD level this
//! CPU supports, against matrixmultiply (ndarray's `dot`) at the shapes our models multiply,
//! and checks that they agree bit for bit.
//!
//! RAYON_NUM_THREADS=1 cargo run --release --example thin_gemm
//!
//! Each line: M×K·K×N, the best of 5 timings of each (µs per product, GFLOP/s), their ratio.
//! "aᵀ" marks a left operand that is the transpose of a row-major array (a weight gradient's
//! xᵀ); the kernel declines those above 256 rows. A second table times dy·Wᵀ, whose right
//! operand the kernel first copies to rows (up to 24 rows of dy). A third times the products of
//! the conv model's layers (one group of 8 images) with the right operand handed over strip by
//! strip, as the implicit im2col does, against matrixmultiply on the whole matrix; the strips
//! here are copies of a stored matrix, so the line times the tiles and the strip buffer, not
//! the gathering of pixels.

use std::time::Instant;

use ndarray::Array2;
use vae_autodiff::kernels::gemm::{product_at, product_of_strips_at, Strips, THIN_ROWS, THIN_ROWS_STRIDED};
use vae_autodiff::kernels::Simd;

/// The best of 5 timings of `reps` calls of `f`, in seconds per call.
fn best_of_5(reps: usize, f: &dyn Fn()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    for level in [Simd::Avx2, Simd::Avx512] {
        if level.supported() {
            println!("== the {} tile", level.name());
            compare(level);
        } else {
            println!("== this CPU does not support {}: its tile is not timed", level.name());
        }
    }
}

/// Both tables for the tile of `level`.
fn compare(level: Simd) {
    // (M, K, N, a transposed): the Burda model's layers at 20 rows (VAE, k = 1), at 100 (IWAE,
    // k = 5), the default MLP's at 64 and 127, and weight gradients.
    let shapes = [
        (20, 200, 784, false),
        (20, 200, 200, false),
        (20, 200, 100, false),
        (20, 50, 200, false),
        (20, 784, 200, false),
        (64, 400, 784, false),
        (100, 200, 784, false),
        (100, 200, 200, false),
        (127, 400, 784, false),
        (50, 20, 200, true),
        (100, 20, 200, true),
        (200, 20, 200, true),
        (200, 20, 100, true),
        (100, 20, 50, true),
        (400, 64, 784, true),
        (784, 64, 400, true),
        (100, 1000, 200, true),
        (200, 1000, 200, true),
        (200, 1000, 784, true),
    ];
    println!(
        "in training, left operands of fewer than {THIN_ROWS} rows take the thin kernel ({} when their rows are strided)",
        THIN_ROWS_STRIDED + 1
    );
    for &(m, k, n, transposed) in &shapes {
        let pattern = |i: usize, j: usize| ((i * 31 + j * 17) % 23) as f32 / 7.0 - 1.3;
        let stored = if transposed {
            Array2::from_shape_fn((k, m), |(i, j)| pattern(j, i))
        } else {
            Array2::from_shape_fn((m, k), |(i, j)| pattern(i, j))
        };
        let a = if transposed { stored.t() } else { stored.view() };
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 13 + j * 29) % 19) as f32 / 5.0 - 1.7);
        let Some(ours) = product_at(level, a, b.view()) else {
            println!("{m}×{k}·{k}×{n}{}: declined, left to matrixmultiply", if transposed { " (aᵀ)" } else { "" });
            continue;
        };
        let theirs = a.dot(&b);
        let same = ours.iter().zip(&theirs).all(|(x, y)| x.to_bits() == y.to_bits());
        let reps = (2e8 / (2.0 * (m * k * n) as f64)) as usize + 1;
        let t_theirs = best_of_5(reps, &|| {
            std::hint::black_box(a.dot(&b));
        });
        let t_ours = best_of_5(reps, &|| {
            std::hint::black_box(product_at(level, a, b.view()));
        });
        let gflops = |t: f64| 2.0 * (m * k * n) as f64 / t / 1e9;
        println!(
            "{m}×{k}·{k}×{n}{}: matrixmultiply {:.1} µs ({:.0} GFLOP/s), thin kernel {:.1} µs ({:.0} GFLOP/s), ratio {:.2}, same bits: {same}",
            if transposed { " (aᵀ)" } else { "" },
            t_theirs * 1e6,
            gflops(t_theirs),
            t_ours * 1e6,
            gflops(t_ours),
            t_ours / t_theirs
        );
    }
    // dy·Wᵀ of a backward pass: W [in, out] row-major, so the right operand's columns are
    // contiguous; the thin kernel copies it to rows first (up to THIN_ROWS_COPY rows of dy).
    println!("dy·Wᵀ (the right operand a transposed row-major W), copied to rows for the thin kernel:");
    for &(m, out, inp) in &[
        (20, 784, 200),
        (20, 200, 200),
        (20, 50, 200),
        (32, 784, 200),
        (32, 200, 200),
        (64, 784, 400),
        (64, 40, 400),
        (64, 400, 20),
    ] {
        let w = Array2::from_shape_fn((inp, out), |(i, j)| ((i * 13 + j * 29) % 19) as f32 / 5.0 - 1.7);
        let dy = Array2::from_shape_fn((m, out), |(i, j)| ((i * 31 + j * 17) % 23) as f32 / 7.0 - 1.3);
        let reps = (2e8 / (2.0 * (m * out * inp) as f64)) as usize + 1;
        let t_theirs = best_of_5(reps, &|| {
            std::hint::black_box(dy.dot(&w.t()));
        });
        // The kernel's own copy to rows and its tile, as `product` does for up to
        // THIN_ROWS_COPY rows (above that it declines, and the line says so).
        let Some(y) = product_at(level, dy.view(), w.t()) else {
            println!("{m}×{out}·{out}×{inp}: declined (more than THIN_ROWS_COPY rows)");
            continue;
        };
        let t_ours = best_of_5(reps, &|| {
            std::hint::black_box(product_at(level, dy.view(), w.t()));
        });
        let same = y.iter().zip(&dy.dot(&w.t())).all(|(x, y)| x.to_bits() == y.to_bits());
        println!(
            "{m}×{out}·{out}×{inp}: matrixmultiply {:.1} µs, copy + thin kernel {:.1} µs, ratio {:.2}, same bits: {same}",
            t_theirs * 1e6,
            t_ours * 1e6,
            t_ours / t_theirs
        );
    }
    strips(level);
}

/// A stored row-major matrix handed to the product strip by strip.
struct Stored(Array2<f32>);

impl Strips for Stored {
    fn dim(&self) -> (usize, usize) {
        self.0.dim()
    }
    fn fill(&self, k0: usize, kc: usize, j0: usize, cols: usize, out: &mut [f32]) {
        assert_eq!(out.len(), kc * cols, "a strip of kc·cols values");
        let n = self.0.ncols();
        let values = self.0.as_slice().expect("standard layout");
        for (t, row) in out.chunks_exact_mut(cols).enumerate() {
            row.copy_from_slice(&values[(k0 + t) * n + j0..][..cols]);
        }
    }
}

/// The third table: products of strips at the conv model's shapes.
fn strips(level: Simd) {
    println!("products of strips (the convolutions' implicit GEMM) against matrixmultiply on the stored matrix:");
    // (M, K, N, what): W·cols and dY·colsᵀ of the two convolutions, W·im2col(dy) and
    // X·im2col(dy)ᵀ of the two transposed convolutions, for a group of 8 images.
    for &(m, k, n, what) in &[
        (32, 16, 1568, "conv 1→32 forward"),
        (32, 1568, 16, "conv 1→32 dW"),
        (64, 512, 392, "conv 32→64 forward"),
        (64, 392, 512, "conv 32→64 dW"),
        (64, 512, 392, "conv_transpose 64→32 dx"),
        (32, 1568, 16, "conv_transpose 32→1 dW"),
    ] {
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 23) as f32 / 7.0 - 1.3);
        let b = Stored(Array2::from_shape_fn((k, n), |(i, j)| ((i * 13 + j * 29) % 19) as f32 / 5.0 - 1.7));
        let reps = (2e8 / (2.0 * (m * k * n) as f64)) as usize + 1;
        let t_theirs = best_of_5(reps, &|| {
            std::hint::black_box(a.dot(&b.0));
        });
        let t_ours = best_of_5(reps, &|| {
            std::hint::black_box(product_of_strips_at(level, a.view(), &b));
        });
        let y = product_of_strips_at(level, a.view(), &b);
        let same = y.iter().zip(&a.dot(&b.0)).all(|(x, y)| x.to_bits() == y.to_bits());
        let gflops = |t: f64| 2.0 * (m * k * n) as f64 / t / 1e9;
        println!(
            "{m}×{k}·{k}×{n} ({what}): matrixmultiply {:.1} µs ({:.0} GFLOP/s), strips {:.1} µs ({:.0} GFLOP/s), ratio {:.2}, same bits: {same}",
            t_theirs * 1e6,
            gflops(t_theirs),
            t_ours * 1e6,
            gflops(t_ours),
            t_ours / t_theirs
        );
    }
}
