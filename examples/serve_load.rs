//! A load test of `vae-cli serve` on the loopback address: `clients` threads send `requests`
//! decode requests each (a new z every time, one connection per request), then it prints
//! requests per second, latency percentiles and the server's resident memory before and after.
//!
//!   vae-cli serve --checkpoint runs/mlp-z20-seed1/model.safetensors --port 8000 &
//!   cargo run --release --example serve_load -- 8000 20 8 500 $(pgrep -f "vae-cli serve")
//!
//! Arguments: port, latent size J, clients, requests per client, and the server's pid (for its
//! memory, read from /proc).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One GET; the seconds it took and whether the answer was 200.
fn get(port: u16, path: &str) -> (f64, bool) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("the server listens");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server answers only requests addressed to it: the Host names its port too.
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    (t0.elapsed().as_secs_f64(), reply.starts_with(b"HTTP/1.1 200"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, j, clients, requests, pid] = args.as_slice() else {
        eprintln!("usage: serve_load PORT J CLIENTS REQUESTS SERVER_PID");
        std::process::exit(2);
    };
    let (port, j, clients, requests): (u16, usize, usize, usize) =
        (port.parse().unwrap(), j.parse().unwrap(), clients.parse().unwrap(), requests.parse().unwrap());
    // Warm up, then measure.
    for _ in 0..20 {
        get(port, &format!("/api/decode?z={}", vec!["0"; j].join(",")));
    }
    let before = rss_kib(pid);
    let t0 = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                (0..requests)
                    .map(|i| {
                        let z: Vec<String> = (0..j)
                            .map(|k| format!("{:.3}", ((c * 7919 + i * 104_729 + k * 31) % 4001) as f64 / 1000.0 - 2.0))
                            .collect();
                        get(port, &format!("/api/decode?z={}", z.join(",")))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(f64, bool)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let wall = t0.elapsed().as_secs_f64();
    let after = rss_kib(pid);
    let failed = results.iter().filter(|r| !r.1).count();
    let mut ms: Vec<f64> = results.iter().map(|r| r.0 * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{} requests from {clients} clients in {wall:.2} s: {:.0} requests/s, {failed} failed",
        ms.len(),
        ms.len() as f64 / wall
    );
    println!("latency ms: p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}", pct(0.5), pct(0.9), pct(0.99), pct(1.0));
    println!("server memory (VmRSS): {before:?} kB before, {after:?} kB after");
}
