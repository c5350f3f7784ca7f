//! The playground (`vae-cli serve` without `--checkpoint`) end to end:
//! - in a real headless Chromium (WebDriver): set a small run on the page, start it, see the
//!   epoch counter and the scatter change after each epoch, resume from the pause after an
//!   epoch, stop; then `vae-cli eval` on the run folder gives the test loss the page showed;
//! - over HTTP: pause, resume and stop in the middle of an epoch, and `train --resume` of the
//!   stopped run; every bad setting and misuse refused with a 4xx and one line while the server
//!   goes on; two clients starting at once get one run and one refusal; clients that hang up
//!   mid-request; Ctrl-C with a run training saves its checkpoint;
//! - memory: 20 short runs one after another, the server's resident memory after each.
//!
//! Nothing waits a fixed time: each step polls `/api/status` (or the page's state) until the
//! state it needs, with a generous ceiling. The pause after every epoch (`hold`) is the page's
//! own setting, and what makes the browser test deterministic: the run waits at each epoch's
//! end until the test resumes it.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::web::{base64_decode, get, http, http_to, interrupt_and_wait, serve_with, serve_with_env, Browser, Reaped};
use common::{ok, run, scratch};

/// A playground over a fresh folder of runs: the server, its port, the token, the folder.
fn playground(name: &str) -> (Reaped, u16, String, PathBuf) {
    let runs = scratch(name);
    std::fs::create_dir_all(&runs).unwrap();
    let (server, port) = serve_with(&["serve", "--runs", runs.to_str().unwrap(), "--port", "0", "--threads", "2"]);
    let page = String::from_utf8(get(port, "/").1).unwrap();
    let token = page.split("const TOKEN = \"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert_eq!(token.len(), 32);
    (server, port, token, runs)
}

/// A POST as the page sends it: JSON, the token, the page's origin.
fn post(port: u16, token: &str, path: &str, body: &str) -> (u16, String) {
    let page = format!("Origin: http://127.0.0.1:{port}\r\nSec-Fetch-Site: same-origin\r\n");
    post_with(port, &page, token, path, body)
}

/// A POST with the token and the extra header lines `headers` (each ending in CRLF).
fn post_with(port: u16, headers: &str, token: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}X-Playground-Token: {token}\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut s, &mut reply).unwrap();
    let status = reply.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

fn status(port: u16) -> serde_json::Value {
    let (code, body) = get(port, "/api/status");
    assert_eq!(code, 200);
    serde_json::from_slice(&body).unwrap()
}

