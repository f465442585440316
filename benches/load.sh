#!/usr/bin/env bash
# Load benchmark on loopback: requests/s, p50/p99 latency and the proxy's CPU per request,
# in one run, for
#
#   direct            wrk -> upstream
#   nginx             wrk -> nginx (reverse proxy, keep-alive upstream pool) -> upstream
#   weft              wrk -> weft (release build)                             -> upstream
#   weft+noop         as weft, with one `noop` proxy-wasm filter on the listener
#   weft+add_header   as weft, with one `add_header` filter (adds request header x-added: 1)
#   weft+4noop        as weft, with four `noop` filters (noop1..noop4): a 4-filter chain
#   weft+builtin      as weft, with the four built-in filters (telemetry, ratelimit, auth
#                     with an API key, router choosing the cluster), every request passing
#                     their checks; needs the built-in filters in the weft binary
#   nginx+tls         wrk -> nginx terminating TLS (HTTPS, same cert) -> upstream
#   weft+tls          wrk -> weft terminating TLS (HTTPS, same cert)  -> upstream
#
# The upstream is its own nginx (1 worker, `return 200 "ok\n"`). Every server runs from a
# temp dir on 127.0.0.1 with free ports and is stopped on exit; each weft case is its own
# weft process, started just before its case and stopped after it. The filters are the
# test fixtures of tests/wasm-filters, wasm32-unknown-unknown builds made by
# scripts/build-wasm.sh (run here when a filter case is selected). wrk, the upstream and
# the proxy share the machine's cores, so this compares proxies and filter chains with each
# other; it does not measure capacity.
#
# Usage: benches/load.sh [--quick] [--no-doc] [-h|--help]
#   --quick    smoke run: DURATION=3, WARMUP=1, and docs/benchmarks.md is left alone
#   --no-doc   print the table only; do not update docs/benchmarks.md
# Environment:
#   CASES=all       the cases to run, space- or comma-separated, from: direct nginx weft
#                   weft+noop weft+add_header weft+4noop weft+builtin nginx+tls weft+tls
#                   (in that order);
#                   e.g. CASES="nginx weft weft+noop". Ratios need their baseline case.
#   DURATION=10     seconds of measurement per case
#   WARMUP=2        seconds of warm-up per case (same wrk parameters, not measured)
#   ROUNDS=1        times the whole list of cases runs, one case after another each
#                   time (odd rounds in list order, even rounds reversed); each figure
#                   is then the median of its rounds, and weft against nginx is also
#                   judged by the median of each round's ratio (this machine swings
#                   between a fast and a slow phase, so one pass can catch two cases in
#                   different phases)
#   WORKERS=1       nginx worker_processes and weft --workers (the upstream always has 1)
#   CONNECTIONS=32  wrk -c;  THREADS=1  wrk -t
#   WEFT_BIN=path   use this weft binary instead of `cargo build --release -p weft`
#   KEEP_TMP=1      keep the temp dir (configs, logs, raw wrk output); kept anyway on errors
#
# Exits non-zero, without touching the doc, when a case sees non-2xx/3xx responses, socket
# errors, or weft counts upstream errors or filter failures.

set -euo pipefail

usage() {
    sed -n '/^# Usage:/,/^# errors/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

QUICK=0
WRITE_DOC=1
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --no-doc) WRITE_DOC=0 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "load.sh: unknown argument: $1" >&2
            usage >&2
            exit 2
            ;;
    esac
    shift
done

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-1}
WORKERS=${WORKERS:-1}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
if [[ $QUICK == 1 ]]; then
    DURATION=3
    WARMUP=1
    WRITE_DOC=0
fi
for var in DURATION WARMUP ROUNDS WORKERS CONNECTIONS THREADS; do
    if ! [[ ${!var} =~ ^[1-9][0-9]*$ ]]; then
        echo "load.sh: $var must be a positive integer (got '${!var}')" >&2
        exit 2
    fi
done

