//! Any bytes given to the image decoder (PNG, JPEG, told apart by content), as they are and
//! cropped and resized, yield an image of the promised shape or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for size in [None, Some(7)] {
        if let Ok(d) = vae::data::folder::decode_bytes(data, size) {
            assert_eq!(d.planes.len(), d.channels * d.rows * d.cols);
            assert!(d.channels == 1 || d.channels == 3);
        }
    }
});
