#!/usr/bin/env bash
# End-to-end load comparison on loopback: bare hyper (the transport limit),
# ours (ricloud_webhook_hyper::serve), and the reference receiver
# (ricloud-py 3.2.0's Flask app, run as its `ricloud event listen` runs it),
# then a memory test of ours under 100 concurrent 5 MiB uploads.
#
# Usage: scripts/bench.sh
# Environment (all optional):
#   DURATION=10s WARMUP=2s CONNECTIONS=64      the load of each run
#   UPLOAD_BYTES=5242880 UPLOAD_CONNECTIONS=100 UPLOAD_DURATION=10s
#   PIN=1        server on CPU 0, load generator on CPU 1 (taskset); PIN=0 to share all CPUs
#   REFERENCE=1  run the Python reference (needs python3 and PyPI or a venv); 0 to skip
#   SERVER_LOG=info  bench-server --log level (the receiver example logs at info)
#   MEMORY=1     run the upload memory test; 0 to skip it
#   LAYERS=1     also run the floor of any correct receiver, in layers: bare
#                hyper plus the signature check (verify), plus reading the
#                event (parse); 0 to skip them
#   ROUNDS=3     bare and ours are run this many times, alternating; the table
#                shows each one's median run (by req/s), which shrugs off a
#                burst from whatever else shares the machine
#
# Results go to bench-results/<timestamp>/ (git-ignored): one JSON line per
# run and summary.md with the table. Nothing in CI runs this script; the
# figures depend on the machine and on whatever else it is running.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-64}
UPLOAD_BYTES=${UPLOAD_BYTES:-5242880}
UPLOAD_CONNECTIONS=${UPLOAD_CONNECTIONS:-100}
UPLOAD_DURATION=${UPLOAD_DURATION:-10s}
PIN=${PIN:-1}
REFERENCE=${REFERENCE:-1}
SERVER_LOG=${SERVER_LOG:-info}
ROUNDS=${ROUNDS:-3}
MEMORY=${MEMORY:-1}
LAYERS=${LAYERS:-1}
SECRET="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export RICLOUD_WEBHOOK_SECRET="$SECRET"

OUT="$ROOT/bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
BIN="$ROOT/target/release"

SERVER_CPU=()
LOAD_CPU=()
if [[ "$PIN" == 1 ]] && command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SERVER_CPU=(taskset -c 0)
    LOAD_CPU=(taskset -c 1)
    echo "pinning: servers on CPU 0, loadgen on CPU 1"
else
    echo "not pinning: servers and loadgen share all $(nproc) CPUs"
fi

if pgrep -fa 'fuzz/target|cargo-fuzz|cargo fuzz' >/dev/null; then
    echo "WARNING: fuzzers are running on this machine; the figures will be lower and noisier" >&2
fi

echo "building (release)..."
cargo build --release -p ricloud-webhook-bench --bins

SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# Peak resident set size of a process, in KiB.
peak_rss_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# CPU time a process has used, in clock ticks: "user system".
cpu_ticks() {
    # Fields after the `(comm)` one, which may hold spaces: utime is the 12th.
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'
}
CLK_TCK=$(getconf CLK_TCK)

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

wait_for_port() {
    local port=$1
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "nothing listens on port $port" >&2
    return 1
}

# shellcheck source=scripts/servers.sh
source "$ROOT/scripts/servers.sh"

# start_bench_server LABEL SERVER: SERVER as scripts/servers.sh names it.
start_bench_server() {
    local label=$1
    server_args "$2"
    : >"$OUT/$label.addr"
    "${SERVER_CPU[@]}" "$BIN/bench-server" "${SERVER_ARGS[@]}" --addr 127.0.0.1:0 --log "$SERVER_LOG" \
        >"$OUT/$label.addr" 2>"$OUT/$label.server.log" &
    SERVER_PID=$!
    ADDR=$(server_address "$OUT/$label.addr" 10)
    [[ -n "$ADDR" ]] || { echo "bench-server $label did not start" >&2; exit 1; }
}

# loadgen LABEL URL [extra args]: appends the JSON line (with the server's
# peak RSS) to results.jsonl.
loadgen() {
    local label=$1 url=$2
    shift 2
    local idle_kib user_before sys_before user_after sys_after peak_kib
    idle_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
    read -r user_before sys_before < <(cpu_ticks "$SERVER_PID")
    "${LOAD_CPU[@]}" "$BIN/loadgen" --url "$url" --label "$label" "$@" >"$OUT/$label.out"
    read -r user_after sys_after < <(cpu_ticks "$SERVER_PID")
    peak_kib=$(peak_rss_kib "$SERVER_PID")
    head -n1 "$OUT/$label.out"
    echo "  server: RSS idle $((idle_kib / 1024)) MiB, peak $((peak_kib / 1024)) MiB;" \
        "CPU user $(((user_after - user_before) * 1000 / CLK_TCK)) ms, system $(((sys_after - sys_before) * 1000 / CLK_TCK)) ms"
    tail -n1 "$OUT/$label.out" |
        python3 -c 'import json,sys
d = json.load(sys.stdin)
d["server_idle_rss_kib"], d["server_peak_rss_kib"] = int(sys.argv[1]), int(sys.argv[2])
user, system = int(sys.argv[3]) / int(sys.argv[5]), int(sys.argv[4]) / int(sys.argv[5])
d["server_cpu_s"] = user + system
# Warm-up included on both sides: the server was idle while the loadgen signed.
n = max(d["completed_incl_warmup"], 1)
d["server_cpu_us_per_request"] = 1e6 * d["server_cpu_s"] / n
d["server_user_us_per_request"] = 1e6 * user / n
d["server_sys_us_per_request"] = 1e6 * system / n
print(json.dumps(d))' "$idle_kib" "$peak_kib" "$((user_after - user_before))" "$((sys_after - sys_before))" "$CLK_TCK" >>"$OUT/results.jsonl"
}

