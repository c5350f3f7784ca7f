//! Interruptions and faults: Ctrl-C saves and resumes exactly, a killed process never leaves a
//! broken checkpoint, and unwritable or damaged files give one-line errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{assert_clean_error, metrics, scratch, spawn, wait_started};

fn train_args(out: &Path, limit: &str, batch: &str, epochs: &str) -> Vec<String> {
    common::small_train_args(out, limit, "200", batch, epochs)
}

fn output(args: &[String]) -> Output {
    common::run(args)
}

#[test]
fn ctrl_c_saves_mid_epoch_and_resume_gives_the_uninterrupted_numbers() {
    let (whole, split) = (scratch("ctrlc-whole"), scratch("ctrlc-split"));
    // 30,000 images: a run long enough (about a second per epoch here) that the interrupt
    // lands in the middle of it.
    let o = output(&train_args(&whole, "30000", "32", "2"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let child = spawn(&train_args(&split, "30000", "32", "2"));
    wait_started(&split, Duration::from_millis(400));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "Ctrl-C should exit cleanly: {stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("interrupted"), "no interruption message: {stdout}");
    let ckpt = vae::checkpoint::load(&split.join("checkpoint.safetensors")).unwrap();
    let step: usize = ckpt.metadata["train.step_in_epoch"].parse().unwrap();
    let done: usize = ckpt.metadata["train.epochs_done"].parse().unwrap();
    assert!(step > 0 || done > 0, "nothing was trained before the checkpoint");
    println!("interrupted after epoch {done}, step {step} of the next");

    let mut resume = train_args(&split, "30000", "32", "2");
    resume.push("--resume".into());
    let o = output(&resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(ra[..7], rb[..7], "after Ctrl-C and --resume the metrics differ");
    }
}

#[test]
fn killing_training_at_any_moment_leaves_loadable_checkpoints() {
    // Tiny epochs (10 steps) so that checkpoints are written often and kills land during writes.
    let mut delays_ms = 37u64;
    let mut saw_checkpoint = 0;
    for round in 0..8 {
        let out = scratch(&format!("kill{round}"));
        let mut child = spawn(&train_args(&out, "640", "64", "1000"));
        wait_started(&out, Duration::from_millis(delays_ms));
        delays_ms = (delays_ms * 7 + 113) % 1500; // a fixed spread of moments
        child.kill().unwrap(); // SIGKILL: no handler runs
        child.wait().unwrap();
        for f in ["checkpoint.safetensors", "model.safetensors"] {
            let p = out.join(f);
            if p.exists() {
                if let Err(e) = vae::checkpoint::load(&p) {
                    panic!("round {round}: {f} is broken after a kill: {e}");
                }
                saw_checkpoint += 1;
            }
        }
        let text = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        assert!(text.starts_with("epoch,"), "round {round}: metrics.csv damaged");
    }
    assert!(saw_checkpoint > 0, "no round got as far as a checkpoint; the test proved nothing");
}

#[test]
fn an_output_folder_that_cannot_be_written_is_reported() {
    let file = scratch("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let o = output(&train_args(&file.join("run"), "64", "32", "1"));
    assert_clean_error(&o, "cannot create the output folder");
}

#[test]
fn a_diverging_run_stops_at_the_step_and_keeps_the_last_good_checkpoint() {
    let out = scratch("diverge");
    let o = output(&train_args(&out, "640", "64", "1"));
    assert!(o.status.success());
    let before = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    let mut args = train_args(&out, "640", "64", "3");
    args.extend(["--resume".into(), "--lr".into(), "1e4".into()]);
    let o = output(&args);
    assert_clean_error(&o, "training diverged at epoch 2 step");
    assert_clean_error(&o, "lower --lr");
    assert_eq!(std::fs::read(out.join("checkpoint.safetensors")).unwrap(), before, "the good checkpoint changed");
    vae::checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
}

#[test]
fn data_of_the_wrong_image_size_is_refused_for_a_trained_model() {
    let out = scratch("size");
    assert!(output(&train_args(&out, "64", "32", "1")).status.success());
    // A data set of 2×3 images.
    let data = scratch("tiny-data");
    std::fs::create_dir_all(&data).unwrap();
    let idx = |dims: &[u32], n: usize| {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        dims.iter().for_each(|d| b.extend(d.to_be_bytes()));
        b.extend(vec![1u8; n]);
        b
    };
    for (name, bytes) in [
        ("train-images-idx3-ubyte", idx(&[4, 2, 3], 24)),
        ("train-labels-idx1-ubyte", idx(&[4], 4)),
        ("t10k-images-idx3-ubyte", idx(&[4, 2, 3], 24)),
        ("t10k-labels-idx1-ubyte", idx(&[4], 4)),
    ] {
        std::fs::write(data.join(name), bytes).unwrap();
    }
    let m = out.join("model.safetensors");
    let args: Vec<String> = ["eval", "--checkpoint", m.to_str().unwrap(), "--data", data.to_str().unwrap()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_clean_error(&output(&args), "the model takes 28×28 images");
}
