#!/usr/bin/env bash
# Where the endpoint's time goes at full speed: `perf record -e cpu-clock`
# samples of bench-server under the same load as scripts/bench.sh (server
# pinned to CPU 0, load generator to CPU 1, 64 connections, distinct
# deliveries). Complements scripts/profile.sh, whose instruction counts
# cannot show cache misses or SHA-NI: this machine's VM has no hardware
# counters, so the samples are timer-driven and count time, not events.
#
# Usage: scripts/sample.sh [bare|verify|parse|ours|ours-event|ours-borrowed] [seconds]
#
# Prints the requests served, the share of samples by binary (the server,
# libc, the kernel) and the symbols with the most samples; the recording
# is left in bench-results/sample-<mode>.perf for `perf report -i`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODE=${1:-ours-event}
SECONDS_LOAD=${2:-10}
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 2; }

# shellcheck source=scripts/servers.sh
source "$ROOT/scripts/servers.sh"
server_args "$MODE" || exit 2

cargo build --release -p ricloud-webhook-bench --bins
BIN="$ROOT/target/release"
OUT="$ROOT/bench-results"
mkdir -p "$OUT"
RECORDING="$OUT/sample-$MODE.perf"
export RICLOUD_WEBHOOK_SECRET="sample-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

SERVER_CPU=()
LOAD_CPU=()
if command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SERVER_CPU=(taskset -c 0)
    LOAD_CPU=(taskset -c 1)
fi

ADDR_FILE=$(mktemp)
LOAD_FILE=$(mktemp)
LOAD_LOG=$(mktemp)
trap 'rm -f "$ADDR_FILE" "$LOAD_FILE" "$LOAD_LOG"' EXIT
"${SERVER_CPU[@]}" "$BIN/bench-server" "${SERVER_ARGS[@]}" --addr 127.0.0.1:0 --log info \
    >"$ADDR_FILE" 2>"$OUT/sample-$MODE.log" &
SERVER=$!
ADDR=$(server_address "$ADDR_FILE" 10)
[[ -n "$ADDR" ]] || { echo "bench-server did not start" >&2; kill "$SERVER"; exit 1; }
# The load generator signs its deliveries first (several seconds); sample
# only while it sends, from its warm-up on.
"${LOAD_CPU[@]}" "$BIN/loadgen" --url "http://$ADDR/webhooks" --connections 64 \
    --duration "${SECONDS_LOAD}s" --warmup 1s --deliveries 1800000 --label "$MODE" >"$LOAD_FILE" 2>"$LOAD_LOG" &
LOAD=$!
for _ in $(seq 1 600); do
    grep -q "ready" "$LOAD_LOG" && break
    sleep 0.05
done
perf record -F 4999 -e cpu-clock -p "$SERVER" -o "$RECORDING" -- sleep "$((SECONDS_LOAD + 1))" \
    >/dev/null 2>&1
wait "$LOAD"
kill -INT "$SERVER"
wait "$SERVER" || true

head -n1 "$LOAD_FILE"
SAMPLES=$(perf script -i "$RECORDING" -F ip 2>/dev/null | wc -l)
REQUESTS=$(tail -n1 "$LOAD_FILE" | python3 -c 'import json, sys; print(json.load(sys.stdin)["completed_incl_warmup"])')
python3 -c "import sys; s, r = int(sys.argv[1]), int(sys.argv[2]); print(f'{s} samples at 4999 Hz, about {s / 4999 / r * 1e6:.1f} us of server CPU per request (warm-up included)')" \
    "$SAMPLES" "$REQUESTS"
echo "samples by binary:"
perf report -i "$RECORDING" --no-children --sort dso -g none 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -n 6
echo "samples by symbol (top 30):"
perf report -i "$RECORDING" --no-children --sort sym -g none 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -n 30 | cut -c1-160
echo "recording: $RECORDING"