/// Polls the status until `done` holds (60 s at most).
fn wait_status(port: u16, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let s = status(port);
        if done(&s) {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "waited 60 s for {what}: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The run's settings: an MLP 784-64-2 on the first `train` images, `epochs` epochs.
fn small(train: u32, epochs: u32, hold: bool) -> String {
    serde_json::json!({"latent-dim": 2, "hidden": "64", "epochs": epochs, "train-limit": train,
        "test-limit": 1000, "hold": hold})
    .to_string()
}

#[test]
fn the_page_starts_a_run_shows_it_learn_and_stops_it() {
    let (_server, port, _token, runs) = playground("playground-browser");
    let Some(b) = Browser::start() else { return };
    b.call("POST", "/url", serde_json::json!({"url": format!("http://127.0.0.1:{port}/")}));
    b.wait_for("return window.playground.ready === true", "the page to load");
    // A small run, set on the page's own form: 3 epochs of 2,000 images, a 2-D latent space,
    // pausing after every epoch.
    b.script(
        "const set = (k, v) => { document.getElementById('f-' + k).value = v; };
         set('latent-dim', '2'); set('hidden', '128'); set('epochs', '3'); set('train-limit', '2000');
         set('test-limit', '2000'); document.getElementById('hold').checked = true; return true",
    );
    click(&b, "#start");
    paused_after(&b, 1);
    let first = b.script("return [window.playground.points.length, window.playground.points[0]]");
    assert_eq!(first[0], 5000, "the scatter shows 5,000 test images");

    // Resume: the run trains epoch 2 and pauses again; the counter and the scatter move.
    click(&b, "#resume");
    paused_after(&b, 2);
    let second = b.script("return window.playground.points[0]");
    assert_ne!(second, first[1], "the scatter did not change after an epoch");
    let shot = b.call("GET", "/screenshot", serde_json::Value::Null);
    let path = std::env::var("VAE_PLAYGROUND_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| scratch("playground-shot").with_extension("png"));
    std::fs::write(&path, base64_decode(shot.as_str().unwrap())).unwrap();
    println!("screenshot: {}", path.display());

    // Stop: the run ends after epoch 2 with its checkpoint written.
    click(&b, "#stop");
    b.wait_for("return window.playground.status.state === 'stopped'", "the run to stop");
    let shown = b.script("return window.playground.testLoss").as_f64().unwrap();
    let run_dir = runs.join(b.script("return window.playground.status.run").as_str().unwrap());
    assert!(run_dir.join("checkpoint.safetensors").is_file());

    // The run folder is an ordinary run: eval reads it and gives the loss the page showed.
    let o = run(&[
        "eval",
        "--checkpoint",
        run_dir.join("model.safetensors").to_str().unwrap(),
        "--test-limit",
        "2000",
        "--json",
    ]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let eval = v["test_loss"].as_f64().unwrap();
    // eval draws its own z (the training's test pass drew epoch 2's), so the two estimates of the
    // same model's loss differ by sampling noise: about 0.1 nats over 2,000 images. Epoch 1's
    // model scored 20–30 nats worse, so 0.5 nats tells the models apart.
    assert!((eval - shown).abs() < 0.5, "eval {eval} against the page's {shown}");
}

/// Waits until the page shows the run paused after `epoch` of 3, with that epoch's pictures.
fn paused_after(b: &Browser, epoch: u32) {
    b.wait_for(
        &format!("const p = window.playground; return p.status !== null && p.status.state === 'paused' && p.shownEpochs === {epoch}"),
        &format!("epoch {epoch} shown, paused"),
    );
    assert_eq!(b.script("return document.getElementById('epoch').textContent"), format!("epoch {epoch}/3"));
}

/// Clicks the element `css` through WebDriver.
fn click(b: &Browser, css: &str) {
    let el = b.call("POST", "/element", serde_json::json!({"using": "css selector", "value": css}));
    let id = el["element-6066-11e4-a52e-4f735466cecf"].as_str().unwrap().to_string();
    b.call("POST", &format!("/element/{id}/click"), serde_json::json!({}));
}

#[test]
fn pause_resume_stop_mid_epoch_and_the_cli_resumes_the_run() {
    let (mut server, port, token, runs) = playground("playground-api");
    // Long enough that it is still training when the next request arrives (100 epochs).
    let (code, body) = post(port, &token, "/api/start", &small(10_000, 100, false));
    assert_eq!(code, 202, "{body}");
    let name = serde_json::from_str::<serde_json::Value>(&body).unwrap()["run"].as_str().unwrap().to_string();
    assert_eq!(post(port, &token, "/api/pause", "").0, 200);
    let paused = wait_status(port, "the pause", |s| s["state"] == "paused");
    // Paused: the position holds still.
    assert_eq!(status(port)["step"], paused["step"]);
    assert_eq!(status(port)["epochs_done"], paused["epochs_done"]);
    assert_eq!(post(port, &token, "/api/resume", "").0, 200);
    wait_status(port, "training to go on", |s| {
        s["state"] != "paused" && (s["step"] != paused["step"] || s["epochs_done"] != paused["epochs_done"])
    });
    assert_eq!(post(port, &token, "/api/stop", "").0, 200);
    let stopped = wait_status(port, "the stop", |s| s["state"] == "stopped");
    let done = stopped["epochs_done"].as_u64().unwrap();
    assert!(done < 100, "{stopped}");
    let dir = runs.join(&name);
    assert!(dir.join("checkpoint.safetensors").is_file());

    // Two clients starting at once: one run, one refusal.
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let token = token.clone();
            std::thread::spawn(move || post(port, &token, "/api/start", &small(500, 50, true)).0)
        })
        .collect();
    let mut codes: Vec<u16> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [202, 409]);
    wait_status(port, "the second run's first epoch", |s| s["state"] == "paused");

    // Clients that hang up: half a request, and a whole one never read.
    {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"POST /api/start HTTP/1.1\r\nHost: 127.0.0.1").unwrap();
    }
    for path in ["/api/runs", &format!("/api/runs/{name}/latent")] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
    }
    assert_eq!(post(port, &token, "/api/stop", "").0, 200);
    let second = wait_status(port, "the second run's stop", |s| s["state"] == "stopped")["run"].clone();
    let second = second.as_str().unwrap();

    // The first run stopped inside its first epoch: nothing to draw yet, said in one line.
    let (code, body) = get(port, &format!("/api/runs/{name}/curves.svg"));
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));

    // The first run's folder resumes on the command line, to the epoch after its stop.
    let more = (done + 2).to_string();
    ok(&run(&["train", "--resume", "--out", dir.to_str().unwrap(), "--epochs", &more]));
    let rows = std::fs::read_to_string(dir.join("metrics.csv")).unwrap().lines().count() - 1;
    assert_eq!(rows as u64, done + 2);

    // The two runs' test losses on one chart, as the page's "compare with" asks for it.
    let (code, svg) = get(port, &format!("/api/runs/{name}/curves.svg?with={second}"));
    let svg = String::from_utf8(svg).unwrap();
    assert_eq!(code, 200, "{svg}");
    assert!(svg.starts_with("<svg") && svg.contains(&name) && svg.contains(second), "{svg:.400}");
    assert_eq!(get(port, &format!("/api/runs/{name}/curves.svg?with=no-such-run")).0, 404);

    // Ctrl-C with a run training: the server stops it, which writes its checkpoint, and exits.
    let (code, body) = post(port, &token, "/api/start", &small(10_000, 100, false));
    assert_eq!(code, 202, "{body}");
    let last = serde_json::from_str::<serde_json::Value>(&body).unwrap()["run"].as_str().unwrap().to_string();
    wait_status(port, "the third run to train", |s| s["state"] == "training" && s["step"].as_u64() > Some(0));
    interrupt_and_wait(&mut server, Duration::from_secs(60));
    assert!(runs.join(&last).join("checkpoint.safetensors").is_file(), "Ctrl-C lost the run's checkpoint");
}

