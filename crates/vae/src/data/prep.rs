//! Preparing decoded images: one shape for the whole data set. A centre crop to a square and
//! a resize to S×S (`--image-size S`), grey or colour (`--channels 1|3`), and the split of a
//! source that has none into training and test images.
//!
//! Shape legend: one image is [C, H, W] of u8, channel planes one after another; S the side
//! of the prepared square.

use std::path::Path;

use image::imageops::FilterType;
use image::{ImageBuffer, Luma, Rgb};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use super::{DataInfo, Split};
use crate::error::Error;

/// How a data source is prepared.
#[derive(Clone, Debug, PartialEq)]
pub struct Prep {
    /// S: crop each image to its centred square and resize it to S×S. `None` keeps the
    /// images' own size, which must then be one size for all.
    pub image_size: Option<usize>,
    /// C: 1 converts colour to grey, 3 grey to colour; `None` keeps what the data has (3 if
    /// any image is in colour).
    pub channels: Option<usize>,
    /// The share of images held out for testing when the source has no split of its own.
    pub test_fraction: f64,
    /// Skip (and count) images that cannot be decoded, instead of stopping at the first.
    pub skip_bad: bool,
    /// A folder for the cache of decoded image folders ([`super::cache`]); `None`: no cache.
    pub cache: Option<std::path::PathBuf>,
}

impl Default for Prep {
    fn default() -> Self {
        Self { image_size: None, channels: None, test_fraction: 0.1, skip_bad: false, cache: None }
    }
}

/// The filter of every resize: a triangle (bilinear) filter, widened when shrinking so that
/// every source pixel counts (what PIL and torchvision call antialiasing).
pub const FILTER: FilterType = FilterType::Triangle;

/// The seed of the draw that splits a source without a split of its own, the same in every
/// run, so that train and eval see the same test images.
pub const SPLIT_SEED: u64 = 0x5eed;

/// The largest side accepted for `--image-size`.
pub const MAX_SIDE: usize = 1024;

impl Prep {
    /// Checks the settings: a side of 1 to [`MAX_SIDE`], 1 or 3 channels, a fraction in (0, 1).
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(s) = self.image_size {
            if s == 0 || s > MAX_SIDE {
                return Err(Error::Data(format!("--image-size must be 1 to {MAX_SIDE} pixels, found {s}")));
            }
        }
        if let Some(c) = self.channels {
            if c != 1 && c != 3 {
                return Err(Error::Data(format!("--channels must be 1 (grey) or 3 (colour), found {c}")));
            }
        }
        let f = self.test_fraction;
        if !(f > 0.0 && f < 1.0) {
            return Err(Error::Data(format!("--test-fraction must lie strictly between 0 and 1, found {f}")));
        }
        Ok(())
    }
}

/// Grey from red, green and blue as PIL's `convert("L")` computes it (ITU-R 601 weights, in
/// 16-bit fixed point, rounded): L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 0x8000) >> 16) as u8
}

/// One image [c_from, H, W] as [c_to, H, W]: grey copied into three planes, or colour to grey
/// by [`luma`].
pub fn convert_channels(img: &[u8], c_from: usize, c_to: usize) -> Vec<u8> {
    let hw = img.len() / c_from;
    match (c_from, c_to) {
        (a, b) if a == b => img.to_vec(),
        (1, 3) => img.repeat(3),
        (3, 1) => (0..hw).map(|i| luma(img[i], img[hw + i], img[2 * hw + i])).collect(),
        _ => panic!("convert_channels: from {c_from} to {c_to} channels"),
    }
}

/// One image [C, H, W] cropped to its centred square (side min(H, W); an odd excess leaves
/// the extra row or column at the bottom or right) and resized to [C, S, S] with [`FILTER`].
/// An image already S×S is returned as it is.
pub fn crop_resize(img: &[u8], c: usize, h: usize, w: usize, s: usize) -> Vec<u8> {
    if (h, w) == (s, s) {
        return img.to_vec();
    }
    let m = h.min(w);
    let (top, left) = ((h - m) / 2, (w - m) / 2);
    let mut out = Vec::with_capacity(c * s * s);
    for plane in img.chunks_exact(h * w) {
        let square: ImageBuffer<Luma<u8>, Vec<u8>> =
            ImageBuffer::from_fn(m as u32, m as u32, |x, y| Luma([plane[(top + y as usize) * w + left + x as usize]]));
        let resized = image::imageops::resize(&square, s as u32, s as u32, FILTER);
        out.extend_from_slice(resized.as_raw());
    }
    out
}

