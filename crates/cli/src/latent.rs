//! `vae-cli latent`: the test set's latent points as a scatter coloured by label, and as CSV.

use std::path::PathBuf;

use clap::Args;
use ndarray::Axis;
use vae::checkpoint;
use vae_autodiff::Tensor;

use crate::chart::{padded_range, Chart};
use crate::image::{Canvas, PALETTE};
use crate::options::{ModelArgs, Result};
use crate::pictures::{done, load_test, load_with_space, space, test_rows, top_two_axes};
use crate::say::say;

/// Flags of `vae-cli latent`.
#[derive(Args, Debug, Clone)]
pub struct LatentArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// PNG file to write.
    #[arg(long, value_name = "FILE", default_value = "latent.png")]
    pub out: PathBuf,
    /// Also write label, mu and logvar of every test image to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// `vae-cli latent`: the test set's latent means as a scatter coloured by label (the first two
/// dimensions, or the first two principal components when J > 2), with a legend.
pub fn run(args: LatentArgs) -> Result<()> {
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
