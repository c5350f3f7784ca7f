//! Coloured shapes: a small colour data set made from a seed, for tests, the README's example
//! and the playground. Each image is one filled circle, square or triangle (the three classes)
//! in one of eight colours on a background of another, at a random size and place.
//!
//! Shape legend: N images of [3, S, S] (S the side), labels 0 circle, 1 square, 2 triangle.

use rand::{Rng, SeedableRng};

use super::Split;

/// The class names, by label.
pub const CLASSES: [&str; 3] = ["circle", "square", "triangle"];

/// The colours shapes and backgrounds take: eight that stay apart (matplotlib's "tab10"
/// without its grey and olive).
pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
];

/// Whether pixel (x, y) (its centre) lies inside the shape `class` centred at (cx, cy) with
/// half-size r.
fn inside(class: usize, x: f32, y: f32, cx: f32, cy: f32, r: f32) -> bool {
    let (dx, dy) = (x - cx, y - cy);
    match class {
        0 => dx * dx + dy * dy <= r * r,
        1 => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
        // An upright triangle: apex at (cx, cy − r), base at y = cy + r, half-width r at the base.
        _ => dy >= -r && dy <= r && dx.abs() <= (dy + r) / 2.0,
    }
}

/// `n` images of side `side`, drawn from `seed`; labels cycle through the three classes.
pub fn generate(n: usize, side: usize, seed: u64) -> Split {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let hw = side * side;
    let mut images = Vec::with_capacity(n * 3 * hw);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % CLASSES.len();
        let bg = rng.random_range(0..PALETTE.len());
        let fg = (bg + rng.random_range(1..PALETTE.len())) % PALETTE.len(); // never the background's
        let (bg, fg) = (PALETTE[bg], PALETTE[fg]);
        let s = side as f32;
        let r = rng.random_range(0.18 * s..0.34 * s);
        let (cx, cy) = (rng.random_range(r..s - r), rng.random_range(r..s - r));
        let mut img = vec![0u8; 3 * hw];
        for y in 0..side {
            for x in 0..side {
                let c = if inside(class, x as f32 + 0.5, y as f32 + 0.5, cx, cy, r) { fg } else { bg };
                for ch in 0..3 {
                    img[ch * hw + y * side + x] = c[ch];
                }
            }
        }
        images.extend(img);
        labels.push(class as u8);
    }
    Split { images, labels, channels: 3, rows: side, cols: side }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_images_and_each_has_two_colours() {
        let a = generate(6, 32, 3);
        assert_eq!(a.images, generate(6, 32, 3).images);
        assert_ne!(a.images, generate(6, 32, 4).images);
        assert_eq!(a.labels, vec![0, 1, 2, 0, 1, 2]);
        for img in a.images.chunks_exact(3 * 32 * 32) {
            let mut colours: Vec<[u8; 3]> = (0..32 * 32).map(|i| [img[i], img[1024 + i], img[2048 + i]]).collect();
            colours.sort();
            colours.dedup();
            assert_eq!(colours.len(), 2, "a shape and its background");
        }
    }
}
