#!/usr/bin/env bash
# What one workspace build cannot show:
# - each crate built alone, with the features it asks for itself (in the
#   workspace build, cargo unifies features across members, so a crate that
#   forgot one still builds there);
# - the inbox with each database engine alone (its `cfg(not(feature = ...))`
#   code is compiled only there);
# - the stated minimum Rust version against the highest `rust-version` any
#   package of the dependency tree declares (no second toolchain can be
#   fetched here, so the check reads the metadata instead of compiling with
#   an older compiler), and against this machine's rustc.
set -euo pipefail
cd "$(dirname "$0")/.."

clippy() { cargo clippy --quiet --locked "$@" --all-targets -- -D warnings; }

for crate in ricloud-webhook ricloud-webhook-hyper ricloud-webhook-api \
    ricloud-webhook-api-mock ricloud-webhook-inbox ricloud-webhook-cli \
    ricloud-webhook-testkit ricloud-webhook-ops ricloud-webhook-forward \
    ricloud-webhook-examples; do
    echo "clippy -p $crate"
    clippy -p "$crate"
done
echo "clippy -p ricloud-webhook-hyper --features tls"
clippy -p ricloud-webhook-hyper --features tls
for engine in sqlite postgres; do
    echo "clippy -p ricloud-webhook-inbox --no-default-features --features $engine"
    clippy -p ricloud-webhook-inbox --no-default-features --features "$engine"
done
echo "clippy -p ricloud-webhook-inbox --features console"
clippy -p ricloud-webhook-inbox --features console
for broker in nats redis; do
    echo "clippy -p ricloud-webhook-forward --features $broker"
    clippy -p ricloud-webhook-forward --features "$broker"
done

echo "minimum supported Rust version"
cargo metadata --format-version 1 --locked | python3 scripts/check_msrv.py
