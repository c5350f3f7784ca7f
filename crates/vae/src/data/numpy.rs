//! NumPy arrays of uint8 images, as pythae's scripts and many notebooks save them.
//!
//! - A `.npy` file holds one array of images.
//! - A `.npz` archive holds the images under `x_train` and `x_test` (the split given), or one
//!   of `x`, `images`, `data`, `arr_0` (split by a fraction); labels, optional, under
//!   `y_train` / `y_test`, or `y`, `labels`, `arr_1`: integers 0 to 255.
//!
//! Shape legend: images (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3; a 4-D array
//! whose last axis is 1 or 3 is read as (N, H, W, C), else as (N, C, H, W) if its second is.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ndarray::{ArrayD, Axis, IxDyn, OwnedRepr};
use ndarray_npy::{NpzReader, ReadNpyExt};

use super::{Format, Split};
use crate::error::Error;

/// What an array file holds: the training images (all of them, for a source without a split)
/// and the test images if the file splits them.
pub struct Found {
    /// The training images, or every image.
    pub train: Split,
    /// The test images, where the file names them.
    pub test: Option<Split>,
}

fn data_error(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Data(format!("{}: {msg}", path.display()))
}

/// Images [N, C, H, W] from an array of uint8 in one of the accepted layouts.
fn images(a: ArrayD<u8>, path: &Path, name: &str) -> Result<Split, Error> {
    let shape = a.shape().to_vec();
    let a = match shape.as_slice() {
        [_, _, _] => a.insert_axis(Axis(1)),
        [_, _, _, c] if *c == 1 || *c == 3 => a.permuted_axes(IxDyn(&[0, 3, 1, 2])),
        [_, c, _, _] if *c == 1 || *c == 3 => a,
        _ => {
            return Err(data_error(
                path,
                format!(
                    "array '{name}' has shape {shape:?}; images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3"
                ),
            ))
        }
    };
    let &[n, c, h, w] = a.shape() else { unreachable!("four axes") };
    if n == 0 || h == 0 || w == 0 {
        return Err(data_error(path, format!("array '{name}' of shape {shape:?} holds no pixels")));
    }
    let images = a.as_standard_layout().iter().copied().collect();
    Ok(Split { images, labels: vec![0; n], channels: c, rows: h, cols: w })
}

/// Labels as bytes, from an array of any integer type whose values are 0 to 255.
fn labels<R: std::io::Read + std::io::Seek>(
    npz: &mut NpzReader<R>,
    name: &str,
    n: usize,
    path: &Path,
) -> Result<Vec<u8>, Error> {
    let file = format!("{name}.npy");
    let values: Vec<i64> = if let Ok(a) = npz.by_name::<OwnedRepr<u8>, IxDyn>(&file) {
        a.iter().map(|&v| v as i64).collect()
    } else if let Ok(a) = npz.by_name::<OwnedRepr<i64>, IxDyn>(&file) {
        a.into_raw_vec_and_offset().0
    } else if let Ok(a) = npz.by_name::<OwnedRepr<i32>, IxDyn>(&file) {
        a.iter().map(|&v| v as i64).collect()
    } else {
        return Err(data_error(path, format!("labels '{name}' are not an array of uint8, int32 or int64")));
    };
    if values.len() != n {
        return Err(data_error(path, format!("{} labels in '{name}' for {n} images", values.len())));
    }
    values
        .iter()
        .map(|&v| u8::try_from(v).map_err(|_| data_error(path, format!("label {v} in '{name}' is outside 0 to 255"))))
        .collect()
}

fn read_images<R: std::io::Read + std::io::Seek>(
    npz: &mut NpzReader<R>,
    name: &str,
    path: &Path,
) -> Result<Split, Error> {
    let a = npz.by_name::<OwnedRepr<u8>, IxDyn>(&format!("{name}.npy")).map_err(|e| {
        data_error(
            path,
            format!("array '{name}' cannot be read as uint8 images ({e}); save pixels 0 to 255 with .astype(np.uint8)"),
        )
    })?;
    images(a, path, name)
}

/// Reads a `.npy` or `.npz` file ([`Format::Npy`] or [`Format::Npz`]).
pub fn load(path: &Path, format: Format) -> Result<Found, Error> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    read(BufReader::new(file), format, path)
}

/// [`load`] from any reader; `path` names the source in errors.
pub fn read<R: std::io::Read + std::io::Seek>(file: R, format: Format, path: &Path) -> Result<Found, Error> {
    if format == Format::Npy {
        let a = ArrayD::<u8>::read_npy(file).map_err(|e| {
            data_error(
                path,
                format!(
                    "cannot be read as an array of uint8 images ({e}); save pixels 0 to 255 with .astype(np.uint8)"
                ),
            )
        })?;
        return Ok(Found { train: images(a, path, "the array")?, test: None });
    }
    let mut npz =
        NpzReader::new(BufReader::new(file)).map_err(|e| data_error(path, format!("not a readable .npz ({e})")))?;
    let names: Vec<String> = npz
        .names()
        .map_err(|e| data_error(path, format!("not a readable .npz ({e})")))?
        .into_iter()
        .map(|n| n.trim_end_matches(".npy").to_string())
        .collect();
    let has = |n: &str| names.iter().any(|m| m == n);
    if has("x_train") && has("x_test") {
        let mut train = read_images(&mut npz, "x_train", path)?;
        let mut test = read_images(&mut npz, "x_test", path)?;
        if has("y_train") && has("y_test") {
            train.labels = labels(&mut npz, "y_train", train.len(), path)?;
            test.labels = labels(&mut npz, "y_test", test.len(), path)?;
        }
        return Ok(Found { train, test: Some(test) });
    }
    let Some(x) = ["x", "images", "data", "arr_0"].into_iter().find(|n| has(n)) else {
        return Err(data_error(
            path,
            format!("holds arrays {names:?}; images are read from x_train and x_test, or from one of x, images, data, arr_0"),
        ));
    };
    let mut train = read_images(&mut npz, x, path)?;
    if let Some(y) = ["y", "labels", "arr_1"].into_iter().find(|n| has(n)) {
        train.labels = labels(&mut npz, y, train.len(), path)?;
    }
    Ok(Found { train, test: None })
}
