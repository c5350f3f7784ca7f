#!/usr/bin/env bash
# Does a release binary built here run on other x86-64 CPUs, and give the same numbers?
#
# Builds `vae-cli` in release mode (no -C target-cpu: the kernels pick their SIMD level at run
# time), trains two short runs natively, at each SIMD level this CPU has (VAE_SIMD), and under
# QEMU's user-mode emulation of an AVX2 CPU without AVX-512 (-cpu Haswell) and of one without
# AVX at all (-cpu Nehalem), then compares every run's test loss with the native one.
#
#   scripts/portable_check.sh            # needs qemu-x86_64 (Debian: apt-get install qemu-user)
#
# Exits non-zero if a run fails or a test loss differs from the native one by 0.01 nats or more.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-x86_64 > /dev/null || { echo "qemu-x86_64 not found (Debian: apt-get install qemu-user)"; exit 1; }
cargo build --release --quiet -p vae-cli
bin=target/release/vae-cli
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# name, then train's flags: the default MLP (batch 128: 8 steps), Burda's model (batch 20,
# tanh, the thin-product tiles: 25 steps) and the conv model (the convolutions' implicit GEMM,
# two steps) on small subsets. QEMU emulates AVX2 slowly: on an Intel Xeon each -cpu Haswell
# run took 94-113 s (the MLP's and Burda's on twice these images; 56-57 s now), a third of
# CI's time.
runs=(
  "mlp|--epochs 1 --train-limit 1000 --test-limit 250"
  "burda|--preset burda --epochs 1 --train-limit 500 --test-limit 100"
  "conv|--model conv --epochs 1 --train-limit 256 --test-limit 128"
)
# The test loss: column test_loss of the last line of metrics.csv.
test_loss() { python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(r[-1]['test_loss'])" "$1/metrics.csv"; }
status=0
for run in "${runs[@]}"; do
  name=${run%%|*}; read -r -a flags <<< "${run#*|}"
  train() { local out=$work/$name-$1; shift; "$@" train --data datasets/mnist --out "$out" --threads 2 "${flags[@]}" > "$out.log" 2>&1 || { cat "$out.log"; return 1; }; test_loss "$out"; }
  native=$(train native "$bin")
  echo "$name: native test loss $native"
  for level in avx2 portable; do
    loss=$(VAE_SIMD=$level train "$level" "$bin")
    echo "$name: VAE_SIMD=$level $loss"
    python3 -c "import sys; sys.exit(abs($loss - $native) >= 0.01)" || { echo "  differs by 0.01 nats or more"; status=1; }
  done
  for cpu in Haswell Nehalem; do
    start=$SECONDS
    loss=$(train "$cpu" qemu-x86_64 -cpu "$cpu" "$bin")
    echo "$name: qemu-x86_64 -cpu $cpu $loss ($((SECONDS - start)) s emulated)"
    python3 -c "import sys; sys.exit(abs($loss - $native) >= 0.01)" || { echo "  differs by 0.01 nats or more"; status=1; }
  done
done
exit $status
