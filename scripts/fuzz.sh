#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ with AddressSanitizer, the shared
# dictionary, and a scratch copy of the committed corpus. See FUZZING.md.
#
#   scripts/fuzz.sh [--time SECS] [--merge] [TARGET...]
#   scripts/fuzz.sh --ci
#
#   --time SECS  how long each target runs (default 30)
#   --merge      afterwards, add the inputs that reach new coverage to the
#                committed corpus (fuzz/corpus/<target>/); off by default so
#                that runs leave git clean
#   --ci         build every target, then run each for 30 s
#   TARGET...    the targets to run (default: all)
#
# Prints, per target: executions, corpus size, coverage (cov/ft from
# libFuzzer's final stats) and crashes. Exits non-zero if any target
# crashed; the crashing input is in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(signature_header verify event receiver http forwarded)
secs=30
merge=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time)
            [ $# -ge 2 ] || { echo "--time needs a number of seconds" >&2; exit 2; }
            secs="$2"
            shift 2
            ;;
        --time=*) secs="${1#--time=}"; shift ;;
        --merge) merge=1; shift ;;
        --ci) secs=30; targets=("${ALL_TARGETS[@]}"); shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
case "$secs" in ''|*[!0-9]*) echo "--time takes whole seconds" >&2; exit 2 ;; esac
for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "no fuzz target named $t" >&2; exit 2; }
done

if ! cargo fuzz --version 2>/dev/null | grep -q '^cargo-fuzz 0\.13\.'; then
    echo "==> installing cargo-fuzz 0.13"
    cargo install cargo-fuzz --version '^0.13' --locked
fi

# cargo-fuzz needs nightly-only flags (-Zsanitizer=address). With a
# nightly toolchain installed, it is used. Without one (on a machine that
# can fetch no toolchain), stable is told to accept the flags with
# RUSTC_BOOTSTRAP=1: a workaround Rust does not support, which the fuzz
# build alone uses.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    export RUSTUP_TOOLCHAIN=nightly
    echo "==> fuzzing with the nightly toolchain"
else
    export RUSTC_BOOTSTRAP=1
    echo "==> no nightly toolchain: fuzzing with stable and RUSTC_BOOTSTRAP=1"
fi
# -a: debug assertions and overflow checks on top of the optimised build.
FUZZ_FLAGS=(-a)

echo "==> building ${targets[*]}"
start=$(date +%s)
for t in "${targets[@]}"; do
    cargo fuzz build "${FUZZ_FLAGS[@]}" "$t"
done
echo "    built in $(( $(date +%s) - start )) s"

logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
rows=()
failed=0
for t in "${targets[@]}"; do
    # Fuzz a scratch copy: what libFuzzer adds stays out of git.
    scratch="fuzz/target/corpus-run/$t"
    rm -rf "$scratch"
    mkdir -p "$scratch" "fuzz/artifacts/$t"
    if [ -d "fuzz/corpus/$t" ]; then
        cp -r "fuzz/corpus/$t/." "$scratch/"
    fi
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    echo "==> fuzzing $t for $secs s (log: $logs/$t.log)"
    set +e
    cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "$scratch" -- \
        -dict=fuzz/dict/ricloud.dict \
        -max_total_time="$secs" \
        -timeout=10 \
        -rss_limit_mb=4096 \
        -print_final_stats=1 \
        >"$logs/$t.log" 2>&1
    rc=$?
    set -e
    stats=$(grep -E '^#[0-9]+.*cov: ' "$logs/$t.log" | tail -n 1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$stats")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
    corpus=$(find "$scratch" -type f | wc -l)
    crashes=$(( $(find "fuzz/artifacts/$t" -type f | wc -l) - before ))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1  # libFuzzer failed without an artifact: count it anyway
    fi
    if [ "$crashes" -gt 0 ]; then
        failed=1
        echo "!!! $t crashed (exit $rc); see $logs/$t.log and fuzz/artifacts/$t/"
        grep -E "panicked at|^==[0-9]+==ERROR|SUMMARY" "$logs/$t.log" | head -n 5 || true
    fi
    if [ "$merge" -eq 1 ] && [ "$rc" -eq 0 ]; then
        cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "fuzz/corpus/$t" "$scratch" -- -merge=1 \
            >>"$logs/$t.log" 2>&1
        echo "    merged: fuzz/corpus/$t now has $(find "fuzz/corpus/$t" -type f | wc -l) inputs"
    fi
    rows+=("$(printf '%-17s %6s %12s %8s %7s %6s %7s %7s' \
        "$t" "$secs" "${execs:-?}" "${rate:-?}" "$corpus" "${cov:-?}" "${ft:-?}" "$crashes")")
done

echo
printf '%-17s %6s %12s %8s %7s %6s %7s %7s\n' target secs executions exec/s corpus cov ft crashes
printf '%s\n' "${rows[@]}"
exit "$failed"
