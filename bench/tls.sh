#!/usr/bin/env bash
# TLS: portshare vs nginx on the same ECDSA P-256 certificate, in one run.
# Starts both on the same docroot (loopback) and measures, against each:
#
#   - HTTPS keep-alive req/s: wrk -t2 -c100 -d${DUR}s on the 100-byte file
#     (wrk sends no ALPN: HTTP/1.1 over TLS)
#   - HTTP/2 req/s: h2load -t2 -c100 -m10 -D ${DUR} on the same file (ALPN
#     must give h2; a failed request or a non-2xx status discards the run)
#   - new TLS connections/s, full handshakes (never resumed): TLS_CLIENTS
#     parallel `openssl s_time -new`, each connection one GET /small.txt
#
# and prints a Markdown table with the ratio portshare/nginx.
#
#   bash bench/tls.sh              # DUR=10, ROUNDS=1: about 1 minute
#   DUR=3 bash bench/tls.sh
#
# Env: DUR (seconds per run), ROUNDS (default 1; more rounds alternate the
# server order and report medians), TLS_CLIENTS (default 4), BASE_PORT
# (default 18600; uses +1, +2, +11, +12), TLS_HOST (see lib.sh),
# BENCH_PORTSHARE_BIN (skip the build), KEEP_TMP=1.
#
# portshare gets the certificate the way a user gives it one: `portshare
# cert import`, then `portshare http add sslcert ipport=0.0.0.0:PORT
# certhash=… appid=…` (portshare_bind_cert in lib.sh). Before measuring, the
# script checks that both servers serve exactly that certificate.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BASE_PORT=${BASE_PORT:-18600}
ROUNDS=${ROUNDS:-1}
TLS_CLIENTS=${TLS_CLIENTS:-4}
SERVERS=(portshare nginx)
declare -A HTTP_PORT=([portshare]=$((BASE_PORT + 1)) [nginx]=$((BASE_PORT + 11)))
declare -A TLS_PORT=([portshare]=$((BASE_PORT + 2)) [nginx]=$((BASE_PORT + 12)))

install_tools
build_portshare
raise_nofile
need_free_port "${HTTP_PORT[@]}" "${TLS_PORT[@]}"

DOCROOT=$BENCH_TMP/docroot
CERT=$BENCH_TMP/cert/cert.pem
KEY=$BENCH_TMP/cert/key.pem
make_docroot "$DOCROOT"
make_cert "$BENCH_TMP/cert"

start_portshare main "${HTTP_PORT[portshare]}" "$DOCROOT" "${TLS_PORT[portshare]}" "$CERT" "$KEY" ||
    die "portshare did not start with https_port=${TLS_PORT[portshare]}"
start_nginx "${HTTP_PORT[nginx]}" "$DOCROOT" "${TLS_PORT[nginx]}" "$CERT" "$KEY" || die "nginx did not start"

# Both serve the benchmark certificate, HTTPS and h2 work; note what a full
# handshake negotiates (openssl s_client, as s_time uses it).
declare -A PARAMS
for s in "${SERVERS[@]}"; do
    tp=${TLS_PORT[$s]}
    tls_ok "$tp" || die "$s does not answer https://127.0.0.1:$tp/small.txt"
    check_served_cert "$s" "$tp" "$CERT" || die "$s does not serve the benchmark certificate"
    [[ $(curl -sS --cacert "$CERT" --http2 -o /dev/null -w '%{http_version}' "https://127.0.0.1:$tp/small.txt") == 2 ]] ||
        die "$s does not negotiate HTTP/2 (ALPN h2)"
    PARAMS[$s]=$(openssl s_client -connect "127.0.0.1:$tp" -brief </dev/null 2>&1 |
        sed -nE 's/^(Protocol version|Ciphersuite|Signature type|Server Temp Key|Negotiated TLS1.3 group): //p' |
        paste -sd ' ' -)
    log "$s: ${PARAMS[$s]}"
done

METRICS=(b c d)
declare -A LABEL=(
    [b]="HTTPS keep-alive, 100 B file (wrk -t2 -c100), req/s"
    [c]="HTTP/2, 100 B file (h2load -t2 -c100 -m10), req/s"
    [d]="new TLS connections/s, full handshake + 1 request (${TLS_CLIENTS} × openssl s_time -new)"
)

measure() {
    local m=$1 tp=${TLS_PORT[$2]}
    case $m in
    b) wrk_rps "https://$TLS_HOST:$tp/small.txt" ;;
    c) H2LOAD_PROTO=h2 h2load_rps "https://$TLS_HOST:$tp/small.txt" ;;
    d) tls_new_conns "$tp" ;;
    esac
}

# Warm-up (not recorded).
for s in "${SERVERS[@]}"; do
    DUR=1 wrk_rps "https://$TLS_HOST:${TLS_PORT[$s]}/small.txt" >/dev/null || true
done

declare -A RES
for ((r = 0; r < ROUNDS; r++)); do
    order=("${SERVERS[@]:r%2}" "${SERVERS[@]:0:r%2}")
    log "round $((r + 1))/$ROUNDS, order: ${order[*]}"
    for m in "${METRICS[@]}"; do
        for s in "${order[@]}"; do
            log "($m) $s"
            v=$(measure "$m" "$s") || v=err
            RES[$m/$s]="${RES[$m/$s]:-} $v"
            log "  ($m) $s: $v"
        done
    done
done

cell() {
    local med
    # shellcheck disable=SC2086
    med=$(median ${RES[$1/$2]})
    if [[ $med == n/a ]]; then echo error; else echo "$med"; fi
}

ps_ver=$(portshare_version)
echo
echo "## TLS: portshare vs nginx"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, loopback, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;"
echo "DUR=${DUR}s per run, ROUNDS=$ROUNDS$( ((ROUNDS > 1)) && echo ' (medians)'); portshare $ps_ver (rustls), $(nginx_version) ($(openssl version | cut -d' ' -f1-2))."
echo "Same self-signed ECDSA P-256 certificate on both (sha1 $(cert_sha1 "$CERT")); portshare's bound with"
echo "\`portshare http add sslcert ipport=0.0.0.0:${TLS_PORT[portshare]} certhash=…\`. wrk/h2load connect to https://$TLS_HOST:PORT."
for s in "${SERVERS[@]}"; do
    echo "Full handshake with $s: ${PARAMS[$s]}."
done
echo
echo "| metric | portshare | nginx | portshare / nginx |"
echo "| --- | ---: | ---: | ---: |"
for m in "${METRICS[@]}"; do
    p=$(cell "$m" portshare)
    n=$(cell "$m" nginx)
    echo "| ${LABEL[$m]} | $(fmt_num "$p") | $(fmt_num "$n") | $(ratio "$p" "$n") |"
done
