//! `vae-cli plot`: a run's training curves from its metrics.csv, or several runs' test losses
//! on one chart.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::chart::{padded_range, Chart, Scale, TEXT};
use crate::font::{draw_text, text_width};
use crate::image::{Canvas, PALETTE};
use crate::options::Result;
use crate::pictures::done;
use crate::rundir::METRICS_HEADER;

/// Flags of `vae-cli plot`.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// A run folder written by `vae-cli train` (it holds metrics.csv). Give it more than once
    /// to compare runs: their test losses on one chart, each named by its folder.
    #[arg(long, value_name = "DIR", required = true)]
    pub run: Vec<PathBuf>,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "curves.png")]
    pub out: PathBuf,
}

/// Runs longer than this many epochs are plotted on a logarithmic epoch axis.
pub const LOG_AXIS_EPOCHS: f64 = 200.0;

/// The epoch axis of a run's curves: linear and padded by 5%, or, past [`LOG_AXIS_EPOCHS`],
/// logarithmic from just below the first epoch to just above the last, so that a run of
/// thousands of epochs (Burda's schedule) shows its first ten as clearly as its last thousand.
fn epoch_axis(epochs: impl Iterator<Item = f64> + Clone) -> ((f64, f64), Scale) {
    let (first, last) = epochs.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), e| (a.min(e), b.max(e)));
    if first == last {
        ((first - 1.0, first + 1.0), Scale::Linear)
    } else if last > LOG_AXIS_EPOCHS && first >= 1.0 {
        ((first / 1.2, last * 1.2), Scale::Log)
    } else {
        (padded_range(epochs), Scale::Linear)
    }
}

/// A run's metrics.csv: its column names and one row of numbers per finished epoch.
struct Metrics {
    header: Vec<String>,
    rows: Vec<Vec<f64>>,
    train_loss: usize,
    test_loss: usize,
}

impl Metrics {
    /// Reads `<run>/metrics.csv` (any family's: the columns are found by name in its header).
    fn read(run: &Path) -> Result<Self> {
        let path = run.join("metrics.csv");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<String> = lines.next().unwrap_or("").split(',').map(String::from).collect();
        let col_of = |name: &str| header.iter().position(|h| h == name);
        let (Some(0), Some(train_loss), Some(test_loss)) = (col_of("epoch"), col_of("train_loss"), col_of("test_loss"))
        else {
            return Err(format!(
                "{}: expected a header with epoch, train_loss and test_loss (such as {METRICS_HEADER})",
                path.display()
            )
            .into());
        };
        let mut rows: Vec<Vec<f64>> = Vec::new();
        for (i, l) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: Option<Vec<f64>> = l.split(',').map(|v| v.parse().ok()).collect();
            match row {
                Some(r) if r.len() == header.len() => rows.push(r),
                _ => {
                    let n = header.len();
                    return Err(format!("{}: line {} is not {n} numbers: {l:?}", path.display(), i + 2).into());
                }
            }
        }
        if rows.is_empty() {
            return Err(format!("{}: no finished epoch to plot yet", path.display()).into());
        }
        Ok(Self { header, rows, train_loss, test_loss })
    }

    /// (epoch, value) of column `c`.
    fn column(&self, c: usize) -> Vec<(f64, f64)> {
        self.rows.iter().map(|r| (r[0], r[c])).collect()
    }

    fn epochs(&self) -> impl Iterator<Item = f64> + Clone + '_ {
        self.rows.iter().map(|r| r[0])
    }
}

/// `vae-cli plot`: for one run, the loss (train and test) and its terms per epoch; for several,
/// their test losses on one chart.
pub fn run(args: PlotArgs) -> Result<()> {
    let runs = args.run.iter().map(|r| Metrics::read(r)).collect::<Result<Vec<_>>>()?;
    let what = match runs.as_slice() {
        [one] => {
            plot_run(one, &args.run[0], &args.out)?;
            format!("training curves of {} epochs", one.rows.len())
        }
        _ => {
            plot_runs(&runs, &args.run, &args.out)?;
            format!("the test losses of {} runs", runs.len())
        }
    };
    done(&args.out, &what)
}

