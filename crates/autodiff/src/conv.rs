//! 2-D convolution and transposed convolution as GEMMs: an implicit im2col feeding the product
//! strip by strip, and col2im after a product.
//!
//! Shape legend (NCHW, PyTorch's layouts)
//! - N: batch, C_in / C_out: channels, H, W: input height and width, K_h, K_w: kernel,
//!   s: stride, p: padding (the same on both axes), H_o, W_o: output height and width
//! - `conv2d`:           x [N, C_in, H, W], w [C_out, C_in, K_h, K_w], b `[C_out]`
//!   → y [N, C_out, H_o, W_o],  H_o = ⌊(H + 2p − K_h) / s⌋ + 1
//! - `conv_transpose2d`: x [N, C_in, H, W], w [C_in, C_out, K_h, K_w], b `[C_out]`
//!   → y [N, C_out, H_o, W_o],  H_o = (H − 1)·s − 2p + K_h
//!
//! im2col lays every receptive field of one image out as a column of a matrix
//! `cols` [C·K_h·K_w, H_o·W_o], so that the convolution becomes one GEMM:
//! y_n = W [C_out, C_in·K_h·K_w] · cols_n. Images are taken in groups of `GROUP` whose
//! blocks sit side by side, one GEMM per group. cols is never stored: it is *implicit*
//! (`ImplicitCols`), and the product ([`product_of_strips`]) asks for one strip of it at a
//! time, 256 rows by one tile's width, which is read from the zero-padded images into a buffer
//! that stays in cache. The weight gradients dY·colsᵀ read colsᵀ the same way. col2im is
//! im2col's adjoint: it adds each column of a product back onto the pixels it was read from.
//! The transposed convolution is the same two pieces in the other order (GEMM with Wᵀ, then
//! col2im), which is why it is the gradient of a convolution with respect to its input (see
//! docs/book/07-convolution.md). Groups of images are independent, so every pass is parallel
//! over them with rayon. [`conv2d_naive`] and [`conv_transpose2d_naive`] are the direct loops
//! the fast path is tested against.
//!
//! A stride-1 convolution with long enough rows (the ResNet VAE's 3×3 layers at 28×28, 14×14
//! and 7×7) computes its output, and col2im its input gradient, on the *padded grid*
//! (`GridCols`): output rows as wide as the padded image, so that each row of cols is a
//! contiguous run of the padded image and a strip is copied instead of gathered. The
//! K_w − 1 extra columns of each row are dropped; the kept ones are the same sums, bit for bit.
//! For 16 channels at 14×14 and a batch of 16, forward and backward took 1.01–1.04 ms instead
//! of 1.74–1.78 (AMD EPYC, AVX2, two threads; `cargo bench --bench engine --
//! "conv/fwd.bwd/resnet"`, docs/PERFORMANCE.md).

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::kernels::gemm::{product_of_strips, Strips};
use crate::matmul::product;
use crate::tape::{Op, Tape, Tensor, Var};

/// Stride and zero padding of a convolution, the same along height and width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Step between two receptive fields.
    pub stride: usize,
    /// Zeros added on each side of the image.
    pub padding: usize,
}

impl ConvGeom {
    /// A geometry with the given stride and padding.
    pub fn new(stride: usize, padding: usize) -> Self {
        assert!(stride >= 1, "ConvGeom: stride must be at least 1");
        Self { stride, padding }
    }

    /// Output size of a convolution along one axis: ⌊(input + 2p − kernel) / s⌋ + 1.
    #[track_caller]
    pub fn conv_out(&self, input: usize, kernel: usize) -> usize {
        let padded = input + 2 * self.padding;
        assert!(padded >= kernel, "conv2d: kernel {kernel} is larger than the padded input {padded}");
        (padded - kernel) / self.stride + 1
    }

    /// Output size of a transposed convolution along one axis: (input − 1)·s − 2p + kernel.
    #[track_caller]
    pub fn conv_transpose_out(&self, input: usize, kernel: usize) -> usize {
        let full = (input - 1) * self.stride + kernel;
        assert!(
            full > 2 * self.padding,
            "conv_transpose2d: padding {} leaves no output for input {input}, kernel {kernel}",
            self.padding
        );
        full - 2 * self.padding
    }
}

/// The four sizes of an NCHW array, or a panic naming the op.
#[track_caller]
fn dims4(op: &str, what: &str, t: &Tensor) -> [usize; 4] {
    match t.shape() {
        &[a, b, c, d] => [a, b, c, d],
        s => panic!("{op}: {what} must be 4-D, found shape {s:?}"),
    }
}

/// The geometry of one im2col: an image [C, H, W] read by a K_h×K_w window on an H_o×W_o grid.
#[derive(Clone, Copy, Debug)]
struct Im2col {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    geom: ConvGeom,
}

impl Im2col {
    /// Rows of `cols`: one per (channel, kernel row, kernel column).
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Columns of `cols`: one per output pixel.
    fn cols(&self) -> usize {
        self.ho * self.wo
    }

    /// The input coordinate read by output coordinate `o` at kernel offset `k`, if inside.
    fn source(&self, o: usize, k: usize, size: usize) -> Option<usize> {
        let i = (o * self.geom.stride + k) as isize - self.geom.padding as isize;
        (0..size as isize).contains(&i).then_some(i as usize)
    }

