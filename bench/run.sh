#!/usr/bin/env bash
# Full benchmark: portshare vs nginx vs Caddy on loopback. See bench/README.md.
#
#   bash bench/run.sh                  # DUR=10 s per load run, ROUNDS=3
#   DUR=5 ROUNDS=1 bash bench/run.sh
#
# Env: DUR, ROUNDS, BASE_PORT (default 18500; uses +1..+41), BENCH_PORTSHARE_BIN
# (skip the build), TLS_CLIENTS (parallel `openssl s_time` clients for (d),
# default 4), LAT_RATE (request rate for (i), default 1000/s), IDLE_CONNS
# (connections held for (h) and (h2), default 10000), PREFIXES (for (g),
# default 10000), MANY_START_TIMEOUT (seconds the (g) instance may take to
# start, default 60), METRICS (a subset, e.g. "a f"; default all), KEEP_TMP=1
# (keep configs, logs and raw tool outputs). Metric j (CGI, portshare vs
# Apache) is bench/cgi.sh, run after the table on BASE_PORT+51..+52.
#
# Installs what is missing (Debian packages), builds portshare in release
# mode, starts every server once, interleaves the servers over ROUNDS rounds
# (the order rotates each round), prints one Markdown table of medians and
# stops every process it started.
# shellcheck disable=SC1111 # "″" in labels is a double prime: metric (d″)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# METRICS="a f" runs only those (for a quick look while tuning). j is
# bench/cgi.sh (its own servers and table), run at the end.
read -r -a _wanted <<<"${METRICS:-a b c d d2 d3 e e2 f g1 g2 i h h2 j}"
METRICS=()
RUN_CGI=""
for m in "${_wanted[@]}"; do
    case $m in
    a | b | c | d | d2 | d3 | e | e2 | f | g1 | g2 | i | h | h2) METRICS+=("$m") ;;
    j) RUN_CGI=1 ;;
    *) die "unknown metric '$m' in METRICS (a b c d d2 d3 e e2 f g1 g2 i h h2 j)" ;;
    esac
done
# run_cgi: bench/cgi.sh with this run's settings (its own BENCH_TMP, ports
# BASE_PORT+51..+52, the same portshare binary).
run_cgi() {
    BENCH_PORTSHARE_BIN=$(portshare_bin) BASE_PORT=$((BASE_PORT + 50)) DUR=$DUR ROUNDS=$ROUNDS \
        bash "$BENCH_DIR/cgi.sh" || log "bench/cgi.sh (metric j) failed"
}

ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-18500}
TLS_CLIENTS=${TLS_CLIENTS:-4}
LAT_RATE=${LAT_RATE:-1000}
LAT_CONNS=${LAT_CONNS:-10}
IDLE_CONNS=${IDLE_CONNS:-10000}
PREFIXES=${PREFIXES:-10000}
MANY_START_TIMEOUT=${MANY_START_TIMEOUT:-60}

SERVERS=(portshare nginx caddy)
declare -A HTTP_PORT=([portshare]=$((BASE_PORT + 1)) [nginx]=$((BASE_PORT + 11)) [caddy]=$((BASE_PORT + 21)))
declare -A TLS_PORT=([portshare]=$((BASE_PORT + 2)) [nginx]=$((BASE_PORT + 12)) [caddy]=$((BASE_PORT + 22)))
BACKEND_PORT=$((BASE_PORT + 31))
MANY_PORT=$((BASE_PORT + 41)) # portshare with $PREFIXES prefixes

# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------
if ((${#METRICS[@]} == 0)); then # METRICS=j
    build_portshare
    run_cgi
    exit 0
fi
install_tools
build_portshare
raise_nofile
need_free_port "${HTTP_PORT[@]}" "${TLS_PORT[@]}" "$BACKEND_PORT" "$MANY_PORT"

DOCROOT=$BENCH_TMP/docroot
CERT=$BENCH_TMP/cert/cert.pem
KEY=$BENCH_TMP/cert/key.pem
make_docroot "$DOCROOT"
make_cert "$BENCH_TMP/cert"

declare -A UP TLS H2 PROXY # per server: 1 when it can do that
declare -A SERVER_PID      # per server: main process (nginx: the master)
declare -A WHY             # "metric/server" → why it was skipped

start_backend "$BACKEND_PORT" || die "the proxy backend (nginx) did not start"
http_ok "http://127.0.0.1:$BACKEND_PORT/" --body ok || die "the proxy backend does not answer"

PROXY_BACKEND=$BACKEND_PORT start_nginx "${HTTP_PORT[nginx]}" "$DOCROOT" "${TLS_PORT[nginx]}" "$CERT" "$KEY" &&
    UP[nginx]=1 SERVER_PID[nginx]=$LAST_PID
PROXY_BACKEND=$BACKEND_PORT start_caddy "${HTTP_PORT[caddy]}" "$DOCROOT" "${TLS_PORT[caddy]}" "$CERT" "$KEY" &&
    UP[caddy]=1 SERVER_PID[caddy]=$LAST_PID

# portshare: everything first (HTTPS port, [app:bench] reverse proxy); if
# this build refuses that config, fall back to plain HTTP static files.
cat >"$BENCH_TMP/app-bench.ini" <<EOF

[app:bench]
prefix=http://+:${HTTP_PORT[portshare]}/proxy/
backend=http://127.0.0.1:$BACKEND_PORT
EOF
PS_NOTE=""
if start_portshare main "${HTTP_PORT[portshare]}" "$DOCROOT" "${TLS_PORT[portshare]}" "$CERT" "$KEY" \
    "$BENCH_TMP/app-bench.ini"; then
    UP[portshare]=1 SERVER_PID[portshare]=$LAST_PID
else
    log "portshare did not start with https_port and [app:bench]; retrying plain HTTP only"
    PS_NOTE="portshare refused the config with https_port/[app:bench]; ran HTTP-only"
    TLS_PORT[portshare]=0
    start_portshare main-http "${HTTP_PORT[portshare]}" "$DOCROOT" &&
        UP[portshare]=1 SERVER_PID[portshare]=$LAST_PID
fi
[[ -n ${UP[portshare]:-} ]] || die "portshare did not start"

yes_no() { if [[ -n $1 ]]; then echo ok; else echo unavailable; fi; }
for s in "${SERVERS[@]}"; do
    [[ -n ${UP[$s]:-} ]] || continue
    hp=${HTTP_PORT[$s]} tp=${TLS_PORT[$s]}
    http_ok "http://127.0.0.1:$hp/small.txt" --size 100 || die "$s does not serve /small.txt"
    http_ok "http://127.0.0.1:$hp/large.bin" --size 1048576 || die "$s does not serve /large.bin"
    if tls_ok "$tp"; then
        # the same ECDSA P-256 certificate everywhere (portshare: bound with
        # `portshare http add sslcert`, see portshare_bind_cert in lib.sh)
        check_served_cert "$s" "$tp" "$CERT" || die "$s does not serve the benchmark certificate"
        TLS[$s]=1
        [[ $(curl -sk --http2 -o /dev/null -w '%{http_version}' "https://127.0.0.1:$tp/small.txt") == 2 ]] && H2[$s]=1
    fi
    http_ok "http://127.0.0.1:$hp/proxy/x" --body ok && PROXY[$s]=1
    log "$s: http :$hp ok; https :$tp $(yes_no "${TLS[$s]:-}"); h2 $(yes_no "${H2[$s]:-}"); proxy $(yes_no "${PROXY[$s]:-}")"
done

# startup_ms LOG: ", its log: N ms from \"starting\" to \"listening on\"" from
# portshare's own timestamps (tracing, UTC), or nothing.
startup_ms() {
    local a b
    a=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '/ starting / { print $1; exit }')
    b=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '/ listening on / { print $1; exit }')
    [[ -n $a && -n $b ]] || return 0
    a=$(date -d "$a" +%s.%N 2>/dev/null) && b=$(date -d "$b" +%s.%N 2>/dev/null) || return 0
    awk -v a="$a" -v b="$b" 'BEGIN { printf " (its log: %.0f ms from \"starting\" to \"listening on\")", (b - a) * 1000 }'
}

# (g): a second portshare with $PREFIXES [app:aN] sections, /aN/ → backend.
MANY="" MANY_NOTE=""
if [[ -n ${PROXY[portshare]:-} ]]; then
    awk -v n="$PREFIXES" -v p="${HTTP_PORT[portshare]}" -v mp="$MANY_PORT" -v b="$BACKEND_PORT" 'BEGIN {
        for (i = 0; i < n; i++) printf "\n[app:a%d]\nprefix=http://+:%d/a%d/\nbackend=http://127.0.0.1:%d\n", i, mp, i, b }' \
        >"$BENCH_TMP/apps-many.ini"
    last="/a$((PREFIXES - 1))/x"
    t0=$(date +%s.%N)
    if START_TIMEOUT=$MANY_START_TIMEOUT start_portshare many "$MANY_PORT" "$DOCROOT" 0 "" "" "$BENCH_TMP/apps-many.ini" &&
        MANY_NOTE="portshare with $PREFIXES prefixes accepted connections $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after start$(startup_ms "$BENCH_TMP/portshare-many/out.log")" &&
        http_ok "http://127.0.0.1:$MANY_PORT$last" --body ok &&
        http_ok "http://127.0.0.1:$MANY_PORT/a0/x" --body ok &&
        http_ok "http://127.0.0.1:$MANY_PORT/small.txt" --size 100; then
        MANY=1
    else
        if [[ -z $MANY_NOTE ]]; then
            WHY[g_many]="portshare with $PREFIXES [app:] prefixes did not accept connections within $MANY_START_TIMEOUT s (MANY_START_TIMEOUT=)"
        else
            WHY[g_many]="portshare with $PREFIXES [app:] prefixes did not route /a0/x and $last to the backend"
        fi
    fi
