//! The playground's run settings: the JSON a page sends to start a run, checked, and turned
//! into the flags of `vae-cli train`. Each setting is named as its flag (`latent-dim`, `beta`,
//! `kl-warmup`, …), so a refusal reads the same as the command line's, and the checks are the
//! command line's own (clap's ranges, then `train::check_flags`), after the playground's limits
//! on sizes. Nothing is started until every check has passed.

use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;

use crate::options::DataArgs;
use crate::train::{check_flags, TrainArgs};

/// A data set the playground offers: the name the page shows and sends, and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSet {
    /// Its file or folder name.
    pub name: String,
    /// Its path, which the page never sees.
    pub path: PathBuf,
}

/// One playground setting: its name (the flag's), what it holds, and its largest value.
pub struct Setting {
    /// The flag's name, without `--`.
    pub name: &'static str,
    /// The page's default.
    pub default: &'static str,
    /// The largest value the playground accepts (sizes only), or `None`.
    pub max: Option<f64>,
}

/// Every setting the page may send, with its default and limit. The limits keep one run of the
/// playground to minutes and its memory small; the command line takes larger values.
pub const SETTINGS: &[Setting] = &[
    Setting { name: "family", default: "vae", max: None },
    Setting { name: "latent-dim", default: "2", max: Some(64.0) },
    Setting { name: "hidden", default: "400", max: Some(2048.0) },
    Setting { name: "beta", default: "1", max: None },
    Setting { name: "kl-warmup", default: "0", max: None },
    Setting { name: "objective", default: "elbo", max: None },
    Setting { name: "k", default: "1", max: Some(100.0) },
    Setting { name: "likelihood", default: "bernoulli", max: None },
    Setting { name: "binarize", default: "none", max: None },
    Setting { name: "lr", default: "0.001", max: None },
    Setting { name: "epochs", default: "10", max: Some(1000.0) },
    Setting { name: "train-limit", default: "10000", max: Some(60000.0) },
    Setting { name: "test-limit", default: "10000", max: Some(10000.0) },
    Setting { name: "batch-size", default: "128", max: Some(1024.0) },
    Setting { name: "seed", default: "1", max: None },
];

/// Families the playground trains: those with a continuous latent space and one layer of it.
pub const FAMILIES: &[&str] = &["vae", "cvae"];
/// Most hidden layers.
pub const MAX_LAYERS: usize = 4;
/// Longest request body accepted.
pub const MAX_BODY: usize = 16 * 1024;

/// The settings as JSON for the page: each one's default and limit, the first being the data
/// set (one of `datasets`, by name).
pub fn describe(datasets: &[DataSet]) -> Value {
    let first = datasets.first().map_or("", |d| d.name.as_str());
    let dataset = serde_json::json!({ "name": "dataset", "default": first, "max": null });
    let settings: Vec<Value> = std::iter::once(dataset)
        .chain(SETTINGS.iter().map(|s| serde_json::json!({ "name": s.name, "default": s.default, "max": s.max })))
        .collect();
    let names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
    serde_json::json!({ "settings": settings, "families": FAMILIES, "max_layers": MAX_LAYERS, "datasets": names })
}

/// The train flags from the page's JSON `body` (an object of settings and `hold`), or the
/// one-line reason it is refused. The `dataset` setting names one of `datasets` (the first if
/// not given), which trains with the preparation of `prep`. Returns the flags (without
/// `--out`, which the caller names) and whether to pause after each epoch.
pub fn parse(body: &str, datasets: &[DataSet], prep: &DataArgs) -> Result<(TrainArgs, bool), String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("the settings are not JSON: {e}"))?;
    let Value::Object(fields) = value else { return Err("the settings must be a JSON object".into()) };
    let mut argv: Vec<String> = Vec::new();
    let mut hold = false;
    for (name, value) in &fields {
        if name == "hold" {
            hold = value.as_bool().ok_or("hold must be true or false")?;
            continue;
        }
        if name == "dataset" {
            continue; // below: a name, never a path
        }
        let setting = SETTINGS.iter().find(|s| s.name == name).ok_or_else(|| format!("unknown setting {name:?}"))?;
        let text = match value {
            Value::Null => continue,
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.trim().to_string(),
            Value::Array(items) if name == "hidden" => {
                let items: Option<Vec<String>> = items.iter().map(|v| v.as_u64().map(|n| n.to_string())).collect();
                items.ok_or("hidden must be whole numbers")?.join(",")
            }
            _ => return Err(format!("{name} must be a number or a string")),
        };
        check_limit(setting, &text)?;
        argv.push(format!("--{name}"));
        argv.push(text);
    }
    let family = fields.get("family").and_then(Value::as_str).unwrap_or("vae").trim();
    if !FAMILIES.contains(&family) {
        return Err(format!("unknown family {family:?}: the playground trains {}", FAMILIES.join(" or ")));
    }
    let chosen = match fields.get("dataset") {
        None | Some(Value::Null) => datasets.first(),
        Some(Value::String(name)) => datasets.iter().find(|d| d.name == name.trim()),
        Some(_) => return Err("dataset must be the name of a data set".into()),
    };
    let Some(chosen) = chosen else {
        let names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
        return Err(format!("unknown dataset: the playground offers {}", names.join(", ")));
    };
    let mut args = Flags::try_parse_from(&argv).map_err(|e| first_line(&e.render().to_string()))?.args;
    args.data = DataArgs { data: Some(chosen.path.clone()), ..prep.clone() };
    check_flags(&args).map_err(|e| e.to_string())?;
    Ok((args, hold))
}

