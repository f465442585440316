#!/usr/bin/env bash
# Builds weft's built-in filters and weft, and runs it. With no arguments: `weft run` on
# the embedded default config (proxy on 127.0.0.1:8080 with the four built-in filters,
# admin on 127.0.0.1:9901, a demo echo upstream on 127.0.0.1:8081).
# Arguments are passed to weft, e.g. `scripts/run.sh run --config examples/weft.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
    set -- run
fi
# The built-in filters first: weft embeds them when it is built (proxy/build.rs).
bash scripts/build-filters.sh >&2
exec cargo run --locked --release -p weft -- "$@"
