//! `vae-cli plot`: a run's training curves from its metrics.csv, or several runs' test losses
//! on one chart.

use std::path::{Path, PathBuf};

use clap::Args;
use vae::run::files::METRICS_HEADER;

use crate::figure::{self, Format, Layout, Panel, Series};
use crate::options::Result;
use crate::pictures::done;

/// Flags of `vae-cli plot`.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// A run folder written by `vae-cli train` (it holds metrics.csv). Give it more than once
    /// to compare runs: their test losses on one chart, each named by its folder.
    #[arg(long, value_name = "DIR", required = true)]
    pub run: Vec<PathBuf>,
    /// File to write: PNG, or SVG if its name ends in .svg.
    #[arg(long, value_name = "FILE", default_value = "curves.png")]
    pub out: PathBuf,
}

/// Runs longer than this many epochs are plotted on a logarithmic epoch axis.
pub const LOG_AXIS_EPOCHS: f64 = 200.0;

/// Whether epochs `first..=last` get a logarithmic axis: past [`LOG_AXIS_EPOCHS`], so that a run
/// of thousands of epochs (Burda's schedule) shows its first ten as clearly as its last thousand.
fn log_epochs(epochs: impl Iterator<Item = f64>) -> bool {
    let (first, last) = epochs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), e| (a.min(e), b.max(e)));
    last > LOG_AXIS_EPOCHS && first >= 1.0
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

    /// Column `c` per epoch, named `name`.
    fn series(&self, name: &str, c: usize) -> Series {
        Series::line(name, self.rows.iter().map(|r| (r[0], r[c])).collect())
    }

    fn epochs(&self) -> impl Iterator<Item = f64> + Clone + '_ {
        self.rows.iter().map(|r| r[0])
    }
}

/// `vae-cli plot`: for one run, the loss (train and test) and its terms per epoch; for several,
/// their test losses on one chart. PNG, or SVG when `--out` ends in `.svg`.
pub fn run(args: PlotArgs) -> Result<()> {
    let named: Vec<(String, &Path)> = args.run.iter().map(|r| (run_label(r), r.as_path())).collect();
    let bytes = curves(&named, Layout::Row, Format::of(&args.out))?;
    vae::checkpoint::write_atomic(&args.out, &bytes)?;
    let what = match named.len() {
        1 => "the training curves".to_string(),
        n => format!("the test losses of {n} runs"),
    };
    done(&args.out, &what)
}

/// The chart of the runs in `runs` (name, folder): for one, its loss and terms (two panels, in
/// a row or a column); for several, their test losses. The bytes of a PNG or SVG file.
pub fn curves(runs: &[(String, &Path)], layout: Layout, format: Format) -> Result<Vec<u8>> {
    let metrics = runs.iter().map(|(_, dir)| Metrics::read(dir)).collect::<Result<Vec<_>>>()?;
    let (title, panels, size) = match metrics.as_slice() {
        [one] if layout == Layout::Row => (format!("training curves: {}", runs[0].0), run_panels(one), (640, 440)),
        [one] => (runs[0].0.clone(), run_panels(one), (480, 300)),
        _ => {
            let series = runs.iter().zip(&metrics).map(|((name, _), m)| m.series(name, m.test_loss)).collect();
            let log_x = log_epochs(metrics.iter().flat_map(|m| m.epochs()));
            let panel = Panel { log_x, ..Panel::new("test loss", ("epoch", NATS), series) };
            let size = if layout == Layout::Row { (900, 500) } else { (480, 360) };
            ("test loss of each run".to_string(), vec![panel], size)
        }
    };
    Ok(figure::draw(&title, &panels, (size, layout), format)?)
}

/// The y axis of every curve.
const NATS: &str = "nats per example";

/// One run's two panels: the loss (train and test), and every other term of it.
fn run_panels(m: &Metrics) -> Vec<Panel> {
    let log_x = log_epochs(m.epochs());
    let loss = vec![m.series("train", m.train_loss), m.series("test", m.test_loss)];
    // Every other train_/test_ column is a term of the loss: the right chart.
    let terms: Vec<Series> = m
        .header
        .iter()
        .enumerate()
        .filter(|(i, h)| {
            ![0, m.train_loss, m.test_loss].contains(i) && (h.starts_with("train_") || h.starts_with("test_"))
        })
        .filter(|(_, h)| !h.ends_with("perplexity"))
        .map(|(i, h)| m.series(&h.replace('_', " "), i))
        .collect();
    let panel = |title: &str, series| Panel { log_x, ..Panel::new(title, ("epoch", NATS), series) };
    vec![panel("loss", loss), panel("its terms", terms)]
}

/// A run's name in a legend: its folder's last component.
fn run_label(run: &Path) -> String {
    run.file_name().unwrap_or(run.as_os_str()).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_get_a_logarithmic_epoch_axis() {
        let epochs = |n: usize| (1..=n).map(|e| e as f64);
        assert!(!log_epochs(epochs(10)));
        assert!(!log_epochs(epochs(200)));
        assert!(log_epochs(epochs(3280)));
        assert!(!log_epochs(epochs(1)));
    }
}