# The selected cases, in the canonical order.
ALL_CASES=(direct nginx weft weft+noop weft+add_header weft+4noop weft+builtin nginx+tls weft+tls)
CASES=${CASES:-all}
CASES=${CASES//,/ }
CASE_LIST=()
if [[ -z ${CASES// /} || ${CASES// /} == all ]]; then
    CASE_LIST=("${ALL_CASES[@]}")
else
    read -r -a wanted <<<"$CASES"
    for c in "${wanted[@]}"; do
        [[ " ${ALL_CASES[*]} " == *" $c "* ]] && continue
        echo "load.sh: unknown case '$c' in CASES (known: all ${ALL_CASES[*]})" >&2
        exit 2
    done
    for c in "${ALL_CASES[@]}"; do
        [[ " $CASES " == *" $c "* ]] && CASE_LIST+=("$c")
    done
fi
selected() { [[ " ${CASE_LIST[*]} " == *" $1 "* ]]; }
FILTER_CASES=0
for c in "${CASE_LIST[@]}"; do
    [[ $c == weft+* ]] && FILTER_CASES=1
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOC=$ROOT/docs/benchmarks.md
NGINX=/usr/sbin/nginx
SECTION_HEADING='## Load: HTTP/1.1 keep-alive through the proxy'

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'load.sh: error: %s\n' "$*" >&2
    exit 1
}

# --- tools ------------------------------------------------------------------------------

missing=()
[[ -x $NGINX ]] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [[ ${#missing[@]} -gt 0 ]]; then
    [[ $EUID -eq 0 ]] || die "missing ${missing[*]}; run as root or install them"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
[[ -x $NGINX ]] || die "$NGINX not found after install"
command -v pgrep >/dev/null 2>&1 || die "pgrep (procps) is needed"
if [[ -z ${WEFT_BIN:-} ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found"
fi

# --- build weft -------------------------------------------------------------------------

if [[ -n ${WEFT_BIN:-} ]]; then
    WEFT=$WEFT_BIN
    WEFT_DESC="prebuilt binary \`$WEFT_BIN\`"
    log "using $WEFT (WEFT_BIN)"
else
    # The built-in filters first: the release build embeds them (proxy/build.rs).
    log "building the built-in filters (scripts/build-filters.sh)"
    bash "$ROOT/scripts/build-filters.sh" >&2 || die "scripts/build-filters.sh failed"
    log "building weft (cargo build --release -p weft)"
    (cd "$ROOT" && cargo build --release -p weft) ||
        die "cargo build --release -p weft failed (set WEFT_BIN=path to use a prebuilt weft)"
    WEFT=$ROOT/target/release/weft
    WEFT_DESC="release build"
fi
[[ -x $WEFT ]] || die "$WEFT is not an executable"

FIXTURES=$ROOT/target/wasm-fixtures/wasm32-unknown-unknown
if [[ $FILTER_CASES == 1 ]]; then
    log "building the wasm test filters (scripts/build-wasm.sh)"
    bash "$ROOT/scripts/build-wasm.sh" >&2 || die "scripts/build-wasm.sh failed"
    for m in noop add_header; do
        [[ -f $FIXTURES/$m.wasm ]] || die "$FIXTURES/$m.wasm missing after scripts/build-wasm.sh"
    done
fi

# --- temp dir and cleanup ---------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/weft-load.XXXXXX")
# nginx workers drop to an unprivileged user when started as root; let them in.
chmod 755 "$TMP"
PIDS=()
WRK_PID=''

cleanup() {
    local status=$? pid i
    trap - EXIT INT TERM
    if [[ -n $WRK_PID ]]; then
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 || $status == 1 ]]; then
        log "kept $TMP (configs, logs, raw wrk output)"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# --- helpers ----------------------------------------------------------------------------

USED_PORTS=" "
port_busy() {
    if command -v ss >/dev/null 2>&1; then
        [[ -n $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
# free_port VAR: sets VAR to a free TCP port on 127.0.0.1, outside the usual ephemeral
# range (32768-60999), and never one handed out before in this run. (Not run in a $(...)
# subshell, so USED_PORTS keeps what it hands out.)
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 12000))
        [[ $USED_PORTS == *" $p "* ]] && continue
        port_busy "$p" && continue
        USED_PORTS+="$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    die "no free port found"
}

# wait_for NAME PID URL LOG...: until URL answers 2xx; fails if PID exits or 10 s pass.
wait_for() {
    local name=$1 pid=$2 url=$3 i
    shift 3
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$@" >&2 || true
            die "$name exited during start-up (logs above)"
        fi
        if curl -sf -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$@" >&2 || true
    die "$name did not answer $url within 10 s"
}

# Temp-path directives for the modules this nginx has, so it never uses /var/lib/nginx.
NGINX_V=$("$NGINX" -V 2>&1)
nginx_temp_paths() {
    local dir=$1 m
    printf '    client_body_temp_path %s/client_body;\n' "$dir"
    for m in proxy fastcgi uwsgi scgi; do
        if [[ $NGINX_V != *"--without-http_${m}_module"* ]]; then
            printf '    %s_temp_path %s/%s;\n' "$m" "$dir" "$m"
        fi
    done
}
HAVE_STUB_STATUS=0
[[ $NGINX_V == *"--with-http_stub_status_module"* ]] && HAVE_STUB_STATUS=1

# start_nginx NAME: writes $TMP/NAME/nginx.conf (the common main-context header, then
# the rest of the config from stdin) and starts nginx in the foreground, in the background.
start_nginx() {
    local name=$1 dir=$TMP/$1
    {
        printf 'daemon off;\nmaster_process on;\n'
        printf 'pid %s/nginx.pid;\nlock_file %s/nginx.lock;\n' "$dir" "$dir"
        printf 'error_log %s/error.log warn;\n' "$dir"
        cat
    } >"$dir/nginx.conf"
    "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 ||
        {
            cat "$dir/stdout.log" >&2
            die "nginx config for $name is invalid ($dir/nginx.conf)"
        }
    "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >>"$dir/stdout.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# CPU time (clock ticks, user+system) of a process and its direct children.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() {
    local pid total=0 rest f
    local -a pids
    mapfile -t pids < <(pgrep -P "$1" || true)
    for pid in "$1" "${pids[@]}"; do
        [[ -r /proc/$pid/stat ]] || continue
        rest=$(<"/proc/$pid/stat") || continue
        rest=${rest##*) }
        read -r -a f <<<"$rest"
        # After "pid (comm) ": f[0]=state ... f[11]=utime f[12]=stime
        total=$((total + f[11] + f[12]))
    done
    printf '%s\n' "$total"
}

# cpu_snapshot [PROXY_PID]: "TOTAL BUSY OURS" in clock ticks: all CPUs' time (idle
# included) and busy time from /proc/stat, and the part of it that is ours: the upstream,
# the proxy (if given), this shell and its reaped children (wrk, curl).
cpu_snapshot() {
    local total busy ours f st
    read -r -a f </proc/stat
    # cpu user nice system idle iowait irq softirq steal [guest guest_nice]
    busy=$((f[1] + f[2] + f[3] + f[6] + f[7] + f[8]))
    total=$((busy + f[4] + f[5]))
    ours=$(cpu_ticks "$UP_PID")
    if [[ -n ${1:-} ]]; then
        ours=$((ours + $(cpu_ticks "$1")))
    fi
    st=$(<"/proc/$$/stat")
    read -r -a f <<<"${st##*) }"
    # After "pid (comm) ": f[11..14] = utime stime cutime cstime.
    ours=$((ours + f[11] + f[12] + f[13] + f[14]))
    printf '%s %s %s\n' "$total" "$busy" "$ours"
}

# Connections the upstream has accepted so far (stub_status), or empty without it.
upstream_accepts() {
    [[ $HAVE_STUB_STATUS == 1 ]] || return 0
    curl -sf --max-time 2 "http://127.0.0.1:$UP_PORT/nginx_status" | awk 'NR == 3 { print $1 }' || true
}

# wrk's latency figure (e.g. 412.00us, 1.20ms, 2.01s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v; u = v
        sub(/[a-z]+$/, "", n); sub(/^[0-9.]+/, "", u)
        if (u == "us") m = 0.001; else if (u == "ms") m = 1; else if (u == "s") m = 1000
        else if (u == "m") m = 60000; else if (u == "h") m = 3600000; else exit 1
        printf "%.3f", n * m
    }'
}


# stop_proc PID: TERM, up to 5 s, then KILL; reaps it and forgets it for the cleanup trap.
stop_proc() {
    local pid=$1 i p
    local -a keep=()
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

# --- start the upstream and nginx -------------------------------------------------------

free_port UP_PORT

mkdir -p "$TMP/upstream/temp"
log "upstream nginx on 127.0.0.1:$UP_PORT (1 worker)"
status_location=''
if [[ $HAVE_STUB_STATUS == 1 ]]; then
    status_location='location = /nginx_status { stub_status; }'
fi
# /__x_added echoes the request's x-added header: the check that each weft case runs the
# filters it should (only add_header sets it). The measured path is / only.
start_nginx upstream <<EOF
worker_processes 1;
events { worker_connections 4096; }
http {
    access_log off;
$(nginx_temp_paths "$TMP/upstream/temp")
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$UP_PORT;
        $status_location
        location = /__x_added {
            default_type text/plain;
            return 200 "x-added=\$http_x_added\n";
        }
        location / {
            default_type text/plain;
            return 200 "ok\n";
        }
    }
}
EOF
UP_PID=$LAST_PID
wait_for "upstream nginx" "$UP_PID" "http://127.0.0.1:$UP_PORT/" "$TMP/upstream/stdout.log" "$TMP/upstream/error.log"

# A certificate for the TLS cases (a throwaway EC P-256 key made here, never committed).
TLS_DIR=$TMP/tls
if selected nginx+tls || selected weft+tls; then
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" >/dev/null 2>&1 ||
        die "openssl could not make the test certificate"
    chmod 644 "$TLS_DIR/key.pem"
fi

NGX_PID=''
NGX_TLS_SERVER=''
if selected nginx+tls; then
    free_port NGX_TLS_PORT
    NGX_TLS_SERVER="server {
        listen 127.0.0.1:$NGX_TLS_PORT ssl;
        ssl_certificate $TLS_DIR/cert.pem;
        ssl_certificate_key $TLS_DIR/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
fi
if selected nginx || selected nginx+tls; then
    free_port NGX_PORT
    mkdir -p "$TMP/proxy/temp"
    log "nginx reverse proxy on 127.0.0.1:$NGX_PORT (worker_processes $WORKERS)"
    start_nginx proxy <<EOF
worker_processes $WORKERS;
events { worker_connections 4096; }
http {
    access_log off;
$(nginx_temp_paths "$TMP/proxy/temp")
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 256;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    $NGX_TLS_SERVER
}
EOF
    NGX_PID=$LAST_PID
    wait_for "nginx proxy" "$NGX_PID" "http://127.0.0.1:$NGX_PORT/" "$TMP/proxy/stdout.log" "$TMP/proxy/error.log"
fi

# --- weft, one process per case ---------------------------------------------------------

# Each weft case's filter chain, as NAME=FIXTURE words (the module is FIXTURE.wasm).
declare -A WEFT_FILTERS=(
    [weft]=''
    [weft+noop]='noop=noop'
    [weft+add_header]='add_header=add_header'
    [weft+4noop]='noop1=noop noop2=noop noop3=noop noop4=noop'
    [weft+builtin]='builtin'
    [weft+tls]=''
)
# What the upstream's /__x_added answers through each weft case.
declare -A WEFT_X_ADDED=([weft]='' [weft+noop]='' [weft+add_header]=1 [weft+4noop]='' [weft+builtin]='' [weft+tls]='')

# The weft+builtin chain: every request passes each filter's checks (the API key wrk
# sends, a rate limit it never reaches) and the router picks the cluster. telemetry's
# access log is off, as weft's own is in every case.
BUILTIN_FILTERS=$(<"$ROOT/benches/builtin-chain.yaml")
API_KEY_HEADER='x-api-key: weft-bench-key'

# start_weft CASE: writes $TMP/CASE/weft.yaml and starts weft on fresh ports; sets
# WEFT_PID, WEFT_PORT and ADMIN_PORT. Compiled modules are cached in $TMP/wasm-cache.
start_weft() {
    local name=$1 dir=$TMP/$1 f
    free_port WEFT_PORT
    free_port ADMIN_PORT
    mkdir -p "$dir"
    {
        printf 'admin: { address: 127.0.0.1:%s }\n' "$ADMIN_PORT"
        printf 'wasm: { cache_dir: "%s" }\n' "$TMP/wasm-cache"
        printf 'listeners:\n  - name: main\n    address: 127.0.0.1:%s\n' "$WEFT_PORT"
        printf '    access_log: false\n'
        if [[ $name == weft+tls ]]; then
            printf '    tls:\n      certificates:\n        - { cert: "%s", key: "%s" }\n' \
                "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem"
        fi
        if [[ ${WEFT_FILTERS[$name]} == builtin ]]; then
            printf '    filters:\n%s\n' "$BUILTIN_FILTERS"
        elif [[ -n ${WEFT_FILTERS[$name]} ]]; then
            printf '    filters:\n'
            for f in ${WEFT_FILTERS[$name]}; do
                printf '      - name: %s\n        module: "%s"\n' "${f%%=*}" "$FIXTURES/${f#*=}.wasm"
            done
        fi
        printf '    routes:\n      - cluster: up\n'
        printf 'clusters:\n  - name: up\n    endpoints: ["127.0.0.1:%s"]\n' "$UP_PORT"
    } >"$dir/weft.yaml"
    log "$name on 127.0.0.1:$WEFT_PORT (--workers $WORKERS), admin on 127.0.0.1:$ADMIN_PORT," \
        "filters: ${WEFT_FILTERS[$name]:-none}"
    "$WEFT" run --config "$dir/weft.yaml" --workers "$WORKERS" --log-level warn \
        --drain-timeout 1s >"$dir/weft.log" 2>&1 &
    WEFT_PID=$!
    PIDS+=("$WEFT_PID")
    wait_for "$name" "$WEFT_PID" "http://127.0.0.1:$ADMIN_PORT/ready" "$dir/weft.log"
}

# --- run the cases ----------------------------------------------------------------------

declare -A PATH_DESC=(
    [direct]='wrk → upstream'
    [nginx]='wrk → nginx → upstream'
    [weft]='wrk → weft → upstream'
    [weft+noop]='wrk → weft (1 × noop) → upstream'
    [weft+add_header]='wrk → weft (1 × add_header) → upstream'
    [weft+4noop]='wrk → weft (4 × noop) → upstream'
    [weft+builtin]='wrk → weft (telemetry, ratelimit, auth, router) → upstream'
    [nginx+tls]='wrk → nginx (HTTPS) → upstream'
    [weft+tls]='wrk → weft (HTTPS) → upstream'
)
declare -A RPS P50 P99 REQS CPU_US CPU_RAW NEWCONNS OTHER ABANDONED
# Each round's figures per case, space-separated, for the medians.
declare -A ROUND_RPS ROUND_P50 ROUND_P99 ROUND_CPU ROUND_OTHER ROUND_NEWCONNS
PROBLEMS=()

# Every case gets the API key the weft+builtin case's auth filter asks for.
WRK_ARGS=(-t"$THREADS" -c"$CONNECTIONS" --latency -H "$API_KEY_HEADER")

# run_wrk OUT ARGS...: wrk in the background and waited for, so INT/TERM stop it at once.
run_wrk() {
    local out=$1 rc=0
    shift
    wrk "$@" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=''
    return "$rc"
}

# check_wrk CASE PHASE FILE: records a problem for errors / non-2xx in wrk's output.
check_wrk() {
    local name=$1 phase=$2 file=$3 line
    if line=$(grep -E '^[[:space:]]*(Socket errors|Non-2xx or 3xx responses):' "$file"); then
        PROBLEMS+=("$name ($phase): $(printf '%s' "$line" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')")
        return 1
    fi
    if ! grep -q '^Requests/sec:' "$file"; then
        PROBLEMS+=("$name ($phase): wrk produced no result (see below)")
        cat "$file" >&2
        return 1
    fi
}

# preflight CASE URL: one GET must answer 200 "ok"; through weft, the upstream must see
# the x-added header the case's filters should (or should not) have added.
preflight() {
    local name=$1 url=$2 code body want
    code=$(curl -sk -o "$TMP/body-$name" -w '%{http_code}' --max-time 2 -H "$API_KEY_HEADER" "$url" || true)
    body=$(<"$TMP/body-$name")
    if [[ $code != 200 || $body != ok ]]; then
        die "$name: preflight GET $url answered $code '$body', expected 200 'ok'"
    fi
    [[ $name == weft* ]] || return 0
    want="x-added=${WEFT_X_ADDED[$name]}"
    code=$(curl -sk -o "$TMP/body-$name" -w '%{http_code}' --max-time 2 -H "$API_KEY_HEADER" "${url}__x_added" || true)
    body=$(<"$TMP/body-$name")
    if [[ $code != 200 || $body != "$want" ]]; then
        die "$name: preflight GET ${url}__x_added answered $code '$body', expected 200 '$want'" \
            "(are the filters running?)"
    fi
}

# measure CASE URL PROXY_PID: warm-up, then the measured run; fills RPS, P50, ... [CASE].
measure() {
    local name=$1 url=$2 proxy_pid=$3 out=$TMP/wrk-$1.txt
    local accepts_before accepts_after ticks_before=0 ticks_after=0
    local total_before busy_before ours_before total_after busy_after ours_after

    log "$name: warm-up ${WARMUP}s, then ${DURATION}s: wrk ${WRK_ARGS[*]} $url"
    run_wrk "$TMP/warmup-$name.txt" "${WRK_ARGS[@]}" -d"${WARMUP}s" "$url" ||
        PROBLEMS+=("$name (warm-up): wrk exited non-zero")
    check_wrk "$name" warm-up "$TMP/warmup-$name.txt" || true

    accepts_before=$(upstream_accepts)
    [[ -n $proxy_pid ]] && ticks_before=$(cpu_ticks "$proxy_pid")
    read -r total_before busy_before ours_before < <(cpu_snapshot "$proxy_pid")

    run_wrk "$out" "${WRK_ARGS[@]}" -d"${DURATION}s" "$url" ||
        PROBLEMS+=("$name: wrk exited non-zero")

    read -r total_after busy_after ours_after < <(cpu_snapshot "$proxy_pid")
    [[ -n $proxy_pid ]] && ticks_after=$(cpu_ticks "$proxy_pid")
    accepts_after=$(upstream_accepts)
    # Share of the machine's CPU time that other processes used during the run.
    OTHER[$name]=$(awk -v t=$((total_after - total_before)) \
        -v o=$((busy_after - busy_before - (ours_after - ours_before))) \
        'BEGIN { if (o < 0) o = 0; printf "%.0f%%", (t > 0 ? 100 * o / t : 0) }')

    if ! check_wrk "$name" run "$out"; then
        RPS[$name]=0 P50[$name]=- P99[$name]=- REQS[$name]=0 CPU_US[$name]=- CPU_RAW[$name]=''
        NEWCONNS[$name]=- OTHER[$name]=-
        return 0
    fi
    RPS[$name]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    REQS[$name]=$(awk '/ requests in / { print $1 }' "$out")
    P50[$name]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")") || P50[$name]=-
    P99[$name]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")") || P99[$name]=-
    if [[ -n $proxy_pid && ${REQS[$name]} -gt 0 ]]; then
        CPU_RAW[$name]=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$clk_tck" -v n="${REQS[$name]}" \
            'BEGIN { printf "%.4f", t / hz / n * 1e6 }')
        CPU_US[$name]=$(awk -v c="${CPU_RAW[$name]}" 'BEGIN { printf "%.1f", c }')
    else
        CPU_US[$name]=- CPU_RAW[$name]=''
    fi
    if [[ -n $accepts_before && -n $accepts_after ]]; then
        # The second stub_status request's own connection is counted too.
        NEWCONNS[$name]=$((accepts_after - accepts_before - 1))
    else
        NEWCONNS[$name]=-
    fi
    if ! awk -v r="${RPS[$name]}" 'BEGIN { exit !(r > 0) }'; then
        PROBLEMS+=("$name: zero requests/s")
    fi
}

# check_weft_metrics CASE: anything this weft counted as an error: 502/504s, connect
# errors, edge rejections, filter failures, and answers other than 2xx. weft files a
# request the client abandoned before the response (status 0) under code_class="1xx"; each
# time wrk stops it abandons up to one in-flight request per connection, so up to
# 2 x CONNECTIONS of those (warm-up + run) are expected.
check_weft_metrics() {
    local name=$1 metrics errors failures abandoned
    metrics=$(curl -sf --max-time 2 "http://127.0.0.1:$ADMIN_PORT/stats/prometheus" || true)
    printf '%s\n' "$metrics" >"$TMP/$name/metrics.txt"
    read -r errors failures abandoned < <(printf '%s\n' "$metrics" | awk '
        /^weft_upstream_(cx_connect_errors|rq_timeout|rq_error)_total/ { n += $NF }
        /^weft_downstream_rq_rejected_total/ { n += $NF }
        /^weft_filter_failures_total/ { f += $NF }
        /^weft_requests_total\{/ && /code_class="[345]xx"/ { n += $NF }
        /^weft_requests_total\{/ && /code_class="1xx"/ { a += $NF }
        END { printf "%d %d %d\n", n, f, a }')
    if [[ -z $metrics ]]; then
        PROBLEMS+=("$name: could not read /stats/prometheus")
    elif [[ $errors != 0 ]]; then
        PROBLEMS+=("$name: $errors error/non-2xx events in its metrics (see $TMP/$name/metrics.txt)")
    elif [[ $failures != 0 ]]; then
        PROBLEMS+=("$name: $failures filter failures in its metrics (see $TMP/$name/metrics.txt)")
    elif ((abandoned > 2 * CONNECTIONS)); then
        PROBLEMS+=("$name: $abandoned requests without a status (1xx class), more than wrk can abandon")
    elif ((abandoned > 0)); then
        ABANDONED[$name]=$abandoned
    fi
}

# keep_round CASE: notes this round's figures of CASE.
keep_round() {
    local name=$1
    ROUND_RPS[$name]+="${RPS[$name]} "
    ROUND_P50[$name]+="${P50[$name]} "
    ROUND_P99[$name]+="${P99[$name]} "
    ROUND_CPU[$name]+="${CPU_RAW[$name]:--} "
    ROUND_OTHER[$name]+="${OTHER[$name]%\%} "
    ROUND_NEWCONNS[$name]+="${NEWCONNS[$name]} "
}

# median VALUES...: the median of the numbers among VALUES ("-" if none).
median() {
    printf '%s\n' "$@" | awk '/^[0-9.]+$/ { v[n++] = $1 }
        END {
            if (n == 0) { print "-"; exit }
            # Insertion sort: a handful of rounds.
            for (i = 1; i < n; i++) { x = v[i]; for (j = i - 1; j >= 0 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            print m
        }'
}

# most VALUES...: the largest of the numbers among VALUES ("-" if none).
most() {
    printf '%s\n' "$@" | awk '/^[0-9]+$/ { if (!seen || $1 > m) m = $1; seen = 1 } END { print seen ? m : "-" }'
}

for round in $(seq "$ROUNDS"); do
((ROUNDS > 1)) && log "round $round of $ROUNDS"
# Odd rounds run the cases in list order, even rounds in reverse, so that no case is always
# the one measured first after a pause or last before one.
ORDER=("${CASE_LIST[@]}")
if ((round % 2 == 0)); then
    ORDER=()
    for ((i = ${#CASE_LIST[@]} - 1; i >= 0; i--)); do ORDER+=("${CASE_LIST[$i]}"); done
fi
for name in "${ORDER[@]}"; do
    case $name in
        direct)
            preflight "$name" "http://127.0.0.1:$UP_PORT/"
            measure "$name" "http://127.0.0.1:$UP_PORT/" ''
            ;;
        nginx)
            preflight "$name" "http://127.0.0.1:$NGX_PORT/"
            measure "$name" "http://127.0.0.1:$NGX_PORT/" "$NGX_PID"
            ;;
        nginx+tls)
            preflight "$name" "https://127.0.0.1:$NGX_TLS_PORT/"
            measure "$name" "https://127.0.0.1:$NGX_TLS_PORT/" "$NGX_PID"
            ;;
        weft*)
            start_weft "$name"
            scheme=http
            [[ $name == weft+tls ]] && scheme=https
            preflight "$name" "$scheme://127.0.0.1:$WEFT_PORT/"
            measure "$name" "$scheme://127.0.0.1:$WEFT_PORT/" "$WEFT_PID"
            check_weft_metrics "$name"
            stop_proc "$WEFT_PID"
            ;;
    esac
    keep_round "$name"
done
done

# Each figure: the median of the rounds (the disturbance and new connections: the most).
if ((ROUNDS > 1)); then
    for name in "${CASE_LIST[@]}"; do
        read -r -a figures <<<"${ROUND_RPS[$name]}"
        RPS[$name]=$(median "${figures[@]}")
        read -r -a figures <<<"${ROUND_P50[$name]}"
        P50[$name]=$(median "${figures[@]}" | awk '/^[0-9.]+$/ { printf "%.3f", $1; next } { print }')
        read -r -a figures <<<"${ROUND_P99[$name]}"
        P99[$name]=$(median "${figures[@]}" | awk '/^[0-9.]+$/ { printf "%.3f", $1; next } { print }')
        read -r -a figures <<<"${ROUND_CPU[$name]}"
        CPU_RAW[$name]=$(median "${figures[@]}")
        if [[ ${CPU_RAW[$name]} == - ]]; then
            CPU_RAW[$name]='' CPU_US[$name]=-
        else
            CPU_US[$name]=$(awk -v c="${CPU_RAW[$name]}" 'BEGIN { printf "%.1f", c }')
        fi
        read -r -a figures <<<"${ROUND_OTHER[$name]}"
        OTHER[$name]="$(most "${figures[@]}")%"
        read -r -a figures <<<"${ROUND_NEWCONNS[$name]}"
        NEWCONNS[$name]=$(most "${figures[@]}")
    done
fi

# --- report -----------------------------------------------------------------------------

ratio() { # ratio A B -> "0.87x" (A/B), or "-"
    awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else printf "-" }'
}
# paired FIELD A B -> the per-round ratios A/B of one figure (ROUND_RPS or ROUND_P99), one per
# line, each round's A against the same round's B.
paired() {
    local -n field=$1
    local -a a b
    read -r -a a <<<"${field[$2]}"
    read -r -a b <<<"${field[$3]}"
    paste -d' ' <(printf '%s\n' "${a[@]}") <(printf '%s\n' "${b[@]}") |
        awk '$1 ~ /^[0-9.]+$/ && $2 ~ /^[0-9.]+$/ && $2 > 0 { printf "%.4f\n", $1 / $2 }'
}
# paired_summary A B -> "median of per-round ratios 1.030x (rounds: 1.05 0.98 ...); A ahead
# in 3 of 5 rounds", for requests/s.
paired_summary() {
    local ratios
    mapfile -t ratios < <(paired ROUND_RPS "$1" "$2")
    printf 'median of per-round ratios %.3fx (rounds: %s); %s ahead in %d of %d rounds' \
        "$(median "${ratios[@]}")" "$(printf '%.2f ' "${ratios[@]}" | sed 's/ $//')" "$1" \
        "$(printf '%s\n' "${ratios[@]}" | awk '$1 >= 1 { n++ } END { print n + 0 }')" "${#ratios[@]}"
}
# cpu_delta CASE -> the CPU per request CASE adds to plain weft, "+0.42" (µs), or "-".
cpu_delta() {
    [[ $1 == weft+* ]] || {
        printf -- '-'
        return 0
    }
    awk -v a="${CPU_RAW[$1]:-}" -v b="${CPU_RAW[weft]:-}" \
        'BEGIN { if (a != "" && b != "") printf "%+.2f", a - b; else printf "-" }'
}
pct() { # pct "12%" -> 12 ("-" or empty -> 0)
    local v=${1%\%}
    [[ $v =~ ^[0-9]+$ ]] && printf '%s' "$v" || printf '0'
}

# The issue's targets for the filter cases, each against plain weft in this run:
# TARGET[i], MEASURED[i], MET[i] ("yes", "no", "not run"; with a note when disturbed).
NOISY_PCT=10
TARGET=() MEASURED=() MET=()
add_target() { # add_target TEXT CASE KIND(rps|cpu) LIMIT
    local text=$1 name=$2 kind=$3 limit=$4 measured verdict a b other_w other_c
    a=${RPS[$name]:-0} b=${RPS[weft]:-0}
    if ! selected "$name" || ! selected weft ||
        ! awk -v a="$a" -v b="$b" 'BEGIN { exit !(a > 0 && b > 0) }'; then
        TARGET+=("$text") MEASURED+=("-") MET+=("not run (needs the weft and $name cases)")
        return 0
    fi
    case $kind in
        rps-cost) # requests/s lost vs weft, in %, must be < limit
            measured=$(awk -v a="$a" -v b="$b" 'BEGIN { c = 100 * (1 - a / b); printf "%.2fx weft (%.1f%% %s requests/s)", a / b, (c < 0 ? -c : c), (c < 0 ? "more" : "fewer") }')
            awk -v a="$a" -v b="$b" -v l="$limit" 'BEGIN { exit !(100 * (1 - a / b) < l) }' &&
                verdict=yes || verdict=no
            ;;
        rps-ratio) # requests/s ratio vs weft must be >= limit
            measured=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3fx weft requests/s", a / b }')
            awk -v a="$a" -v b="$b" -v l="$limit" 'BEGIN { exit !(a / b >= l) }' &&
                verdict=yes || verdict=no
            ;;
        cpu) # added CPU per request vs weft, in µs, must be < limit
            if [[ -z ${CPU_RAW[$name]:-} || -z ${CPU_RAW[weft]:-} ]]; then
                measured=- verdict='not measured'
            else
                measured="$(cpu_delta "$name") µs CPU per request (${CPU_US[$name]} vs ${CPU_US[weft]})"
                awk -v a="${CPU_RAW[$name]}" -v b="${CPU_RAW[weft]}" -v l="$limit" \
                    'BEGIN { exit !(a - b < l) }' && verdict=yes || verdict=no
            fi
            ;;
    esac
    other_w=$(pct "${OTHER[weft]:-}") other_c=$(pct "${OTHER[$name]:-}")
    if ((other_w > NOISY_PCT || other_c > NOISY_PCT)); then
        verdict+=", but the run was disturbed (other processes' CPU: weft ${OTHER[weft]}, $name ${OTHER[$name]})"
    fi
    # A filter cannot make weft faster: if it seems to, the noise is larger than its cost.
    if { [[ $kind == rps-* ]] && awk -v a="$a" -v b="$b" 'BEGIN { exit !(a > b) }'; } ||
        { [[ $kind == cpu && -n ${CPU_RAW[$name]:-} && -n ${CPU_RAW[weft]:-} ]] &&
            awk -v a="${CPU_RAW[$name]}" -v b="${CPU_RAW[weft]}" 'BEGIN { exit !(a < b) }'; }; then
        verdict+="; inconclusive: $name ran faster than weft in this run, so the run's noise is larger than the filter's cost"
    fi
    TARGET+=("$text") MEASURED+=("$measured") MET+=("$verdict")
}
add_target "a no-op filter costs < 3% requests/s (\`weft+noop\` vs \`weft\`)" weft+noop rps-cost 3
add_target "a no-op filter costs < 1 µs per request (\`weft+noop\` vs \`weft\`)" weft+noop cpu 1
add_target "a header-adding filter costs < 3 µs per request (\`weft+add_header\` vs \`weft\`)" weft+add_header cpu 3
add_target "a 4-filter chain keeps ≥ 0.85x the requests/s of no filters (\`weft+4noop\` vs \`weft\`)" weft+4noop rps-ratio 0.85
add_target "the four built-in filters keep ≥ 0.85x the requests/s of no filters (\`weft+builtin\` vs \`weft\`)" weft+builtin rps-ratio 0.85
# The core proxy against nginx: requests/s at least nginx's and p99 no higher, as the
# ratios of the medians and, with rounds, as the median of each round's ratio (the rounds
# pair cases measured one right after the other, so a swing of the machine between rounds
# weighs less).
vs_nginx_target() { # vs_nginx_target WEFT_CASE NGINX_CASE
    local w=$1 n=$2 a b pa pb v med_r med_p
    TARGET+=("requests/s ≥ 1.0x nginx and p99 ≤ nginx's (\`$w\` vs \`$n\`)")
    if ! selected "$w" || ! selected "$n"; then
        MEASURED+=("-") MET+=("not run (needs the $n and $w cases)")
        return 0
    fi
    a=${RPS[$w]:-0} b=${RPS[$n]:-0} pa=${P99[$w]:-0} pb=${P99[$n]:-0}
    if awk -v a="$a" -v b="$b" -v pa="$pa" -v pb="$pb" 'BEGIN { exit !(b > 0 && a >= b && pa <= pb) }'; then
        v=yes
    else
        v=no
    fi
    local text
    text="$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3fx requests/s (%.0f vs %.0f)", a / b, a, b }'), p99 $pa vs $pb ms"
    if ((ROUNDS > 1)); then
        local -a rs ps
        mapfile -t rs < <(paired ROUND_RPS "$w" "$n")
        mapfile -t ps < <(paired ROUND_P99 "$w" "$n")
        med_r=$(median "${rs[@]}")
        med_p=$(median "${ps[@]}")
        text+="; per round: requests/s $(paired_summary "$w" "$n"), p99 ratio median $(printf '%.3f' "$med_p")"
        if awk -v r="$med_r" -v p="$med_p" 'BEGIN { exit !(r >= 1 && p <= 1) }'; then
            v+=" (per-round medians: yes)"
        else
            v+=" (per-round medians: no)"
        fi
    fi
    MEASURED+=("$text") MET+=("$v")
}
vs_nginx_target weft nginx
# HTTPS: weft against nginx, both terminating TLS with the same certificate.
if selected weft+tls && selected nginx+tls; then
    a=${RPS[weft+tls]:-0} b=${RPS[nginx+tls]:-0}
    if awk -v a="$a" -v b="$b" 'BEGIN { exit !(a >= b && b > 0) }'; then v=yes; else v=no; fi
    TARGET+=("HTTPS requests/s ≥ 1.0x nginx terminating TLS (\`weft+tls\` vs \`nginx+tls\`)")
    if ((ROUNDS > 1)); then
        MEASURED+=("$(ratio "$a" "$b") nginx+tls requests/s; per round: $(paired_summary weft+tls nginx+tls)")
    else
        MEASURED+=("$(ratio "$a" "$b") nginx+tls requests/s")
    fi
    MET+=("$v")
else
    TARGET+=("HTTPS requests/s ≥ 1.0x nginx terminating TLS (\`weft+tls\` vs \`nginx+tls\`)")
    MEASURED+=("-") MET+=("not run (needs the nginx+tls and weft+tls cases)")
fi

CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[[ -n $CPU_MODEL ]] || CPU_MODEL=unknown
NPROC=$(nproc)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown ]] && ! git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null; then
    COMMIT="$COMMIT + uncommitted changes"
fi
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's|.*nginx/||')
WRK_VERSION=$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }' || true)
WRK_CMD="wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency"
ABANDONED_NOTE=''
for name in "${CASE_LIST[@]}"; do
    [[ -n ${ABANDONED[$name]:-} ]] && ABANDONED_NOTE+="${ABANDONED_NOTE:+, }$name ${ABANDONED[$name]}"
