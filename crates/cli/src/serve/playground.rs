//! The playground (`vae-cli serve` without `--checkpoint`): start a training run from the page
//! and watch it, on one of the data sets it was given (`--datasets DIR`: the page sends a
//! name, never a path). A run is an ordinary `vae-cli train` run in a folder under `--runs`,
//! trained on a thread of the server with its own [`Control`] (pause, resume, stop, pause after
//! every epoch); the page polls `/api/status` and, after each epoch, fetches the run's curves, its
//! pictures and the test set's latent means, which the server computes from the epoch's
//! `model.safetensors`. One run trains at a time: a second start is refused (409), not queued.
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the page (with the token its POSTs carry) |
//! | `GET /api/settings` | the settings a run takes, their defaults and limits, the data sets by name |
//! | `GET /api/status` | the current run: name, state, epochs, step, message, its settings |
//! | `GET /api/runs` | the runs under `--runs`: name, epochs done, last test loss |
//! | `GET /api/runs/NAME/curves` | JSON: the run's metrics.csv (`header`, `rows`) |
//! | `GET /api/runs/NAME/latent` | JSON: the test set's latent means in 2-D, labels, active units |
//! | `GET /api/runs/NAME/samples.png`, `reconstructions.png` | the run's pictures |
//! | `GET /api/runs/NAME/curves.svg?with=OTHER` | the loss curves drawn as SVG (of two runs with `with`) |
//! | `GET /api/runs/NAME/decode?z=…` | PNG: the run's decoder mean at z |
//! | `POST /api/start` (JSON settings) | 202 and the run's name; 400 bad settings; 409 a run is training |
//! | `POST /api/pause`, `/api/resume`, `/api/stop` | 200 and the state; 409 with no run training |
//! | `POST /api/hold` (`{"on": true}`) | pause after every epoch, or not |
//!
//! POSTs change state, so they must come from the page itself (`http::check_same_origin`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::SystemTime;

use std::collections::HashMap;

use vae::data::Split;
use vae::run::files::MODEL;
use vae::run::Control;

use super::explorer::{metrics_table, Explorer};
use super::form::{self, DataSet};
use super::http::{json, text, Answer};
use crate::figure::{Format, Layout};
use crate::options::{enum_name, ObjectiveKind};
use crate::options::{DataArgs, Result};
use crate::pictures::load_with_space;
use crate::{threads, train};

/// The page, with its script and style inline; `{{TOKEN}}` is replaced by the server's token.
const PAGE: &str = include_str!("playground.html");
/// Test images whose latent means the page scatters.
pub const SCATTER_IMAGES: usize = 5000;

/// How a run ended, or that it goes on.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Training,
    Done,
    Stopped(String),
    Failed(String),
}

/// The run the server started last.
struct Current {
    name: String,
    /// The settings the run was started with, as the page sent them.
    settings: serde_json::Value,
    control: Arc<Control>,
    outcome: Arc<Mutex<Outcome>>,
    thread: Option<JoinHandle<()>>,
}

/// The latent view of a run, kept until its model file changes.
struct View {
    name: String,
    stamp: SystemTime,
    explorer: Arc<Explorer>,
}

/// What the playground server knows.
pub struct Playground {
    /// Folder of the runs (each a direct child).
    runs: PathBuf,
    /// The data sets a run may train on (the page picks one by name), the first by default.
    datasets: Vec<DataSet>,
    /// How every data set is prepared (`--image-size`, `--channels`, …).
    prep: DataArgs,
    /// Each data set's first test images, for the scatter, read when first needed.
    tests: Mutex<HashMap<String, Arc<Split>>>,
    /// The data set of each run started here.
    run_data: Mutex<HashMap<String, String>>,
    /// The token the page's POSTs carry.
    pub token: String,
    current: Mutex<Option<Current>>,
    view: Mutex<Option<View>>,
}

