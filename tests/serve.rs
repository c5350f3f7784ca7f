//! `vae-cli serve` end to end: the API (answers, bad requests, many clients at once, Ctrl-C)
//! and the page in a real headless Chromium, driven over WebDriver (chromedriver): click a point
//! of the scatter, check that the image shown is the API's image of the same z, move a slider
//! and check that the image changes; a screenshot of the page.
//!
//! The browser part needs Debian's `chromium` and `chromium-driver`; `.ci/run` installs them and
//! sets VAE_REQUIRE_BROWSER=1, which makes their absence a failure. Elsewhere the browser part
//! is skipped with a message. VAE_SCREENSHOT=FILE also writes the screenshot there.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{bin, ok, run, scratch, small_train_args};

/// One HTTP/1.1 exchange over a fresh connection: (status, body). The body is read by its
/// Content-Length or its chunks (chromedriver keeps connections open whatever the request says).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    http_to(port, &format!("127.0.0.1:{port}"), method, path, body)
}

/// [`http`] with the `Host` header `host`.
fn http_to(port: u16, host: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line.to_lowercase());
    }
    let status: u16 = head.split_whitespace().nth(1).expect("a status line").parse().unwrap();
    let header =
        |name: &str| head.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()));
    let mut data = Vec::new();
    if let Some(n) = header("content-length") {
        data.resize(n.parse().unwrap(), 0);
        r.read_exact(&mut data).unwrap();
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2]; // the chunk and its CRLF
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            data.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut data).unwrap();
    }
    (status, data)
}

fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    http(port, "GET", path, None)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped (so that a failed assertion leaves no server behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A served small model: the child and its port.
fn serve(model: &std::path::Path) -> (Reaped, u16) {
    let mut child = Command::new(bin())
        .args(["serve", "--checkpoint", model.to_str().unwrap(), "--port", "0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.trim_end_matches(|c: char| !c.is_ascii_digit()).split('/').next().unwrap().parse().unwrap();
        }
    };
    // Keep reading stdout so that the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Reaped(child), port)
}

/// Grey values of a PNG (its red channel).
fn png_grey(bytes: &[u8]) -> Vec<u8> {
    let decoder = png::Decoder::new(bytes);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()].chunks(channels).map(|p| p[0]).collect()
}

#[test]
fn the_explorer_serves_its_api_and_page_to_a_real_browser() {
    let out = scratch("serve");
    ok(&run(&small_train_args(&out, "2000", "300", "64", "2")));
    let (mut server, port) = serve(&out.join("model.safetensors"));

    // The API: an image for a good z, a one-line 4xx for bad requests, and still serving.
    let z4 = "0.5,-1,0.25,2";
    let (status, png) = get(port, &format!("/api/decode?z={z4}"));
    assert_eq!(status, 200);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(png_grey(&png).len(), 224 * 224);
    let bad = [
        ("/api/decode?z=1,2", 400, "latent has 4"),
        ("/api/decode?z=1,nan,2,3", 400, "finite"),
        ("/api/decode?z=a,b,c,d", 400, "numbers"),
        ("/api/decode?z=1,2,3,4&label=3", 400, "no classes"),
        ("/api/decode", 400, "z="),
        ("/api/mean?i=99999", 400, "index"),
        ("/no/such/page", 404, "no such page"),
    ];
    for (path, want, needle) in bad {
        let (status, body) = get(port, path);
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status, want, "{path}: {body}");
        assert!(body.contains(needle) && body.trim().lines().count() == 1, "{path}: {body:?}");
    }
    assert_eq!(get(port, &format!("/api/decode?z={}", "1".repeat(9000))).0, 414);
    assert_eq!(http(port, "POST", "/api/info", Some("{}")).0, 405);
    // DNS rebinding: a request addressed to another name is refused (403, one line), and the
    // server goes on answering its own names.
    let (status, body) = http_to(port, "evil.example", "GET", "/api/info", None);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("evil.example"));
    assert_eq!(http_to(port, &format!("localhost:{port}"), "GET", "/api/info", None).0, 200);
    let info: serde_json::Value = serde_json::from_slice(&get(port, "/api/info").1).unwrap();
    assert_eq!((info["latent"].as_u64(), info["projection"].as_str()), (Some(4), Some("pca")));
    let latent: serde_json::Value = serde_json::from_slice(&get(port, "/api/latent").1).unwrap();
    assert_eq!(latent["points"].as_array().unwrap().len(), 10_000); // the whole test set
    let full: serde_json::Value = serde_json::from_slice(&get(port, "/api/latent?means=1").1).unwrap();
    let mean_3 = full["means"][3].clone();
    let alone: serde_json::Value = serde_json::from_slice(&get(port, "/api/mean?i=3").1).unwrap();
    assert_eq!(mean_3, alone["z"]);
    assert_eq!(get(port, "/api/curves").0, 200);
    assert_eq!(get(port, "/").0, 200);

    // Many clients at once: every answer arrives, and the same z gives the same image.
    let threads: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                (0..25).map(|i| get(port, &format!("/api/decode?z={t}.{i},0,0,0")).0).filter(|&s| s == 200).count()
            })
        })
        .collect();
    assert_eq!(threads.into_iter().map(|t| t.join().unwrap()).sum::<usize>(), 150);
    assert_eq!(get(port, &format!("/api/decode?z={z4}")).1, png);

    browser_check(port);

    // Ctrl-C stops it cleanly.
    Command::new("kill").args(["-INT", &server.0.id().to_string()]).status().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "serve did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exited with {status}");
}

/// WebDriver over chromedriver: a session of headless Chromium on the explorer's page.
struct Browser {
    /// chromedriver, stopped when the browser is dropped.
    _driver: Reaped,
    port: u16,
    session: String,
}

