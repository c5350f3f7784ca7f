//! Data: IDX files (MNIST's format), plain or gzip, and batches of f32 pixels.
//!
//! An IDX file is a 4-byte magic number — two zero bytes, a type code (0x08 for unsigned
//! bytes) and the number of dimensions — then each dimension as a big-endian u32, then the
//! values in row-major order. Images stay `u8` in memory (47 MB for MNIST's training set);
//! a batch is converted to f32 in [0, 1] when it is drawn.
//!
//! Shape legend: N examples, H×W pixels per image, B batch, D = H·W.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ReadBytesExt};
use flate2::read::GzDecoder;
use rand::Rng;
use vae_autodiff::Tensor;

use crate::error::Error;

/// The four file names of MNIST and of the data sets that copy its layout.
pub const FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// The contents of one IDX file of unsigned bytes.
#[derive(Clone, Debug)]
pub struct Idx {
    /// The dimensions, e.g. [60000, 28, 28].
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes, gzip-compressed or not (told apart by the gzip magic
/// bytes 1f 8b), checking the magic number, the dimensions and the exact length.
pub fn read_idx(path: &Path) -> Result<Idx, Error> {
    let mut raw = Vec::new();
    File::open(path).and_then(|f| BufReader::new(f).read_to_end(&mut raw)).map_err(|e| Error::io("read", path, e))?;
    parse_idx(&raw).map_err(|msg| Error::Data(format!("{}: {msg}", path.display())))
}

/// Largest decompressed file accepted (MNIST's training images are 47 MB).
const MAX_IDX_BYTES: u64 = 1 << 32;

/// Parses the bytes of an IDX file (gzip-compressed or not); `Err` says what is wrong.
pub fn parse_idx(raw: &[u8]) -> Result<Idx, String> {
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw)
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("corrupt or truncated gzip data ({e}); re-copy the file"))?;
        if out.len() as u64 > MAX_IDX_BYTES {
            return Err(format!("decompresses to more than {MAX_IDX_BYTES} bytes; not an IDX data file"));
        }
        out
    } else {
        raw.to_vec()
    };
    let mut r = bytes.as_slice();
    let magic =
        r.read_u32::<BigEndian>().map_err(|_| format!("{} bytes is too short for an IDX header", bytes.len()))?;
    let (zeros, kind, ndim) = (magic >> 16, (magic >> 8) & 0xff, (magic & 0xff) as usize);
    if zeros != 0 || kind != 0x08 || ndim == 0 {
        return Err(format!(
            "magic number 0x{magic:08x} is not that of an IDX file of unsigned bytes (expected 0x0000080N, like 0x00000803 for images)"
        ));
    }
    let mut dims = Vec::with_capacity(ndim);
    for i in 0..ndim {
        let d = r.read_u32::<BigEndian>().map_err(|_| format!("header ends before dimension {} of {ndim}", i + 1))?;
        dims.push(d as usize);
    }
    let want = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if want != Some(r.len()) {
        let want = want.map_or("more than can be addressed".to_string(), |w| w.to_string());
        let short = if want.parse::<usize>().map_or(true, |w| r.len() < w) { " (the file is truncated)" } else { "" };
        return Err(format!("dimensions {dims:?} call for {want} bytes of data, found {}{short}", r.len()));
    }
    Ok(Idx { dims, data: r.to_vec() })
}

