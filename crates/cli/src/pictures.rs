//! The picture commands: prior samples, reconstructions, interpolations, the latent manifold,
//! the latent scatter and the training curves. Each loads its inputs, checks the user's
//! numbers against them, and writes one PNG.

use std::path::{Path, PathBuf};

use ndarray::{Axis, Slice};
use vae::checkpoint;
use vae::data::{Binarize, Split};
use vae::family::LatentSpace;
use vae::Family;
use vae_autodiff::Tensor;

use crate::commands::{
    InterpolateArgs, LabelArgs, LatentArgs, ManifoldArgs, ModelArgs, PlotArgs, ReconstructArgs, Result, SampleArgs,
};
use crate::font::{draw_text, text_width};
use crate::image::{grid, grid_scaled, Canvas, PALETTE};
use crate::plot::{padded_range, Chart, Scale, TEXT};
use crate::rundir::METRICS_HEADER;
use crate::say::say;
use crate::streams::{stream, Purpose};

/// The model of a checkpoint, if it has a continuous latent space to encode to and decode
/// from (the latent commands and the explorer need one); `command` names the asker in the error.
pub fn load_with_space(path: &Path, command: &str) -> Result<Box<dyn Family>> {
    let model = checkpoint::load_family(path)?.model;
    if model.latent_space().is_none() {
        return Err(format!(
            "{command} decodes points of a continuous latent space; this checkpoint holds a {}, which has none",
            model.name()
        )
        .into());
    }
    Ok(model)
}

/// The latent space of a model from [`load_with_space`].
pub fn space(model: &dyn Family) -> &dyn LatentSpace {
    model.latent_space().expect("load_with_space checked that the model has a latent space")
}

/// The test split, checked against the model's image size.
fn load_test(args: &ModelArgs, model: &dyn Family) -> Result<Split> {
    Ok(crate::data::load_test(&args.data, model)?.0)
}

fn image_size(model: &dyn Family) -> (usize, usize) {
    let [_, h, w] = model.input();
    (h, w)
}

fn done(out: &Path, what: &str) -> Result<()> {
    say!("wrote {what} to {}", out.display());
    Ok(())
}

/// The test images `idx` as the rows the model reads, in [0, 1]: [N, D], with a conditional
/// model's one-hot labels after the pixels, [N, D + Y].
fn test_rows(model: &dyn Family, test: &Split, idx: &[usize]) -> Tensor {
    test.rows(idx, Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures), model.classes())
}

/// The pixels of rows [N, D + Y]: [N, D].
fn pixels(model: &dyn Family, rows: &Tensor) -> Tensor {
    rows.slice_axis(Axis(1), Slice::from(..model.input().iter().product::<usize>())).to_owned()
}

/// `--label`, checked: a class of a conditional model (`default` when not given), or `None`
/// for a model without classes, which refuses the flag.
fn chosen_label(model: &dyn Family, args: &LabelArgs, default: usize) -> Result<Option<usize>> {
    match (model.classes(), args.label) {
        (0, None) => Ok(None),
        (0, Some(_)) => {
            Err("--label is for conditional models (trained with --family cvae); this one has no classes".into())
        }
        (c, Some(l)) if l >= c => {
            Err(format!("--label {l} is out of range: the model knows classes 0 to {}", c - 1).into())
        }
        (_, l) => Ok(Some(l.unwrap_or(default))),
    }
}

/// Checks a test-set index given on the command line.
fn check_index(flag: &str, i: usize, test: &Split) -> Result<()> {
    if i < test.len() {
        Ok(())
    } else {
        Err(format!(
            "--{flag} {i} is out of range: the test set has {} images (indices 0 to {})",
            test.len(),
            test.len() - 1
        )
        .into())
    }
}

