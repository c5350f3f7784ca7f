//! Interruptions and faults: Ctrl-C saves and resumes exactly, a killed process never leaves a
//! broken checkpoint, and unwritable or damaged files give one-line errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_clean_error, finish, metrics, scratch, signal, spawn_paused, spawn_until};

fn train_args(out: &Path, limit: &str, batch: &str, epochs: &str) -> Vec<String> {
    common::small_train_args(out, limit, "200", batch, epochs)
}

fn output(args: &[String]) -> Output {
    common::run(args)
}

#[test]
fn ctrl_c_saves_mid_epoch_and_resume_gives_the_uninterrupted_numbers() {
    let (whole, split) = (scratch("ctrlc-whole"), scratch("ctrlc-split"));
    // 30,000 images in batches of 32: 938 steps per epoch.
    let o = output(&train_args(&whole, "30000", "32", "2"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Stopped at a known step: 300 of the first epoch's 938.
    let (child, out) = spawn_paused(&train_args(&split, "30000", "32", "2"), 300);
    signal(&child, "INT");
    let (status, stdout) = finish(child, out);
    assert!(status.success(), "Ctrl-C should exit cleanly: {stdout}");
    assert!(stdout.contains("interrupted"), "no interruption message: {stdout}");
    let ckpt = vae::checkpoint::load(&split.join("checkpoint.safetensors")).unwrap();
    let step: usize = ckpt.metadata["train.step_in_epoch"].parse().unwrap();
    let done: usize = ckpt.metadata["train.epochs_done"].parse().unwrap();
    assert_eq!((done, step), (0, 300), "the checkpoint holds the step where Ctrl-C came");

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
fn the_prior_saves_on_ctrl_c_resumes_exactly_and_refuses_another_models_checkpoint() {
    // A small VQ-VAE (4 places of 16 codes), then its prior in batches of 8 over 60,000 grids:
    // 7,500 steps per epoch, the interrupt at step 3,000 of the first.
    let vq = scratch("prior-vq");
    let mut args = train_args(&vq, "2000", "32", "1");
    args.extend(["--family", "vqvae", "--code-dim", "4", "--codebook-size", "16"].map(String::from));
    let o = output(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = vq.join("model.safetensors").to_str().unwrap().to_string();
    let prior_args = |out: &Path| -> Vec<String> {
        let a = ["prior", "--checkpoint", &m, "--hidden", "32", "--batch-size", "8", "--test-limit", "500"];
        a.iter()
            .map(|s| s.to_string())
            .chain(["--epochs", "3", "--out", out.to_str().unwrap()].map(String::from))
            .collect()
    };
    let (whole, split) = (scratch("prior-whole"), scratch("prior-split"));
    let o = output(&prior_args(&whole));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Stopped at a known step: 3,000 of the first epoch's 7,500.
    let (child, out) = spawn_paused(&prior_args(&split), 3000);
    signal(&child, "INT");
    let (status, stdout) = finish(child, out);
    assert!(status.success() && stdout.contains("interrupted"), "no clean interruption: {stdout}");
    println!("{}", stdout.lines().last().unwrap_or(""));
    assert!(!split.join("prior.safetensors").exists(), "an interrupted prior wrote its final file");
    let mut resume = prior_args(&split);
    resume.push("--resume".into());
    let o = output(&resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Every column but the seconds, and the summary, as if never interrupted.
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let strip = |t: String| t.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect::<Vec<_>>();
    assert_eq!(strip(read(&whole, "prior_metrics.csv")).len(), 4);
    assert_eq!(strip(read(&whole, "prior_metrics.csv")), strip(read(&split, "prior_metrics.csv")));
    assert_eq!(read(&whole, "prior.json"), read(&split, "prior.json"));

    // A second start in the same folder is refused; so is a prior of another VQ-VAE.
    assert_clean_error(&output(&prior_args(&split)), "already holds a prior's training");
    let other = scratch("prior-other-vq");
    let mut args = train_args(&other, "2000", "32", "1");
    args.extend(["--family", "vqvae", "--code-dim", "4", "--codebook-size", "16", "--seed", "2"].map(String::from));
    assert!(output(&args).status.success());
    let p = split.join("prior.safetensors");
    let sample = |model: &Path| {
        let model = model.join("model.safetensors");
        let out = other.join("s.png");
        output(
            &[
                "sample",
                "--checkpoint",
                model.to_str().unwrap(),
                "--prior",
                p.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]
            .map(String::from),
        )
    };
    assert!(sample(&vq).status.success());
    assert_clean_error(&sample(&other), "trained on the codes of another VQ-VAE");
    let mut resume_other = prior_args(&split);
    resume_other[2] = other.join("model.safetensors").to_str().unwrap().to_string();
    resume_other.push("--resume".into());
    assert_clean_error(&output(&resume_other), "trained on the codes of another VQ-VAE");
}

#[test]
fn killing_training_between_writes_or_halfway_through_one_leaves_whole_files() {
    // Tiny epochs (10 steps) so that checkpoints are written often. First a kill at a known
    // step, 25, after two epochs' checkpoints: both files must be there and load.
    let out = scratch("kill-known");
    let (child, _out) = spawn_paused(&train_args(&out, "640", "64", "1000"), 25);
    signal(&child, "KILL");
    let mut child = child;
    child.wait().unwrap();
    let load =
        |f: &str| vae::checkpoint::load(&out.join(f)).unwrap_or_else(|e| panic!("{f} after a kill at step 25: {e}"));
    load("model.safetensors");
    assert_eq!(load("checkpoint.safetensors").metadata["train.epochs_done"], "2", "the second epoch's checkpoint");
    // Then a kill in the middle of writing each file a run rewrites, at the end of the second
    // epoch: the run stops halfway through the temporary file (`--pause-in-write`, a
    // deterministic hook; metrics.csv is written once more, with its header, at the start)
    // and is killed there. Every file must still be a whole earlier version, and the run
    // resumable.
    for (name, nth) in [("checkpoint.safetensors", 2), ("model.safetensors", 2), ("metrics.csv", 3)] {
        let out = scratch(&format!("kill-in-{name}"));
        let mut args = train_args(&out, "640", "64", "3");
        args.extend(["--pause-in-write".to_string(), format!("{name}:{nth}")]);
        let (mut child, _stdout, line) = spawn_until(&args, "paused halfway through writing");
        assert!(line.contains(name), "{name}: paused in another file: {line}");
        child.kill().unwrap(); // SIGKILL: no handler runs
        child.wait().unwrap();
        let tmp = out.join(format!("{name}.tmp"));
        assert!(tmp.exists(), "{name}: the kill came before the temporary file");
        assert!(vae::checkpoint::load(&out.join("checkpoint.safetensors")).is_ok(), "{name}: checkpoint broken");
        assert!(vae::checkpoint::load(&out.join("model.safetensors")).is_ok(), "{name}: model broken");
        // metrics.csv parses whole; its second row is there unless its own write was cut.
        let rows = metrics(&out).len();
        assert_eq!(rows == 1, name == "metrics.csv", "{name}: metrics.csv holds {rows} epochs");
        let mut resume = train_args(&out, "640", "64", "3");
        resume.push("--resume".into());
        let o = output(&resume);
        assert!(o.status.success(), "{name}: no resume after the kill: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(metrics(&out).len(), 3, "{name}: the resumed run finished");
    }
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

/// Runs vae-cli with its standard output a pipe whose reading end is already closed, as in
/// `vae-cli eval --json | head -c 10` once head has what it wants.
fn with_closed_stdout(args: &[String]) -> Output {
    let mut child = spawn_piped(args);
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// Runs vae-cli with its standard error a pipe whose reading end is already closed (its
/// standard output still read).
fn with_closed_stderr(args: &[String]) -> Output {
    let mut child = spawn_piped(args);
    drop(child.stderr.take());
    child.wait_with_output().unwrap()
}

/// Starts vae-cli with both outputs piped to the test.
fn spawn_piped(args: &[String]) -> std::process::Child {
    Command::new(common::bin())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_closed_standard_error_still_ends_with_the_error_code_not_a_panic() {
    // A panic exits with 101; the one-line error path exits with 1, even with nobody to read it.
    let o = with_closed_stderr(&["eval", "--checkpoint", "no/such/model.safetensors"].map(String::from));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_closed_standard_output_stops_cleanly_without_a_panic() {
    let out = scratch("closed-stdout");
    let o = output(&train_args(&out, "1000", "100", "1"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = out.join("model.safetensors").to_str().unwrap().to_string();

    let o = with_closed_stdout(&["eval", "--checkpoint", &model, "--test-limit", "200", "--json"].map(String::from));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !stderr.contains("panicked"), "{stderr}");

    // Long work stops as on Ctrl-C: a checkpoint after the first epoch, which resumes.
    let piped = scratch("closed-stdout-train");
    let o = with_closed_stdout(&train_args(&piped, "1000", "100", "3"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !stderr.contains("panicked"), "{stderr}");
    assert!(metrics(&piped).len() < 3, "training went on although nobody reads its report");
    let mut resume = train_args(&piped, "1000", "100", "3");
    resume.push("--resume".into());
    let o = output(&resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(metrics(&piped).len(), 3);
}