    /// The scatter table of this geometry, for col2im: for each entry of one image's cols
    /// matrix, row (c, ki, kj) and column (oh, ow) in row-major order, the offset in the image
    /// [C, H, W] of the pixel it was read from, or [`PADDING`] where it was read from the zero
    /// padding (which has no gradient to receive).
    ///
    /// Built once per op call and shared by all its images: col2im then spends one load per
    /// entry instead of recomputing coordinates for short runs of pixels (a 7×7 output grid
    /// has runs of 7). The reads of im2col go through [`Self::offsets`] instead, on padded
    /// images, where no entry needs a test.
    fn table(&self) -> Vec<u32> {
        assert!(self.c * self.h * self.w < PADDING as usize, "im2col: image too large for a u32 offset");
        let mut table = Vec::with_capacity(self.rows() * self.cols());
        for c in 0..self.c {
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    for oh in 0..self.ho {
                        for ow in 0..self.wo {
                            let pixel = self.source(oh, ki, self.h).zip(self.source(ow, kj, self.w));
                            table.push(match pixel {
                                Some((ih, iw)) => ((c * self.h + ih) * self.w + iw) as u32,
                                None => PADDING,
                            });
                        }
                    }
                }
            }
        }
        table
    }

    /// Where the entries of cols sit in an image padded with zeros ([`Self::pad`]): entry
    /// (r, q) of one image's cols is padded[row[r] + pixel[q]], with
    /// row[(c, ki, kj)] = (c·H_p + ki)·W_p + kj and pixel[(oh, ow)] = oh·s·W_p + ow·s
    /// (H_p = H + 2p, W_p = W + 2p). The padding is part of the image, so no read tests it.
    fn offsets(&self) -> Offsets {
        let (hp, wp, s) = (self.h + 2 * self.geom.padding, self.w + 2 * self.geom.padding, self.geom.stride);
        assert!(self.c * hp * wp < u32::MAX as usize, "im2col: image too large for a u32 offset");
        let mut row = Vec::with_capacity(self.rows());
        for c in 0..self.c {
            for ki in 0..self.kh {
                row.extend((0..self.kw).map(|kj| ((c * hp + ki) * wp + kj) as u32));
            }
        }
        let mut pixel = Vec::with_capacity(self.cols());
        for oh in 0..self.ho {
            pixel.extend((0..self.wo).map(|ow| (oh * s * wp + ow * s) as u32));
        }
        Offsets { row, pixel, padded_len: self.c * hp * wp, runs_of_4: self.kw.is_multiple_of(4) }
    }

    /// Whether the forward and the input gradient run on the padded grid ([`GridCols`]): a
    /// stride-1 convolution whose K_w − 1 extra columns per output row cost at most a third of
    /// the work (output rows of 6 or more for a 3×3 kernel). At 7×7 the copied strips more than
    /// pay for the extra columns (the ResNet VAE's 32-channel layer, forward and backward, took
    /// 0.83 ms instead of 1.07); at 4×4, half the work extra, the benchmark could not tell.
    fn on_grid(&self) -> bool {
        self.geom.stride == 1 && 3 * (self.kw - 1) <= self.wo
    }

    /// W_p = W + 2p, the width of a padded image and of the padded grid.
    fn padded_width(&self) -> usize {
        self.w + 2 * self.geom.padding
    }

    /// Columns of one image on the padded grid: H_o rows of W_p.
    fn grid_cols(&self) -> usize {
        self.ho * self.padded_width()
    }

    /// The images of a group [n][C, H, W], each surrounded by p zeros: [n][C, H_p, W_p], and
    /// K_w zeros after the last, which the padded grid's last columns read.
    fn pad(&self, group: &[f32], img_len: usize) -> Vec<f32> {
        let (p, wp) = (self.geom.padding, self.w + 2 * self.geom.padding);
        let hp = self.h + 2 * p;
        let mut padded = vec![0.0f32; group.len() / img_len * self.c * hp * wp + self.kw];
        for (img, out) in group.chunks_exact(img_len).zip(padded.chunks_exact_mut(self.c * hp * wp)) {
            for c in 0..self.c {
                for ih in 0..self.h {
                    let src = &img[(c * self.h + ih) * self.w..][..self.w];
                    out[(c * hp + ih + p) * wp + p..][..self.w].copy_from_slice(src);
                }
            }
        }
        padded
    }

    /// The adjoint of im2col: img[c, ih, iw] += every entry of `cols` that was read from it.
    /// Row r of this image's block starts at `cols[r·ld]`, images side by side as in
    /// [`ImplicitCols`].
    fn col2im(&self, table: &[u32], cols: &[f32], img: &mut [f32], ld: usize) {
        let ncols = self.cols();
        for (r, sources) in table.chunks_exact(ncols).enumerate() {
            for (&v, &i) in cols[r * ld..r * ld + ncols].iter().zip(sources) {
                if let Some(x) = img.get_mut(i as usize) {
                    *x += v;
                }
            }
        }
    }
}

/// The gather-table entry of a read from the zero padding (no image has this many pixels).
const PADDING: u32 = u32::MAX;

fn matrix(rows: usize, cols: usize, data: &[f32]) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), data).expect("matrix view: sizes agree")
}

/// y[n, c, …] += b[c] for every n and pixel.
fn add_bias(y: &mut Tensor, b: &Tensor) {
    let plane = y.shape()[2] * y.shape()[3];
    let b = b.as_slice().expect("standard layout");
    y.as_slice_mut()
        .expect("standard layout")
        .par_chunks_mut(plane * b.len())
        .for_each(|y_n| y_n.chunks_mut(plane).zip(b).for_each(|(p, &b)| p.iter_mut().for_each(|v| *v += b)));
}

#[track_caller]
fn check_bias(op: &str, b: Option<&Tensor>, c_out: usize) {
    if let Some(b) = b {
        assert_eq!(b.shape(), [c_out], "{op}: bias must have shape [{c_out}], found {:?}", b.shape());
    }
}

