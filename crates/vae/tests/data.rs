//! The IDX reader: real files, and every way a file can be wrong.

use std::io::Write;
use std::path::{Path, PathBuf};

use vae::data::{read_idx, Dataset};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vae-idx-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes a tiny data set of n_train / n_test images of 2×3 pixels.
fn write_set(d: &Path, n_train: u32, n_test: u32, labels_train: u32) {
    let files = [
        ("train-images-idx3-ubyte.gz", gz(&idx_bytes(&[n_train, 2, 3], &vec![7; n_train as usize * 6]))),
        ("train-labels-idx1-ubyte.gz", gz(&idx_bytes(&[labels_train], &vec![1; labels_train as usize]))),
        ("t10k-images-idx3-ubyte", idx_bytes(&[n_test, 2, 3], &vec![9; n_test as usize * 6])),
        ("t10k-labels-idx1-ubyte", idx_bytes(&[n_test], &vec![2; n_test as usize])),
    ];
    for (name, bytes) in files {
        std::fs::write(d.join(name), bytes).unwrap();
    }
}

#[test]
fn the_shipped_mnist_loads_with_its_published_counts() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist");
    let data = Dataset::load(&root).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    assert_eq!((data.train.rows, data.train.cols), (28, 28));
    assert_eq!(&data.train.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    let mut counts = [0usize; 10];
    data.test.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
}

#[test]
fn plain_and_gzip_files_read_alike() {
    let d = dir("ok");
    write_set(&d, 4, 3, 4);
    let data = Dataset::load(&d).unwrap();
    assert_eq!((data.train.len(), data.test.len(), data.train.pixels()), (4, 3, 6));
    assert_eq!(data.test.images[0], 9);
}

#[test]
fn bad_files_are_named_with_what_was_expected_and_found() {
    let d = dir("bad");
    let p = d.join("f");
    std::fs::write(&p, [0u8, 0, 0x0d, 3, 0, 0, 0, 1]).unwrap();
    let e = read_idx(&p).unwrap_err().to_string();
    assert!(e.contains("magic number 0x00000d03"), "{e}");

    std::fs::write(&p, idx_bytes(&[2, 2, 2], &[1, 2, 3])).unwrap();
    let e = read_idx(&p).unwrap_err().to_string();
    assert!(e.contains("call for 8 bytes of data, found 3 (the file is truncated)"), "{e}");

    let full = gz(&idx_bytes(&[100], &[5; 100]));
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let e = read_idx(&p).unwrap_err().to_string();
    assert!(e.contains("corrupt or truncated gzip"), "{e}");

    std::fs::write(&p, [0u8, 0]).unwrap();
    assert!(read_idx(&p).unwrap_err().to_string().contains("too short"));
}

#[test]
fn inconsistent_sets_and_missing_files_are_refused() {
    let d = dir("mismatch");
    write_set(&d, 4, 3, 5);
    let e = Dataset::load(&d).unwrap_err().to_string();
    assert!(e.contains("holds 4 images but") && e.contains("holds 5 labels"), "{e}");

    // A folder with some of the four files is an IDX folder missing the others.
    let d = dir("missing");
    write_set(&d, 4, 3, 4);
    std::fs::remove_file(d.join("train-images-idx3-ubyte.gz")).unwrap();
    let e = Dataset::load(&d).unwrap_err().to_string();
    assert!(e.contains("no train-images-idx3-ubyte.gz or train-images-idx3-ubyte here"), "{e}");
    // A folder with none of them and no images says what it looked for.
    let d = dir("empty");
    let e = Dataset::load(&d).unwrap_err().to_string();
    assert!(e.contains("no images found") && e.contains("not an IDX data set"), "{e}");
    let e = Dataset::load(&d.join("nope")).unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn dimensions_whose_product_overflows_are_an_error_not_a_panic() {
    let bytes = idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]);
    let e = vae::data::parse_idx(&bytes).unwrap_err();
    assert!(e.contains("more than can be addressed"), "{e}");
}

#[test]
fn an_encoded_idx_file_reads_back_as_written() {
    let data: Vec<u8> = (0..24).map(|v| v * 10).collect();
    let bytes = vae::data::encode_idx(&[2, 3, 4], &data);
    assert_eq!(&bytes[..8], &[0, 0, 8, 3, 0, 0, 0, 2]);
    let idx = vae::data::parse_idx(&bytes).unwrap();
    assert_eq!((idx.dims, idx.data), (vec![2, 3, 4], data));
}
