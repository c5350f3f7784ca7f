#!/usr/bin/env bash
# Burda, Grosse & Salakhutdinov (2015), Table 1, from one command: trains VAE and IWAE at
# k = 1, 5, 50 with `vae-cli train --preset burda` (one stochastic layer) or `--preset burda2`
# (two, with PRESET=burda2), evaluates each with 5,000 importance samples over the 10,000 test
# images, and prints the table.
#
#   scripts/burda_table.sh short          # 27 epochs per cell (the schedule compressed), 6 cells
#   scripts/burda_table.sh full           # 3,280 epochs: the paper's protocol (days on 2 cores)
#   CELLS="vae-k1 iwae-k5" scripts/burda_table.sh full   # only some cells
#   PRESET=burda2 scripts/burda_table.sh short           # the two-stochastic-layer rows
#
# Safe to stop and start again: a cell with a finished evaluation is skipped, a cell with a
# checkpoint is resumed (`--resume` continues the learning-rate schedule exactly), so run it
# under nohup and simply run it again after an interruption. Two cells train at a time, one
# core each (JOBS=1 for one). Results: runs/burda-<protocol>/<cell>/{metrics.csv,eval.json},
# and the table of every begun cell in runs/<preset>-<protocol>/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."

protocol=${1:-short}
case "$protocol" in
  short) epochs=${EPOCHS:-27} ;;
  full) epochs=3280 ;;
  *) echo "usage: $0 short|full" >&2; exit 2 ;;
esac
preset=${PRESET:-burda}
case "$preset" in
  burda | burda2) ;;
  *) echo "PRESET must be burda or burda2" >&2; exit 2 ;;
esac
root=runs/$preset-$protocol
cells=${CELLS:-"vae-k50 iwae-k50 vae-k1 iwae-k1 vae-k5 iwae-k5"}
jobs=${JOBS:-2}
mkdir -p "$root"
# VAE_CLI: a vae-cli binary to use instead of building this checkout's.
if [ -z "${VAE_CLI:-}" ]; then cargo build --release -q -p vae-cli; fi
cli=${VAE_CLI:-target/release/vae-cli}

# One cell: train (or resume) to the planned epochs, then evaluate once.
cell() {
  local objective=elbo k=${1#*-k} out=$root/$1
  [ "${1%-k*}" = iwae ] && objective=iwae
  if [ ! -f "$out/eval.json" ]; then
    local resume=()
    [ -f "$out/checkpoint.safetensors" ] && resume=(--resume)
    "$cli" train --preset "$preset" --objective "$objective" --k "$k" --epochs "$epochs" \
      --threads 1 --out "$out" "${resume[@]}" >> "$out.log" 2>&1
    # Stopped early (Ctrl-C saves a checkpoint and exits cleanly): evaluate only a finished run.
    [ "$(($(wc -l < "$out/metrics.csv") - 1))" -ge "$epochs" ] || return 0
    "$cli" eval --checkpoint "$out/model.safetensors" --binarize dynamic --iw-samples 5000 \
      --active-units --json --threads 1 > "$out/eval.json.tmp" 2>> "$out.log"
    mv "$out/eval.json.tmp" "$out/eval.json"
  fi
}

# Cells in `jobs` queues, each queue one after another.
for q in $(seq 0 $((jobs - 1))); do
  (
    i=0
    for c in $cells; do
      if [ $((i % jobs)) -eq "$q" ]; then cell "$c"; fi
      i=$((i + 1))
    done
  ) &
done
wait

paper() {
  case $preset-$1 in
    burda-vae-k1 | burda-iwae-k1) echo 86.76 ;; burda-vae-k5) echo 86.47 ;; burda-iwae-k5) echo 85.54 ;;
    burda-vae-k50) echo 86.35 ;; burda-iwae-k50) echo 84.78 ;;
    burda2-vae-k1 | burda2-iwae-k1) echo 85.33 ;; burda2-vae-k5) echo 85.01 ;; burda2-iwae-k5) echo 83.89 ;;
    burda2-vae-k50) echo 84.78 ;; burda2-iwae-k50) echo 82.90 ;;
  esac
}
# The table lists every cell of this protocol that has begun, whichever CELLS this call ran: a
# finished one with its evaluation, an unfinished one with how far it got.
{
  echo "| cell | epochs | Burda et al. −log p(x) | ours −log p(x) | active units | train time (s) |"
  echo "|---|---|---|---|---|---|"
  for c in vae-k1 iwae-k1 vae-k5 iwae-k5 vae-k50 iwae-k50; do
    m=$root/$c/metrics.csv f=$root/$c/eval.json
    [ -f "$m" ] || continue
    secs=$(awk -F, 'NR > 1 { s += $8 } END { printf "%.0f", s }' "$m")
    done_epochs=$(($(wc -l < "$m") - 1))
    if [ -f "$f" ]; then
      nll=$(python3 -c "import json;print('%.2f' % json.load(open('$f'))['nll'])")
      # Per layer (h1 + h2) for the two-layer model.
      au=$(python3 -c "import json;d=json.load(open('$f'));print(' + '.join(str(l['active_units']) for l in d['layers']) if 'layers' in d else d['active_units'])")
    else
      nll="(training: $done_epochs of $epochs epochs)" au="—"
    fi
    echo "| $c | $done_epochs | $(paper "$c") | $nll | $au | $secs |"
  done
} | tee "$root/table.md.tmp"
mv "$root/table.md.tmp" "$root/table.md"
