# Sourced by scripts/bench.sh, profile.sh and sample.sh: the servers the
# benchmarks name, as bench-server arguments.
#   bare           hyper reading the whole body, answering 200: the transport limit
#   verify, parse  bare plus the signature check, plus reading the event (the floor)
#   ours           the endpoint (ricloud_webhook_hyper::serve), a typed `Task` handler
#   ours-event     the same with an `Arc<Event>` handler (no view of `data`)
#   ours-borrowed  an `Arc<Event>` handler reading fields with `Event::data_borrowed`

SERVER_NAMES="bare, verify, parse, ours, ours-event or ours-borrowed"

# server_args NAME: sets SERVER_ARGS for bench-server, or fails.
server_args() {
    case $1 in
        bare | verify | parse) SERVER_ARGS=(--mode "$1") ;;
        ours) SERVER_ARGS=(--mode ours --handler task) ;;
        ours-event) SERVER_ARGS=(--mode ours --handler event) ;;
        ours-borrowed) SERVER_ARGS=(--mode ours --handler borrowed) ;;
        *)
            echo "server: $SERVER_NAMES (not $1)" >&2
            return 2
            ;;
    esac
}

# server_address FILE SECONDS: waits up to SECONDS for bench-server's first
# line (the address it bound) in FILE and prints it; prints nothing if none
# came (the caller says which server did not start).
server_address() {
    local file=$1 deadline=$((SECONDS + $2))
    while [[ ! -s "$file" ]] && ((SECONDS < deadline)); do
        sleep 0.05
    done
    head -n1 "$file"
}
