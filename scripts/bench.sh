#!/usr/bin/env bash
# End-to-end load comparison on loopback, every server in the same run:
# bare hyper (the transport limit), ours (ricloud_webhook_hyper::serve) with
# an `Arc<Event>` handler and with a typed `Task` handler, and the reference
# receiver (ricloud-py 3.2.0's Flask app, as its `ricloud event listen` runs
# it). 1 KiB `task.succeeded` events over keep-alive connections.
# Then the queued mode: ours acknowledging each event once it is committed to
# a SQLite inbox (WAL, synchronous=FULL) and to a PostgreSQL inbox (a
# throwaway cluster, fsync on), with workers running the handler, next to
# bare hyper and to the machine's group-commit limit: 64 divided by one
# fdatasync's latency, measured in the same run on the same disk.
# Then forwarding into NATS JetStream and Redis Streams (redis-server with
# appendfsync always), each against the broker's own acknowledged publish
# rate in the same round.
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
#   ENDPOINT=1   run bare hyper and ours with an in-memory store; 0 to skip
#   QUEUED=1     run the queued mode on SQLite and PostgreSQL (PostgreSQL
#                only when its binaries are installed); 0 to skip
#   FORWARD=1    run forwarding to NATS JetStream and to Redis Streams (each
#                only when nats-server / redis-server is installed): ours
#                acknowledging once the broker did, beside bare hyper, the
#                SQLite queued mode, and the broker's own acknowledged
#                publish rate with the same client (publish-rate); 0 to skip
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
QUEUED=${QUEUED:-1}
ENDPOINT=${ENDPOINT:-1}
FORWARD=${FORWARD:-1}
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

# A throwaway PostgreSQL cluster for the queued runs, on a unix socket, owned
# by the postgres user when run as root (initdb refuses root); its server
# shares the server CPU.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
PG_DIR=""
PG_PORT=55432
as_postgres() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
stop_pg() {
    if [[ -n "$PG_DIR" ]]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
    PG_DIR=""
}
start_pg() {
    PG_DIR=$(mktemp -d /tmp/ricloud-bench-pg.XXXXXX)
    if [[ $(id -u) == 0 ]]; then chown postgres:postgres "$PG_DIR"; fi
    as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 >"$OUT/pg.initdb.log"
    as_postgres "${SERVER_CPU[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
        -o "-k $PG_DIR -p $PG_PORT -c listen_addresses= -c fsync=on -c synchronous_commit=on -c max_connections=100" \
        start >/dev/null
}
# The brokers for the forwarding runs, fresh for each run, on the
# server CPU, data in a temporary directory.
BROKER_PID=""
BROKER_DIR=""
stop_broker() {
    if [[ -n "$BROKER_PID" ]]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    [[ -z "$BROKER_DIR" ]] || rm -rf "$BROKER_DIR"
    BROKER_PID=""
    BROKER_DIR=""
}
# start_broker nats|redis: sets BROKER_URL.
start_broker() {
    BROKER_DIR=$(mktemp -d /tmp/ricloud-bench-broker.XXXXXX)
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    case $1 in
        nats) "${SERVER_CPU[@]}" nats-server -js -a 127.0.0.1 -p "$port" -sd "$BROKER_DIR" >"$OUT/nats.log" 2>&1 &
            BROKER_URL="nats://127.0.0.1:$port" ;;
        redis) "${SERVER_CPU[@]}" redis-server --bind 127.0.0.1 --port "$port" --dir "$BROKER_DIR" \
                --appendonly yes --appendfsync always --save "" >"$OUT/redis.log" 2>&1 &
            BROKER_URL="redis://127.0.0.1:$port" ;;
    esac
    BROKER_PID=$!
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
        sleep 0.05
    done
    echo "$1 did not start" >&2
    exit 1
}
# publish_rate LABEL CPU...: the broker's own rate, with the load's
# concurrency, its client on the given CPUs.
publish_rate() {
    local label=$1
    shift
    "$@" "$BIN/publish-rate" --url "$BROKER_URL" --label "$label" \
        --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" >"$OUT/$label.out"
    head -n1 "$OUT/$label.out"
    tail -n1 "$OUT/$label.out" >>"$OUT/results.jsonl"
}
cleanup() {
    stop_server
    stop_pg
    stop_broker
}
trap cleanup EXIT

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

