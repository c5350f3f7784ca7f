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
//! Shape legend: x [N, C_in, H, W] → y [N, C_out, ⌈H/s⌉, ⌈W/s⌉].
//!
//! The ResNet VAE's bodies are stacks of them: the encoder, for each level l with C_l feature
//! maps, a stride-2 block into it and a stride-1 block; the decoder mirrors it with
//! [`UpBlock`]s, whose transposed convolutions double the map (or double it less one, to give
//! back an odd size exactly).

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
        let h = self.conv1.init_from_data(store, &elu_values(x), 1.0);
        let branch = self.conv2.init_from_data(store, &elu_values(&h), BRANCH_INIT_SCALE);
        let skip = match &self.shortcut {
            Some(conv) => conv.init_from_data(store, x, 1.0),
            None => x.clone(),
        };
        skip + branch
    }
}

/// The decoder's block: y = shortcut(x) + conv2(elu(up(elu(x)))), `up` a transposed 3×3 or 4×4
/// convolution of stride 2 that maps H to `2H − 1` or `2H` (padding 1), the shortcut a
/// transposed 1×1 or 2×2 convolution of stride 2 to the same size.
#[derive(Clone, Debug)]
pub struct UpBlock {
    /// Transposed, stride 2, C_in → C_out.
    pub up: WnConv2d,
    /// 3×3, stride 1, C_out → C_out.
    pub conv2: WnConv2d,
    /// Transposed, stride 2, C_in → C_out.
    pub shortcut: WnConv2d,
}

impl UpBlock {
    /// `<name>.up`, `<name>.conv2`, `<name>.shortcut`; `odd` makes H into 2H − 1 instead of 2H.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        (c_in, c_out): (usize, usize),
        odd: bool,
        rng: &mut impl Rng,
    ) -> Self {
        let (k_up, k_skip) = if odd { (3, 1) } else { (4, 2) };
        let up = WnConv2d::new_transposed(store, &format!("{name}.up"), c_in, c_out, k_up, ConvGeom::new(2, 1), rng);
        let conv2 = WnConv2d::new(store, &format!("{name}.conv2"), c_out, c_out, 3, ConvGeom::new(1, 1), rng);
        let shortcut =
            WnConv2d::new_transposed(store, &format!("{name}.shortcut"), c_in, c_out, k_skip, ConvGeom::new(2, 0), rng);
        UpBlock { up, conv2, shortcut }
    }

    /// y = shortcut(x) + conv2(elu(up(elu(x)))).
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        let a = tape.elu(x);
        let h = self.up.forward(tape, p, a);
        let h = tape.elu(h);
        let branch = self.conv2.forward(tape, p, h);
        let skip = self.shortcut.forward(tape, p, x);
        tape.add(skip, branch)
    }

    /// The data-dependent start, as [`ResBlock::init_from_data`].
    pub fn init_from_data(&self, store: &mut ParamStore, x: &Tensor) -> Tensor {
        let h = self.up.init_from_data(store, &elu_values(x), 1.0);
        let branch = self.conv2.init_from_data(store, &elu_values(&h), BRANCH_INIT_SCALE);
        self.shortcut.init_from_data(store, x, 1.0) + branch
    }
}

/// ELU on values (the data-dependent start works outside the tape).
fn elu_values(t: &Tensor) -> Tensor {
    t.mapv(vae_autodiff::fastmath::elu)
}

pub use crate::config::level_sizes;

/// The encoder's body: for each level's C_l feature maps, a stride-2 block into it and a
/// stride-1 block. [N, C, H, W] → [N, C_L, H_L, W_L].
#[derive(Clone, Debug)]
pub struct ResnetEncoder {
    /// The blocks in order.
    pub blocks: Vec<ResBlock>,
}

impl ResnetEncoder {
    /// `enc_res<l>a` (stride 2) and `enc_res<l>b` for each level l = 1.. of `channels`.
    pub fn new(store: &mut ParamStore, c_in: usize, channels: &[usize], rng: &mut impl Rng) -> Self {
        let mut blocks = Vec::new();
        let mut c = c_in;
        for (l, &c_l) in channels.iter().enumerate() {
            blocks.push(ResBlock::new(store, &format!("enc_res{}a", l + 1), (c, c_l), 2, rng));
            blocks.push(ResBlock::new(store, &format!("enc_res{}b", l + 1), (c_l, c_l), 1, rng));
            c = c_l;
        }
        ResnetEncoder { blocks }
    }

    /// The features of images x [N, C, H, W].
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, x: Var) -> Var {
        self.blocks.iter().fold(x, |h, b| b.forward(tape, p, h))
    }

    /// The data-dependent start of every block, in order, on images x; returns the features.
    pub fn init_from_data(&self, store: &mut ParamStore, x: &Tensor) -> Tensor {
        self.blocks.iter().fold(x.clone(), |h, b| b.init_from_data(store, &h))
    }
}

/// The decoder's body, the encoder's mirror: from the top level's maps, for each level a
/// stride-1 block and an [`UpBlock`] to the next level's size and channels (the input's size
/// at the bottom, with C_1 maps), then a 3×3 convolution to the output channels.
#[derive(Clone, Debug)]
pub struct ResnetDecoder {
    /// (stride-1 block, up block) per level, from the top.
    pub levels: Vec<(ResBlock, UpBlock)>,
    /// 3×3 to the decoder's outputs (O per image channel).
    pub out: WnConv2d,
}

impl ResnetDecoder {
    /// `dec_res<l>a`, `dec_res<l>b` for each level from the top, and `dec_out`, for maps of
    /// `sizes` (from [`level_sizes`]) and `outputs` output channels.
    pub fn new(
        store: &mut ParamStore,
        channels: &[usize],
        sizes: &[usize],
        outputs: usize,
        rng: &mut impl Rng,
    ) -> Self {
        let l_top = channels.len();
        let levels = (1..=l_top)
            .rev()
            .map(|l| {
                let (c_l, c_below) = (channels[l - 1], channels[l.saturating_sub(2)]);
                let keep = ResBlock::new(store, &format!("dec_res{l}a"), (c_l, c_l), 1, rng);
                let odd = sizes[l - 1] % 2 == 1;
                let up = UpBlock::new(store, &format!("dec_res{l}b"), (c_l, c_below), odd, rng);
                (keep, up)
            })
            .collect();
        let out = WnConv2d::new(store, "dec_out", channels[0], outputs, 3, ConvGeom::new(1, 1), rng);
        ResnetDecoder { levels, out }
    }

    /// The decoder's outputs [N, O·C, H, W] from the top maps h [N, C_L, H_L, W_L].
    pub fn forward(&self, tape: &mut Tape, p: &ParamVars, h: Var) -> Var {
        let h = self.levels.iter().fold(h, |h, (keep, up)| {
            let h = keep.forward(tape, p, h);
            up.forward(tape, p, h)
        });
        let a = tape.elu(h);
        self.out.forward(tape, p, a)
    }

    /// The data-dependent start of every layer, in order, on the top maps h (values).
    pub fn init_from_data(&self, store: &mut ParamStore, h: &Tensor) {
        let h = self.levels.iter().fold(h.clone(), |h, (keep, up)| {
            let h = keep.init_from_data(store, &h);
            up.init_from_data(store, &h)
        });
        self.out.init_from_data(store, &elu_values(&h), 1.0);
    }
}
