# shellcheck shell=bash
# Shared helpers for the portshare benchmark scripts (bench/static.sh,
# bench/run.sh). Source it, don't run it:
#
#   . "$(dirname "$0")/lib.sh"
#
# Sourcing creates one temporary directory ($BENCH_TMP) and installs an EXIT
# trap (stop_all) that stops every process started through these helpers, and
# only those, then removes the directory (KEEP_TMP=1 keeps it for a look at
# the configs, logs and raw tool outputs).
#
# Everything listens on 127.0.0.1 only; every load run is bounded by DUR.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
: "${DUR:=10}"

BENCH_PIDS=()   # processes we started (direct children of this shell)
LAST_PID=""     # pid of the process the last start_* call started
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/portshare-bench.XXXXXX")
chmod 755 "$BENCH_TMP"
mkdir -p "$BENCH_TMP/raw"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

# alive PID: the process exists and is not a zombie.
alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${st%% *} != Z ]]
}

# descendants PID: every descendant of PID (children, grandchildren, ...).
descendants() {
    local kid
    for kid in $(pgrep -P "$1" 2>/dev/null || true); do
        echo "$kid"
        descendants "$kid"
    done
}

# stop_pid PID: SIGTERM PID and its descendants, SIGKILL whatever is left
# after STOP_GRACE seconds (default 5), reap PID if it is our child.
stop_pid() {
    local pid=$1 p i left
    local -a all
    mapfile -t all < <(
        echo "$pid"
        descendants "$pid"
    )
    kill -TERM "${all[@]}" 2>/dev/null || true
    for ((i = 0; i < ${STOP_GRACE:-5} * 10; i++)); do
        left=0
        for p in "${all[@]}"; do alive "$p" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for p in "${all[@]}"; do
        if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    done
    wait "$pid" 2>/dev/null || true
}

