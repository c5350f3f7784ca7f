//! Any bytes given to the IDX parser (plain or gzip) yield data or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = vae::data::parse_idx(data) {
        assert_eq!(idx.data.len(), idx.dims.iter().product::<usize>());
    }
});
