#!/usr/bin/env bash
# Runs every test: unit tests beside the code and the end-to-end tests in tests/, which
# start real weft processes and real upstreams on loopback. Extra arguments go to
# `cargo test` (for example `scripts/test.sh -p weft-e2e --test routing`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo is required (https://rustup.rs)" >&2
    exit 1
fi

# The wasm test filters (and the wasm targets they need), then the built-in filters and
# the examples (filters/, examples/), which weft embeds and the end-to-end tests load.
bash scripts/build-wasm.sh
bash scripts/build-filters.sh

# The end-to-end tests run target/debug/weft; build it first so a test never starts a
# stale binary (the harness also rebuilds it when run on its own).
cargo build --locked -p weft --bin weft
if [ "$#" -eq 0 ]; then
    cargo test --locked --workspace
else
    cargo test --locked "$@"
fi
