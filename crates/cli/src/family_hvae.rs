//! `train --family hvae`: the chain of stochastic layers' own flags, their checks, and the model
//! they describe (Burda et al.'s two-layer model with `--preset burda2`).

use clap::Args;
use rand::rngs::StdRng;
use vae::hvae::{Hvae, HvaeConfig, LayerSpec};
use vae::{Activation, Family, Likelihood};

use crate::options::{ModelKind, Result};

/// The chain's flags of `vae-cli train`; h1's hidden widths and units are --hidden and
/// --latent-dim.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Chain of stochastic layers (--family hvae)")]
pub struct HvaeFlags {
    /// Units of each stochastic layer above h1, comma-separated (h2, h3, …) [default: none;
    /// 50 with --preset burda2].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub upper_latent: Option<Vec<u64>>,
    /// Hidden widths of the nets between consecutive stochastic layers (q(hl|hl−1) and,
    /// reversed, p(hl−1|hl)), comma-separated [default: 100,100].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub upper_hidden: Option<Vec<u64>>,
}

/// Hidden widths between the upper layers when --upper-hidden is not given (Burda et al.'s).
pub const DEFAULT_UPPER_HIDDEN: [usize; 2] = [100, 100];

impl HvaeFlags {
    /// The checks clap cannot make; `chosen` says whether the family is the chain.
    pub fn check(&self, chosen: bool, model: ModelKind) -> Result<()> {
        if (self.upper_latent.is_some() || self.upper_hidden.is_some()) && !chosen {
            return Err("--upper-latent and --upper-hidden are for --family hvae".into());
        }
        if chosen && model != ModelKind::Mlp {
            return Err("--family hvae is a chain of dense stochastic layers: it takes no --model conv".into());
        }
        Ok(())
    }

    /// The units of h2, h3, … (`preset` when the flag is not given).
    pub fn upper_latent(&self, preset: &[usize]) -> Vec<usize> {
        self.upper_latent.as_ref().map_or_else(|| preset.to_vec(), |v| v.iter().map(|&w| w as usize).collect())
    }

    /// The hidden widths between the upper layers.
    pub fn upper_hidden(&self) -> Vec<usize> {
        self.upper_hidden
            .as_ref()
            .map_or_else(|| DEFAULT_UPPER_HIDDEN.to_vec(), |v| v.iter().map(|&w| w as usize).collect())
    }
}

/// The model: h1 through `hidden` to `latent` units, then a layer of `upper_latent[i]` units
/// through `upper_hidden` for each i.
pub fn build(
    (hidden, latent): (&[usize], usize),
    (upper_hidden, upper_latent): (&[usize], &[usize]),
    input: [usize; 3],
    (activation, likelihood): (Activation, Likelihood),
    rng: &mut StdRng,
) -> Result<Box<dyn Family>> {
    let first = LayerSpec { hidden: hidden.to_vec(), latent };
    let upper = upper_latent.iter().map(|&latent| LayerSpec { hidden: upper_hidden.to_vec(), latent });
    let config = HvaeConfig { input, layers: std::iter::once(first).chain(upper).collect(), activation, likelihood };
    Ok(Box::new(Hvae::new(config, rng)?))
}
