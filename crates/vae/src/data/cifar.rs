//! CIFAR-10 and CIFAR-100 in their binary form, as distributed (`cifar-10-binary.tar.gz`,
//! `cifar-100-binary.tar.gz`, unpacked).
//!
//! - CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, each record one
//!   label byte then 3,072 pixel bytes; class names in `batches.meta.txt`.
//! - CIFAR-100: `train.bin` and `test.bin`, each record a coarse and a fine label byte then
//!   3,072 pixel bytes; the fine label is used, its names in `fine_label_names.txt`.
//!
//! Shape legend: a record's pixels are [3, 32, 32], red plane, green, blue, rows top to bottom,
//! the layout the engine keeps.

use std::path::{Path, PathBuf};

use super::{Format, Split};
use crate::error::Error;

/// Pixel bytes of one image: 3 × 32 × 32.
const PIXELS: usize = 3 * 32 * 32;

/// The folder holding the batches: `dir` itself, or the folder the archive unpacks to.
fn batches_dir(dir: &Path, format: Format) -> PathBuf {
    let sub = match format {
        Format::Cifar100 => "cifar-100-binary",
        _ => "cifar-10-batches-bin",
    };
    if dir.join(sub).is_dir() {
        dir.join(sub)
    } else {
        dir.to_path_buf()
    }
}

/// Whether `dir` (or the folder its archive unpacks to) holds CIFAR-10 or CIFAR-100 batches.
pub fn detect(dir: &Path) -> Option<Format> {
    for format in [Format::Cifar10, Format::Cifar100] {
        let d = batches_dir(dir, format);
        let (train, test) = files(format);
        if d.join(train[0]).is_file() && d.join(test).is_file() {
            return Some(format);
        }
    }
    None
}

/// The training files and the test file of a format.
fn files(format: Format) -> (&'static [&'static str], &'static str) {
    match format {
        Format::Cifar100 => (&["train.bin"], "test.bin"),
        _ => (
            &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"],
            "test_batch.bin",
        ),
    }
}

/// Parses the bytes of one batch file: records of `label_bytes` labels (the last is kept)
/// then 3,072 pixels (3 × 32 × 32). `Err` says what is wrong.
pub fn parse_batch(raw: &[u8], label_bytes: usize) -> Result<Split, String> {
    let record = label_bytes + PIXELS;
    if raw.is_empty() || !raw.len().is_multiple_of(record) {
        return Err(format!(
            "{} bytes is not a whole number of {record}-byte records (a batch of 10,000 images is {} bytes); the file is truncated or not a CIFAR-{} batch",
            raw.len(),
            10_000 * record,
            if label_bytes == 1 { 10 } else { 100 }
        ));
    }
    let n = raw.len() / record;
    let mut images = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for r in raw.chunks_exact(record) {
        labels.push(r[label_bytes - 1]);
        images.extend_from_slice(&r[label_bytes..]);
    }
    Ok(Split { images, labels, channels: 3, rows: 32, cols: 32 })
}

fn read_batch(path: &Path, label_bytes: usize) -> Result<Split, Error> {
    let raw = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    parse_batch(&raw, label_bytes).map_err(|msg| Error::Data(format!("{}: {msg}", path.display())))
}

/// The training and test splits of CIFAR-10 or -100 in `dir`, and the class names if the
/// names file is there.
pub fn load(dir: &Path, format: Format) -> Result<(Split, Split, Vec<String>), Error> {
    let d = batches_dir(dir, format);
    let (train_files, test_file) = files(format);
    let (label_bytes, names_file) =
        if format == Format::Cifar100 { (2, "fine_label_names.txt") } else { (1, "batches.meta.txt") };
    let mut train: Option<Split> = None;
    for f in train_files {
        let path = d.join(f);
        if !path.is_file() {
            return Err(Error::Data(format!("{}: missing; CIFAR-10 has five training batches", path.display())));
        }
        let batch = read_batch(&path, label_bytes)?;
        match train.as_mut() {
            None => train = Some(batch),
            Some(t) => {
                t.images.extend(batch.images);
                t.labels.extend(batch.labels);
            }
        }
    }
    let test = read_batch(&d.join(test_file), label_bytes)?;
    let names = std::fs::read_to_string(d.join(names_file))
        .map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    Ok((train.expect("at least one training file"), test, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_the_last_label_byte_and_the_planes() {
        let mut raw = vec![3, 7];
        raw.extend((0..PIXELS).map(|i| (i % 251) as u8));
        let s = parse_batch(&raw, 2).unwrap();
        assert_eq!((s.labels.clone(), s.shape()), (vec![7], [3, 32, 32]));
        assert_eq!(&s.images[1024..1027], &[(1024 % 251) as u8, (1025 % 251) as u8, (1026 % 251) as u8]);
        let e = parse_batch(&raw[..100], 2).unwrap_err();
        assert!(e.contains("not a whole number of 3074-byte records"), "{e}");
    }
}
