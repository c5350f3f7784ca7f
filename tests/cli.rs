//! End-to-end tests of `vae-cli`: training on a slice of MNIST, evaluation, resume, and the
//! errors a user can cause. They run the real binary as a user would.

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

mod common;

use common::{assert_clean_error, metrics, ok, run, scratch, small_train_args};

/// A small, quick training run: 2,000 images, batches of 32 (63 steps per epoch).
fn small_run(out: &Path, epochs: &str, extra: &[&str]) -> Output {
    let mut args = small_train_args(out, "2000", "500", "32", epochs);
    args.extend(extra.iter().map(|s| s.to_string()));
    run(&args)
}

/// Width and height from a PNG's IHDR chunk (after checking the signature).
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn training_on_a_slice_lowers_the_loss_writes_everything_and_eval_agrees() {
    let out = scratch("train");
    let o = small_run(&out, "4", &[]);
    ok(&o);
    let rows = metrics(&out);
    assert_eq!(rows.len(), 4);
    let (first, last) = (&rows[0], &rows[3]);
    assert!(last[1] < first[1] - 5.0, "train loss {} → {}", first[1], last[1]);
    assert!(last[4] < first[4], "test loss {} → {}", first[4], last[4]);
    for r in &rows {
        assert!((r[1] - (r[2] + r[3])).abs() < 1e-3, "train loss is recon + kl: {r:?}");
    }
    for f in ["model.safetensors", "checkpoint.safetensors"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // 8×8 grid of 28×28 digits at 3× with 2-pixel gaps: 8·(84 + 2) + 2 = 690.
    assert_eq!(png_size(&out.join("samples.png")), (690, 690));
    assert_eq!(png_size(&out.join("reconstructions.png")), (690, 174));

    let model = out.join("model.safetensors");
    let o = run(&["eval", "--checkpoint", model.to_str().unwrap(), "--test-limit", "500", "--json"]);
    ok(&o);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let test_loss = json["test_loss"].as_f64().unwrap();
    // Same images, independently sampled z: agreement to sampling noise.
    assert!((test_loss - last[4]).abs() < 0.01 * last[4], "eval {test_loss} vs metrics {}", last[4]);
    assert!((json["recon"].as_f64().unwrap() + json["kl"].as_f64().unwrap() - test_loss).abs() < 1e-3);
}

#[test]
fn importance_sampling_gives_a_tighter_bound_than_the_elbo() {
    let out = scratch("iw");
    ok(&small_run(&out, "1", &[]));
    let model = out.join("model.safetensors");
    let o =
        run(&["eval", "--checkpoint", model.to_str().unwrap(), "--test-limit", "100", "--iw-samples", "50", "--json"]);
    ok(&o);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (elbo_loss, nll) = (json["test_loss"].as_f64().unwrap(), json["nll"].as_f64().unwrap());
    assert!(nll < elbo_loss, "−log p(x) estimate {nll} should be below the negative ELBO {elbo_loss}");
    // Grey levels under a Bernoulli have no probability mass: no bits per dimension.
    assert!(json.get("nll_bits_per_dim").is_none(), "{json}");
    // Binarized images do: nats / (784 · ln 2).
    let o = run(&[
        "eval",
        "--checkpoint",
        model.to_str().unwrap(),
        "--test-limit",
        "100",
        "--iw-samples",
        "50",
        "--json",
        "--binarize",
        "dynamic",
    ]);
    ok(&o);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (nll, bpd) = (json["nll"].as_f64().unwrap(), json["nll_bits_per_dim"].as_f64().unwrap());
    assert!((bpd - nll / (784.0 * std::f64::consts::LN_2)).abs() < 1e-12, "{bpd} bits per dimension");
}

#[test]
fn a_resumed_run_gives_the_numbers_of_an_uninterrupted_one() {
    let (whole, split) = (scratch("whole"), scratch("split"));
    ok(&small_run(&whole, "3", &["--binarize", "dynamic"]));
    ok(&small_run(&split, "1", &["--binarize", "dynamic"]));
    let o = run(&["train", "--resume", "--out", split.to_str().unwrap(), "--epochs", "3"]);
    ok(&o);
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 3);
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(ra[..7], rb[..7], "resumed metrics differ (all but seconds must match)");
    }
    let load = |d: &Path| vae::checkpoint::load(&d.join("model.safetensors")).unwrap().model.params;
    let (pa, pb) = (load(&whole), load(&split));
    for ((name, a), (_, b)) in pa.iter().zip(pb.iter()) {
        assert!(a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "resumed {name} differs");
    }
}

