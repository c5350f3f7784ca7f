#!/usr/bin/env python3
"""The JAX side of benches/compare_pytorch.py: the same models and protocols, each training
step one function compiled by XLA for the CPU (`jax.jit`, Adam from optax).

    python3 benches/jax_side.py --model mlp|burda [--objective elbo|iwae] [--k K] [--epochs E]

Prints one line per epoch as the other sides do, then a last line `JSON {...}` with every
epoch's (seconds, test loss), which compare_pytorch.py reads. XLA compiles the step and the
test pass before the first epoch starts, and that time is printed but not counted.
Threads: XLA's CPU backend uses every core it is given; the driver pins this process to
--threads cores with `taskset` when that is fewer than the machine's.

Install: pip install jax optax (into the same virtualenv as PyTorch, outside the repository).
"""

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_pytorch import read_idx  # noqa: E402  (the same MNIST reader as the other sides)


def linear(key, n_in, n_out):
    """PyTorch's nn.Linear initialization: weight and bias uniform in ±1/√n_in."""
    import jax

    kw, kb = jax.random.split(key)
    bound = 1.0 / math.sqrt(n_in)
    return {"w": jax.random.uniform(kw, (n_in, n_out), minval=-bound, maxval=bound),
            "b": jax.random.uniform(kb, (n_out,), minval=-bound, maxval=bound)}


def dense(p, x):
    return x @ p["w"] + p["b"]


def bce_with_logits(logits, x):
    """Σ over the last axis of softplus(l) − x·l, the Bernoulli negative log-likelihood."""
    import jax

    return (jax.nn.softplus(logits) - x * logits).sum(-1)


def mlp_model(key):
    """784-400-20 ReLU, Bernoulli: the default model of `vae-cli train`."""
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(key, 5)
    params = {"enc_fc1": linear(keys[0], 784, 400), "enc_mu": linear(keys[1], 400, 20),
              "enc_logvar": linear(keys[2], 400, 20), "dec_fc1": linear(keys[3], 20, 400),
              "dec_out": linear(keys[4], 400, 784)}

    def loss_sum(params, x, key):
        """Σ over the batch of the negative ELBO, closed-form KL."""
        h = jax.nn.relu(dense(params["enc_fc1"], x))
        mu, logvar = dense(params["enc_mu"], h), dense(params["enc_logvar"], h)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape)
        logits = dense(params["dec_out"], jax.nn.relu(dense(params["dec_fc1"], z)))
        kl = -0.5 * (1 + logvar - mu**2 - jnp.exp(logvar)).sum(-1)
        return (bce_with_logits(logits, x) + kl).sum()

    return params, loss_sum


def burda_model(key, train, objective, k):
    """Burda et al.'s 784-200-200-50 tanh model, output bias at the logit of the pixel means;
    the K-sample ELBO or the IWAE bound, with every density's normalizer."""
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(key, 7)
    params = {"enc1": linear(keys[0], 784, 200), "enc2": linear(keys[1], 200, 200),
              "enc_mu": linear(keys[2], 200, 50), "enc_logvar": linear(keys[3], 200, 50),
              "dec1": linear(keys[4], 50, 200), "dec2": linear(keys[5], 200, 200), "dec_out": linear(keys[6], 200, 784)}
    m = jnp.clip(jnp.asarray(train.mean(0)), 1e-3, 1 - 1e-3)
    params["dec_out"]["b"] = jnp.log(m / (1 - m))
    half_ln_2pi = 0.5 * math.log(2 * math.pi)

    def loss_sum(params, x, key):
        """Σ over the batch of the negative bound; x is binarized here from the grey levels."""
        kx, ke = jax.random.split(key)
        x = jax.random.bernoulli(kx, x).astype(jnp.float32)
        h = jnp.tanh(dense(params["enc2"], jnp.tanh(dense(params["enc1"], x))))
        mu, logvar = dense(params["enc_mu"], h), dense(params["enc_logvar"], h)
        eps = jax.random.normal(ke, (k,) + mu.shape)
        z = mu + jnp.exp(0.5 * logvar) * eps
        d = jnp.tanh(dense(params["dec2"], jnp.tanh(dense(params["dec1"], z))))
        log_px = -bce_with_logits(dense(params["dec_out"], d), x)
        log_pz = (-0.5 * z**2 - half_ln_2pi).sum(-1)
        log_qz = (-0.5 * eps**2 - 0.5 * logvar - half_ln_2pi).sum(-1)
        log_w = log_px + log_pz - log_qz  # [k, N]
        if objective == "iwae":
            return -(jax.scipy.special.logsumexp(log_w, 0) - math.log(k)).sum()
        return -log_w.mean(0).sum()

    return params, loss_sum


def peak_kb():
    """This process's peak resident memory in kB (VmHWM): unlike ru_maxrss, which a child
    forked from a large process (the driver, with PyTorch loaded) inherits, it starts afresh at
    exec."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["mlp", "burda"], required=True)
    p.add_argument("--objective", choices=["elbo", "iwae"], default="elbo")
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    try:
        import jax
        import jax.numpy as jnp
        import numpy as np
        import optax
    except ImportError as e:
        print(f"JAX is not installed here ({e}): pip install jax optax")
        return 3

    train = read_idx("train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0
    test = read_idx("t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0
    key = jax.random.PRNGKey(1)
    key, init = jax.random.split(key)
    if args.model == "mlp":
        params, loss_sum = mlp_model(init)
        batch, opt = 128, optax.adam(1e-3)
    else:
        params, loss_sum = burda_model(init, train, args.objective, args.k)
        batch, opt = 20, optax.adam(1e-3, eps=1e-4)
    state = opt.init(params)

    @jax.jit
    def step(params, state, x, key):
        loss, grads = jax.value_and_grad(lambda p: loss_sum(p, x, key) / x.shape[0])(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    test_sum = jax.jit(loss_sum)
    rng = np.random.default_rng(1)
    train_dev, test_dev = jnp.asarray(train), jnp.asarray(test)
    # Compile ahead of the clock, for every batch shape an epoch meets (a last, shorter batch
    # where the batch size does not divide 60,000), so that epochs time the training alone.
    t0 = time.perf_counter()
    for rows_in_batch in sorted({batch, len(train) % batch} - {0}):
        step.lower(params, state, train_dev[:rows_in_batch], key).compile()
    test_sum.lower(params, test_dev[:500], key).compile()
    print(f"  jax      compiled in {time.perf_counter() - t0:.2f} s (not counted)", flush=True)
    rows = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(train))
        for start in range(0, len(train), batch):
            key, sub = jax.random.split(key)
            params, state, loss = step(params, state, train_dev[order[start : start + batch]], sub)
        loss.block_until_ready()
        train_seconds = time.perf_counter() - t0
        total = 0.0
        for start in range(0, len(test), 500):
            key, sub = jax.random.split(key)
            total += float(test_sum(params, test_dev[start : start + 500], sub))
        rows.append((time.perf_counter() - t0, total / len(test)))
        print(f"  jax      epoch {epoch + 1}: {rows[-1][0]:6.2f} s ({train_seconds:.2f} s training), "
              f"test loss {rows[-1][1]:.2f}", flush=True)
    print("JSON " + json.dumps({"rows": rows, "jax": jax.__version__, "peak_kb": peak_kb()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
