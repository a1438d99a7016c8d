#!/usr/bin/env bash
# Interoperability with ricloud-py 3.2.0, the API's reference client.
#
# Part (a): events signed by ricloud-py's own `ricloud.signing` are accepted
# by our example receiver, and tampered ones refused (scripts/interop_sign.py).
#
# Part (b): events sent and signed by our CLI (`ricloud-webhook send-test`,
# `ricloud-webhook send`) are accepted by ricloud-py's own Flask receiver
# (`ricloud.webhooks.app`), and one signed with a wrong secret is refused.
#
# Usage: scripts/interop.sh
# Needs python3 (with venv), cargo, and PyPI the first time: the virtualenv
# is kept in $REPO/.venv-interop and reused. Exits non-zero if any check fails.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO/.venv-interop"
PY="$VENV/bin/python"
# The debug build: the one `cargo test` already compiles.
CLI="${CARGO_TARGET_DIR:-$REPO/target}/debug/ricloud-webhook"
# Spaces and non-ASCII: the key is the secret's UTF-8 bytes on both sides.
SECRET="interop s3cr3t ünïcode $$"

PASSED=0
FAILED=0
PIDS=()
WORK=$(mktemp -d)

cleanup() {
    local pid
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() {
    PASSED=$((PASSED + 1))
    echo "ok   $1"
}

# fail NAME DETAILS...
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL $1" >&2
    shift
    printf '%s\n' "$@" | sed 's/^/     /' >&2
}

# expect NAME CODE STDOUT_PREFIX COMMAND...: runs COMMAND and checks its exit
# status and the start of its standard output.
expect() {
    local name=$1 want_code=$2 want_out=$3 out code=0
    shift 3
    out=$("$@" 2>"$WORK/stderr") || code=$?
    if [[ $code == "$want_code" && $out == "$want_out"* ]]; then
        pass "$name"
    else
        fail "$name" "exit $code (wanted $want_code), stdout:" "$out" "stderr:" "$(cat "$WORK/stderr")"
    fi
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_port PORT PID LOG: until something listens on PORT, or PID dies.
wait_for_port() {
    local port=$1 pid=$2 log=$3 i
    for i in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "interop: server exited before listening; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "interop: nothing listens on port $port after 10 s; server log:" >&2
    cat "$log" >&2
    return 1
}

setup_venv() {
    if [[ -x $PY ]] && "$PY" - 2>/dev/null <<'PY'
import importlib.metadata as m, sys
import flask  # noqa: F401
sys.exit(m.version("ricloud") != "3.2.0")
PY
    then
        echo "interop: reusing $VENV (ricloud 3.2.0)"
        return
    fi
    echo "interop: creating $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "ricloud==3.2.0" "flask==2.0.3" "werkzeug<2.1"
}

build_cli() {
    echo "interop: building ricloud-webhook and the example receiver (debug)"
    (cd "$REPO" && cargo build --quiet -p ricloud-webhook-cli \
        && cargo build --quiet -p ricloud-webhook-examples --bin receiver)
}

RECEIVER="${CARGO_TARGET_DIR:-$REPO/target}/debug/receiver"

part_a() {
    echo "interop: part (a): ricloud-py's signatures -> our receiver example"
    local port log out pid line
    port=$(free_port)
    log="$WORK/receiver.log"
    out="$WORK/receiver.out"
    # Queued on a SQLite inbox of its own (the receiver's default mode).
    RICLOUD_WEBHOOK_SECRET="$SECRET" RICLOUD_WEBHOOK_ADDR="127.0.0.1:$port" \
        RICLOUD_WEBHOOK_ADMIN_ADDR=off \
        RICLOUD_WEBHOOK_DATABASE_URL="sqlite://$WORK/inbox.db" \
        "$RECEIVER" >"$out" 2>"$log" &
    pid=$!
    PIDS+=("$pid")
    wait_for_port "$port" "$pid" "$log"

    local checks=0
    while IFS= read -r line; do
        case $line in
            "ok   "*) pass "${line#ok   }"; checks=$((checks + 1)) ;;
            "FAIL "*) fail "${line#FAIL }"; checks=$((checks + 1)) ;;
        esac
    done < <("$PY" "$REPO/scripts/interop_sign.py" "http://127.0.0.1:$port/webhooks" "$SECRET" 2>&1 || true)
    if ((checks < 23)); then
        fail "interop_sign.py ran all its checks" "only $checks ran"
    fi

    # 8 distinct events and the last valid one, each handled exactly once
    # although every event was also redelivered. The workers run them just
    # after the answers: wait for them (at most 10 s).
    local handled i
    for i in $(seq 1 100); do
        handled=$(grep -c '^handled ' "$out" || true)
        [[ $handled -ge 9 ]] && break
        sleep 0.1
    done
    sleep 0.5
    handled=$(grep -c '^handled ' "$out" || true)
    if [[ $handled == 9 ]]; then
        pass "the receiver ran handlers once per event (9 lines)"
    else
        fail "the receiver ran handlers once per event" "got $handled lines:" "$(cat "$out")"
    fi

    # The API's validation test, by our own CLI, against our own receiver.
    expect "send-test against the example receiver is valid" 0 "valid" \
        env RICLOUD_WEBHOOK_SECRET="$SECRET" "$CLI" send-test --url "http://127.0.0.1:$port/webhooks"
    for i in $(seq 1 100); do
        grep -q '^handled webhook_config.test ' "$out" && break
        sleep 0.1
    done
    if grep -q '^handled webhook_config.test ' "$out"; then
        pass "the example printed the webhook_config.test line"
    else
        fail "the example printed the webhook_config.test line" "$(cat "$out")"
    fi
    if grep -qF "$SECRET" "$log" "$out"; then
        fail "the receiver never prints the secret" "$(cat "$log")"
    else
        pass "the receiver never prints the secret"
    fi

    # SIGTERM shuts it down cleanly.
    kill -TERM "$pid"
    if wait "$pid"; then
        pass "the receiver exits 0 on SIGTERM"
    else
        fail "the receiver exits 0 on SIGTERM" "$(tail -n 5 "$log")"
    fi
}