#[test]
fn bad_settings_and_misuse_are_refused_in_one_line_and_the_server_goes_on() {
    let (_server, port, token, runs) = playground("playground-misuse");
    let bad = [
        (r#"{"latent-dim":0}"#, 400, "latent-dim"),
        (r#"{"beta":-1}"#, 400, "beta"),
        (r#"{"lr":"NaN"}"#, 400, "lr"),
        (r#"{"k":0}"#, 400, "k"),
        (r#"{"family":"gan"}"#, 400, "family"),
        (r#"{"latent-dim":65}"#, 400, "at most 64"),
        (r#"{"train-limit":60001}"#, 400, "at most 60000"),
        (r#"{"hidden":"100,100,100,100,100"}"#, 400, "layers"),
        (r#"{"objective":"iwae","kl-warmup":3}"#, 400, "iwae"),
        (r#"{"colour":"red"}"#, 400, "unknown setting"),
        ("{not json", 400, "JSON"),
    ];
    for (body, want, needle) in bad {
        let (code, reply) = post(port, &token, "/api/start", body);
        assert_eq!(code, want, "{body}: {reply}");
        assert!(reply.contains(needle) && reply.trim().lines().count() == 1, "{body}: {reply:?}");
    }
    let big = format!(r#"{{"seed":"{}"}}"#, "1".repeat(20_000));
    assert_eq!(post(port, &token, "/api/start", &big).0, 413);
    // Nothing was started by any of them.
    assert_eq!(status(port)["state"], "idle");
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 0);

    // Switches with no run: 409.
    for action in ["/api/pause", "/api/resume", "/api/stop"] {
        assert_eq!(post(port, &token, action, "").0, 409, "{action}");
    }
    // Requests that do not come from the page.
    let start = small(500, 1, false);
    assert_eq!(post(port, "0123456789abcdef0123456789abcdef", "/api/start", &start).0, 403);
    let foreign = |headers: &str| post_with(port, headers, &token, "/api/start", &start).0;
    assert_eq!(foreign("Origin: http://evil.example\r\n"), 403);
    assert_eq!(foreign("Sec-Fetch-Site: cross-site\r\n"), 403);
    assert_eq!(http_to(port, "evil.example", "GET", "/api/status", None).0, 403);
    assert_eq!(http(port, "PUT", "/api/start", Some("{}")).0, 405);
    assert_eq!(get(port, "/api/start").0, 404);
    assert_eq!(get(port, "/api/runs/..%2F..%2Fetc/curves").0, 404);
    assert_eq!(get(port, "/api/runs/nothing-here/latent").0, 404);
    assert_eq!(status(port)["state"], "idle");
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 0, "a refused request left a folder");

    // And a good start still works.
    let (code, body) = post(port, &token, "/api/start", &start);
    assert_eq!(code, 202, "{body}");
    wait_status(port, "the run to finish", |s| s["state"] == "done");
}

/// With `--datasets DIR`, the page offers each data set in DIR by name; a run trains on the one
/// it names (here colour shapes from an .npz beside MNIST), its scatter comes from that set,
/// and a name that is not offered (a path above all) is refused in one line.
#[test]
fn the_page_offers_the_data_sets_of_a_folder_by_name() {
    let root = scratch("playground-datasets");
    let (sets, runs) = (root.join("sets"), root.join("runs"));
    std::fs::create_dir_all(&sets).unwrap();
    std::fs::create_dir_all(&runs).unwrap();
    std::os::unix::fs::symlink(Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist"), sets.join("mnist"))
        .unwrap();
    let shapes = vae::data::shapes::generate(240, 16, 4);
    let images = ndarray::Array4::from_shape_vec((240, 3, 16, 16), shapes.images.clone()).unwrap();
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(sets.join("shapes.npz")).unwrap());
    npz.add_array("x", &images).unwrap();
    npz.finish().unwrap();
    std::fs::write(sets.join("notes.txt"), "not a data set").unwrap();
    let args = ["serve", "--runs", runs.to_str().unwrap(), "--datasets", sets.to_str().unwrap(), "--port", "0"];
    let (_server, port) = serve_with(&[&args[..], &["--threads", "2"]].concat());
    let page = String::from_utf8(get(port, "/").1).unwrap();
    let token = page.split("const TOKEN = \"").nth(1).unwrap().split('"').next().unwrap().to_string();

    let offered: serde_json::Value = serde_json::from_slice(&get(port, "/api/settings").1).unwrap();
    assert_eq!(offered["datasets"], serde_json::json!(["mnist", "shapes.npz"]));
    assert_eq!(offered["settings"][0], serde_json::json!({"name": "dataset", "default": "mnist", "max": null}));
    for name in ["../sets/shapes.npz", "/etc", "notes.txt"] {
        let body = serde_json::json!({ "dataset": name }).to_string();
        let (code, reply) = post(port, &token, "/api/start", &body);
        assert_eq!(code, 400, "{name}: {reply}");
        assert!(reply.contains("offers mnist, shapes.npz") && reply.trim().lines().count() == 1, "{reply:?}");
    }
    let body = serde_json::json!({"dataset": "shapes.npz", "latent-dim": 2, "hidden": "32", "epochs": 1}).to_string();
    let (code, reply) = post(port, &token, "/api/start", &body);
    assert_eq!(code, 202, "{reply}");
    let name = serde_json::from_str::<serde_json::Value>(&reply).unwrap()["run"].as_str().unwrap().to_string();
    let s = wait_status(port, "the run to finish", |s| s["state"] != "training");
    assert_eq!(s["state"], "done", "{s}");
    let (code, latent) = get(port, &format!("/api/runs/{name}/latent"));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&latent));
    let latent: serde_json::Value = serde_json::from_slice(&latent).unwrap();
    assert_eq!(latent["points"].as_array().unwrap().len(), 24, "the shapes' 24 test images (a tenth held out)");
}

/// The server's resident memory in kB (Linux).
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[test]
fn memory_stays_flat_over_twenty_runs() {
    // Each run trains on a thread of its own, and glibc gives new threads new allocator arenas
    // (up to 8 per core), each keeping what it freed: with other tests busy beside it, the
    // resident memory stepped up 2–4 MB at a time between runs 10 and 20 without any leak.
    // One arena makes the measure what it is meant to be: memory the server still holds.
    let runs = scratch("playground-memory");
    std::fs::create_dir_all(&runs).unwrap();
    let args = ["serve", "--runs", runs.to_str().unwrap(), "--port", "0", "--threads", "2"];
    let (server, port) = serve_with_env(&args, &[("MALLOC_ARENA_MAX", "1")]);
    let page = String::from_utf8(get(port, "/").1).unwrap();
    let token = page.split("const TOKEN = \"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let Some(_) = rss_kb(server.0.id()) else {
        println!("skipping the memory check: no /proc/PID/status here");
        return;
    };
    let mut rss = Vec::new();
    for i in 0..20 {
        let (code, body) = post(port, &token, "/api/start", &small(500, 1, false));
        assert_eq!(code, 202, "run {i}: {body}");
        let name = serde_json::from_str::<serde_json::Value>(&body).unwrap()["run"].as_str().unwrap().to_string();
        wait_status(port, "the run to finish", |s| s["state"] == "done");
        // What the page fetches after an epoch.
        for what in ["latent", "curves", "curves.svg", "samples.png", "reconstructions.png"] {
            assert_eq!(get(port, &format!("/api/runs/{name}/{what}")).0, 200, "{what}");
        }
        rss.push(rss_kb(server.0.id()).unwrap());
    }
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!("resident memory after each run (MB): {:?}", rss.iter().map(|&k| mb(k).round()).collect::<Vec<_>>());
    // The server keeps the dataset it read (55 MB of it) and its allocator keeps what it has
    // freed, so the first runs grow the memory: measured here (one arena), 70 MB after run 1,
    // 73–74 MB by run 10, then at most 1 MB more by run 20 (three measurements). Each run
    // trains its own model (2.6 MB of parameters, twice that of Adam's moments), encodes 5,000
    // test images for the scatter and draws its charts, so one that kept any of that (a model,
    // a latent view, a thread, its data) would add megabytes per run: from run 10 to run 20
    // the growth must stay under 3 MB.
    let growth = mb(rss[19]) - mb(rss[9]);
    assert!(growth < 3.0, "memory grew {growth:.1} MB from run 10 to run 20: {rss:?}");
    assert_eq!(std::fs::read_dir(Path::new(&runs)).unwrap().count(), 20);
}
