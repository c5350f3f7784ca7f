//! `vae-cli serve`: the browser's view of the engine. With `--checkpoint`, the latent-space
//! explorer of one model (`serve/explorer.rs`); without, the playground, which trains runs
//! from the page and shows them as they learn (`serve/playground.rs`). Each is one page (HTML,
//! script and style embedded in the binary, nothing fetched from elsewhere) over a small
//! JSON/PNG API that the page itself uses. The explorer's:
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/info` | JSON: latent size J, classes, the 2-D projection of the scatter (axes, center), image size, whether training curves exist |
//! | `GET /api/latent[?means=1]` | JSON: the test set's latent means, projected to 2-D (`points`), their `labels`, and with `means=1` the means themselves |
//! | `GET /api/mean?i=N` | JSON: the latent mean `z` of test image N |
//! | `GET /api/decode?z=0.1,-2.0[&label=3]` | PNG: the decoder mean at z (for a conditional model, of class `label`), 8× enlarged |
//! | `GET /api/curves` | JSON: the run's metrics.csv (`header`, `rows`), if it sits beside the checkpoint |
//! | `GET /api/curves.svg` | the same curves drawn (plotters), if the run has a finished epoch |
//!
//! Requests are served by a few worker threads, each decoding on a tape of its own, so slow
//! requests do not hold up others. A bad request gets a 4xx status and a one-line reason; the
//! server keeps serving. Requests naming another host are refused (`serve/http.rs`). Ctrl-C
//! stops the server; in the playground it first stops the run in training, which saves its
//! checkpoint.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use tiny_http::{Method, Request, Server};

use crate::figure;
use crate::options::Result;
use crate::pictures::load_with_space;
use crate::say::say;

mod explorer;
mod form;
mod http;
mod playground;

use explorer::Explorer;
use http::{check_same_origin, header, parse_query, respond, text, AllowedHosts, Answer};
use playground::Playground;

/// Flags of `vae-cli serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// A model.safetensors or checkpoint.safetensors (a VAE, conditional VAE or two-layer
    /// model) to explore. Without it, the playground: train runs from the page and watch them
    /// learn, one run at a time (a second start is refused), within stated limits (latent ≤ 64,
    /// hidden widths ≤ 2048 in ≤ 4 layers, K ≤ 100, epochs ≤ 1000); starting and stopping work
    /// needs the page's own token, so other web pages cannot.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// The data and its preparation.
    #[command(flatten)]
    pub data: crate::options::DataArgs,
    /// The playground's data sets: every folder or file in DIR that --data would read (image
    /// folders, IDX folders, .npy/.npz, CIFAR batches), offered on the page by name (the page
    /// sends the name, never a path), each prepared as --image-size and --channels say.
    /// Without it, the playground trains on --data.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["checkpoint", "data"])]
    pub datasets: Option<PathBuf>,
    /// The playground's folder of runs: each run it starts is a folder here, and it lists
    /// the runs it finds here.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs: PathBuf,
    /// Worker threads for the playground's training (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on; the default serves this machine only. A request is answered only
    /// when its Host header names this address (for the default: 127.0.0.1, localhost or
    /// `[::1]`, with the port), so that another web page cannot reach the server through a
    /// domain pointed at this machine (DNS rebinding); 0.0.0.0 answers to any name.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// The explorer's page, with its script and style inline.
const PAGE: &str = include_str!("serve/index.html");
/// Worker threads answering requests.
const WORKERS: usize = 4;
/// Longest request line accepted (a z of 32 numbers needs under 400 characters).
pub const MAX_URL: usize = 8192;

/// What the server shows.
enum Site {
    Explorer(Explorer),
    Playground(Playground),
}