else
    WHY[g_many]="reverse proxy ([app:] prefixes) not yet supported by this build"
fi

# Lua for wrk: one request per connection; fixed pace for the latency test.
cat >"$BENCH_TMP/close.lua" <<'EOF'
wrk.headers["Connection"] = "close"
EOF
# (d″): wrk's OpenSSL limited to TLS 1.2 without the session ticket
# extension, so it resumes by session ID (OpenSSL reads OPENSSL_CONF at init).
cat >"$BENCH_TMP/tls12-ids.cnf" <<'EOF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
Options = -SessionTicket
EOF
cat >"$BENCH_TMP/latency.lua" <<EOF
-- each of the $LAT_CONNS connections sends one request every
-- $LAT_CONNS*1000/$LAT_RATE ms: about $LAT_RATE req/s in all
function delay()
    return $((LAT_CONNS * 1000 / LAT_RATE))
end
function done(summary, latency, requests)
    io.write(string.format("p99_us=%d rate=%.0f\n", latency:percentile(99),
        summary.requests / (summary.duration / 1e6)))
end
EOF

# Server CPU time for (d′): each server's processes in a cgroup of their own
# when possible (see lib.sh), else /proc.
for s in "${SERVERS[@]}"; do
    [[ -n ${UP[$s]:-} ]] && { cpu_track "$s" "${SERVER_PID[$s]}" || true; }
done
CPU_NOTE="server CPU from a cgroup per server (cpu.stat usage_usec, every process)"
[[ -n $CPU_CG_NOTE ]] && CPU_NOTE="server CPU from /proc (utime+stime+cutime+cstime of the live processes; cgroups not used: $CPU_CG_NOTE)"

# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------
declare -A LABEL=(
    [a]="(a) 100 B file, HTTP/1.1 keep-alive, req/s"
    [b]="(b) 100 B file, HTTPS HTTP/1.1 keep-alive, req/s"
    [c]="(c) 100 B file, HTTP/2 over TLS (h2load -m10), req/s"
    [d]="(d) new TLS connections/s, full handshake + 1 request"
    [d2]="(d′) TLS reconnects/s with session resumption"
    [d2c]="(d′) server CPU per resumed connection, µs"
    [d3]="(d″) TLS 1.2 reconnects/s, session-ID resumption"
    [d3c]="(d″) server CPU per resumed connection, µs"
    [e]="(e) 1 MiB file, MiB/s"
    [e2]="(e2) 1 MiB file over HTTPS (HTTP/1.1 keep-alive), MiB/s"
    [f]="(f) reverse proxy /proxy/ → backend, req/s"
    [g1]="(g) 100 B file with $PREFIXES prefixes, req/s"
    [g2]="(g) proxied via the last of $PREFIXES prefixes, req/s"
    [h0]="(h) RSS before the connections (idle server), MiB"
    [h]="(h) RSS holding $IDLE_CONNS idle keep-alive connections, MiB"
    [h2]="(h2) RSS holding $IDLE_CONNS idle HTTPS keep-alive connections, MiB"
    [i]="(i) p99 latency at ~$LAT_RATE req/s (wrk -c$LAT_CONNS), ms"
)
ROWS=(a b c d d2 d2c d3 d3c e e2 f g1 g2 h0 h h2 i)
declare -A LOWER=([h0]=1 [h]=1 [h2]=1 [i]=1 [d2c]=1 [d3c]=1) # lower is better
declare -A PS_ONLY=([g1]=1 [g2]=1)

