#!/usr/bin/env bash
# User-space instructions per request, portshare vs nginx, counted exactly
# by valgrind (cachegrind). Unlike req/s on a shared 2-core machine, the
# count does not move with the machine's load: a change that saves 500
# instructions per request shows as 500, run after run. See bench/README.md.
#
#   bash bench/instructions.sh
#
# Each server runs under valgrind twice, serving N1 and then N2 requests
# (h2load --h1, 10 connections); the difference of the two totals over
# N2 - N1 requests is what one request costs, start-up and shutdown
# cancelling out. All of a server's threads and processes are counted
# (nginx: master and workers; portshare: workers and log writer).
#
# What it does not count: time in the kernel (system calls, TCP), cache
# misses, waiting. It says how much work the server's own code does per
# request, not how fast it is; run.sh says that.
#
# Env: N1 (2000), N2 (12000), BASE_PORT (18700; uses +1, +31),
# BENCH_PORTSHARE_BIN (skip the build), KEEP_TMP=1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

N1=${N1:-2000}
N2=${N2:-12000}
BASE_PORT=${BASE_PORT:-18700}
PORT=$((BASE_PORT + 1))
BACKEND_PORT=$((BASE_PORT + 31))
((N2 > N1)) || die "N2 ($N2) must be larger than N1 ($N1)"

install_tools valgrind=valgrind
build_portshare
need_free_port "$PORT" "$BACKEND_PORT"
DOCROOT=$BENCH_TMP/docroot
make_docroot "$DOCROOT"
start_backend "$BACKEND_PORT" || die "the proxy backend (nginx) did not start"
http_ok "http://127.0.0.1:$BACKEND_PORT/" --body ok || die "the proxy backend does not answer"

APP_INI=$BENCH_TMP/app.ini
printf '[app:bench]\nprefix=http://+:%s/proxy/\nbackend=http://127.0.0.1:%s\n' "$PORT" "$BACKEND_PORT" >"$APP_INI"

# instructions SERVER PATH REQUESTS: COUNT = total instructions of one run
# of SERVER under valgrind serving REQUESTS requests for PATH. (Not printed:
# a command substitution's subshell would start the server out of reach of
# the EXIT trap that stops it.)
COUNT=0
instructions() {
    local server=$1 path=$2 n=$3 out pid
    out=$(mktemp -d "$BENCH_TMP/cg.XXXX")
    local wrap="valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=$out/cg.%p"
    case $server in
    portshare) SERVER_WRAP=$wrap START_TIMEOUT=120 start_portshare counted "$PORT" "$DOCROOT" 0 "" "" "$APP_INI" ;;
    nginx) SERVER_WRAP=$wrap START_TIMEOUT=120 PROXY_BACKEND=$BACKEND_PORT start_nginx "$PORT" "$DOCROOT" ;;
    esac || die "$server did not start under valgrind"
    pid=$LAST_PID
    local raw
    raw=$(_raw_file "h2load-$server")
    h2load --h1 -n "$n" -c 10 "http://127.0.0.1:$PORT$path" >"$raw" 2>&1 || true
    grep -q "^requests: $n total, $n started, $n done, $n succeeded" "$raw" ||
        die "$server did not answer all $n requests for $path: $(grep '^requests:' "$raw")"
    # Valgrind writes its counts when the processes exit: give them time.
    STOP_GRACE=120 forget_pid "$pid"
    ls "$out"/cg.* >/dev/null 2>&1 || die "valgrind wrote no counts for $server"
    COUNT=$(awk '/^summary:/ { s += $2 } END { printf "%d\n", s }' "$out"/cg.*)
}

declare -A IR # "server/path" → instructions per request
for path in /proxy/ /small.txt; do
    for server in portshare nginx; do
        log "$server $path: $N1 requests"
        instructions "$server" "$path" "$N1"
        first=$COUNT
        log "$server $path: $N2 requests"
        instructions "$server" "$path" "$N2"
        IR[$server$path]=$(((COUNT - first) / (N2 - N1)))
        log "  $server $path: ${IR[$server$path]} instructions per request"
    done
done

echo "User-space instructions per request (valgrind), portshare $(portshare_version) vs $(nginx_version); h2load --h1 -c10, $N2 - $N1 requests."
echo
echo "| request | portshare | nginx | portshare / nginx |"
echo "| --- | ---: | ---: | ---: |"
for path in /proxy/ /small.txt; do
    case $path in
    /proxy/) what="GET /proxy/ → backend (reverse proxy)" ;;
    *) what="GET /small.txt (100 B static file)" ;;
    esac
    echo "| $what | $(fmt_num "${IR[portshare$path]}") | $(fmt_num "${IR[nginx$path]}") | $(ratio "${IR[portshare$path]}" "${IR[nginx$path]}") |"
done