/// An interleaved RGB image (H×W×3, as decoders give it) as planes [3, H, W].
pub fn planar_rgb(rgb: &ImageBuffer<Rgb<u8>, Vec<u8>>) -> Vec<u8> {
    let hw = (rgb.width() * rgb.height()) as usize;
    let raw = rgb.as_raw();
    let mut out = vec![0u8; 3 * hw];
    for (i, px) in raw.chunks_exact(3).enumerate() {
        out[i] = px[0];
        out[hw + i] = px[1];
        out[2 * hw + i] = px[2];
    }
    out
}

/// A split of one shape brought to the prepared shape (in parallel, image by image); counts
/// the images converted and resized into `info`.
pub fn apply(split: Split, prep: &Prep, info: &mut DataInfo) -> Split {
    let (c, h, w) = (split.channels, split.rows, split.cols);
    let c_to = prep.channels.unwrap_or(c);
    let s = prep.image_size;
    let resize = s.is_some_and(|s| (h, w) != (s, s));
    if c_to == c && !resize {
        return split;
    }
    let (h_to, w_to) = s.map_or((h, w), |s| (s, s));
    let mut images = vec![0u8; split.len() * c_to * h_to * w_to];
    images.par_chunks_mut(c_to * h_to * w_to).zip(split.images.par_chunks(c * h * w)).for_each(|(out, img)| {
        let sized = if resize { crop_resize(img, c, h, w, h_to) } else { img.to_vec() };
        out.copy_from_slice(&convert_channels(&sized, c, c_to));
    });
    if c_to != c {
        info.converted += split.len();
    }
    if resize {
        info.resized += split.len();
    }
    Split { images, labels: split.labels, channels: c_to, rows: h_to, cols: w_to }
}

/// [`apply`] to both splits.
pub fn apply_both(train: Split, test: Split, prep: &Prep, info: &mut DataInfo) -> Result<(Split, Split), Error> {
    Ok((apply(train, prep, info), apply(test, prep, info)))
}

/// The indices 0..n split into training and test indices, each in increasing order: round(n·f)
/// test images (at least one) drawn with [`SPLIT_SEED`]. `path` names the source in errors.
pub fn split_by_fraction(n: usize, f: f64, path: &Path) -> Result<(Vec<usize>, Vec<usize>), Error> {
    let n_test = ((n as f64 * f).round() as usize).max(1);
    if n_test >= n {
        return Err(Error::Data(format!(
            "{}: {n} image{} cannot be split into training and test images with --test-fraction {f}",
            path.display(),
            if n == 1 { "" } else { "s" }
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(SPLIT_SEED));
    let (mut test, mut train) = (order[..n_test].to_vec(), order[n_test..].to_vec());
    test.sort_unstable();
    train.sort_unstable();
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_pil_on_the_corners_of_the_cube() {
        // PIL: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0)).
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(0, 0, 0), 0);
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
    }

    #[test]
    fn crop_takes_the_centred_square_before_resizing() {
        // A 2×4 grey image: the centred 2×2 square is columns 1 and 2.
        let img = [0, 10, 20, 30, 40, 50, 60, 70];
        assert_eq!(crop_resize(&img, 1, 2, 4, 2), vec![10, 20, 50, 60]);
        // Two planes of a 3×1 image crop to their middle row.
        assert_eq!(crop_resize(&[1, 2, 3, 4, 5, 6], 2, 3, 1, 1), vec![2, 5]);
    }

    #[test]
    fn fraction_split_is_fixed_disjoint_and_complete() {
        let p = Path::new("x");
        let (train, test) = split_by_fraction(100, 0.1, p).unwrap();
        assert_eq!((train.len(), test.len()), (90, 10));
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split_by_fraction(100, 0.1, p).unwrap().1, test, "the same draw every time");
        assert!(split_by_fraction(1, 0.5, p).is_err());
    }
}
