//! Density estimation end to end: Burda et al.'s protocol (`--preset burda`) with the IWAE
//! objective trains on a slice, stores its settings, survives Ctrl-C with the learning-rate
//! schedule continuing exactly, and `eval` reports −log p(x) and the active units as JSON.

mod common;

use std::path::Path;

use common::{assert_clean_error, finish, metrics, ok, run, scratch, signal, spawn_paused};

/// The Burda protocol with smaller layers on 20,000 images (1,000 steps of 20 per epoch), IWAE
/// with K samples: over 3 epochs the compressed schedule gives each epoch another learning rate.
fn burda_args(out: &Path, k: &str, epochs: &str) -> Vec<String> {
    let args = ["train", "--preset", "burda", "--objective", "iwae", "--k", k, "--hidden", "64,64"];
    let rest = ["--latent-dim", "5", "--train-limit", "20000", "--test-limit", "300", "--epochs", epochs];
    let out = ["--out", out.to_str().unwrap()];
    args.iter().chain(&rest).chain(&out).map(|s| s.to_string()).collect()
}

#[test]
fn the_burda_protocol_resumes_exactly_after_ctrl_c() {
    let (whole, split) = (scratch("burda-whole"), scratch("burda-split"));
    ok(&run(&burda_args(&whole, "3", "3")));

    // Stopped at a known step: 1,500 of 3,000 (three epochs of 1,000 steps of 20 images).
    let (child, out) = spawn_paused(&burda_args(&split, "3", "3"), 1500);
    signal(&child, "INT");
    let (status, stdout) = finish(child, out);
    assert!(status.success() && stdout.contains("interrupted"), "no clean interruption: {stdout}");

    // --resume with no other flag: the saved settings, and the planned 3 epochs.
    ok(&run(&["train", "--resume", "--out", split.to_str().unwrap()]));
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!((a.len(), b.len()), (3, 3));
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(ra[..7], rb[..7], "after Ctrl-C and --resume the metrics differ");
    }
    // The IWAE loss is the bound, below recon + kl by its gain: never above.
    for r in &a {
        assert!(r[1] <= r[2] + r[3] + 1e-3 && r[4] <= r[5] + r[6] + 1e-3, "loss above recon + kl: {r:?}");
    }

    let ckpt = vae::checkpoint::load(&whole.join("checkpoint.safetensors")).unwrap();
    let meta = |k: &str| ckpt.metadata[k].clone();
    assert_eq!(meta("activation"), "tanh");
    assert_eq!((meta("train.objective"), meta("train.k")), ("iwae".into(), "3".into()));
    assert_eq!((meta("train.lr_schedule"), meta("train.batch_size")), ("burda".into(), "20".into()));
    assert_eq!((meta("train.adam_eps"), meta("train.binarize")), ("0.0001".into(), "dynamic".into()));
    assert_eq!(meta("train.schedule_epochs"), "3");
}

#[test]
fn a_run_can_stop_part_way_through_the_full_schedule() {
    // One epoch of the full 3,280-epoch schedule runs at stage 0's rate, 1e-3: the same numbers
    // as a constant 1e-3, and not those of the schedule compressed onto one epoch (1e-4).
    let base = |out: &Path, extra: &[&str]| -> Vec<String> {
        let args = ["train", "--preset", "burda", "--hidden", "16,16", "--latent-dim", "3", "--epochs", "1"];
        let limits = ["--train-limit", "400", "--test-limit", "50", "--out", out.to_str().unwrap()];
        args.iter().chain(&limits).chain(extra).map(|s| s.to_string()).collect()
    };
    let (cut, constant, compressed) = (scratch("cut"), scratch("cut-constant"), scratch("cut-compressed"));
    ok(&run(&base(&cut, &["--schedule-epochs", "3280"])));
    ok(&run(&base(&constant, &["--lr-schedule", "constant", "--lr", "0.001"])));
    ok(&run(&base(&compressed, &[])));
    let (a, b, c) = (metrics(&cut), metrics(&constant), metrics(&compressed));
    assert_eq!(a[0][..7], b[0][..7], "stage 0 of the full schedule is a constant 1e-3");
    assert_ne!(a[0][..7], c[0][..7], "the compressed schedule runs at another rate");
    let ckpt = vae::checkpoint::load(&cut.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ckpt.metadata["train.schedule_epochs"], "3280");
    assert_eq!(ckpt.metadata["train.epochs"], "1");
}

