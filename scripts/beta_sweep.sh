#!/usr/bin/env bash
# β against posterior collapse: trains the default 784-400-20 VAE on binarized MNIST with
# several KL weights β, then evaluates each with the importance-weighted bound and counts its
# active units (Burda et al.'s A_j = Var_x E[z_j|x] > 0.01). Prints a Markdown table.
#
#   scripts/beta_sweep.sh                  # β = 0.5 1 2 4 8, 5 epochs each
#   BETAS="1 4" EPOCHS=10 scripts/beta_sweep.sh
#   BETAS=4 WARMUP=3 scripts/beta_sweep.sh   # with --kl-warmup 3 (runs named beta-4-warmup-3)
#
# Runs go to runs/beta-sweep/beta-<β>/ (eval.json beside each model). VAE_CLI: a vae-cli binary
# to use instead of building this checkout's.
set -euo pipefail
cd "$(dirname "$0")/.."
betas=${BETAS:-"0.5 1 2 4 8"}
epochs=${EPOCHS:-5}
warmup=${WARMUP:-0}
if [ -z "${VAE_CLI:-}" ]; then cargo build --release -q -p vae-cli; fi
cli=${VAE_CLI:-target/release/vae-cli}
out=runs/beta-sweep
mkdir -p "$out"
echo "| β | test loss (recon + β·KL) | KL | −log p(x), K = 500 | active units (of 20) |"
echo "|---|---|---|---|---|"
for b in $betas; do
  run=$out/beta-$b
  extra=()
  if [ "$warmup" != 0 ]; then run=$run-warmup-$warmup; extra=(--kl-warmup "$warmup"); fi
  [ -f "$run/metrics.csv" ] || "$cli" train --beta "$b" "${extra[@]}" --binarize dynamic --epochs "$epochs" --out "$run" > "$run.log" 2>&1
  [ -f "$run/eval.json" ] || "$cli" eval --checkpoint "$run/model.safetensors" --binarize dynamic \
    --iw-samples 500 --test-limit 2000 --active-units --json > "$run/eval.json"
  python3 - "$run" "$b" <<'PY'
import csv, json, sys
run, beta = sys.argv[1], sys.argv[2]
last = list(csv.DictReader(open(f"{run}/metrics.csv")))[-1]
ev = json.load(open(f"{run}/eval.json"))
print(f"| {beta} | {float(last['test_loss']):.2f} | {float(last['test_kl']):.2f} | {ev['nll']:.2f} | {ev['active_units']} |")
PY
done