/// One run: the loss on the left, its terms on the right.
fn plot_run(m: &Metrics, run: &Path, out: &Path) -> Result<()> {
    let x = epoch_axis(m.epochs());
    let (width, height) = (1400, 620);
    let mut canvas = Canvas::new(width, height, [255, 255, 255]);
    let (blue, orange) = (PALETTE[0], PALETTE[1]);

    let loss_range = padded_range(m.rows.iter().flat_map(|r| [r[m.train_loss], r[m.test_loss]]));
    // A half of the picture: its left edge, value range and title.
    let panel = |canvas: &mut Canvas, left: i64, range, title| {
        let area = (left, 40, 700, height as i64 - 40);
        Chart::draw_scaled(canvas, area, x, (range, Scale::Linear), title, "EPOCH", "VALUE")
    };
    let left = panel(&mut canvas, 0, loss_range, "LOSS");
    left.line(&mut canvas, &m.column(m.train_loss), blue);
    left.line(&mut canvas, &m.column(m.test_loss), orange);
    left.legend(&mut canvas, &[("TRAIN", blue), ("TEST", orange)]);

    // Every other train_/test_ column is a term of the loss: the right chart.
    let terms: Vec<(usize, String)> = m
        .header
        .iter()
        .enumerate()
        .filter(|(i, h)| {
            ![0, m.train_loss, m.test_loss].contains(i) && (h.starts_with("train_") || h.starts_with("test_"))
        })
        .filter(|(_, h)| !h.ends_with("perplexity"))
        .map(|(i, h)| (i, h.replace('_', " ").to_uppercase()))
        .collect();
    let term_range = padded_range(m.rows.iter().flat_map(|r| terms.iter().map(|(c, _)| r[*c]).collect::<Vec<_>>()));
    let right = panel(&mut canvas, 700, term_range, "TERMS");
    for (k, (c, _)) in terms.iter().enumerate() {
        right.line(&mut canvas, &m.column(*c), PALETTE[k % PALETTE.len()]);
    }
    let entries: Vec<(&str, _)> =
        terms.iter().enumerate().map(|(k, (_, name))| (name.as_str(), PALETTE[k % PALETTE.len()])).collect();
    right.legend(&mut canvas, &entries);

    let title = format!("TRAINING CURVES: {}", run.display());
    draw_text(&mut canvas, (width as i64 - text_width(&title, TEXT) as i64) / 2, 10, &title, TEXT, [0, 0, 0]);
    Ok(canvas.save(out)?)
}

/// Several runs: each one's test loss per epoch, named by its folder, on one chart.
fn plot_runs(runs: &[Metrics], names: &[PathBuf], out: &Path) -> Result<()> {
    let x = epoch_axis(runs.iter().flat_map(|m| m.epochs()).collect::<Vec<_>>().into_iter());
    let y = padded_range(runs.iter().flat_map(|m| m.rows.iter().map(|r| r[m.test_loss])));
    let (width, height) = (1000, 620);
    let mut canvas = Canvas::new(width, height, [255, 255, 255]);
    let chart = Chart::draw_scaled(
        &mut canvas,
        (0, 0, width as i64, height as i64),
        x,
        (y, Scale::Linear),
        "TEST LOSS",
        "EPOCH",
        "VALUE",
    );
    let labels: Vec<String> = names.iter().map(|p| run_label(p)).collect();
    for (k, m) in runs.iter().enumerate() {
        chart.line(&mut canvas, &m.column(m.test_loss), PALETTE[k % PALETTE.len()]);
    }
    let entries: Vec<(&str, _)> =
        labels.iter().enumerate().map(|(k, l)| (l.as_str(), PALETTE[k % PALETTE.len()])).collect();
    chart.legend(&mut canvas, &entries);
    Ok(canvas.save(out)?)
}

/// A run's name in a legend: its folder's last component, in the font's capitals.
fn run_label(run: &Path) -> String {
    let name = run.file_name().unwrap_or(run.as_os_str()).to_string_lossy();
    name.to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_get_a_logarithmic_epoch_axis() {
        let epochs = |n: usize| (1..=n).map(|e| e as f64);
        assert_eq!(epoch_axis(epochs(10)).1, Scale::Linear);
        assert_eq!(epoch_axis(epochs(200)).1, Scale::Linear);
        let (range, scale) = epoch_axis(epochs(3280));
        assert_eq!(scale, Scale::Log);
        assert!(range.0 > 0.0 && range.0 < 1.0 && range.1 > 3280.0);
        assert_eq!(epoch_axis(epochs(1)), ((0.0, 2.0), Scale::Linear));
    }
}
