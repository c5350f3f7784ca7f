//! The latent-space explorer of one model: the test set's latent means and their 2-D
//! projection, decoding a point, the run's curves. `vae-cli serve --checkpoint` shows one; the
//! playground builds one for a run after each of its epochs.

use ndarray::Axis;
use vae::data::{Binarize, Split};
use vae::family::LatentSpace;
use vae::run::streams::{stream, Purpose};
use vae::Family;
use vae_autodiff::Tensor;

use super::http::{json, param, text, Answer};
use crate::image::Canvas;
use crate::pictures::{space, top_two_axes};

/// Enlargement of decoded images.
const ZOOM: usize = 8;
/// Sliders on the page: the first this many latent dimensions.
pub const MAX_SLIDERS: usize = 32;

/// What the server knows: the model, the test set's latent means and their projection.
pub struct Explorer {
    /// The model; it has a latent space ([`load_with_space`] checked).
    model: Box<dyn Family>,
    /// Latent means of the test images [N, J].
    mu: Tensor,
    labels: Vec<u8>,
    /// The plane of the scatter: z = center + u·axes[0] + v·axes[1] (J > 2, the top two principal
    /// axes of the means); for J ≤ 2 the dimensions themselves.
    center: Vec<f64>,
    axes: [Vec<f64>; 2],
    /// metrics.csv beside the checkpoint, if any.
    curves: Option<String>,
    /// Its curves drawn as SVG (plotters), if any.
    chart: Option<Vec<u8>>,
}