# latency_p99 URL: p99 in ms at a fixed pace (see latency.lua).
latency_p99() {
    CONNS=$LAT_CONNS wrk_run latency "$1" --latency -s "$BENCH_TMP/latency.lua" || return 1
    local line us rate
    line=$(grep '^p99_us=' "$WRK_OUT") || {
        log "wrk printed no p99"
        return 1
    }
    us=${line#p99_us=}
    us=${us%% *}
    rate=${line##*rate=}
    log "  (i) achieved rate ${rate} req/s"
    awk -v u="$us" 'BEGIN { printf "%.3f\n", u / 1000 }'
}

# idle_rss SERVER [tls]: "IDLE_MIB HELD_MIB" from bench/idle_conns.py
# (tls: over HTTPS, each connection after its TLS handshake).
idle_rss() {
    local s=$1 pid out
    local -a how=(--port "${HTTP_PORT[$s]}")
    [[ ${2:-} == tls ]] && how=(--port "${TLS_PORT[$s]}" --tls --sni "$TLS_HOST" --deadline 150)
    pid=${SERVER_PID[$s]}
    out=$(timeout 200 python3 "$BENCH_DIR/idle_conns.py" "${how[@]}" --pid "$pid" \
        --conns "$IDLE_CONNS" 2>&1) || {
        log "idle_conns.py against $s failed: $out"
        return 1
    }
    # rss_before_kib=… rss_held_kib=… connections=…
    local before held conns
    before=$(sed -nE 's/.*rss_before_kib=([0-9]+).*/\1/p' <<<"$out")
    held=$(sed -nE 's/.*rss_held_kib=([0-9]+).*/\1/p' <<<"$out")
    conns=$(sed -nE 's/.*connections=([0-9]+).*/\1/p' <<<"$out")
    if [[ -z $held || ${conns:-0} -lt $((IDLE_CONNS * 99 / 100)) ]]; then
        log "idle_conns.py against $s: only ${conns:-0} of $IDLE_CONNS connections still open: $out"
        return 1
    fi
    log "  idle_conns.py: $out"
    awk -v a="$before" -v b="$held" 'BEGIN { printf "%.1f %.1f\n", a / 1024, b / 1024 }'
}

# measure METRIC SERVER → prints the value, or fails.
measure() {
    local m=$1 s=$2 hp=${HTTP_PORT[$2]} tp=${TLS_PORT[$2]} v
    case $m in
    a) wrk_rps "http://127.0.0.1:$hp/small.txt" ;;
    b) wrk_rps "https://$TLS_HOST:$tp/small.txt" ;;
    c) H2LOAD_PROTO=h2 h2load_rps "https://$TLS_HOST:$tp/small.txt" ;;
    d) tls_new_conns "$tp" ;;
    d2)
        # "RPS CPU_US_PER_CONN": one request per connection, so per request
        # = per (resumed) connection
        v=$(wrk_cpu "${SERVER_PID[$s]}" "https://$TLS_HOST:$tp/small.txt" -s "$BENCH_TMP/close.lua") || return 1
        log "  (d′) $s: $v (req/s, server CPU µs per connection, the same from /proc alone)"
        echo "${v% *}"
        ;;
    d3)
        v=$(OPENSSL_CONF=$BENCH_TMP/tls12-ids.cnf wrk_cpu "${SERVER_PID[$s]}" "https://$TLS_HOST:$tp/small.txt" \
            -s "$BENCH_TMP/close.lua") || return 1
        log "  (d″) $s: $v (req/s, server CPU µs per connection, the same from /proc alone)"
        echo "${v% *}"
        ;;
    e)
        v=$(wrk_rps "http://127.0.0.1:$hp/large.bin") || return 1
        echo "$v" # 1 MiB per request: req/s = MiB/s
        ;;
    e2) wrk_rps "https://$TLS_HOST:$tp/large.bin" ;; # req/s = MiB/s
    f) wrk_rps "http://127.0.0.1:$hp/proxy/x" ;;
    g1) wrk_rps "http://127.0.0.1:$MANY_PORT/small.txt" ;;
    g2) wrk_rps "http://127.0.0.1:$MANY_PORT/a$((PREFIXES - 1))/x" ;;
    i) latency_p99 "http://127.0.0.1:$hp/small.txt" ;;
    h) idle_rss "$s" ;;
    h2) idle_rss "$s" tls ;;
    esac
}

