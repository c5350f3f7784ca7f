//! `vae-cli manifold`: a grid of latent points decoded (Kingma & Welling's Fig. 4).

use std::path::PathBuf;

use clap::Args;
use vae_autodiff::Tensor;

use crate::image::grid_scaled;
use crate::options::{LabelArgs, ModelArgs, Result};
use crate::pictures::{chosen_label, done, image_size, load_with_space, space};

/// Flags of `vae-cli manifold`.
#[derive(Args, Debug, Clone)]
pub struct ManifoldArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Points per side of the grid.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=60))]
    pub grid: u64,
    /// The two latent dimensions to vary (0-based); the others stay at 0.
    #[arg(long, value_delimiter = ',', default_value = "0,1", num_args = 1)]
    pub dims: Vec<usize>,
    /// A conditional model decodes the grid with this class [default: 0].
    #[command(flatten)]
    pub label: LabelArgs,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "manifold.png")]
    pub out: PathBuf,
}

/// Φ⁻¹(p), the quantile function of N(0, 1), by Acklam's rational approximation (relative
/// error below 1.2e-9 on (0, 1)).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// `vae-cli manifold`: decode z on a grid of the prior's quantiles, z_i = Φ⁻¹((i + ½)/G), so
/// that every cell covers equal prior mass; dimensions other than the two chosen stay at 0.
pub fn run(args: ManifoldArgs) -> Result<()> {
    let model = load_with_space(&args.model.checkpoint, "manifold")?;
    let (model, space) = (model.as_ref(), space(model.as_ref()));
    if let Some(prior) = space.prior_if_not_standard() {
        return Err(format!(
            "manifold lays its grid over the quantiles of N(0, I); this model's prior is {prior}: draw from it with `vae-cli sample`"
        )
        .into());
    }
    let j = space.latent_dim();
    let (a, b) = match args.dims.as_slice() {
        &[a, b] if a != b && a < j && b < j => (a, b),
        d => {
            return Err(format!("--dims takes two different latent dimensions below {j} (0-based), found {d:?}").into())
        }
    };
    let g = args.grid as usize;
    let q: Vec<f32> = (0..g).map(|i| normal_quantile((i as f64 + 0.5) / g as f64) as f32).collect();
    // Row r (top to bottom) has z_b decreasing; column c has z_a increasing.
    let mut z = Tensor::zeros(vec![g * g, j]);
    for r in 0..g {
        for c in 0..g {
            z[[r * g + c, a]] = q[c];
            z[[r * g + c, b]] = q[g - 1 - r];
        }
    }
    let label = chosen_label(model, &args.label, 0)?;
    let images = space.decode_points(z, &vec![label.unwrap_or(0); g * g]);
    let (h, w) = image_size(model);
    grid_scaled(&images, g, g, h, w, 2).save(&args.out)?;
    done(&args.out, &format!("a {g}×{g} manifold over latent dimensions {a} and {b}"))
}
