//! Data: where images come from, how they are prepared, and batches of f32 pixels.
//!
//! One path names a data source, and [`Dataset::open`] finds which kind it is: an IDX folder
//! (MNIST, Fashion-MNIST, KMNIST; [`idx`]), a folder of PNG and JPEG images ([`folder`]), a
//! NumPy `.npy` or `.npz` of uint8 images ([`numpy`]), or CIFAR-10/100's binary batches
//! ([`cifar`]). Each is decoded once into uint8 images, prepared ([`prep`]: centre crop and
//! resize, grey or colour) and kept in memory (47 MB for MNIST's training set); a batch is
//! converted to f32 in [0, 1] when it is drawn.
//!
//! Shape legend: N examples, C channels (1 grey, 3 red-green-blue), H×W pixels, B batch,
//! D = C·H·W values per image, stored channel plane after channel plane as PyTorch's
//! [N, C, H, W].

use std::path::{Path, PathBuf};

use rand::Rng;
use vae_autodiff::Tensor;

use crate::error::Error;

pub mod cache;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod numpy;
pub mod prep;
pub mod shapes;

pub use idx::{encode_idx, parse_idx, read_idx, Idx, FILES};
pub use prep::Prep;

/// One split of a data set: images as bytes and their labels.
#[derive(Clone, Debug)]
pub struct Split {
    /// N·C·H·W pixel values, 0 to 255, image after image, each [C, H, W].
    pub images: Vec<u8>,
    /// N labels (all 0 where the source has none).
    pub labels: Vec<u8>,
    /// C: 1 (grey) or 3 (red, green, blue).
    pub channels: usize,
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

    /// D = C·H·W, the values of one image.
    pub fn pixels(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// [C, H, W], the input shape of a model of these images.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.rows, self.cols]
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

    /// A split of no images with this one's shape.
    fn clone_empty(&self) -> Split {
        Split { images: Vec::new(), labels: Vec::new(), channels: self.channels, rows: self.rows, cols: self.cols }
    }

    /// The images at `indices`, in that order, with their labels.
    pub fn select(&self, indices: &[usize]) -> Split {
        let d = self.pixels();
        let mut images = Vec::with_capacity(indices.len() * d);
        for &i in indices {
            images.extend_from_slice(&self.images[i * d..(i + 1) * d]);
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Split { images, labels, ..self.clone_empty() }
    }

    /// Each value's mean over the split, in [0, 1] (D values; zeros if empty).
    pub fn pixel_mean(&self) -> Vec<f32> {
        let d = self.pixels();
        let mut sums = vec![0u64; d];
        for img in self.images.chunks_exact(d.max(1)) {
            sums.iter_mut().zip(img).for_each(|(s, &p)| *s += p as u64);
        }
        let n = self.len().max(1) as f64;
        sums.iter().map(|&s| (s as f64 / (255.0 * n)) as f32).collect()
    }

    /// Each value's standard deviation over the split, in [0, 1] units (D values; zeros if
    /// empty).
    pub fn pixel_std(&self) -> Vec<f32> {
        let d = self.pixels();
        let (mut sums, mut squares) = (vec![0u64; d], vec![0u64; d]);
        for img in self.images.chunks_exact(d.max(1)) {
            for ((s, q), &p) in sums.iter_mut().zip(squares.iter_mut()).zip(img) {
                *s += p as u64;
                *q += p as u64 * p as u64;
            }
        }
        let n = self.len().max(1) as f64;
        sums.iter()
            .zip(&squares)
            .map(|(&s, &q)| {
                let mean = s as f64 / n;
                ((q as f64 / n - mean * mean).max(0.0).sqrt() / 255.0) as f32
            })
            .collect()
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
        Split { images, labels, ..self.clone_empty() }
    }
}

/// The kinds of data source [`Dataset::open`] recognizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// MNIST's four IDX files, plain or gzip.
    Idx,
    /// A folder of PNG and JPEG images, searched recursively.
    ImageFolder,
    /// One NumPy `.npy` array of uint8 images.
    Npy,
    /// A NumPy `.npz` archive of uint8 images and, optionally, labels.
    Npz,
    /// CIFAR-10's binary batches (`data_batch_1.bin` … `test_batch.bin`).
    Cifar10,
    /// CIFAR-100's binary batches (`train.bin`, `test.bin`), with the 100 fine labels.
    Cifar100,
}

impl Format {
    /// The name said to the user.
    pub fn name(self) -> &'static str {
        match self {
            Format::Idx => "IDX folder",
            Format::ImageFolder => "image folder",
            Format::Npy => "NumPy .npy",
            Format::Npz => "NumPy .npz",
            Format::Cifar10 => "CIFAR-10 batches",
            Format::Cifar100 => "CIFAR-100 batches",
        }
    }
}

