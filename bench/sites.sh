#!/usr/bin/env bash
# What sites cost (issue 24): the same 100-byte file from a server with one
# site as before sites existed (security_headers=no, cache_control=off: the
# headers the server sent then) and from one with two sites (a second one
# by host name on the same port) and the default headers (nosniff,
# Referrer-Policy, Cache-Control) — two portshare processes in the same
# run: `wrk -t2 -c100 -d${DUR}s`, req/s, alternating ROUNDS times,
# medians. Target: two sites with the defaults within 3 % of one site.
#
#   bash bench/sites.sh             # DUR=10, ROUNDS=2
#
# Env: DUR, ROUNDS, BASE_PORT (default 18700; uses +1, +2),
# BENCH_PORTSHARE_BIN (skip the build and use this binary), KEEP_TMP=1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BASE_PORT=${BASE_PORT:-18700}
ONE_PORT=$((BASE_PORT + 1))
TWO_PORT=$((BASE_PORT + 2))
ROUNDS=${ROUNDS:-2}

install_tools
build_portshare
raise_nofile
need_free_port "$ONE_PORT" "$TWO_PORT"

DOCROOT=$BENCH_TMP/docroot
make_docroot "$DOCROOT"
BLOG=$BENCH_TMP/blog
make_docroot "$BLOG"

ONE=$BENCH_TMP/one.ini
printf 'security_headers=no\ncache_control=off\n' >"$ONE"
TWO=$BENCH_TMP/two.ini
printf '[site:blog]\nprefix=http://blog.test:%s/\npublic_dir=%s\n' "$TWO_PORT" "$BLOG" >"$TWO"
# start_portshare writes [param] first, so ONE's keys land in it.
start_portshare one "$ONE_PORT" "$DOCROOT" 0 "" "" "$ONE" || die "portshare (one site) did not start"
start_portshare two "$TWO_PORT" "$DOCROOT" 0 "" "" "$TWO" || die "portshare (two sites) did not start"

for port in "$ONE_PORT" "$TWO_PORT"; do
    http_ok "http://127.0.0.1:$port/small.txt" --size 100 || die "port $port does not serve /small.txt"
done
headers=$(curl -s -D - -o /dev/null "http://127.0.0.1:$TWO_PORT/small.txt")
grep -qi '^x-content-type-options: nosniff' <<<"$headers" || die "the two-site server sends no default headers"
grep -qi '^cache-control:' <<<"$headers" || die "the two-site server sends no Cache-Control"
headers=$(curl -s -D - -o /dev/null "http://127.0.0.1:$ONE_PORT/small.txt")
! grep -qi '^x-content-type-options' <<<"$headers" || die "the one-site server sends the default headers"

one=() two=()
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r: wrk -t2 -c100 -d${DUR}s, one site"
    one+=("$(wrk_rps "http://127.0.0.1:$ONE_PORT/small.txt" || echo err)")
    log "  one site: ${one[-1]} req/s"
    log "round $r: wrk -t2 -c100 -d${DUR}s, two sites and the default headers"
    two+=("$(wrk_rps "http://127.0.0.1:$TWO_PORT/small.txt" || echo err)")
    log "  two sites: ${two[-1]} req/s"
done
o=$(median "${one[@]}")
t=$(median "${two[@]}")

echo
echo "Sites, 100 B file, wrk -t2 -c100 -d${DUR}s, loopback, $(nproc) cores, plain HTTP;"
echo "portshare $(portshare_version); median of $ROUNDS round(s)."
echo
echo "| case | req/s | vs one site |"
echo "| --- | ---: | ---: |"
echo "| one site, headers as before sites (security_headers=no, cache_control=off) | $(fmt_num "$o") | – |"
echo "| two sites (by host name), default headers | $(fmt_num "$t") | $(ratio "$t" "$o") |"
