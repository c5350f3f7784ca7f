//! Writes the coloured-shapes data set (`vae::data::shapes`) as a folder of PNG files, the
//! layout `vae-cli train --data` reads: `train/<class>/00000.png`, `test/<class>/…`.
//!
//! ```sh
//! cargo run --release --example make_shapes -- data/shapes            # 4,500 + 500 images, 32×32
//! cargo run --release --example make_shapes -- data/shapes64 64 2000  # side 64, 2,000 images
//! cargo run --release -p vae-cli -- train --data data/shapes --model conv --likelihood gaussian
//! ```

use std::path::Path;

use vae::data::shapes::{generate, CLASSES};

/// Seeds of the two splits: fixed, so that everyone gets the same images.
const TRAIN_SEED: u64 = 1;
const TEST_SEED: u64 = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = Path::new(args.first().map_or("data/shapes", String::as_str)).to_path_buf();
    let side: usize = args.get(1).map_or(Ok(32), |s| s.parse())?;
    let n: usize = args.get(2).map_or(Ok(5000), |s| s.parse())?;
    let n_test = n / 10;
    for (split, count, seed) in [("train", n - n_test, TRAIN_SEED), ("test", n_test, TEST_SEED)] {
        let images = generate(count, side, seed);
        for (i, (img, &label)) in images.images.chunks_exact(3 * side * side).zip(&images.labels).enumerate() {
            let dir = out.join(split).join(CLASSES[label as usize]);
            std::fs::create_dir_all(&dir)?;
            let hw = side * side;
            let rgb: Vec<u8> = (0..hw).flat_map(|p| [img[p], img[hw + p], img[2 * hw + p]]).collect();
            let file = std::fs::File::create(dir.join(format!("{i:05}.png")))?;
            let mut enc = png::Encoder::new(std::io::BufWriter::new(file), side as u32, side as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()?.write_image_data(&rgb)?;
        }
    }
    println!("wrote {} + {} images of {side}×{side} to {}", n - n_test, n_test, out.display());
    Ok(())
}
