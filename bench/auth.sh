#!/usr/bin/env bash
# Basic authentication's cost: the same 100-byte file, unprotected and under
# an [auth:NAME] prefix (bcrypt cost 10, the credential cache on), on one
# portshare in the same run: `wrk -t2 -c100 -d${DUR}s`, req/s, alternating
# ROUNDS times, medians. Plain HTTP (allow_http=yes) so that TLS does not
# hide the difference. Target (issue 25): protected within 10 % of
# unprotected.
#
#   bash bench/auth.sh              # DUR=10, ROUNDS=2
#   DUR=3 ROUNDS=1 bash bench/auth.sh
#
# Env: DUR, ROUNDS, BASE_PORT (default 18700; uses +1),
# BENCH_PORTSHARE_BIN (skip the build and use this binary), KEEP_TMP=1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BASE_PORT=${BASE_PORT:-18700}
PS_PORT=$((BASE_PORT + 1))
ROUNDS=${ROUNDS:-2}

install_tools
build_portshare
raise_nofile
need_free_port "$PS_PORT"

DOCROOT=$BENCH_TMP/docroot
make_docroot "$DOCROOT"
mkdir -p "$DOCROOT/private"
cp "$DOCROOT/small.txt" "$DOCROOT/private/small.txt"

USERS=$BENCH_TMP/users.htpasswd
echo 'bench-password' | "$(portshare_bin)" user add --file "$USERS" --cost 10 --password-stdin bench >&2 ||
    die "portshare user add failed"
EXTRA=$BENCH_TMP/auth.ini
cat >"$EXTRA" <<INI
[auth:bench]
prefix=http://+:$PS_PORT/private/
users=$USERS
allow_http=yes
INI
start_portshare main "$PS_PORT" "$DOCROOT" 0 "" "" "$EXTRA" || die "portshare did not start"

AUTH="Authorization: Basic $(printf 'bench:bench-password' | base64)"
BASE=http://127.0.0.1:$PS_PORT
http_ok "$BASE/small.txt" --size 100 || die "portshare does not serve /small.txt"
http_ok "$BASE/private/small.txt" --size 100 -H "$AUTH" || die "the password is not accepted"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/private/small.txt")
[[ $code == 401 ]] || die "/private/small.txt without a password answered $code, not 401"

open=() protected=()
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r: wrk -t2 -c100 -d${DUR}s /small.txt"
    open+=("$(wrk_rps "$BASE/small.txt" || echo err)")
    log "  unprotected: ${open[-1]} req/s"
    log "round $r: wrk -t2 -c100 -d${DUR}s /private/small.txt (Basic)"
    protected+=("$(wrk_rps "$BASE/private/small.txt" -H "$AUTH" || echo err)")
    log "  protected: ${protected[-1]} req/s"
done
o=$(median "${open[@]}")
p=$(median "${protected[@]}")

echo
echo "Basic authentication, 100 B file, wrk -t2 -c100 -d${DUR}s, loopback, $(nproc) cores, plain HTTP;"
echo "bcrypt cost 10 with the credential cache; portshare $(portshare_version); median of $ROUNDS round(s)."
echo
echo "| case | req/s | vs unprotected |"
echo "| --- | ---: | ---: |"
echo "| unprotected /small.txt | $(fmt_num "$o") | – |"
echo "| [auth:] /private/small.txt, valid Basic credentials | $(fmt_num "$p") | $(ratio "$p" "$o") |"
