//! Any bytes given to the checkpoint loader yield a model or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vae::checkpoint::load_bytes(data);
});
