#!/usr/bin/env bash
# Builds and runs weft. With no arguments: `weft run` on the embedded default config
# (proxy on 127.0.0.1:8080, admin on 127.0.0.1:9901, a demo echo upstream on 127.0.0.1:8081).
# Arguments are passed to weft, e.g. `scripts/run.sh run --config examples/weft.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
    set -- run
fi
exec cargo run --locked --release -p weft -- "$@"
