#!/usr/bin/env bash
# Kingma et al.'s (2016) MNIST rows on their ResNet VAE: a diagonal Gaussian q (81.08 nats) and
# q with an IAF of depth 2 and width 320 (79.77), on dynamically binarized MNIST, under the
# training of the authors' released code (github.com/openai/iaf): Adamax at 0.002, batches of
# 16, free bits of 0.25 nats per latent unit, the weights' running average (decay 0.999)
# evaluated; then −log p(x) with K = 5000 and K = 128 importance samples over the 10,000 test
# images (docs/DENSITY.md, "The ResNet VAE and its flow").
#
#   scripts/resnet_table.sh                # 1,000 epochs per cell, one cell after the other
#   EPOCHS=100 scripts/resnet_table.sh     # a shorter protocol, in runs/resnet-100/
#   CELLS=iaf scripts/resnet_table.sh      # one cell
#
# Safe to stop and start again, like scripts/vamp_table.sh: a cell with a finished evaluation
# is skipped, a cell with a checkpoint resumed. Results: runs/resnet-<epochs>/<cell>/
# {metrics.csv, eval.json, eval-k128.json, eval-weights-k128.json (the weights themselves, not
# their average)}, and the table in runs/resnet-<epochs>/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."

epochs=${EPOCHS:-1000}
root=runs/resnet-$epochs
cells=${CELLS:-"diag iaf"}
mkdir -p "$root"
# VAE_CLI: a vae-cli binary to use instead of building this checkout's.
if [ -z "${VAE_CLI:-}" ]; then cargo build --release -q -p vae-cli; fi
cli=${VAE_CLI:-target/release/vae-cli}

. scripts/lib/cells.sh

# One cell: train (or resume) to the planned epochs, then evaluate once with each K, and the
# weights themselves (the checkpoint) beside their average (the model file) at K = 128:
# whether the average helped.
cell() {
  local flow=()
  [ "$1" = iaf ] && flow=(--flow iaf --flow-depth 2 --flow-width 320)
  train_cell "$1" --model resnet --feature-maps 16,32,32 --latent-dim 32 --activation elu \
    --binarize dynamic --optimizer adamax --lr 0.002 --batch-size 16 --free-bits 0.25 \
    --polyak 0.999 "${flow[@]}" || return 0
  eval_json "$1" eval-weights-k128.json checkpoint.safetensors --iw-samples 128
  evaluate_cell "$1"
}

for c in $cells; do cell "$c"; done

{
  echo "| q | epochs | Kingma et al. −log p(x) | ours, K = 5000 | ours, K = 128 | active units | train time (s) |"
  echo "|---|---|---|---|---|---|---|"
  table_row diag 81.08
  table_row iaf 79.77
} | tee "$root/table.md.tmp"
mv "$root/table.md.tmp" "$root/table.md"