/// `vae-cli sample`: decoded samples from the prior, in a square-ish grid; a conditional model
/// draws the class of `--label`, or one row per class. `--idx` also writes the images as IDX.
pub fn sample(args: SampleArgs) -> Result<()> {
    let model = checkpoint::load_family(&args.model.checkpoint)?.model;
    let n = args.count as usize;
    let label = chosen_label(model.as_ref(), &args.label, 0)?;
    // Rows and columns of the grid, and each image's class.
    let classes = model.classes();
    let (rows, cols, labels): (usize, usize, Vec<usize>) = match (classes, args.label.label) {
        (c, None) if c > 0 => {
            let cols = n.div_ceil(c);
            (c, cols, (0..c * cols).map(|i| i / cols).collect())
        }
        _ => {
            let cols = (n as f64).sqrt().ceil() as usize;
            (n.div_ceil(cols), cols, vec![label.unwrap_or(0); n])
        }
    };
    let rng = &mut stream(args.seed, 0, 0, Purpose::Pictures);
    let images = match &args.prior {
        None => model.sample(labels.len(), &labels, rng),
        Some(path) => {
            let vq = crate::prior::load_vq(&args.model.checkpoint)?;
            let prior = crate::prior_run::load_prior(path, &vq)?;
            vq.decode_codes(&prior.sample(labels.len(), rng))
        }
    };
    let [_, h, w] = model.input();
    grid(&images, rows, cols, h, w).save(&args.out)?;
    if let Some(path) = &args.idx {
        let bytes: Vec<u8> = images.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        checkpoint::write_atomic(path, &vae::data::encode_idx(&[labels.len(), h, w], &bytes))?;
        say!("wrote {} images as IDX ([{}, {h}, {w}], bytes 0–255) to {}", labels.len(), labels.len(), path.display());
    }
    let what = match (classes, label) {
        (0, _) if args.prior.is_some() => format!("{n} samples through the learned prior"),
        (0, _) => format!("{n} samples from {}", model.sample_source()),
        (_, Some(l)) if args.label.label.is_some() => format!("{n} samples of class {l}"),
        (c, _) => format!("{} samples, a row for each of {c} classes", labels.len()),
    };
    done(&args.out, &what)
}

/// `vae-cli reconstruct`: the first n test images above their reconstructions (decoder mean at
/// z = mu, or at the nearest codes).
pub fn reconstruct(args: ReconstructArgs) -> Result<()> {
    let model = checkpoint::load_family(&args.model.checkpoint)?.model;
    let test = crate::data::load_test(&args.model.data, model.as_ref())?.0;
    let n = (args.count as usize).min(test.len());
    let idx: Vec<usize> = (0..n).collect();
    let rows_in = test.rows(&idx, Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures), model.classes());
    let recon = model.reconstruct(rows_in.clone());
    let x = rows_in.slice_axis(Axis(1), Slice::from(..test.pixels())).to_owned();
    let (h, w) = (test.rows, test.cols);
    // Rows of at most 16: originals, then their reconstructions, then the next originals, …
    let cols = n.min(16);
    let mut rows = Vec::new();
    for start in (0..n).step_by(cols) {
        let end = (start + cols).min(n);
        rows.push(pad_row(&x, start, end, cols));
        rows.push(pad_row(&recon, start, end, cols));
    }
    let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
    let all = ndarray::concatenate(Axis(0), &views).expect("same widths");
    grid(&all, rows.len(), cols, h, w).save(&args.out)?;
    done(&args.out, &format!("{n} test images and their reconstructions"))
}

/// Rows start..end of `x`, padded with blank images to `cols`.
fn pad_row(x: &Tensor, start: usize, end: usize, cols: usize) -> Tensor {
    let d = x.shape()[1];
    let mut row = Tensor::zeros(vec![cols, d]);
    row.slice_axis_mut(Axis(0), Slice::from(0..end - start)).assign(&x.slice_axis(Axis(0), Slice::from(start..end)));
    row
}

/// `vae-cli interpolate`: x_from, the decoded points of (1 − t)·mu_from + t·mu_to, x_to.
pub fn interpolate(args: InterpolateArgs) -> Result<()> {
    let model = load_with_space(&args.model.checkpoint, "interpolate")?;
    let (model, space) = (model.as_ref(), space(model.as_ref()));
    let test = load_test(&args.model, model)?;
    check_index("from", args.from, &test)?;
    check_index("to", args.to, &test)?;
    let label = chosen_label(model, &args.label, test.labels[args.from] as usize)?;
    let rows_in = test_rows(model, &test, &[args.from, args.to]);
    let (mu, _) = space.encode_points(rows_in.clone());
    let x = pixels(model, &rows_in);
    let steps = args.steps as usize;
    let j = space.latent_dim();
    let z = Tensor::from_shape_fn(vec![steps, j], |i| {
        let t = i[0] as f32 / (steps - 1) as f32;
        (1.0 - t) * mu[[0, i[1]]] + t * mu[[1, i[1]]]
    });
    let path = space.decode_points(z, &vec![label.unwrap_or(0); steps]);
    let row = ndarray::concatenate(
        Axis(0),
        &[x.slice_axis(Axis(0), Slice::from(0..1)), path.view(), x.slice_axis(Axis(0), Slice::from(1..2))],
    )
    .expect("same widths");
    let (h, w) = image_size(model);
    grid(&row, 1, steps + 2, h, w).save(&args.out)?;
    done(&args.out, &format!("{steps} points between test images {} and {}", args.from, args.to))
}