# stop_all: stop every server started through this library (EXIT trap),
# then whatever else this script itself started and is still running (a
# load generator cut short by an error or Ctrl-C): only descendants of $$.
stop_all() {
    local pid
    local -a rest
    for pid in "${BENCH_PIDS[@]}"; do
        stop_pid "$pid"
    done
    BENCH_PIDS=()
    mapfile -t rest < <(descendants $$)
    for pid in "${rest[@]}"; do
        [[ $pid == "$BASHPID" ]] && continue
        alive "$pid" && { kill -TERM "$pid" 2>/dev/null || true; }
    done
    if ((${#rest[@]})); then
        sleep 0.5
        for pid in "${rest[@]}"; do
            [[ $pid == "$BASHPID" ]] && continue
            alive "$pid" && { kill -KILL "$pid" 2>/dev/null || true; }
        done
    fi
    return 0
}

# forget_pid PID: stop PID now and drop it from the list.
forget_pid() {
    local pid=$1 p keep=()
    stop_pid "$pid"
    for p in "${BENCH_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
}

_bench_exit() {
    local rc=$?
    set +e
    trap - EXIT
    stop_all
    cpu_cgroups_remove
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        log "kept $BENCH_TMP"
    else
        rm -rf "$BENCH_TMP"
    fi
    exit "$rc"
}
trap _bench_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_port PORT [PID] [TIMEOUT_S]: wait until 127.0.0.1:PORT accepts
# connections; fails early if PID dies, and after TIMEOUT_S (default 15).
wait_port() {
    local port=$1 pid=${2:-} timeout=${3:-15} i
    for ((i = 0; i < timeout * 10; i++)); do
        port_open "$port" && return 0
        if [[ -n $pid ]] && ! alive "$pid"; then return 1; fi
        sleep 0.1
    done
    return 1
}

# need_free_port PORT...: fail if one of the ports is already taken (by
# something this script did not start).
need_free_port() {
    local p
    for p in "$@"; do
        [[ $p == 0 ]] && continue
        port_open "$p" && die "port $p on 127.0.0.1 is already in use (set BASE_PORT= to move the benchmark ports)"
    done
    return 0
}

# raise_nofile: soft open-file limit up to the hard limit (the 10 000
# connection test needs more than the usual 1024).
raise_nofile() {
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# --------------------------------------------------------------------------
# Server CPU time
#
# Two ways, both over all of a server's processes:
# - /proc: utime + stime + cutime + cstime of the server's main process and
#   every descendant alive at the moment of reading (/proc/PID/stat). cutime
#   and cstime hold only children that their parent has *waited for*: a
#   child reaped by a SIGCHLD that is ignored (Apache's mod_cgid daemon does
#   that for its CGI scripts) or not yet reaped is missing, and a process
#   that exits between two readings takes its CPU time with it unless its
#   parent waits for it.
# - cgroup: cpu_track moves the server's processes into a cgroup v2 of their
#   own (a child of this shell's cgroup, on the cgroup2 mount); usage_usec of
#   its cpu.stat counts every process that ever ran in it, exited or not,
#   waited for or not. Needs a writable cgroup2 mount (root); BENCH_CGROUP=0
#   turns it off. The cgroups are removed at exit.
# server_cpu_ms uses the cgroup when the server has one, else /proc.
# --------------------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
declare -A CPU_CG=() # server pid → its cgroup directory
CPU_CG_NOTE=""       # why cgroups are not used, once known

# proc_cpu_ms PID: CPU ms of PID and its live descendants (see above).
proc_cpu_ms() {
    local p ticks=0 t
    for p in "$1" $(descendants "$1"); do
        # fields after "(comm) ": state is 1, utime 12, stime 13, cutime 14, cstime 15
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }') || continue
        ticks=$((ticks + ${t:-0}))
    done
    echo $((ticks * 1000 / CLK_TCK))
}

_cgroup_base() { # the cgroup2 directory of this shell, if writable
    local mnt rel
    mnt=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
    rel=$(sed -n 's/^0:://p' /proc/self/cgroup)
    [[ -n $mnt && -n $rel && -w $mnt${rel%/} && -e $mnt${rel%/}/cgroup.procs ]] || return 1
    echo "$mnt${rel%/}"
}

# cpu_track NAME PID: move PID and its descendants into a new cgroup (their
# future children follow). Fails (with CPU_CG_NOTE set) when cgroups can't
# be used; server_cpu_ms then falls back to /proc.
cpu_track() {
    local name=$1 pid=$2 base dir p
    if [[ ${BENCH_CGROUP:-1} == 0 ]]; then
        CPU_CG_NOTE="BENCH_CGROUP=0"
        return 1
    fi
    base=$(_cgroup_base) || {
        CPU_CG_NOTE="no writable cgroup2 mount"
        return 1
    }
    dir=$base/portshare-bench-$$-$name
    if ! mkdir -p "$dir" 2>/dev/null || [[ ! -e $dir/cpu.stat ]]; then
        CPU_CG_NOTE="cannot make a cgroup with cpu.stat under $base"
        rmdir "$dir" 2>/dev/null
        return 1
    fi
    CPU_CG[$pid]=$dir
    for p in "$pid" $(descendants "$pid"); do
        echo "$p" >"$dir/cgroup.procs" 2>/dev/null || {
            CPU_CG_NOTE="cannot move processes into $dir"
            unset "CPU_CG[$pid]"
            return 1
        }
    done
}

# server_cpu_ms PID: CPU ms of the server PID (cgroup if tracked, else /proc).
server_cpu_ms() {
    local dir=${CPU_CG[$1]:-}
    if [[ -n $dir ]]; then
        awk '$1 == "usage_usec" { printf "%.0f\n", $2 / 1000 }' "$dir/cpu.stat"
    else
        proc_cpu_ms "$1"
    fi
}

# cpu_method PID: "cgroup" or "/proc", what server_cpu_ms uses for PID.
cpu_method() {
    if [[ -n ${CPU_CG[$1]:-} ]]; then echo cgroup; else echo /proc; fi
}

cpu_cgroups_remove() { # at exit, after the servers are stopped
    local dir i
    for dir in "${CPU_CG[@]}"; do
        for ((i = 0; i < 30; i++)); do
            rmdir "$dir" 2>/dev/null && break
            [[ -d $dir ]] || break
            sleep 0.1
        done
        [[ -d $dir ]] && log "could not remove cgroup $dir: $(tr '\n' ' ' <"$dir/cgroup.procs" 2>/dev/null)"
    done
    return 0
}

# --------------------------------------------------------------------------
# Tools, files, certificates
# --------------------------------------------------------------------------

# install_tools: install the Debian packages that are missing (one
# apt-get update at most). Command → package: wrk, h2load → nghttp2-client,
# nginx, caddy, curl, openssl. Arguments COMMAND=PACKAGE add more.
install_tools() {
    local -A pkg_of=([wrk]=wrk [h2load]=nghttp2-client [nginx]=nginx [caddy]=caddy
        [curl]=curl [openssl]=openssl [python3]=python3)
    local cmd missing=() extra
    for extra in "$@"; do pkg_of[${extra%%=*}]=${extra#*=}; done
    for cmd in "${!pkg_of[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("${pkg_of[$cmd]}")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    local sudo=""
    [[ $EUID == 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# nginx lives in /usr/sbin, which is not always on a user's PATH.
NGINX_BIN=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)

# portshare_version: the commit the benchmark built (git describe), or the
# binary given in BENCH_PORTSHARE_BIN.
portshare_version() {
    if [[ -n ${BENCH_PORTSHARE_BIN:-} ]]; then
        echo "($BENCH_PORTSHARE_BIN)"
    else
        (cd "$REPO_DIR" && git describe --always --dirty 2>/dev/null) || echo "?"
    fi
}

# nginx_version: "nginx/1.22.1".
nginx_version() {
    "$NGINX_BIN" -v 2>&1 | sed 's/.*: //'
}

# make_docroot DIR: small.txt (100 B), index.html (1 KiB), large.bin (1 MiB,
# pseudo-random bytes from a fixed seed, so every run serves the same file).
make_docroot() {
    local dir=$1
    mkdir -p "$dir"
    head -c 99 /dev/zero | tr '\0' 'a' >"$dir/small.txt"
    echo >>"$dir/small.txt"
    {
        printf '<!doctype html>\n<html><head><title>portshare bench</title></head><body>\n'
        local i
        for ((i = 0; i < 40; i++)); do printf '<p>portshare bench page</p>\n'; done
    } | head -c 1000 >"$dir/index.html"
    printf '\n</body></html>\n' >>"$dir/index.html"
    truncate -s 1024 "$dir/index.html"
    openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:portshare-bench </dev/zero 2>/dev/null |
        head -c 1048576 >"$dir/large.bin" || true
    [[ $(stat -c %s "$dir/large.bin") == 1048576 ]] || head -c 1048576 /dev/urandom >"$dir/large.bin"
    chmod -R a+rX "$dir"
}

# make_cert DIR: self-signed ECDSA P-256 certificate for 127.0.0.1 and
# localhost → DIR/cert.pem, DIR/key.pem.
make_cert() {
    local dir=$1
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 7 \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        >/dev/null 2>&1 || die "openssl could not make the test certificate"
    chmod 644 "$dir/key.pem" "$dir/cert.pem"
}

# --------------------------------------------------------------------------
# Servers. Each start_* function starts one server in the foreground of a
# background job, records its pid in BENCH_PIDS and LAST_PID, waits for its
# port and returns non-zero (with the server stopped) when it doesn't come up.
# START_TIMEOUT (seconds, default 15) bounds the wait for the port.
# SERVER_WRAP, if set, is a command line that nginx and portshare are started
# under (bench/instructions.sh: valgrind).
# Every server writes an access log to a file under $BENCH_TMP, like
# portshare does, so all pay the same logging cost.
# --------------------------------------------------------------------------

_started() { # _started NAME PID PORT LOGFILE
    local name=$1 pid=$2 port=$3 logf=$4
    BENCH_PIDS+=("$pid")
    LAST_PID=$pid
    if ! wait_port "$port" "$pid" "${START_TIMEOUT:-15}"; then
        log "$name did not come up on port $port within ${START_TIMEOUT:-15} s; its output:"
        tail -n 20 "$logf" >&2 || true
        forget_pid "$pid"
        return 1
    fi
}

# start_nginx PORT DOCROOT [TLS_PORT CERT KEY]
# Env: PROXY_BACKEND=PORT adds location /proxy/ → 127.0.0.1:PORT (with an
# upstream keep-alive pool, as a tuned nginx would have).
start_nginx() {
    local port=$1 docroot=$2 tls_port=${3:-0} cert=${4:-} key=${5:-}
    local dir="$BENCH_TMP/nginx-$port"
    mkdir -p "$dir/tmp"
    local mime="" user="" tls="" proxy="" upstream=""
    [[ -f /etc/nginx/mime.types ]] && mime="include /etc/nginx/mime.types;"
    [[ $EUID == 0 ]] && user="user root;"
    if [[ $tls_port != 0 ]]; then
        tls="listen 127.0.0.1:$tls_port ssl http2 backlog=4096;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;"
    fi
    if [[ -n ${PROXY_BACKEND:-} ]]; then
        upstream="upstream bench_backend { server 127.0.0.1:$PROXY_BACKEND; keepalive 64; }"
        proxy="location /proxy/ {
            proxy_pass http://bench_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }"
    fi
    cat >"$dir/nginx.conf" <<EOF
$user
worker_processes auto;
worker_rlimit_nofile $(ulimit -n);
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 12000; }
http {
    $mime
    default_type application/octet-stream;
    access_log $dir/access.log combined ${NGINX_LOG_BUFFER-buffer=64k flush=1s};
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 120s;
    server_tokens off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    ${NGINX_HTTP_EXTRA:-}
    $upstream
    server {
        listen 127.0.0.1:$port backlog=4096;
        $tls
        root $docroot;
        location / { }
        $proxy
    }
}
EOF
    # shellcheck disable=SC2086 # SERVER_WRAP is a command line
    ${SERVER_WRAP:-} "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/out.log" 2>&1 &
    _started nginx $! "$port" "$dir/out.log"
}

# start_backend PORT: the trivial proxied application — an nginx with one
# worker answering every request with 200 "ok" (no access log).
start_backend() {
    local port=$1 dir="$BENCH_TMP/backend-$1"
    mkdir -p "$dir/tmp"
    local user=""
    [[ $EUID == 0 ]] && user="user root;"
    cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / { default_type text/plain; return 200 'ok'; }
    }
}
EOF
    "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/out.log" 2>&1 &
    _started backend $! "$port" "$dir/out.log"
}

# start_caddy PORT DOCROOT [TLS_PORT CERT KEY]
# Env: PROXY_BACKEND=PORT adds reverse_proxy /proxy/* → 127.0.0.1:PORT.
start_caddy() {
    local port=$1 docroot=$2 tls_port=${3:-0} cert=${4:-} key=${5:-}
    local dir="$BENCH_TMP/caddy-$port"
    mkdir -p "$dir/data" "$dir/config"
    local proxy=""
    [[ -n ${PROXY_BACKEND:-} ]] && proxy="reverse_proxy /proxy/* 127.0.0.1:$PROXY_BACKEND"
    {
        cat <<EOF
{
    admin off
    auto_https off
    servers {
        protocols h1 h2
    }
}
http://127.0.0.1:$port {
    bind 127.0.0.1
    root * $docroot
    file_server
    $proxy
    log {
        output file $dir/access.log
    }
}
EOF
        if [[ $tls_port != 0 ]]; then
            cat <<EOF
https://127.0.0.1:$tls_port, https://localhost:$tls_port {
    bind 127.0.0.1
    tls $cert $key
    root * $docroot
    file_server
    $proxy
    log {
        output file $dir/access-tls.log
    }
}
EOF
        fi
    } >"$dir/Caddyfile"
    HOME=$dir XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
        caddy run --config "$dir/Caddyfile" --adapter caddyfile >"$dir/out.log" 2>&1 &
    _started caddy $! "$port" "$dir/out.log"
}

# start_apache PORT DOCROOT: Debian's apache2 (install_tools apache2=apache2)
# with its own minimal config under $BENCH_TMP, never /etc/apache2: mpm_event
# with Debian's mpm_event.conf numbers (StartServers 2, ThreadsPerChild 25,
# MaxRequestWorkers 150), mod_cgid (`AddHandler cgi-script .cgi`,
# `Options +ExecCGI` in DOCROOT), mod_mime, mod_authz_core; keep-alive with
# no request limit; the combined access log to a file. As root the children
# and the cgid daemon run as www-data (Apache refuses root), as Debian's do.
# The parent stays in the foreground (-DFOREGROUND): its pid is LAST_PID.
start_apache() {
    local port=$1 docroot=$2 dir="$BENCH_TMP/apache-$1" mods=/usr/lib/apache2/modules
    local bin user=""
    bin=$(command -v apache2 2>/dev/null || echo /usr/sbin/apache2)
    [[ -x $bin ]] || die "apache2 is not installed (install_tools apache2=apache2)"
    mkdir -p "$dir"
    chmod 755 "$dir"
    if [[ $EUID == 0 ]]; then
        getent passwd www-data >/dev/null || die "user www-data (for Apache's children) does not exist"
        user="User www-data
Group www-data"
    fi
    cat >"$dir/httpd.conf" <<EOF
ServerRoot $dir
ServerName 127.0.0.1
Listen 127.0.0.1:$port
DefaultRuntimeDir $dir
PidFile $dir/apache2.pid
Mutex file:$dir default
ErrorLog $dir/error.log
LogLevel warn
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule mime_module $mods/mod_mime.so
LoadModule cgid_module $mods/mod_cgid.so
$user
StartServers 2
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 150
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 120
ServerTokens Prod
TypesConfig /etc/mime.types
ScriptSock $dir/cgid.sock
LogFormat "%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" combined
CustomLog $dir/access.log combined
DocumentRoot $docroot
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory $docroot>
    Options +ExecCGI
    AddHandler cgi-script .cgi
    Require all granted
</Directory>
EOF
    [[ -f /etc/mime.types ]] || sed -i '/^TypesConfig/d' "$dir/httpd.conf"
    "$bin" -f "$dir/httpd.conf" -t >"$dir/configtest.log" 2>&1 ||
        die "apache2 rejects its config: $(tail -n 3 "$dir/configtest.log" | tr '\n' ' ')"
    LANG=C "$bin" -f "$dir/httpd.conf" -DFOREGROUND >"$dir/out.log" 2>&1 &
    _started apache2 $! "$port" "$dir/error.log"
}

# apache_version: "Apache/2.4.71 (Debian)".
apache_version() {
    "$(command -v apache2 2>/dev/null || echo /usr/sbin/apache2)" -v 2>/dev/null | sed -n 's/^Server version: //p'
}

# portshare binary: BENCH_PORTSHARE_BIN, else the release build of this checkout.
portshare_bin() {
    echo "${BENCH_PORTSHARE_BIN:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/portshare}"
}

# build_portshare: cargo build --release (skipped when BENCH_PORTSHARE_BIN is set).
build_portshare() {
    if [[ -n ${BENCH_PORTSHARE_BIN:-} ]]; then
        [[ -x $BENCH_PORTSHARE_BIN ]] || die "BENCH_PORTSHARE_BIN=$BENCH_PORTSHARE_BIN is not executable"
        return 0
    fi
    log "building portshare (cargo build --release)"
    (cd "$REPO_DIR" && cargo build --release --quiet --bin portshare) >&2 ||
        die "cargo build --release failed"
}

# portshare_cli INI ARGS...: run a portshare subcommand (cert …, http …) on
# the GLOBAL.INI INI. portshare reads PORTSHARE_* variables as settings (and
# rejects unknown ones): run it without any, so only the generated file counts.
portshare_cli() {
    local ini=$1 v
    shift
    local -a unset_env=()
    for v in $(compgen -e); do
        [[ $v == PORTSHARE_* ]] && unset_env+=(-u "$v")
    done
    env "${unset_env[@]}" "$(portshare_bin)" --config "$ini" "$@"
}

# cert_sha1 CERT: the certificate's thumbprint, lowercase hex SHA-1 of the
# leaf's DER (what netsh calls certhash).
cert_sha1() {
    openssl x509 -in "$1" -outform DER | sha1sum | cut -d' ' -f1
}

# BENCH_APPID: the appid of the benchmark's SSL bindings (any GUID will do).
BENCH_APPID='{00112233-4455-6677-8899-aabbccddeeff}'

# portshare_bind_cert INI TLS_PORT CERT KEY: give portshare the benchmark
# certificate the way a user does. Copying files into cert_dir is not enough:
# portshare serves a certificate only when an SSL binding names it (without
# one it makes its own self-signed localhost certificate on first run). So:
# `portshare cert import` (one PEM with the certificate and its key, into
# the store in cert_dir), then `portshare http add sslcert
# ipport=0.0.0.0:TLS_PORT certhash=<thumbprint> appid=…`, netsh-style; the
# 0.0.0.0 binding covers listen=127.0.0.1 (IPv4). Runs before the server
# starts; check_served_cert checks the result once it runs.
portshare_bind_cert() {
    local ini=$1 port=$2 cert=$3 key=$4 dir tp
    dir=$(dirname "$ini")
    tp=$(cert_sha1 "$cert") || return 1
    cat "$cert" "$key" >"$dir/bench-cert+key.pem"
    chmod 600 "$dir/bench-cert+key.pem"
    if ! portshare_cli "$ini" cert import "$dir/bench-cert+key.pem" >"$dir/cert-import.log" 2>&1; then
        log "portshare cert import failed: $(tail -n 3 "$dir/cert-import.log" | tr '\n' ' ')"
        return 1
    fi
    if ! portshare_cli "$ini" http add sslcert "ipport=0.0.0.0:$port" "certhash=$tp" "appid=$BENCH_APPID" \
        >"$dir/sslcert.log" 2>&1; then
        log "portshare http add sslcert failed: $(tail -n 3 "$dir/sslcert.log" | tr '\n' ' ')"
        return 1
    fi
    portshare_cli "$ini" http show sslcert "ipport=0.0.0.0:$port" >>"$dir/sslcert.log" 2>&1 || true
    grep -qiE "Certificate Hash +: +$tp" "$dir/sslcert.log" || {
        log "portshare http show sslcert does not list certhash $tp for 0.0.0.0:$port"
        return 1
    }
}

# served_sha1 PORT: thumbprint of the leaf certificate served on
# 127.0.0.1:PORT (no SNI, as for a client connecting to an IP address).
served_sha1() {
    openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null |
        openssl x509 -outform DER 2>/dev/null | sha1sum | cut -d' ' -f1
}

# check_served_cert NAME PORT CERT: the server on PORT serves exactly CERT
# (same SHA-1 thumbprint), and curl verifies it with CERT as the only trusted
# CA (no -k). Logs the result; fails on a mismatch.
check_served_cert() {
    local name=$1 port=$2 cert=$3 want got
    want=$(cert_sha1 "$cert")
    got=$(served_sha1 "$port")
    if [[ $got != "$want" ]]; then
        log "$name on :$port serves certificate $got, not the benchmark one ($want)"
        return 1
    fi
    if ! curl -sS --max-time 5 --cacert "$cert" -o /dev/null "https://127.0.0.1:$port/small.txt" \
        2>"$BENCH_TMP/raw/curl-cacert"; then
        log "$name on :$port: curl --cacert failed: $(cat "$BENCH_TMP/raw/curl-cacert")"
        return 1
    fi
    log "$name on :$port serves the benchmark certificate (sha1 $got, curl --cacert ok)"
}

# start_portshare NAME PORT DOCROOT [TLS_PORT CERT KEY] [EXTRA_INI_FILE]
# NAME names its directory (several instances can run). EXTRA_INI_FILE is
# appended to the generated GLOBAL.INI (e.g. [app:...] sections).
# The access log goes to a file (log_dir in $BENCH_TMP), as for the peers.
start_portshare() {
    local name=$1 port=$2 docroot=$3 tls_port=${4:-0} cert=${5:-} key=${6:-} extra=${7:-}
    local dir="$BENCH_TMP/portshare-$name"
    mkdir -p "$dir/logs" "$dir/certs"
    {
        cat <<EOF
[param]
host_name=+
listen=127.0.0.1
http_port=$port
https_port=$tls_port
public_dir=$docroot
cert_dir=$dir/certs
log_dir=$dir/logs
EOF
        [[ -n $extra ]] && cat "$extra"
    } >"$dir/GLOBAL.INI"
    if [[ $tls_port != 0 ]]; then
        portshare_bind_cert "$dir/GLOBAL.INI" "$tls_port" "$cert" "$key" || return 1
    fi
    # Without PORTSHARE_* variables (see portshare_cli).
    local -a unset_env=()
    local v
    for v in $(compgen -e); do
        [[ $v == PORTSHARE_* ]] && unset_env+=(-u "$v")
    done
    # shellcheck disable=SC2086 # SERVER_WRAP is a command line
    env "${unset_env[@]}" ${SERVER_WRAP:-} "$(portshare_bin)" --config "$dir/GLOBAL.INI" >"$dir/out.log" 2>&1 &
    _started "portshare ($name)" $! "$port" "$dir/out.log"
}

# --------------------------------------------------------------------------
# Checks and load generators. Each prints one number on success; on failure
# it logs why and returns non-zero (callers record "err"). Raw tool outputs
# are kept under $BENCH_TMP/raw.
# --------------------------------------------------------------------------

_raw_file() { # _raw_file TAG → a fresh file name under raw/
    local f
    f=$(mktemp "$BENCH_TMP/raw/$1.XXXX")
    echo "$f"
}

# http_ok URL [--body TEXT] [--size BYTES] [curl args...]: the URL answers
# 200 (and, if asked, with exactly TEXT or a body of BYTES bytes).
http_ok() {
    local url=$1 body="" size="" out
    shift
    while (($#)); do
        case $1 in
        --body) body=$2; shift 2 ;;
        --size) size=$2; shift 2 ;;
        *) break ;;
        esac
    done
    out=$(curl -sk --max-time 5 -o "$BENCH_TMP/raw/body" -w '%{http_code} %{size_download}' "$@" "$url" 2>/dev/null) || return 1
    [[ ${out%% *} == 200 ]] || return 1
    [[ -z $size || ${out#* } == "$size" ]] || return 1
    [[ -z $body || $(cat "$BENCH_TMP/raw/body") == "$body" ]] || return 1
}

# tls_ok PORT [PATH]: an HTTPS request to 127.0.0.1:PORT succeeds (-k).
tls_ok() {
    [[ ${1:-0} != 0 ]] && http_ok "https://127.0.0.1:$1${2:-/small.txt}" --size 100
}

# wrk_run TAG URL [wrk args...]: run wrk (-t2 -c${CONNS:-100} -d${DUR}s),
# fail on errors, leave the output in $WRK_OUT.
WRK_OUT=""
wrk_run() {
    local tag=$1 url=$2
    shift 2
    WRK_OUT=$(_raw_file "$tag")
    if ! timeout $((DUR + 30)) wrk -t2 -c"${CONNS:-100}" -d"${DUR}s" "$@" "$url" >"$WRK_OUT" 2>&1; then
        log "wrk failed on $url: $(tail -n 3 "$WRK_OUT" | tr '\n' ' ')"
        return 1
    fi
    if grep -q 'Non-2xx or 3xx responses' "$WRK_OUT"; then
        log "wrk on $url: $(grep 'Non-2xx' "$WRK_OUT") — result discarded"
        return 1
    fi
    if grep -q 'Socket errors' "$WRK_OUT"; then
        log "wrk on $url: $(grep 'Socket errors' "$WRK_OUT" | sed 's/^ *//')"
    fi
    return 0
}

# wrk_rps URL [wrk args...]: requests per second.
wrk_rps() {
    wrk_run wrk "$@" || return 1
    local rps
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$WRK_OUT")
    [[ -n $rps ]] && awk -v r="$rps" 'BEGIN { exit !(r > 0) }' || {
        log "wrk on $1 gave no requests"
        return 1
    }
    echo "$rps"
}

# wrk_cpu PID URL [wrk args...]: "RPS US_PER_REQ PROC_US_PER_REQ": requests
# per second and the server's CPU µs per request, read around the wrk run
# (server_cpu_ms of PID: its cgroup if cpu_track'ed, else /proc; the third
# figure always from /proc, for comparison). Requests: wrk's count of
# completed responses.
wrk_cpu() {
    local pid=$1 url=$2 c0 c1 p0 p1 rps n
    shift 2
    c0=$(server_cpu_ms "$pid") p0=$(proc_cpu_ms "$pid")
    wrk_run wrk "$url" "$@" || return 1
    c1=$(server_cpu_ms "$pid") p1=$(proc_cpu_ms "$pid")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$WRK_OUT")
    # "  12345 requests in 10.00s, 1.23MB read"
    n=$(awk '$2 == "requests" && $3 == "in" { print $1; exit }' "$WRK_OUT")
    if [[ -z $rps || -z $n || $n == 0 ]]; then
        log "wrk on $url gave no requests"
        return 1
    fi
    awk -v r="$rps" -v n="$n" -v c="$((c1 - c0))" -v p="$((p1 - p0))" \
        'BEGIN { printf "%s %.1f %.1f\n", r, c * 1000 / n, p * 1000 / n }'
}

# h2load_rps URL [h2load args...]: requests per second with
# h2load -t2 -c${CONNS:-100} -m${STREAMS:-10} -D ${DUR}; fails on any failed
# or errored request or a non-2xx status.
h2load_rps() {
    local url=$1 out
    shift
    out=$(_raw_file h2load)
    if ! timeout $((DUR + 30)) h2load -t2 -c"${CONNS:-100}" -m"${STREAMS:-10}" -D "$DUR" "$@" "$url" >"$out" 2>&1; then
        log "h2load failed on $url: $(tail -n 3 "$out" | tr '\n' ' ')"
        return 1
    fi
    # requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
    local reqline codes
    reqline=$(grep '^requests:' "$out" || true)
    codes=$(grep '^status codes:' "$out" || true)
    if [[ -z $reqline ]] || ! awk '{ exit !($10 == 0 && $12 == 0 && $8 > 0) }' <<<"$reqline"; then
        log "h2load on $url: ${reqline:-no summary} — result discarded"
        return 1
    fi
    if ! awk '{ exit !($5 == 0 && $7 == 0 && $9 == 0) }' <<<"${codes//,/}"; then
        log "h2load on $url: $codes — result discarded"
        return 1
    fi
    if [[ -n ${H2LOAD_PROTO:-} ]] && ! grep -q "Application protocol: $H2LOAD_PROTO" "$out"; then
        log "h2load on $url did not negotiate $H2LOAD_PROTO: $(grep 'Application protocol' "$out" || echo none)"
        return 1
    fi
    # finished in 3.00s, 81234.50 req/s, 12.34MB/s
    grep '^finished in' "$out" | sed -E 's/.* ([0-9.]+) req\/s.*/\1/'
}

# TLS_HOST: the host the HTTPS load generators (wrk, h2load) put in their
# URLs, and so send as SNI. wrk and h2load send even an IP address as SNI,
# which RFC 6066 forbids and which rustls answers with a warning per
# handshake ("Illegal SNI extension: ignoring IP address presented as
# hostname") that portshare logs — a cost no browser would cause. So
# "localhost" (in the certificate) when it resolves to 127.0.0.1 first,
# else 127.0.0.1. Set TLS_HOST= to choose.
if [[ -z ${TLS_HOST:-} ]]; then
    if [[ $(getent ahosts localhost 2>/dev/null | awk 'NR == 1 { print $1 }') == 127.0.0.1 ]]; then
        TLS_HOST=localhost
    else
        TLS_HOST=127.0.0.1
    fi
fi

# tls_new_conns PORT: full TLS handshakes per second. ${TLS_CLIENTS:-4} parallel
# `openssl s_time -new` loops (a new session every connection, never resumed),
# each connection: handshake, one HTTP/1.0 GET /small.txt, close.
tls_new_conns() {
    local port=$1 i total=0 t0 t1 n bytes f
    local req=$'/small.txt HTTP/1.0\r\nHost: 127.0.0.1:'"$port"$'\r\nX-Bench: 1'
    local -a pids files
    t0=$(date +%s.%N)
    for ((i = 0; i < ${TLS_CLIENTS:-4}; i++)); do
        f=$(_raw_file s_time)
        files+=("$f")
        timeout $((DUR + 30)) openssl s_time -connect "127.0.0.1:$port" -new -www "$req" -time "$DUR" \
            >"$f" 2>&1 </dev/null &
        pids+=($!)
    done
    local failed=0
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || {
            log "openssl s_time on :$port failed: $(tail -n 2 "${files[$i]}" | tr '\n' ' ')"
            failed=1
        }
    done
    ((failed == 0)) || return 1
    t1=$(date +%s.%N)
    for f in "${files[@]}"; do
        # "N connections in T real seconds, B bytes read per connection"
        read -r n bytes < <(sed -nE 's/^([0-9]+) connections in [0-9]+ real seconds, ([0-9]+) bytes read.*/\1 \2/p' "$f")
        if [[ -z ${n:-} || ${bytes:-0} -le 100 ]]; then
            log "openssl s_time on :$port: no full responses ($(tail -n 1 "$f"))"
            return 1
        fi
        total=$((total + n))
    done
    awk -v n="$total" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", n / (b - a) }'
}

# tls_resumed PORT SLOTS [tls12-ids]: "RESUMED/TOTAL", how many reconnects
# resumed their TLS session: a python client keeps SLOTS sessions (one per
# "connection slot", as wrk -cSLOTS does), connects SLOTS times to open them,
# then twice more round-robin, each time offering the slot's latest session
# (one GET /small.txt per connection, Connection: close), and counts
# SSLSocket.session_reused. Default TLS 1.3 (resumption by PSK / session
# ticket); tls12-ids: TLS 1.2 without the ticket extension (session IDs).
tls_resumed() {
    timeout 60 python3 - "$@" <<'EOF'
import socket, ssl, sys
port, slots = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if sys.argv[3:] == ["tls12-ids"]:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_TICKET
sessions, reused, total = [None] * slots, 0, 0
for r in range(3):
    for i in range(slots):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait
            with ctx.wrap_socket(raw, server_hostname="localhost", session=sessions[i]) as s:
                s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                while s.recv(65536):
                    pass
                if r:
                    total += 1
                    reused += s.session_reused
                sessions[i] = s.session
print(f"{reused}/{total}")
EOF
}

# median V...: median of the numeric arguments ("n/a" when none).
median() {
    printf '%s\n' "$@" | grep -E '^[0-9]+(\.[0-9]+)?$' | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "n/a"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# fmt_num V: 12345.6 → 12,346; 12.345 → 12.3; non-numbers unchanged.
fmt_num() {
    if [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
        LC_ALL=C awk -v v="$1" 'BEGIN {
            if (v >= 1000) { s = sprintf("%.0f", v); o = "";
                while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
                print s o }
            else if (v >= 100) printf "%.0f\n", v
            else if (v >= 10) printf "%.1f\n", v
            else printf "%.2f\n", v }'
    else
        echo "$1"
    fi
}

# ratio A B: A/B to two decimals, "–" if either is not a number.
ratio() {
    if [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ && $2 =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'
    else
        echo "–"
    fi
}