impl Browser {
    fn start() -> Option<Browser> {
        let (chromium, chromedriver) = ("/usr/bin/chromium", "/usr/bin/chromedriver");
        if !std::path::Path::new(chromium).exists() || !std::path::Path::new(chromedriver).exists() {
            assert!(
                std::env::var_os("VAE_REQUIRE_BROWSER").is_none(),
                "VAE_REQUIRE_BROWSER is set but {chromium} or {chromedriver} is missing (apt-get install chromium chromium-driver)"
            );
            println!("skipping the browser part: install chromium and chromium-driver to run it");
            return None;
        }
        let port = free_port();
        // Reaped from here on: a failed assertion below leaves no chromedriver behind.
        let driver = Reaped(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,950"]
        }}}});
        let (status, body) = http(port, "POST", "/session", Some(&caps.to_string()));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "new session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Some(Browser { _driver: driver, port, session })
    }

    fn call(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let path = format!("/session/{}{path}", self.session);
        let body = (method == "POST").then(|| body.to_string());
        let (status, reply) = http(self.port, method, &path, body.as_deref());
        let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn script(&self, js: &str) -> serde_json::Value {
        self.call("POST", "/execute/sync", serde_json::json!({"script": js, "args": []}))
    }

    /// Polls `js` until it returns true.
    fn wait_for(&self, js: &str, what: &str) {
        let t0 = Instant::now();
        while self.script(js) != serde_json::json!(true) {
            assert!(t0.elapsed() < Duration::from_secs(30), "waited 30 s for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    /// Ends the session (closing Chromium); dropping `_driver` then stops chromedriver.
    fn drop(&mut self) {
        let _ = http(self.port, "DELETE", &format!("/session/{}", self.session), None);
    }
}

fn browser_check(port: u16) {
    let Some(b) = Browser::start() else { return };
    b.call("POST", "/url", serde_json::json!({"url": format!("http://127.0.0.1:{port}/")}));
    b.wait_for("return window.explorerReady === true && window.lastDecode !== null", "the page to load");
    let first = b.script("return window.lastDecode.url");

    // Click a point of the scatter, off its centre.
    let el = b.call("POST", "/element", serde_json::json!({"using": "css selector", "value": "#scatter"}));
    let key = "element-6066-11e4-a52e-4f735466cecf";
    let origin = serde_json::json!({ key: el[key] });
    let actions = serde_json::json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
    "actions": [
        {"type": "pointerMove", "duration": 0, "origin": origin, "x": 60, "y": -45},
        {"type": "pointerDown", "button": 0},
        {"type": "pointerUp", "button": 0}
    ]}]});
    let t0 = Instant::now();
    b.call("POST", "/actions", actions);
    b.wait_for(&format!("return window.lastDecode.url !== {first}"), "the clicked point's image");
    println!("click to image shown: {:.0} ms (including WebDriver round trips)", t0.elapsed().as_secs_f64() * 1e3);
    let clicked = b.script("return [window.lastDecode.url, window.decodedPixels()]");
    let url = clicked[0].as_str().unwrap().to_string();
    let shown: Vec<u8> = clicked[1].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
    let (status, api_png) = get(port, &url);
    assert_eq!(status, 200);
    let api = png_grey(&api_png);
    assert_eq!(shown.len(), api.len());
    let worst = shown.iter().zip(&api).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert_eq!(worst, 0, "the page shows another image than the API's for {url}");

    // Move the first slider: a new z, a different image.
    b.script(
        "const s = document.getElementById('slider0'); s.value = 3; s.dispatchEvent(new Event('input')); return true",
    );
    b.wait_for(&format!("return window.lastDecode.url !== {}", serde_json::json!(url)), "the slider's image");
    let moved: Vec<u8> = b
        .script("return window.decodedPixels()")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert_ne!(moved, shown, "moving a slider left the image as it was");

    let shot = b.call("GET", "/screenshot", serde_json::Value::Null);
    let png = base64_decode(shot.as_str().unwrap());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let path = std::env::var("VAE_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| scratch("serve-shot").with_extension("png"));
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).map(value).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, &v| (acc << 6) | v as u32) << (6 * (4 - chunk.len()));
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..chunk.len() - 1]);
    }
    out
}

/// The two-layer model's explorer shows its top layer, h2: the API names it, decodes a point of
/// it down the generative chain, and refuses a point of the wrong size.
#[test]
fn the_explorer_shows_the_top_layer_of_the_two_layer_model() {
    let out = scratch("serve-hvae");
    let args = ["train", "--preset", "burda2", "--hidden", "16", "--latent-dim", "5", "--upper-hidden", "8"];
    let rest = ["--upper-latent", "3", "--epochs", "1", "--train-limit", "400", "--test-limit", "100"];
    let out_args = ["--out", out.to_str().unwrap()];
    ok(&run(&[&args[..], &rest, &out_args].concat()));
    let (_server, port) = serve(&out.join("model.safetensors"));
    let (status, info) = get(port, "/api/info");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap();
    assert_eq!((info["layer"].as_str(), info["latent"].as_u64()), (Some("h2"), Some(3)));
    let (status, png) = get(port, "/api/decode?z=0.5,-1,2");
    assert_eq!(status, 200);
    assert_eq!(png_grey(&png).len(), 224 * 224);
    let (status, body) = get(port, "/api/decode?z=1,2,3,4,5");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("latent has 3"), "{}", String::from_utf8_lossy(&body));
    let (status, latent) = get(port, "/api/latent");
    assert_eq!(status, 200);
    let latent: serde_json::Value = serde_json::from_slice(&latent).unwrap();
    assert_eq!(latent["points"].as_array().unwrap().len(), 10_000);
}
