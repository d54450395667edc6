#!/usr/bin/env bash
# Metric (j): CGI, portshare vs Apache 2 with mod_cgid, on loopback. See
# bench/README.md.
#
#   bash bench/cgi.sh                 # DUR=10 s per load run, ROUNDS=3
#   DUR=5 ROUNDS=1 bash bench/cgi.sh
#   METRICS=j bash bench/run.sh       # the same, from run.sh
#
# Env: DUR, ROUNDS (default 3; the server order alternates, medians),
# BASE_PORT (default 18700; uses +1..+2), CGI_CONNS (wrk connections,
# default 10), BENCH_PORTSHARE_BIN (skip the build), BENCH_CGROUP=0 (server
# CPU from /proc only), KEEP_TMP=1.
#
# Both servers run the same script, hello.cgi:
#
#   #!/bin/sh
#   echo "Content-Type: text/plain"
#   echo
#   echo "hello from a CGI script"
#
# portshare through `[cgi] .cgi = direct` (it executes the file), Apache
# through mod_cgid (`AddHandler cgi-script .cgi`, start_apache in lib.sh: its
# own config under $BENCH_TMP, mpm_event, Debian's numbers). wrk keep-alive,
# -c$CGI_CONNS, on /hello.cgi: req/s and the server's CPU time per request,
# all of its processes and the scripts included (a cgroup per server; see
# "Server CPU time" in lib.sh and README.md).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-18700}
CGI_CONNS=${CGI_CONNS:-10}
PS_PORT=$((BASE_PORT + 1))
AP_PORT=$((BASE_PORT + 2))
BODY="hello from a CGI script"

install_tools apache2=apache2
build_portshare
raise_nofile
need_free_port "$PS_PORT" "$AP_PORT"

DOCROOT=$BENCH_TMP/cgi-docroot
mkdir -p "$DOCROOT"
cat >"$DOCROOT/hello.cgi" <<EOF
#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "$BODY"
EOF
chmod -R a+rX "$DOCROOT"
chmod 755 "$DOCROOT/hello.cgi"

printf '\n[cgi]\n.cgi = direct\n' >"$BENCH_TMP/cgi.ini"
declare -A PID
start_portshare cgi "$PS_PORT" "$DOCROOT" 0 "" "" "$BENCH_TMP/cgi.ini" || die "portshare did not start"
PID[portshare]=$LAST_PID
start_apache "$AP_PORT" "$DOCROOT" || die "apache2 did not start (see $BENCH_TMP/apache-$AP_PORT/error.log with KEEP_TMP=1)"
PID[apache]=$LAST_PID
declare -A PORT=([portshare]=$PS_PORT [apache]=$AP_PORT)

for s in portshare apache; do
    url="http://127.0.0.1:${PORT[$s]}/hello.cgi"
    http_ok "$url" --body "$BODY" ||
        die "$s does not run /hello.cgi (answer: $(curl -s -o /dev/null -w '%{http_code}' "$url"); log: $BENCH_TMP/*)"
    # keep-alive: two requests on one connection, one connection made
    n=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' "$url" "$url" | awk '{ n += $1 } END { print n }')
    [[ $n == 1 ]] || log "$s: two requests to /hello.cgi took $n connections (no keep-alive after a CGI response?)"
    cpu_track "$s" "${PID[$s]}" || true
done
CPU_NOTE="a cgroup per server (cpu.stat usage_usec: every process that ran in it, the scripts included)"
[[ -n $CPU_CG_NOTE ]] && CPU_NOTE="/proc only (cgroups not used: $CPU_CG_NOTE), so Apache's scripts are missing"

# Warm-up (not recorded).
for s in portshare apache; do
    DUR=1 CONNS=$CGI_CONNS wrk_rps "http://127.0.0.1:${PORT[$s]}/hello.cgi" >/dev/null || true
done

declare -A RPS CPU PROC
for ((r = 0; r < ROUNDS; r++)); do
    order=(portshare apache)
    ((r % 2)) && order=(apache portshare)
    log "round $((r + 1))/$ROUNDS, order: ${order[*]}"
    for s in "${order[@]}"; do
        if v=$(CONNS=$CGI_CONNS wrk_cpu "${PID[$s]}" "http://127.0.0.1:${PORT[$s]}/hello.cgi"); then
            read -r rps cpu proc <<<"$v"
            log "  (j) $s: $rps req/s, CPU $cpu µs/request (/proc alone: $proc)"
        else
            rps=err cpu=err proc=err
            log "  (j) $s: failed (see above)"
        fi
        RPS[$s]="${RPS[$s]:-} $rps" CPU[$s]="${CPU[$s]:-} $cpu" PROC[$s]="${PROC[$s]:-} $proc"
    done
done

# The script's own cost, for scale: it run N times by one shell that waits
# for each (times are its children's, from bash's `times`).
script_us() {
    local n=500 i t
    t=$( (
        for ((i = 0; i < n; i++)); do "$DOCROOT/hello.cgi" >/dev/null; done
        times
    ) | awk 'NR == 2 { for (f = 1; f <= 2; f++) { split($f, a, "m"); s += a[1] * 60 + a[2] } print s }')
    awk -v t="$t" -v n="$n" 'BEGIN { printf "%.0f\n", t * 1e6 / n }'
}

# shellcheck disable=SC2086
row() { # row LABEL ARRAY better
    local -n arr=$2
    local p a
    p=$(median ${arr[portshare]})
    a=$(median ${arr[apache]})
    echo "| $1 | $(fmt_num "$p") | $(fmt_num "$a") | $(ratio "$p" "$a") | $3 |"
}

echo
echo "## CGI: portshare vs Apache mod_cgid"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, loopback; DUR=${DUR}s per run, ROUNDS=$ROUNDS (medians);"
echo "portshare $(portshare_version), $(apache_version) (mpm_event, mod_cgid)."
echo "wrk -t2 -c$CGI_CONNS keep-alive on /hello.cgi (#!/bin/sh, 3 echo lines); both servers log each request to a file."
echo "Server CPU, read around each wrk run, over its request count: $CPU_NOTE."
echo "The script alone, run and waited for by a shell: about $(script_us) µs CPU per run."
echo
echo "| metric | portshare | apache2 | portshare / apache2 | better |"
echo "| --- | ---: | ---: | ---: | :---: |"
row "(j) CGI script, req/s" RPS higher
row "(j) server CPU per request, µs" CPU lower
row "(j) the same from /proc (utime+stime+cutime+cstime), µs" PROC lower
