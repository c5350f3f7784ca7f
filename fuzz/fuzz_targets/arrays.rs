//! Any bytes given to the NumPy readers (as a .npy and as a .npz) and to the CIFAR batch
//! parser yield images of a consistent shape or an error, never a panic.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vae::data::{cifar, numpy, Format, Split};

fn consistent(s: &Split) {
    assert_eq!(s.images.len(), s.len() * s.pixels());
}

fuzz_target!(|data: &[u8]| {
    for format in [Format::Npy, Format::Npz] {
        if let Ok(found) = numpy::read(Cursor::new(data), format, Path::new("fuzz")) {
            consistent(&found.train);
            found.test.iter().for_each(consistent);
        }
    }
    for label_bytes in [1, 2] {
        if let Ok(s) = cifar::parse_batch(data, label_bytes) {
            consistent(&s);
        }
    }
});