done
[[ -z $ABANDONED_NOTE ]] ||
    ABANDONED_NOTE="weft's metrics count request(s) as code_class=\"1xx\" ($ABANDONED_NOTE): requests wrk abandoned in flight when it stopped (weft records status 0 as 1xx)."

echo
echo "Load: HTTP/1.1 keep-alive, loopback, ${DURATION}s per case after a ${WARMUP}s warm-up, $ROUNDS round(s)"
echo "  machine:  $NPROC cores ($CPU_MODEL), shared by wrk, the upstream and the proxy"
echo "  workers:  nginx worker_processes=$WORKERS, weft --workers=$WORKERS, upstream nginx 1 worker"
echo "  client:   $WRK_CMD"
echo
fmt='%-15s %10s %7s %7s %8s %9s %8s %9s %9s %9s %9s\n'
# shellcheck disable=SC2059
printf "$fmt" case 'requests/s' 'p50 ms' 'p99 ms' 'vs nginx' 'vs direct' 'vs weft' 'CPU us/rq' '+us vs weft' 'new up cx' 'other CPU'
for name in "${CASE_LIST[@]}"; do
    # shellcheck disable=SC2059
    printf "$fmt" "$name" "$(printf '%.0f' "${RPS[$name]}")" "${P50[$name]}" "${P99[$name]}" \
        "$(ratio "${RPS[$name]}" "${RPS[nginx]:-}")" "$(ratio "${RPS[$name]}" "${RPS[direct]:-}")" \
        "$(ratio "${RPS[$name]}" "${RPS[weft]:-}")" "${CPU_US[$name]}" "$(cpu_delta "$name")" \
        "${NEWCONNS[$name]}" "${OTHER[$name]}"
