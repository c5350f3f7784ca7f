//! Pictures: an RGB canvas, image grids upscaled with nearest neighbour, and PNG output
//! written atomically.
//!
//! Shape legend: an image batch is [N, C·H·W] in [0, 1], each image C planes of row-major
//! pixels (C = 1 grey, 3 red-green-blue); a grid puts N images in `rows`×`cols` cells of
//! (H·s)×(W·s) pixels with s the upscale factor.

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

    /// The pixels, row by row, three bytes each (for drawing libraries that fill a buffer).
    pub fn rgb_mut(&mut self) -> &mut [u8] {
        &mut self.rgb
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

    /// Draws an image of h×w pixels at (x, y), each pixel a `scale`×`scale` block: grey if
    /// `pixels` holds h·w values in [0, 1] (0 black, 1 white), colour if it holds three planes
    /// of them (red, green, blue).
    pub fn blit(&mut self, x: i64, y: i64, pixels: &[f32], h: usize, w: usize, scale: usize) {
        let hw = h * w;
        let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        let colour = pixels.len() == 3 * hw;
        for r in 0..h {
            for c in 0..w {
                let i = r * w + c;
                let rgb = if colour {
                    [byte(pixels[i]), byte(pixels[hw + i]), byte(pixels[2 * hw + i])]
                } else {
                    [byte(pixels[i]); 3]
                };
                self.fill_rect(x + (c * scale) as i64, y + (r * scale) as i64, scale, scale, rgb);
            }
        }
    }

    /// The canvas as the bytes of a PNG file (8-bit RGB).
    pub fn encode_png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header()?;
            writer.write_image_data(&self.rgb)?;
        }
        Ok(bytes)
    }

    /// Encodes the canvas as PNG and writes it atomically.
    pub fn save(&self, path: &Path) -> Result<(), vae::Error> {
        let bytes =
            self.encode_png().map_err(|e| vae::Error::io("encode a PNG for", path, std::io::Error::other(e)))?;
        vae::checkpoint::write_atomic(path, &bytes)
    }
}

/// Upscale factor that makes a 28-pixel digit about 84 pixels tall.
pub const SCALE: usize = 3;
/// Pixels between grid cells.
pub const GAP: usize = 2;

/// A grid of `rows`×`cols` images of h×w (grey or colour, see [`Canvas::blit`]) taken from
/// `images` [N, C·H·W] in order (missing
/// cells stay blank), each upscaled [`SCALE`] times, on a dark background so that cell borders
/// show.
pub fn grid(images: &Tensor, rows: usize, cols: usize, h: usize, w: usize) -> Canvas {
    grid_scaled(images, rows, cols, h, w, SCALE)
}

/// [`grid`] with a chosen upscale factor.
pub fn grid_scaled(images: &Tensor, rows: usize, cols: usize, h: usize, w: usize, scale: usize) -> Canvas {
    let (cw, ch) = (w * scale + GAP, h * scale + GAP);
    let mut canvas = Canvas::new(cols * cw + GAP, rows * ch + GAP, [40, 40, 40]);
    for (i, img) in images.outer_iter().enumerate().take(rows * cols) {
        let (r, c) = (i / cols, i % cols);
        let px = img.as_slice().expect("standard layout");
        canvas.blit((GAP + c * cw) as i64, (GAP + r * ch) as i64, px, h, w, scale);
    }
    canvas
}

impl Canvas {
    /// A straight line from (x0, y0) to (x1, y1), `width` pixels thick (Bresenham's walk with a
    /// square brush).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), color: Rgb, width: usize) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let half = (width / 2) as i64;
        loop {
            self.fill_rect(x - half, y - half, width, width, color);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A filled disc of radius `r` centred on (x, y).
    pub fn disc(&mut self, x: i64, y: i64, r: i64, color: Rgb) {
        for dy in -r..=r {
            for dx in -r..=r {
                if dx * dx + dy * dy <= r * r {
                    self.put(x + dx, y + dy, color);
                }
            }
        }
    }
}

/// Ten colours that stay apart from each other (matplotlib's "tab10"), one per digit class.
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];
