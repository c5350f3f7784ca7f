#!/usr/bin/env python3
"""Do the gradient checks catch a wrong backward? Breaks one backward at a time (a sign, a
factor of 2, a transposed or swapped operand, a dropped term), runs the autodiff crate's tests,
and counts the mutations they catch. Every file is restored afterwards, whatever happens.

    python3 scripts/mutation_check.py            # all mutations, about 30 s each
    python3 scripts/mutation_check.py relu tanh  # only those whose name contains a word

A mutation the tests do not catch is printed as SURVIVED, with what it changed, and the script
exits with status 1.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "crates", "autodiff", "src")

# (name, file, the exact text of the correct backward, the broken text)
MUTATIONS = [
    ("sub: db's sign", "elementwise.rs", "map(&dy, |d| -d).into(), b_shape", "map(&dy, |d| d).into(), b_shape"),
    ("mul: da from a, not b", "elementwise.rs", 'broadcast_map("mul_backward", dy, b, |d, b| d * b)',
     'broadcast_map("mul_backward", dy, b, |d, b| d * b * b)'),
    ("mul: db without a", "elementwise.rs", "map2(dy, a, |d, a| d * a).into(), b.shape()",
     "map2(dy, a, |d, _a| d).into(), b.shape()"),
    ("div: db's square", "elementwise.rs", "-d * a / (b * b)", "-d * a / b"),
    ("neg: sign", "elementwise.rs", "map_into(dy, |d| -d)", "map_into(dy, |d| d)"),
    ("scale: factor", "elementwise.rs", "map_into(dy, |d| c * d)", "map_into(dy, |d| d)"),
    ("log: 1/x", "elementwise.rs", "|d, x| d / x)", "|d, x| d * x)"),
    ("sqrt: factor of 2", "elementwise.rs", "d / (2.0 * y)", "d / y"),
    ("square: factor of 2", "elementwise.rs", "|d, x| 2.0 * x * d)", "|d, x| x * d)"),
    ("relu: the mask", "elementwise.rs", "if x > 0.0 { d } else { 0.0 }", "if x >= 0.0 { d } else { d }"),
    ("leaky relu: alpha", "elementwise.rs", "if x > 0.0 { d } else { alpha * d }", "if x > 0.0 { d } else { d }"),
    ("sigmoid: 1 − y", "elementwise.rs", "d * y * (1.0 - y)", "d * y"),
    ("tanh: y²", "elementwise.rs", "d * (1.0 - y * y)", "d * (1.0 - y)"),
    ("matmul: da with b untransposed", "matmul.rs", "let b_for_da = if b_transposed { b } else { b.reversed_axes() };",
     "let b_for_da = if b_transposed { b.reversed_axes() } else { b };"),
    ("matmul: db doubled", "matmul.rs", '(false, None) => gemm("matmul_backward", a.reversed_axes(), dy),',
     '(false, None) => gemm("matmul_backward", a.reversed_axes(), dy) * 2.0,'),
    ("mean: 1/n", "reduce.rs", "/ x.len() as f32;", "/ 1.0;"),
    ("mean_axis: 1/n", "reduce.rs", "sum_axis_backward(x, axis, dy) / n", "sum_axis_backward(x, axis, dy)"),
    ("log_sum_exp: the softmax", "reduce.rs", "d * shifted.exp()", "d * x.exp()"),
    ("bce: σ(l) − x", "loss.rs", "sigmoid(l) - x\n", "sigmoid(l) + x\n"),
    ("gaussian nll: 1/σ²", "loss.rs", "per_example_grad(dy, mean, target, |m, x| (m - x) * inv_var)",
     "per_example_grad(dy, mean, target, |m, x| (x - m) * inv_var)"),
    ("kl: dmu", "loss.rs", "let dmu = per_example_grad(dy, mu, mu, |m, _| m);",
     "let dmu = per_example_grad(dy, mu, mu, |m, _| 2.0 * m);"),
    ("kl: dlogvar's ½", "loss.rs", "0.5 * (lv.exp() - 1.0)", "(lv.exp() - 1.0)"),
    ("dlogistic: ∂s's Δ term", "loss.rs", "delta / delta.exp_m1()", "delta * delta.exp_m1()"),
    ("dlogistic: ∂m at k = 255", "loss.rs", "(softplus(b), -inv * sb, -b * sb)", "(softplus(b), inv * sb, -b * sb)"),
]


def run_tests():
    r = subprocess.run(["cargo", "test", "-q", "-p", "vae-autodiff"], cwd=ROOT, capture_output=True, text=True)
    return r.returncode == 0


def main():
    words = sys.argv[1:]
    chosen = [m for m in MUTATIONS if not words or any(w in m[0] for w in words)]
    print("the unmutated tests pass first:", "yes" if run_tests() else "NO (fix them before mutating)", flush=True)
    caught, survived = 0, []
    for name, file, good, bad in chosen:
        path = os.path.join(SRC, file)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if text.count(good) != 1:
            print(f"  {name}: the text to mutate occurs {text.count(good)} times in {file}; the table is stale")
            survived.append(name)
            continue
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(good, bad))
            passed = run_tests()
        finally:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        if passed:
            survived.append(name)
            print(f"  SURVIVED {name}: {good!r} -> {bad!r}", flush=True)
        else:
            caught += 1
            print(f"  caught   {name}", flush=True)
    print(f"{caught} of {len(chosen)} mutations caught by the gradient checks")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
