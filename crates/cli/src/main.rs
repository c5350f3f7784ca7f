//! The `vae-cli` binary: the commands, parsed from the command line and dispatched to their
//! modules (one file per command in the library), and any error reported in one line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vae_cli::options::Result;
use vae_cli::threads::on_pool;
use vae_cli::{eval, interpolate, latent, manifold, plot, prior, reconstruct, sample, serve, train};

/// Train, evaluate and draw variational autoencoders (our own autodiff, on the CPU).
#[derive(Parser, Debug)]
#[command(name = "vae-cli", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model: a VAE by default (PyTorch's MNIST example, 784-400-20, Bernoulli, Adam 1e-3, 10 epochs); --family cvae, vqvae or hvae for the others, --prior vamp, --flow iaf.
    Train(Box<train::TrainArgs>),
    /// Report the negative ELBO on the test set (and optionally −log p(x) by importance sampling, active units, a conditional model's label consistency); a VQ-VAE's terms and code use.
    Eval(eval::EvalArgs),
    /// Draw a grid of samples from the prior, decoded (a row per class for a conditional model).
    Sample(sample::SampleArgs),
    /// Draw test images above their reconstructions.
    Reconstruct(reconstruct::ReconstructArgs),
    /// Decode the straight line between the latent means of two test images.
    Interpolate(interpolate::InterpolateArgs),
    /// Decode a grid of latent points (Kingma & Welling's Fig. 4).
    Manifold(manifold::ManifoldArgs),
    /// Scatter the test set's latent means, coloured by label.
    Latent(latent::LatentArgs),
    /// Plot the training curves of a run from its metrics.csv (several runs: their test losses on one chart); epochs on a logarithmic axis past 200.
    Plot(plot::PlotArgs),
    /// Train the autoregressive prior over a VQ-VAE's codes; report −log p(x) bounds; draw samples.
    Prior(prior::PriorArgs),
    /// In the browser: without --checkpoint, the playground (train runs from the page and watch them learn); with it, a model's latent-space explorer (scatter, sliders, interpolation).
    Serve(serve::ServeArgs),
}

/// Runs the parsed command.
fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => on_pool(args.threads, *args, train::run),
        Command::Eval(args) => on_pool(args.threads, args, eval::run),
        Command::Sample(args) => sample::run(args),
        Command::Reconstruct(args) => reconstruct::run(args),
        Command::Interpolate(args) => interpolate::run(args),
        Command::Manifold(args) => manifold::run(args),
        Command::Latent(args) => latent::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Prior(args) => on_pool(args.threads, args, prior::run),
    }
}

/// Every failure the user can cause ends here: one line on stderr, exit code 1.
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Never a panic, even with nobody reading standard error.
            vae_cli::say::err_line(format_args!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}
