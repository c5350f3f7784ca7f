//! # vae-cli: train, evaluate and look at variational autoencoders
//!
//! `cargo run -p vae-cli -- train` trains PyTorch's example VAE on the MNIST files shipped in
//! `datasets/mnist/`, with a progress bar, a line per epoch, and a run folder holding the
//! model, a resumable checkpoint, `metrics.csv` and pictures. `vae-cli --help` lists the
//! commands; each one's `--help` explains its flags.

mod commands;
mod eval;
mod image;
mod progress;
mod train;

use std::process::ExitCode;

use clap::Parser;

/// Every failure the user can cause ends here: one line on stderr, exit code 1.
fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
