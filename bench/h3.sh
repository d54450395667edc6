#!/usr/bin/env bash
# HTTP/3: portshare vs Caddy (Debian's 2.6, quic-go) on the same 100-byte
# file and the same ECDSA P-256 certificate, in one run (issue 27). Both
# serve HTTP/3 on the UDP port of their HTTPS port; the load is
# bench/h3load.rs (quinn + h3; Debian's h2load is built without HTTP/3):
#
#   h3load -c${CONNS} -m${STREAMS} -d${DUR} --warmup ${WARMUP} https://…/small.txt
#
# ROUNDS rounds, the server order alternating, each server's CPU time
# (user + system of all its threads and processes, waited-for children
# included, from /proc/PID/stat) read around every h3load run. Prints a
# Markdown table: req/s (median), the portshare/Caddy ratio (target ≥ 1.5),
# server CPU µs per request (CPU time of the whole h3load run over every
# request it completed, warm-up included) and its ratio (target < 1.0).
#
#   bash bench/h3.sh                    # DUR=10, ROUNDS=3: about 1½ minutes
#   DUR=5 ROUNDS=3 bash bench/h3.sh
#
# Env: DUR (measured seconds per run, default 10), ROUNDS (default 3),
# WARMUP (seconds of load before each measured window, default 1), CONNS
# (QUIC connections, default 10), STREAMS (requests in flight per
# connection, default 10), BASE_PORT (default 18800; uses +1, +2, +12),
# TLS_HOST (SNI and request authority, see lib.sh), BENCH_PORTSHARE_BIN
# (skip the portshare build), H3LOAD_BIN (skip the h3load build; by default
# target/release/examples/h3load is built unless it is newer than
# bench/h3load.rs), KEEP_TMP=1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BASE_PORT=${BASE_PORT:-18800}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-10}
STREAMS=${STREAMS:-10}
SERVERS=(portshare caddy)
PS_HTTP_PORT=$((BASE_PORT + 1))
declare -A TLS_PORT=([portshare]=$((BASE_PORT + 2)) [caddy]=$((BASE_PORT + 12)))

install_tools gtlsclient=ngtcp2-client
build_portshare
raise_nofile
need_free_port "$PS_HTTP_PORT" "${TLS_PORT[@]}"

# h3load: built with the release profile (the client shares the two cores
# with the server, so it had better be fast).
H3LOAD=${H3LOAD_BIN:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/examples/h3load}
if [[ -n ${H3LOAD_BIN:-} ]]; then
    [[ -x $H3LOAD ]] || die "H3LOAD_BIN=$H3LOAD is not executable"
elif [[ ! -x $H3LOAD || $BENCH_DIR/h3load.rs -nt $H3LOAD ]]; then
    # (Newer than its source is enough: a rebuild for every change to the
    # portshare library it links would be minutes of fat LTO for nothing.)
    log "building h3load (cargo build --release --example h3load; several minutes)"
    (cd "$REPO_DIR" && cargo build --release --quiet --example h3load) >&2 ||
        die "cargo build --release --example h3load failed"
fi

DOCROOT=$BENCH_TMP/docroot
CERT=$BENCH_TMP/cert/cert.pem
KEY=$BENCH_TMP/cert/key.pem
make_docroot "$DOCROOT"
make_cert "$BENCH_TMP/cert"

# start_caddy_h3 TLS_PORT DOCROOT CERT KEY: Caddy with h1, h2 and h3 on
# one HTTPS site (lib.sh's start_caddy is h1 + h2 only). HTTP/3 listens on
# the UDP port of the same number. Same access log to a file as the others.
start_caddy_h3() {
    local tls_port=$1 docroot=$2 cert=$3 key=$4
    local dir="$BENCH_TMP/caddy-$tls_port"
    mkdir -p "$dir/data" "$dir/config"
    cat >"$dir/Caddyfile" <<EOF
{
    admin off
    auto_https off
    servers {
        protocols h1 h2 h3
    }
}
https://127.0.0.1:$tls_port, https://localhost:$tls_port {
    bind 127.0.0.1
    tls $cert $key
    root * $docroot
    file_server
    log {
        output file $dir/access-tls.log
    }
}
EOF
    HOME=$dir XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
        caddy run --config "$dir/Caddyfile" --adapter caddyfile >"$dir/out.log" 2>&1 &
    _started caddy $! "$tls_port" "$dir/out.log"
}