impl Tape<'_> {
    /// y = conv2d(x, w) + b: x [N, C_in, H, W], w [C_out, C_in, K_h, K_w], b `[C_out]`.
    #[track_caller]
    pub fn conv2d(&mut self, x: Var, w: Var, b: Option<Var>, geom: ConvGeom) -> Var {
        let mut y = conv2d_forward(self.value(x), self.value(w), geom);
        if let Some(b) = b {
            check_bias("conv2d", Some(self.value(b)), y.shape()[1]);
            add_bias(&mut y, self.value(b));
        }
        self.push(y, Op::Conv2d { x, w, b, geom })
    }

    /// y = conv_transpose2d(x, w) + b: x [N, C_in, H, W], w [C_in, C_out, K_h, K_w], b `[C_out]`.
    #[track_caller]
    pub fn conv_transpose2d(&mut self, x: Var, w: Var, b: Option<Var>, geom: ConvGeom) -> Var {
        let mut y = conv_transpose2d_forward(self.value(x), self.value(w), geom);
        if let Some(b) = b {
            check_bias("conv_transpose2d", Some(self.value(b)), y.shape()[1]);
            add_bias(&mut y, self.value(b));
        }
        self.push(y, Op::ConvTranspose2d { x, w, b, geom })
    }
}

/// The im2col geometry of a convolution of `x` by `w` (checks that the channels agree).
#[track_caller]
fn conv2d_geometry(x: &Tensor, w: &Tensor, geom: ConvGeom) -> ([usize; 4], [usize; 4], Im2col) {
    let [n, c_in, h, wd] = dims4("conv2d", "x", x);
    let [c_out, c_in_w, kh, kw] = dims4("conv2d", "w", w);
    assert_eq!(c_in, c_in_w, "conv2d: x has {c_in} channels, w {:?} expects {c_in_w}", w.shape());
    let (ho, wo) = (geom.conv_out(h, kh), geom.conv_out(wd, kw));
    let g = Im2col { c: c_in, h, w: wd, kh, kw, ho, wo, geom };
    ([n, c_in, h, wd], [c_out, c_in, kh, kw], g)
}

/// Images handled by one GEMM. Their im2col blocks are laid side by side,
/// cols [C·K_h·K_w, G·H_o·W_o], so that the weight is packed once per group instead of once
/// per image and the GEMM is wide enough to run at full speed. Fixed, so that every sum is
/// taken in the same order on any number of threads.
const GROUP: usize = 8;

/// Lays the per-image matrices of a group, [n][c][len], side by side: [c][n·len].
fn gather(group: &[f32], c: usize, len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(group.len());
    for ch in 0..c {
        for img in group.chunks_exact(c * len) {
            out.extend_from_slice(&img[ch * len..][..len]);
        }
    }
    out
}

/// The inverse of [`gather`]: [c][n·len] back to the images of the group, [n][c][len].
fn scatter(mat: &[f32], group: &mut [f32], c: usize, len: usize) {
    let n = group.len() / (c * len);
    for (i, img) in group.chunks_mut(c * len).enumerate() {
        for ch in 0..c {
            img[ch * len..][..len].copy_from_slice(&mat[ch * n * len + i * len..][..len]);
        }
    }
}

/// The offsets of [`Im2col::offsets`].
struct Offsets {
    /// One per row of cols: (channel, kernel row, kernel column).
    row: Vec<u32>,
    /// One per column of one image's cols: (output row, output column).
    pixel: Vec<u32>,
    /// Values of one padded image, C·H_p·W_p.
    padded_len: usize,
    /// Whether the row offsets come in runs of 4 consecutive values from the first (K_w a
    /// multiple of 4: each kernel row reads neighbouring pixels).
    runs_of_4: bool,
}

/// The im2col matrix of a group of images, their blocks side by side, [rows, n·cols]:
/// cols[(c, ki, kj), (i, oh, ow)] = img_i[c, oh·s + ki − p, ow·s + kj − p], or 0 in the
/// padding. It is never stored: the product asks for one strip at a time ([`Strips`]), which
/// is read from the padded images into a buffer that stays in cache (an implicit GEMM).
struct ImplicitCols<'a> {
    off: &'a Offsets,
    /// The group's images, padded ([`Im2col::pad`]).
    padded: Vec<f32>,
}

impl<'a> ImplicitCols<'a> {
    fn new(g: &Im2col, off: &'a Offsets, group: &[f32], img_len: usize) -> Self {
        Self { off, padded: g.pad(group, img_len) }
    }

    /// Columns of the whole matrix: one per pixel of every image's output grid.
    fn width(&self) -> usize {
        self.padded.len() / self.off.padded_len * self.off.pixel.len()
    }

    /// Image i padded, from the value at `offset` on.
    fn image_from(&self, i: usize, offset: u32) -> &[f32] {
        &self.padded[i * self.off.padded_len..(i + 1) * self.off.padded_len][offset as usize..]
    }
}

impl Strips for ImplicitCols<'_> {
    fn dim(&self) -> (usize, usize) {
        (self.off.row.len(), self.width())
    }

    /// Row t of the strip is row k0 + t of cols from column j0 on: runs of pixels of one image.
    fn fill(&self, k0: usize, kc: usize, j0: usize, cols: usize, out: &mut [f32]) {
        let n_pix = self.off.pixel.len();
        for (&row, mut out_row) in self.off.row[k0..k0 + kc].iter().zip(out.chunks_exact_mut(cols)) {
            let mut j = j0;
            while !out_row.is_empty() {
                let (i, q) = (j / n_pix, j % n_pix);
                let run = (n_pix - q).min(out_row.len());
                let (head, rest) = out_row.split_at_mut(run);
                read_at(self.image_from(i, row), &self.off.pixel[q..q + run], head);
                (out_row, j) = (rest, j + run);
            }
        }
    }
}

/// The transpose of [`ImplicitCols`], colsᵀ [n·cols, rows]: the right operand of a weight
/// gradient dY·colsᵀ.
struct TransposedCols<'a>(&'a ImplicitCols<'a>);

