//! `train --family vqvae`: the VQ-VAE's own flags, their checks, and the sizes they give.

use clap::Args;
use vae::run::recipe::VqSizes;

use crate::options::{check_number, Result};

/// The VQ-VAE's flags of `vae-cli train`.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "VQ-VAE (--family vqvae)")]
pub struct VqFlags {
    /// Rows of the codebook (Kc).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(2..=65_536))]
    pub codebook_size: u64,
    /// Width of a code vector (Dc).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub code_dim: u64,
    /// Weight β of the commitment term ‖z_e − sg(e)‖².
    #[arg(long, default_value_t = 0.25, allow_negative_numbers = true)]
    pub commitment: f32,
    /// Learn the codebook by exponential moving averages with this decay (the paper uses 0.99)
    /// instead of by the gradient of the codebook term.
    #[arg(long, value_name = "DECAY")]
    pub codebook_ema: Option<f32>,
    /// Leave codes that no test image used where they are (by default each epoch moves them
    /// onto encoder outputs of random training images).
    #[arg(long)]
    pub keep_dead_codes: bool,
}

impl VqFlags {
    /// The checks clap cannot make; `chosen` says whether the family is the VQ-VAE, and
    /// `gaussian_knobs` whether any flag of the Gaussian objectives (--objective, --k, --beta,
    /// --kl-warmup) was moved from its default.
    pub fn check(&self, chosen: bool, gaussian_knobs: bool) -> Result<()> {
        check_number("commitment", self.commitment, 0.0, true)?;
        if self.codebook_ema.is_some() && !chosen {
            return Err("--codebook-ema is for --family vqvae".into());
        }
        if chosen && gaussian_knobs {
            return Err("--family vqvae has no KL term and no sampled z: it takes no --objective, --k, --beta or --kl-warmup (its weight is --commitment)".into());
        }
        Ok(())
    }

    /// The codebook's sizes.
    pub fn sizes(&self) -> VqSizes {
        VqSizes {
            codebook_size: self.codebook_size as usize,
            code_dim: self.code_dim as usize,
            codebook_ema: self.codebook_ema,
        }
    }
}
