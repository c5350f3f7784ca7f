//! Pictures: an RGB canvas, image grids upscaled with nearest neighbour, and PNG output
//! written atomically.
//!
//! Shape legend: an image batch is [N, H·W] in [0, 1] (row-major pixels); a grid puts N images
//! in `rows`×`cols` cells of (H·s)×(W·s) pixels with s the upscale factor.

use std::path::Path;

use vae_autodiff::Tensor;

/// An RGB image in memory.
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    rgb: Vec<u8>,
}

/// An RGB colour.
pub type Rgb = [u8; 3];

impl Canvas {
    /// A canvas filled with `bg`.
    pub fn new(width: usize, height: usize, bg: Rgb) -> Self {
        Self { width, height, rgb: bg.repeat(width * height) }
    }

    /// Colours one pixel (ignored outside the canvas).
    pub fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = 3 * (y as usize * self.width + x as usize);
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Fills a rectangle.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: usize, h: usize, c: Rgb) {
        for dy in 0..h as i64 {
            for dx in 0..w as i64 {
                self.put(x + dx, y + dy, c);
            }
        }
    }

    /// Draws a grey image of h×w values in [0, 1] (0 black, 1 white) at (x, y), each pixel
    /// a `scale`×`scale` block.
    pub fn blit_gray(&mut self, x: i64, y: i64, pixels: &[f32], h: usize, w: usize, scale: usize) {
        for r in 0..h {
            for c in 0..w {
                let v = (pixels[r * w + c].clamp(0.0, 1.0) * 255.0).round() as u8;
                self.fill_rect(x + (c * scale) as i64, y + (r * scale) as i64, scale, scale, [v, v, v]);
            }
        }
    }

    /// Encodes the canvas as PNG and writes it atomically.
    pub fn save(&self, path: &Path) -> Result<(), vae::Error> {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let io = |e: png::EncodingError| vae::Error::io("encode a PNG for", path, std::io::Error::other(e));
            let mut writer = enc.write_header().map_err(io)?;
            writer.write_image_data(&self.rgb).map_err(io)?;
        }
        vae::checkpoint::write_atomic(path, &bytes)
    }
}

/// Upscale factor that makes a 28-pixel digit about 84 pixels tall.
pub const SCALE: usize = 3;
/// Pixels between grid cells.
pub const GAP: usize = 2;

/// A grid of `rows`×`cols` grey images of h×w taken from `images` [N, H·W] in order (missing
/// cells stay blank), on a dark background so that cell borders show.
pub fn grid(images: &Tensor, rows: usize, cols: usize, h: usize, w: usize) -> Canvas {
    let (cw, ch) = (w * SCALE + GAP, h * SCALE + GAP);
    let mut canvas = Canvas::new(cols * cw + GAP, rows * ch + GAP, [40, 40, 40]);
    for (i, img) in images.outer_iter().enumerate().take(rows * cols) {
        let (r, c) = (i / cols, i % cols);
        let px = img.as_slice().expect("standard layout");
        canvas.blit_gray((GAP + c * cw) as i64, (GAP + r * ch) as i64, px, h, w, SCALE);
    }
    canvas
}
