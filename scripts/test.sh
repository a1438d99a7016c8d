#!/usr/bin/env bash
# The README's test command: every test of the workspace, the PostgreSQL
# ones included. Those are `#[ignore = "needs PostgreSQL ..."]` (a plain
# `cargo test --workspace` lists them as ignored); this installs Debian's
# `postgresql` package when its binaries are missing (as root, with
# apt-get), then runs them too with `--include-ignored`. Each PostgreSQL
# test starts a throwaway cluster of its own on a unix socket.
#
# The browser tests (the inbox console) are `#[ignore = "needs Chromium
# ..."]` in the same way: Debian's `chromium` and `chromium-driver` are
# installed when `chromedriver` is missing.
#
# The forwarding tests are `#[ignore = "needs nats-server and redis-server
# ..."]`: Debian's `nats-server` and `redis-server` are installed when
# missing; each test starts its own servers on loopback ports.
#
# Usage: scripts/test.sh [cargo test options...]
set -euo pipefail
cd "$(dirname "$0")/.."

# install_packages WHAT PACKAGE...: Debian's packages, as root, for the tests of WHAT.
install_packages() {
    local what=$1
    shift
    if [[ $(id -u) != 0 ]]; then
        echo "$* not installed: run this as root to install them, or apt-get install $*" >&2
        exit 1
    fi
    echo "installing $* (apt-get) for the $what tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@"
}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    install_packages PostgreSQL postgresql
fi
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    install_packages browser chromium chromium-driver
fi
if ! command -v nats-server >/dev/null || ! command -v redis-server >/dev/null; then
    install_packages forwarding nats-server redis-server
fi

exec cargo test --workspace "$@" -- --include-ignored
