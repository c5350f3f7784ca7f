//! What splitting a piece of work in two saves on this machine, after the second core has been
//! idle for a while: why the Burda model's batch of 20 examples runs on one core.
//!
//! cargo run --release --example join_latency
//!
//! Each line runs, 3,000 times on a worker of a two-thread rayon pool, a serial stretch of
//! `gap` µs (the other worker has nothing to do) followed by work of 2 × `piece` µs, either
//! in one go or as `rayon::join` of two halves, and prints the mean time of a round both ways.
//! A worker that finds no work spins for a short while, then sleeps, and waking it takes time:
//! where the wake-up costs more than half the work, the join saves nothing or loses.

use std::hint::black_box;
use std::time::Instant;

/// A loop of dependent floating-point steps: `n` of them take a fixed time on a given core.
fn busy(n: usize) -> f64 {
    let mut x = 1.0f64;
    for i in 0..n {
        x = x * 1.000_000_1 + i as f64 * 1e-9;
    }
    x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    let t = Instant::now();
    black_box(busy(20_000_000));
    let steps_per_us = 20_000_000.0 / (t.elapsed().as_secs_f64() * 1e6);
    let rounds = 3000;
    println!("gap (µs) | piece (µs) | serial round (µs) | joined round (µs) | saved (µs)");
    let cases = [(0.0, 20.0), (20.0, 20.0), (100.0, 20.0), (300.0, 20.0), (300.0, 100.0), (300.0, 300.0)];
    for (gap_us, piece_us) in cases {
        let (gap, piece) = ((gap_us * steps_per_us) as usize, (piece_us * steps_per_us) as usize);
        let (serial, joined) = pool.install(|| {
            let t = Instant::now();
            for _ in 0..rounds {
                black_box(busy(gap));
                black_box(busy(2 * piece));
            }
            let serial = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for _ in 0..rounds {
                black_box(busy(gap));
                rayon::join(|| black_box(busy(piece)), || black_box(busy(piece)));
            }
            (serial, t.elapsed().as_secs_f64())
        });
        let (serial, joined) = (serial * 1e6 / rounds as f64, joined * 1e6 / rounds as f64);
        println!("{gap_us:8} | {piece_us:10} | {serial:17.1} | {joined:17.1} | {:10.1}", serial - joined);
    }
    Ok(())
}
