//! Helpers shared by the end-to-end tests: the vae-cli binary, scratch folders, error checks.

#![allow(dead_code)] // each test file uses its own subset

pub mod web;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

/// The vae-cli binary of this build. `cargo test` builds it with the workspace, but
/// `cargo test --test cli` alone would not, so it is brought up to date once per test run.
pub fn bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().unwrap().parent().unwrap(); // target/<profile>
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "-p", "vae-cli"]).current_dir(env!("CARGO_MANIFEST_DIR"));
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            assert!(cmd.status().unwrap().success(), "could not build vae-cli");
            dir.join(format!("vae-cli{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

/// Runs vae-cli from the repository root and waits for it.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(bin()).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap()
}

/// A fresh, empty (not yet created) folder path under the system's temporary folder.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vae-engine-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Fails the test unless the command succeeded, showing its output.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "vae-cli failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A failed command: non-zero exit, first line of stderr starting with "error", no panic, and
/// `needle` somewhere in the message.
pub fn assert_clean_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure, got success");
    assert!(!err.contains("panicked"), "panic instead of an error:\n{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(first.starts_with("error"), "first line is not an error: {err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
}

/// metrics.csv rows as numbers, after checking the header.
pub fn metrics(out: &std::path::Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "epoch,train_loss,train_recon,train_kl,test_loss,test_recon,test_kl,seconds");
    lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
}

/// Arguments of a small, quick training run: an MLP 784-64-4 on the first `train_limit`
/// training and `test_limit` test images.
pub fn small_train_args(
    out: &std::path::Path,
    train_limit: &str,
    test_limit: &str,
    batch: &str,
    epochs: &str,
) -> Vec<String> {
    let args = ["train", "--train-limit", train_limit, "--test-limit", test_limit, "--batch-size", batch];
    let model = ["--hidden", "64", "--latent-dim", "4", "--epochs", epochs, "--out", out.to_str().unwrap()];
    args.iter().chain(&model).map(|s| s.to_string()).collect()
}

/// Starts vae-cli from the repository root without waiting, its output piped.
pub fn spawn(args: &[String]) -> Child {
    Command::new(bin())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts vae-cli (`train` or `prior`) with `--pause-at-step STEP` and waits until it says it
/// has paused there: the line it prints on standard output once `step` steps are taken. The
/// test then signals a run that stands at a known step, so no delay decides what is tested.
/// Returns the child and its standard output, to read the rest from once it ends.
pub fn spawn_paused(args: &[String], step: u64) -> (Child, BufReader<ChildStdout>) {
    let mut args = args.to_vec();
    args.extend(["--pause-at-step".to_string(), step.to_string()]);
    let (child, out, _) = spawn_until(&args, &format!("paused after step {step} "));
    (child, out)
}

/// Starts vae-cli with `args` and waits for the first line of its standard output that starts
/// with `prefix` (a test hook's announcement: `--pause-at-step`, `--pause-in-write`). Returns
/// the child, the rest of its output and that line; fails if it ends without printing one.
#[allow(clippy::zombie_processes)] // the child goes back to the caller, who waits for it
pub fn spawn_until(args: &[String], prefix: &str) -> (Child, BufReader<ChildStdout>, String) {
    let mut child = spawn(args);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "vae-cli ended before printing {prefix:?}: {:?}", child.wait_with_output().unwrap());
        if line.starts_with(prefix) {
            return (child, out, line);
        }
    }
}

/// Sends `signal` (`INT`, `KILL`) to the child.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// Waits for a child started by [`spawn_paused`]; its exit status and the rest of its output.
pub fn finish(mut child: Child, mut out: BufReader<ChildStdout>) -> (std::process::ExitStatus, String) {
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    (child.wait().unwrap(), rest)
}
