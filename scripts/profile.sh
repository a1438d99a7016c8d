#!/usr/bin/env bash
# Where the endpoint's time goes: instruction counts per request with
# valgrind's callgrind, for bench-server under a light load from loadgen.
#
# Usage: scripts/profile.sh [bare|verify|parse|ours|ours-event|ours-borrowed] [seconds]
#
# Prints the requests served, the instructions per request, and the
# functions with the most inclusive instructions per request; the full
# profile is left in bench-results/profile-<mode>.callgrind for
# `callgrind_annotate` or kcachegrind.
#
# Caveat: valgrind does not emulate the SHA extensions, so sha2 falls back
# to its portable code under callgrind (about 76k instructions per 1 KiB
# request instead of about 1 us on the CPU's SHA-NI). Compare the other
# lines, and take the verification cost from the criterion benchmarks.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MODE=${1:-ours-event}
SECONDS_LOAD=${2:-10}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }

# shellcheck source=scripts/servers.sh
source "$ROOT/scripts/servers.sh"
server_args "$MODE" || exit 2

cargo build --release -p ricloud-webhook-bench --bins
BIN="$ROOT/target/release"
OUT="$ROOT/bench-results"
mkdir -p "$OUT"
PROFILE="$OUT/profile-$MODE.callgrind"
export RICLOUD_WEBHOOK_SECRET="profile-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

ADDR_FILE=$(mktemp)
LOAD_FILE=$(mktemp)
trap 'rm -f "$ADDR_FILE" "$LOAD_FILE"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$PROFILE" \
    "$BIN/bench-server" "${SERVER_ARGS[@]}" --threads 1 --log info \
    >"$ADDR_FILE" 2>"$OUT/profile-$MODE.log" &
SERVER=$!
ADDR=$(server_address "$ADDR_FILE" 30)
[[ -n "$ADDR" ]] || { echo "bench-server did not start under valgrind" >&2; kill "$SERVER"; exit 1; }
# Few connections: under valgrind the server runs some 50 times slower.
"$BIN/loadgen" --url "http://$ADDR/webhooks" --connections 8 --duration "${SECONDS_LOAD}s" \
    --warmup 1s --deliveries 100000 --label "$MODE" >"$LOAD_FILE"
kill -INT "$SERVER"
wait "$SERVER" || true

REQUESTS=$(tail -n1 "$LOAD_FILE" | python3 -c 'import json, sys; print(json.load(sys.stdin)["completed_incl_warmup"])')
TOTAL=$(awk '/I +refs:/ { gsub(",", "", $NF); print $NF }' "$OUT/profile-$MODE.log")
echo "$MODE: $REQUESTS requests, $((TOTAL / REQUESTS)) instructions per request (start-up included)"
echo "inclusive instructions per request, by function (top 40 of this crate's, hyper's, serde's and the allocator's):"
callgrind_annotate --inclusive=yes "$PROFILE" 2>/dev/null |
    grep -E '^ *[0-9,]+ ' |
    grep -E 'ricloud|hyper|serde|malloc|free|tracing|tokio::time|http::' |
    sed -E 's/\( *[0-9.]+%\)//' |
    awk -v n="$REQUESTS" '{ c = $1; gsub(",", "", c); $1 = ""; printf "%9.0f %s\n", c / n, $0 }' |
    sed -E 's|/root/.cargo/registry/src/[^/]+/||; s|/rustc/[0-9a-f]+/||; s|\[[^]]*\]$||' |
    head -n 40 | cut -c1-200
echo "full profile: $PROFILE"