impl Strips for TransposedCols<'_> {
    fn dim(&self) -> (usize, usize) {
        (self.0.width(), self.0.off.row.len())
    }

    /// Row t of the strip is pixel j = k0 + t of cols (image j / cols, pixel j % cols), its
    /// entries j0.. : the same row offsets from that pixel's corner. A kernel row is a run of
    /// neighbouring pixels, copied 4 at a time where the runs allow it.
    fn fill(&self, k0: usize, kc: usize, j0: usize, cols: usize, out: &mut [f32]) {
        let off = self.0.off;
        let n_pix = off.pixel.len();
        let by_4 = off.runs_of_4 && j0.is_multiple_of(4) && cols.is_multiple_of(4);
        for (j, out_row) in (k0..k0 + kc).zip(out.chunks_exact_mut(cols)) {
            let (i, q) = (j / n_pix, j % n_pix);
            let (src, offsets) = (self.0.image_from(i, off.pixel[q]), &off.row[j0..j0 + cols]);
            if by_4 {
                read_runs_of_4(src, offsets, out_row);
            } else {
                read_at(src, offsets, out_row);
            }
        }
    }
}

/// The im2col matrix of a stride-1 convolution on the *padded grid*: its columns are the
/// pixels (oh, ow) of an H_o × W_p grid, ow running over the whole padded width W_p instead of
/// the output's W_o = W_p − K_w + 1. On that grid, entry ((c, ki, kj), q) of an image is
/// padded[row(c, ki, kj) + q] with q = oh·W_p + ow: each row of the matrix is a contiguous run
/// of the padded image, so a strip is copied rather than gathered through offsets. The K_w − 1
/// columns past W_o of each grid row read across the edge and are dropped from the product
/// ([`scatter_from_grid`]). Every column that is kept is computed by the same sums as in
/// [`ImplicitCols`], so the results are the same bit for bit.
struct GridCols<'a> {
    off: &'a Offsets,
    /// The group's images, padded ([`Im2col::pad`]).
    padded: Vec<f32>,
    /// Columns of one image, H_o·W_p.
    per_image: usize,
}

impl<'a> GridCols<'a> {
    fn new(g: &Im2col, off: &'a Offsets, group: &[f32], img_len: usize) -> Self {
        Self { off, padded: g.pad(group, img_len), per_image: g.grid_cols() }
    }
}

impl Strips for GridCols<'_> {
    fn dim(&self) -> (usize, usize) {
        (self.off.row.len(), self.padded.len() / self.off.padded_len * self.per_image)
    }

    /// The strip's columns j0.. fall into runs within one image; for each run, row t of the
    /// strip is a copy of that image's padded values from row k0 + t's offset on.
    fn fill(&self, k0: usize, kc: usize, j0: usize, cols: usize, out: &mut [f32]) {
        let (mut u, mut j) = (0, j0);
        while u < cols {
            let (i, q) = (j / self.per_image, j % self.per_image);
            let run = (self.per_image - q).min(cols - u);
            let image = &self.padded[i * self.off.padded_len + q..];
            for (&row, out_row) in self.off.row[k0..k0 + kc].iter().zip(out.chunks_exact_mut(cols)) {
                copy_run(&image[row as usize..], &mut out_row[u..], run);
            }
            (u, j) = (u + run, j + run);
        }
    }
}

/// dst[..run] = src[..run], with the widths of a whole strip (16 and 64 values) copied as
/// fixed-size blocks, which compile to a few vector moves instead of a call to memcpy.
#[inline]
fn copy_run(src: &[f32], dst: &mut [f32], run: usize) {
    match run {
        16 => dst[..16].copy_from_slice(&src[..16]),
        64 => dst[..64].copy_from_slice(&src[..64]),
        _ => dst[..run].copy_from_slice(&src[..run]),
    }
}

/// The output of a product on the padded grid, [C][n·H_o·W_p], back to the images of the
/// group, [n][C][H_o·W_o]: the first W_o columns of every grid row.
fn scatter_from_grid(mat: &[f32], group: &mut [f32], c: usize, g: &Im2col) {
    let (per_image, wp, out_len) = (g.grid_cols(), g.padded_width(), g.cols());
    let n = group.len() / (c * out_len);
    for (i, img) in group.chunks_mut(c * out_len).enumerate() {
        for (ch, plane) in img.chunks_mut(out_len).enumerate() {
            let grid = &mat[(ch * n + i) * per_image..][..per_image];
            for (out_row, grid_row) in plane.chunks_mut(g.wo).zip(grid.chunks(wp)) {
                out_row.copy_from_slice(&grid_row[..g.wo]);
            }
        }
    }
}

/// The inverse of [`scatter_from_grid`] for a gradient: the images of a group [n][C][H_o·W_o]
/// onto the padded grid, [C][n·H_o·W_p], with zeros in the columns past W_o.
fn gather_onto_grid(group: &[f32], c: usize, g: &Im2col) -> Vec<f32> {
    let (per_image, wp, out_len) = (g.grid_cols(), g.padded_width(), g.cols());
    let n = group.len() / (c * out_len);
    let mut mat = vec![0.0f32; c * n * per_image];
    for (i, img) in group.chunks(c * out_len).enumerate() {
        for (ch, plane) in img.chunks(out_len).enumerate() {
            let grid = &mut mat[(ch * n + i) * per_image..][..per_image];
            for (row, grid_row) in plane.chunks(g.wo).zip(grid.chunks_mut(wp)) {
                grid_row[..g.wo].copy_from_slice(row);
            }
        }
    }
    mat
}

