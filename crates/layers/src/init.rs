//! PyTorch's default initialization of `nn.Linear`, `nn.Conv2d` and `nn.ConvTranspose2d`.
//!
//! PyTorch draws weights with `kaiming_uniform_(a = √5)`, which works out to
//! U(−1/√fan_in, 1/√fan_in): the gain is √(2 / (1 + a²)) = √(1/3), and the bound
//! gain·√(3 / fan_in) = 1/√fan_in. Biases are drawn from the same U(−1/√fan_in, 1/√fan_in).
//! fan_in is the number of inputs of one output unit: `in_features` for a linear layer,
//! C_in·K_h·K_w for a convolution, and, because PyTorch reads it from dimension 1 of the weight,
//! C_out·K_h·K_w for a transposed convolution (weight [C_in, C_out, K_h, K_w]).

use rand::Rng;
use rand_distr::{Distribution, Uniform};
use vae_autodiff::Tensor;

/// A tensor of the given shape drawn from U(−1/√fan_in, 1/√fan_in).
pub fn uniform_fan_in(shape: &[usize], fan_in: usize, rng: &mut impl Rng) -> Tensor {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    let dist = Uniform::new_inclusive(-bound, bound).expect("a finite, ordered range");
    Tensor::from_shape_simple_fn(shape.to_vec(), || dist.sample(rng))
}