done
echo
echo "CPU us/rq: the proxy's CPU time (all its processes/threads) per request during the run."
echo "+us vs weft: CPU per request the filter case adds to plain weft (same run)."
echo "new up cx: connections the upstream accepted during the run (direct: wrk's own + its probe)."
echo "other CPU: share of all cores' time used by processes other than this benchmark's during the run."
[[ -z $ABANDONED_NOTE ]] || echo "note: $ABANDONED_NOTE"
# per_round CASE: its requests/s in each round, "83412 / 91398 / 80211".
per_round() {
    local figure out=''
    for figure in ${ROUND_RPS[$1]}; do
        out+="${out:+ / }$(printf '%.0f' "$figure")"
    done
    printf '%s' "$out"
}
if ((ROUNDS > 1)); then
    echo
    echo "Medians of $ROUNDS rounds (each round runs every case once: odd rounds in this order, even"
    echo "rounds in reverse); requests/s per round:"
    for name in "${CASE_LIST[@]}"; do
        printf '  %-15s %s\n' "$name" "$(per_round "$name")"
    done
fi
echo
echo "Targets (this run):"
for i in "${!TARGET[@]}"; do
    printf '  - %s: %s -> %s\n' "${TARGET[$i]//\`/}" "${MEASURED[$i]}" "${MET[$i]}"
