#!/usr/bin/env bash
# portshare vs nginx on static files, one run: starts both on the same
# docroot (loopback), runs `wrk -t2 -c100 -d${DUR}s` on a 100-byte file and a
# 1 MiB file against each, and prints req/s and the portshare/nginx ratio as
# a Markdown table. Both servers write an access log to a file.
#
#   bash bench/static.sh            # DUR=10
#   DUR=3 bash bench/static.sh
#
# Env: DUR (seconds per wrk run), BASE_PORT (default 18400; uses +1, +2),
# BENCH_PORTSHARE_BIN (skip the build and use this binary), KEEP_TMP=1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BASE_PORT=${BASE_PORT:-18400}
PS_PORT=$((BASE_PORT + 1))
NG_PORT=$((BASE_PORT + 2))

install_tools
build_portshare
raise_nofile
need_free_port "$PS_PORT" "$NG_PORT"

DOCROOT=$BENCH_TMP/docroot
make_docroot "$DOCROOT"
start_portshare main "$PS_PORT" "$DOCROOT" || die "portshare did not start"
start_nginx "$NG_PORT" "$DOCROOT" || die "nginx did not start"

declare -A PORT=([portshare]=$PS_PORT [nginx]=$NG_PORT)
for s in portshare nginx; do
    http_ok "http://127.0.0.1:${PORT[$s]}/small.txt" --size 100 || die "$s does not serve /small.txt"
    http_ok "http://127.0.0.1:${PORT[$s]}/large.bin" --size 1048576 || die "$s does not serve /large.bin"
done

declare -A RPS
for file in small.txt large.bin; do
    for s in portshare nginx; do
        log "wrk -t2 -c100 -d${DUR}s $s /$file"
        RPS[$file/$s]=$(wrk_rps "http://127.0.0.1:${PORT[$s]}/$file") || RPS[$file/$s]=err
        log "  $s /$file: ${RPS[$file/$s]} req/s"
    done
done

echo
echo "Static files, wrk -t2 -c100 -d${DUR}s, loopback, $(nproc) cores; access logs to files for both."
echo
echo "| file | portshare req/s | nginx req/s | portshare / nginx |"
echo "| --- | ---: | ---: | ---: |"
for file in small.txt large.bin; do
    case $file in
    small.txt) label="100 B (small.txt)" ;;
    large.bin) label="1 MiB (large.bin)" ;;
    esac
    p=${RPS[$file/portshare]} n=${RPS[$file/nginx]}
    echo "| $label | $(fmt_num "$p") | $(fmt_num "$n") | $(ratio "$p" "$n") |"
done
