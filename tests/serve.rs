//! `vae-cli serve` end to end: the API (answers, bad requests, many clients at once, Ctrl-C)
//! and the page in a real headless Chromium, driven over WebDriver (chromedriver): click a point
//! of the scatter, check that the image shown is the API's image of the same z, move a slider
//! and check that the image changes; a screenshot of the page.
//!
//! The browser part needs Debian's `chromium` and `chromium-driver`; `.ci/run` installs them and
//! sets VAE_REQUIRE_BROWSER=1, which makes their absence a failure. Elsewhere the browser part
//! is skipped with a message. VAE_SCREENSHOT=FILE also writes the screenshot there.

use std::time::{Duration, Instant};

mod common;

use common::web::{base64_decode, get, http, http_to, interrupt_and_wait, png_grey, serve_with, Browser, Reaped};
use common::{ok, run, scratch, small_train_args};

/// A served small model: the child and its port.
fn serve(model: &std::path::Path) -> (Reaped, u16) {
    serve_with(&["serve", "--checkpoint", model.to_str().unwrap(), "--port", "0"])
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
    let (status, svg) = get(port, "/api/curves.svg");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&svg).starts_with("<svg"));
    assert_eq!(info["chart"], true);
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
    interrupt_and_wait(&mut server, Duration::from_secs(10));
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
