//! The web side of the end-to-end tests: HTTP/1.1 by hand, a served `vae-cli serve`, and a
//! headless Chromium driven over WebDriver (chromedriver).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::bin;

/// One HTTP/1.1 exchange over a fresh connection: (status, body). The body is read by its
/// Content-Length or its chunks (chromedriver keeps connections open whatever the request says).
pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    http_to(port, &format!("127.0.0.1:{port}"), method, path, body)
}

/// [`http`] with the `Host` header `host`.
pub fn http_to(port: u16, host: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
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

pub fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    http(port, "GET", path, None)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped (so that a failed assertion leaves no server behind).
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `vae-cli <args>` (a `serve` command with `--port 0`) started from the repository root:
/// the child and the port it printed.
pub fn serve_with(args: &[&str]) -> (Reaped, u16) {
    serve_with_env(args, &[])
}

/// [`serve_with`] with extra environment variables for the server.
pub fn serve_with_env(args: &[&str], env: &[(&str, &str)]) -> (Reaped, u16) {
    let mut child = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
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
pub fn png_grey(bytes: &[u8]) -> Vec<u8> {
    let decoder = png::Decoder::new(bytes);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()].chunks(channels).map(|p| p[0]).collect()
}

/// WebDriver over chromedriver: a session of headless Chromium on the explorer's page.
pub struct Browser {
    /// chromedriver, stopped when the browser is dropped.
    _driver: Reaped,
    port: u16,
    session: String,
}

impl Browser {
    pub fn start() -> Option<Browser> {
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

    pub fn call(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let path = format!("/session/{}{path}", self.session);
        let body = (method == "POST").then(|| body.to_string());
        let (status, reply) = http(self.port, method, &path, body.as_deref());
        let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    pub fn script(&self, js: &str) -> serde_json::Value {
        self.call("POST", "/execute/sync", serde_json::json!({"script": js, "args": []}))
    }

    /// Polls `js` until it returns true.
    pub fn wait_for(&self, js: &str, what: &str) {
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

/// Standard base64 (the screenshot's encoding).
pub fn base64_decode(s: &str) -> Vec<u8> {
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

/// Sends Ctrl-C (SIGINT) to a served child and waits (`limit` at most) for it to exit
/// successfully.
pub fn interrupt_and_wait(server: &mut Reaped, limit: Duration) {
    Command::new("kill").args(["-INT", &server.0.id().to_string()]).status().unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < limit, "serve did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exited with {status}");
}