impl Site {
    /// The answer to one request: its method, URL, and for a POST the body and where it comes from.
    fn answer(&self, rq: &mut Request) -> Answer {
        let url = rq.url().to_string();
        if url.len() > MAX_URL {
            return text(414, format!("the request line is longer than {MAX_URL} characters"));
        }
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let query = parse_query(query);
        let api = path.strip_prefix("/api/");
        match (self, rq.method(), api) {
            (Site::Explorer(_), Method::Get, None) if path == "/" || path == "/index.html" => {
                (200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec())
            }
            (Site::Explorer(e), Method::Get, Some(api)) => {
                e.answer(api, &query).unwrap_or_else(|| text(404, format!("no such page: {path}")))
            }
            (Site::Explorer(_), Method::Get, None) => text(404, format!("no such page: {path}")),
            (Site::Explorer(_), _, _) => text(405, "only GET is served"),
            (Site::Playground(p), Method::Get, None) if path == "/" || path == "/index.html" => p.page(),
            (Site::Playground(p), Method::Get, Some(api)) => p.get(api, &query),
            (Site::Playground(p), Method::Post, Some(api)) => {
                let refusal = check_same_origin(
                    &p.token,
                    header(rq, "Host"),
                    header(rq, "Origin"),
                    header(rq, "Sec-Fetch-Site"),
                    header(rq, "X-Playground-Token"),
                );
                if let Some(refusal) = refusal {
                    return refusal;
                }
                let api = api.to_string();
                match read_body(rq) {
                    Ok(body) => p.post(&api, &body),
                    Err(refusal) => refusal,
                }
            }
            (Site::Playground(_), Method::Get, None) => text(404, format!("no such page: {path}")),
            (Site::Playground(_), _, _) => text(405, "the playground answers GET, and POST to /api/"),
        }
    }
}

/// A request's body as text, at most [`form::MAX_BODY`] bytes.
fn read_body(rq: &mut Request) -> std::result::Result<String, Answer> {
    let mut body = Vec::new();
    let limit = form::MAX_BODY as u64;
    if rq.as_reader().take(limit + 1).read_to_end(&mut body).is_err() {
        return Err(text(400, "the request body could not be read"));
    }
    if body.len() as u64 > limit {
        return Err(text(413, format!("the request body is longer than {limit} bytes")));
    }
    String::from_utf8(body).map_err(|_| text(400, "the request body is not UTF-8"))
}

/// `vae-cli serve`.
pub fn run(args: ServeArgs) -> Result<()> {
    let (site, what) = match &args.checkpoint {
        Some(checkpoint) => {
            let model = load_with_space(checkpoint, "serve")?;
            let (test, _) = crate::data::load_test(&args.data, checkpoint, model.as_ref())?;
            let curves = checkpoint
                .parent()
                .map(|d| d.join("metrics.csv"))
                .filter(|p| p.is_file())
                .and_then(|p| std::fs::read_to_string(p).ok());
            say!("encoding {} test images …", test.len());
            let mut explorer = Explorer::new(model, &test, curves);
            // The run's curves, drawn once (a run with no finished epoch has none to draw).
            if let Some(dir) = checkpoint.parent().filter(|d| d.join("metrics.csv").is_file()) {
                let name = dir.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
                if let Ok(svg) = crate::plot::curves(&[(name, dir)], figure::Layout::Column, figure::Format::Svg) {
                    explorer = explorer.with_chart(svg);
                }
            }
            (Site::Explorer(explorer), format!("the latent explorer of {}", checkpoint.display()))
        }
        None => {
            crate::threads::init_threads(args.threads)?;
            let datasets = playground::find_datasets(args.datasets.as_deref(), &args.data)?;
            crate::data::keep_loaded();
            // The first data set read now: a bad one is said before the server starts.
            let first = &datasets[0];
            let set = crate::data::load(&first.path, &crate::data::prep(&args.data))?;
            say!("data: {}", set.describe());
            let names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
            let what = format!("the playground (runs in {}/; data sets: {})", args.runs.display(), names.join(", "));
            (Site::Playground(Playground::new(args.runs.clone(), datasets, args.data.clone())), what)
        }
    };
    let site = Arc::new(site);
    let addr = format!("{}:{}", args.host, args.port);
    let server = Arc::new(Server::http(&addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?);
    let bound_ip = server.server_addr().to_ip();
    let bound = bound_ip.map_or(addr.clone(), |a| a.to_string());
    let hosts = Arc::new(AllowedHosts::new(&args.host, bound_ip.map_or(args.port, |a| a.port())));
    say!("serving {what} at http://{bound}/ (Ctrl-C stops)");
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (server, stop) = (server.clone(), stop.clone());
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            (0..WORKERS).for_each(|_| server.unblock());
        });
    }
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (server, site, stop, hosts) = (server.clone(), site.clone(), stop.clone(), hosts.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(mut rq) = server.recv() else { break };
                    let answer = match hosts.check(header(&rq, "Host")) {
                        Some(refusal) => refusal,
                        None => site.answer(&mut rq),
                    };
                    respond(rq, answer);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    if let Site::Playground(p) = &*site {
        say!("stopping: the run in training, if any, saves its checkpoint …");
        p.stop_and_wait();
    }
    say!("stopped");
    Ok(())
}