/// col2im on the padded grid, the adjoint of [`GridCols`] for one image: padded[row(r) + q]
/// += dcols[r, q] for every row r and grid column q (row r of this image's block starts at
/// `dcols[r·ld]`), then the padding cropped off into `img` [C, H, W]. Each pixel receives its
/// entries in the order of the rows, as in [`Im2col::col2im`]; the grid's extra columns hold
/// zeros (their dy is 0), so the sums are the same bit for bit.
fn col2im_from_grid(g: &Im2col, off: &Offsets, dcols: &[f32], ld: usize, img: &mut [f32]) {
    let per_image = g.grid_cols();
    let mut padded = vec![0.0f32; off.padded_len + g.kw];
    for (r, &row) in off.row.iter().enumerate() {
        let src = &dcols[r * ld..][..per_image];
        let dst = &mut padded[row as usize..][..per_image];
        dst.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
    }
    let (p, wp, hp) = (g.geom.padding, g.padded_width(), g.h + 2 * g.geom.padding);
    for c in 0..g.c {
        for ih in 0..g.h {
            let src = &padded[(c * hp + ih + p) * wp + p..][..g.w];
            img[(c * g.h + ih) * g.w..][..g.w].copy_from_slice(src);
        }
    }
}

/// out[t] = src[offsets[t]].
#[inline]
fn read_at(src: &[f32], offsets: &[u32], out: &mut [f32]) {
    out.iter_mut().zip(offsets).for_each(|(o, &at)| *o = src[at as usize]);
}

/// [`read_at`] for offsets in runs of 4 consecutive values (offsets[4m + 1] = offsets[4m] + 1,
/// …): one copy of 4 values per run, 2.2 times as fast as 4 reads through the offsets
/// (0.17 against 0.38 ns per value for the conv model's colsᵀ, in a scratch benchmark).
#[inline]
fn read_runs_of_4(src: &[f32], offsets: &[u32], out: &mut [f32]) {
    for (out4, run) in out.chunks_exact_mut(4).zip(offsets.chunks_exact(4)) {
        let values: &[f32; 4] = src[run[0] as usize..][..4].try_into().expect("4 values");
        out4.copy_from_slice(values);
    }
}

/// c = a·b for row-major slices, as a new [m, n] buffer.
fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Vec<f32> {
    product(a, b).into_raw_vec_and_offset().0
}

/// conv2d without bias: for each group of images, Y = W · [cols_1 … cols_G] (an implicit GEMM:
/// cols is read from the images strip by strip), then each image's columns of Y are its
/// output y_n.
fn conv2d_forward(x: &Tensor, w: &Tensor, geom: ConvGeom) -> Tensor {
    let on_grid = conv2d_geometry(x, w, geom).2.on_grid();
    conv2d_forward_on(x, w, geom, on_grid)
}

/// [`conv2d_forward`], its im2col on the padded grid ([`GridCols`]) or not.
fn conv2d_forward_on(x: &Tensor, w: &Tensor, geom: ConvGeom, on_grid: bool) -> Tensor {
    let ([n, c_in, h, wd], [c_out, ..], g) = conv2d_geometry(x, w, geom);
    let off = g.offsets();
    let w_mat = matrix(c_out, g.rows(), w.as_slice().expect("standard layout"));
    let x_len = c_in * h * wd;
    let mut y = Tensor::zeros(vec![n, c_out, g.ho, g.wo]);
    let x_groups = x.as_slice().expect("standard layout").par_chunks(GROUP * x_len);
    y.as_slice_mut().expect("standard layout").par_chunks_mut(GROUP * c_out * g.cols()).zip(x_groups).for_each(
        |(y_group, x_group)| {
            if on_grid {
                let y_mat = product_of_strips(w_mat, &GridCols::new(&g, &off, x_group, x_len));
                scatter_from_grid(y_mat.as_slice().expect("a new array"), y_group, c_out, &g);
            } else {
                let y_mat = product_of_strips(w_mat, &ImplicitCols::new(&g, &off, x_group, x_len));
                scatter(y_mat.as_slice().expect("a new array"), y_group, c_out, g.cols());
            }
        },
    );
    y
}

/// y = conv2d(x, w) + b  ⇒  per group of images, with cols = [cols_1 … cols_G] and
/// dY = [dy_1 … dy_G] side by side:
///   dw = Σ_groups dY · colsᵀ                [C_out, C_in·K_h·K_w] (colsᵀ read from x strip by strip)
///   dx_n = col2im(block n of Wᵀ · dY)         (the transposed convolution of dy)
///   db = Σ_{n, h, w} dy
pub(crate) fn conv2d_backward(
    x: &Tensor,
    w: &Tensor,
    geom: ConvGeom,
    dy: &Tensor,
    need_x: bool,
    need_w: bool,
) -> (Option<Tensor>, Option<Tensor>, Tensor) {
    let on_grid = conv2d_geometry(x, w, geom).2.on_grid();
    conv2d_backward_on(x, w, geom, dy, (need_x, need_w), on_grid)
}