# handled LABEL: the server printed, as it stopped, how many events its
# workers had handled while the load was on; it joins the run's line.
handled() {
    local label=$1
    python3 - "$OUT/results.jsonl" "$OUT/$label.addr" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
last = json.loads(lines[-1])
last.update(json.loads(open(sys.argv[2]).read().splitlines()[-1]))
lines[-1] = json.dumps(last)
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
}

for round in $(seq 1 "$ROUNDS"); do
    [[ "$ENDPOINT" == 1 ]] || break
    for server in "bare:--mode bare" "ours-event:--mode ours --handler event" "ours-task:--mode ours --handler task"; do
        label=${server%%:*}
        echo "== $label (round $round of $ROUNDS)"
        # shellcheck disable=SC2086
        start_server "$label" ${server#*:}
        loadgen "$label" "http://$ADDR/webhooks"
        stop_server
    done
done

if [[ "$QUEUED" == 1 ]]; then
    # One fdatasync's latency on the disk the inboxes live on (a 4 KiB write
    # then fdatasync, 2,000 times), and one SQLite commit of one 1 KiB row
    # (WAL, synchronous=FULL: what a delivery would cost without batching).
    python3 - "$OUT" >"$OUT/fsync.json" <<'EOF'
import json, os, sqlite3, statistics, sys, time
path = os.path.join(sys.argv[1], "fsync.probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
block = os.urandom(4096)
times = []
for i in range(2000):
    os.pwrite(fd, block, (i % 16) * 4096)
    start = time.perf_counter_ns()
    os.fdatasync(fd)
    times.append(time.perf_counter_ns() - start)
os.close(fd)
os.unlink(path)
times.sort()
db = sqlite3.connect(os.path.join(sys.argv[1], "commit.probe.db"), isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
commits = []
for i in range(2000):
    start = time.perf_counter_ns()
    db.execute("BEGIN")
    db.execute("INSERT INTO t VALUES (?, ?)", (i, block[:1024]))
    db.execute("COMMIT")
    commits.append(time.perf_counter_ns() - start)
db.close()
for suffix in ["", "-wal", "-shm"]:
    if os.path.exists(os.path.join(sys.argv[1], "commit.probe.db" + suffix)):
        os.unlink(os.path.join(sys.argv[1], "commit.probe.db" + suffix))
print(json.dumps({
    "median_us": statistics.median(times) / 1e3,
    "p90_us": times[len(times) * 9 // 10] / 1e3,
    "sqlite_commit_median_us": statistics.median(commits) / 1e3,
}))
EOF
    echo "== fdatasync: $(cat "$OUT/fsync.json")"
    PG=0
    if [[ -n "$PG_BIN" && -x "$PG_BIN/initdb" ]]; then
        PG=1
        start_pg
    else
        echo "PostgreSQL's binaries are not installed (apt-get install postgresql): its queued run is skipped"
    fi
    for round in $(seq 1 "$ROUNDS"); do
        echo "== bare-q (round $round of $ROUNDS, next to the queued runs)"
        start_server bare-q --mode bare
        loadgen bare-q "http://$ADDR/webhooks"
        stop_server
        rm -f "$OUT"/inbox.db*
        echo "== queued-sqlite (round $round of $ROUNDS)"
        start_server queued-sqlite --mode ours --handler event --inbox "sqlite://$OUT/inbox.db"
        loadgen queued-sqlite "http://$ADDR/webhooks"
        stop_server
        handled queued-sqlite
        if [[ "$PG" == 1 ]]; then
            as_postgres "$PG_BIN/createdb" -h "$PG_DIR" -p "$PG_PORT" -U postgres "inbox$round"
            echo "== queued-postgres (round $round of $ROUNDS)"
            start_server queued-postgres --mode ours --handler event \
                --inbox "postgres://postgres@localhost/inbox$round?host=$PG_DIR&port=$PG_PORT"
            loadgen queued-postgres "http://$ADDR/webhooks"
            stop_server
            handled queued-postgres
        fi
    done
    rm -f "$OUT"/inbox.db*
    stop_pg
fi

if [[ "$FORWARD" == 1 ]]; then
    BROKERS=()
    if command -v nats-server >/dev/null; then BROKERS+=(nats); else echo "nats-server is not installed (apt-get install nats-server): its forwarding runs are skipped"; fi
    if command -v redis-server >/dev/null; then BROKERS+=(redis); else echo "redis-server is not installed (apt-get install redis-server): its forwarding runs are skipped"; fi
    for round in $(seq 1 "$ROUNDS"); do
        [[ ${#BROKERS[@]} -gt 0 ]] || break
        echo "== bare-f (round $round of $ROUNDS, next to the forwarding runs)"
        start_server bare-f --mode bare
        loadgen bare-f "http://$ADDR/webhooks"
        stop_server
        rm -f "$OUT"/inbox.db*
        echo "== queued-sqlite-f (round $round of $ROUNDS)"
        start_server queued-sqlite-f --mode ours --handler event --inbox "sqlite://$OUT/inbox.db"
        loadgen queued-sqlite-f "http://$ADDR/webhooks"
        stop_server
        rm -f "$OUT"/inbox.db*
        for broker in "${BROKERS[@]}"; do
            # Each run on a fresh broker: a stream (and a duplicate
            # window) that earlier runs filled would slow the later ones.
            # The broker's own rate with its client where the receiver
            # runs (the server CPU, shared with the broker: the budget
            # forwarding has), and with its client on the load CPU.
            echo "== publish-$broker (round $round of $ROUNDS: the broker's own rate, client on the server CPU)"
            start_broker "$broker"
            publish_rate "publish-$broker" "${SERVER_CPU[@]}"
            stop_broker
            echo "== publish-$broker-loadcpu (round $round of $ROUNDS: client on the load CPU)"
            start_broker "$broker"
            publish_rate "publish-$broker-loadcpu" "${LOAD_CPU[@]}"
            stop_broker
            echo "== forward-$broker (round $round of $ROUNDS)"
            start_broker "$broker"
            start_server "forward-$broker" --mode ours --forward "$BROKER_URL"
            loadgen "forward-$broker" "http://$ADDR/webhooks"
            stop_server
            stop_broker
        done
    done
fi

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

# Every summary names what made it: the commit (with -dirty when the tree
# had changes) and the command, with the settings that were not defaults.
COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench-results' || echo -dirty)
COMMAND="ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS PIN=$PIN REFERENCE=$REFERENCE ENDPOINT=$ENDPOINT QUEUED=$QUEUED FORWARD=$FORWARD scripts/bench.sh"
python3 - "$OUT/results.jsonl" "$OUT/fsync.json" "$COMMIT" "$COMMAND" >"$OUT/summary.md" <<'EOF'
import json, os, sys

print(f"Commit `{sys.argv[3]}`, `{sys.argv[4]}`, on {os.cpu_count()} CPUs. req/s counts 2xx answers only;"
      " loadgen fails a run with any other answer.")
print()

every = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    every.setdefault(d["label"], []).append(d)
runs = {label: sorted(ds, key=lambda d: d["rps"])[len(ds) // 2] for label, ds in every.items()}

endpoint = [label for label in ["bare", "ours-event", "ours-task", "reference"] if label in runs]
if endpoint:
    print("| server | req/s (median run) | runs | p50 ms | p99 ms | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
for label in endpoint:
    d = runs.get(label)
    if d:
        each = ", ".join(f"{r['rps']:.0f}" for r in every[label])
        print(f"| {label} | {d['rps']:.0f} | {each} | {d['p50_us'] / 1000:.2f} | {d['p99_us'] / 1000:.2f}"
              f" | {d['server_peak_rss_kib'] / 1024:.1f} |")
if endpoint:
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

# The queued runs: acknowledgements per second (every 2xx follows a commit),
# against the bare runs of the same rounds and the group-commit limit.
queued = [label for label in ["queued-sqlite", "queued-postgres"] if label in every]
if queued:
    fsync = json.load(open(sys.argv[2]))
    limit = 64 / (fsync["median_us"] / 1e6)
    print()
    print(f"fdatasync: median {fsync['median_us']:.0f} µs, p90 {fsync['p90_us']:.0f} µs;"
          f" group-commit limit 64 / fdatasync = {limit:,.0f} acks/s;"
          f" one SQLite commit of one row: {fsync['sqlite_commit_median_us']:.0f} µs"
          f" ({1e6 / fsync['sqlite_commit_median_us']:,.0f} commits/s unbatched)")
    print()
    print("| server | acks/s (median run) | runs | p50 ms | p99 ms | non-2xx | handled by the workers at stop |")
    print("|---|---|---|---|---|---|---|")
    for label in ["bare-q"] + queued:
        d = runs[label]
        each = ", ".join(f"{r['rps']:.0f}" for r in every[label])
        kept = ""
        if "handled_at_stop" in d:
            kept = f"{d['handled_at_stop']} of {d['completed_incl_warmup']}"
        print(f"| {label} | {d['rps']:.0f} | {each} | {d['p50_us'] / 1000:.2f} | {d['p99_us'] / 1000:.2f}"
              f" | {d['non_2xx']} | {kept} |")
    print()
    print("| bound | value | target | |")
    print("|---|---|---|---|")
    for label in queued:
        d = runs[label]
        r = d["rps"] / limit
        check(f"{label} / group-commit limit", f"{r:.2f}x", ">= 0.5x", r >= 0.5)
        ratios = [m["rps"] / b["rps"] for m, b in zip(every[label], every["bare-q"])]
        print(f"| {label} / bare hyper, median of the rounds | {median(ratios):.2f}x | | |")
        p99s = [r["p99_us"] / 1000 for r in every[label]]
        p99 = median(p99s)
        check(f"{label} p99 acknowledgement, median of the rounds ({', '.join(f'{x:.1f}' for x in p99s)})",
              f"{p99:.1f} ms", "< 25 ms", p99 < 25)
        share = min(r["handled_at_stop"] / r["completed_incl_warmup"] for r in every[label])
        check(f"{label} workers' share handled by the end of the load, worst round", f"{share:.3f}", ">= 0.99", share >= 0.99)

# Forwarding: acknowledged deliveries per second against the broker's own
# acknowledged publish rate in the same round.
forwarded = [b for b in ["nats", "redis"] if f"forward-{b}" in every and f"publish-{b}" in every]
if forwarded:
    print()
    print("| server | acks/s (median run) | runs | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    labels = ["bare-f", "queued-sqlite-f"] + [x for b in forwarded for x in (f"publish-{b}", f"publish-{b}-loadcpu", f"forward-{b}")]
    for label in labels:
        d = runs.get(label)
        if d:
            each = ", ".join(f"{r['rps']:.0f}" for r in every[label])
            print(f"| {label} | {d['rps']:.0f} | {each} | {d['p50_us'] / 1000:.2f} | {d['p99_us'] / 1000:.2f} |")
    print()
    print("| bound | value | target | |")
    print("|---|---|---|---|")
    for b in forwarded:
        ratios = [f["rps"] / p["rps"] for f, p in zip(every[f"forward-{b}"], every[f"publish-{b}"])]
        r = median(ratios)
        check(f"forward-{b} / publish-{b} (the broker's own rate, its client on the server CPU), median of the rounds ({', '.join(f'{x:.2f}' for x in ratios)})",
              f"{r:.2f}x", ">= 0.5x", r >= 0.5)
        for base, name in [(f"publish-{b}-loadcpu", f"publish-{b}-loadcpu (its client on the load CPU)"), ("bare-f", "bare hyper"), ("queued-sqlite-f", "queued-sqlite")]:
            if base not in every:
                continue
            ratios = [f["rps"] / p["rps"] for f, p in zip(every[f"forward-{b}"], every[base])]
            print(f"| forward-{b} / {name}, median of the rounds | {median(ratios):.2f}x | | |")
EOF
echo
cat "$OUT/summary.md"
echo
echo "results in $OUT"
