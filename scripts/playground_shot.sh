#!/bin/bash
# The README's picture of the playground: a run of the page's default model with a 2-D latent
# space (20 epochs on all 60,000 images, pausing after every epoch), held after epoch EPOCH,
# taken by headless Chromium. Needs a release build and Debian's chromium.
#
#   scripts/playground_shot.sh [OUT.png] [EPOCH]
set -euo pipefail
out=${1:-docs/img/playground.png}
epoch=${2:-6}
port=${PORT:-8777}
cli=${VAE_CLI:-target/release/vae-cli}
runs=$(mktemp -d)
"$cli" serve --runs "$runs" --port "$port" > "$runs/serve.log" 2>&1 &
server=$!
trap 'kill -INT $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$runs"' EXIT
until curl -sf "http://127.0.0.1:$port/api/status" > /dev/null; do sleep 0.2; done
token=$(curl -s "http://127.0.0.1:$port/" | grep -o 'const TOKEN = "[0-9a-f]*' | cut -d'"' -f2)
post() {
  curl -sf -X POST -H "X-Playground-Token: $token" -H "Content-Type: application/json" \
    "http://127.0.0.1:$port/api/$1" -d "${2:-{\}}" > /dev/null
}
state() { curl -s "http://127.0.0.1:$port/api/status" | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"]*\).*/\1/p"; }
post start '{"family":"vae","latent-dim":2,"hidden":"400","epochs":20,"train-limit":60000,"test-limit":10000,"hold":true}'
for ((e = 1; e <= epoch; e++)); do
  until [ "$(state state)" = paused ] && [ "$(state epochs_done)" = "$e" ]; do sleep 0.2; done
  [ "$e" -lt "$epoch" ] && post resume
done
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run \
  --window-size=1400,1000 --virtual-time-budget=8000 --screenshot="$out" "http://127.0.0.1:$port/" 2> /dev/null
echo "wrote $out (the run paused after epoch $epoch)"
