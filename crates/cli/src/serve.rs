//! `vae-cli serve`: a latent-space explorer in the browser. One page (HTML, script and style
//! embedded in the binary, nothing fetched from elsewhere) over a small JSON/PNG API that the
//! page itself uses:
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /api/info` | JSON: latent size J, classes, the 2-D projection of the scatter (axes, center), image size, whether training curves exist |
//! | `GET /api/latent[?means=1]` | JSON: the test set's latent means, projected to 2-D (`points`), their `labels`, and with `means=1` the means themselves |
//! | `GET /api/mean?i=N` | JSON: the latent mean `z` of test image N |
//! | `GET /api/decode?z=0.1,-2.0[&label=3]` | PNG: the decoder mean at z (for a conditional model, of class `label`), 8× enlarged |
//! | `GET /api/curves` | JSON: the run's metrics.csv (`header`, `rows`), if it sits beside the checkpoint |
//!
//! Requests are served by a few worker threads, each decoding on a tape of its own, so slow
//! requests do not hold up others and nothing is kept between requests. A bad request gets a
//! 4xx status and a one-line reason; the server keeps serving. Ctrl-C stops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Args;
use ndarray::Axis;
use tiny_http::{Header, Method, Request, Response, Server};
use vae::data::{Binarize, Split};
use vae::family::LatentSpace;
use vae::Family;
use vae_autodiff::Tensor;

use crate::image::Canvas;
use crate::options::{ModelArgs, Result};
use crate::pictures::{load_with_space, space, top_two_axes};
use crate::say::say;
use crate::streams::{stream, Purpose};

/// Flags of `vae-cli serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The checkpoint (a VAE or conditional VAE) and the data.
    #[command(flatten)]
    pub model: ModelArgs,
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

/// The page, with its script and style inline.
const PAGE: &str = include_str!("serve/index.html");
/// Worker threads answering requests.
const WORKERS: usize = 4;
/// Longest request line accepted (a z of 32 numbers needs under 400 characters).
pub const MAX_URL: usize = 8192;
/// Enlargement of decoded images.
const ZOOM: usize = 8;
/// Sliders on the page: the first this many latent dimensions.
pub const MAX_SLIDERS: usize = 32;

/// What the server knows: the model, the test set's latent means and their projection.
struct Explorer {
    /// The model; it has a latent space ([`load_with_space`] checked).
    model: Box<dyn Family>,
    /// Latent means of the test images [N, J].
    mu: Tensor,
    labels: Vec<u8>,
    /// The plane of the scatter: z = center + u·axes[0] + v·axes[1] (J > 2, the top two principal
    /// axes of the means); for J ≤ 2 the dimensions themselves.
    center: Vec<f64>,
    axes: [Vec<f64>; 2],
    /// metrics.csv beside the checkpoint, if any.
    curves: Option<String>,
}