start_portshare main "$PS_HTTP_PORT" "$DOCROOT" "${TLS_PORT[portshare]}" "$CERT" "$KEY" ||
    die "portshare did not start with https_port=${TLS_PORT[portshare]}"
declare -A PID=([portshare]=$LAST_PID)
start_caddy_h3 "${TLS_PORT[caddy]}" "$DOCROOT" "$CERT" "$KEY" || die "caddy did not start"
PID[caddy]=$LAST_PID

# h3load_run OUT PORT ARGS...: run h3load against PORT, its whole output
# into the file OUT, its summary line on stdout; fails if h3load does.
h3load_run() {
    local out=$1 port=$2
    shift 2
    timeout $((DUR + WARMUP + 60)) "$H3LOAD" --sni "$TLS_HOST" "$@" \
        "https://127.0.0.1:$port/small.txt" >"$out" 2>&1 || {
        log "h3load on :$port failed: $(tail -n 5 "$out" | tr '\n' ' ')"
        return 1
    }
    grep '^requests=' "$out"
}

# field LINE NAME: the value of NAME=… in an h3load summary line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# Both serve the benchmark certificate over TCP, and answer over HTTP/3:
# one request with h3load (status 200, the 100 bytes), and, if Debian's
# ngtcp2 client is there, one with it too (an HTTP/3 client nobody here
# wrote).
for s in "${SERVERS[@]}"; do
    tp=${TLS_PORT[$s]}
    tls_ok "$tp" || die "$s does not answer https://127.0.0.1:$tp/small.txt"
    check_served_cert "$s" "$tp" "$CERT" || die "$s does not serve the benchmark certificate"
    out=$BENCH_TMP/raw/h3load-check-$s
    line=$(h3load_run "$out" "$tp" -c1 -m1 -n1 --timeout 5) ||
        die "$s does not answer over HTTP/3 on udp/127.0.0.1:$tp (h3load: $(tail -n 3 "$out" | tr '\n' ' '))"
    [[ $(field "$line" requests) == 1 && $(field "$line" errors) == 0 && $(field "$line" bytes) == 100 ]] ||
        die "$s: HTTP/3 GET /small.txt did not give 200 and 100 bytes: $line ($(grep -v '^requests=' "$out" | tr '\n' ' '))"
    how=h3load
    if command -v gtlsclient >/dev/null 2>&1; then
        dl=$BENCH_TMP/raw/gtls-$s
        mkdir -p "$dl"
        timeout 20 gtlsclient --quiet --exit-on-all-streams-close --timeout=5s --handshake-timeout=5s \
            --download="$dl" 127.0.0.1 "$tp" "https://$TLS_HOST:$tp/small.txt" >"$dl.log" 2>&1 || true
        if [[ $(stat -c %s "$dl/small.txt" 2>/dev/null) == 100 ]]; then
            how="h3load and gtlsclient"
        else
            log "warning: $s: gtlsclient (ngtcp2) got no HTTP/3 answer: $(tail -n 3 "$dl.log" | tr '\n' ' ')"
        fi
    fi
    log "$s answers over HTTP/3 on udp/$tp ($how)"
done


# udp_sock PORT FIELD: a skmem field of the server's UDP socket(s) on
# 127.0.0.1:PORT, summed (ss -m): d = datagrams dropped because the receive
# buffer was full (QUIC then recovers by retransmitting, after a timeout),
# rb = the receive buffer's size.
udp_sock() {
    ss -uamnH "sport = :$1" 2>/dev/null |
        awk -v f="$2" '{ n = split($0, a, /[(,)]/); for (i = 1; i <= n; i++) if (a[i] ~ "^" f "[0-9]+$") s += substr(a[i], length(f) + 1) }
            END { print s + 0 }'
}

declare -A RPS CPU P50 P99 ERRS DROPS RCVBUF
for s in "${SERVERS[@]}"; do
    ERRS[$s]=0 DROPS[$s]=0 RCVBUF[$s]=$(udp_sock "${TLS_PORT[$s]}" rb)
