//! # vae-layers: parameters, layers and optimizers on the autodiff tape
//!
//! - [`ParamStore`]: the trainable tensors of a model under stable, readable names
//!   (`enc_fc1.weight`, …), exported in PyTorch's layouts (a dense layer's weight is kept
//!   transposed in memory, see [`Layout`]), and how they enter a tape.
//! - [`Linear`], [`Conv2d`], [`ConvTranspose2d`]: layers that own nothing but the ids of their
//!   parameters; their `forward` records ops on a tape. Initialization follows PyTorch's
//!   defaults (see [`init`]). Activations are the tape's own functions (`tape.relu(h)`).
//! - [`WnConv2d`]: a weight-normalized convolution (w = g·v/‖v‖) with its data-dependent
//!   initialization.
//! - [`optim`]: Adam, SGD with momentum and Adagrad, each one fused pass per parameter, and
//!   gradient clipping by global norm.
//!
//! How these pieces serve the VAE, step by step, is told in the book (`docs/book/README.md`,
//! chapters 6 and 8).
//!
//! ```
//! use rand::SeedableRng;
//! use vae_autodiff::Tape;
//! use vae_layers::optim::{Adam, Optimizer};
//! use vae_layers::{Linear, ParamStore};
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut store = ParamStore::new();
//! let fc = Linear::new(&mut store, "fc", 3, 2, &mut rng);
//! let mut adam = Adam::new(1e-2);
//! let x = ndarray::Array2::<f32>::ones((4, 3)).into_dyn();
//! let mut losses = vec![];
//! for _ in 0..20 {
//!     let mut tape = Tape::new();
//!     let p = store.on_tape(&mut tape);
//!     let xv = tape.constant(x.clone());
//!     let y = fc.forward(&mut tape, &p, xv);
//!     let y2 = tape.square(y);
//!     let loss = tape.mean(y2);
//!     losses.push(tape.scalar(loss));
//!     let grads = p.gradients(&tape, tape.backward(loss));
//!     adam.step(store.values_mut(), &grads);
//! }
//! assert!(losses[19] < losses[0]);
//! ```

pub mod conv;
pub mod init;
pub mod linear;
pub mod optim;
pub mod params;
pub mod weight_norm;

pub use conv::{Conv2d, ConvTranspose2d};
pub use linear::Linear;
pub use params::{Layout, ParamId, ParamStore, ParamVars};
pub use weight_norm::WnConv2d;
