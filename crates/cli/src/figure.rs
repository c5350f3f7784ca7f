//! Every chart of the project, drawn by plotters: panels of named series (lines, dots or bars)
//! in a row or a column, with real text (the DejaVu Sans subset in `crates/cli/fonts/`, so β,
//! σ and μ print as themselves), round axis ticks, legends, and logarithmic axes where asked.
//! One drawing, two outputs: PNG (plotters' bitmap backend into our own canvas, encoded by the
//! png crate) and SVG (text as text, for pages and papers). `plot`, `latent`, `eval
//! --units-png`, `prior`, the playground's curves and the examples draw with it.

use std::ops::Range;
use std::sync::Once;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::image::{Canvas, Rgb, PALETTE};

/// Where a legend sits (plotters' own positions).
pub use plotters::chart::SeriesLabelPosition as Corner;

/// The font every chart writes with, embedded in the binary.
const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");
/// The family name charts ask plotters for.
const FAMILY: &str = "sans-serif";

/// Registers the charts' embedded font with plotters as its sans-serif family, once per
/// process. Charts call it themselves; another user of plotters in the same process
/// (criterion's reports, in `cargo bench`) calls it first, since plotters' text goes through
/// this registry alone.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is ours and parses; a failure would show as charts without text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mark {
    /// A line through the points, in x order.
    Line,
    /// A filled dot of this radius (pixels) at each point.
    Dots(u32),
    /// A bar from y = 0 up to each point, one unit wide.
    Bars,
}

/// One series of a chart: its legend name (empty: not in the legend), points, mark, colour.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend's name.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Line, dots or bars.
    pub mark: Mark,
    /// Its colour; `None` takes the next of [`PALETTE`] by the series' place.
    pub color: Option<Rgb>,
}

impl Series {
    /// A line named `name` through `points`, coloured by its place.
    pub fn line(name: &str, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.to_string(), points, mark: Mark::Line, color: None }
    }

    /// The same series in colour `color`.
    pub fn colored(self, color: Rgb) -> Self {
        Series { color: Some(color), ..self }
    }
}

/// One chart: title, axis names, its series, and its axes.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Above the chart.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// The series, drawn in order.
    pub series: Vec<Series>,
    /// A logarithmic x axis (x > 0).
    pub log_x: bool,
    /// A logarithmic y axis (y > 0).
    pub log_y: bool,
    /// The axes' ranges, if not those of the points.
    pub range: Option<(Range<f64>, Range<f64>)>,
    /// The base of the logarithmic axes (ticks at its powers): 10, or 2 for a sweep that
    /// doubles.
    pub log_base: f64,
    /// Where the legend sits.
    pub legend: Corner,
}

impl Panel {
    /// A panel with linear axes fitted to its points.
    pub fn new(title: &str, (x_label, y_label): (&str, &str), series: Vec<Series>) -> Self {
        Panel {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            series,
            log_x: false,
            log_y: false,
            range: None,
            log_base: 10.0,
            legend: Corner::UpperRight,
        }
    }
}

/// Where a figure goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    /// An 8-bit RGB PNG.
    Png,
    /// An SVG document.
    Svg,
}

impl Format {
    /// The format a file name asks for: `.svg`, or PNG for anything else.
    pub fn of(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("svg") => Format::Svg,
            _ => Format::Png,
        }
    }
}

/// How panels are laid out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    /// Side by side (a wide picture, for the README and `vae-cli plot`).
    Row,
    /// One above the other (a narrow column, for the playground's page).
    Column,
}

/// `panels` laid out under `title`, each `panel_size` pixels, as the bytes of a file.
pub fn draw(
    title: &str,
    panels: &[Panel],
    (panel_size, layout): ((u32, u32), Layout),
    format: Format,
) -> Result<Vec<u8>, String> {
    register_font();
    let n = panels.len().max(1) as u32;
    let size = match layout {
        Layout::Row => (panel_size.0 * n, panel_size.1 + 40),
        Layout::Column => (panel_size.0, panel_size.1 * n + 40),
    };
    match format {
        Format::Svg => {
            let mut svg = String::new();
            draw_on(SVGBackend::with_string(&mut svg, size).into_drawing_area(), title, panels, layout)?;
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let mut canvas = Canvas::new(size.0 as usize, size.1 as usize, [255, 255, 255]);
            let area = BitMapBackend::with_buffer(canvas.rgb_mut(), size).into_drawing_area();
            draw_on(area, title, panels, layout)?;
            canvas.encode_png().map_err(|e| format!("cannot encode the PNG: {e}"))
        }
    }
}

/// The figure on any plotters backend.
fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
    layout: Layout,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("cannot draw the chart: {e}");
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, (FAMILY, 20)).map_err(e)?;
    let n = panels.len().max(1);
    let areas = root.split_evenly(if layout == Layout::Row { (1, n) } else { (n, 1) });
    for (panel, area) in panels.iter().zip(&areas) {
        let (x, y) = panel.range.clone().unwrap_or_else(|| ranges(panel));
        match (panel.log_x, panel.log_y) {
            (false, false) => draw_panel(area, panel, x, y),
            (true, false) => draw_panel(area, panel, x.log_scale().base(panel.log_base), y),
            (false, true) => draw_panel(area, panel, x, y.log_scale().base(panel.log_base)),
            (true, true) => {
                let base = panel.log_base;
                draw_panel(area, panel, x.log_scale().base(base), y.log_scale().base(base))
            }
        }
        .map_err(e)?;
    }
    root.present().map_err(e)
}

