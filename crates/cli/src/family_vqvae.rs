//! `train --family vqvae`: the VQ-VAE's own flags, their checks, and the model they describe.

use clap::Args;
use rand::rngs::StdRng;
use vae::vqvae::{VqArch, VqConfig, VqVae};
use vae::{Activation, Family, Likelihood};

use crate::options::{check_number, ModelKind, Result};

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

    /// The model: an MLP of `hidden` widths with `codes` code vectors per image, or the conv
    /// stack of the MNIST model (7×7 codes).
    pub fn build(
        &self,
        model: ModelKind,
        (hidden, codes): (&[usize], usize),
        input: [usize; 3],
        (activation, likelihood): (Activation, Likelihood),
        rng: &mut StdRng,
    ) -> Result<Box<dyn Family>> {
        let arch = match model {
            ModelKind::Mlp => VqArch::Mlp { hidden: hidden.to_vec(), codes },
            ModelKind::Conv => VqArch::Conv { channels: vec![32, 64] },
        };
        let (code_dim, codebook_size, ema_decay) =
            (self.code_dim as usize, self.codebook_size as usize, self.codebook_ema);
        let config = VqConfig { arch, input, code_dim, codebook_size, activation, likelihood, ema_decay };
        Ok(Box::new(VqVae::new(config, rng)?))
    }
}