/// Where the test images came from.
#[derive(Clone, Debug, PartialEq)]
pub enum SplitOrigin {
    /// The source's own split (IDX and CIFAR files, `train/` and `test/` folders, an `.npz`'s
    /// `x_train` and `x_test`).
    Given,
    /// A fraction of the images, drawn with a fixed seed ([`prep::split_by_fraction`]).
    Fraction(f64),
}

/// What was found at a data path, besides the images themselves.
#[derive(Clone, Debug)]
pub struct DataInfo {
    /// The kind of source.
    pub format: Format,
    /// The path it was read from.
    pub path: PathBuf,
    /// The class names by label, where the source names them (class subfolders, CIFAR's
    /// meta files); empty otherwise.
    pub class_names: Vec<String>,
    /// Files skipped because they are not images (image folders).
    pub not_images: usize,
    /// Images skipped because they could not be decoded (with [`Prep::skip_bad`]).
    pub bad: usize,
    /// Images whose channels were converted to the data set's C.
    pub converted: usize,
    /// Images cropped and resized to the chosen size.
    pub resized: usize,
    /// Where the test images came from.
    pub split: SplitOrigin,
    /// For an image folder: the files of the training and the test split, by path below the
    /// folder, in the splits' order.
    pub files: Option<(Vec<String>, Vec<String>)>,
    /// For an image folder: whether its decoded images came from the cache or went into it.
    pub cache: cache::CacheUse,
}

/// A training and a test split with images of one shape [C, H, W], and what was found.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The training images.
    pub train: Split,
    /// The test images.
    pub test: Split,
    /// The source and what preparing it did.
    pub info: DataInfo,
}

/// Finds which kind of source `path` is: a `.npy` or `.npz` file; a folder of IDX files or
/// CIFAR batches; otherwise a folder of images.
pub fn detect(path: &Path) -> Result<Format, Error> {
    if path.is_file() {
        return match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("npy") => Ok(Format::Npy),
            Some("npz") => Ok(Format::Npz),
            _ => Err(Error::Data(format!(
                "{}: a data file must be a NumPy .npy or .npz; otherwise give a folder (IDX files, CIFAR batches or images)",
                path.display()
            ))),
        };
    }
    if !path.is_dir() {
        return Err(Error::Data(format!("data path {} does not exist", path.display())));
    }
    if idx::is_idx_folder(path) {
        Ok(Format::Idx)
    } else if let Some(kind) = cifar::detect(path) {
        Ok(kind)
    } else {
        Ok(Format::ImageFolder)
    }
}

impl Dataset {
    /// The data set at `path` as it is (no resizing, its own channels, a test fraction of 0.1
    /// where the source has no split): see [`Dataset::open`].
    pub fn load(path: &Path) -> Result<Self, Error> {
        Self::open(path, &Prep::default(), &|_, _| {})
    }