done
for ((r = 1; r <= ROUNDS; r++)); do
    order=("${SERVERS[@]}")
    ((r % 2)) || order=(caddy portshare)
    for s in "${order[@]}"; do
        log "round $r/$ROUNDS: h3load -c$CONNS -m$STREAMS -d$DUR --warmup $WARMUP $s"
        t0=$(proc_cpu_ms "${PID[$s]}") d0=$(udp_sock "${TLS_PORT[$s]}" d)
        out=$BENCH_TMP/raw/h3load-$s-$r
        if line=$(h3load_run "$out" "${TLS_PORT[$s]}" -c"$CONNS" -m"$STREAMS" -d"$DUR" --warmup "$WARMUP"); then
            t1=$(proc_cpu_ms "${PID[$s]}") d1=$(udp_sock "${TLS_PORT[$s]}" d)
            DROPS[$s]=$((DROPS[$s] + d1 - d0))
            rps=$(field "$line" req_per_s) n_all=$(field "$line" all_requests)
            e=$(($(field "$line" errors) + $(field "$line" conn_errors)))
            ERRS[$s]=$((ERRS[$s] + e))
            RPS[$s]+=" $rps"
            P50[$s]+=" $(field "$line" p50_ms)"
            P99[$s]+=" $(field "$line" p99_ms)"
            cpu=$(awk -v t=$((t1 - t0)) -v n="$n_all" 'BEGIN { if (n > 0) printf "%.1f", t / n * 1e3 }')
            CPU[$s]+=" $cpu"
            log "  $s: $rps req/s, ${cpu:-?} µs CPU/request, p99 $(field "$line" p99_ms) ms, $e errors, $((d1 - d0)) UDP drops"
            if ((e > 0)); then sed '/^requests=/d; s/^/    /' "$out" >&2; fi
        else
            RPS[$s]+=" err"
        fi
    done
done

# shellcheck disable=SC2086 # one value per word
med() { median ${1:-}; }
declare -A M_RPS M_CPU M_P50 M_P99
for s in "${SERVERS[@]}"; do
    M_RPS[$s]=$(med "${RPS[$s]:-}") M_CPU[$s]=$(med "${CPU[$s]:-}")
    M_P50[$s]=$(med "${P50[$s]:-}") M_P99[$s]=$(med "${P99[$s]:-}")
done
rps_ratio=$(ratio "${M_RPS[portshare]}" "${M_RPS[caddy]}")
cpu_ratio=$(ratio "${M_CPU[portshare]}" "${M_CPU[caddy]}")
verdict() { # verdict RATIO OP LIMIT → yes / no / –
    [[ $1 =~ ^[0-9.]+$ ]] || { echo "–"; return; }
    if awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; then echo yes; else echo no; fi
}

echo
echo "## HTTP/3, portshare vs Caddy"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, loopback; portshare $(portshare_version), caddy $(caddy version 2>/dev/null | cut -d' ' -f1)."
echo "h3load -c$CONNS -m$STREAMS -d$DUR --warmup $WARMUP (bench/h3load.rs, quinn + h3) on https://127.0.0.1:PORT/small.txt (100 bytes), SNI $TLS_HOST;"
echo "ROUNDS=$ROUNDS, server order alternating, medians; both log each request to a file. CPU: server user + system time over the whole h3load run / its completed requests."
echo
echo "| HTTP/3, 100 B file | portshare | Caddy | portshare / Caddy | target | met |"
echo "| --- | ---: | ---: | ---: | ---: | :---: |"
echo "| req/s | $(fmt_num "${M_RPS[portshare]}") | $(fmt_num "${M_RPS[caddy]}") | $rps_ratio | ≥ 1.5 | $(verdict "$rps_ratio" '>=' 1.5) |"
echo "| server CPU µs/request | ${M_CPU[portshare]} | ${M_CPU[caddy]} | $cpu_ratio | < 1.0 | $(verdict "$cpu_ratio" '<' 1.0) |"
echo "| p50 latency, ms | ${M_P50[portshare]} | ${M_P50[caddy]} | $(ratio "${M_P50[portshare]}" "${M_P50[caddy]}") | | |"
echo "| p99 latency, ms | ${M_P99[portshare]} | ${M_P99[caddy]} | $(ratio "${M_P99[portshare]}" "${M_P99[caddy]}") | | |"
echo "| failed requests + lost connections, all rounds | ${ERRS[portshare]} | ${ERRS[caddy]} | | 0 | |"
echo "| datagrams dropped at the server's UDP socket (receive buffer full), all rounds | ${DROPS[portshare]} | ${DROPS[caddy]} | | | |"
echo "| UDP receive buffer, bytes (ss -m rb) | ${RCVBUF[portshare]} | ${RCVBUF[caddy]} | | | |"
echo
echo "Per round: portshare req/s${RPS[portshare]:-} (CPU µs/req${CPU[portshare]:-}); Caddy req/s${RPS[caddy]:-} (CPU µs/req${CPU[caddy]:-})."