impl Explorer {
    /// The explorer of `model` over the images of `test`, with the run's metrics.csv if any.
    pub fn new(model: Box<dyn Family>, test: &Split, curves: Option<String>) -> Self {
        // Encoded 500 images at a time: the whole test set at once would be a 31 MB input
        // tensor, which each server thread's allocator would then keep.
        let idx: Vec<usize> = (0..test.len()).collect();
        let mus: Vec<Tensor> = idx
            .chunks(500)
            .map(|chunk| {
                let x = test.rows(chunk, Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures), model.classes());
                space(model.as_ref()).encode_points(x).0
            })
            .collect();
        let views: Vec<_> = mus.iter().map(|m| m.view()).collect();
        let mu = ndarray::concatenate(Axis(0), &views).expect("means of one width");
        let j = space(model.as_ref()).latent_dim();
        let n = mu.shape()[0].max(1) as f64;
        let center: Vec<f64> =
            (0..j).map(|k| mu.index_axis(Axis(1), k).iter().map(|&v| v as f64).sum::<f64>() / n).collect();
        let unit = |k: usize| (0..j).map(|i| if i == k { 1.0 } else { 0.0 }).collect::<Vec<f64>>();
        let (center, axes) =
            if j > 2 { (center, top_two_axes(&mu)) } else { (vec![0.0; j], [unit(0), unit(1.min(j - 1))]) };
        Self { model, mu, labels: test.labels.clone(), center, axes, curves, chart: None }
    }

    /// The 2-D position of latent z in the scatter.
    fn project(&self, z: &[f32]) -> (f64, f64) {
        let dot = |a: &[f64]| z.iter().zip(&self.center).zip(a).map(|((&z, c), a)| (z as f64 - c) * a).sum::<f64>();
        let j = self.space().latent_dim();
        if j == 1 {
            (z[0] as f64, 0.0) // one dimension: the page spreads the points by label
        } else {
            (dot(&self.axes[0]), dot(&self.axes[1]))
        }
    }

    /// The model's latent space.
    fn space(&self) -> &dyn LatentSpace {
        space(self.model.as_ref())
    }

    fn info(&self) -> Answer {
        let (j, input) = (self.space().latent_dim(), self.model.input());
        json(serde_json::json!({
            "latent": j,
            "layer": self.space().latent_name(),
            "classes": self.model.classes(),
            "projection": if j > 2 { "pca" } else { "dims" },
            "center": self.center,
            "axes": self.axes,
            "image": [input[1], input[2]],
            "zoom": ZOOM,
            "sliders": j.min(MAX_SLIDERS),
            "curves": self.curves.is_some(),
            "chart": self.chart.is_some(),
        }))
    }

    /// The projected means and labels; with `means=1` also the means themselves [N, J].
    fn latent(&self, query: &[(String, String)]) -> Answer {
        let points: Vec<[f64; 2]> = self
            .mu
            .outer_iter()
            .map(|m| {
                let (u, v) = self.project(m.as_slice().expect("a row of a standard-layout array"));
                [(u * 1e4).round() / 1e4, (v * 1e4).round() / 1e4]
            })
            .collect();
        let mut answer = serde_json::json!({ "points": points, "labels": self.labels });
        if param(query, "means") == Some("1") {
            let means: Vec<Vec<f32>> = self.mu.outer_iter().map(|m| m.iter().copied().collect()).collect();
            answer["means"] = serde_json::json!(means);
        }
        json(answer)
    }

    fn mean(&self, query: &[(String, String)]) -> Answer {
        let Some(i) = param(query, "i") else { return text(400, "mean needs ?i=N, a test image index") };
        match i.parse::<usize>() {
            Ok(i) if i < self.mu.shape()[0] => json(
                serde_json::json!({ "z": self.mu.index_axis(Axis(0), i).iter().copied().collect::<Vec<f32>>(), "label": self.labels[i] }),
            ),
            _ => text(400, format!("i must be a test image index, 0 to {}", self.mu.shape()[0].saturating_sub(1))),
        }
    }

    fn decode(&self, query: &[(String, String)]) -> Answer {
        let (j, classes) = (self.space().latent_dim(), self.model.classes());
        let Some(z) = param(query, "z") else { return text(400, "decode needs ?z= with J comma-separated numbers") };
        let z: std::result::Result<Vec<f32>, _> = z.split(',').map(|v| v.trim().parse::<f32>()).collect();
        let z = match z {
            Ok(z) if z.len() != j => {
                return text(400, format!("z has {} numbers; this model's latent has {j}", z.len()))
            }
            Ok(z) if z.iter().any(|v| !v.is_finite()) => return text(400, "z must hold finite numbers"),
            Ok(z) => z,
            Err(_) => return text(400, "z must be comma-separated numbers"),
        };
        let label = match (classes, param(query, "label")) {
            (0, None) => None,
            (0, Some(_)) => return text(400, "label is for conditional models; this one has no classes"),
            (y, l) => match l.unwrap_or("0").parse::<usize>() {
                Ok(l) if l < y => Some(l),
                _ => return text(400, format!("label must be a class, 0 to {}", y - 1)),
            },
        };
        let z = Tensor::from_shape_vec(vec![1, j], z).expect("J values");
        let image = self.space().decode_points(z, &[label.unwrap_or(0)]);
        let [_, h, w] = self.model.input();
        let mut canvas = Canvas::new(w * ZOOM, h * ZOOM, [0, 0, 0]);
        canvas.blit(0, 0, image.as_slice().expect("contiguous"), h, w, ZOOM);
        match canvas.encode_png() {
            Ok(png) => (200, "image/png", png),
            Err(e) => text(500, format!("cannot encode the image: {e}")),
        }
    }

    /// The explorer with the run's curves drawn as SVG, served at `curves.svg`.
    pub fn with_chart(self, svg: Vec<u8>) -> Self {
        Explorer { chart: Some(svg), ..self }
    }

    fn chart(&self) -> Answer {
        match &self.chart {
            Some(svg) => (200, "image/svg+xml", svg.clone()),
            None => text(404, "no curves to draw: no metrics.csv with a finished epoch beside the checkpoint"),
        }
    }

    fn curves(&self) -> Answer {
        let Some(csv) = &self.curves else { return text(404, "no metrics.csv beside the checkpoint") };
        let (header, rows) = metrics_table(csv);
        json(serde_json::json!({ "header": header, "rows": rows }))
    }

    /// The answer to a GET of `path` (below `/api/`) with `query`, or `None` for a path that
    /// is not the explorer's.
    pub fn answer(&self, path: &str, query: &[(String, String)]) -> Option<Answer> {
        Some(match path {
            "info" => self.info(),
            "latent" => self.latent(query),
            "mean" => self.mean(query),
            "decode" => self.decode(query),
            "curves" => self.curves(),
            "curves.svg" => self.chart(),
            _ => return None,
        })
    }

    /// Active units of the test means (Burda et al.'s measure, [`vae::train::active_units`]).
    pub fn active_units(&self) -> usize {
        vae::train::active_units(&self.mu).0
    }
}

/// A metrics.csv's header (empty for an empty file) and rows, values that do not parse as NaN
/// (blank lines skipped).
pub fn metrics_table(csv: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().map_or(Vec::new(), |h| h.split(',').map(String::from).collect());
    let rows = lines.map(|l| l.split(',').map(|v| v.parse().unwrap_or(f64::NAN)).collect()).collect();
    (header, rows)
}