done

# Anything the servers logged at warn or worse.
LOGS=("$TMP/upstream/error.log")
selected nginx && LOGS+=("$TMP/proxy/error.log")
for name in "${CASE_LIST[@]}"; do
    [[ $name == weft* ]] && LOGS+=("$TMP/$name/weft.log")
done
for f in "${LOGS[@]}"; do
    if [[ -s $f ]] && grep -qvE '^\s*$' "$f"; then
        echo
        echo "note: $(basename "$(dirname "$f")") logged $(wc -l <"$f") line(s); last ones:"
        tail -n 5 "$f"
    fi
done

if [[ ${#PROBLEMS[@]} -gt 0 ]]; then
    {
        echo
        echo "!!! LOAD BENCHMARK FAILED: the proxies did not answer every request with 2xx !!!"
        printf '  - %s\n' "${PROBLEMS[@]}"
        echo "raw wrk output:"
        for name in "${CASE_LIST[@]}"; do
            echo "--- $name"
            cat "$TMP/wrk-$name.txt" 2>/dev/null || true
        done
    } >&2
    [[ $WRITE_DOC == 1 ]] && echo "docs/benchmarks.md left unchanged" >&2
    exit 1
fi

if [[ $WRITE_DOC == 0 ]]; then
    log "not updating docs/benchmarks.md (--quick / --no-doc)"
    exit 0
fi

section=$TMP/section.md
{
    echo "$SECTION_HEADING"
    echo
    echo "Measured $DATE with \`benches/load.sh\` (tree at $COMMIT; weft $WEFT_DESC)."
    echo
    echo "- Machine: $NPROC cores, $CPU_MODEL; wrk, the upstream and the proxy all run on it, over loopback."
    echo "- Client: \`$WRK_CMD\` (wrk $WRK_VERSION), HTTP/1.1 keep-alive, after a ${WARMUP}s warm-up per case."
    echo "- Upstream: nginx $NGINX_VERSION, 1 worker, \`return 200 \"ok\\n\"\`, access log off."
    if selected nginx; then
        echo "- nginx proxy: \`worker_processes $WORKERS\`, \`upstream {}\` with \`keepalive\`, \`proxy_http_version 1.1\`, \`proxy_set_header Connection \"\"\`, access log off."
    fi
    echo "- weft: \`weft run --workers $WORKERS\`, one listener with \`access_log: false\`, one route to one cluster."
    if [[ $FILTER_CASES == 1 ]]; then
        echo "- Filter cases: the same weft config plus a \`filters:\` list on the listener: \`weft+noop\` one"
        echo "  \`noop\` filter, \`weft+add_header\` one \`add_header\` filter (adds request header \`x-added: 1\`),"
        echo "  \`weft+4noop\` four \`noop\` filters (\`noop1\`..\`noop4\`). These modules are the test fixtures of"
        echo "  \`tests/wasm-filters\` (proxy-wasm Rust SDK 0.2.5), \`wasm32-unknown-unknown\` builds from"
        echo "  \`scripts/build-wasm.sh\`. \`weft+builtin\` runs the four built-in filters embedded in the binary:"
        echo "  telemetry (access log off), ratelimit (one per-client-IP bucket it never empties), auth (an API"
        echo "  key, which wrk sends in every case) and router (one rule choosing the cluster)."
        echo "  Every weft case is its own weft process, started before its case and stopped after it."
    fi
    if selected nginx+tls || selected weft+tls; then
        echo "- TLS cases: HTTPS from wrk to the proxy (plain HTTP to the upstream), TLS 1.3 as negotiated,"
        echo "  one throwaway self-signed EC P-256 certificate made by openssl for the run, the same for both."
        echo "  \`nginx+tls\` is a second server block of the nginx proxy, \`weft+tls\` a weft listener with \`tls\`."
        echo "  wrk keeps its connections, so these measure TLS record costs more than handshakes."
    fi
    echo
    echo "| Case | Path | Requests/s | p50 (ms) | p99 (ms) | vs nginx | vs direct | vs weft | Proxy CPU per request (µs) | Added CPU per request vs weft (µs) | New upstream connections | Other processes' CPU |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for name in "${CASE_LIST[@]}"; do
        printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${PATH_DESC[$name]}" \
            "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" \
            "$(ratio "${RPS[$name]}" "${RPS[nginx]:-}")" "$(ratio "${RPS[$name]}" "${RPS[direct]:-}")" \
            "$(ratio "${RPS[$name]}" "${RPS[weft]:-}")" "${CPU_US[$name]}" "$(cpu_delta "$name")" \
            "${NEWCONNS[$name]}" "${OTHER[$name]}"
    done
    echo
    echo "These numbers come from one run on a noisy, shared $NPROC-core machine where the load"
    echo "generator, the upstream and the proxy compete for the same cores, so absolute values"
    echo "move from run to run; the ratios between cases of the same run are the figures to read."
    echo "Proxy CPU per request is the proxy's user+system time during the run divided by the"
    echo "requests wrk completed; new upstream connections are those the upstream accepted during"
    echo "the run (for direct, wrk's $CONNECTIONS plus the one it opens to probe the address). For the"
    echo "proxies a few are expected even with a warm pool: requests still in flight when the"
    echo "warm-up's wrk stops are abandoned, and the proxy drops those upstream connections."
    echo "Other processes' CPU is the share of all cores' time used during the run by anything"
    echo "but wrk, the upstream and the proxy (the host's steal time included): a case with a high"
    echo "figure was disturbed."
    if ((ROUNDS > 1)); then
        echo
        echo "Each figure is the median of $ROUNDS rounds, each round running every case once, odd"
        echo "rounds in the order of the table and even rounds in reverse (other processes' CPU and"
        echo "new upstream connections: the largest); the ratios in the table are those of the"
        echo "medians. Requests/s in each round:"
        echo
        echo "| Case | Requests/s by round |"
        echo "|---|---|"
        for name in "${CASE_LIST[@]}"; do
            printf '| %s | %s |\n' "$name" "$(per_round "$name")"
        done
    fi
    if [[ $FILTER_CASES == 1 ]]; then
        echo
        echo "\"vs weft\" and \"Added CPU per request vs weft\" compare each case with plain weft (no"
        echo "filters) in the same run; every weft case is a separate process, measured one after"
        echo "another. Separate runs of the same configuration can differ by more than these targets"
        echo "even when no other process is busy (wrk, the upstream and the proxy share $NPROC cores, and"
        echo "what the host does with them is invisible here), so one run can misjudge a target: confirm"
        echo "a verdict with a second run. A filter case that comes out faster than plain weft is marked"
        echo "inconclusive."
    fi
    echo
    echo "Targets from the issues, for this run (against nginx with rounds, the median of each"
    echo "round's ratio too: consecutive cases in a round meet the machine in the same state more"
    echo "often than the medians of whole rounds do):"
    echo
    echo "| Target | Measured | Met? |"
    echo "|---|---|---|"
    for i in "${!TARGET[@]}"; do
        printf '| %s | %s | %s |\n' "${TARGET[$i]}" "${MEASURED[$i]}" "${MET[$i]}"
    done
} >"$section"

mkdir -p "$(dirname "$DOC")"
new_doc=$TMP/benchmarks.md
if [[ -f $DOC ]]; then
    # Replace our section (up to the next heading, so hand-written ### subsections after it
    # are kept); append it if it is not there.
    awk -v heading="$SECTION_HEADING" -v sf="$section" '
        function emit(  l) { while ((getline l < sf) > 0) print l; close(sf); done = 1 }
        skipping && (/^# / || /^## / || /^### /) { skipping = 0; print "" }
        skipping { next }
        $0 == heading { emit(); skipping = 1; next }
        { print; last = $0 }
        END { if (!done) { if (NR > 0 && last != "") print ""; emit() } }
    ' "$DOC" >"$new_doc"
else
    { printf '# Benchmarks\n\n'; cat "$section"; } >"$new_doc"
fi
cat "$new_doc" >"$DOC"
log "wrote $DOC"
