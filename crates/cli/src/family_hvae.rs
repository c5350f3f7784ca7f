//! `train --family hvae`: the chain of stochastic layers' own flags and their checks (Burda et
//! al.'s two-layer model with `--preset burda2`).

use clap::Args;

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

impl HvaeFlags {
    /// The checks clap cannot make; `chosen` says whether the family is the chain.
    pub fn check(&self, chosen: bool, model: ModelKind) -> Result<()> {
        if (self.upper_latent.is_some() || self.upper_hidden.is_some()) && !chosen {
            return Err("--upper-latent and --upper-hidden are for --family hvae".into());
        }
        if chosen && model != ModelKind::Mlp {
            return Err("--family hvae is a chain of dense stochastic layers: it takes --model mlp only".into());
        }
        Ok(())
    }
}
