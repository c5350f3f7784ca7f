//! A folder of images (PNG, JPEG) as a data set, as torchvision's `ImageFolder` reads one.
//!
//! - Files are found recursively and taken in sorted path order; files that are not PNG or
//!   JPEG (by extension) are skipped and counted.
//! - `train/` and `test/` subfolders, when both exist, are the split; otherwise a fraction of
//!   the images is held out ([`super::prep::split_by_fraction`]).
//! - When every image sits in a subfolder (below `train/` and `test/`, if they exist), the
//!   subfolder names are the classes: sorted, label 0 the first.
//! - Each image is decoded once, in parallel, to grey or RGB (an alpha channel is dropped),
//!   cropped and resized if asked, and kept as u8 planes [C, H, W]; with a cache folder
//!   ([`Prep::cache`]), a second read of an unchanged folder takes them from [`super::cache`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::cache::{self, CacheUse};
use super::prep::{convert_channels, crop_resize, planar_rgb, split_by_fraction, Prep};
use super::{DataInfo, Split, SplitOrigin};
use crate::error::Error;

/// The file extensions read as images (compared without case).
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Deepest folder nesting searched (a guard against symbolic-link loops).
const MAX_DEPTH: usize = 32;

/// Most classes a label (one byte) can name.
const MAX_CLASSES: usize = 256;

/// Every file below `dir`, in sorted path order.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::Data(format!("{}: folders nested deeper than {MAX_DEPTH} levels", dir.display())));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("list", dir, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io("list", dir, e))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, depth + 1, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether `path` has an image extension.
fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The image files below `root` (sorted) and the count of other files.
fn images_below(root: &Path) -> Result<(Vec<PathBuf>, usize), Error> {
    let mut files = Vec::new();
    walk(root, 0, &mut files)?;
    let total = files.len();
    files.retain(|p| is_image(p));
    let other = total - files.len();
    Ok((files, other))
}

/// One decoded image: [C, H, W] planes.
pub struct Decoded {
    /// C: 1 (grey) or 3 (red, green, blue).
    pub channels: usize,
    /// H
    pub rows: usize,
    /// W
    pub cols: usize,
    /// C·H·W values, plane after plane.
    pub planes: Vec<u8>,
}

/// Decodes the bytes of one PNG or JPEG file (told apart by their content) to grey or RGB
/// planes, cropped and resized to `size` if given. `Err` says why the bytes are no image.
pub fn decode_bytes(bytes: &[u8], size: Option<usize>) -> Result<Decoded, String> {
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (channels, planes) =
        if img.color().has_color() { (3, planar_rgb(&img.to_rgb8())) } else { (1, img.to_luma8().into_raw()) };
    Ok(match size {
        Some(s) => Decoded { channels, rows: s, cols: s, planes: crop_resize(&planes, channels, h, w, s) },
        None => Decoded { channels, rows: h, cols: w, planes },
    })
}

/// [`decode_bytes`] of a file.
fn decode(path: &Path, size: Option<usize>) -> Result<Decoded, String> {
    decode_bytes(&std::fs::read(path).map_err(|e| e.to_string())?, size)
}

/// The class of each file: its first folder below `root`, when every file has one.
fn class_of(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = rel.components();
    let first = parts.next()?;
    parts.next()?; // a file directly in root has no class
    Some(first.as_os_str().to_string_lossy().into_owned())
}