/// [`conv2d_backward`], the input gradient's col2im on the padded grid ([`col2im_from_grid`])
/// or not. (The weight gradient reads colsᵀ as before: on the grid its sums over pixels would
/// be cut into other blocks, and round differently.)
fn conv2d_backward_on(
    x: &Tensor,
    w: &Tensor,
    geom: ConvGeom,
    dy: &Tensor,
    (need_x, need_w): (bool, bool),
    on_grid: bool,
) -> (Option<Tensor>, Option<Tensor>, Tensor) {
    let ([_, c_in, h, wd], [c_out, ..], g) = conv2d_geometry(x, w, geom);
    // The gathered path's scatter table (the grid needs none).
    let table = if need_x && !on_grid { g.table() } else { Vec::new() };
    let off = g.offsets();
    let w_mat = matrix(c_out, g.rows(), w.as_slice().expect("standard layout"));
    let (x_len, y_len) = (c_in * h * wd, c_out * g.cols());
    let dy_groups = dy.as_slice().expect("standard layout").par_chunks(GROUP * y_len);
    let x_groups = x.as_slice().expect("standard layout").par_chunks(GROUP * x_len);

    // One parallel pass over the groups computes both gradients, so dY is laid out once.
    let mut dx = need_x.then(|| Tensor::zeros(x.raw_dim()));
    let partials: Vec<Option<Array2<f32>>> = group_slots(dx.as_mut(), GROUP * x_len, x.len())
        .into_par_iter()
        .zip(dy_groups)
        .zip(x_groups)
        .map(|((dx_group, dy_group), x_group)| {
            let dy_mat = gather(dy_group, c_out, g.cols());
            let ld = dy_mat.len() / c_out;
            match dx_group {
                Some(dx_group) if on_grid => {
                    let dy_grid = gather_onto_grid(dy_group, c_out, &g);
                    let ld = dy_grid.len() / c_out;
                    let dcols = gemm(w_mat.t(), matrix(c_out, ld, &dy_grid));
                    for (i, dx_n) in dx_group.chunks_mut(x_len).enumerate() {
                        col2im_from_grid(&g, &off, &dcols[i * g.grid_cols()..], ld, dx_n);
                    }
                }
                Some(dx_group) => {
                    let dcols = gemm(w_mat.t(), matrix(c_out, ld, &dy_mat));
                    for (i, dx_n) in dx_group.chunks_mut(x_len).enumerate() {
                        g.col2im(&table, &dcols[i * g.cols()..], dx_n, ld);
                    }
                }
                None => {}
            }
            need_w.then(|| {
                let cols = ImplicitCols::new(&g, &off, x_group, x_len);
                product_of_strips(matrix(c_out, ld, &dy_mat), &TransposedCols(&cols))
            })
        })
        .collect();
    let dw = need_w.then(|| {
        let partials = partials.into_iter().flatten().collect();
        sum_in_order(partials).into_shape_with_order(w.raw_dim()).expect("sizes agree")
    });
    (dx, dw, bias_backward(dy))
}

/// The im2col geometry of a transposed convolution: the *output* y [C_out, H_o, W_o] is the
/// image, read on the grid of the input x [H, W].
#[track_caller]
fn conv_transpose2d_geometry(x: &Tensor, w: &Tensor, geom: ConvGeom) -> ([usize; 4], [usize; 4], Im2col) {
    let [n, c_in, h, wd] = dims4("conv_transpose2d", "x", x);
    let [c_in_w, c_out, kh, kw] = dims4("conv_transpose2d", "w", w);
    assert_eq!(c_in, c_in_w, "conv_transpose2d: x has {c_in} channels, w {:?} expects {c_in_w}", w.shape());
    let (ho, wo) = (geom.conv_transpose_out(h, kh), geom.conv_transpose_out(wd, kw));
    let g = Im2col { c: c_out, h: ho, w: wo, kh, kw, ho: h, wo: wd, geom };
    ([n, c_in, h, wd], [c_in, c_out, kh, kw], g)
}

/// conv_transpose2d without bias: per group of images, cols = Wᵀ · [x_1 … x_G], then
/// y_n = col2im(block n of cols).
fn conv_transpose2d_forward(x: &Tensor, w: &Tensor, geom: ConvGeom) -> Tensor {
    let ([n, c_in, ..], [_, c_out, ..], g) = conv_transpose2d_geometry(x, w, geom);
    let table = g.table();
    let w_mat = matrix(c_in, g.rows(), w.as_slice().expect("standard layout"));
    let (x_len, y_len) = (c_in * g.cols(), c_out * g.h * g.w);
    let mut y = Tensor::zeros(vec![n, c_out, g.h, g.w]);
    let x_groups = x.as_slice().expect("standard layout").par_chunks(GROUP * x_len);
    y.as_slice_mut().expect("standard layout").par_chunks_mut(GROUP * y_len).zip(x_groups).for_each(
        |(y_group, x_group)| {
            let x_mat = gather(x_group, c_in, g.cols());
            let ld = x_mat.len() / c_in;
            let cols = gemm(w_mat.t(), matrix(c_in, ld, &x_mat));
            for (i, y_n) in y_group.chunks_mut(y_len).enumerate() {
                g.col2im(&table, &cols[i * g.cols()..], y_n, ld);
            }
        },
    );
    y
}

/// y = conv_transpose2d(x, w) + b  ⇒  per group of images, with dcols = [im2col(dy_1) …] and
/// X = [x_1 … x_G] side by side:
///   dx_n = block n of W · dcols            (a plain convolution of dy, dcols read strip by strip)
///   dw = Σ_groups X · dcolsᵀ                 [C_in, C_out·K_h·K_w]
///   db = Σ_{n, h, w} dy
pub(crate) fn conv_transpose2d_backward(
    x: &Tensor,
    w: &Tensor,
    geom: ConvGeom,
    dy: &Tensor,
    need_x: bool,
    need_w: bool,
) -> (Option<Tensor>, Option<Tensor>, Tensor) {
    let ([_, c_in, ..], [_, c_out, ..], g) = conv_transpose2d_geometry(x, w, geom);
    let off = g.offsets();
    let w_mat = matrix(c_in, g.rows(), w.as_slice().expect("standard layout"));
    let (x_len, y_len) = (c_in * g.cols(), c_out * g.h * g.w);
    let dy_groups = dy.as_slice().expect("standard layout").par_chunks(GROUP * y_len);

    // One parallel pass over the groups computes both gradients.
    let mut dx = need_x.then(|| Tensor::zeros(x.raw_dim()));
    let x_groups = x.as_slice().expect("standard layout").par_chunks(GROUP * x_len);
    let partials: Vec<Option<Array2<f32>>> = group_slots(dx.as_mut(), GROUP * x_len, x.len())
        .into_par_iter()
        .zip(dy_groups)
        .zip(x_groups)
        .map(|((dx_group, dy_group), x_group)| {
            let dcols = ImplicitCols::new(&g, &off, dy_group, y_len);
            if let Some(dx_group) = dx_group {
                let dx_mat = product_of_strips(w_mat, &dcols);
                scatter(dx_mat.as_slice().expect("a new array"), dx_group, c_in, g.cols());
            }
            need_w.then(|| {
                let x_mat = gather(x_group, c_in, g.cols());
                product_of_strips(matrix(c_in, dcols.width(), &x_mat), &TransposedCols(&dcols))
            })
        })
        .collect();
    let dw = need_w.then(|| {
        let partials = partials.into_iter().flatten().collect();
        sum_in_order(partials).into_shape_with_order(w.raw_dim()).expect("sizes agree")
    });
    (dx, dw, bias_backward(dy))
}