# why_skip METRIC SERVER: prints a reason when SERVER can't run METRIC.
why_skip() {
    local m=$1 s=$2
    [[ -n ${UP[$s]:-} ]] || {
        echo "$s did not start"
        return
    }
    case $m in
    b | c | d | d2 | d3 | e2 | h2)
        if [[ -z ${TLS[$s]:-} ]]; then
            echo "HTTPS not yet supported by this build (curl -k https://127.0.0.1:${TLS_PORT[$s]}/ failed)"
        elif [[ $m == c && -z ${H2[$s]:-} ]]; then
            echo "HTTP/2 over TLS (ALPN h2) not yet supported by this build"
        fi
        ;;
    f) [[ -n ${PROXY[$s]:-} ]] || echo "reverse proxy ([app:bench] prefix /proxy/) not yet supported by this build" ;;
    g1 | g2)
        if [[ $s != portshare ]]; then
            echo "portshare only"
        elif [[ -z $MANY ]]; then
            echo "${WHY[g_many]}"
        fi
        ;;
    esac
}

# resume_check d2|d3 SERVER: do reconnects really resume? (tls_resumed in
# lib.sh, a python client with as many sessions as wrk has connections, and
# twice as many for d2). Logged, and noted under the table.
declare -A RESUMED
resume_check() {
    local m=$1 s=$2 n v out=""
    local -a how=()
    [[ $m == d3 ]] && how=(tls12-ids)
    for n in "${CONNS:-100}" $([[ $m == d2 ]] && echo $((${CONNS:-100} * 2))); do
        v=$(tls_resumed "${TLS_PORT[$s]}" "$n" "${how[@]}" 2>&1) || v="failed: ${v##*$'\n'}"
        out+="${out:+, }$v with $n clients"
    done
    RESUMED[$m/$s]=$out
    log "  ($m) $s: reconnects resumed: $out"
}

declare -A RES # "metric/server" → space-separated values, one per round
record() {
    RES[$1/$2]="${RES[$1/$2]:-} $3"
}

# Warm-up: a short run per server (not recorded).
for s in "${SERVERS[@]}"; do
    [[ -n ${UP[$s]:-} ]] && DUR=1 wrk_rps "http://127.0.0.1:${HTTP_PORT[$s]}/small.txt" >/dev/null || true
done

for ((r = 0; r < ROUNDS; r++)); do
    order=("${SERVERS[@]:r%3}" "${SERVERS[@]:0:r%3}")
    log "round $((r + 1))/$ROUNDS, order: ${order[*]}"
    for m in "${METRICS[@]}"; do
        # Memory only in the first round: a server keeps what the rounds
        # before took (nginx's workers held 204 MiB idle after one (h2)),
        # so a later round's figure is not the idle server's.
        if ((r > 0)) && [[ $m == h || $m == h2 ]]; then continue; fi
        for s in "${order[@]}"; do
            why=$(why_skip "$m" "$s")
            if [[ -n $why ]]; then
                WHY[$m/$s]=$why
                [[ $m == h ]] && WHY[h0/$s]=$why
                [[ $m == d2 || $m == d3 ]] && WHY[${m}c/$s]=$why
                continue
            fi
            log "($m) $s"
            if ((r == 0)) && [[ $m == d2 || $m == d3 ]]; then resume_check "$m" "$s"; fi
            if v=$(measure "$m" "$s"); then
                if [[ $m == h ]]; then
                    record h0 "$s" "${v% *}"
                    record h "$s" "${v#* }"
                elif [[ $m == h2 ]]; then
                    record h2 "$s" "${v#* }"
                elif [[ $m == d2 || $m == d3 ]]; then
                    record "$m" "$s" "${v% *}"
                    record "${m}c" "$s" "${v#* }"
                else
                    record "$m" "$s" "$v"
                fi
                log "  ($m) $s: $v"
            else
                record "$m" "$s" err
                [[ $m == h ]] && record h0 "$s" err
                [[ $m == d2 || $m == d3 ]] && record "${m}c" "$s" err
                log "  ($m) $s: failed (see above)"
            fi
        done
    done