#[test]
fn bad_flags_give_a_one_line_error_and_a_non_zero_exit() {
    assert_clean_error(&run(&["train", "--batch-size", "0"]), "--batch-size");
    assert_clean_error(&run(&["train", "--model", "transformer"]), "--model");
    assert_clean_error(&run(&["train", "--lr", "-1"]), "--lr must be a finite number greater than 0");
    assert_clean_error(&run(&["train", "--lr", "NaN"]), "--lr must be a finite number");
    let missing = scratch("nodata");
    assert_clean_error(&run(&["train", "--data", missing.to_str().unwrap()]), "does not exist");
    let empty = scratch("noresume");
    assert_clean_error(&run(&["train", "--resume", "--out", empty.to_str().unwrap()]), "to resume");
    let not_ckpt = scratch("notckpt");
    std::fs::create_dir_all(&not_ckpt).unwrap();
    std::fs::write(not_ckpt.join("x.safetensors"), b"hello").unwrap();
    let p = not_ckpt.join("x.safetensors");
    assert_clean_error(&run(&["eval", "--checkpoint", p.to_str().unwrap()]), "not a readable safetensors checkpoint");
}

#[test]
fn every_picture_command_writes_a_png_of_the_expected_size() {
    let out = scratch("pictures");
    ok(&small_run(&out, "1", &[]));
    let model = out.join("model.safetensors");
    let m = model.to_str().unwrap();
    let png = |name: &str| out.join(name).to_str().unwrap().to_string();
    // Each cell of a 3× grid is 28·3 + 2 = 86 pixels, plus a 2-pixel border.
    let cases: Vec<(Vec<String>, &str, (u32, u32))> = vec![
        (vec!["sample".into(), "-n".into(), "64".into()], "s.png", (690, 690)),
        (vec!["reconstruct".into(), "-n".into(), "8".into()], "r.png", (690, 174)),
        (
            vec!["interpolate".into(), "--from".into(), "0".into(), "--to".into(), "5".into()],
            "i.png",
            (12 * 86 + 2, 88),
        ),
        // the manifold uses 2× cells: 28·2 + 2 = 58
        (vec!["manifold".into(), "--grid".into(), "5".into()], "m.png", (5 * 58 + 2, 5 * 58 + 2)),
        (vec!["latent".into(), "--csv".into(), png("latent.csv")], "l.png", (900, 860)),
    ];
    for (args, file, size) in cases {
        let mut full: Vec<String> = args.clone();
        full.extend(["--checkpoint".into(), m.into(), "--out".into(), png(file)]);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        ok(&run(&full));
        assert_eq!(png_size(&out.join(file)), size, "{args:?}");
    }
    let csv = std::fs::read_to_string(out.join("latent.csv")).unwrap();
    assert_eq!(csv.lines().next().unwrap(), "label,mu1,mu2,mu3,mu4,logvar1,logvar2,logvar3,logvar4");
    assert_eq!(csv.lines().count(), 10_001);
    ok(&run(&["plot", "--run", out.to_str().unwrap(), "--out", &png("c.png")]));
    assert_eq!(png_size(&out.join("c.png")), (1280, 480));
    // The same chart as SVG, its text as text.
    ok(&run(&["plot", "--run", out.to_str().unwrap(), "--out", &png("c.svg")]));
    let svg = std::fs::read_to_string(out.join("c.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("nats per example") && svg.contains("test kl"), "{svg:.300}");
    // The latent units' activity, beside eval's JSON (which keeps standard output to itself).
    let units = run(&[
        "eval",
        "--checkpoint",
        m,
        "--test-limit",
        "500",
        "--active-units",
        "--units-png",
        &png("u.png"),
        "--json",
    ]);
    ok(&units);
    let json: serde_json::Value = serde_json::from_slice(&units.stdout).expect("eval --json printed more than JSON");
    assert_eq!(json["latent_variances"].as_array().map(Vec::len), Some(4));
    assert_eq!(png_size(&out.join("u.png")), (900, 500));
    // Two runs (here the same one twice): their test losses on one chart.
    let r = out.to_str().unwrap();
    let both = run(&["plot", "--run", r, "--run", r, "--out", &png("both.png")]);
    ok(&both);
    assert!(String::from_utf8_lossy(&both.stdout).contains("the test losses of 2 runs"));
    assert_eq!(png_size(&out.join("both.png")), (900, 540));
}

#[test]
fn picture_commands_refuse_bad_arguments_in_one_line() {
    let out = scratch("picture-errors");
    ok(&small_run(&out, "1", &[]));
    let m = out.join("model.safetensors");
    let m = m.to_str().unwrap();
    let o = out.join("x.png");
    let o = o.to_str().unwrap();
    assert_clean_error(
        &run(&["interpolate", "--checkpoint", m, "--from", "10000", "--to", "1", "--out", o]),
        "--from 10000 is out of range",
    );
    assert_clean_error(&run(&["manifold", "--checkpoint", m, "--dims", "0,0", "--out", o]), "--dims");
    assert_clean_error(&run(&["manifold", "--checkpoint", m, "--dims", "0,9", "--out", o]), "below 4");
    let csv = out.join("metrics.csv");
    assert_clean_error(
        &run(&["sample", "--checkpoint", csv.to_str().unwrap(), "--out", o]),
        "not a readable safetensors checkpoint",
    );
    assert_clean_error(&run(&["plot", "--run", scratch("no-run").to_str().unwrap(), "--out", o]), "metrics.csv");
    assert_clean_error(&run(&["eval", "--checkpoint", m, "--units-png", o]), "--active-units");
    let no_run = scratch("no-run");
    assert_clean_error(
        &run(&["plot", "--run", out.to_str().unwrap(), "--run", no_run.to_str().unwrap(), "--out", o]),
        "no-run/metrics.csv",
    );
    assert!(!out.join("x.png").exists(), "a failed command left a picture behind");
}

#[test]
fn the_numbers_do_not_depend_on_the_number_of_threads() {
    let (one, two) = (scratch("threads1"), scratch("threads2"));
    for (out, threads) in [(&one, "1"), (&two, "2")] {
        let o = out.to_str().unwrap();
        ok(&run(&[
            "train",
            "--model",
            "conv",
            "--train-limit",
            "256",
            "--test-limit",
            "100",
            "--batch-size",
            "128",
            "--epochs",
            "1",
            "--threads",
            threads,
            "--out",
            o,
        ]));
    }
    let (a, b) = (metrics(&one), metrics(&two));
    assert_eq!(a[0][..7], b[0][..7], "1 thread and 2 threads disagree");
}

#[test]
fn a_conditional_model_trains_draws_each_class_and_writes_idx() {
    let out = scratch("cvae");
    ok(&small_run(&out, "2", &["--family", "cvae"]));
    assert_eq!(metrics(&out).len(), 2); // the plain VAE's columns: recon and KL
    let m = out.join("model.safetensors");
    let m = m.to_str().unwrap();
    let file = |name: &str| out.join(name).to_str().unwrap().to_string();
    // Without --label: a row per class (10 rows of ⌈20/10⌉ = 2); cells of 86 pixels.
    ok(&run(&["sample", "--checkpoint", m, "-n", "20", "--out", &file("rows.png")]));
    assert_eq!(png_size(&out.join("rows.png")), (2 * 86 + 2, 10 * 86 + 2));
    // One class, also as an IDX file MNIST's reader takes back.
    ok(&run(&[
        "sample",
        "--checkpoint",
        m,
        "-n",
        "9",
        "--label",
        "7",
        "--out",
        &file("7.png"),
        "--idx",
        &file("7.idx"),
    ]));
    let idx = vae::data::read_idx(&out.join("7.idx")).unwrap();
    assert_eq!(idx.dims, vec![9, 28, 28]);
    assert!(idx.data.iter().any(|&v| v > 128), "the sevens are blank");
    let picture = file("p.png");
    let every_picture = [
        vec!["manifold", "--grid", "3", "--label", "3"],
        vec!["interpolate", "--from", "0", "--to", "1"],
        vec!["reconstruct", "-n", "4"],
        vec!["latent"],
    ];
    for args in every_picture {
        let mut full = args.clone();
        full.extend(["--checkpoint", m, "--out", &picture]);
        ok(&run(&full));
    }
    assert_clean_error(&run(&["sample", "--checkpoint", m, "--label", "10", "--out", &file("x.png")]), "--label 10");
    ok(&run(&["plot", "--run", out.to_str().unwrap(), "--out", &picture]));
    let o = run(&["eval", "--checkpoint", m, "--test-limit", "100", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["family"], "cvae");
    // Label consistency: 3 samples per class, each counted once in the confusion table.
    let o = run(&["eval", "--checkpoint", m, "--test-limit", "100", "--label-consistency", "3", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let shares: Vec<f64> =
        v["label_consistency_per_class"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect();
    assert_eq!(shares.len(), 10);
    let confusion = v["label_confusion"].as_array().unwrap();
    for (y, row) in confusion.iter().enumerate() {
        let row: Vec<u64> = row.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
        assert_eq!(row.iter().sum::<u64>(), 3, "class {y}: {row:?}");
        assert_eq!(shares[y], row[y] as f64 / 3.0, "class {y}");
    }
    let mean = v["label_consistency"].as_f64().unwrap();
    assert!((mean - shares.iter().sum::<f64>() / 10.0).abs() < 1e-12);
    // The judge: the nearest training image labels most real test digits right.
    assert!(v["nearest_neighbour_test_accuracy"].as_f64().unwrap() > 0.9, "{v}");
    // An unconditional model refuses --label.
    let plain = scratch("cvae-plain");
    ok(&small_run(&plain, "1", &[]));
    let p = plain.join("model.safetensors");
    assert_clean_error(
        &run(&["sample", "--checkpoint", p.to_str().unwrap(), "--label", "3", "--out", &file("x.png")]),
        "--label is for conditional models",
    );
    assert_clean_error(
        &run(&["eval", "--checkpoint", p.to_str().unwrap(), "--label-consistency"]),
        "--label-consistency is for conditional models",
    );
}

#[test]
fn a_vq_vae_trains_resumes_exactly_and_its_prior_bounds_the_likelihood() {
    let vq = ["--family", "vqvae", "--code-dim", "4", "--codebook-size", "16"];
    let (whole, split) = (scratch("vq-whole"), scratch("vq-split"));
    ok(&small_run(&whole, "2", &vq));
    ok(&small_run(&split, "1", &vq));
    ok(&run(&["train", "--resume", "--out", split.to_str().unwrap(), "--epochs", "2"]));
    let text = |d: &Path| std::fs::read_to_string(d.join("metrics.csv")).unwrap();
    let header = "epoch,train_loss,train_recon,train_codebook,train_commit,test_loss,test_recon,test_codebook,test_commit,test_perplexity,seconds";
    assert_eq!(text(&whole).lines().next().unwrap(), header);
    // Every column but the seconds agrees after the resume.
    let strip = |t: String| t.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect::<Vec<_>>();
    assert_eq!(strip(text(&whole)), strip(text(&split)));

    let m = whole.join("model.safetensors");
    let m = m.to_str().unwrap();
    let o = run(&["eval", "--checkpoint", m, "--test-limit", "200", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["family"], "vqvae");
    let perplexity = v["perplexity"].as_f64().unwrap();
    assert!((1.0..=16.0).contains(&perplexity), "perplexity {perplexity}");
    assert_clean_error(&run(&["eval", "--checkpoint", m, "--iw-samples", "10"]), "needs a model with Gaussian latents");
    assert_clean_error(&run(&["latent", "--checkpoint", m]), "holds a vqvae, which has none");
    let file = |name: &str| whole.join(name).to_str().unwrap().to_string();
    ok(&run(&["sample", "--checkpoint", m, "-n", "4", "--out", &file("s.png")]));
    ok(&run(&["reconstruct", "--checkpoint", m, "-n", "4", "--out", &file("r.png")]));
    ok(&run(&["plot", "--run", whole.to_str().unwrap(), "--out", &file("c.png")]));
    assert_eq!(png_size(&whole.join("c.png")), (1280, 480));
    for latent_only in [vec!["manifold"], vec!["interpolate", "--from", "0", "--to", "1"]] {
        let mut full = latent_only.clone();
        full.extend(["--checkpoint", m, "--out", "x.png"]);
        assert_clean_error(&run(&full), "holds a vqvae, which has none");
    }

    let prior_dir = file("prior");
    let args = ["prior", "--checkpoint", m, "--epochs", "4", "--hidden", "32", "--train-limit", "1000"];
    ok(&run(&[&args[..], &["--test-limit", "200", "--out", &prior_dir]].concat()));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("prior/prior.json")).unwrap()).unwrap();
    let (recon, prior_nll, uniform) = (
        summary["test_recon"].as_f64().unwrap(),
        summary["test_prior_nll"].as_f64().unwrap(),
        summary["uniform_prior_nll"].as_f64().unwrap(),
    );
    // L = 4 places of 16 codes: the uniform prior costs 4·ln 16 nats; the learned one less.
    assert!((uniform - 4.0 * 16f64.ln()).abs() < 1e-9);
    assert!(prior_nll < uniform, "learned prior {prior_nll} vs uniform {uniform}");
    assert!((summary["nll_bound"].as_f64().unwrap() - (recon + prior_nll)).abs() < 1e-9);
    for file in ["prior_samples.png", "uniform_samples.png", "code_use.png", "prior_curves.png", "prior_metrics.csv"] {
        assert!(whole.join("prior").join(file).is_file(), "{file}");
    }
    let prior_file = whole.join("prior/prior.safetensors");
    let p = prior_file.to_str().unwrap();
    ok(&run(&[
        "sample",
        "--checkpoint",
        m,
        "--prior",
        p,
        "-n",
        "4",
        "--out",
        &file("ps.png"),
        "--idx",
        &file("ps.idx"),
    ]));
    assert_eq!(vae::data::read_idx(&whole.join("ps.idx")).unwrap().dims, vec![4, 28, 28]);
    // A plain VAE is not a VQ-VAE.
    let plain = scratch("vq-plain");
    ok(&small_run(&plain, "1", &[]));
    let p = plain.join("model.safetensors");
    assert_clean_error(&run(&["prior", "--checkpoint", p.to_str().unwrap()]), "not a VQ-VAE");
}

/// Two epochs of a small run with the flags `extra`, and the same run stopped after one epoch
/// and resumed: their metrics agree (all but the seconds). Returns the whole run's folder and
/// what it printed.
fn resumes_exactly(name: &str, extra: &[&str]) -> (std::path::PathBuf, String) {
    let (whole, split) = (scratch(&format!("{name}-whole")), scratch(&format!("{name}-split")));
    let o = small_run(&whole, "2", extra);
    ok(&o);
    ok(&small_run(&split, "1", extra));
    ok(&run(&["train", "--resume", "--out", split.to_str().unwrap(), "--epochs", "2"]));
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 2);
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(ra[..7], rb[..7], "resumed metrics differ");
    }
    (whole, String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Polyak averaging (`--polyak`): the run trains exactly as without it (the same training
/// columns), tests and saves the weights' running average (model.safetensors holds the
/// checkpoint's `avg` slot, not its weights), and resumes to the numbers of an uninterrupted
/// run; a decay outside [0, 1) is refused.
#[test]
fn polyak_averaging_tests_and_saves_the_average_and_resumes_exactly() {
    let (whole, _) = resumes_exactly("polyak", &["--polyak", "0.9"]);
    let plain = scratch("polyak-plain");
    ok(&small_run(&plain, "2", &[]));
    for (averaged, weights) in metrics(&whole).iter().zip(&metrics(&plain)) {
        assert_eq!(averaged[..4], weights[..4], "training is the same with or without the average");
        assert_ne!(averaged[4], weights[4], "the test pass reads the average");
    }
    let named = |file: &str| -> HashMap<String, vae_autodiff::Tensor> {
        vae::checkpoint::read_tensors(&whole.join(file)).unwrap().0.into_iter().collect()
    };
    let (model, checkpoint) = (named("model.safetensors"), named("checkpoint.safetensors"));
    let params = vae::checkpoint::load(&whole.join("checkpoint.safetensors")).unwrap().model.params;
    let mut moved = 0;
    for (k, (name, _)) in params.iter().enumerate() {
        assert_eq!(model[name], checkpoint[&format!("optim.avg.{k}")], "{name}: the model file holds the average");
        moved += usize::from(model[name] != checkpoint[name]);
    }
    assert_eq!(moved, params.len(), "every average differs from its weights");
    assert_clean_error(&run(&["train", "--polyak", "1"]), "--polyak must be a decay in [0, 1)");
}

/// Free bits (`--free-bits`): a run resumes to the numbers of an uninterrupted one and reports
/// the true KL (its training loss is recon + KL, not the charged KL); the families, priors and
/// objectives without a KL per unit refuse it before any data is read, and a checkpoint edited
/// into such a pair is refused when it resumes.
#[test]
fn free_bits_train_resume_and_are_refused_where_the_kl_has_no_units() {
    let (whole, _) = resumes_exactly("free-bits", &["--free-bits", "2"]);
    for row in metrics(&whole) {
        assert!((row[1] - row[2] - row[3]).abs() < 2e-4, "train loss = recon + kl: {row:?}");
    }
    for (flags, why) in [
        (&["--family", "hvae"][..], "--free-bits is for --family vae or cvae"),
        (&["--prior", "vamp"][..], "--free-bits needs the prior N(0, I)"),
        (&["--objective", "iwae"][..], "--free-bits is for --objective elbo"),
    ] {
        let args: Vec<&str> = ["train", "--free-bits", "0.25"].iter().chain(flags).copied().collect();
        assert_clean_error(&run(&args), why);
    }
    assert_clean_error(&run(&["train", "--free-bits", "-1"]), "--free-bits must be a finite number greater than 0");

    // A checkpoint edited since its run started is checked again by --resume: its free bits
    // with the IWAE objective are refused, and the file is left as it was.
    let ckpt = whole.join("checkpoint.safetensors");
    let (tensors, mut meta) = vae::checkpoint::decode(&std::fs::read(&ckpt).unwrap()).unwrap();
    let objective = meta.get_mut("train.objective").expect("the settings name their objective");
    *objective = objective.replace("elbo", "iwae");
    let named: Vec<(String, &vae_autodiff::Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    std::fs::write(&ckpt, vae::checkpoint::encode(&named, meta).unwrap()).unwrap();
    let edited = std::fs::read(&ckpt).unwrap();
    let o = run(&["train", "--resume", "--out", whole.to_str().unwrap(), "--epochs", "3"]);
    assert_clean_error(&o, "--free-bits is for --objective elbo");
    assert_eq!(std::fs::read(&ckpt).unwrap(), edited, "the refused checkpoint is left as it was");
}

/// A VAE with the VampPrior: it trains, resumes to the numbers of an uninterrupted run (its
/// pseudo-inputs among the parameters), draws samples from its own prior, bounds −log p(x) by
/// importance sampling, and the picture that needs N(0, I) refuses it by name; flags that do
/// not fit it are refused in one line.
#[test]
fn a_vamp_prior_vae_trains_resumes_samples_and_is_refused_where_n01_is_needed() {
    let (whole, _) = resumes_exactly("vamp", &["--prior", "vamp", "--pseudo-inputs", "50"]);
    let model = whole.join("model.safetensors");
    let model = model.to_str().unwrap();
    let o = run(&["eval", "--checkpoint", model, "--iw-samples", "20", "--test-limit", "100", "--json"]);
    ok(&o);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (elbo, nll) = (report["test_loss"].as_f64().unwrap(), report["nll"].as_f64().unwrap());
    assert!(nll < elbo, "−log p(x) {nll} is below the negative ELBO {elbo}");
    let samples = whole.join("s.png");
    ok(&run(&["sample", "--checkpoint", model, "--out", samples.to_str().unwrap()]));
    let grid = whole.join("m.png");
    assert_clean_error(
        &run(&["manifold", "--checkpoint", model, "--out", grid.to_str().unwrap()]),
        "this model's prior is a VampPrior of 50 pseudo-inputs",
    );
    assert!(!grid.exists());
    assert_clean_error(&run(&["train", "--pseudo-inputs", "9"]), "--pseudo-inputs is for --prior vamp");
    assert_clean_error(
        &run(&["train", "--prior", "vamp", "--family", "vqvae"]),
        "--prior vamp is for the Gaussian-latent families (vae, cvae, hvae)",
    );
}

/// The other Gaussian-latent families take the VampPrior. A conditional VAE (pseudo-input k
/// stands for class k mod Y and starts at a training image of that class) and a chain of two
/// stochastic layers (the prior over its top layer) each train, resume to the numbers of an
/// uninterrupted run and draw samples from their prior; the chain's manifold, which needs
/// N(0, I), refuses it by name.
#[test]
fn the_conditional_vae_and_the_chain_take_the_vamp_prior() {
    let chain_args = ["--family", "hvae", "--upper-latent", "2", "--prior", "vamp", "--pseudo-inputs", "20"];
    let (chain, said) = resumes_exactly("hvae-vamp", &chain_args);
    assert!(said.contains("VampPrior of 20 pseudo-inputs"), "{said}");
    let model = chain.join("model.safetensors");
    let samples = chain.join("s.png");
    ok(&run(&["sample", "--checkpoint", model.to_str().unwrap(), "--out", samples.to_str().unwrap()]));
    assert!(samples.exists());
    let grid = chain.join("m.png");
    assert_clean_error(
        &run(&["manifold", "--checkpoint", model.to_str().unwrap(), "--out", grid.to_str().unwrap()]),
        "this model's prior is a VampPrior of 20 pseudo-inputs",
    );
    let (whole, said) = resumes_exactly("cvae-vamp", &["--family", "cvae", "--prior", "vamp", "--pseudo-inputs", "30"]);
    assert!(said.contains("VampPrior of 30 pseudo-inputs"), "{said}");
    let model = whole.join("model.safetensors");
    let samples = whole.join("s.png");
    let args = ["sample", "--checkpoint", model.to_str().unwrap(), "--out", samples.to_str().unwrap(), "--label", "7"];
    ok(&run(&args));
    assert!(samples.exists());
}

/// A VAE whose posterior sample goes through an inverse autoregressive flow: it trains,
/// resumes to the numbers of an uninterrupted run, bounds −log p(x) below its negative ELBO,
/// counts active units from draws, draws every picture; flags that do not fit it are refused.
#[test]
fn an_iaf_vae_trains_resumes_and_evaluates() {
    let (whole, said) = resumes_exactly("iaf", &["--flow", "iaf", "--flow-depth", "2", "--flow-width", "16"]);
    assert!(said.contains("IAF of 2 steps × 16 units"), "{said}");
    let model = whole.join("model.safetensors");
    let model = model.to_str().unwrap();
    let o =
        run(&["eval", "--checkpoint", model, "--iw-samples", "20", "--test-limit", "100", "--active-units", "--json"]);
    ok(&o);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (elbo, nll) = (report["test_loss"].as_f64().unwrap(), report["nll"].as_f64().unwrap());
    assert!(nll < elbo, "−log p(x) {nll} is below the negative ELBO {elbo}");
    for (command, file) in [("manifold", "m.png"), ("reconstruct", "r.png"), ("latent", "l.png")] {
        let out = whole.join(file);
        ok(&run(&[command, "--checkpoint", model, "--out", out.to_str().unwrap()]));
    }
    assert_clean_error(&run(&["train", "--flow-depth", "3"]), "--flow-depth and --flow-width are for --flow iaf");
    assert_clean_error(&run(&["train", "--flow", "iaf", "--family", "hvae"]), "--flow iaf is for --family vae or cvae");
}

/// The ResNet VAE (residual blocks of weight-normalized convolutions, started from data): it
/// trains and resumes to the numbers of an uninterrupted run, with a flow in q too; flags that
/// do not fit it are refused.
#[test]
fn a_resnet_vae_trains_and_resumes_exactly() {
    let flags = ["--model", "resnet", "--feature-maps", "4,8", "--flow", "iaf", "--flow-width", "8"];
    let (whole, said) = resumes_exactly("resnet", &flags);
    assert!(said.contains("resnet 1×28×28→4→8→z4"), "{said}");
    let model = whole.join("model.safetensors");
    let out = whole.join("r.png");
    ok(&run(&["reconstruct", "--checkpoint", model.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    assert_clean_error(&run(&["train", "--feature-maps", "8"]), "--feature-maps is for --model resnet");
    assert_clean_error(
        &run(&["train", "--model", "resnet", "--family", "vqvae"]),
        "--family vqvae takes --model mlp or conv",
    );
}
