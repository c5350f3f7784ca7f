//! # vae-cli: train, evaluate and look at variational autoencoders
//!
//! `cargo run -p vae-cli -- train` trains PyTorch's example VAE on the MNIST files shipped in
//! `datasets/mnist/`, with a progress bar, a line per epoch, and a run folder holding the
//! model, a resumable checkpoint, `metrics.csv` and pictures. `vae-cli --help` lists the
//! commands; each one's `--help` explains its flags.
//!
//! What the numbers and pictures mean: chapter 8 of the book (`docs/book/08-training.md`).
//!
//! The library half holds the commands, one module each, and the drawing code ([`image`],
//! [`figure`]) so that examples can draw with it too; the binary (`main.rs`) parses the command
//! line and dispatches.

// The commands, one file each (dispatched by main.rs).
pub mod eval;
pub mod interpolate;
pub mod latent;
pub mod manifold;
pub mod plot;
pub mod prior;
pub mod reconstruct;
pub mod sample;
pub mod serve;
pub mod train;

// What they share.
pub mod consistency;
pub mod data;
pub mod family_hvae;
pub mod family_vqvae;
pub mod figure;
pub mod image;
pub mod interrupt;
pub mod options;
pub mod pictures;
pub mod prior_run;
pub mod progress;
pub mod say;
pub mod threads;