/// The bytes of an IDX file of unsigned bytes (uncompressed): magic 0x0000080N, the N
/// dimensions as big-endian u32, then the data; [`parse_idx`] reads it back.
///
/// # Panics
/// If `data` does not hold the product of `dims` bytes, or there are more than 255 dimensions.
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<usize>(), data.len(), "encode_idx: dimensions {dims:?} and {} bytes", data.len());
    let ndim = u8::try_from(dims.len()).expect("at most 255 dimensions");
    let mut out = vec![0, 0, 0x08, ndim];
    for &d in dims {
        out.extend(u32::try_from(d).expect("a dimension fits in 32 bits").to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// One split of a data set: images as bytes and their labels.
#[derive(Clone, Debug)]
pub struct Split {
    /// N·H·W pixel values, 0 to 255, image after image.
    pub images: Vec<u8>,
    /// N labels.
    pub labels: Vec<u8>,
    /// H
    pub rows: usize,
    /// W
    pub cols: usize,
}

/// How pixels in [0, 1] are turned into training targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binarize {
    /// Grey values as they are (PyTorch's example).
    None,
    /// Each pixel resampled as a Bernoulli(p) draw every time it is used (Burda et al.).
    Dynamic,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// D = H·W.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Images `indices` as a batch [B, D] of f32 in [0, 1].
    pub fn batch(&self, indices: &[usize], binarize: Binarize, rng: &mut impl Rng) -> Tensor {
        let d = self.pixels();
        let mut out = Vec::with_capacity(indices.len() * d);
        for &i in indices {
            let img = &self.images[i * d..(i + 1) * d];
            match binarize {
                Binarize::None => out.extend(img.iter().map(|&p| p as f32 / 255.0)),
                Binarize::Dynamic => {
                    out.extend(img.iter().map(|&p| if rng.random::<f32>() < p as f32 / 255.0 { 1.0 } else { 0.0 }))
                }
            }
        }
        Tensor::from_shape_vec(vec![indices.len(), d], out).expect("B·D values")
    }

    /// The rows a model with `classes` classes reads for images `indices`: the batch [B, D] of
    /// [`Split::batch`], and for a conditional model (`classes` > 0) each image's one-hot label
    /// after its pixels, [B, D + classes]. The labels take no random draws, so the pixels are
    /// the same either way.
    ///
    /// # Panics
    /// If a label is not below `classes` (check with [`Split::classes`] first).
    pub fn rows(&self, indices: &[usize], binarize: Binarize, rng: &mut impl Rng, classes: usize) -> Tensor {
        let x = self.batch(indices, binarize, rng);
        if classes == 0 {
            return x;
        }
        let labels: Vec<usize> = indices.iter().map(|&i| self.labels[i] as usize).collect();
        crate::cvae::with_labels(&x, &labels, classes)
    }

    /// The number of classes the labels use: the largest label + 1 (0 if empty).
    pub fn classes(&self) -> usize {
        self.labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0)
    }

    /// Each pixel's mean grey value over the split, in [0, 1] (D values; zeros if empty).
    pub fn pixel_mean(&self) -> Vec<f32> {
        let d = self.pixels();
        let mut sums = vec![0u64; d];
        for img in self.images.chunks_exact(d.max(1)) {
            sums.iter_mut().zip(img).for_each(|(s, &p)| *s += p as u64);
        }
        let n = self.len().max(1) as f64;
        sums.iter().map(|&s| (s as f64 / (255.0 * n)) as f32).collect()
    }

    /// A copy with every pixel replaced, once and for all, by a Bernoulli draw of its grey
    /// value (the fixed binarization of Larochelle & Murray), from `rng`.
    pub fn binarized(&self, rng: &mut impl Rng) -> Split {
        let images =
            self.images.iter().map(|&p| if rng.random::<f32>() < p as f32 / 255.0 { 255 } else { 0 }).collect();
        Split { images, ..self.clone() }
    }

    /// The first `n` examples (all of them if there are fewer).
    pub fn truncated(&self, n: usize) -> Split {
        let n = n.min(self.len());
        let (images, labels) = (self.images[..n * self.pixels()].to_vec(), self.labels[..n].to_vec());
        Split { images, labels, rows: self.rows, cols: self.cols }
    }
}

/// A training and a test split with images of one size.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The training images.
    pub train: Split,
    /// The test images.
    pub test: Split,
}

/// Finds `name` or `name.gz` in `dir`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        Ok(gz)
    } else if plain.is_file() {
        Ok(plain)
    } else {
        Err(Error::Data(format!(
            "{}: no {name}.gz or {name} here; a data folder needs the four MNIST-format files {}",
            dir.display(),
            FILES.map(|f| format!("{f}.gz")).join(", ")
        )))
    }
}

fn load_split(dir: &Path, images: &str, labels: &str) -> Result<Split, Error> {
    let (img_path, lab_path) = (locate(dir, images)?, locate(dir, labels)?);
    let img = read_idx(&img_path)?;
    let lab = read_idx(&lab_path)?;
    let &[n, rows, cols] = img.dims.as_slice() else {
        return Err(Error::Data(format!(
            "{}: expected 3 dimensions [N, H, W] for images, found {:?}",
            img_path.display(),
            img.dims
        )));
    };
    let &[m] = lab.dims.as_slice() else {
        return Err(Error::Data(format!(
            "{}: expected 1 dimension [N] for labels, found {:?}",
            lab_path.display(),
            lab.dims
        )));
    };
    if n != m {
        return Err(Error::Data(format!(
            "{} holds {n} images but {} holds {m} labels; the two files must belong together",
            img_path.display(),
            lab_path.display()
        )));
    }
    Ok(Split { images: img.data, labels: lab.data, rows, cols })
}

impl Dataset {
    /// Loads the four MNIST-format files from `dir` (MNIST, Fashion-MNIST, KMNIST, …).
    pub fn load(dir: &Path) -> Result<Self, Error> {
        if !dir.is_dir() {
            return Err(Error::Data(format!("data folder {} does not exist", dir.display())));
        }
        let train = load_split(dir, FILES[0], FILES[1])?;
        let test = load_split(dir, FILES[2], FILES[3])?;
        if (train.rows, train.cols) != (test.rows, test.cols) {
            return Err(Error::Data(format!(
                "{}: training images are {}×{} but test images {}×{}",
                dir.display(),
                train.rows,
                train.cols,
                test.rows,
                test.cols
            )));
        }
        Ok(Self { train, test })
    }
}