/// The input gradient's slice for each group of images (`piece` values each), or `None` for
/// every group when the input needs no gradient.
fn group_slots(dx: Option<&mut Tensor>, piece: usize, len: usize) -> Vec<Option<&mut [f32]>> {
    match dx {
        Some(dx) => dx.as_slice_mut().expect("standard layout").chunks_mut(piece).map(Some).collect(),
        None => (0..len.div_ceil(piece)).map(|_| None).collect(),
    }
}

/// a₀ + a₁ + … in list order.
fn sum_in_order(parts: Vec<Array2<f32>>) -> Tensor {
    let mut parts = parts.into_iter();
    let mut total = parts.next().expect("at least one image");
    for p in parts {
        total += &p;
    }
    total.into_dyn()
}

/// y = … + b[c]  ⇒  db[c] = Σ_{n, h, w} dy[n, c, h, w]: one pass over dy, whose H·W planes
/// are contiguous; each plane is summed in eight interleaved partial sums (so the loop
/// vectorizes) and the planes are added in order.
fn bias_backward(dy: &Tensor) -> Tensor {
    let [_, c, h, w] = dims4("conv backward", "dy", dy);
    let mut db = vec![0.0f32; c];
    let plane_sum = |plane: &[f32]| {
        let mut acc = [0.0f32; 8];
        let chunks = plane.chunks_exact(8);
        let rest: f32 = chunks.remainder().iter().sum();
        for ch in chunks {
            acc.iter_mut().zip(ch).for_each(|(a, &v)| *a += v);
        }
        acc.iter().sum::<f32>() + rest
    };
    if h * w > 0 {
        for (i, plane) in dy.as_slice().expect("standard layout").chunks_exact(h * w).enumerate() {
            db[i % c] += plane_sum(plane);
        }
    }
    Tensor::from_shape_vec(vec![c], db).expect("[C]")
}

/// Direct convolution, the reference for [`Tape::conv2d`]:
/// `y[n, o, i, j] = b[o] + Σ_{c, ki, kj} x[n, c, i·s + ki − p, j·s + kj − p] · w[o, c, ki, kj]`.
pub fn conv2d_naive(x: &Tensor, w: &Tensor, b: Option<&Tensor>, geom: ConvGeom) -> Tensor {
    let ([n, c_in, h, wd], [c_out, _, kh, kw], g) = conv2d_geometry(x, w, geom);
    let mut y = Tensor::zeros(vec![n, c_out, g.ho, g.wo]);
    for b_i in 0..n {
        for o in 0..c_out {
            for i in 0..g.ho {
                for j in 0..g.wo {
                    let mut acc = b.map_or(0.0, |b| b[[o]] as f64);
                    for c in 0..c_in {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let ih = (i * geom.stride + ki) as isize - geom.padding as isize;
                                let iw = (j * geom.stride + kj) as isize - geom.padding as isize;
                                if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < wd {
                                    let xv = x[[b_i, c, ih as usize, iw as usize]] as f64;
                                    acc += xv * w[[o, c, ki, kj]] as f64;
                                }
                            }
                        }
                    }
                    y[[b_i, o, i, j]] = acc as f32;
                }
            }
        }
    }
    y
}

