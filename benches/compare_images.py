#!/usr/bin/env python3
"""Users' images against PyTorch on this machine, in one run: decoding a folder of PNG files
(vae::data against torchvision's ImageFolder with PIL), and an epoch of the colour conv VAE
(vae-cli train --data DIR --model conv against PyTorch's identical model on the same images).

    cargo run --release --example make_shapes -- /tmp/shapes10k 32 11112   # 10,001 + 1,111 PNGs
    python3 benches/compare_images.py --decode /tmp/shapes10k [--rounds 3]
    python3 benches/compare_images.py --train /tmp/shapes10k [--epochs 2] [--rounds 3]

--decode: ours is `examples/decode_folder.rs` (find the files, decode every image in parallel,
keep them as uint8 [N, C, H, W]); PyTorch's is ImageFolder(DIR/train) and ImageFolder(DIR/test)
with transforms.PILToTensor(), every image read once through a DataLoader (batch 256), with 0
and with --threads worker processes, stacked into one uint8 tensor; the faster of the two
counts. Each side runs in a process of its own, so that each peak memory is its own.

--train: the conv model of `vae-cli train --model conv` at 3×32×32: Conv(3→32, k4 s2 p1),
Conv(32→64, k4 s2 p1), dense heads (4,096 → 20), the mirror; Bernoulli on the [0, 1] pixel
values, Adam 1e-3, batch 128, the test pass after each epoch with z sampled, on --threads
threads. PyTorch's images are decoded once before its clock starts (as ours are).
"""

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine():
    model = "unknown CPU"
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return f"{model}, {simd}, {os.cpu_count()} cores"


def build(*targets):
    subprocess.run(["cargo", "build", "-q", "--release", *targets], cwd=ROOT, check=True)


def decode_ours(path):
    out = subprocess.run([os.path.join(ROOT, "target", "release", "examples", "decode_folder"), path],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    values = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith(("seconds", "peak_kb")))
    return float(values["seconds"]), int(values["peak_kb"])


def decode_torch_child(path, workers):
    """In a child process: every image of the folder through ImageFolder; seconds, peak kB."""
    import torch
    from torchvision import datasets, transforms

    t0 = time.perf_counter()
    tensors = []
    for split in ("train", "test"):
        root = os.path.join(path, split)
        ds = datasets.ImageFolder(root, transform=transforms.PILToTensor())
        loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=workers)
        tensors += [x for x, _ in loader]
    images = torch.cat(tensors)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"images {tuple(images.shape)}")
    print(f"seconds {seconds:.3f}")
    print(f"peak_kb {peak}")


def decode_torch(path, workers):
    out = subprocess.run([sys.executable, __file__, "--torch-decode-child", path, "--workers", str(workers)],
                         check=True, capture_output=True, text=True).stdout
    values = dict(line.split(" ", 1) for line in out.splitlines())
    return float(values["seconds"]), int(values["peak_kb"])


def compare_decode(args):
    build("--example", "decode_folder")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        print("torchvision is not installed here: no comparison (pip install torch torchvision).")
        seconds, peak = decode_ours(args.decode)
        print(f"ours: {seconds:.3f} s, peak {peak / 1024:.0f} MiB")
        return 0
    ratios = []
    for r in range(args.rounds):
        ours, our_peak = decode_ours(args.decode)
        theirs = {w: decode_torch(args.decode, w) for w in (0, args.threads)}
        best = min(theirs, key=lambda w: theirs[w][0])
        ratios.append(ours / theirs[best][0])
        print(f"round {r + 1}: ours {ours:.3f} s (peak {our_peak / 1024:.0f} MiB); ImageFolder "
              + ", ".join(f"{w} workers {s:.3f} s (peak {p / 1024:.0f} MiB)" for w, (s, p) in theirs.items())
              + f"; ratio to the faster {ratios[-1]:.3f}", flush=True)
    print(f"ratio over {len(ratios)} rounds: median {statistics.median(ratios):.3f}, "
          f"range {min(ratios):.3f}–{max(ratios):.3f}")
    return 0


