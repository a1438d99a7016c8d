#!/usr/bin/env bash
# End-to-end load comparison on loopback, every server in the same run:
# bare hyper (the transport limit), ours (ricloud_webhook_hyper::serve) with
# an `Arc<Event>` handler and with a typed `Task` handler, and the reference
# receiver (ricloud-py 3.2.0's Flask app, as its `ricloud event listen` runs
# it). 1 KiB `task.succeeded` events over keep-alive connections.
#
# Usage: scripts/bench.sh
# Environment (all optional):
#   DURATION=10s WARMUP=2s CONNECTIONS=64   the load of each run
#   ROUNDS=5     bare and ours run this many times, alternating; the table
#                shows each one's median run by req/s, and each ratio to bare
#                is the median of the rounds' ratios (a round's runs are
#                seconds apart, so the machine's drift cancels out)
#   PIN=1        servers on CPU 0, load generator on CPU 1 (taskset); 0 to share
#   REFERENCE=1  run the Python reference (installs ricloud-py in a venv); 0 to skip
#
# Results go to bench-results/<timestamp>/ (git-ignored): one JSON line per
# run and summary.md. Nothing in CI runs this script.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-5}
PIN=${PIN:-1}
REFERENCE=${REFERENCE:-1}
SECRET="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export RICLOUD_WEBHOOK_SECRET="$SECRET"

OUT="$ROOT/bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
BIN="$ROOT/bench/target/release"

SERVER_CPU=()
LOAD_CPU=()
if [[ "$PIN" == 1 ]] && command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SERVER_CPU=(taskset -c 0)
    LOAD_CPU=(taskset -c 1)
fi

echo "building bench/ (release)..."
cargo build --release --quiet --manifest-path bench/Cargo.toml

SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap stop_server EXIT

# start_server LABEL ARGS...: bench-server prints the address it bound.
start_server() {
    local label=$1
    shift
    "${SERVER_CPU[@]}" "$BIN/bench-server" "$@" --addr 127.0.0.1:0 \
        >"$OUT/$label.addr" 2>"$OUT/$label.server.log" &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        [[ -s "$OUT/$label.addr" ]] && break
        sleep 0.05
    done
    ADDR=$(head -n1 "$OUT/$label.addr")
    [[ -n "$ADDR" ]] || { echo "bench-server $label did not start" >&2; exit 1; }
}

# loadgen LABEL URL: appends the run's JSON line, with the server's peak RSS.
loadgen() {
    local label=$1 url=$2
    "${LOAD_CPU[@]}" "$BIN/loadgen" --url "$url" --label "$label" \
        --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" >"$OUT/$label.out"
    head -n1 "$OUT/$label.out"
    local peak
    peak=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
    tail -n1 "$OUT/$label.out" | python3 -c 'import json,sys
d = json.load(sys.stdin); d["server_peak_rss_kib"] = int(sys.argv[1]); print(json.dumps(d))' "$peak" \
        >>"$OUT/results.jsonl"
}

for round in $(seq 1 "$ROUNDS"); do
    for server in "bare:--mode bare" "ours-event:--mode ours --handler event" "ours-task:--mode ours --handler task"; do
        label=${server%%:*}
        echo "== $label (round $round of $ROUNDS)"
        # shellcheck disable=SC2086
        start_server "$label" ${server#*:}
        loadgen "$label" "http://$ADDR/webhooks"
        stop_server
    done
done

if [[ "$REFERENCE" == 1 ]]; then
    echo "== reference (ricloud-py 3.2.0, Flask dev server)"
    VENV="$ROOT/.venv-interop"
    if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("ricloud") != "3.2.0")' 2>/dev/null; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet "ricloud==3.2.0" "flask==2.0.3" "werkzeug<2.1"
    fi
    PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # What `ricloud event listen 127.0.0.1 PORT` does after reading its
    # config file (ricloud/cli.py): set the secret and delta, app.run().
    "${SERVER_CPU[@]}" "$VENV/bin/python" -c '
import sys
from ricloud.webhooks import app
app.config["WEBHOOK_SECRET"] = sys.argv[1]
app.config["WEBHOOK_DELTA"] = 600
app.config["EVENTS_ONLY"] = ()
app.config["EVENTS_EXCLUDE"] = ()
app.run(host="127.0.0.1", port=int(sys.argv[2]), debug=False)
' "$SECRET" "$PORT" >"$OUT/reference.stdout" 2>"$OUT/reference.server.log" &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.05
    done
    loadgen reference "http://127.0.0.1:$PORT/webhooks"
    stop_server
fi

python3 - "$OUT/results.jsonl" >"$OUT/summary.md" <<'EOF'
import json, sys

every = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    every.setdefault(d["label"], []).append(d)
runs = {label: sorted(ds, key=lambda d: d["rps"])[len(ds) // 2] for label, ds in every.items()}

print("| server | req/s (median run) | runs | p50 ms | p99 ms | peak RSS MiB |")
print("|---|---|---|---|---|---|")
for label in ["bare", "ours-event", "ours-task", "reference"]:
    d = runs.get(label)
    if d:
        each = ", ".join(f"{r['rps']:.0f}" for r in every[label])
        print(f"| {label} | {d['rps']:.0f} | {each} | {d['p50_us'] / 1000:.2f} | {d['p99_us'] / 1000:.2f}"
              f" | {d['server_peak_rss_kib'] / 1024:.1f} |")
print()
print("| bound | value | target | |")
print("|---|---|---|---|")
def check(name, value, target, ok):
    print(f"| {name} | {value} | {target} | {'met' if ok else 'MISSED'} |")
bare, ref = runs.get("bare"), runs.get("reference")
def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]
for name, floor in [("ours-event", 0.7), ("ours-task", 0.6)]:
    mine = runs.get(name)
    if not (mine and bare):
        continue
    pairs = list(zip(every[name], every["bare"]))
    ratios = [m["rps"] / b["rps"] for m, b in pairs]
    each = ", ".join(f"{x:.2f}" for x in ratios)
    r = median(ratios)
    check(f"{name} / bare req/s, median of the rounds ({each})", f"{r:.2f}x", f">= {floor}x", r >= floor)
    p = median([m["p99_us"] / b["p99_us"] for m, b in pairs])
    check(f"{name} / bare p99, median of the rounds", f"{p:.2f}x", "<= 2x", p <= 2.0)
    if ref:
        r = mine["rps"] / ref["rps"]
        check(f"{name} / reference req/s", f"{r:.0f}x", ">= 40x", r >= 40)
EOF
echo
cat "$OUT/summary.md"
echo
echo "results in $OUT"