/// Φ⁻¹(p), the quantile function of N(0, 1), by Acklam's rational approximation (relative
/// error below 1.2e-9 on (0, 1)).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// `vae-cli manifold`: decode z on a grid of the prior's quantiles, z_i = Φ⁻¹((i + ½)/G), so
/// that every cell covers equal prior mass; dimensions other than the two chosen stay at 0.
pub fn manifold(args: ManifoldArgs) -> Result<()> {
    let model = load_with_space(&args.model.checkpoint, "manifold")?;
    let (model, space) = (model.as_ref(), space(model.as_ref()));
    let j = space.latent_dim();
    let (a, b) = match args.dims.as_slice() {
        &[a, b] if a != b && a < j && b < j => (a, b),
        d => {
            return Err(format!("--dims takes two different latent dimensions below {j} (0-based), found {d:?}").into())
        }
    };
    let g = args.grid as usize;
    let q: Vec<f32> = (0..g).map(|i| normal_quantile((i as f64 + 0.5) / g as f64) as f32).collect();
    // Row r (top to bottom) has z_b decreasing; column c has z_a increasing.
    let mut z = Tensor::zeros(vec![g * g, j]);
    for r in 0..g {
        for c in 0..g {
            z[[r * g + c, a]] = q[c];
            z[[r * g + c, b]] = q[g - 1 - r];
        }
    }
    let label = chosen_label(model, &args.label, 0)?;
    let images = space.decode_points(z, &vec![label.unwrap_or(0); g * g]);
    let (h, w) = image_size(model);
    grid_scaled(&images, g, g, h, w, 2).save(&args.out)?;
    done(&args.out, &format!("a {g}×{g} manifold over latent dimensions {a} and {b}"))
}

/// The top two principal axes of the rows of `x` [N, J] (power iteration with deflation on
/// the J×J covariance), as two unit vectors.
pub fn top_two_axes(x: &Tensor) -> [Vec<f64>; 2] {
    let (n, j) = (x.shape()[0], x.shape()[1]);
    let mean: Vec<f64> =
        (0..j).map(|k| x.index_axis(Axis(1), k).iter().map(|&v| v as f64).sum::<f64>() / n as f64).collect();
    let mut cov = vec![vec![0.0f64; j]; j];
    for row in x.outer_iter() {
        for a in 0..j {
            for b in 0..j {
                cov[a][b] += (row[a] as f64 - mean[a]) * (row[b] as f64 - mean[b]) / n as f64;
            }
        }
    }
    let mut axes: [Vec<f64>; 2] = [vec![], vec![]];
    for axis in &mut axes {
        let mut v: Vec<f64> = (0..j).map(|k| 1.0 + k as f64 * 0.1).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let w: Vec<f64> = (0..j).map(|a| (0..j).map(|b| cov[a][b] * v[b]).sum()).collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            lambda = norm;
            v = w.iter().map(|x| x / norm).collect();
        }
        // Deflate: remove this axis's variance before finding the next.
        for a in 0..j {
            for b in 0..j {
                cov[a][b] -= lambda * v[a] * v[b];
            }
        }
        *axis = v;
    }
    axes
}