LOAD=(--connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP")

# bare: the transport limit. ours: the endpoint with a typed `Task`
# handler. ours-event: the same with an `Arc<Event>` handler (the receiver
# without the view's parse of `data`). ours-borrowed: an `Arc<Event>`
# handler reading the fields a results fetcher needs with
# `Event::data_borrowed` (no string copies). verify, parse: bare plus the
# signature check, plus reading the event (the floor of any receiver that
# checks what it acknowledges).
LABELS=(bare ours ours-event ours-borrowed)
[[ "$LAYERS" == 1 ]] && LABELS+=(verify parse)
for round in $(seq 1 "$ROUNDS"); do
    for label in "${LABELS[@]}"; do
        echo "== $label (round $round of $ROUNDS)"
        start_bench_server "$label" "$label"
        loadgen "$label" "http://$ADDR/webhooks" "${LOAD[@]}"
        stop_server
    done
done

if [[ "$REFERENCE" == 1 ]]; then
    echo "== reference (ricloud-py 3.2.0, Flask dev server)"
    has_ricloud() {
        [[ -x "$1/bin/python" ]] && "$1/bin/python" -c \
            'import importlib.metadata as m, sys; sys.exit(m.version("ricloud") != "3.2.0")' 2>/dev/null
    }
    VENV=""
    for candidate in "$ROOT/.venv-bench" "$ROOT/.venv-interop"; do
        if has_ricloud "$candidate"; then
            VENV=$candidate
            break
        fi
    done
    if [[ -z "$VENV" ]]; then
        VENV="$ROOT/.venv-bench"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet "ricloud==3.2.0" "flask==2.0.3" "werkzeug<2.1"
    fi
    echo "using $VENV"
    PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # Exactly what `ricloud event listen 127.0.0.1 PORT` does after reading
    # its config file (ricloud/cli.py): set the secret and delta, app.run().
    # Its handler prints every event; stdout goes to a file, as a terminal would take it.
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
    wait_for_port "$PORT"
    loadgen reference "http://127.0.0.1:$PORT/webhooks" "${LOAD[@]}"
    stop_server
fi

if [[ "$MEMORY" == 1 ]]; then
echo "== memory: $UPLOAD_CONNECTIONS concurrent uploads of $UPLOAD_BYTES bytes to ours"
start_bench_server upload ours
loadgen upload "http://$ADDR/webhooks" --upload-bytes "$UPLOAD_BYTES" \
    --connections "$UPLOAD_CONNECTIONS" --duration "$UPLOAD_DURATION" --warmup 1s
stop_server
# The same with glibc's mmap threshold fixed at its 128 KiB default: every
# body then lives in its own mapping, returned to the system when freed, so
# the peak shows the live memory without the allocator's retained heap.
echo "== memory, MALLOC_MMAP_THRESHOLD_=131072"
export MALLOC_MMAP_THRESHOLD_=131072
start_bench_server upload-mmap ours
unset MALLOC_MMAP_THRESHOLD_
loadgen upload-mmap "http://$ADDR/webhooks" --upload-bytes "$UPLOAD_BYTES" \
    --connections "$UPLOAD_CONNECTIONS" --duration "$UPLOAD_DURATION" --warmup 1s
stop_server
fi

python3 - "$OUT/results.jsonl" "$UPLOAD_BYTES" "$UPLOAD_CONNECTIONS" >"$OUT/summary.md" <<'EOF'
import json, sys

every = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    every.setdefault(d["label"], []).append(d)
# Each server's median run by req/s (the only run for the others).
runs = {label: sorted(ds, key=lambda d: d["rps"])[len(ds) // 2] for label, ds in every.items()}
upload_bytes, upload_conns = int(sys.argv[2]), int(sys.argv[3])

def ms(us):
    return f"{us / 1000:.2f}"

print("| server | conns | req/s | p50 ms | p99 ms | max ms | requests | statuses | io errors | connects | server CPU us/req (user + system) | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for label in ["bare", "verify", "parse", "ours", "ours-event", "ours-borrowed", "reference", "upload", "upload-mmap"]:
    d = runs.get(label)
    if not d:
        continue
    if len(every[label]) > 1:
        label += f" (median of {len(every[label])}: " + ", ".join(f"{r['rps']:.0f}" for r in every[label]) + " req/s)"
    print(f"| {label} | {d['connections']} | {d['rps']:.0f} | {ms(d['p50_us'])} | {ms(d['p99_us'])} | {ms(d['max_us'])}"
          f" | {d['requests']} | {' '.join(f'{k}:{v}' for k, v in d['status'].items())}"
          f" | {d['io_errors']} | {d['connects']} | {d['server_cpu_us_per_request']:.1f}"
          f" ({d['server_user_us_per_request']:.1f} + {d['server_sys_us_per_request']:.1f})"
          f" | {d['server_peak_rss_kib'] / 1024:.1f} |")
print()
print("ours: the receiver with a typed `Task` handler (the crate parses `data` for it); ours-event: with an `Arc<Event>` handler;")
print("ours-borrowed: with an `Arc<Event>` handler that reads five fields of `data` borrowed. Each is run against the same targets.")
print()

def check(name, value, target, ok):
    print(f"| {name} | {value} | {target} | {'met' if ok else 'MISSED'} |")

print("| ratio | value | target | |")
print("|---|---|---|---|")
bare, ref = runs.get("bare"), runs.get("reference")
for name in ["bare", "verify", "parse", "ours", "ours-event", "ours-borrowed"]:
    d = runs.get(name)
    if d:
        # Below 1, the load generator rather than the server set the pace:
        # req/s ratios against such a run flatter the slower server.
        busy = d["rps"] * d["server_cpu_us_per_request"] / 1e6
        print(f"| {name}: server CPU in use (cores, median run) | {busy:.2f} | | |")
def by_round(name):
    """The ratio to bare of each round (runs alternate, so round i of one
    server ran next to round i of bare), and their median."""
    pairs = list(zip(every.get(name, []), every.get("bare", [])))
    ratios = sorted(m["rps"] / b["rps"] for m, b in pairs)
    return ratios, (ratios[len(ratios) // 2] if ratios else None)

# The floor's layers have no target; ours has the issue's.
for name in ["verify", "parse", "ours", "ours-event", "ours-borrowed"]:
    mine = runs.get(name)
    if not (mine and bare):
        continue
    targeted = name.startswith("ours")
    def ratio(label, value, ok):
        if targeted:
            check(label, value, ">= 0.80x", ok)
        else:
            print(f"| {label} (the floor, no target) | {value} | | |")
    r = mine["rps"] / bare["rps"]
    ratio(f"{name}/bare req/s, medians", f"{r:.2f}x", r >= 0.8)
    ratios, median = by_round(name)
    if len(ratios) > 1:
        each = ", ".join(f"{x:.2f}" for x in ratios)
        ratio(f"{name}/bare req/s, round by round ({each})", f"{median:.2f}x", median >= 0.8)
    p = mine["p99_us"] / bare["p99_us"]
    if targeted:
        check(f"{name}/bare p99", f"{p:.2f}x", "<= 2x", p <= 2.0)
    else:
        print(f"| {name}/bare p99 (the floor, no target) | {p:.2f}x | | |")
    c = mine["server_cpu_us_per_request"] / bare["server_cpu_us_per_request"]
    print(f"| {name}/bare server CPU per request (as req/s of two servers that both fill their core: {1 / c:.2f}x) | {c:.2f}x | | |")
    extra = mine["server_user_us_per_request"] - bare["server_user_us_per_request"]
    print(f"| {name} - bare, user CPU per request | {extra:+.1f} us | | |")
for name in ["ours", "ours-event", "ours-borrowed"]:
    mine = runs.get(name)
    if not (mine and ref):
        continue
    r = mine["rps"] / ref["rps"]
    check(f"{name}/reference req/s", f"{r:.1f}x", ">= 50x", r >= 50)
    p = mine["p99_us"] / ref["p99_us"]
    print(f"| {name}/reference p99 | {p:.3f}x | | |")
for name in ["ours", "ours-event", "ours-borrowed"]:
    mine = runs.get(name)
    if mine:
        mib = mine["server_peak_rss_kib"] / 1024
        check(f"{name} peak RSS under load", f"{mib:.1f} MiB", "< 64 MiB", mib < 64)
for name in ["upload", "upload-mmap"]:
    up = runs.get(name)
    if not up:
        continue
    mib = up["server_peak_rss_kib"] / 1024
    bound = upload_conns * upload_bytes / 2**20
    idle = up["server_idle_rss_kib"] / 1024
    # hyper keeps a read buffer of up to ~400 KiB per connection besides
    # the body being collected.
    hyper_buf = upload_conns * (8192 + 4096 * 100) / 2**20
    check(f"{name}: ours peak RSS, {upload_conns} x {upload_bytes / 2**20:.0f} MiB", f"{mib:.0f} MiB",
          f"<= idle {idle:.0f} + {upload_conns} x (body limit + hyper read buffer) = {idle + bound + hyper_buf:.0f} MiB",
          mib <= idle + bound + hyper_buf)
EOF
echo
cat "$OUT/summary.md"
echo
echo "results in $OUT"
