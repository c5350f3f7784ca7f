//! # vae-autodiff: a reverse-mode autodiff tape
//!
//! The engine under the VAE. A [`Tape`] records every op of a forward pass, in order, as a node
//! holding its value (an `ndarray` array of `f32`) and an [`Op`]; [`Tape::backward`] walks the
//! nodes from the last to the first and applies the chain rule, one `match` arm per op. Every
//! op lives in a file of its family, its forward beside its backward, with the derivative
//! written above the backward:
//!
//! | file | ops |
//! |---|---|
//! | [`elementwise`] | `add` `sub` `mul` `div` (broadcasting), `neg` `scale` `exp` `log` `sqrt` `square`, `relu` `leaky_relu` `elu` `sigmoid` `tanh` `softplus` |
//! | [`matmul`] | `matmul` (a sparse path for a mostly-zero left operand), `matmul_nt` (a·bᵀ, no copy) |
//! | [`reduce`] | `sum` `mean` `sum_axis` `mean_axis` `log_sum_exp` |
//! | [`shape`] | `reshape` `flatten` `transpose` `slice` `concat` |
//! | [`conv`] | `conv2d` `conv_transpose2d` (im2col + GEMM, parallel over the batch) |
//! | [`loss`] | fused `bce_with_logits` `gaussian_nll` `kl_std_normal` |
//!
//! [`fastmath`] holds the vectorizable eˣ, ln(1 + u), σ and softplus the activations and losses
//! use. [`kernels`] holds the hot loops, compiled for AVX2 and AVX-512 besides the baseline and
//! chosen at run time, and the tiles for products with few rows. [`gradcheck`] holds the finite-difference checker that every op is tested with. The
//! derivation behind the tape is in `docs/ARCHITECTURE.md`, the table of every op's derivative
//! in chapter 6 of the book (`docs/book/06-autodiff.md`); how to add an op is in this crate's
//! README.
//!
//! ```
//! use ndarray::array;
//! use vae_autodiff::Tape;
//!
//! // L = Σ relu(x·Wᵀ), with W a parameter borrowed by the tape.
//! let w = array![[1.0f32, -2.0], [0.5, 1.0]].into_dyn();
//! let mut tape = Tape::new();
//! let x = tape.constant(array![[3.0f32, 1.0]].into_dyn());
//! let w_var = tape.param(&w);
//! let h = tape.matmul_nt(x, w_var); // [[1.0, 2.5]]
//! let r = tape.relu(h);
//! let loss = tape.sum(r);
//! assert_eq!(tape.scalar(loss), 3.5);
//!
//! let grads = tape.backward(loss);
//! // dL/dW = [relu'(h)]ᵀ·x: both units are active, so every row of dW is x.
//! assert_eq!(grads.get(w_var).unwrap(), &array![[3.0f32, 1.0], [3.0, 1.0]].into_dyn());
//! assert!(grads.get(x).is_none()); // constants get no gradient
//! ```

pub mod conv;
pub mod elementwise;
pub mod fastmath;
pub mod gradcheck;
pub mod kernels;
pub mod loss;
pub mod matmul;
pub mod reduce;
pub mod shape;
mod tape;

pub use conv::ConvGeom;
pub use tape::{Gradients, Op, Tape, Tensor, Var};
