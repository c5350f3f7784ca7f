//! Charts on a canvas: axes with round-numbered ticks, labels, lines, points and a legend.

use crate::font::{draw_text, text_width, GLYPH_H};
use crate::image::{Canvas, Rgb};

/// Text scale of tick labels and legends (10×14-pixel glyphs).
pub const TEXT: usize = 2;
const AXIS: Rgb = [60, 60, 60];
const GRID: Rgb = [225, 225, 225];

/// About `n` round tick positions (steps of 1, 2 or 5 × 10ᵏ) covering [min, max].
pub fn nice_ticks(min: f64, max: f64, n: usize) -> Vec<f64> {
    let span = (max - min).abs().max(1e-12);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (min / step).ceil() as i64;
    let last = (max / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Tick positions on a logarithmic axis over [min, max] (both > 0): the powers of ten, labelled,
/// and 2× and 5× each power, unlabelled gridlines between them.
pub fn log_ticks(min: f64, max: f64) -> Vec<(f64, bool)> {
    let (lo, hi) = (min.log10().floor() as i32, max.log10().ceil() as i32);
    (lo..=hi)
        .flat_map(|k| [(1.0, true), (2.0, false), (5.0, false)].map(|(m, labelled)| (m * 10f64.powi(k), labelled)))
        .filter(|&(v, _)| v >= min && v <= max)
        .collect()
}

/// A tick label on a logarithmic axis: as [`format_tick`] down to 0.001, below that as a power
/// of ten (`1e-4`).
pub fn format_log_tick(v: f64) -> String {
    if v >= 1e-3 {
        format_tick(v)
    } else {
        format!("1e{}", v.log10().round())
    }
}

/// A tick label without trailing zeros.
pub fn format_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// How an axis maps data to pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Equal data steps, equal pixel steps.
    Linear,
    /// Equal ratios, equal pixel steps (the data must be positive): for runs of thousands of
    /// epochs, where the first ten matter as much as the last thousand, or for variances that
    /// span decades.
    Log,
}

impl Scale {
    fn map(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log => v.max(f64::MIN_POSITIVE).log10(),
        }
    }

    /// Tick positions over `range`, about `n` of them on a linear axis, each with its label
    /// (`None` for an unlabelled gridline).
    fn ticks(self, (min, max): (f64, f64), n: usize) -> Vec<(f64, Option<String>)> {
        match self {
            Scale::Linear => nice_ticks(min, max, n).into_iter().map(|v| (v, Some(format_tick(v)))).collect(),
            Scale::Log => log_ticks(min, max).into_iter().map(|(v, l)| (v, l.then(|| format_log_tick(v)))).collect(),
        }
    }

    /// Where `v` falls in `range`, from 0 at its start to 1 at its end.
    fn fraction(self, v: f64, (min, max): (f64, f64)) -> f64 {
        (self.map(v) - self.map(min)) / (self.map(max) - self.map(min)).max(1e-12)
    }
}

/// Series longer than this are drawn as lines alone, without a dot on each point.
const MAX_DOTTED_POINTS: usize = 100;

/// A plotting area on a canvas mapping data coordinates to pixels.
pub struct Chart {
    left: i64,
    top: i64,
    width: i64,
    height: i64,
    x: (f64, f64),
    y: (f64, f64),
    x_scale: Scale,
    y_scale: Scale,
}

impl Chart {
    /// Draws a frame with gridlines, ticks, a title and axis labels in the box
    /// (left, top, width, height) of `canvas` for data ranges `x` and `y`, and returns the chart.
    pub fn draw(
        canvas: &mut Canvas,
        area: (i64, i64, i64, i64),
        x: (f64, f64),
        y: (f64, f64),
        title: &str,
        x_label: &str,
        y_label: &str,
    ) -> Self {
        Self::draw_scaled(canvas, area, (x, Scale::Linear), (y, Scale::Linear), title, x_label, y_label)
    }

    /// [`Chart::draw`] with a choice of scale for each axis.
    pub fn draw_scaled(
        canvas: &mut Canvas,
        (left, top, width, height): (i64, i64, i64, i64),
        (x, x_scale): ((f64, f64), Scale),
        (y, y_scale): ((f64, f64), Scale),
        title: &str,
        x_label: &str,
        y_label: &str,
    ) -> Self {
        // Room for tick labels on the left and bottom, and the title on top.
        let glyph_h = (GLYPH_H * TEXT) as i64;
        let (ml, mb, mt) = (80, 2 * glyph_h + 24, glyph_h + 14);
        let (l, t, w, h) = (left + ml, top + mt, width - ml - 10, height - mt - mb);
        let chart = Self { left: l, top: t, width: w, height: h, x, y, x_scale, y_scale };
        for (v, label) in y_scale.ticks(y, 5) {
            let (_, py) = chart.px(x.0, v);
            canvas.line((l, py), (l + w, py), GRID, 1);
            if let Some(label) = label {
                draw_text(canvas, l - 8 - text_width(&label, TEXT) as i64, py - glyph_h / 2, &label, TEXT, AXIS);
            }
        }
        for (v, label) in x_scale.ticks(x, 6) {
            let (px, _) = chart.px(v, y.0);
            canvas.line((px, t), (px, t + h), GRID, 1);
            if let Some(label) = label {
                draw_text(canvas, px - text_width(&label, TEXT) as i64 / 2, t + h + 8, &label, TEXT, AXIS);
            }
        }
        canvas.line((l, t), (l, t + h), AXIS, 2);
        canvas.line((l, t + h), (l + w, t + h), AXIS, 2);
        draw_text(canvas, l + (w - text_width(title, TEXT) as i64) / 2, top + 4, title, TEXT, AXIS);
        let xl = (l + (w - text_width(x_label, TEXT) as i64) / 2, t + h + glyph_h + 16);
        draw_text(canvas, xl.0, xl.1, x_label, TEXT, AXIS);
        draw_text(canvas, left + 4, top + 4, y_label, TEXT, AXIS);
        chart
    }

