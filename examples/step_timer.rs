//! Times training steps in a loop of its own: wall time and CPU time (both cores) per step.
//!
//! Criterion's `step/*` benchmarks share one process with the other benchmarks, and the C
//! allocator's state carries over between them (a conv step measured 31 ms alone and 50 ms after
//! the MLP's). For a before/after comparison of a change, build this example from both commits
//! and run them alternately:
//!
//! ```sh
//! cargo run --release --example step_timer -- conv 100    # or: mlp 300
//! ```
//!
//! It trains a fresh model on the first 20 batches of MNIST, cycling, after 5 warm-up steps.

use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::data::{Binarize, Dataset};
use vae::model::standard_normal;
use vae::train::train_step;
use vae::{Vae, VaeConfig};
use vae_layers::optim::Adam;

/// User + system CPU seconds of this process, from /proc (Linux); 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name, which is in parentheses: utime and stime are 12th and 13th.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "mlp".into());
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100);
    let config = match which.as_str() {
        "mlp" => VaeConfig::mlp_mnist(),
        "conv" => VaeConfig::conv_mnist(),
        other => return Err(format!("unknown model {other:?}: use mlp or conv").into()),
    };
    let data = Dataset::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"))?;
    let mut rng = StdRng::seed_from_u64(1);
    let mut model = Vae::new(config, &mut rng)?;
    let mut adam = Adam::new(1e-3);
    let batches: Vec<_> = (0..20)
        .map(|b| data.train.batch(&(b * 128..(b + 1) * 128).collect::<Vec<_>>(), Binarize::None, &mut rng))
        .collect();
    let mut step = |i: usize| {
        let eps = standard_normal(&[128, 20], &mut rng);
        train_step(&mut model, &mut adam, &batches[i % batches.len()], eps, 1.0, None).map(|_| ())
    };
    for i in 0..5 {
        step(i).map_err(|e| format!("{e:?}"))?;
    }
    let (t0, c0) = (Instant::now(), cpu_seconds());
    for i in 0..steps {
        step(i).map_err(|e| format!("{e:?}"))?;
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    println!(
        "{which}: {:.2} ms per step (wall), {:.2} ms of CPU per step, over {steps} steps",
        wall * 1e3 / steps as f64,
        cpu * 1e3 / steps as f64
    );
    Ok(())
}
