#!/usr/bin/env bash
# Windows smoke suite: cross-builds portshare.exe (x86_64-pc-windows-gnu) and
# runs it under Wine, headless, in a private WINEPREFIX inside a temp folder:
#
#   GLOBAL.INI beside the .exe (UTF-16 with BOM, CRLF, Windows paths with `\`
#   and a drive letter), cert import of a PFX, `http add sslcert`, serve,
#   a static GET, a TLS handshake (fingerprint checked), a second app's prefix
#   registered over the named pipe (`portshare register`), `maintenance run`,
#   GLOBAL.INI in the working folder taking precedence, netsh.exe (a copy
#   of portshare.exe) running a piped command and an `exec` script, and a
#   graceful stop.
#
# Usage: bash scripts/windows-smoke.sh
#   SMOKE_PROFILE=release   test a release build (much slower to build)
#   SMOKE_KEEP=1            keep the temp folder (logs) for inspection
#   SMOKE_BUILD_TIMEOUT=N   seconds allowed for the cargo build (default 2400)
#   CARGO_TARGET_DIR        honoured as usual
#
# Installs what it needs when missing (apt-get: gcc-mingw-w64-x86-64 wine64;
# rustup: the x86_64-pc-windows-gnu target). Prints PASS/FAIL per step, exits
# nonzero on any failure, bounds every wait and kills everything it started.
#
# Graceful stop: Wine turns SIGINT to the process running the .exe into a
# console CTRL_C_EVENT, which the server handles like Ctrl-C on Windows
# (`wine taskkill` without /F only posts WM_CLOSE to windows; a console
# server has none, so it is not used).
#
# Debian's Wine 8 lacks bcryptprimitives.dll (ProcessPrng, called by Rust's
# std at start-up; without it every Rust .exe fails with c0000135). A
# test-only stand-in is built from scripts/wine-shim/bcryptprimitives.c and
# placed beside the .exe in the temp folder only; it is never shipped.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=x86_64-pc-windows-gnu
PROFILE=${SMOKE_PROFILE:-debug}
FIXTURES=$ROOT/tests/fixtures/certs
APPID='{4dc3e181-e14b-4a21-b022-59fc669b0914}'
STARTED_AT=$(date +%s)