    /// The pixel of data point (x, y).
    pub fn px(&self, x: f64, y: f64) -> (i64, i64) {
        let fx = self.x_scale.fraction(x, self.x);
        let fy = self.y_scale.fraction(y, self.y);
        (
            self.left + (fx * self.width as f64).round() as i64,
            self.top + self.height - (fy * self.height as f64).round() as i64,
        )
    }

    /// A polyline through the points, with a dot on each unless there are more than 100.
    pub fn line(&self, canvas: &mut Canvas, points: &[(f64, f64)], color: Rgb) {
        let px: Vec<_> = points.iter().map(|&(x, y)| self.px(x, y)).collect();
        let dotted = px.len() <= MAX_DOTTED_POINTS;
        for pair in px.windows(2) {
            canvas.line(pair[0], pair[1], color, if dotted { 3 } else { 2 });
        }
        if dotted {
            for &(x, y) in &px {
                canvas.disc(x, y, 4, color);
            }
        }
    }

    /// One small dot per point.
    pub fn scatter(&self, canvas: &mut Canvas, points: impl IntoIterator<Item = (f64, f64)>, color: Rgb, radius: i64) {
        for (x, y) in points {
            let (px, py) = self.px(x, y);
            canvas.disc(px, py, radius, color);
        }
    }

    /// A legend box in the top-right corner of the chart.
    pub fn legend(&self, canvas: &mut Canvas, entries: &[(&str, Rgb)]) {
        let row = (GLYPH_H * TEXT) as i64 + 8;
        let w = entries.iter().map(|(t, _)| text_width(t, TEXT)).max().unwrap_or(0) as i64 + 44;
        let (x, y) = (self.left + self.width - w - 8, self.top + 8);
        canvas.fill_rect(x, y, w as usize, (row * entries.len() as i64 + 8) as usize, [250, 250, 250]);
        for (i, (text, color)) in entries.iter().enumerate() {
            let ry = y + 6 + i as i64 * row;
            canvas.fill_rect(x + 8, ry + 2, 22, GLYPH_H * TEXT - 4, *color);
            draw_text(canvas, x + 36, ry, text, TEXT, AXIS);
        }
    }
}

/// The range of `values` widened by 5% on each side (and made non-empty).
pub fn padded_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_label_the_powers_of_ten_inside_the_range() {
        let ticks = log_ticks(0.8, 3936.0);
        let labelled: Vec<f64> = ticks.iter().filter(|t| t.1).map(|t| t.0).collect();
        assert_eq!(labelled, [1.0, 10.0, 100.0, 1000.0]);
        let all: Vec<f64> = ticks.iter().map(|t| t.0).collect();
        assert_eq!(all[..4], [1.0, 2.0, 5.0, 10.0]);
        assert_eq!(*all.last().unwrap(), 2000.0);
    }

    #[test]
    fn a_log_axis_gives_each_decade_the_same_width() {
        let mut canvas = Canvas::new(700, 400, [255, 255, 255]);
        let area = (0, 0, 700, 400);
        let y = ((0.0, 1.0), Scale::Linear);
        let chart = Chart::draw_scaled(&mut canvas, area, ((1.0, 1000.0), Scale::Log), y, "", "", "");
        let x = |v: f64| chart.px(v, 0.0).0;
        assert_eq!(x(1.0), chart.left);
        assert_eq!(x(1000.0), chart.left + chart.width);
        assert!((x(10.0) - x(1.0) - (x(1000.0) - x(100.0))).abs() <= 1);
        let linear = Chart::draw(&mut canvas, area, (1.0, 1000.0), (0.0, 1.0), "", "", "");
        assert!(linear.px(10.0, 0.0).0 < x(10.0), "a linear axis crowds the first decade");
    }

    #[test]
    fn small_ticks_of_a_log_axis_are_powers_of_ten() {
        assert_eq!(format_log_tick(0.01), "0.01");
        assert_eq!(format_log_tick(0.001), "0.001");
        assert_eq!(format_log_tick(1e-4), "1e-4");
        assert_eq!(format_log_tick(1e-12), "1e-12");
        assert_eq!(format_log_tick(1000.0), "1000");
    }
}
