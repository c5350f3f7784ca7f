# The cells of a table of runs, shared by scripts/vamp_table.sh and scripts/resnet_table.sh:
# train (or resume) a run to its planned epochs, evaluate it once at K = 128 and K = 5000, and
# write its row. The functions read $cli (the vae-cli binary), $root (runs/<table>-<epochs>) and
# $epochs from the script that sources this file.

# train_cell NAME ARGS...: trains $root/NAME with `vae-cli train ARGS` for $epochs epochs,
# resuming from its checkpoint if it has one. Succeeds only when the run has all its epochs and
# is not evaluated yet (a run stopped early, with Ctrl-C, saves a checkpoint and exits cleanly).
train_cell() {
  local out=$root/$1
  shift
  [ -f "$out/eval.json" ] && return 1
  local resume=()
  [ -f "$out/checkpoint.safetensors" ] && resume=(--resume)
  "$cli" train "$@" --epochs "$epochs" --threads 1 --out "$out" "${resume[@]}" >> "$out.log" 2>&1
  [ "$(($(wc -l < "$out/metrics.csv") - 1))" -ge "$epochs" ]
}

# eval_json NAME JSON FILE ARGS...: `vae-cli eval --checkpoint $root/NAME/FILE ARGS --json` into
# $root/NAME/JSON, written whole or not at all.
eval_json() {
  local out=$root/$1 json=$2 file=$3
  shift 3
  "$cli" eval --checkpoint "$out/$file" --binarize dynamic --json --threads 1 "$@" \
    > "$out/$json.tmp" 2>> "$out.log"
  mv "$out/$json.tmp" "$out/$json"
}

# evaluate_cell NAME: −log p(x) of the model file with K = 128 and K = 5000 importance samples
# over the test images, with active units; eval.json (the K = 5000 one) last: it marks the cell
# done.
evaluate_cell() {
  for k in 128 5000; do
    eval_json "$1" "eval-k$k.json" model.safetensors --iw-samples "$k" --active-units
  done
  cp "$root/$1/eval-k5000.json" "$root/$1/eval.json.tmp" && mv "$root/$1/eval.json.tmp" "$root/$1/eval.json"
}

# table_row NAME PAPER: the cell's row, `| NAME | epochs | PAPER | K = 5000 | K = 128 | active
# units | train time (s) |`, or nothing if the cell has not started.
table_row() {
  local m=$root/$1/metrics.csv k5000 k128 au
  [ -f "$m" ] || return 0
  local secs done_epochs
  secs=$(awk -F, 'NR > 1 { s += $8 } END { printf "%.0f", s }' "$m")
  done_epochs=$(($(wc -l < "$m") - 1))
  if [ -f "$root/$1/eval.json" ]; then
    read -r k5000 k128 au < <(python3 -c "import json
a, b = (json.load(open('$root/$1/eval-k%d.json' % k)) for k in (5000, 128))
print('%.2f %.2f %s' % (a['nll'], b['nll'], a['active_units']))")
  else
    k5000="(training: $done_epochs of $epochs epochs)" k128="—" au="—"
  fi
  echo "| $1 | $done_epochs | $2 | $k5000 | $k128 | $au | $secs |"
}