/// The image folder `dir` read as `prep` says; fills `info` (counts, classes, files, split).
pub fn load(
    dir: &Path,
    prep: &Prep,
    info: &mut DataInfo,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Split, Split), Error> {
    let (train_root, test_root) = (dir.join("train"), dir.join("test"));
    let given = train_root.is_dir() && test_root.is_dir();
    // Each image with the root its class is read below, and whether it is a test image.
    let mut found: Vec<(PathBuf, PathBuf, bool)> = Vec::new();
    if given {
        for (root, is_test) in [(&train_root, false), (&test_root, true)] {
            let (files, other) = images_below(root)?;
            info.not_images += other;
            found.extend(files.into_iter().map(|f| (f, root.clone(), is_test)));
        }
    } else {
        let (files, other) = images_below(dir)?;
        info.not_images += other;
        found.extend(files.into_iter().map(|f| (f, dir.to_path_buf(), false)));
    }
    if found.is_empty() {
        return Err(Error::Data(format!(
            "{}: no images found (looked for .png, .jpg and .jpeg files in every subfolder; {} other files); \
             the folder is not an IDX data set (train-images-idx3-ubyte[.gz]) nor CIFAR batches either",
            dir.display(),
            info.not_images
        )));
    }

    // Classes: the subfolder names, if every image has one.
    let classes: Option<Vec<String>> = found.iter().map(|(f, root, _)| class_of(root, f)).collect();
    let mut labels = vec![0u8; found.len()];
    if let Some(classes) = classes {
        let mut names = classes.clone();
        names.sort();
        names.dedup();
        if names.len() > MAX_CLASSES {
            return Err(Error::Data(format!(
                "{}: {} class subfolders; at most {MAX_CLASSES} classes can be labelled",
                dir.display(),
                names.len()
            )));
        }
        for (label, class) in labels.iter_mut().zip(&classes) {
            *label = names.binary_search(class).expect("a name from the list") as u8;
        }
        info.class_names = names;
    }

    // The cache, if one is given and its fingerprint of the files and settings still matches.
    let paths: Vec<PathBuf> = found.iter().map(|(p, _, _)| p.clone()).collect();
    let cached = prep.cache.as_ref().map(|c| (cache::file_for(c, dir, prep), cache::fingerprint(&paths, prep)));
    if let Some((file, fingerprint)) = &cached {
        if let Some(splits) = std::fs::read(file).ok().and_then(|b| cache::decode(&b, *fingerprint, info)) {
            info.cache = CacheUse::Read(file.clone());
            return Ok(splits);
        }
    }

    // Decode every image once, in parallel.
    let done = AtomicUsize::new(0);
    let total = found.len();
    let decoded: Vec<Result<Decoded, String>> = found
        .par_iter()
        .map(|(path, _, _)| {
            let d = decode(path, prep.image_size);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            d
        })
        .collect();
    let mut kept: Vec<(usize, Decoded)> = Vec::with_capacity(total);
    for (i, d) in decoded.into_iter().enumerate() {
        match d {
            Ok(d) => kept.push((i, d)),
            Err(_) if prep.skip_bad => info.bad += 1,
            Err(e) => {
                return Err(Error::Data(format!(
                    "{}: not a readable image ({e}); fix or remove it, or pass --skip-bad to skip such files",
                    found[i].0.display()
                )))
            }
        }
    }
    if kept.is_empty() {
        return Err(Error::Data(format!("{}: none of the {total} images could be decoded", dir.display())));
    }
    if prep.image_size.is_some() {
        info.resized += kept.len();
    }

    // One size for all, or an error that names two files that differ.
    let (_, first) = &kept[0];
    let (rows, cols) = (first.rows, first.cols);
    if let Some((i, d)) = kept.iter().find(|(_, d)| (d.rows, d.cols) != (rows, cols)) {
        return Err(Error::Data(format!(
            "{}: images differ in size ({}×{} in {}, {}×{} in {}); give --image-size S to crop and resize them all to S×S",
            dir.display(),
            rows,
            cols,
            found[kept[0].0].0.display(),
            d.rows,
            d.cols,
            found[*i].0.display()
        )));
    }
    let channels = prep.channels.unwrap_or_else(|| kept.iter().map(|(_, d)| d.channels).max().unwrap_or(1));

    // Assemble the two splits in path order; record which file went where.
    let test_of: Vec<bool> = if given {
        kept.iter().map(|(i, _)| found[*i].2).collect()
    } else {
        info.split = SplitOrigin::Fraction(prep.test_fraction);
        let (_, test) = split_by_fraction(kept.len(), prep.test_fraction, dir)?;
        let mut flags = vec![false; kept.len()];
        test.into_iter().for_each(|t| flags[t] = true);
        flags
    };
    let empty = || Split { images: Vec::new(), labels: Vec::new(), channels, rows, cols };
    let (mut train, mut test) = (empty(), empty());
    let (mut train_files, mut test_files) = (Vec::new(), Vec::new());
    for ((i, d), is_test) in kept.into_iter().zip(test_of) {
        let (split, names) = if is_test { (&mut test, &mut test_files) } else { (&mut train, &mut train_files) };
        if d.channels != channels {
            info.converted += 1;
        }
        split.images.extend(convert_channels(&d.planes, d.channels, channels));
        split.labels.push(labels[i]);
        let rel = found[i].0.strip_prefix(dir).unwrap_or(&found[i].0);
        names.push(rel.to_string_lossy().into_owned());
    }
    info.files = Some((train_files, test_files));
    if let Some((file, fingerprint)) = cached {
        let bytes = cache::encode(fingerprint, &train, &test, info);
        let written = file.parent().map_or(Ok(()), std::fs::create_dir_all).map_err(|e| Error::io("create", &file, e));
        info.cache = match written.and_then(|()| crate::atomic::write_atomic(&file, &bytes)) {
            Ok(()) => CacheUse::Written(file),
            Err(e) => CacheUse::Unwritten(e.to_string()),
        };
    }
    Ok((train, test))
}
