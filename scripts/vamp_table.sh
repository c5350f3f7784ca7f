#!/usr/bin/env bash
# The VampPrior against N(0, I) under one protocol (Tomczak & Welling 2018, Table 2's "VAE" rows
# on dynamically binarized MNIST: 85.57 nats with 500 pseudo-inputs, 88.56 with N(0, I)): the
# same MLP (784-300-300, ReLU, J = 40), batch 100, Adam 5e-4, the KL warmed up over 100 epochs,
# a fixed number of epochs (theirs stop early, at most 2,000), then −log p(x) with K = 5000
# and K = 128 importance samples over the 10,000 test images.
#
#   scripts/vamp_table.sh                 # 500 epochs per cell, one cell after the other
#   EPOCHS=50 scripts/vamp_table.sh       # a shorter protocol, in runs/vamp-50/
#   CELLS=vamp scripts/vamp_table.sh      # one cell
#
# Safe to stop and start again, like scripts/burda_table.sh: a cell with a finished evaluation is
# skipped, a cell with a checkpoint resumed. Results: runs/vamp-<epochs>/<cell>/{metrics.csv,
# eval.json, eval-k128.json}, and the table in runs/vamp-<epochs>/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."

epochs=${EPOCHS:-500}
root=runs/vamp-$epochs
cells=${CELLS:-"normal vamp"}
mkdir -p "$root"
# VAE_CLI: a vae-cli binary to use instead of building this checkout's.
if [ -z "${VAE_CLI:-}" ]; then cargo build --release -q -p vae-cli; fi
cli=${VAE_CLI:-target/release/vae-cli}

. scripts/lib/cells.sh

# One cell: train (or resume) to the planned epochs, then evaluate once with each K.
cell() {
  local prior=()
  [ "$1" = vamp ] && prior=(--prior vamp --pseudo-inputs 500)
  train_cell "$1" --hidden 300,300 --latent-dim 40 --batch-size 100 --lr 5e-4 --binarize dynamic \
    --kl-warmup 100 "${prior[@]}" || return 0
  evaluate_cell "$1"
}

for c in $cells; do cell "$c"; done

{
  echo "| prior | epochs | Tomczak & Welling −log p(x) | ours, K = 5000 | ours, K = 128 | active units | train time (s) |"
  echo "|---|---|---|---|---|---|---|"
  table_row normal 88.56
  table_row vamp 85.57
} | tee "$root/table.md.tmp"
mv "$root/table.md.tmp" "$root/table.md"
