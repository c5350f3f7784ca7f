//! Times reading a data source once, as `vae-cli train --data PATH` does before its first
//! epoch: find the files, decode every image (in parallel), prepare and keep them. Prints the
//! one-line description, the seconds and the process's peak memory (benches/compare_images.py
//! runs it beside torchvision's ImageFolder).
//!
//! ```sh
//! cargo run --release --example decode_folder -- data/shapes [--image-size S] [--channels C] [--cache DIR]
//! ```

use std::path::Path;
use std::time::Instant;

use vae::data::{Dataset, Prep};

/// The process's peak resident memory in kB (VmHWM), where /proc says it.
fn peak_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: decode_folder PATH [--image-size S] [--channels C] [--cache DIR]")?;
    let mut prep = Prep::default();
    for pair in args[1..].chunks(2) {
        match pair {
            [flag, v] if flag == "--image-size" => prep.image_size = Some(v.parse()?),
            [flag, v] if flag == "--channels" => prep.channels = Some(v.parse()?),
            [flag, v] if flag == "--cache" => prep.cache = Some(v.into()),
            _ => return Err(format!("unknown arguments {pair:?}").into()),
        }
    }
    let t0 = Instant::now();
    let data = Dataset::open(Path::new(path), &prep, &|_, _| {})?;
    let seconds = t0.elapsed().as_secs_f64();
    println!("{}", data.describe());
    println!("seconds {seconds:.3}");
    if let Some(kb) = peak_kb() {
        println!("peak_kb {kb}");
    }
    Ok(())
}
