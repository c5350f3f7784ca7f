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

# One cell: train (or resume) to the planned epochs, then evaluate once with each K.
cell() {
  local out=$root/$1 flow=()
  [ "$1" = iaf ] && flow=(--flow iaf --flow-depth 2 --flow-width 320)
  [ -f "$out/eval.json" ] && return 0
  local resume=()
  [ -f "$out/checkpoint.safetensors" ] && resume=(--resume)
  "$cli" train --model resnet --feature-maps 16,32,32 --latent-dim 32 --activation elu \
    --binarize dynamic --optimizer adamax --lr 0.002 --batch-size 16 --free-bits 0.25 \
    --polyak 0.999 --epochs "$epochs" "${flow[@]}" --threads 1 --out "$out" "${resume[@]}" >> "$out.log" 2>&1
  # Stopped early (Ctrl-C saves a checkpoint and exits cleanly): evaluate only a finished run.
  [ "$(($(wc -l < "$out/metrics.csv") - 1))" -ge "$epochs" ] || return 0
  for k in 128 5000; do
    "$cli" eval --checkpoint "$out/model.safetensors" --binarize dynamic --iw-samples "$k" \
      --active-units --json --threads 1 > "$out/eval-k$k.json.tmp" 2>> "$out.log"
    mv "$out/eval-k$k.json.tmp" "$out/eval-k$k.json"
  done
  # The weights themselves (the checkpoint) beside their average (the model file), at K = 128:
  # whether the average helped.
  "$cli" eval --checkpoint "$out/checkpoint.safetensors" --binarize dynamic --iw-samples 128 \
    --json --threads 1 > "$out/eval-weights-k128.json.tmp" 2>> "$out.log"
  mv "$out/eval-weights-k128.json.tmp" "$out/eval-weights-k128.json"
  cp "$out/eval-k5000.json" "$out/eval.json.tmp" && mv "$out/eval.json.tmp" "$out/eval.json"
}

for c in $cells; do cell "$c"; done

{
  echo "| q | epochs | Kingma et al. −log p(x) | ours, K = 5000 | ours, K = 128 | active units | train time (s) |"
  echo "|---|---|---|---|---|---|---|"
  for c in diag iaf; do
    m=$root/$c/metrics.csv
    [ -f "$m" ] || continue
    secs=$(awk -F, 'NR > 1 { s += $8 } END { printf "%.0f", s }' "$m")
    done_epochs=$(($(wc -l < "$m") - 1))
    paper=81.08
    [ "$c" = iaf ] && paper=79.77
    if [ -f "$root/$c/eval.json" ]; then
      read -r k5000 k128 au < <(python3 -c "import json
a, b = (json.load(open('$root/$c/eval-k%d.json' % k)) for k in (5000, 128))
print('%.2f %.2f %s' % (a['nll'], b['nll'], a['active_units']))")
    else
      k5000="(training: $done_epochs of $epochs epochs)" k128="—" au="—"
    fi
    echo "| $c | $done_epochs | $paper | $k5000 | $k128 | $au | $secs |"
  done
} | tee "$root/table.md.tmp"
mv "$root/table.md.tmp" "$root/table.md"