/// Direct transposed convolution, the reference for [`Tape::conv_transpose2d`]: every input
/// pixel scatters its kernel-weighted copy onto the output,
/// y[n, o, i·s + ki − p, j·s + kj − p] += x[n, c, i, j] · w[c, o, ki, kj].
pub fn conv_transpose2d_naive(x: &Tensor, w: &Tensor, b: Option<&Tensor>, geom: ConvGeom) -> Tensor {
    let ([n, c_in, h, wd], [_, c_out, kh, kw], g) = conv_transpose2d_geometry(x, w, geom);
    let mut acc = ndarray::ArrayD::<f64>::zeros(vec![n, c_out, g.h, g.w]);
    for b_i in 0..n {
        for c in 0..c_in {
            for i in 0..h {
                for j in 0..wd {
                    for o in 0..c_out {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let oh = (i * geom.stride + ki) as isize - geom.padding as isize;
                                let ow = (j * geom.stride + kj) as isize - geom.padding as isize;
                                if oh >= 0 && ow >= 0 && (oh as usize) < g.h && (ow as usize) < g.w {
                                    acc[[b_i, o, oh as usize, ow as usize]] +=
                                        x[[b_i, c, i, j]] as f64 * w[[c, o, ki, kj]] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = b {
        for mut plane in acc.axis_iter_mut(Axis(0)) {
            for (o, mut ch) in plane.axis_iter_mut(Axis(0)).enumerate() {
                ch += b[[o]] as f64;
            }
        }
    }
    acc.mapv(|v| v as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cols[(c, ki, kj), (i, oh, ow)] from its definition, for a group of images.
    fn cols_by_definition(g: &Im2col, group: &[f32], img_len: usize) -> Array2<f32> {
        let n = group.len() / img_len;
        Array2::from_shape_fn((g.rows(), n * g.cols()), |(r, j)| {
            let (c, ki, kj) = (r / (g.kh * g.kw), r / g.kw % g.kh, r % g.kw);
            let (i, oh, ow) = (j / g.cols(), j % g.cols() / g.wo, j % g.wo);
            match g.source(oh, ki, g.h).zip(g.source(ow, kj, g.w)) {
                Some((ih, iw)) => group[i * img_len + (c * g.h + ih) * g.w + iw],
                None => 0.0,
            }
        })
    }

    /// Every strip of the implicit im2col matrix and of its transpose, at offsets that cut
    /// across images and across the padding, holds the entries of the matrix itself; with
    /// kernels 4 × 3 (read through the offsets) and 3 × 4 (colsᵀ copied in runs of 4, which
    /// strips that start or end inside a run may not use).
    #[test]
    fn strips_of_the_implicit_im2col_are_its_entries() {
        let geom = ConvGeom::new(2, 1);
        for (kh, kw) in [(4, 3), (3, 4)] {
            let (ho, wo) = (geom.conv_out(5, kh), geom.conv_out(7, kw));
            let g = Im2col { c: 3, h: 5, w: 7, kh, kw, ho, wo, geom };
            let img_len = g.c * g.h * g.w;
            let group: Vec<f32> = (0..3 * img_len).map(|v| v as f32 + 0.5).collect();
            let cols = cols_by_definition(&g, &group, img_len);
            let off = g.offsets();
            assert_eq!(off.runs_of_4, kw == 4);
            let strips = ImplicitCols::new(&g, &off, &group, img_len);
            let strips_t = TransposedCols(&strips);
            assert_eq!(strips.dim(), cols.dim());
            assert_eq!(strips_t.dim(), cols.t().dim());
            let (rows, n) = cols.dim();
            for (k0, kc, j0, w) in [(0, rows, 0, n), (5, 7, 11, 13), (rows - 1, 1, n - 1, 1), (3, 2, 0, 24)] {
                let mut out = vec![f32::NAN; kc * w];
                strips.fill(k0, kc, j0, w, &mut out);
                let want: Vec<f32> = cols.slice(ndarray::s![k0..k0 + kc, j0..j0 + w]).iter().copied().collect();
                assert_eq!(out, want, "cols, kernel {kh}×{kw}");
            }
            for (k0, kc, j0, w) in
                [(0, n, 0, rows), (11, 13, 5, 7), (n - 1, 1, rows - 1, 1), (2, 9, 4, 8), (0, 5, 8, 3)]
            {
                let mut out = vec![f32::NAN; kc * w];
                strips_t.fill(k0, kc, j0, w, &mut out);
                let want: Vec<f32> = cols.t().slice(ndarray::s![k0..k0 + kc, j0..j0 + w]).iter().copied().collect();
                assert_eq!(out, want, "colsᵀ, kernel {kh}×{kw}");
            }
        }
    }

    /// A stride-1 convolution on the padded grid gives the numbers of the gathered im2col bit
    /// for bit (forward and input gradient) and the direct loops' within rounding, for odd
    /// sizes, a non-square kernel, several groups of images with a short last one, and no
    /// padding; the grid is taken where rows are long enough.
    #[test]
    fn the_padded_grid_gives_the_gathered_im2cols_numbers_bit_for_bit() {
        use crate::gradcheck::random_tensor;
        let cases = [
            ([11, 3, 13, 15], [5, 3, 3, 3], ConvGeom::new(1, 1)),
            ([2, 4, 9, 25], [6, 4, 3, 5], ConvGeom::new(1, 2)),
            ([3, 2, 7, 16], [4, 2, 3, 3], ConvGeom::new(1, 0)),
            ([9, 5, 7, 7], [3, 5, 3, 3], ConvGeom::new(1, 1)),
        ];
        for (seed, (xs, ws, geom)) in cases.into_iter().enumerate() {
            let (x, w) = (random_tensor(&xs, 10 + seed as u64), random_tensor(&ws, 20 + seed as u64));
            let g = conv2d_geometry(&x, &w, geom).2;
            assert!(g.on_grid(), "{xs:?} * {ws:?} must take the grid");
            let y = conv2d_forward_on(&x, &w, geom, true);
            assert_eq!(y, conv2d_forward_on(&x, &w, geom, false), "forward, {xs:?} * {ws:?}");
            let naive = conv2d_naive(&x, &w, None, geom);
            let worst = y.iter().zip(naive.iter()).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst < 1e-4, "forward against the direct loops: {worst}");
            let dy = random_tensor(y.shape(), 30 + seed as u64);
            let (dx, dw, db) = conv2d_backward_on(&x, &w, geom, &dy, (true, true), true);
            let (dx0, dw0, db0) = conv2d_backward_on(&x, &w, geom, &dy, (true, true), false);
            assert_eq!((dx, dw, db), (dx0, dw0, db0), "backward, {xs:?} * {ws:?}");
        }
        let narrow =
            conv2d_geometry(&Tensor::zeros(vec![1, 1, 14, 5]), &Tensor::zeros(vec![1, 1, 3, 3]), ConvGeom::new(1, 1));
        assert!(!narrow.2.on_grid(), "rows of 5 stay on the gathered path");
        let strided =
            conv2d_geometry(&Tensor::zeros(vec![1, 1, 28, 28]), &Tensor::zeros(vec![1, 1, 3, 3]), ConvGeom::new(2, 1));
        assert!(!strided.2.on_grid(), "stride 2 stays on the gathered path");
    }
}
