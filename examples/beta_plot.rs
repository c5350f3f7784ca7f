//! The β sweep as a picture (book, chapter 8): −log p(x), the KL term and the active units of
//! each run of `scripts/beta_sweep.sh`, against β on a logarithmic axis; the run with a KL
//! warm-up as a separate mark.
//!
//! scripts/beta_sweep.sh                                   # writes runs/beta-sweep/beta-*/eval.json
//! cargo run --release --example beta_plot -- runs/beta-sweep docs/img/beta-sweep.png
//!
//! Each run folder `beta-<β>` (and `beta-<β>-warmup-<epochs>`) holds the eval.json that the
//! sweep's `vae-cli eval --iw-samples 500 --active-units --json` wrote; the β = 784 run (the
//! loss averaged over pixels instead of summed) is left off the axis and named in the title.

use std::error::Error;
use std::path::Path;

use vae_cli::figure::{self, Corner, Format, Layout, Mark, Panel, Series};
use vae_cli::image::PALETTE;

/// One run of the sweep: β, whether it warmed up, and its eval.json numbers.
struct Point {
    beta: f64,
    warmup: bool,
    nll: f64,
    kl: f64,
    active: f64,
}

/// The runs in `dir`, from their folder names and eval.json files.
fn read(dir: &Path) -> Result<Vec<Point>, Box<dyn Error>> {
    let mut points = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let Some(rest) = name.strip_prefix("beta-") else { continue };
        let eval = path.join("eval.json");
        if !path.is_dir() || !eval.is_file() {
            continue;
        }
        let beta: f64 = rest.split("-warmup").next().unwrap_or("").parse()?;
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&eval)?)?;
        let number = |key: &str| v[key].as_f64().ok_or_else(|| format!("{}: no {key}", eval.display()));
        points.push(Point {
            beta,
            warmup: rest.contains("warmup"),
            nll: number("nll")?,
            kl: number("kl")?,
            active: number("active_units")?,
        });
    }
    points.sort_by(|a, b| a.beta.total_cmp(&b.beta));
    Ok(points)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map_or("runs/beta-sweep", String::as_str));
    let out = Path::new(args.get(2).map_or("beta-sweep.png", String::as_str));
    let points = read(dir)?;
    // β = 784 (the per-pixel mean) is off the scale of the rest: named, not drawn.
    let (swept, far): (Vec<&Point>, Vec<&Point>) = points.iter().partition(|p| p.beta <= 100.0);
    let series = |value: fn(&Point) -> f64, color| {
        let plain = swept.iter().filter(|p| !p.warmup).map(|p| (p.beta, value(p))).collect();
        let warm = swept.iter().filter(|p| p.warmup).map(|p| (p.beta, value(p))).collect();
        vec![
            Series::line("β", plain).colored(color),
            Series { mark: Mark::Dots(6), ..Series::line("β with a 3-epoch KL warm-up", warm) }.colored(PALETTE[3]),
        ]
    };
    let panel = |title: &str, y: &str, s, legend| Panel {
        log_x: true,
        log_base: 2.0,
        legend,
        ..Panel::new(title, ("β (log scale)", y), s)
    };
    let panels = [
        panel(
            "−log p(x), importance-weighted, K = 500",
            "nats per image",
            series(|p| p.nll, PALETTE[0]),
            Corner::UpperLeft,
        ),
        panel("KL term", "nats per image", series(|p| p.kl, PALETTE[1]), Corner::LowerLeft),
        panel(
            "active units (variance of the mean > 0.01)",
            "of 20",
            series(|p| p.active, PALETTE[2]),
            Corner::LowerLeft,
        ),
    ];
    let mut title = String::from("the β sweep: 784-400-20 VAE, binarized MNIST, 5 epochs per run");
    for p in far {
        title.push_str(&format!("; β = {}: −log p(x) {:.2}, KL {:.2}, {} active", p.beta, p.nll, p.kl, p.active));
    }
    let picture = figure::draw(&title, &panels, ((520, 400), Layout::Row), Format::of(out))?;
    vae::checkpoint::write_atomic(out, &picture)?;
    println!("wrote {} ({} runs)", out.display(), points.len());
    Ok(())
}
