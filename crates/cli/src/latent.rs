//! `vae-cli latent`: the test set's latent points as a scatter coloured by label, and as CSV.

use std::path::PathBuf;

use clap::Args;
use ndarray::Axis;
use vae::checkpoint;
use vae_autodiff::Tensor;

use crate::figure::{self, Format, Layout, Mark, Panel, Series};
use crate::image::PALETTE;
use crate::options::{ModelArgs, Result};
use crate::pictures::{done, load_with_space, space, test_rows, top_two_axes};
use crate::say::say;

/// Flags of `vae-cli latent`.
#[derive(Args, Debug, Clone)]
pub struct LatentArgs {
    /// The checkpoint and the data.
    #[command(flatten)]
    pub model: ModelArgs,
    /// File to write: PNG, or SVG if its name ends in .svg.
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
    let (data, _) = crate::data::load_for_model(&args.model.data, &args.model.checkpoint, model)?;
    let (test, names) = (&data.test, &data.info.class_names);
    let j = space.latent_dim();
    let idx: Vec<usize> = (0..test.len()).collect();
    let mut mus = Vec::new();
    let mut logvars = Vec::new();
    for chunk in idx.chunks(1000) {
        let (mu, logvar) = space.encode_points(test_rows(model, test, chunk));
        mus.push(mu);
        logvars.extend(logvar);
    }
    let cat = |ts: &[Tensor]| {
        ndarray::concatenate(Axis(0), &ts.iter().map(|t| t.view()).collect::<Vec<_>>()).expect("same widths")
    };
    let mu = cat(&mus);
    // The log-variances where the space has them for every chunk.
    let logvar = (logvars.len() == mus.len()).then(|| cat(&logvars));

    let n = test.len();
    let (points, title, axes): (Vec<(f64, f64)>, String, (&str, &str)) = if j == 1 {
        let points = mu.outer_iter().zip(&test.labels).map(|(m, &l)| (m[0] as f64, l as f64)).collect();
        (points, format!("latent means of {n} test images (1 dimension) by label"), ("z₁", "label"))
    } else if j == 2 {
        let points = mu.outer_iter().map(|m| (m[0] as f64, m[1] as f64)).collect();
        (points, format!("latent means of {n} test images"), ("z₁", "z₂"))
    } else {
        let [a, b] = top_two_axes(&mu);
        let proj = |m: ndarray::ArrayViewD<f32>, v: &[f64]| m.iter().zip(v).map(|(&x, y)| x as f64 * y).sum::<f64>();
        let points = mu.outer_iter().map(|m| (proj(m.clone(), &a), proj(m, &b))).collect();
        (points, format!("latent means of {n} test images: their top two principal axes of {j}"), ("PC1", "PC2"))
    };
    // One series of dots per label, in the label's colour, named by its class where the data
    // names them (an image folder's subfolders, CIFAR's meta files).
    let series: Vec<Series> = (0..=u8::MAX)
        .map(|label| {
            let mine = points.iter().zip(&test.labels).filter(|(_, &l)| l == label).map(|(p, _)| *p).collect();
            let name = names.get(label as usize).cloned().unwrap_or_else(|| label.to_string());
            Series { mark: Mark::Dots(2), ..Series::line(&name, mine) }.colored(PALETTE[label as usize % PALETTE.len()])
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let chart =
        figure::draw(&title, &[Panel::new("", axes, series)], ((900, 820), Layout::Row), Format::of(&args.out))?;
    checkpoint::write_atomic(&args.out, &chart)?;

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