/// Locks a mutex whose value stays whole whatever panicked while it was held.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether `name` can name a run folder: letters, digits, `-`, `_` and `.`, not starting with `.`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Playground {
    /// A playground over the runs in `runs`, training on the data sets `datasets` (at least
    /// one) prepared as `prep` says.
    pub fn new(runs: PathBuf, datasets: Vec<DataSet>, prep: DataArgs) -> Self {
        assert!(!datasets.is_empty(), "a playground needs a data set");
        let token = format!("{:032x}", rand::random::<u128>());
        Playground {
            runs,
            datasets,
            prep,
            tests: Mutex::new(HashMap::new()),
            run_data: Mutex::new(HashMap::new()),
            token,
            current: Mutex::new(None),
            view: Mutex::new(None),
        }
    }

    /// The first [`SCATTER_IMAGES`] test images of data set `set`, read once.
    fn test_images(&self, set: &DataSet) -> Result<Arc<Split>> {
        if let Some(test) = lock(&self.tests).get(&set.name) {
            return Ok(test.clone());
        }
        let prep = crate::data::prep(&self.prep);
        let test = crate::data::load(&set.path, &prep)?.test.truncated(SCATTER_IMAGES);
        let test = Arc::new(test);
        lock(&self.tests).insert(set.name.clone(), test.clone());
        Ok(test)
    }

    /// The page with its token.
    pub fn page(&self) -> Answer {
        (200, "text/html; charset=utf-8", PAGE.replace("{{TOKEN}}", &self.token).into_bytes())
    }

    /// A GET of `path` (below `/api/`).
    pub fn get(&self, path: &str, query: &[(String, String)]) -> Answer {
        match path {
            "settings" => json(form::describe(&self.datasets)),
            "status" => self.status(),
            "runs" => self.list(),
            _ => match path.strip_prefix("runs/").and_then(|p| p.split_once('/')) {
                Some((name, what)) => self.run_file(name, what, query),
                None => text(404, format!("no such page: /api/{path}")),
            },
        }
    }

    /// A POST of `path` (below `/api/`) with `body`; the caller has checked its origin.
    pub fn post(&self, path: &str, body: &str) -> Answer {
        match path {
            "start" => self.start(body),
            "pause" | "resume" | "stop" => self.switch(path),
            "hold" => {
                let on = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v["on"].as_bool());
                let Some(on) = on else { return text(400, r#"hold takes {"on": true} or {"on": false}"#) };
                match self.training() {
                    Some(control) => {
                        control.hold_each_epoch(on);
                        self.status()
                    }
                    None => text(409, "no run is training"),
                }
            }
            _ => text(404, format!("no such action: /api/{path}")),
        }
    }

    /// The control of the run in training, if one is.
    fn training(&self) -> Option<Arc<Control>> {
        let current = lock(&self.current);
        let c = current.as_ref()?;
        let training = *lock(&c.outcome) == Outcome::Training;
        training.then(|| c.control.clone())
    }

    /// Starts a run from the page's settings: checked first, refused while another trains.
    fn start(&self, body: &str) -> Answer {
        // Held across the check and the start: of two clients starting at once, one trains.
        let mut current = lock(&self.current);
        if let Some(c) = current.as_ref().filter(|c| *lock(&c.outcome) == Outcome::Training) {
            return text(409, format!("a run is training ({}): stop it first, or wait until it ends", c.name));
        }
        let (mut args, hold) = match form::parse(body, &self.datasets, &self.prep) {
            Ok(parsed) => parsed,
            Err(e) => return text(400, e),
        };
        let recipe = args.recipe();
        let mut tail = format!("{}-z{}", enum_name(recipe.family), recipe.latent);
        if args.objective != ObjectiveKind::Elbo || args.k != 1 {
            tail.push_str(&format!("-{}-k{}", enum_name(args.objective), args.k));
        }
        let name = self.next_name(&tail);
        args.out = Some(self.runs.join(&name));
        if let Some(set) = self.datasets.iter().find(|d| args.data.data.as_ref() == Some(&d.path)) {
            lock(&self.run_data).insert(name.clone(), set.name.clone());
        }
        if let Some(old) = current.take() {
            old.thread.map(JoinHandle::join);
        }
        let control = Arc::new(Control::new());
        control.hold_each_epoch(hold);
        let outcome = Arc::new(Mutex::new(Outcome::Training));
        let thread = {
            let (control, outcome) = (control.clone(), outcome.clone());
            std::thread::spawn(move || {
                let result = threads::in_pool(|| train::run_controlled(args, &control));
                let p = control.position();
                *lock(&outcome) = match result {
                    Err(e) => Outcome::Failed(e.to_string()),
                    Ok(()) if p.epochs_done < p.epochs && p.step == 0 => {
                        Outcome::Stopped(format!("stopped after epoch {}", p.epochs_done))
                    }
                    Ok(()) if p.epochs_done < p.epochs => Outcome::Stopped(format!(
                        "stopped at epoch {} step {} of {}",
                        p.epochs_done + 1,
                        p.step,
                        p.steps
                    )),
                    Ok(()) => Outcome::Done,
                };
            })
        };
        let settings = serde_json::from_str(body).unwrap_or_default();
        *current = Some(Current { name: name.clone(), settings, control, outcome, thread: Some(thread) });
        (202, "application/json", serde_json::json!({ "run": name }).to_string().into_bytes())
    }

    /// The next free run name: `play-<n>-<tail>` (tail: `<family>-z<J>`, then `-<objective>-k<K>`
    /// unless the one-sample ELBO), n one more than any under `--runs`.
    fn next_name(&self, tail: &str) -> String {
        let taken = std::fs::read_dir(&self.runs)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name().to_str()?.strip_prefix("play-")?.split('-').next()?.parse::<u32>().ok()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        format!("play-{:03}-{tail}", taken + 1)
    }

    /// Pause, resume or stop the run in training.
    fn switch(&self, what: &str) -> Answer {
        let Some(control) = self.training() else { return text(409, "no run is training") };
        match what {
            "pause" => control.pause(),
            "resume" => control.resume(),
            _ => control.stop(),
        }
        self.status()
    }

    /// Asks the run in training, if any, to stop, and waits until it has saved its checkpoint.
    pub fn stop_and_wait(&self) {
        let mut current = lock(&self.current);
        if let Some(c) = current.as_mut() {
            c.control.stop();
            c.thread.take().map(JoinHandle::join);
        }
    }

    fn status(&self) -> Answer {
        let current = lock(&self.current);
        let Some(c) = current.as_ref() else { return json(serde_json::json!({ "run": null, "state": "idle" })) };
        let p = c.control.position();
        let (state, message) = match &*lock(&c.outcome) {
            Outcome::Training if c.control.stop_requested() => ("stopping", String::new()),
            Outcome::Training if p.paused => ("paused", String::new()),
            Outcome::Training => ("training", String::new()),
            Outcome::Done => ("done", String::new()),
            Outcome::Stopped(m) => ("stopped", m.clone()),
            Outcome::Failed(m) => ("failed", m.clone()),
        };
        json(serde_json::json!({
            "run": c.name, "state": state, "message": message, "settings": c.settings,
            "epochs_done": p.epochs_done, "epochs": p.epochs, "step": p.step, "steps": p.steps,
        }))
    }

    /// The runs under `--runs` that have a metrics file, newest first.
    fn list(&self) -> Answer {
        let mut runs: Vec<(SystemTime, serde_json::Value)> = std::fs::read_dir(&self.runs)
            .map(|d| d.filter_map(|e| e.ok()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                let name = e.file_name().to_str().filter(|n| valid_name(n))?.to_string();
                let csv = e.path().join("metrics.csv");
                let stamp = csv.metadata().and_then(|m| m.modified()).ok()?;
                let (header, rows) = read_metrics(&csv)?;
                let test = header.iter().position(|h| h == "test_loss");
                let last = rows.last().and_then(|r| r.get(test?).copied()).filter(|v| v.is_finite());
                Some((stamp, serde_json::json!({ "name": name, "epochs": rows.len(), "test_loss": last })))
            })
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.0));
        json(serde_json::json!({ "runs": runs.into_iter().map(|(_, r)| r).collect::<Vec<_>>() }))
    }

    /// A file or view of run `name`.
    fn run_file(&self, name: &str, what: &str, query: &[(String, String)]) -> Answer {
        let dir = self.runs.join(name);
        if !valid_name(name) || !dir.join("metrics.csv").is_file() {
            return text(404, format!("no run {name:?} in {}", self.runs.display()));
        }
        match what {
            "samples.png" | "reconstructions.png" => match std::fs::read(dir.join(what)) {
                Ok(png) => (200, "image/png", png),
                Err(_) => text(404, format!("{name} has no {what} yet")),
            },
            "curves" => match read_metrics(&dir.join("metrics.csv")) {
                Some((header, rows)) => json(serde_json::json!({ "header": header, "rows": rows })),
                None => text(500, format!("cannot read {name}'s metrics.csv")),
            },
            "curves.svg" => self.curves_svg(name, query),
            "latent" | "decode" => match self.explorer(name) {
                Ok(explorer) if what == "decode" => explorer.answer("decode", query).expect("the explorer decodes"),
                Ok(explorer) => {
                    let (_, _, body) = explorer.answer("latent", &[]).expect("the explorer has a scatter");
                    let mut v: serde_json::Value = serde_json::from_slice(&body).expect("the explorer's JSON");
                    v["active_units"] = explorer.active_units().into();
                    v["info"] = serde_json::from_slice(&explorer.answer("info", &[]).expect("info").2).expect("JSON");
                    json(v)
                }
                Err(e) => text(409, e),
            },
            _ => text(404, format!("no such page: /api/runs/{name}/{what}")),
        }
    }

    /// The loss curves of run `name` (and of run `with`, if given) as SVG.
    fn curves_svg(&self, name: &str, query: &[(String, String)]) -> Answer {
        let mut runs = vec![name.to_string()];
        if let Some(other) = super::http::param(query, "with").filter(|o| !o.is_empty() && *o != name) {
            if !valid_name(other) || !self.runs.join(other).join("metrics.csv").is_file() {
                return text(404, format!("no run {other:?} to compare with"));
            }
            runs.push(other.to_string());
        }
        // A run with no finished epoch has nothing to draw: itself 404, a compared one left out.
        let finished =
            |r: &str| read_metrics(&self.runs.join(r).join("metrics.csv")).is_some_and(|(_, rows)| !rows.is_empty());
        if !finished(name) {
            return text(404, format!("{name} has no finished epoch yet"));
        }
        runs.retain(|r| finished(r));
        let dirs: Vec<PathBuf> = runs.iter().map(|r| self.runs.join(r)).collect();
        let named: Vec<(String, &Path)> = runs.iter().cloned().zip(dirs.iter().map(PathBuf::as_path)).collect();
        match crate::plot::curves(&named, Layout::Column, Format::Svg) {
            Ok(svg) => (200, "image/svg+xml", svg),
            Err(e) => text(500, format!("cannot draw the curves: {e}")),
        }
    }

    /// The explorer of run `name`'s latest model, built again when the model file changes.
    fn explorer(&self, name: &str) -> std::result::Result<Arc<Explorer>, String> {
        let model_path: PathBuf = self.runs.join(name).join(MODEL);
        let stamp = model_path.metadata().and_then(|m| m.modified()).map_err(|_| format!("{name} has no model yet"))?;
        let mut view = lock(&self.view);
        if let Some(v) = view.as_ref().filter(|v| v.name == name && v.stamp == stamp) {
            return Ok(v.explorer.clone());
        }
        let model = load_with_space(&model_path, "the playground").map_err(|e| e.to_string())?;
        let test = self.scatter_set(name, model.as_ref())?;
        let explorer = Arc::new(Explorer::new(model, &test, None));
        *view = Some(View { name: name.to_string(), stamp, explorer: explorer.clone() });
        Ok(explorer)
    }
}