def train_ours(args):
    build("-p", "vae-cli")
    out = tempfile.mkdtemp(prefix="vae-compare-images-")
    cmd = [os.path.join(ROOT, "target", "release", "vae-cli"), "train", "--data", args.train, "--model", "conv",
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--out", os.path.join(out, "run")]
    # A child forked from this process (PyTorch loaded) would count this process's pages in its
    # peak; GNU time forks vae-cli from a small process and reports its own peak (%M, kB).
    timed = os.path.exists("/usr/bin/time")
    if timed:
        cmd = ["/usr/bin/time", "-f", "peak_kb %M", *cmd]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"vae-cli failed: {' '.join(cmd)}\n{done.stderr}")
    peak = int(done.stderr.strip().splitlines()[-1].split()[1]) if timed else None
    with open(os.path.join(out, "run", "metrics.csv")) as f:
        rows = [(float(r["seconds"]), float(r["test_loss"])) for r in csv.DictReader(f)]
    return rows, peak


def train_torch(args):
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from PIL import Image

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    def load(split):
        root = os.path.join(args.train, split)
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".png"))
        x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])  # N, H, W, C
        return torch.tensor(x).permute(0, 3, 1, 2).float().div(255).contiguous()

    train, test = load("train"), load("test")
    c, h, w = train.shape[1:]
    flat = 64 * (h // 4) * (w // 4)

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc_conv1, self.enc_conv2 = nn.Conv2d(c, 32, 4, 2, 1), nn.Conv2d(32, 64, 4, 2, 1)
            self.enc_mu, self.enc_logvar = nn.Linear(flat, 20), nn.Linear(flat, 20)
            self.dec_fc1 = nn.Linear(20, flat)
            self.dec_deconv1, self.dec_deconv2 = nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ConvTranspose2d(32, c, 4, 2, 1)

        def forward(self, x):
            hid = F.relu(self.enc_conv2(F.relu(self.enc_conv1(x)))).flatten(1)
            mu, logvar = self.enc_mu(hid), self.enc_logvar(hid)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            d = F.relu(self.dec_fc1(z)).view(-1, 64, h // 4, w // 4)
            return self.dec_deconv2(F.relu(self.dec_deconv1(d))), mu, logvar

    def loss_sum(model, x):
        out, mu, logvar = model(x)
        recon = F.binary_cross_entropy_with_logits(out, x, reduction="sum")
        return recon - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

    model = Conv()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(train)).split(128):
            loss = loss_sum(model, train[idx]) / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            total = sum(loss_sum(model, x).item() for x in test.split(500))
        rows.append((time.perf_counter() - t0, total / len(test)))
    return rows


def compare_train(args):
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed here: no comparison (pip install torch).")
        return 0
    mean = lambda rows: sum(r[0] for r in rows) / len(rows)
    ratios = []
    for r in range(args.rounds):
        ours, peak = train_ours(args)
        theirs = train_torch(args)
        ratios.append(mean(ours) / mean(theirs))
        peak = f"{peak / 1024:.0f} MiB" if peak else "not measured without /usr/bin/time"
        print(f"round {r + 1}: vae-cli {mean(ours):.2f} s per epoch (test loss {ours[-1][1]:.2f}, peak "
              f"{peak}); PyTorch {mean(theirs):.2f} s (test loss {theirs[-1][1]:.2f}); "
              f"ratio {ratios[-1]:.3f}", flush=True)
    print(f"PyTorch's peak memory (this process, its images and every round's model): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"ratio over {len(ratios)} rounds: median {statistics.median(ratios):.3f}, "
          f"range {min(ratios):.3f}–{max(ratios):.3f}")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decode", metavar="DIR", help="time decoding the PNG folder DIR (train/ and test/)")
    p.add_argument("--train", metavar="DIR", help="time epochs of the colour conv VAE on DIR")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--torch-decode-child", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.torch_decode_child:
        return decode_torch_child(args.torch_decode_child, args.workers)
    print(f"machine: {machine()}")
    if args.decode:
        return compare_decode(args)
    if args.train:
        return compare_train(args)
    p.error("give --decode DIR or --train DIR")


if __name__ == "__main__":
    sys.exit(main())
