//! Draws im2col's index map, computed by the engine's own convolution, and times the
//! convolution as a product against the direct six-fold loop (book, chapter 7).
//!
//! cargo run --release --example im2col_map -- im2col.png
//!
//! **The map.** A 5×5 image whose pixel values are their own numbers (1 to 25), a 3×3 kernel,
//! stride 2, padding 1: a 3×3 output. Row r = (ki, kj) of the im2col matrix is what a
//! convolution with the one-hot kernel [ki, kj] reads, so one `conv2d` with the 9 one-hot
//! kernels as its 9 output channels returns the whole matrix, each entry the number of the
//! pixel it was read from (0 for the padding). The picture shows the padded image (left) and
//! the matrix (right), every pixel in its own colour and the padding grey: a colour that
//! appears in several columns is a pixel under several windows.
//!
//! **The measurement.** The conv model's second layer (32 → 64 channels, 4×4, stride 2, on
//! 14×14 maps, a batch of 128): `conv2d` (im2col + GEMM) against `conv2d_naive`, the direct
//! loop it is tested against, best of 3 each, and their largest difference.

use std::time::Instant;

use ndarray::{Array4, ArrayD};
use vae_autodiff::conv::conv2d_naive;
use vae_autodiff::gradcheck::random_tensor;
use vae_autodiff::{ConvGeom, Tape};

const SIZE: usize = 5;
const K: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "im2col.png".to_string());
    let geom = ConvGeom::new(2, 1);
    let cols = index_map(geom);
    println!("im2col of a {SIZE}×{SIZE} image, {K}×{K} kernel, stride 2, padding 1 (0 = padding):");
    println!("row (ki, kj) | one column per output pixel (i, j)");
    for (r, row) in cols.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|&v| format!("{v:2}")).collect();
        println!("     ({}, {})  | {}", r / K, r % K, cells.join(" "));
    }
    draw(&cols, &out)?;
    println!("wrote {out}");
    time_against_the_loop();
    Ok(())
}

/// cols[(ki, kj)][(i, j)]: the number of the pixel the window of output (i, j) reads at
/// kernel position (ki, kj), from one `conv2d` with the K·K one-hot kernels.
fn index_map(geom: ConvGeom) -> Vec<Vec<u32>> {
    let x: ArrayD<f32> = Array4::from_shape_fn((1, 1, SIZE, SIZE), |(_, _, i, j)| (i * SIZE + j + 1) as f32).into_dyn();
    let w: ArrayD<f32> =
        Array4::from_shape_fn((K * K, 1, K, K), |(r, _, ki, kj)| if r == ki * K + kj { 1.0 } else { 0.0 }).into_dyn();
    let mut tape = Tape::new();
    let (xv, wv) = (tape.constant(x), tape.param(&w));
    let y = tape.conv2d(xv, wv, None, geom); // [1, K·K, H_o, W_o]
    let y = tape.value(y);
    let (rows, outputs) = (y.shape()[1], y.shape()[2] * y.shape()[3]);
    let flat: Vec<u32> = y.iter().map(|&v| v as u32).collect();
    (0..rows).map(|r| flat[r * outputs..(r + 1) * outputs].to_vec()).collect()
}

/// A colour for pixel number n (1 to 25), or grey for the padding (0).
fn colour(n: u32) -> [u8; 3] {
    if n == 0 {
        return [200, 200, 200];
    }
    // Hues around the circle, with alternate pixels darker so that neighbours differ.
    let h = (n as f32 - 1.0) / (SIZE * SIZE) as f32 * 5.2; // not all the way round: 25 is not 1
    let v = if n.is_multiple_of(2) { 0.75 } else { 1.0 };
    let f = |k: f32| {
        let k = (k + h) % 6.0;
        let c = (k.min(4.0 - k)).clamp(0.0, 1.0);
        ((1.0 - c) * v * 255.0) as u8
    };
    [f(5.0), f(3.0), f(1.0)]
}

/// The padded image (left) and the index map (right), as cells of `CELL` pixels.
fn draw(cols: &[Vec<u32>], path: &str) -> Result<(), Box<dyn std::error::Error>> {
    const CELL: usize = 28;
    let padded = SIZE + 2;
    let (mw, mh) = (cols[0].len(), cols.len());
    let (width, height) = ((padded + 2 + mw) * CELL + CELL, (padded.max(mh) + 2) * CELL);
    let mut img = vec![255u8; width * height * 3];
    let mut cell = |x0: usize, y0: usize, rgb: [u8; 3]| {
        for y in y0 * CELL..(y0 + 1) * CELL {
            for x in x0 * CELL..(x0 + 1) * CELL {
                let edge = x % CELL == 0 || y % CELL == 0;
                let p = (y * width + x) * 3;
                img[p..p + 3].copy_from_slice(&if edge { [40, 40, 40] } else { rgb });
            }
        }
    };
    for i in 0..padded {
        for j in 0..padded {
            let inside = (1..=SIZE).contains(&i) && (1..=SIZE).contains(&j);
            let n = if inside { ((i - 1) * SIZE + j) as u32 } else { 0 };
            cell(1 + j, 1 + i, colour(n));
        }
    }
    for (r, row) in cols.iter().enumerate() {
        for (c, &n) in row.iter().enumerate() {
            cell(padded + 2 + c, 1 + r, colour(n));
        }
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, width as u32, height as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&img)?;
    Ok(())
}

/// conv2d against conv2d_naive at the conv model's second layer.
fn time_against_the_loop() {
    let geom = ConvGeom::new(2, 1);
    let x = random_tensor(&[128, 32, 14, 14], 1);
    let w = random_tensor(&[64, 32, 4, 4], 2);
    let best = |f: &dyn Fn() -> ArrayD<f32>| {
        let mut out = None;
        let t = (0..3)
            .map(|_| {
                let t0 = Instant::now();
                out = Some(f());
                t0.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        (t, out.expect("ran"))
    };
    let (t_gemm, y) = best(&|| {
        let mut tape = Tape::new();
        let (xv, wv) = (tape.constant(x.clone()), tape.param(&w));
        let y = tape.conv2d(xv, wv, None, geom);
        tape.value(y).clone()
    });
    let (t_loop, y_naive) = best(&|| conv2d_naive(&x, &w, None, geom));
    let diff = y.iter().zip(&y_naive).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let macs = 128.0 * 64.0 * 49.0 * (32.0 * 16.0);
    println!(
        "conv 32→64, 4×4, stride 2, 14×14, batch 128 ({:.0} M multiply-adds): im2col + GEMM {:.1} ms \
         ({:.1} GFLOP/s), direct loop {:.1} ms ({:.1} GFLOP/s), {:.0}× faster; largest difference {diff:.1e}",
        macs / 1e6,
        t_gemm * 1e3,
        2.0 * macs / t_gemm / 1e9,
        t_loop * 1e3,
        2.0 * macs / t_loop / 1e9,
        t_loop / t_gemm
    );
}