impl Playground {
    /// The test images to scatter for run `name`: those of the data set it was started on
    /// here, else of the first data set whose images fit the model.
    fn scatter_set(&self, name: &str, model: &dyn vae::Family) -> std::result::Result<Arc<Split>, String> {
        let started_on = lock(&self.run_data).get(name).cloned();
        let candidates: Vec<&DataSet> = match started_on {
            Some(set) => self.datasets.iter().filter(|d| d.name == set).collect(),
            None => self.datasets.iter().collect(),
        };
        let mut why = String::from("no data set");
        for set in candidates {
            let test = self.test_images(set).map_err(|e| e.to_string())?;
            match vae::run::check_split(model, &test, Path::new(&set.name)) {
                Ok(()) => return Ok(test),
                Err(e) => why = e.to_string(),
            }
        }
        Err(format!("{name}: {why}"))
    }
}

/// The data sets of `--datasets DIR`: every file or folder in it that `--data` would read, by
/// name, sorted; or, without the flag, the one data set of `--data` (the shipped MNIST if not
/// given).
pub fn find_datasets(dir: Option<&Path>, data: &DataArgs) -> Result<Vec<DataSet>> {
    let name_of = |p: &Path| p.file_name().map_or("data".into(), |n| n.to_string_lossy().into_owned());
    let Some(dir) = dir else {
        let path = crate::data::data_dir(data);
        return Ok(vec![DataSet { name: name_of(&path), path }]);
    };
    let entries = std::fs::read_dir(dir).map_err(|e| format!("--datasets: cannot read {}: {e}", dir.display()))?;
    let mut sets: Vec<DataSet> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !name_of(p).starts_with('.') && vae::data::detect(p).is_ok())
        .map(|path| DataSet { name: name_of(&path), path })
        .collect();
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    if sets.is_empty() {
        return Err(format!(
            "--datasets: {} holds no data set (a folder of images or IDX files, a .npy/.npz, CIFAR batches)",
            dir.display()
        )
        .into());
    }
    Ok(sets)
}

/// A metrics file's header and rows (unparsable values as NaN), or `None` if unreadable or
/// without a header.
fn read_metrics(path: &Path) -> Option<(Vec<String>, Vec<Vec<f64>>)> {
    let table = metrics_table(&std::fs::read_to_string(path).ok()?);
    (!table.0.is_empty()).then_some(table)
}