done

# --------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------
cell() { # cell METRIC SERVER → median or a skip mark
    local key=$1/$2
    if [[ -n ${RES[$key]:-} ]]; then
        local med
        # shellcheck disable=SC2086
        med=$(median ${RES[$key]})
        if [[ $med == n/a ]]; then echo "error"; else echo "$med"; fi
    elif [[ -n ${WHY[$key]:-} ]]; then
        echo "skipped"
    else
        echo "–"
    fi
}

ps_ver=$(portshare_version)
echo
echo "## portshare benchmark"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, loopback; DUR=${DUR}s per run, ROUNDS=$ROUNDS (medians);"
echo "portshare $ps_ver, $(nginx_version), caddy $(caddy version 2>/dev/null | cut -d' ' -f1)."
echo "wrk -t2 -c100 unless noted; every server logs each request to a file."
[[ -n $PS_NOTE ]] && echo "Note: $PS_NOTE."
[[ -n $MANY_NOTE ]] && echo "(g): $MANY_NOTE."
[[ -n ${RES[h/portshare]:-}${RES[h2/portshare]:-} ]] && ((ROUNDS > 1)) &&
    echo "(h), (h2): the first round only (a server keeps memory the rounds before took)."
[[ -n ${RES[d2c/portshare]:-}${RES[d2c/nginx]:-}${RES[d3c/portshare]:-}${RES[d3c/nginx]:-} ]] &&
    echo "(d′), (d″) CPU: $CPU_NOTE, around the wrk run, over its request count."
for m in d2 d3; do
    line=""
    for s in "${SERVERS[@]}"; do
        [[ -n ${RESUMED[$m/$s]:-} ]] && line+="${line:+; }$s ${RESUMED[$m/$s]}"
    done
    [[ -n $line ]] && echo "${LABEL[$m]%%)*}) reconnects that resumed (python check, $([[ $m == d2 ]] && echo "TLS 1.3" || echo "TLS 1.2, no ticket extension")): $line."
done
echo
echo "| metric | portshare | nginx | caddy | portshare / best peer | better |"
echo "| --- | ---: | ---: | ---: | ---: | :---: |"
for m in "${ROWS[@]}"; do
    p=$(cell "$m" portshare)
    n=$(cell "$m" nginx)
    c=$(cell "$m" caddy)
    better=higher
    [[ -n ${LOWER[$m]:-} ]] && better=lower
    if [[ -n ${PS_ONLY[$m]:-} ]]; then
        # compare with the same request on portshare with one prefix
        base=$(cell "$([[ $m == g1 ]] && echo a || echo f)" portshare)
        r=$(ratio "$p" "$base")
        [[ $r != – ]] && r="$r vs 1 prefix"
        n="–" c="–"
    else
        best=""
        for v in "$n" "$c"; do
            [[ $v =~ ^[0-9.]+$ ]] || continue
            if [[ -z $best ]] || awk -v v="$v" -v b="$best" -v lo="${LOWER[$m]:-}" \
                'BEGIN { exit !(lo ? v < b : v > b) }'; then
                best=$v
            fi
        done
        r=$(ratio "$p" "${best:-x}")
    fi
    echo "| ${LABEL[$m]} | $(fmt_num "$p") | $(fmt_num "$n") | $(fmt_num "$c") | $r | $better |"
done

notes=()
for m in "${ROWS[@]}"; do
    for s in "${SERVERS[@]}"; do
        [[ -n ${WHY[$m/$s]:-} && ${WHY[$m/$s]} != "portshare only" ]] && notes+=("${LABEL[$m]%%)*}) $s: ${WHY[$m/$s]}")
    done
done
if ((${#notes[@]})); then
    echo
    echo "Skipped:"
    printf '%s\n' "${notes[@]}" | sort -u | sed 's/^/- /'
fi

if [[ -n $RUN_CGI ]]; then
    run_cgi
fi
