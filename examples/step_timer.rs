//! Times training steps in a loop of its own: wall time and CPU time (both cores) per step.
//!
//! Criterion's `step/*` benchmarks share one process with the other benchmarks, and the C
//! allocator's state carries over between them (a conv step measured 31 ms alone and 50 ms after
//! the MLP's). For a before/after comparison of a change, build this example from both commits
//! and run them alternately:
//!
//! ```sh
//! cargo run --release --example step_timer -- conv 100    # or: mlp 300
//! cargo run --release --example step_timer -- burda 1000   # Burda et al.'s model, batch 20, K = 1
//! cargo run --release --example step_timer -- burda-iwae50 100   # the same, IWAE with K = 50
//! ```
//!
//! It trains a fresh model on the first 20 batches of MNIST (of 128 images, or of 20 for the
//! Burda model, binarized once), cycling, after 5 warm-up steps, with Adam. The steps run on
//! the calling thread, so each parallel loop hands its work to rayon's pool; with
//! `INSIDE_POOL=1` they run on a worker of the pool instead, as `vae-cli train` runs them.

use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::data::{Binarize, Dataset};
use vae::model::standard_normal;
use vae::objective::Objective;
use vae::train::train_step_objective;
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
    let (config, batch, objective, binarize) = match which.as_str() {
        "mlp" => (VaeConfig::mlp_mnist(), 128, Objective::default(), Binarize::None),
        "conv" => (VaeConfig::conv_mnist(), 128, Objective::default(), Binarize::None),
        "burda" => (VaeConfig::burda_mnist(), 20, Objective::default(), Binarize::Dynamic),
        "burda-iwae50" => (VaeConfig::burda_mnist(), 20, Objective::Iwae { k: 50 }, Binarize::Dynamic),
        other => return Err(format!("unknown model {other:?}: use mlp, conv, burda or burda-iwae50").into()),
    };
    let (latent, k) = (config.latent, objective.k());
    let data = Dataset::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"))?;
    let mut rng = StdRng::seed_from_u64(1);
    let mut model = Vae::new(config, &mut rng)?;
    let mut adam = Adam::new(1e-3);
    let batches: Vec<_> = (0..20)
        .map(|b| data.train.batch(&(b * batch..(b + 1) * batch).collect::<Vec<_>>(), binarize, &mut rng))
        .collect();
    let mut step = |i: usize| {
        let eps = standard_normal(&[k * batch, latent], &mut rng);
        let x = &batches[i % batches.len()];
        train_step_objective(&mut model, &mut adam, x, eps, objective, 1.0, None).map(|_| ())
    };
    let inside = std::env::var("INSIDE_POOL").is_ok();
    let pool = rayon::ThreadPoolBuilder::new().build()?;
    let mut run = |n: usize| -> Result<(), String> {
        let mut go = || (0..n).try_for_each(|i| step(i).map_err(|e| format!("{e:?}")));
        if inside {
            pool.install(go)
        } else {
            go()
        }
    };
    run(5)?;
    let (t0, c0) = (Instant::now(), cpu_seconds());
    run(steps)?;
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    println!(
        "{which}: {:.2} ms per step (wall), {:.2} ms of CPU per step, over {steps} steps",
        wall * 1e3 / steps as f64,
        cpu * 1e3 / steps as f64
    );
    Ok(())
}