    /// Reads the data source at `path` ([`detect`]), decodes it once and prepares it as `prep`
    /// says. `progress(done, total)` is called as images are decoded (from several threads).
    pub fn open(path: &Path, prep: &Prep, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Self, Error> {
        prep.validate()?;
        let format = detect(path)?;
        let mut info = DataInfo {
            format,
            path: path.to_path_buf(),
            class_names: Vec::new(),
            not_images: 0,
            bad: 0,
            converted: 0,
            resized: 0,
            split: SplitOrigin::Given,
            files: None,
            cache: cache::CacheUse::Off,
        };
        let (train, test) = match format {
            Format::Idx => {
                let (train, test) = idx::load_folder(path)?;
                prep::apply_both(train, test, prep, &mut info)?
            }
            Format::Cifar10 | Format::Cifar100 => {
                let (train, test, names) = cifar::load(path, format)?;
                info.class_names = names;
                prep::apply_both(train, test, prep, &mut info)?
            }
            Format::Npy | Format::Npz => {
                let found = numpy::load(path, format)?;
                let (train, test) = match found.test {
                    Some(test) => (found.train, test),
                    None => {
                        info.split = SplitOrigin::Fraction(prep.test_fraction);
                        let (tr, te) = prep::split_by_fraction(found.train.len(), prep.test_fraction, path)?;
                        (found.train.select(&tr), found.train.select(&te))
                    }
                };
                prep::apply_both(train, test, prep, &mut info)?
            }
            Format::ImageFolder => folder::load(path, prep, &mut info, progress)?,
        };
        if train.shape() != test.shape() {
            let ([c, h, w], [tc, th, tw]) = (train.shape(), test.shape());
            return Err(Error::Data(format!(
                "{}: training images are {c}×{h}×{w} but test images {tc}×{th}×{tw}; give --image-size and --channels to make them one shape",
                path.display()
            )));
        }
        if train.is_empty() || test.is_empty() {
            return Err(Error::Data(format!(
                "{}: {} training and {} test images; both splits need at least one",
                path.display(),
                train.len(),
                test.len()
            )));
        }
        Ok(Self { train, test, info })
    }

    /// One line saying what was found: format, counts, size, channels, classes, split, memory.
    pub fn describe(&self) -> String {
        let i = &self.info;
        let [c, h, w] = self.train.shape();
        let colour = if c == 3 { "colour" } else { "grey" };
        let mut line = format!(
            "{} {}: {} training + {} test images, {h}×{w}, {c} channel{} ({colour})",
            i.format.name(),
            i.path.display(),
            self.train.len(),
            self.test.len(),
            if c == 1 { "" } else { "s" }
        );
        match &i.split {
            SplitOrigin::Given => {}
            SplitOrigin::Fraction(f) => line += &format!(", test = a fraction {f} drawn with a fixed seed"),
        }
        let counts = self.class_counts();
        if counts.len() > 1 {
            let named: Vec<String> = counts
                .iter()
                .enumerate()
                .take(12)
                .map(|(l, n)| match i.class_names.get(l) {
                    Some(name) => format!("{name} {n}"),
                    None => format!("{l}: {n}"),
                })
                .collect();
            let more = if counts.len() > 12 { ", …" } else { "" };
            line += &format!(", {} classes ({}{more})", counts.len(), named.join(", "));
        }
        for (n, what) in [
            (i.not_images, "files that are not images skipped"),
            (i.bad, "unreadable images skipped"),
            (i.converted, "images converted to the channel count"),
            (i.resized, "images cropped and resized"),
        ] {
            if n > 0 {
                line += &format!(", {n} {what}");
            }
        }
        let bytes = self.train.images.len() + self.test.images.len();
        line += &format!(", {:.1} MB in memory", bytes as f64 / 1e6);
        match &i.cache {
            cache::CacheUse::Off => line,
            cache::CacheUse::Read(f) => line + &format!(" (decoded images read from the cache {})", f.display()),
            cache::CacheUse::Written(f) => line + &format!(" (decoded images cached in {})", f.display()),
            cache::CacheUse::Unwritten(why) => line + &format!(" (not cached: {why})"),
        }
    }

    /// Images per label over both splits, for labels 0 to the largest.
    pub fn class_counts(&self) -> Vec<usize> {
        let classes = self.train.classes().max(self.test.classes()).max(self.info.class_names.len());
        let mut counts = vec![0; classes];
        for &l in self.train.labels.iter().chain(&self.test.labels) {
            counts[l as usize] += 1;
        }
        counts
    }
}
