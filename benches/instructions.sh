#!/usr/bin/env bash
# What a filter chain costs weft per request, in user-space instructions: repeatable where
# requests/s and CPU time are not (on a shared 2-core machine the kernel's share of a
# request swings by more than a filter costs). Each case runs weft (release build, 1
# worker) under `valgrind --tool=callgrind`; after a warm-up the counters are zeroed, wrk
# sends requests for a fixed time, and the instructions weft executed (its own code, the
# filters' compiled wasm, the libraries; not the kernel) are divided by the requests wrk
# completed.
#
#   weft            no filters
#   weft+noop       one `noop` filter (tests/wasm-filters/noop: every callback returns at once)
#   weft+add_header one `add_header` filter
#   weft+4noop      four `noop` filters
#   weft+builtin    telemetry, ratelimit, auth (API key), router: benches/builtin-chain.yaml
#
# The upstream is an nginx (`return 200 "ok\n"`) on a free loopback port. Instruction
# counts leave out the kernel, which is most of a request's CPU time here (see
# docs/benchmarks.md): they rank and size the filters' costs; requests/s ratios come from
# benches/load.sh.
#
# Usage: benches/instructions.sh        Environment: CASES="weft weft+noop ...", SECONDS_RUN=5,
#                                       WEFT_BIN=path (else `cargo build --release -p weft`)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CASES=${CASES:-weft weft+noop weft+add_header weft+4noop weft+builtin}
SECONDS_RUN=${SECONDS_RUN:-5}
for tool in valgrind callgrind_control callgrind_annotate wrk nginx curl; do
    command -v "$tool" >/dev/null || { echo "instructions.sh: $tool is required" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [[ -z ${WEFT_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release -p weft >&2)
    WEFT_BIN=$ROOT/target/release/weft
fi
bash "$ROOT/scripts/build-wasm.sh" >&2
FIXTURES=$ROOT/target/wasm-fixtures/wasm32-unknown-unknown

UP_PORT=$(free_port)
mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $TMP/nginx/nginx.pid; error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx; proxy_temp_path $TMP/nginx; fastcgi_temp_path $TMP/nginx;
    uwsgi_temp_path $TMP/nginx; scgi_temp_path $TMP/nginx;
    server { listen 127.0.0.1:$UP_PORT; keepalive_requests 1000000; location / { return 200 "ok\n"; } }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
PIDS+=($!)

filters_yaml() {
    case $1 in
        weft) ;;
        weft+noop) printf '      - { name: noop, module: "%s/noop.wasm" }\n' "$FIXTURES" ;;
        weft+add_header) printf '      - { name: add, module: "%s/add_header.wasm" }\n' "$FIXTURES" ;;
        weft+4noop)
            for i in 1 2 3 4; do
                printf '      - { name: noop%s, module: "%s/noop.wasm" }\n' "$i" "$FIXTURES"
            done
            ;;
        weft+builtin) cat "$ROOT/benches/builtin-chain.yaml" ;;
        *) echo "instructions.sh: unknown case $1" >&2; exit 2 ;;
    esac
}

declare -A INSTR
printf '%-16s %12s %12s %10s\n' case 'instr/req' '+vs weft' 'x weft'
for name in $CASES; do
    port=$(free_port)
    admin=$(free_port)
    filters=$(filters_yaml "$name")
    {
        printf 'admin: { address: 127.0.0.1:%s }\nwasm: { cache_dir: "%s" }\n' "$admin" "$TMP/wasm-cache"
        printf 'listeners:\n  - name: main\n    address: 127.0.0.1:%s\n    access_log: false\n' "$port"
        [[ -n $filters ]] && printf '    filters:\n%s\n' "$filters"
        printf '    routes:\n      - cluster: up\nclusters:\n  - { name: up, endpoints: ["127.0.0.1:%s"] }\n' "$UP_PORT"
    } >"$TMP/$name.yaml"
    out=$TMP/$name.callgrind
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$WEFT_BIN" run --config "$TMP/$name.yaml" --workers 1 --no-watch --log-level warn \
        >"$TMP/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 600); do
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$admin/ready" && break
        kill -0 "$pid" 2>/dev/null || { tail "$TMP/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    url=http://127.0.0.1:$port/
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'x-api-key: weft-bench-key' "$url")
    [[ $code == 200 ]] || { echo "instructions.sh: $name answered $code" >&2; exit 1; }
    wrk -t1 -c4 -d2s -H 'x-api-key: weft-bench-key' "$url" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    result=$(wrk -t1 -c4 -d"${SECONDS_RUN}s" -H 'x-api-key: weft-bench-key' "$url")
    callgrind_control -d "$pid" >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    if grep -qE 'Non-2xx|Socket errors' <<<"$result"; then
        echo "instructions.sh: $name: wrk saw errors:" >&2
        echo "$result" >&2
        exit 1
    fi
    requests=$(awk '/ requests in / { print $1 }' <<<"$result")
    # The dump made by `callgrind_control -d` (the zeroing left nothing before it).
    total=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    INSTR[$name]=$(awk -v t="$total" -v n="$requests" 'BEGIN { printf "%.0f", t / n }')
    base=${INSTR[weft]:-}
    if [[ -n $base && $name != weft ]]; then
        printf '%-16s %12s %12s %9.2fx\n' "$name" "${INSTR[$name]}" "+$((INSTR[$name] - base))" \
            "$(awk -v a="${INSTR[$name]}" -v b="$base" 'BEGIN { print a / b }')"
    else
        printf '%-16s %12s %12s %10s\n' "$name" "${INSTR[$name]}" - -
    fi
done
