#!/usr/bin/env python3
"""Train the same VAE with the same protocol in PyTorch and with vae-cli, on this machine, in one
run, with the same number of threads; print epoch times, their ratio, both test losses and both
peak memories.

    python3 benches/compare_pytorch.py [--epochs 3] [--threads 2] [--model mlp|conv|iaf|resnet] [--rounds 1]
    python3 benches/compare_pytorch.py --model burda [--objective elbo|iwae] [--k 50] [--epochs 1]
    python3 benches/compare_pytorch.py --iw-eval 200 [--rounds 3]
    python3 benches/compare_pytorch.py --gemm

--model iaf is the MLP with two inverse autoregressive flow steps in q (MADE of 320 hidden units,
every second step's order reversed, z <- sigma z + (1 - sigma) m; the KL sampled), `train --flow
iaf`; --model resnet is the ResNet VAE of `train --model resnet` (per level of 16, 32, 32 maps a
stride-2 and a stride-1 residual block of weight-normalized 3x3 convolutions with ELU; the
decoder mirrors them with transposed ones). Both sides train the same layers; PyTorch's start
is its own (no data-dependent initialization), which changes the losses, not the work.

--model burda is Burda et al.'s density-estimation model and protocol (784-200-200-50 tanh,
dynamic binarization, batch 20, Adam with eps 1e-4, output bias at the logit of the pixel
means), trained on the K-sample ELBO or the IWAE bound; its test pass evaluates the same
objective. --iw-eval N times the importance-weighted estimate of -log p(x) with K = 5000
samples on the first N test images of an untrained Burda model (the work does not depend on
the weights), per image.

With --gemm it compares single-threaded sgemm at the MLP's shapes instead: PyTorch's torch.mm
(its BLAS) against matrixmultiply through `cargo bench -- gemm/`, in GFLOP/s.

The model and protocol are those of `vae-cli train` (PyTorch's MNIST example): 784-400-20 MLP
(or the conv model), Bernoulli likelihood on logits, loss summed over pixels and latent
dimensions and averaged over the batch, Adam 1e-3, batch 128, MNIST from datasets/mnist, test
loss with z sampled. Each epoch's time covers training and the test pass, as vae-cli's
`seconds` column does. Where PyTorch is not installed, the script says so and reports vae-cli
alone.

A shared machine's speed drifts over minutes, so with --rounds R the sides take turns R times
(vae-cli, then PyTorch, then JAX, then vae-cli again, …) and the ratios are reported per round,
with their median and range. JAX (benches/jax_side.py: each step one XLA-compiled function,
Adam from optax) runs beside PyTorch for --model mlp and burda where it is installed
(pip install jax optax); "the faster" is our time over the faster peer's in that round.

Last, the run's work: its FLOP (each multiply-add 2), counted dense and as done (the sparse
first layer skips the zeros of its input), our median GFLOP/s as a share of the machine's FMA
peak (one core's from `cargo bench --bench engine -- peak`, times the threads; or --peak), and,
with --target R, the share of the peak that R times the faster peer's median time asks for.
"""

