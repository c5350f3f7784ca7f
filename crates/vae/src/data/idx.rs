//! IDX files (MNIST's format), plain or gzip, and the folder of four that MNIST, Fashion-MNIST
//! and KMNIST ship as.
//!
//! An IDX file is a 4-byte magic number — two zero bytes, a type code (0x08 for unsigned
//! bytes) and the number of dimensions — then each dimension as a big-endian u32, then the
//! values in row-major order.
//!
//! Shape legend: N images of H×W grey pixels; labels `[N]`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ReadBytesExt};
use flate2::read::GzDecoder;

use super::Split;
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
    Ok(Split { images: img.data, labels: lab.data, channels: 1, rows, cols })
}

/// Whether `dir` holds an IDX data set: any of its four files, plain or gzip (so that a
/// folder missing one is told which).
pub fn is_idx_folder(dir: &Path) -> bool {
    FILES.iter().any(|f| locate(dir, f).is_ok())
}

/// The training and test splits of the IDX folder `dir`.
pub fn load_folder(dir: &Path) -> Result<(Split, Split), Error> {
    let train = load_split(dir, FILES[0], FILES[1])?;
    let test = load_split(dir, FILES[2], FILES[3])?;
    Ok((train, test))
}
