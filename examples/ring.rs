//! Any distribution from a Gaussian through a learned function: a VAE trained on a 2-D ring.
//!
//! The data are points n/‖n‖·(1 + 0.08·m) for n ~ N(0, I₂) and m ~ N(0, 1): Gaussian noise
//! through a non-linear map. A small VAE (2 → 64 → 64 → z of 2, Gaussian likelihood with
//! σ = 0.05) learns a decoder that carries the prior N(0, I) onto the ring. The picture shows
//! the data, samples from the model, x = decoder(z) + σ·ε with z, ε ~ N(0, I), and the fixed
//! map of Doersch's tutorial (his Fig. 2), g(z) = z/10 + z/‖z‖, applied to the same prior: the
//! function a network would have to learn, written by hand.
//!
//! ```sh
//! cargo run --example ring            # writes ring.png (a few seconds)
//! cargo run --example ring -- out.png
//! ```

use rand::rngs::StdRng;
use rand::SeedableRng;
use vae::model::standard_normal;
use vae::train::train_step;
use vae::{Arch, Likelihood, Vae, VaeConfig};
use vae_autodiff::Tensor;
use vae_cli::figure::{self, Format, Layout, Mark, Panel, Series};
use vae_cli::image::PALETTE;
use vae_layers::optim::Adam;

const SIGMA: f32 = 0.05;

/// n points on the noisy ring.
fn ring(n: usize, rng: &mut StdRng) -> Tensor {
    let g = standard_normal(&[n, 3], rng);
    Tensor::from_shape_fn(vec![n, 2], |i| {
        let (a, b, m) = (g[[i[0], 0]], g[[i[0], 1]], g[[i[0], 2]]);
        let r = (a * a + b * b).sqrt().max(1e-6);
        let c = if i[1] == 0 { a } else { b };
        c / r * (1.0 + 0.08 * m)
    })
}

/// Doersch's hand-written map from the plane onto a ring: g(z) = z/10 + z/‖z‖. Every point
/// lands at radius 1 + ‖z‖/10, none inside; it is discontinuous at z = 0.
fn doersch(z: &Tensor) -> Tensor {
    Tensor::from_shape_fn(z.raw_dim(), |i| {
        let (a, b) = (z[[i[0], 0]], z[[i[0], 1]]);
        let r = (a * a + b * b).sqrt().max(1e-6);
        z[[i[0], i[1]]] / 10.0 + z[[i[0], i[1]]] / r
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "ring.png".into());
    let mut rng = StdRng::seed_from_u64(7);
    let config = VaeConfig {
        arch: Arch::Mlp { hidden: vec![64, 64] },
        input: [1, 1, 2],
        latent: 2,
        likelihood: Likelihood::Gaussian { sigma: SIGMA },
        ..VaeConfig::mlp_mnist()
    };
    let mut model = Vae::new(config, &mut rng)?;
    let mut adam = Adam::new(2e-3);
    let steps = 4000;
    for step in 0..steps {
        let x = ring(256, &mut rng);
        let eps = standard_normal(&[256, 2], &mut rng);
        let t = train_step(&mut model, &mut adam, &x, eps, 1.0, None).map_err(|e| format!("diverged: {e:?}"))?;
        if step % 500 == 0 || step == steps - 1 {
            println!("step {step:>4}  loss {:8.3}  recon {:8.3}  kl {:6.3}", t.loss, t.recon, t.kl);
        }
    }

    let data = ring(3000, &mut rng);
    let mean = model.decode_mean(standard_normal(&[3000, 2], &mut rng));
    let samples = &mean + &(standard_normal(&[3000, 2], &mut rng) * SIGMA);
    let fixed = doersch(&standard_normal(&[3000, 2], &mut rng));
    let range = -1.6..1.6;
    let panels =
        [(&data, "data: a ring"), (&samples, "learned: decoder(z) + σ·ε"), (&fixed, "fixed: g(z) = z/10 + z/‖z‖")];
    let panels: Vec<Panel> = panels
        .into_iter()
        .enumerate()
        .map(|(k, (pts, title))| {
            let points = pts.outer_iter().map(|p| (p[0] as f64, p[1] as f64)).collect();
            let dots = Series { mark: Mark::Dots(2), ..Series::line("", points) }.colored(PALETTE[k * 3]);
            Panel { range: Some((range.clone(), range.clone())), ..Panel::new(title, ("x₁", "x₂"), vec![dots]) }
        })
        .collect();
    let picture =
        figure::draw("a Gaussian through a function", &panels, ((650, 620), Layout::Row), Format::of(out.as_ref()))?;
    vae::checkpoint::write_atomic(std::path::Path::new(&out), &picture)?;
    println!("wrote {out}");
    Ok(())
}
