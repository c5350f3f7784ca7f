//! # vae: the variational autoencoder
//!
//! A VAE learns a generative model p(x) = ∫ p(x|z) p(z) dz of images x by training a decoder
//! p(x|z) together with an encoder q(z|x) = N(mu, diag(exp(logvar))) on the negative evidence
//! lower bound, in nats per example:
//!
//!   loss = −E_q[log p(x|z)] + β·KL(q(z|x) ‖ N(0, I)),
//!
//! the expectation estimated with one reparameterized sample z = mu + exp(½·logvar) ⊙ eps and the
//! KL in closed form, −½ Σ (1 + logvar − mu² − exp(logvar)).
//!
//! | module | what |
//! |---|---|
//! | [`config`] | architecture (`mlp`, `conv`), sizes, activation, likelihood (Bernoulli, Gaussian σ), classes |
//! | [`cvae`] | the conditional VAE: one-hot labels after the pixels and after z |
//! | [`objective`] | the K-sample ELBO and the importance-weighted bound (IWAE) |
//! | [`family`] | the [`Family`] interface every model family implements, and checkpoints' dispatch |
//! | [`model`] | [`Vae`]: encoder, [`model::reparameterize`], decoder, [`Vae::elbo`] |
//! | [`step`] | the training step every family shares: chunks, gradients summed in chunk order, the update |
//! | [`train`] | [`train::train_step`], evaluation, the importance-weighted bound |
//! | [`plain`] | the VAE and the conditional VAE as a [`Family`] |
//! | [`atomic`] | files written whole or not at all |
//! | [`vqvae`] | the VQ-VAE: nearest codebook rows, straight-through gradient, codebook and commitment terms |
//! | [`parts`] | what models are built from: [`parts::Mlp`], the Gaussian stochastic layer, likelihoods, the N(0, I) prior |
//! | [`hvae`] | a chain of Gaussian stochastic layers (Burda et al.'s two-layer model), from the parts |
//! | [`checkpoint`] | safetensors files with the configuration in their metadata; the one place a family's name is read |
//! | [`data`] | the data sources (IDX, image folders, NumPy arrays, CIFAR), their preparation and batches |
//! | [`run`] | the training run: recipe and presets, epochs, schedule, warm-up, checkpoints, metrics |
//!
//! The derivations behind each piece, next to the code, are in the book: `docs/book/README.md`
//! (the ELBO, the reparameterization trick, the closed-form KL, likelihoods, training).
//!
//! ```
//! use rand::SeedableRng;
//! use vae::{train::train_step, Vae, VaeConfig};
//! use vae_layers::optim::Adam;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let mut config = VaeConfig::mlp_mnist();
//! config.input = [1, 4, 4];
//! config.latent = 2;
//! let mut model = Vae::new(config, &mut rng).unwrap();
//! let mut adam = Adam::new(1e-2);
//! let x = ndarray::Array2::from_shape_fn((8, 16), |(n, i)| ((n + i) % 2) as f32).into_dyn();
//! let first = train_step(&mut model, &mut adam, &x, vae::model::standard_normal(&[8, 2], &mut rng), 1.0, None).unwrap();
//! for _ in 0..50 {
//!     let eps = vae::model::standard_normal(&[8, 2], &mut rng);
//!     train_step(&mut model, &mut adam, &x, eps, 1.0, None).unwrap();
//! }
//! let eps = vae::model::standard_normal(&[8, 2], &mut rng);
//! let last = train_step(&mut model, &mut adam, &x, eps, 1.0, None).unwrap();
//! assert!(last.loss < first.loss);
//! ```

/// The book's chapters (`docs/book/`), included so that their Rust snippets are compiled and
/// run as doctests.
#[cfg(doctest)]
pub mod book {
    #[doc = include_str!("../../../docs/book/01-latent-variables.md")]
    pub struct Chapter1LatentVariables;
    #[doc = include_str!("../../../docs/book/02-elbo.md")]
    pub struct Chapter2Elbo;
    #[doc = include_str!("../../../docs/book/03-reparameterization.md")]
    pub struct Chapter3Reparameterization;
    #[doc = include_str!("../../../docs/book/04-kl.md")]
    pub struct Chapter4Kl;
    #[doc = include_str!("../../../docs/book/05-likelihoods.md")]
    pub struct Chapter5Likelihoods;
    #[doc = include_str!("../../../docs/book/06-autodiff.md")]
    pub struct Chapter6Autodiff;
    #[doc = include_str!("../../../docs/book/07-convolution.md")]
    pub struct Chapter7Convolution;
    #[doc = include_str!("../../../docs/book/08-training.md")]
    pub struct Chapter8Training;
    #[doc = include_str!("../../../docs/book/09-performance.md")]
    pub struct Chapter9Performance;
    #[doc = include_str!("../../../docs/book/10-density.md")]
    pub struct Chapter10Density;
    #[doc = include_str!("../../../docs/book/11-families.md")]
    pub struct Chapter11Families;
    #[doc = include_str!("../../../docs/book/12-colour.md")]
    pub struct Chapter12Colour;
}

pub mod atomic;
pub mod checkpoint;
pub mod config;
pub mod cvae;
pub mod data;
pub mod error;
pub mod family;
pub mod hvae;
pub mod model;
pub mod objective;
pub mod parts;
pub mod plain;
pub mod prior;
pub mod run;
pub mod step;
pub mod train;
pub mod vqvae;

pub use config::{Activation, Arch, ConvSpec, FlowSpec, Likelihood, PriorKind, VaeConfig};
pub use error::Error;
pub use family::Family;
pub use model::Vae;