FAILED=0
pass() { printf 'PASS: %s\n' "$1"; }
fail() { printf 'FAIL: %s\n' "$1"; [ $# -gt 1 ] && printf '      %s\n' "${@:2}"; FAILED=$((FAILED + 1)); }
info() { printf '  ..  %s\n' "$*"; }
# A step whose failure makes the rest pointless.
fatal() { fail "$@"; finish; }

T=""
PIDS=()
cleanup() {
  local pid
  { # (stderr: no "Killed" job notices)
    for pid in "${PIDS[@]}"; do
      kill -KILL "$pid"
    done
    if [ -n "$T" ] && [ -d "$T/prefix" ] && [ -n "${WINESERVER:-}" ]; then
      WINEPREFIX=$T/prefix timeout 20 "$WINESERVER" -k
      WINEPREFIX=$T/prefix timeout 20 "$WINESERVER" -w
    fi
    for pid in "${PIDS[@]}"; do
      wait "$pid"
    done
  } >/dev/null 2>&1
  PIDS=()
  if [ -n "$T" ] && [ -d "$T" ]; then
    if [ "${SMOKE_KEEP:-}" = 1 ] || [ "$FAILED" -ne 0 ]; then
      echo "logs kept in $T"
    else
      rm -rf "$T"
    fi
  fi
}
finish() {
  cleanup
  trap - EXIT
  local secs=$(($(date +%s) - STARTED_AT))
  if [ "$FAILED" -eq 0 ]; then
    echo "windows-smoke: all steps passed (${secs}s)"
    exit 0
  fi
  echo "windows-smoke: $FAILED step(s) FAILED (${secs}s)"
  exit 1
}
trap 'FAILED=$((FAILED + 1)); echo "FAIL: interrupted"; finish' INT TERM
trap 'cleanup' EXIT

# Waits up to $1 seconds for the command "${@:2}" to succeed.
wait_for() {
  local limit=$1 deadline
  shift
  deadline=$(($(date +%s) + limit))
  until "$@"; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.5
  done
}

# ---------------------------------------------------------------- tools
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need_apt=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need_apt+=(gcc-mingw-w64-x86-64)
if ! command -v wine64 >/dev/null && ! command -v wine >/dev/null && [ ! -x /usr/lib/wine/wine64 ]; then
  need_apt+=(wine64)
fi
command -v curl >/dev/null || need_apt+=(curl ca-certificates)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  info "installing ${need_apt[*]}"
  if ! { as_root timeout 300 apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${need_apt[@]}"; } >/tmp/windows-smoke-apt.log 2>&1; then
    fatal "install ${need_apt[*]}" "see /tmp/windows-smoke-apt.log"
  fi
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
  info "rustup target add $TARGET"
  timeout 600 rustup target add "$TARGET" >/dev/null 2>&1 || fatal "rustup target add $TARGET"
fi
if command -v wine64 >/dev/null; then WINE=$(command -v wine64)
elif command -v wine >/dev/null; then WINE=$(command -v wine)
else WINE=/usr/lib/wine/wine64; fi
if command -v wineserver >/dev/null; then WINESERVER=$(command -v wineserver)
else WINESERVER=/usr/lib/wine/wineserver; fi
[ -x "$WINESERVER" ] || WINESERVER=/usr/lib/wine/wineserver64
pass "tools ($("$WINE" --version 2>/dev/null), $(x86_64-w64-mingw32-gcc -dumpversion))"

# ---------------------------------------------------------------- build
t0=$(date +%s)
build_args=(build --locked --target "$TARGET")
[ "$PROFILE" = release ] && build_args+=(--release)
if ! (cd "$ROOT" && timeout "${SMOKE_BUILD_TIMEOUT:-2400}" cargo "${build_args[@]}") >/tmp/windows-smoke-build.log 2>&1; then
  tail -30 /tmp/windows-smoke-build.log
  fatal "cargo ${build_args[*]}" "full log: /tmp/windows-smoke-build.log"
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
EXE_BUILT=$TARGET_DIR/$TARGET/$PROFILE/portshare.exe
[ -f "$EXE_BUILT" ] || fatal "build" "no $EXE_BUILT"
pass "cargo ${build_args[*]} ($(($(date +%s) - t0))s)"

T=$(mktemp -d /tmp/portshare-smoke.XXXXXX)
mkdir -p "$T/prefix" "$T/app" "$T/site" "$T/run" "$T/cwd" "$T/backend/app"
if ! x86_64-w64-mingw32-gcc -shared -O2 -o "$T/app/bcryptprimitives.dll" \
    "$ROOT/scripts/wine-shim/bcryptprimitives.c" -ladvapi32 >"$T/shim.log" 2>&1; then
  cat "$T/shim.log"
  fatal "build the test-only bcryptprimitives.dll shim"
fi
cp "$EXE_BUILT" "$T/app/portshare.exe"
pass "test-only bcryptprimitives.dll shim built beside the .exe"

# ---------------------------------------------------------------- wine
export WINEPREFIX=$T/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" WINEARCH=win64
unset DISPLAY WAYLAND_DISPLAY
# Variables named PORTSHARE_* would override the test's GLOBAL.INI.
while IFS= read -r v; do unset "$v"; done < <(env | sed -n 's/^\(PORTSHARE_[A-Za-z0-9_]*\)=.*/\1/p')
t0=$(date +%s)
if ! timeout 180 "$WINE" wineboot -i </dev/null >"$T/wineboot.log" 2>&1; then
  fatal "wineboot (private WINEPREFIX)" "$(tail -5 "$T/wineboot.log")"
fi
# Let the first-boot session end: services installed right after it are not
# found again by Wine's service manager (StartService: error 1060).
timeout 60 "$WINESERVER" -w
# A persistent wineserver, and a boot whose daemons (services.exe, …) inherit
# only /dev/null and a log file.
"$WINESERVER" -p </dev/null >/dev/null 2>&1
timeout 120 "$WINE" wineboot </dev/null >>"$T/wineboot.log" 2>&1
# Keep one Wine process running throughout: without any, Wine shuts the
# prefix's service manager down (stopping services) and boots it again for
# the next command.
(exec "$WINE" ping -n 100000 127.0.0.1) </dev/null >/dev/null 2>&1 &
PIDS+=($!)
pass "private WINEPREFIX ready ($(($(date +%s) - t0))s)"

EXE=$T/app/portshare.exe
# Runs portshare.exe in $PS_DIR (default $T/run: no GLOBAL.INI there, so the
# one beside the .exe is used); its output lands in $out. Through a file, not
# $(…): a Wine daemon the command starts could inherit the pipe and hold it.
ps_exe() {
  local rc
  (cd "${PS_DIR:-$T/run}" && exec timeout 60 "$WINE" "$EXE" "$@") </dev/null >"$T/out.txt" 2>&1
  rc=$?
  out=$(cat "$T/out.txt")
  return $rc
}
# Windows path of a Unix path (Wine maps Z: to /).
winpath() { printf 'Z:%s' "${1//\//\\}"; }

if ps_exe --version && [[ $out == portshare* ]]; then
  pass "portshare.exe runs under Wine ($out)"
else
  fatal "portshare.exe --version" "$out"
fi

# ---------------------------------------------------------------- config
read -r HTTP HTTPS OTHER < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
echo "hello from portshare" >"$T/site/hello.txt"
echo "maintenance ok" >"$T/site/maint.txt"
echo "answer from the second app" >"$T/backend/app/x.txt"
# UTF-16LE with BOM and CRLF (as Notepad saves it), Windows paths with `\`
# (`\t` must stay a backslash and a t), a drive letter, a trailing `\`.
{
  printf '\xff\xfe'
  printf '; portshare smoke test\r\n[param]\r\nhttp_port=%s\r\nhttps_port=%s\r\nlisten=127.0.0.1\r\npublic_dir=%s\r\ncert_dir=.\\certs\r\nlog_dir=.\\logs\\\r\ndaily_maintenance=/maint.txt ; a static file: CGI is out of scope here\r\nshutdown_grace=5\r\n' \
    "$HTTP" "$HTTPS" "$(winpath "$T/site")" | iconv -f UTF-8 -t UTF-16LE
} >"$T/app/GLOBAL.INI"
info "ports: http $HTTP, https $HTTPS, second app $OTHER; public_dir=$(winpath "$T/site")"

# ---------------------------------------------------------------- certificate
THUMB=$(awk '$1 == "rsa.pem" { print $2 }' "$FIXTURES/thumbprints.txt")
ps_exe cert import "$(winpath "$FIXTURES/rsa-aes.pfx")" --password test
if [ $? -eq 0 ] && grep -qi "$THUMB" <<<"$out" && [ -d "$T/app/certs" ]; then
  pass "cert import rsa-aes.pfx → $THUMB (into certs\\ beside the GLOBAL.INI found beside the .exe)"
else
  fail "cert import rsa-aes.pfx --password test" "$out"
fi
ps_exe http add sslcert "ipport=0.0.0.0:$HTTPS" "certhash=$THUMB" "appid=$APPID"
if [ $? -eq 0 ]; then
  pass "http add sslcert ipport=0.0.0.0:$HTTPS certhash=$THUMB"
else
  fail "http add sslcert" "$out"
fi

# A GLOBAL.INI in the working folder wins over the one beside the .exe.
printf '[param]\r\npublic_dir=%s\r\ncert_dir=other-certs\r\n' "$(winpath "$T/site")" >"$T/cwd/GLOBAL.INI"
ps_exe http show sslcert
out_exe=$out
PS_DIR=$T/cwd ps_exe http show sslcert
out_cwd=$out
if grep -q "0.0.0.0:$HTTPS" <<<"$out_exe" && ! grep -q "0.0.0.0:$HTTPS" <<<"$out_cwd"; then
  pass "GLOBAL.INI: beside the .exe, and the working folder's one first"
else
  fail "GLOBAL.INI lookup (beside the .exe / working folder)" "beside: $out_exe" "cwd: $out_cwd"
fi

# ---------------------------------------------------------------- netsh.exe
# A copy of portshare.exe named netsh.exe is netsh (never the server): one
# command piped into it, and one `exec` script (pushd, a comment, add, show).
NETSH=$T/app/netsh.exe
cp "$EXE" "$NETSH"
# As ps_exe, with netsh.exe and the caller's standard input.
netsh_exe() {
  local rc
  (cd "$T/run" && exec timeout 60 "$WINE" "$NETSH" "$@") >"$T/out.txt" 2>&1
  rc=$?
  out=$(cat "$T/out.txt")
  return $rc
}
printf 'http show urlacl\r\n' | netsh_exe
rc=$?
out=$(cat "$T/out.txt") # netsh_exe ran in the pipeline's subshell
if [ "$rc" -eq 0 ] && grep -q '^URL Reservations:' <<<"$out" && ! grep -q 'starting' <<<"$out"; then
  pass "echo http show urlacl | netsh.exe: netsh's URL Reservations, exit code 0"
else
  fail "piped command into netsh.exe (exit code $rc)" "$out"
fi
printf '# portshare smoke test: a netsh script\r\npushd http\r\n\r\nadd urlacl url=http://+:%s/smoke/ user=Everyone\r\nshow urlacl\r\npopd\r\n' \
  "$HTTP" >"$T/app/netsh-script.txt"
netsh_exe exec "$(winpath "$T/app/netsh-script.txt")" </dev/null
rc=$?
if [ "$rc" -eq 0 ] && grep -q '^URL reservation successfully added' <<<"$out" &&
   grep -q "Reserved URL *: http://+:$HTTP/smoke/" <<<"$out"; then
  pass "netsh.exe exec $(winpath "$T/app/netsh-script.txt"): urlacl added and shown"
else
  fail "netsh.exe exec script (exit code $rc)" "$out"
fi

# ---------------------------------------------------------------- serve
(cd "$T/run" && exec "$WINE" "$EXE" serve) </dev/null >"$T/serve.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
get() { curl -s --max-time 10 "$@"; }
static_ok() { [ "$(get "http://127.0.0.1:$HTTP/hello.txt")" = "hello from portshare" ]; }
server_up() { kill -0 "$SERVER" 2>/dev/null && static_ok; }
if wait_for 90 server_up; then
  pass "serve: GET http://127.0.0.1:$HTTP/hello.txt (public_dir with \\ and a drive letter)"
else
  tail -20 "$T/serve.log"
  fatal "serve / static GET"
fi

body=$(get --cacert "$FIXTURES/ca.pem" --resolve "localhost:$HTTPS:127.0.0.1" "https://localhost:$HTTPS/hello.txt")
fp=$(timeout 20 openssl s_client -connect "127.0.0.1:$HTTPS" -servername localhost </dev/null 2>/dev/null |
  openssl x509 -noout -fingerprint -sha1 2>/dev/null | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
if [ "$body" = "hello from portshare" ] && [ "$fp" = "$THUMB" ]; then
  pass "TLS: https://localhost:$HTTPS verified with ca.pem, certificate SHA-1 $fp"
else
  fail "TLS handshake / fingerprint" "body: $body" "fingerprint: $fp (want $THUMB)"
fi

# ---------------------------------------------------------------- register
python3 -m http.server "$OTHER" --bind 127.0.0.1 --directory "$T/backend" >"$T/backend.log" 2>&1 &
PIDS+=($!)
backend_up() { [ "$(get "http://127.0.0.1:$OTHER/app/x.txt")" = "answer from the second app" ]; }
wait_for 30 backend_up || fail "second app (python3 http.server on $OTHER) did not start"
(cd "$T/run" && exec "$WINE" "$EXE" register "http://+:$HTTP/app/" --backend "http://127.0.0.1:$OTHER") </dev/null >"$T/register.log" 2>&1 &
REGISTER=$!
PIDS+=("$REGISTER")
app_answers() { [ "$(get "http://127.0.0.1:$HTTP/app/x.txt")" = "answer from the second app" ]; }
if wait_for 60 app_answers && [ "$(get "http://127.0.0.1:$HTTP/hello.txt")" = "hello from portshare" ]; then
  pass "register http://+:$HTTP/app/ over the named pipe: /app/ answered by the second app on the same port"
else
  fail "register over the named pipe" "$(cat "$T/register.log")"
fi

# ---------------------------------------------------------------- maintenance
ps_exe maintenance run
if [ $? -eq 0 ] && grep -q 200 <<<"$out"; then
  pass "maintenance run (/maint.txt): $(head -1 <<<"$out")"
else
  fail "maintenance run" "$out"
fi

# ---------------------------------------------------------------- stop
kill -INT "$REGISTER" 2>/dev/null
app_gone() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$HTTP/app/x.txt")" = 404 ]; }
if wait_for 30 app_gone; then
  pass "register stopped (Ctrl-C): its prefix is free again (404)"
else
  fail "unregister when the registering process ends" "$(cat "$T/register.log")"
fi

kill -INT "$SERVER" 2>/dev/null
server_gone() { ! kill -0 "$SERVER" 2>/dev/null; }
if wait_for 30 server_gone; then
  wait "$SERVER"
  rc=$?
  if [ "$rc" -eq 0 ] && grep -q "shutting down" "$T/serve.log"; then
    pass "graceful stop (Ctrl-C via SIGINT to the Wine process), exit code 0"
  else
    fail "graceful stop: exit code $rc" "$(tail -5 "$T/serve.log")"
  fi
else
  fail "graceful stop: still running 30 s after Ctrl-C"
fi
if [ -s "$T/app/logs/access.log" ]; then
  pass "access.log written in log_dir=.\\logs\\"
else
  fail "no access.log in $T/app/logs" "$(ls -la "$T/app" 2>&1)"
fi

# ---------------------------------------------------------------- service
# Wine has a service control manager (services.exe); the ping started above
# keeps it (and the service) running between the commands.
ps_exe service install --config "$(winpath "$T/app/GLOBAL.INI")"
if [ $? -eq 0 ]; then
  pass "service install --config $(winpath "$T/app/GLOBAL.INI")"
  ps_exe service start
  if [ $? -eq 0 ] && wait_for 30 static_ok; then
    pass "service start: the service serves http://127.0.0.1:$HTTP/hello.txt"
  else
    fail "service start" "$out" "$(cat "$T/app/logs/service.log" 2>&1)"
  fi
  ps_exe service stop
  if [ $? -eq 0 ] && ! static_ok && grep -q "service stop requested" "$T/app/logs/service.log" &&
     grep -q "all connections closed" "$T/app/logs/service.log"; then
    pass "service stop: graceful (service.log in log_dir)"
  else
    fail "service stop" "$out" "$(cat "$T/app/logs/service.log" 2>&1)"
  fi
  ps_exe service uninstall
  if [ $? -eq 0 ]; then pass "service uninstall"; else fail "service uninstall" "$out"; fi
else
  fail "service install" "$out"
fi

finish