/// An answer: status, content type, body.
type Answer = (u16, &'static str, Vec<u8>);

fn text(status: u16, msg: impl Into<String>) -> Answer {
    let mut body = msg.into();
    body.push('\n');
    (status, "text/plain; charset=utf-8", body.into_bytes())
}

fn json(v: serde_json::Value) -> Answer {
    (200, "application/json", v.to_string().into_bytes())
}

impl Explorer {
    fn new(model: Box<dyn Family>, test: &Split, curves: Option<String>) -> Self {
        let idx: Vec<usize> = (0..test.len()).collect();
        let x = test.rows(&idx, Binarize::None, &mut stream(0, 0, 0, Purpose::Pictures), model.classes());
        let mu = space(model.as_ref()).encode_points(x).0;
        let j = space(model.as_ref()).latent_dim();
        let n = mu.shape()[0].max(1) as f64;
        let center: Vec<f64> =
            (0..j).map(|k| mu.index_axis(Axis(1), k).iter().map(|&v| v as f64).sum::<f64>() / n).collect();
        let unit = |k: usize| (0..j).map(|i| if i == k { 1.0 } else { 0.0 }).collect::<Vec<f64>>();
        let (center, axes) =
            if j > 2 { (center, top_two_axes(&mu)) } else { (vec![0.0; j], [unit(0), unit(1.min(j - 1))]) };
        Self { model, mu, labels: test.labels.clone(), center, axes, curves }
    }

    /// The 2-D position of latent z in the scatter.
    fn project(&self, z: &[f32]) -> (f64, f64) {
        let dot = |a: &[f64]| z.iter().zip(&self.center).zip(a).map(|((&z, c), a)| (z as f64 - c) * a).sum::<f64>();
        let j = self.space().latent_dim();
        if j == 1 {
            (z[0] as f64, 0.0) // one dimension: the page spreads the points by label
        } else {
            (dot(&self.axes[0]), dot(&self.axes[1]))
        }
    }

    /// The model's latent space.
    fn space(&self) -> &dyn LatentSpace {
        space(self.model.as_ref())
    }

    fn info(&self) -> Answer {
        let (j, input) = (self.space().latent_dim(), self.model.input());
        json(serde_json::json!({
            "latent": j,
            "layer": self.space().latent_name(),
            "classes": self.model.classes(),
            "projection": if j > 2 { "pca" } else { "dims" },
            "center": self.center,
            "axes": self.axes,
            "image": [input[1], input[2]],
            "zoom": ZOOM,
            "sliders": j.min(MAX_SLIDERS),
            "curves": self.curves.is_some(),
        }))
    }

    /// The projected means and labels; with `means=1` also the means themselves [N, J].
    fn latent(&self, query: &[(String, String)]) -> Answer {
        let points: Vec<[f64; 2]> = self
            .mu
            .outer_iter()
            .map(|m| {
                let (u, v) = self.project(m.as_slice().expect("a row of a standard-layout array"));
                [(u * 1e4).round() / 1e4, (v * 1e4).round() / 1e4]
            })
            .collect();
        let mut answer = serde_json::json!({ "points": points, "labels": self.labels });
        if param(query, "means") == Some("1") {
            let means: Vec<Vec<f32>> = self.mu.outer_iter().map(|m| m.iter().copied().collect()).collect();
            answer["means"] = serde_json::json!(means);
        }
        json(answer)
    }

    fn mean(&self, query: &[(String, String)]) -> Answer {
        let Some(i) = param(query, "i") else { return text(400, "mean needs ?i=N, a test image index") };
        match i.parse::<usize>() {
            Ok(i) if i < self.mu.shape()[0] => json(
                serde_json::json!({ "z": self.mu.index_axis(Axis(0), i).iter().copied().collect::<Vec<f32>>(), "label": self.labels[i] }),
            ),
            _ => text(400, format!("i must be a test image index, 0 to {}", self.mu.shape()[0].saturating_sub(1))),
        }
    }

    fn decode(&self, query: &[(String, String)]) -> Answer {
        let (j, classes) = (self.space().latent_dim(), self.model.classes());
        let Some(z) = param(query, "z") else { return text(400, "decode needs ?z= with J comma-separated numbers") };
        let z: std::result::Result<Vec<f32>, _> = z.split(',').map(|v| v.trim().parse::<f32>()).collect();
        let z = match z {
            Ok(z) if z.len() != j => {
                return text(400, format!("z has {} numbers; this model's latent has {j}", z.len()))
            }
            Ok(z) if z.iter().any(|v| !v.is_finite()) => return text(400, "z must hold finite numbers"),
            Ok(z) => z,
            Err(_) => return text(400, "z must be comma-separated numbers"),
        };
        let label = match (classes, param(query, "label")) {
            (0, None) => None,
            (0, Some(_)) => return text(400, "label is for conditional models; this one has no classes"),
            (y, l) => match l.unwrap_or("0").parse::<usize>() {
                Ok(l) if l < y => Some(l),
                _ => return text(400, format!("label must be a class, 0 to {}", y - 1)),
            },
        };
        let z = Tensor::from_shape_vec(vec![1, j], z).expect("J values");
        let image = self.space().decode_points(z, &[label.unwrap_or(0)]);
        let [_, h, w] = self.model.input();
        let mut canvas = Canvas::new(w * ZOOM, h * ZOOM, [0, 0, 0]);
        canvas.blit_gray(0, 0, image.as_slice().expect("contiguous"), h, w, ZOOM);
        match canvas.encode_png() {
            Ok(png) => (200, "image/png", png),
            Err(e) => text(500, format!("cannot encode the image: {e}")),
        }
    }

    fn curves(&self) -> Answer {
        let Some(csv) = &self.curves else { return text(404, "no metrics.csv beside the checkpoint") };
        let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        let rows: Vec<Vec<f64>> =
            lines.map(|l| l.split(',').map(|v| v.parse().unwrap_or(f64::NAN)).collect()).collect();
        json(serde_json::json!({ "header": header, "rows": rows }))
    }

    /// The answer to one request line.
    fn answer(&self, method: &Method, url: &str) -> Answer {
        if url.len() > MAX_URL {
            return text(414, format!("the request line is longer than {MAX_URL} characters"));
        }
        if *method != Method::Get {
            return text(405, "only GET is served");
        }
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let query = parse_query(query);
        match path {
            "/" | "/index.html" => (200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec()),
            "/api/info" => self.info(),
            "/api/latent" => self.latent(&query),
            "/api/mean" => self.mean(&query),
            "/api/decode" => self.decode(&query),
            "/api/curves" => self.curves(),
            _ => text(404, format!("no such page: {path}")),
        }
    }
}

/// `a=1&b=2` as pairs, with %XX and + decoded (malformed escapes are kept as they are).
fn parse_query(q: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The `Host` names the server answers to. A page on another site can point a domain it
/// controls at 127.0.0.1 (DNS rebinding) and then read this server as if it were its own; the
/// browser still sends that domain in `Host`. So, as Jupyter does, a request is answered only
/// when its `Host` is an address the server was started on: with the default loopback address,
/// `127.0.0.1`, `localhost` or `[::1]` with the port; with another `--host`, that address. Only
/// `--host 0.0.0.0` (or `::`), which asks to be reached under any name, accepts any.
#[derive(Debug)]
struct AllowedHosts {
    /// Accepted `Host` values, `name:port`, compared without regard to case; empty means any.
    names: Vec<String>,
}

impl AllowedHosts {
    /// The names for a server started with `--host host`, listening on `port`.
    fn new(host: &str, port: u16) -> Self {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let names = match host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() => Vec::new(),
            Ok(ip) if ip.is_loopback() => ["127.0.0.1", "localhost", "[::1]"].map(|n| format!("{n}:{port}")).to_vec(),
            Ok(std::net::IpAddr::V6(ip)) => vec![format!("[{ip}]:{port}")],
            _ => vec![format!("{host}:{port}")],
        };
        AllowedHosts { names }
    }

    /// `None` if a request with this `Host` header may be answered, or the refusal.
    fn check(&self, host: Option<&str>) -> Option<Answer> {
        if self.names.is_empty() {
            return None;
        }
        match host {
            Some(h) if self.names.iter().any(|n| n.eq_ignore_ascii_case(h.trim())) => None,
            Some(h) => Some(text(
                403,
                format!("this server does not answer to the host {h:?}; open it at http://{}/", self.names[0]),
            )),
            None => Some(text(400, "the request has no Host header")),
        }
    }
}

/// The value of a request's `Host` header, if it has one.
fn host_header(rq: &Request) -> Option<&str> {
    rq.headers().iter().find(|h| h.field.equiv("Host")).map(|h| h.value.as_str())
}

fn respond(rq: Request, (status, kind, body): Answer) {
    let header = Header::from_bytes(&b"Content-Type"[..], kind.as_bytes()).expect("a valid header");
    let _ = rq.respond(Response::from_data(body).with_status_code(status).with_header(header));
}

/// `vae-cli serve`.
pub fn run(args: ServeArgs) -> Result<()> {
    let model = load_with_space(&args.model.checkpoint, "serve")?;
    let (test, _) = crate::data::load_test(&args.model.data, model.as_ref())?;
    let curves = args
        .model
        .checkpoint
        .parent()
        .map(|d| d.join("metrics.csv"))
        .filter(|p| p.is_file())
        .and_then(|p| std::fs::read_to_string(p).ok());
    say!("encoding {} test images …", test.len());
    let explorer = Arc::new(Explorer::new(model, &test, curves));
    let addr = format!("{}:{}", args.host, args.port);
    let server = Arc::new(Server::http(&addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?);
    let bound_ip = server.server_addr().to_ip();
    let bound = bound_ip.map_or(addr.clone(), |a| a.to_string());
    let hosts = Arc::new(AllowedHosts::new(&args.host, bound_ip.map_or(args.port, |a| a.port())));
    say!("serving the latent explorer of {} at http://{bound}/ (Ctrl-C stops)", args.model.checkpoint.display());
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (server, stop) = (server.clone(), stop.clone());
        let _ = ctrlc::set_handler(move || {
            stop.store(true, Ordering::SeqCst);
            (0..WORKERS).for_each(|_| server.unblock());
        });
    }
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (server, explorer, stop, hosts) = (server.clone(), explorer.clone(), stop.clone(), hosts.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok(rq) = server.recv() else { break };
                    let refusal = hosts.check(host_header(&rq));
                    let answer = refusal.unwrap_or_else(|| explorer.answer(rq.method(), rq.url()));
                    respond(rq, answer);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    say!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::AllowedHosts;

    fn status(hosts: &AllowedHosts, host: Option<&str>) -> u16 {
        hosts.check(host).map_or(200, |(status, _, _)| status)
    }

    #[test]
    fn a_loopback_server_answers_only_to_its_own_names() {
        let hosts = AllowedHosts::new("127.0.0.1", 8000);
        for ok in ["127.0.0.1:8000", "localhost:8000", "LOCALHOST:8000", "[::1]:8000"] {
            assert_eq!(status(&hosts, Some(ok)), 200, "{ok}");
        }
        for refused in
            ["evil.example", "evil.example:8000", "127.0.0.1:8001", "127.0.0.1", "localhost.evil.example:8000"]
        {
            assert_eq!(status(&hosts, Some(refused)), 403, "{refused}");
        }
        assert_eq!(status(&hosts, None), 400);
    }

    #[test]
    fn other_addresses_answer_to_themselves_and_the_unspecified_one_to_any() {
        let lan = AllowedHosts::new("192.168.1.5", 9000);
        assert_eq!(status(&lan, Some("192.168.1.5:9000")), 200);
        assert_eq!(status(&lan, Some("localhost:9000")), 403);
        let v6 = AllowedHosts::new("::1", 9000);
        assert_eq!(status(&v6, Some("[::1]:9000")), 200);
        let any = AllowedHosts::new("0.0.0.0", 9000);
        assert_eq!(status(&any, Some("evil.example")), 200);
    }
}