/// One panel on its area, with the coordinates `x` and `y` (linear or logarithmic).
fn draw_panel<DB, X, Y>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    x: X,
    y: Y,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    // Epochs are whole numbers: no more ticks than there are of them.
    let x_ticks = panel.series.iter().map(|s| s.points.len()).max().unwrap_or(1).clamp(2, 10);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FAMILY, 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(62)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .label_style((FAMILY, 13))
        .x_labels(x_ticks)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .axis_desc_style((FAMILY, 14))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    for (k, s) in panel.series.iter().enumerate() {
        let [r, g, b] = s.color.unwrap_or(PALETTE[k % PALETTE.len()]);
        let color = RGBColor(r, g, b);
        let points = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite());
        let drawn = match s.mark {
            Mark::Line => chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?,
            Mark::Dots(radius) => chart.draw_series(points.map(|p| Circle::new(p, radius, color.filled())))?,
            Mark::Bars => chart
                .draw_series(points.map(|(x, y)| Rectangle::new([(x - 0.4, 0.0), (x + 0.4, y)], color.filled())))?,
        };
        if !s.name.is_empty() {
            let mark = s.mark;
            drawn.label(s.name.as_str()).legend(move |(x, y)| match mark {
                Mark::Line => PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)).into_dyn(),
                _ => Circle::new((x + 10, y), 4, color.filled()).into_dyn(),
            });
        }
    }
    if panel.series.iter().any(|s| !s.name.is_empty()) {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .position(panel.legend.clone())
            .draw()?;
    }
    Ok(())
}

/// A tick label: the shortest of 0 to 3 decimals that shows `v` as it is (1, 2.5, 0.125);
/// below 0.001, the exponent form with up to three digits (1e-4, 2.5e-5).
fn tick(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        let e = format!("{v:.2e}"); // 2.50e-5
        let (mantissa, exponent) = e.split_once('e').expect("an exponent form");
        return format!("{}e{exponent}", mantissa.trim_end_matches('0').trim_end_matches('.'));
    }
    (0..=3)
        .map(|d| format!("{v:.d$}"))
        .find(|s| (s.parse::<f64>().unwrap_or(f64::NAN) - v).abs() <= v.abs() * 1e-9)
        .unwrap_or_else(|| format!("{v:.3}"))
}

/// The panel's x and y ranges: every finite point, y padded by 5% (and widened when flat);
/// a logarithmic x from just below its first value to just above its last.
fn ranges(panel: &Panel) -> (Range<f64>, Range<f64>) {
    let points = || panel.series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let span = |values: &mut dyn Iterator<Item = f64>| {
        values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)))
    };
    let (x0, x1) = span(&mut points().map(|p| p.0));
    let (y0, y1) = span(&mut points().map(|p| p.1));
    if !x0.is_finite() {
        return (0.0..1.0, 0.0..1.0); // nothing to draw: empty axes
    }
    let pad = |a: f64, b: f64| {
        let p = if b > a { (b - a) * 0.05 } else { a.abs().max(1.0) * 0.05 };
        (a - p)..(b + p)
    };
    let x = if panel.log_x {
        (x0 / 1.2)..(x1 * 1.2)
    } else if x1 > x0 {
        x0..x1
    } else {
        pad(x0, x1)
    };
    (x, pad(y0, y1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(log_x: bool) -> Panel {
        let points = (1..=300).map(|e| (e as f64, 100.0 + 50.0 / e as f64)).collect();
        let dots = Series { mark: Mark::Dots(3), ..Series::line("dots", vec![(2.0, 120.0), (5.0, 130.0)]) };
        let bars = Series { mark: Mark::Bars, ..Series::line("", vec![(3.0, 110.0)]) }.colored([9, 9, 9]);
        Panel {
            log_x,
            ..Panel::new("loss (β = 1)", ("epoch", "nats"), vec![Series::line("test −ELBO", points), dots, bars])
        }
    }

    /// The SVG holds the text as text, Greek and minus sign included.
    #[test]
    fn the_svg_writes_real_text() {
        let svg = String::from_utf8(
            draw("a run", &[panel(false), panel(true)], ((400, 300), Layout::Row), Format::Svg).unwrap(),
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        for text in ["a run", "loss (β = 1)", "epoch", "test −ELBO", "dots", "<circle"] {
            assert!(svg.contains(text), "{text}");
        }
    }

    /// The PNG is the figure's size and has dark pixels (lines and text) on white.
    #[test]
    fn the_png_draws_text_and_lines() {
        let png = draw("a run", &[panel(false)], ((400, 300), Layout::Row), Format::Png).unwrap();
        let mut reader = png::Decoder::new(png.as_slice()).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (400, 340));
        let dark = buf.chunks(3).filter(|p| p.iter().all(|&c| c < 100)).count();
        assert!(dark > 1000, "{dark} dark pixels");
        // The title's row band has ink: the font rasterized.
        let title_rows = &buf[..(info.width * 30 * 3) as usize];
        assert!(title_rows.chunks(3).any(|p| p[0] < 100));
    }

    #[test]
    fn ticks_show_no_more_decimals_than_they_need() {
        assert_eq!(
            [tick(2.0), tick(2.5), tick(0.125), tick(450.0), tick(1.0 / 3.0)],
            ["2", "2.5", "0.125", "450", "0.333"]
        );
    }

    /// Ranges cover every finite point; a flat series gets a range of its own.
    #[test]
    fn ranges_cover_the_points() {
        let (x, y) = ranges(&panel(false));
        assert_eq!(x, 1.0..300.0);
        assert!(y.start < 100.2 && y.end > 150.0);
        let flat = Panel { series: vec![Series::line("", vec![(1.0, 5.0)])], ..panel(false) };
        let (x, y) = ranges(&flat);
        assert!(x.start < 1.0 && x.end > 1.0 && y.start < 5.0 && y.end > 5.0);
    }
}
