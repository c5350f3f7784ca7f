//! A residual block of weight-normalized 3×3 convolutions with ELU, the unit of Kingma et al.'s
//! ResNet VAE (2016):
//!
//! ```text
//!   y = shortcut(x) + conv2(elu(conv1(elu(x))))
//! ```
//!
//! conv1 has the block's stride s (1, or 2 to halve the map), conv2 stride 1; the shortcut is x
//! itself when the block keeps its shape, else a 1×1 convolution of stride s. Each convolution is
//! weight-normalized ([`vae_layers::WnConv2d`]) and starts from data: every channel at mean 0 and
//! deviation 1 on a first batch, conv2's at 0.1, so that a new block is close to its shortcut
//! and a deep stack starts close to a shallow one.
//!
//! Shape legend: x [N, C_in, H, W] → y [N, C_out, H/s, W/s] (H and W even when s = 2).

use rand::Rng;
use vae_autodiff::{ConvGeom, Tape, Tensor, Var};
use vae_layers::{ParamStore, ParamVars, WnConv2d};

/// The scale of conv2's data-dependent initialization: the residual branch starts small.
pub const BRANCH_INIT_SCALE: f32 = 0.1;

/// One residual block.
#[derive(Clone, Debug)]
pub struct ResBlock {
    /// 3×3, stride s, C_in → C_out.
    pub conv1: WnConv2d,
    /// 3×3, stride 1, C_out → C_out.
    pub conv2: WnConv2d,
    /// 1×1, stride s, C_in → C_out, where the block changes the shape.
    pub shortcut: Option<WnConv2d>,
}

impl ResBlock {
    /// `<name>.conv1`, `<name>.conv2` (and `<name>.shortcut`) in `store`.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        (c_in, c_out): (usize, usize),
        stride: usize,
        rng: &mut impl Rng,
    ) -> Self {
        let conv1 = WnConv2d::new(store, &format!("{name}.conv1"), c_in, c_out, 3, ConvGeom::new(stride, 1), rng);
        let conv2 = WnConv2d::new(store, &format!("{name}.conv2"), c_out, c_out, 3, ConvGeom::new(1, 1), rng);
        let shortcut = (stride != 1 || c_in != c_out)
            .then(|| WnConv2d::new(store, &format!("{name}.shortcut"), c_in, c_out, 1, ConvGeom::new(stride, 0), rng));
        ResBlock { conv1, conv2, shortcut }
    }

    /// y = shortcut(x) + conv2(elu(conv1(elu(x)))).
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        let a = tape.elu(x);
        let h = self.conv1.forward(tape, p, a);
        let h = tape.elu(h);
        let branch = self.conv2.forward(tape, p, h);
        let skip = match &self.shortcut {
            Some(conv) => conv.forward(tape, p, x),
            None => x,
        };
        tape.add(skip, branch)
    }

    /// The data-dependent initialization of the block's convolutions, in order, on its input x
    /// (values); returns the block's output on x.
    pub fn init_from_data(&self, store: &mut ParamStore, x: &Tensor) -> Tensor {
        let elu = |t: &Tensor| t.mapv(|v| if v > 0.0 { v } else { v.exp_m1() });
        let h = self.conv1.init_from_data(store, &elu(x), 1.0);
        let branch = self.conv2.init_from_data(store, &elu(&h), BRANCH_INIT_SCALE);
        let skip = match &self.shortcut {
            Some(conv) => conv.init_from_data(store, x, 1.0),
            None => x.clone(),
        };
        skip + branch
    }
}