/// `vae-cli eval --json` of a model: −log p(x) with K = 50 and the active units over the first
/// 100 test images, dynamically binarized.
fn eval_json(model: &Path) -> serde_json::Value {
    let m = model.to_str().unwrap();
    let flags = ["--iw-samples", "50", "--active-units", "--binarize", "dynamic", "--test-limit", "100", "--json"];
    let o = run(&[&["eval", "--checkpoint", m][..], &flags].concat());
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn eval_reports_the_bound_and_the_active_units_as_json() {
    let out = scratch("burda-eval");
    ok(&run(&burda_args(&out, "1", "1")));
    let v = eval_json(&out.join("model.safetensors"));
    let (nll, elbo) = (v["nll"].as_f64().unwrap(), v["test_loss"].as_f64().unwrap());
    assert!(nll > 0.0 && nll < elbo, "−log p(x) {nll} should lie below the negative ELBO {elbo}");
    let active = v["active_units"].as_u64().unwrap();
    let variances = v["latent_variances"].as_array().unwrap();
    assert_eq!(variances.len(), 5);
    let above = variances.iter().filter(|x| x.as_f64().unwrap() > 0.01).count() as u64;
    assert_eq!(active, above);
}

#[test]
fn iwae_refuses_a_kl_weight() {
    let out = scratch("burda-beta");
    let mut args = burda_args(&out, "3", "1");
    args.extend(["--beta".to_string(), "0.5".to_string()]);
    assert_clean_error(&run(&args), "takes no --beta");
}

/// Burda et al.'s two-stochastic-layer model (`--preset burda2`) with small layers: trains with
/// both objectives, resumes exactly from a checkpoint taken after its first epoch (of a schedule
/// planned over two), and `eval`
/// reports −log p(x) below the negative ELBO and the active units of each layer.
#[test]
fn the_two_layer_model_trains_resumes_exactly_and_reports_each_layer() {
    let args = |out: &Path, objective: &str, epochs: &str| -> Vec<String> {
        ["train", "--preset", "burda2", "--objective", objective, "--k", "3"]
            .iter()
            .chain(&["--hidden", "24,16", "--latent-dim", "7", "--upper-hidden", "9", "--upper-latent", "5"])
            .chain(&["--train-limit", "600", "--test-limit", "100", "--epochs", epochs, "--schedule-epochs", "2"])
            .chain(&["--out", out.to_str().unwrap()])
            .map(|s| s.to_string())
            .collect()
    };
    let (whole, split, elbo) = (scratch("burda2-whole"), scratch("burda2-split"), scratch("burda2-elbo"));
    ok(&run(&args(&whole, "iwae", "2")));
    ok(&run(&args(&split, "iwae", "1")));
    ok(&run(&["train", "--resume", "--epochs", "2", "--out", split.to_str().unwrap()]));
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 2);
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(ra[..7], rb[..7], "after --resume the two-layer model's metrics differ");
    }
    ok(&run(&args(&elbo, "elbo", "1")));
    let e = metrics(&elbo);
    // The K-sample ELBO's loss is recon + kl (no gain); the IWAE's lies below them.
    assert!((e[0][4] - (e[0][5] + e[0][6])).abs() < 1e-3, "ELBO loss is not recon + kl: {:?}", e[0]);
    assert!(a[1][4] <= a[1][5] + a[1][6] + 1e-3, "IWAE loss above recon + kl: {:?}", a[1]);

    let model = whole.join("model.safetensors");
    let v = eval_json(&model);
    assert_eq!(v["family"], "hvae");
    let (nll, elbo) = (v["nll"].as_f64().unwrap(), v["test_loss"].as_f64().unwrap());
    assert!(nll > 0.0 && nll < elbo, "−log p(x) {nll} should lie below the negative ELBO {elbo}");
    let layers = v["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["layer"].as_str().unwrap()).collect();
    assert_eq!(names, ["h1", "h2"]);
    let units: Vec<u64> = layers.iter().map(|l| l["units"].as_u64().unwrap()).collect();
    assert_eq!(units, [7, 5]);
    let per_layer: u64 = layers.iter().map(|l| l["active_units"].as_u64().unwrap()).sum();
    assert_eq!(v["active_units"].as_u64().unwrap(), per_layer);
    assert_eq!(v["latent_variances"].as_array().unwrap().len(), 12);
    // Its latent space is the top layer h2: the pictures that encode and decode points of it work.
    let png = whole.join("latent.png");
    ok(&run(&["latent", "--checkpoint", model.to_str().unwrap(), "--out", png.to_str().unwrap()]));
    let png = whole.join("manifold.png");
    ok(&run(&["manifold", "--checkpoint", model.to_str().unwrap(), "--grid", "3", "--out", png.to_str().unwrap()]));
    let png = whole.join("samples.png");
    let o = run(&["sample", "--checkpoint", model.to_str().unwrap(), "-n", "4", "--out", png.to_str().unwrap()]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("generative chain"), "sample should say what it draws from");
}
