#!/usr/bin/env bash
# On-the-fly gzip, portshare vs nginx `gzip on`, one run: a 50 KB HTML file
# requested with `Accept-Encoding: gzip` by `wrk -t2 -c100 -d${DUR}s`, both
# servers at the same gzip level (portshare's default, 4). Prints req/s,
# server CPU per request (user + system time of the server and all its
# processes over the run, from /proc, divided by the requests wrk counted)
# and the response size, as a Markdown table.
#
#   bash bench/gzip.sh              # DUR=10
#   DUR=5 LEVEL=1 bash bench/gzip.sh
#
# Env: DUR, LEVEL (gzip level for both, default 4), BASE_PORT (default
# 18700; uses +1..+3), BENCH_PORTSHARE_BIN, KEEP_TMP=1.
#
# What is compared: nginx compresses every response; portshare compresses
# a small file once per coding and serves the compressed bytes from its file
# cache (issue 25), so this measures the design, not zlib against zlib-rs.
# The "not cached" rows do: a second portshare with a 1000-byte cache limit
# reads and compresses the page on every request.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BASE_PORT=${BASE_PORT:-18700}
LEVEL=${LEVEL:-4}
PS_PORT=$((BASE_PORT + 1))
NG_PORT=$((BASE_PORT + 2))

install_tools
build_portshare
raise_nofile
need_free_port "$PS_PORT" "$NG_PORT"

DOCROOT=$BENCH_TMP/docroot
make_docroot "$DOCROOT"
# 50 KB of ordinary HTML (a table of rows, as a generated page has).
{
    printf '<!doctype html>\n<html><head><title>portshare gzip bench</title></head><body><table>\n'
    for ((i = 0; i < 1000; i++)); do
        printf '<tr><td class="id">%d</td><td class="name">row %d</td></tr>\n' "$i" $((i * 7919 % 10007))
    done
} >"$DOCROOT/page.html"
# (truncate, not `| head -c`: head closing the pipe early is a SIGPIPE that
# pipefail turns into a failure)
truncate -s 51000 "$DOCROOT/page.html"
printf '</table></body></html>\n' >>"$DOCROOT/page.html"
SIZE=$(stat -c %s "$DOCROOT/page.html")

echo "compress_level=gzip:$LEVEL" >"$BENCH_TMP/ps-extra.ini"
# portshare reads site keys from [param]: the extra file is appended to it.
start_portshare main "$PS_PORT" "$DOCROOT" 0 "" "" "$BENCH_TMP/ps-extra.ini" || die "portshare did not start"
PS_PID=$LAST_PID
# A second portshare whose memory cache keeps nothing over 1000 bytes
# (`http add cacheparam`, as a user would): the page is then read and
# compressed on every request, streamed through the encoder, as nginx does.
STREAM_PORT=$((BASE_PORT + 3))
need_free_port "$STREAM_PORT"
STREAMED=""
if start_portshare stream "$STREAM_PORT" "$DOCROOT" 0 "" "" "$BENCH_TMP/ps-extra.ini"; then
    STREAM_PID=$LAST_PID
    portshare_cli "$BENCH_TMP/portshare-stream/GLOBAL.INI" http add cacheparam \
        type=maxcacheresponsesize value=1000 >&2 || true
    # Streamed: no Content-Length on the gzip answer.
    if ! curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' "http://127.0.0.1:$STREAM_PORT/page.html" |
        tr -d '\r' | grep -qi '^content-length:'; then
        STREAMED=1
    else
        log "portshare (stream) still answers from its cache; its row is skipped"
    fi
fi
NGINX_HTTP_EXTRA="gzip on; gzip_comp_level $LEVEL; gzip_min_length 1024; gzip_vary on;" \
    start_nginx "$NG_PORT" "$DOCROOT" || die "nginx did not start"
NG_PID=$LAST_PID

declare -A PORT=([portshare]=$PS_PORT [nginx]=$NG_PORT) PID=([portshare]=$PS_PID [nginx]=$NG_PID)
SERVERS=(portshare nginx)
if [[ -n $STREAMED ]]; then
    PORT[stream]=$STREAM_PORT PID[stream]=$STREAM_PID
    SERVERS=(portshare stream nginx)
fi
declare -A GZ_SIZE
for s in "${SERVERS[@]}"; do
    url="http://127.0.0.1:${PORT[$s]}/page.html"
    enc=$(curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' "$url" | tr -d '\r' |
        awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')
    [[ $enc == gzip ]] || die "$s does not gzip /page.html (Content-Encoding: ${enc:-none})"
    GZ_SIZE[$s]=$(curl -s -H 'Accept-Encoding: gzip' "$url" | wc -c)
    [[ $(curl -s -H 'Accept-Encoding: gzip' "$url" | gunzip | wc -c) == "$SIZE" ]] ||
        die "$s: the gzip body does not decode to the file"
done

# cpu_ticks PID: utime + stime of PID and its descendants, in clock ticks.
cpu_ticks() {
    local p total=0
    for p in "$1" $(descendants "$1"); do
        [[ -r /proc/$p/stat ]] || continue
        total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

declare -A RPS CPU
for s in "${SERVERS[@]}"; do
    log "wrk -t2 -c100 -d${DUR}s $s /page.html (gzip)"
    t0=$(cpu_ticks "${PID[$s]}")
    if RPS[$s]=$(wrk_rps "http://127.0.0.1:${PORT[$s]}/page.html" -H 'Accept-Encoding: gzip'); then
        t1=$(cpu_ticks "${PID[$s]}")
        # wrk_rps ran in a subshell: its $WRK_OUT is the newest raw file.
        out=$(ls -t "$BENCH_TMP"/raw/wrk.* | head -n 1)
        n=$(awk '/requests in/ { print $1 }' "$out")
        CPU[$s]=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
    else
        RPS[$s]=err CPU[$s]=err
    fi
    log "  $s: ${RPS[$s]} req/s, ${CPU[$s]} µs CPU/request"
done

echo
echo "On-the-fly gzip (level $LEVEL) of a $SIZE-byte HTML file, wrk -t2 -c100 -d${DUR}s, Accept-Encoding: gzip, loopback, $(nproc) cores; access logs to files for both."
echo
echo "| | portshare | nginx | portshare / nginx |"
echo "| --- | ---: | ---: | ---: |"
echo "| req/s | $(fmt_num "${RPS[portshare]}") | $(fmt_num "${RPS[nginx]}") | $(ratio "${RPS[portshare]}" "${RPS[nginx]}") |"
echo "| server CPU µs/request | ${CPU[portshare]} | ${CPU[nginx]} | $(ratio "${CPU[portshare]}" "${CPU[nginx]}") |"
echo "| gzip body bytes | ${GZ_SIZE[portshare]} | ${GZ_SIZE[nginx]} | $(ratio "${GZ_SIZE[portshare]}" "${GZ_SIZE[nginx]}") |"
if [[ -n $STREAMED ]]; then
    echo "| req/s, not cached (compressed per request) | $(fmt_num "${RPS[stream]}") | $(fmt_num "${RPS[nginx]}") | $(ratio "${RPS[stream]}" "${RPS[nginx]}") |"
    echo "| server CPU µs/request, not cached | ${CPU[stream]} | ${CPU[nginx]} | $(ratio "${CPU[stream]}" "${CPU[nginx]}") |"
    echo "| gzip body bytes, not cached | ${GZ_SIZE[stream]} | ${GZ_SIZE[nginx]} | $(ratio "${GZ_SIZE[stream]}" "${GZ_SIZE[nginx]}") |"
fi