part_b() {
    echo "interop: part (b): our CLI -> ricloud-py's Flask receiver"
    local port log pid base slug
    port=$(free_port)
    log="$WORK/flask.log"
    # The secret travels in the environment, not on a command line.
    # WEBHOOK_DELTA = 600 turns on ricloud-py's default time check too.
    INTEROP_SECRET="$SECRET" "$PY" -u - "$port" >"$log" 2>&1 <<'PY' &
import os, sys
from ricloud.webhooks import app
app.config["WEBHOOK_SECRET"] = os.environb[b"INTEROP_SECRET"].decode("utf-8")
app.config["WEBHOOK_DELTA"] = 600
app.run(host="127.0.0.1", port=int(sys.argv[1]))
PY
    pid=$!
    PIDS+=("$pid")
    wait_for_port "$port" "$pid" "$log"
    base="http://127.0.0.1:$port/webhooks"
    export RICLOUD_WEBHOOK_SECRET="$SECRET"

    expect "send-test is valid" 0 "valid" "$CLI" send-test --url "$base"
    if grep -q "Test event received!" "$log"; then
        pass "ricloud-py handled the test event"
    else
        fail "ricloud-py handled the test event" "$(tail -n 20 "$log")"
    fi
    expect "send-test to a URL ending in / is valid" 0 "valid" "$CLI" send-test --url "$base/"

    for slug in $("$CLI" send --list-events); do
        expect "send --event $slug" 0 "HTTP/1.0 200 OK" "$CLI" send --url "$base" --event "$slug"
    done

    # An event the API may add later: a receiver must accept it.
    printf '%s' '{"id": "5b0f6f0e-8d1c-4b7e-9a55-3c2e1d0f9a77", "resource": "event", "type": "task", "action": "exploded", "data": {"id": "t"}, "state": "pending", "retries": 0}' >"$WORK/unknown.json"
    expect "send --body with an unknown slug" 0 "HTTP/1.0 200 OK" "$CLI" send --url "$base" --body "$WORK/unknown.json"

    expect "send-test with a wrong secret is invalid" 1 "invalid: 400" \
        env RICLOUD_WEBHOOK_SECRET="not the secret" "$CLI" send-test --url "$base"
    unset RICLOUD_WEBHOOK_SECRET
}

main() {
    setup_venv
    build_cli
    part_a
    part_b
    echo "interop: $PASSED passed, $FAILED failed"
    [[ $FAILED == 0 ]]
}

main "$@"