/// The train flags alone, parsed as the command line parses them.
#[derive(Parser)]
#[command(no_binary_name = true)]
struct Flags {
    #[command(flatten)]
    args: TrainArgs,
}

/// The playground's limit on a size: every number of `text` at most the setting's max (the
/// hidden widths one by one, and at most [`MAX_LAYERS`] of them). Text that is no number is
/// left to the command line's checks, which say what they expected.
fn check_limit(setting: &Setting, text: &str) -> Result<(), String> {
    let Some(max) = setting.max else { return Ok(()) };
    let parts: Vec<&str> = text.split(',').collect();
    if setting.name == "hidden" && parts.len() > MAX_LAYERS {
        return Err(format!("hidden: at most {MAX_LAYERS} layers in the playground"));
    }
    for part in parts {
        if let Ok(v) = part.trim().parse::<f64>() {
            if v > max {
                return Err(format!("{}: at most {max} in the playground (found {v})", setting.name));
            }
        }
    }
    Ok(())
}

/// The first line of a command-line error, without its `error: ` prefix.
fn first_line(message: &str) -> String {
    let line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid settings");
    line.trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Two data sets, by name.
    fn sets() -> Vec<DataSet> {
        [("mnist", "/data/mnist"), ("shapes", "/data/shapes.npz")]
            .map(|(name, path)| DataSet { name: name.into(), path: path.into() })
            .to_vec()
    }

    fn refusal(body: &str) -> String {
        match parse(body, &sets(), &DataArgs::default()) {
            Ok(_) => panic!("{body} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn good_settings_become_the_train_flags() {
        let body = r#"{"family":"cvae","latent-dim":2,"hidden":[256,128],"beta":"0.5","kl-warmup":2,
            "lr":"3e-4","epochs":3,"train-limit":2000,"objective":"elbo","k":2,"hold":true}"#;
        let (args, hold) = parse(body, &sets(), &DataArgs::default()).unwrap();
        assert!(hold);
        let r = args.recipe();
        assert_eq!((r.latent, r.hidden.clone(), r.settings.epochs), (2, vec![256, 128], 3));
        assert_eq!((args.beta, args.kl_warmup, args.lr, args.k), (0.5, 2.0, Some(3e-4), 2));
        assert_eq!(args.train_limit, Some(2000));
        assert_eq!(args.out, None);
        // Nothing given: the command line's defaults, on the first data set, prepared as the
        // server was told.
        let prep = DataArgs { image_size: Some(32), ..DataArgs::default() };
        let (args, _) = parse("{}", &sets(), &prep).unwrap();
        assert_eq!((args.data.data.as_deref(), args.data.image_size), (Some(Path::new("/data/mnist")), Some(32)));
        let (args, _) = parse(r#"{"dataset":"shapes"}"#, &sets(), &prep).unwrap();
        assert_eq!(args.data.data.as_deref(), Some(Path::new("/data/shapes.npz")));
    }

    /// The refusal matrix: each bad setting gets one line that names it.
    #[test]
    fn bad_settings_are_refused_with_one_line_naming_them() {
        let cases = [
            (r#"{"latent-dim":0}"#, "latent-dim"),
            (r#"{"beta":-1}"#, "beta"),
            (r#"{"lr":"NaN"}"#, "lr"),
            (r#"{"lr":"inf"}"#, "lr"),
            (r#"{"k":0}"#, "k"),
            (r#"{"family":"gan"}"#, "family"),
            (r#"{"family":"vqvae"}"#, "family"),
            (r#"{"latent-dim":65}"#, "latent-dim"),
            (r#"{"hidden":"400,400,400,400,400"}"#, "layers"),
            (r#"{"hidden":[4096]}"#, "hidden"),
            (r#"{"epochs":1e9}"#, "epochs"),
            (r#"{"train-limit":70000}"#, "train-limit"),
            (r#"{"objective":"iwae","beta":2}"#, "beta"),
            (r#"{"colour":"red"}"#, "colour"),
            (r#"{"beta":{}}"#, "beta"),
            (r#"{"hold":"yes"}"#, "hold"),
            (r#"[1,2]"#, "object"),
            ("not json", "JSON"),
            (r#"{"latent-dim":"two"}"#, "latent-dim"),
            (r#"{"dataset":"/etc"}"#, "offers mnist, shapes"),
            (r#"{"dataset":"../mnist"}"#, "offers mnist, shapes"),
            (r#"{"dataset":3}"#, "dataset"),
        ];
        for (body, needle) in cases {
            let e = refusal(body);
            assert!(e.contains(needle) && e.lines().count() == 1, "{body}: {e:?}");
        }
    }
}