import argparse
import csv
import gzip
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_idx(name):
    import numpy as np

    with gzip.open(os.path.join(ROOT, "datasets", "mnist", name + ".gz"), "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def torch_data(args):
    """torch (on args.threads threads, seed 1) and MNIST's training and test images in [0, 1],
    or None where PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    train = torch.tensor(read_idx("train-images-idx3-ubyte"), dtype=torch.float32).view(-1, 784) / 255.0
    test = torch.tensor(read_idx("t10k-images-idx3-ubyte"), dtype=torch.float32).view(-1, 784) / 255.0
    return torch, train, test


def run_pytorch(args):
    data = torch_data(args)
    if data is None:
        return None
    torch, train, test = data
    import torch.nn as nn
    import torch.nn.functional as F

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc_fc1, self.enc_mu, self.enc_logvar = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
            self.dec_fc1, self.dec_out = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, x):
            h = F.relu(self.enc_fc1(x))
            mu, logvar = self.enc_mu(h), self.enc_logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return self.dec_out(F.relu(self.dec_fc1(z))), mu, logvar

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc_conv1, self.enc_conv2 = nn.Conv2d(1, 32, 4, 2, 1), nn.Conv2d(32, 64, 4, 2, 1)
            self.enc_mu, self.enc_logvar = nn.Linear(64 * 49, 20), nn.Linear(64 * 49, 20)
            self.dec_fc1 = nn.Linear(20, 64 * 49)
            self.dec_deconv1, self.dec_deconv2 = nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ConvTranspose2d(32, 1, 4, 2, 1)

        def forward(self, x):
            h = F.relu(self.enc_conv2(F.relu(self.enc_conv1(x.view(-1, 1, 28, 28))))).flatten(1)
            mu, logvar = self.enc_mu(h), self.enc_logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            d = F.relu(self.dec_fc1(z)).view(-1, 64, 7, 7)
            return self.dec_deconv2(F.relu(self.dec_deconv1(d))).flatten(1), mu, logvar

    class Made(nn.Module):
        """One IAF step's MADE: J -> 320 (relu) -> m, s, its weights masked by degree."""
        def __init__(self, j, w, reversed_order):
            super().__init__()
            deg_in = [j - d if reversed_order else d + 1 for d in range(j)]
            deg_h = [k % (max(j, 2) - 1) + 1 for k in range(w)]
            self.register_buffer("into", torch.tensor([[float(deg_h[k] >= deg_in[d]) for d in range(j)] for k in range(w)]))
            self.register_buffer("out", torch.tensor([[float(deg_in[d] > deg_h[k]) for k in range(w)] for d in range(j)]))
            self.hidden, self.m, self.s = nn.Linear(j, w), nn.Linear(w, j), nn.Linear(w, j)
            nn.init.constant_(self.s.bias, 1.0)

        def forward(self, z):
            h = F.relu(F.linear(z, self.hidden.weight * self.into, self.hidden.bias))
            return F.linear(h, self.m.weight * self.out, self.m.bias), F.linear(h, self.s.weight * self.out, self.s.bias)

    class Iaf(Mlp):
        def __init__(self):
            super().__init__()
            self.flows = nn.ModuleList([Made(20, 320, t % 2 == 1) for t in range(2)])

        def forward(self, x):
            h = F.relu(self.enc_fc1(x))
            mu, logvar = self.enc_mu(h), self.enc_logvar(h)
            eps = torch.randn_like(mu)
            z = mu + torch.exp(0.5 * logvar) * eps
            log_q = -0.5 * (eps ** 2 + logvar + math.log(2 * math.pi)).sum(1)
            for made in self.flows:
                m, s = made(z)
                sigma = torch.sigmoid(s)
                z = sigma * z + (1 - sigma) * m
                log_q = log_q - F.logsigmoid(s).sum(1)
            kl = log_q + 0.5 * (z ** 2 + math.log(2 * math.pi)).sum(1)
            return self.dec_out(F.relu(self.dec_fc1(z))), kl

    class WnConv(nn.Module):
        """w = g v / ||v||, the norm over all but the output channel (axis 1 when transposed)."""
        def __init__(self, c_in, c_out, k, stride, pad, transposed=False):
            super().__init__()
            layer = (nn.ConvTranspose2d if transposed else nn.Conv2d)(c_in, c_out, k, stride, pad)
            self.v, self.b = nn.Parameter(layer.weight.detach().clone()), nn.Parameter(torch.zeros(c_out))
            self.axis, self.stride, self.pad, self.transposed = (1 if transposed else 0), stride, pad, transposed
            dims = [d for d in range(4) if d != self.axis]
            self.g = nn.Parameter(self.v.detach().pow(2).sum(dims, keepdim=True).sqrt())

        def forward(self, x):
            dims = [d for d in range(4) if d != self.axis]
            w = self.g * self.v / self.v.pow(2).sum(dims, keepdim=True).sqrt()
            f = F.conv_transpose2d if self.transposed else F.conv2d
            return f(x, w, self.b, stride=self.stride, padding=self.pad)

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.c1, self.c2 = WnConv(c_in, c_out, 3, stride, 1), WnConv(c_out, c_out, 3, 1, 1)
            self.skip = WnConv(c_in, c_out, 1, stride, 0) if stride != 1 or c_in != c_out else None

        def forward(self, x):
            y = self.c2(F.elu(self.c1(F.elu(x))))
            return y + (self.skip(x) if self.skip is not None else x)

    class Up(nn.Module):
        def __init__(self, c_in, c_out, odd):
            super().__init__()
            k_up, k_skip = (3, 1) if odd else (4, 2)
            self.up, self.c2 = WnConv(c_in, c_out, k_up, 2, 1, True), WnConv(c_out, c_out, 3, 1, 1)
            self.skip = WnConv(c_in, c_out, k_skip, 2, 0, True)

        def forward(self, x):
            return self.c2(F.elu(self.up(F.elu(x)))) + self.skip(x)

    class Resnet(nn.Module):
        def __init__(self, maps=(16, 32, 32)):
            super().__init__()
            sizes = [28]
            for _ in maps:
                sizes.append((sizes[-1] + 1) // 2)
            enc, c = [], 1
            for c_l in maps:
                enc += [Block(c, c_l, 2), Block(c_l, c_l, 1)]
                c = c_l
            self.enc = nn.Sequential(*enc)
            self.top = (maps[-1], sizes[-1])
            flat = maps[-1] * sizes[-1] ** 2
            self.enc_mu, self.enc_logvar, self.dec_fc1 = nn.Linear(flat, 20), nn.Linear(flat, 20), nn.Linear(20, flat)
            dec = []
            for l in range(len(maps), 0, -1):
                below = maps[max(l - 2, 0)]
                dec += [Block(maps[l - 1], maps[l - 1], 1), Up(maps[l - 1], below, sizes[l - 1] % 2 == 1)]
            self.dec, self.out = nn.Sequential(*dec), WnConv(maps[0], 1, 3, 1, 1)

        def forward(self, x):
            h = F.elu(self.enc(x.view(-1, 1, 28, 28)).flatten(1))
            mu, logvar = self.enc_mu(h), self.enc_logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            c, s = self.top
            d = self.dec(self.dec_fc1(z).view(-1, c, s, s))
            return self.out(F.elu(d)).flatten(1), mu, logvar

    def terms(model, x):
        if args.model == "iaf":
            out, kl = model(x)
            return F.binary_cross_entropy_with_logits(out, x, reduction="sum"), kl.sum()
        out, mu, logvar = model(x)
        recon = F.binary_cross_entropy_with_logits(out, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return recon, kl

    model = {"mlp": Mlp, "conv": Conv, "iaf": Iaf, "resnet": Resnet}[args.model]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(train)).split(128):
            x = train[idx]
            recon, kl = terms(model, x)
            loss = (recon + kl) / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
        train_seconds = time.perf_counter() - t0
        model.eval()
        total = 0.0
        with torch.no_grad():
            for x in test.split(500):
                recon, kl = terms(model, x)
                total += (recon + kl).item()
        rows.append((time.perf_counter() - t0, total / len(test)))
        print(f"  pytorch  epoch {epoch + 1}: {rows[-1][0]:6.2f} s ({train_seconds:.2f} s training), "
              f"test loss {rows[-1][1]:.2f}", flush=True)
    return rows


def burda_pytorch_model(train):
    """Burda et al.'s model in PyTorch, its output bias at the logit of the pixel means."""
    import torch
    import torch.nn as nn

    class Burda(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(784, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh())
            self.enc_mu, self.enc_logvar = nn.Linear(200, 50), nn.Linear(200, 50)
            self.dec = nn.Sequential(nn.Linear(50, 200), nn.Tanh(), nn.Linear(200, 200), nn.Tanh(), nn.Linear(200, 784))
            m = train.mean(0).clamp(1e-3, 1 - 1e-3)
            with torch.no_grad():
                self.dec[-1].bias.copy_(torch.log(m / (1 - m)))

        def log_weights(self, x, k):
            """log w [k, N] = log p(x|z) + log p(z) - log q(z|x) for k draws of z per row."""
            h = self.enc(x)
            mu, logvar = self.enc_mu(h), self.enc_logvar(h)
            eps = torch.randn(k, *mu.shape)
            z = mu + torch.exp(0.5 * logvar) * eps
            logits = self.dec(z)
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x.expand(k, *x.shape), reduction="none").sum(-1)
            half_ln_2pi = 0.5 * math.log(2 * math.pi)
            log_pz = (-0.5 * z.pow(2) - half_ln_2pi).sum(-1)
            log_qz = (-0.5 * eps.pow(2) - 0.5 * logvar - half_ln_2pi).sum(-1)
            return log_px + log_pz - log_qz

    return Burda()


def burda_loss(model, x, objective, k):
    import torch

    log_w = model.log_weights(x, k)
    if objective == "iwae":
        return -(torch.logsumexp(log_w, 0) - math.log(k)).mean()
    return -log_w.mean()


def run_pytorch_burda(args):
    data = torch_data(args)
    if data is None:
        return None
    torch, train, test = data
    model = burda_pytorch_model(train)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    rows = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        for idx in torch.randperm(len(train)).split(20):
            x = torch.bernoulli(train[idx])
            loss = burda_loss(model, x, args.objective, args.k)
            opt.zero_grad()
            loss.backward()
            opt.step()
        train_seconds = time.perf_counter() - t0
        total = 0.0
        with torch.no_grad():
            for x in test.split(500):
                total += burda_loss(model, torch.bernoulli(x), args.objective, args.k).item() * len(x)
        rows.append((time.perf_counter() - t0, total / len(test)))
        print(f"  pytorch  epoch {epoch + 1}: {rows[-1][0]:6.2f} s ({train_seconds:.2f} s training), "
              f"test loss {rows[-1][1]:.2f}", flush=True)
    return rows


def iw_eval_pytorch(args):
    """Seconds per test image of -log p(x) with K = 5000, samples decoded 1000 at a time."""
    data = torch_data(args)
    if data is None:
        return None
    torch, train, test = data
    model = burda_pytorch_model(train)
    t0 = time.perf_counter()
    total = 0.0
    with torch.no_grad():
        for x in test[: args.iw_eval]:
            x = torch.bernoulli(x).unsqueeze(0)
            log_w = torch.cat([model.log_weights(x, 1000) for _ in range(5)])
            total += -(torch.logsumexp(log_w, 0) - math.log(5000)).item()
    seconds = (time.perf_counter() - t0) / args.iw_eval
    print(f"  pytorch  {seconds * 1000:.2f} ms per image, -log p(x) {total / args.iw_eval:.2f} (untrained)")
    return seconds


def iw_eval_ours(args):
    """Seconds per test image of vae-cli eval --iw-samples 5000 on an untrained Burda model
    (a one-step run): the whole command, so its start and the one-sample ELBO pass over the same
    images (both small next to 5000 samples per image) are counted on our side."""
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "vae-cli"], cwd=ROOT, check=True)
    cli = os.path.join(ROOT, "target", "release", "vae-cli")
    out = tempfile.mkdtemp(prefix="vae-compare-")
    run = os.path.join(out, "run")
    subprocess.run([cli, "train", "--preset", "burda", "--epochs", "1", "--train-limit", "20", "--test-limit", "20",
                    "--out", run], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    base = [cli, "eval", "--checkpoint", os.path.join(run, "model.safetensors"), "--binarize", "dynamic",
            "--test-limit", str(args.iw_eval), "--threads", str(args.threads), "--json"]
    t0 = time.perf_counter()
    result = subprocess.run(base + ["--iw-samples", "5000"], cwd=ROOT, check=True, capture_output=True, text=True)
    seconds = (time.perf_counter() - t0) / args.iw_eval
    nll = json.loads(result.stdout)["nll"]
    print(f"  vae-cli  {seconds * 1000:.2f} ms per image, -log p(x) {nll:.2f} (untrained)")
    return seconds


def compare_iw_eval(args):
    print(f"importance-weighted -log p(x), K = 5000, Burda model, {args.iw_eval} test images, "
          f"{args.threads} threads, {args.rounds} round(s)")
    ratios, our_times, their_times = [], [], []
    for r in range(args.rounds):
        ours = iw_eval_ours(args)
        theirs = iw_eval_pytorch(args)
        if theirs is None:
            print("PyTorch is not installed here (`import torch` failed): no comparison in this run.")
            return 0
        our_times.append(ours)
        their_times.append(theirs)
        ratios.append(ours / theirs)
        print(f"round {r + 1}: ratio vae-cli / PyTorch {ratios[-1]:.2f}", flush=True)
    if len(ratios) > 1:
        print(f"ratio over {len(ratios)} rounds: median {statistics.median(ratios):.2f}, "
              f"range {min(ratios):.2f}–{max(ratios):.2f}")
    report_work(args, statistics.median(our_times), statistics.median(their_times))
    return 0


def run_ours(args):
    """Trains with vae-cli; returns its (seconds, test loss) per epoch and its peak memory in kB."""
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "vae-cli"], cwd=ROOT, check=True)
    out = tempfile.mkdtemp(prefix="vae-compare-")
    cmd = [os.path.join(ROOT, "target", "release", "vae-cli"), "train",
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--out", os.path.join(out, "run")]
    if args.model == "burda":
        # The preset's schedule squeezed into a short run would lower the rate; PyTorch's side
        # trains at 1e-3 throughout, so ours does too.
        cmd += ["--preset", "burda", "--objective", args.objective, "--k", str(args.k), "--lr-schedule", "constant"]
    elif args.model == "iaf":
        cmd += ["--flow", "iaf", "--flow-depth", "2", "--flow-width", "320"]
    else:
        cmd += ["--model", args.model]
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        sys.exit(f"vae-cli failed (wait status {status}): {' '.join(cmd)}")
    with open(os.path.join(out, "run", "metrics.csv")) as f:
        rows = [(float(r["seconds"]), float(r["test_loss"])) for r in csv.DictReader(f)]
    for i, (s, l) in enumerate(rows):
        print(f"  vae-cli  epoch {i + 1}: {s:6.2f} s, test loss {l:.2f}")
    return rows, usage.ru_maxrss  # kB on Linux


def run_jax(args):
    """Trains with JAX in a child process (benches/jax_side.py) on args.threads cores; returns
    its (seconds, test loss) per epoch and its peak memory in kB, or None where JAX is not
    installed or the model has no JAX side (conv)."""
    if args.model in ("conv", "iaf", "resnet"):
        return None
    cmd = [sys.executable, os.path.join(ROOT, "benches", "jax_side.py"), "--model", args.model,
           "--objective", args.objective, "--k", str(args.k), "--epochs", str(args.epochs)]
    if args.threads < (os.cpu_count() or 1):
        cmd = ["taskset", "-c", f"0-{args.threads - 1}"] + cmd
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in child.stdout:
        lines.append(line)
        if not line.startswith("JSON "):
            print(line, end="", flush=True)
    _, status, _ = os.wait4(child.pid, 0)
    result = [json.loads(line[5:]) for line in lines if line.startswith("JSON ")]
    if status != 0 or not result:
        return None
    return [tuple(r) for r in result[0]["rows"]], result[0]["peak_kb"]


# (criterion name in benches/engine.rs, M, K, N, a transposed, b transposed)
GEMM_SHAPES = [
    ("fwd x·W1 128x784x400", 128, 784, 400, False, False),
    ("bwd dW1=xt·dy 784x128x400", 784, 128, 400, True, False),
    ("fwd h·Wdec 128x400x784", 128, 400, 784, False, False),
    ("bwd dh=dy·Wdect 128x784x400", 128, 784, 400, False, True),
]


def gemm_pytorch():
    """GFLOP/s of torch.mm on one thread at each shape: the best of 5 timings of 200 products."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    rates = {}
    for name, m, k, n, ta, tb in GEMM_SHAPES:
        a = torch.ones(k, m).t() if ta else torch.ones(m, k)
        b = torch.ones(n, k).t() if tb else torch.ones(k, n)
        y = torch.empty(m, n)
        torch.mm(a, b, out=y)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(200):
                torch.mm(a, b, out=y)
            best = min(best, (time.perf_counter() - t0) / 200)
        rates[name] = 2 * m * k * n / best / 1e9
    return rates


def gemm_ours():
    """GFLOP/s of matrixmultiply at each shape, from criterion's median throughput."""
    cmd = ["cargo", "bench", "-q", "--bench", "engine", "--", "gemm/", "--noplot"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rates, current = {}, None
    for line in out.splitlines():
        if line.startswith("gemm/"):
            current = line.split("gemm/", 1)[1].split("  ")[0].strip()
        if "thrpt:" in line and current is not None:
            # thrpt:  [low unit median unit high unit]; elements are FLOPs here
            parts = line.split("[", 1)[1].split()
            value, unit = float(parts[2]), parts[3]
            rates[current] = value * {"Gelem/s": 1.0, "Melem/s": 1e-3, "Telem/s": 1e3}[unit]
            current = None
    return rates


def compare_gemm():
    print("sgemm, 1 thread, GFLOP/s")
    ours, theirs = gemm_ours(), gemm_pytorch()
    for name, *_ in GEMM_SHAPES:
        line = f"  {name:30} vae-engine {ours.get(name, float('nan')):6.1f}"
        if theirs is not None:
            line += f"   PyTorch {theirs[name]:6.1f}   ratio {ours.get(name, float('nan')) / theirs[name]:.2f}"
        print(line)
    if theirs is None:
        print("PyTorch is not installed here (`import torch` failed): no comparison in this run.")
    return 0


# Multiply-adds per example of each model's forward pass, and of its first layer (whose dx is
# never computed, and whose product skips zeros when its input is an image).
MLP_MACS, MLP_FIRST = 784 * 400 + 400 * 40 + 20 * 400 + 400 * 784, 784 * 400
# conv 1→32 and 32→64 (4×4, stride 2), the 3136 → 40 and 20 → 3136 heads, and the mirror image.
CONV_MACS, CONV_FIRST = 2 * (14 * 14 * 32 * 16 + 7 * 7 * 64 * 32 * 16) + 3136 * 40 + 20 * 3136, 14 * 14 * 32 * 16
# Burda et al.'s model: the encoder once per example, the decoder once per sample.
BURDA_ENCODER, BURDA_DECODER, BURDA_FIRST = 784 * 200 + 200 * 200 + 200 * 100, 50 * 200 + 200 * 200 + 200 * 784, 784 * 200


def epoch_gflop(args):
    """An epoch's work in GFLOP, counted dense and as done, and the first layer's share of
    nonzero inputs: 60,000 training examples (forward, dx of every layer but the first, dW) and
    the 10,000-example test pass (forward), 2 FLOP per multiply-add. The sparse first layer does
    its forward and dW products at the density of its input: grey MNIST's share of nonzero
    pixels, or for dynamically binarized images (Burda) the mean pixel, the expected share."""
    with gzip.open(os.path.join(ROOT, "datasets", "mnist", "train-images-idx3-ubyte.gz"), "rb") as f:
        pixels = f.read()[16:]  # after the IDX header of a 3-D array
    if args.model == "mlp":
        forward, first, density = MLP_MACS, MLP_FIRST, 1 - pixels.count(0) / len(pixels)
    elif args.model == "conv":
        forward, first, density = CONV_MACS, CONV_FIRST, 1.0
    else:
        forward, first, density = BURDA_ENCODER + args.k * BURDA_DECODER, BURDA_FIRST, sum(pixels) / len(pixels) / 255
    dense = 2 * (60000 * (3 * forward - first) + 10000 * forward)
    skipped = 2 * (1 - density) * first * (60000 * 2 + 10000)
    return dense / 1e9, (dense - skipped) / 1e9, density


def machine_peak(args):
    """The FMA peak in GFLOP/s of args.threads cores: --peak, or one core's from
    `cargo bench --bench engine -- peak` times the threads (two copies of that bench run at the
    same time each kept one copy's speed on the 2-core machines measured)."""
    if args.peak:
        return args.peak, f"--peak {args.peak:g}"
    result = subprocess.run(["cargo", "bench", "-q", "--bench", "engine", "--", "peak", "--warm-up-time", "1",
                             "--measurement-time", "3", "--noplot"], cwd=ROOT, capture_output=True, text=True)
    for line in result.stdout.splitlines():
        if "thrpt:" in line:  # thrpt:  [low Gelem/s  median Gelem/s  high Gelem/s]
            one = float(line.split("[")[1].split()[2])
            return one * args.threads, f"{args.threads} × {one:.1f}, cargo bench --bench engine -- peak"
    sys.exit("could not read the peak from `cargo bench --bench engine -- peak`:\n" + result.stdout + result.stderr)


def report_work(args, ours, peers):
    """Prints the work, our median GFLOP/s as a share of the peak, and what --target asks.
    ours: our median seconds per epoch (or per image with --iw-eval); peers: the faster peer's
    median seconds, or None."""
    if args.model in ("iaf", "resnet"):
        print("work per epoch: not counted for this model (the ratio above is the figure)")
        return
    if args.iw_eval:
        done = 2 * (BURDA_ENCODER + 5000 * BURDA_DECODER) / 1e9
        print(f"work per image: {done:.2f} GFLOP")
    else:
        dense, done, density = epoch_gflop(args)
        if density < 1:
            print(f"work per epoch: {dense:.1f} GFLOP counted dense, {done:.1f} done "
                  f"(the sparse first layer's input {100 * density:.1f}% nonzero)")
        else:
            print(f"work per epoch: {done:.1f} GFLOP")
    peak, source = machine_peak(args)
    print(f"the machine's peak: {peak:.0f} GFLOP/s ({source})")
    print(f"vae-cli: {done / ours:.0f} GFLOP/s done, {100 * done / ours / peak:.0f}% of the peak")
    if args.target and peers:
        need = args.target * peers
        unit, scale, peer = ("ms", 1000, "PyTorch's") if args.iw_eval else ("s", 1, "the faster peer's")
        print(f"target {args.target:g} × {peer} median {peers * scale:.3g} {unit} = "
              f"{need * scale:.3g} {unit}: {done / need:.0f} GFLOP/s, {100 * done / need / peak:.0f}% of the peak")


def machine():
    """The CPU model and its SIMD level, from /proc/cpuinfo: every speed figure needs them."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    simd = [x for x in ("avx512f", "avx512bw", "avx512vl", "avx2", "fma") if x in flags]
    return f"{model}, {os.cpu_count()} logical cores, SIMD: {' '.join(simd) or 'none found'}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--model", choices=["mlp", "conv", "iaf", "resnet", "burda"], default="mlp")
    p.add_argument("--objective", choices=["elbo", "iwae"], default="elbo", help="--model burda: the objective")
    p.add_argument("--k", type=int, default=1, help="--model burda: samples per example")
    p.add_argument("--iw-eval", type=int, metavar="N",
                   help="time -log p(x) with K = 5000 on N test images instead of training")
    p.add_argument("--rounds", type=int, default=1, help="alternate the two sides this many times")
    p.add_argument("--gemm", action="store_true", help="compare single-threaded sgemm instead of training")
    p.add_argument("--peak", type=float, metavar="GFLOPS",
                   help="the machine's FMA peak for --threads cores (default: measured with cargo bench)")
    p.add_argument("--target", type=float, metavar="RATIO",
                   help="print the share of the peak that this ratio to the faster peer asks for")
    args = p.parse_args()
    print(f"machine: {machine()}")
    if args.gemm:
        return compare_gemm()
    if args.iw_eval:
        return compare_iw_eval(args)
    what = f"{args.objective} k={args.k} " if args.model == "burda" else ""
    print(f"{args.model} model, {what}{args.epochs} epochs, {args.threads} threads, {args.rounds} round(s)")
    mean = lambda rows: sum(r[0] for r in rows) / len(rows)
    # Per round: our time over each peer's, and over the faster peer's.
    ratios = {"PyTorch": [], "JAX": [], "the faster": []}
    peaks, jax_peaks = [], []
    our_times, faster_times = [], []
    for r in range(args.rounds):
        if args.rounds > 1:
            print(f"round {r + 1}")
        ours, peak = run_ours(args)
        peaks.append(peak)
        print(f"vae-cli: {mean(ours):.2f} s per epoch, final test loss {ours[-1][1]:.2f}")
        theirs = run_pytorch_burda(args) if args.model == "burda" else run_pytorch(args)
        if theirs is None:
            print(f"vae-cli peak memory: {peak / 1024:.0f} MiB")
            print("PyTorch is not installed here (`import torch` failed): no comparison in this run. "
                  "Install it (pip install torch numpy) and run this script again.")
            return 0
        print(f"PyTorch: {mean(theirs):.2f} s per epoch, final test loss {theirs[-1][1]:.2f}")
        times = {"PyTorch": mean(theirs)}
        jax_run = run_jax(args)
        if jax_run is not None:
            jax_rows, jax_peak = jax_run
            jax_peaks.append(jax_peak)
            times["JAX"] = mean(jax_rows)
            print(f"JAX: {times['JAX']:.2f} s per epoch, "
                  f"final test loss {jax_rows[-1][1]:.2f}")
        elif args.model not in ("conv", "iaf", "resnet"):
            print("JAX is not installed here (benches/jax_side.py could not import it): PyTorch only.")
        our_times.append(mean(ours))
        faster_times.append(min(times.values()))
        for peer, t in times.items():
            ratios[peer].append(mean(ours) / t)
        ratios["the faster"].append(mean(ours) / min(times.values()))
        print("ratio vae-cli / " + ", / ".join(f"{peer} {v[-1]:.2f}" for peer, v in ratios.items() if v), flush=True)
    # ru_maxrss is in kB on Linux. vae-cli's comes from the first round: a child forked after torch
    # was loaded starts its count from this process's size before it execs. PyTorch's is this
    # whole process: its data, and every round's model. JAX's is its own child process.
    theirs_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    line = f"peak memory: vae-cli {peaks[0] / 1024:.0f} MiB, PyTorch {theirs_kb / 1024:.0f} MiB"
    if jax_peaks:
        line += f", JAX {max(jax_peaks) / 1024:.0f} MiB"
    print(line)
    if args.rounds > 1:
        for peer, v in ratios.items():
            if v:
                print(f"ratio to {peer} over {len(v)} rounds: median {statistics.median(v):.2f}, "
                      f"range {min(v):.2f}–{max(v):.2f}")
    report_work(args, statistics.median(our_times), statistics.median(faster_times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
