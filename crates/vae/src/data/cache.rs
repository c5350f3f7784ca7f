//! A cache of a decoded image folder, so that a second run on the same folder starts at once.
//!
//! One file per folder and preparation, named by a hash of the folder's path and the
//! preparation's settings, in a cache folder of the caller's choosing (the command line's
//! default is `~/.cache/vae-engine`, never the user's data folder). Inside, a fingerprint of
//! every image file (its path, size and modification time) and the settings: if a file is
//! added, removed or changed, or a setting differs, the fingerprint no longer matches, the
//! folder is decoded again and the file rewritten (atomically).
//!
//! Layout (little-endian): the magic `VAEDATA1`, the fingerprint (u64), the length of a JSON
//! header (u64), the header (shape, counts, class names, which files went where), then the
//! training labels, the training images, the test labels, the test images, as bytes.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use super::{DataInfo, Prep, Split, SplitOrigin};

const MAGIC: &[u8; 8] = b"VAEDATA1";

/// What the cache did for one read of a folder.
#[derive(Clone, Debug, PartialEq)]
pub enum CacheUse {
    /// No cache folder was given.
    Off,
    /// The decoded images came from this file.
    Read(PathBuf),
    /// The folder was decoded and the result written to this file.
    Written(PathBuf),
    /// The folder was decoded; the cache could not be written (the reason).
    Unwritten(String),
}

/// The settings that change what decoding gives (not the cache folder itself).
fn hash_settings(prep: &Prep, h: &mut DefaultHasher) {
    prep.image_size.hash(h);
    prep.channels.hash(h);
    prep.test_fraction.to_bits().hash(h);
    prep.skip_bad.hash(h);
}

/// The cache file for `dir` prepared as `prep`, inside `cache_dir`.
pub fn file_for(cache_dir: &Path, dir: &Path, prep: &Prep) -> PathBuf {
    let mut h = DefaultHasher::new();
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()).hash(&mut h);
    hash_settings(prep, &mut h);
    cache_dir.join(format!("{:016x}.vaedata", h.finish()))
}

/// A fingerprint of the image files (path, size, modification time) and the settings.
pub fn fingerprint(files: &[PathBuf], prep: &Prep) -> u64 {
    let mut h = DefaultHasher::new();
    for f in files {
        f.hash(&mut h);
        if let Ok(m) = std::fs::metadata(f) {
            m.len().hash(&mut h);
            m.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .hash(&mut h);
        }
    }
    hash_settings(prep, &mut h);
    h.finish()
}

/// The header: everything but the pixels and labels.
fn header(train: &Split, test: &Split, info: &DataInfo) -> serde_json::Value {
    let fraction = match info.split {
        SplitOrigin::Given => None,
        SplitOrigin::Fraction(f) => Some(f),
    };
    serde_json::json!({
        "shape": train.shape(), "train": train.len(), "test": test.len(),
        "class_names": info.class_names, "not_images": info.not_images, "bad": info.bad,
        "converted": info.converted, "resized": info.resized, "fraction": fraction, "files": info.files,
    })
}

/// The cache file's bytes.
pub fn encode(fingerprint: u64, train: &Split, test: &Split, info: &DataInfo) -> Vec<u8> {
    let head = header(train, test, info).to_string();
    let mut out = Vec::with_capacity(32 + head.len() + train.images.len() + test.images.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(head.as_bytes());
    for s in [train, test] {
        out.extend_from_slice(&s.labels);
        out.extend_from_slice(&s.images);
    }
    out
}

/// The splits of a cache file whose fingerprint is `fingerprint`, with `info` filled in from
/// it; `None` for a missing, stale, truncated or otherwise unreadable file (it is then simply
/// decoded again).
pub fn decode(bytes: &[u8], fingerprint: u64, info: &mut DataInfo) -> Option<(Split, Split)> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (fp, rest) = rest.split_at_checked(8)?;
    if u64::from_le_bytes(fp.try_into().ok()?) != fingerprint {
        return None;
    }
    let (len, rest) = rest.split_at_checked(8)?;
    let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
    let (head, mut rest) = rest.split_at_checked(len)?;
    let head: serde_json::Value = serde_json::from_slice(head).ok()?;
    let shape: Vec<usize> = serde_json::from_value(head["shape"].clone()).ok()?;
    let &[c, rows, cols] = shape.as_slice() else { return None };
    let mut split = |n: usize| -> Option<Split> {
        let d = c.checked_mul(rows)?.checked_mul(cols)?;
        let (labels, after) = rest.split_at_checked(n)?;
        let (images, after) = after.split_at_checked(n.checked_mul(d)?)?;
        rest = after;
        Some(Split { images: images.to_vec(), labels: labels.to_vec(), channels: c, rows, cols })
    };
    let train = split(head["train"].as_u64()? as usize)?;
    let test = split(head["test"].as_u64()? as usize)?;
    if !rest.is_empty() {
        return None;
    }
    info.class_names = serde_json::from_value(head["class_names"].clone()).ok()?;
    info.not_images = head["not_images"].as_u64()? as usize;
    info.bad = head["bad"].as_u64()? as usize;
    info.converted = head["converted"].as_u64()? as usize;
    info.resized = head["resized"].as_u64()? as usize;
    info.split = head["fraction"].as_f64().map_or(SplitOrigin::Given, SplitOrigin::Fraction);
    info.files = serde_json::from_value(head["files"].clone()).ok()?;
    Some((train, test))
}