/// `vae-cli latent`: the test set's latent means as a scatter coloured by label (the first two
/// dimensions, or the first two principal components when J > 2), with a legend.
pub fn latent(args: LatentArgs) -> Result<()> {
    let model = load_with_space(&args.model.checkpoint, "latent")?;
    let (model, space) = (model.as_ref(), space(model.as_ref()));
    let test = load_test(&args.model, model)?;
    let j = space.latent_dim();
    let idx: Vec<usize> = (0..test.len()).collect();
    let mut mus = Vec::new();
    let mut logvars = Vec::new();
    for chunk in idx.chunks(1000) {
        let (mu, logvar) = space.encode_points(test_rows(model, &test, chunk));
        mus.push(mu);
        logvars.extend(logvar);
    }
    let cat = |ts: &[Tensor]| {
        ndarray::concatenate(Axis(0), &ts.iter().map(|t| t.view()).collect::<Vec<_>>()).expect("same widths")
    };
    let mu = cat(&mus);
    // The log-variances where the space has them for every chunk.
    let logvar = (logvars.len() == mus.len()).then(|| cat(&logvars));

    let (points, title): (Vec<(f64, f64)>, String) = if j == 1 {
        (
            mu.outer_iter().zip(&test.labels).map(|(m, &l)| (m[0] as f64, l as f64)).collect(),
            "LATENT MEAN (1 DIM) BY LABEL".into(),
        )
    } else if j == 2 {
        (mu.outer_iter().map(|m| (m[0] as f64, m[1] as f64)).collect(), "LATENT MEANS, DIMS 1 AND 2".into())
    } else {
        let [a, b] = top_two_axes(&mu);
        let proj = |m: ndarray::ArrayViewD<f32>, v: &[f64]| m.iter().zip(v).map(|(&x, y)| x as f64 * y).sum::<f64>();
        (
            mu.outer_iter().map(|m| (proj(m.clone(), &a), proj(m, &b))).collect(),
            format!("LATENT MEANS, PCA OF {j} DIMS"),
        )
    };
    let (xr, yr) = (padded_range(points.iter().map(|p| p.0)), padded_range(points.iter().map(|p| p.1)));
    let mut canvas = Canvas::new(900, 860, [255, 255, 255]);
    let (xl, yl) = match j {
        1 => ("Z1", "LABEL"),
        2 => ("Z1", "Z2"),
        _ => ("PC1", "PC2"),
    };
    let chart = Chart::draw(&mut canvas, (0, 0, 900, 860), xr, yr, &title, xl, yl);
    for (p, &l) in points.iter().zip(&test.labels) {
        chart.scatter(&mut canvas, [*p], PALETTE[l as usize % 10], 2);
    }
    let labels: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let entries: Vec<(&str, _)> = labels.iter().map(|s| s.as_str()).zip(PALETTE).collect();
    chart.legend(&mut canvas, &entries);
    canvas.save(&args.out)?;

    if let Some(csv) = &args.csv {
        let mut text = String::from("label");
        (0..j).for_each(|k| text.push_str(&format!(",mu{}", k + 1)));
        if logvar.is_some() {
            (0..j).for_each(|k| text.push_str(&format!(",logvar{}", k + 1)));
        }
        text.push('\n');
        for (n, (m, l)) in mu.outer_iter().zip(&test.labels).enumerate() {
            text.push_str(&l.to_string());
            m.iter().for_each(|v| text.push_str(&format!(",{v}")));
            if let Some(lv) = &logvar {
                lv.index_axis(Axis(0), n).iter().for_each(|v| text.push_str(&format!(",{v}")));
            }
            text.push('\n');
        }
        checkpoint::write_atomic(csv, text.as_bytes())?;
        say!("wrote label, mu and logvar of {} test images to {}", test.len(), csv.display());
    }
    done(&args.out, &format!("the latent means of {} test images", test.len()))
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

/// `eval --units-png`: each latent unit's activity, the variance of its posterior mean across
/// the test images, sorted from the most active down, on a logarithmic axis, with Burda et al.'s
/// threshold of 0.01 drawn across: the units above the line carry information about x, those
/// below have collapsed onto the prior.
pub fn units_chart(variances: &[f64], threshold: f64, out: &Path) -> Result<()> {
    let mut sorted: Vec<f64> = variances.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let active = sorted.iter().filter(|&&v| v > threshold).count();
    // Decades that hold every variance and the threshold; a zero variance sits on the floor.
    let positive = sorted.iter().copied().filter(|&v| v > 0.0);
    let lo = positive.clone().fold(threshold, f64::min);
    let hi = positive.fold(threshold, f64::max);
    let y = (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil()));
    let (width, height) = (900, 500);
    let mut canvas = Canvas::new(width, height, [255, 255, 255]);
    let title = format!("ACTIVE UNITS: {active} OF {}", sorted.len());
    let x = (0.0, sorted.len() as f64 + 1.0);
    let area = (0, 0, width as i64, height as i64);
    let chart = Chart::draw_scaled(
        &mut canvas,
        area,
        (x, Scale::Linear),
        (y, Scale::Log),
        &title,
        "UNITS, MOST ACTIVE FIRST",
        "VARIANCE",
    );
    chart.line(&mut canvas, &[(x.0, threshold), (x.1, threshold)], PALETTE[7]);
    for (rank, &v) in sorted.iter().enumerate() {
        let color = if v > threshold { PALETTE[0] } else { PALETTE[1] };
        chart.scatter(&mut canvas, [(rank as f64 + 1.0, v.max(y.0))], color, 5);
    }
    chart.legend(&mut canvas, &[("ACTIVE", PALETTE[0]), ("INACTIVE", PALETTE[1]), ("THRESHOLD 0.01", PALETTE[7])]);
    Ok(canvas.save(out)?)
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
pub fn plot(args: PlotArgs) -> Result<()> {
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
