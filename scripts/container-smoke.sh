#!/usr/bin/env bash
# Container smoke test: builds the image from the repository's Dockerfile
# with podman and checks what README's "Container" section promises:
#   - the server runs as a non-root user;
#   - PORTSHARE_* variables configure it (here: its ports and listen address);
#   - a volume-mounted public/ is served;
#   - the first-run certificate answers HTTPS and is the one
#     `podman exec NAME netsh http show sslcert` shows;
#   - the Dockerfile's HEALTHCHECK passes;
#   - SIGTERM (podman stop) ends it gracefully: exit code 0, not a kill.
#
# Why it builds the way it does: machines without an image registry (and
# without a Docker daemon) are common for this project (see the notes on
# containers), so
#   - the base image is pulled when possible, otherwise made from Debian's
#     packages with debootstrap and `podman import`ed as debian:bookworm-slim;
#   - the binary is built on this machine (`cargo build --release`) and put
#     into the Dockerfile's runtime stage, used verbatim: the Dockerfile's
#     build stage needs the rust:1-bookworm image, which may not be pullable.
#
# Environment (all optional):
#   CONTAINER_ENGINE   podman (default) or another podman-compatible CLI
#   CONTAINER_RUNTIME  OCI runtime; default runc when installed (crun refuses
#                      some cgroup layouts), else the engine's default
#   SMOKE_BINARY       an already built portshare binary (skips cargo build)
#   SMOKE_ROOTFS       an existing debootstrap'ed bookworm root (skips debootstrap)
#   SMOKE_KEEP_IMAGE=1 keep the portshare:smoke image afterwards
#
# Needs: podman, curl, openssl; debootstrap when the base cannot be pulled.
# Run as root, or rootless with podman set up for the user. Without systemd
# podman prints "unable to get systemd connection" errors about health-check
# timers; they are harmless (the check is run by hand below). Takes about
# 1-2 minutes with SMOKE_BINARY and SMOKE_ROOTFS, plus the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${CONTAINER_ENGINE:-podman}
IMAGE=portshare:smoke
BASE=debian:bookworm-slim
NAME=portshare-smoke-$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/portshare-smoke.XXXXXX")

say() { printf '== %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    if "${PM[@]}" container exists "$NAME" 2>/dev/null; then
        echo "--- container log:" >&2
        "${PM[@]}" logs "$NAME" >&2 || true
    fi
    exit 1
}

command -v "$ENGINE" >/dev/null || fail "$ENGINE is not installed (Debian: apt-get install podman runc)"
for tool in curl openssl; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

# Some machines forbid setrlimit, which podman's default ulimits need; an
# empty list changes nothing elsewhere. A caller's own CONTAINERS_CONF wins.
if [ -z "${CONTAINERS_CONF:-}" ]; then
    printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
    export CONTAINERS_CONF="$WORK/containers.conf"
fi
PM=("$ENGINE")
RUNTIME=${CONTAINER_RUNTIME:-}
if [ -z "$RUNTIME" ] && command -v runc >/dev/null; then
    RUNTIME=runc
fi
[ -n "$RUNTIME" ] && PM+=(--runtime "$RUNTIME")

cleanup() {
    "${PM[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
    if [ "${SMOKE_KEEP_IMAGE:-0}" != 1 ]; then
        "${PM[@]}" rmi -f "$IMAGE" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Polls "$@" once every 0.2 s until it succeeds or $1 seconds have passed.
wait_until() {
    local limit=$1
    shift
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# --- the base image ----------------------------------------------------------
if "${PM[@]}" image exists "$BASE"; then
    say "base image $BASE present"
elif timeout 60 "${PM[@]}" pull -q "docker.io/library/$BASE" >/dev/null 2>&1; then
    say "base image $BASE pulled"
else
    say "cannot pull $BASE: making it from Debian's packages"
    rootfs=${SMOKE_ROOTFS:-}
    if [ -z "$rootfs" ]; then
        command -v debootstrap >/dev/null || fail "no base image and no debootstrap (apt-get install debootstrap)"
        rootfs=$WORK/rootfs
        debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
    fi
    tar -C "$rootfs" -c . | "${PM[@]}" import - "$BASE" >/dev/null || fail "podman import of $rootfs failed"
fi

# --- the binary and the image ------------------------------------------------
binary=${SMOKE_BINARY:-}
if [ -z "$binary" ]; then
    say "cargo build --release --locked"
    cargo build --release --locked
    binary=target/release/portshare
fi
[ -x "$binary" ] || fail "$binary is not an executable"

# The build context: the Dockerfile's runtime stage as it is, after a build
# stage that only holds the binary at the path the runtime stage copies from.
ctx=$WORK/context
mkdir -p "$ctx/prebuilt"
cp "$binary" "$ctx/prebuilt/portshare"
# As the Dockerfile's build stage does (a debug build is ten times larger).
if command -v strip >/dev/null; then
    strip "$ctx/prebuilt/portshare"
fi
cp -r public "$ctx/public"
runtime_stage=$(awk '/^FROM debian:bookworm-slim/ { found = 1 } found' Dockerfile)
[ -n "$runtime_stage" ] || fail "no 'FROM debian:bookworm-slim' stage in the Dockerfile"
grep -q 'COPY --from=build /src/target/release/portshare' <<<"$runtime_stage" \
    || fail "the runtime stage no longer copies /src/target/release/portshare from the build stage; update this script"
{
    echo 'FROM scratch AS build'
    echo 'COPY prebuilt/portshare /src/target/release/portshare'
    echo "$runtime_stage"
} >"$ctx/Containerfile"
say "building $IMAGE"
# --format docker: the OCI image format has no HEALTHCHECK.
"${PM[@]}" build -q --format docker --network host --isolation chroot \
    -f "$ctx/Containerfile" -t "$IMAGE" "$ctx" >/dev/null || fail "image build failed"

# --- run it ------------------------------------------------------------------
# Free ports on this host (host networking: other networks may be missing).
read -r HTTP_PORT HTTPS_PORT < <(python3 - <<'EOF' 2>/dev/null || echo "18080 18443"
import socket
s = [socket.socket() for _ in range(2)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))
EOF
)
mkdir -p "$WORK/public" "$WORK/certs"
echo "hello from the volume" >"$WORK/public/hello.txt"
# The image's user (uid 10001) must be able to write the certificate store.
if [ "$(id -u)" = 0 ]; then
    chown 10001 "$WORK/certs"
else
    "${PM[@]}" unshare chown 10001 "$WORK/certs"
fi

say "non-root user"
uid=$("${PM[@]}" run --rm --network host --health-interval disable --entrypoint id "$IMAGE" -u) || fail "cannot run the image"
[ "$uid" != 0 ] || fail "the image runs as root"

say "starting $NAME on ports $HTTP_PORT/$HTTPS_PORT (from PORTSHARE_* variables)"
"${PM[@]}" run -d --name "$NAME" --network host \
    -e PORTSHARE_HTTP_PORT="$HTTP_PORT" \
    -e PORTSHARE_HTTPS_PORT="$HTTPS_PORT" \
    -e PORTSHARE_LISTEN=127.0.0.1 \
    -v "$WORK/public:/srv/public:ro" \
    -v "$WORK/certs:/srv/certs" \
    --health-interval disable \
    "$IMAGE" >/dev/null || fail "podman run failed"

wait_until 30 curl -fsS "http://127.0.0.1:$HTTP_PORT/hello.txt" || fail "no answer on the PORTSHARE_HTTP_PORT port"
body=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/hello.txt")
[ "$body" = "hello from the volume" ] || fail "the mounted public/ is not served: got '$body'"

server_uid=$("${PM[@]}" exec "$NAME" awk '/^Uid:/ { print $2 }' /proc/1/status)
[ "$server_uid" != 0 ] || fail "the server process runs as root"

say "first-run certificate over HTTPS"
wait_until 30 curl -fsSk "https://127.0.0.1:$HTTPS_PORT/hello.txt" || fail "no HTTPS answer"
body=$(curl -fsSk "https://127.0.0.1:$HTTPS_PORT/hello.txt")
[ "$body" = "hello from the volume" ] || fail "HTTPS served '$body'"
served=$(openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername localhost </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
[ -n "$served" ] || fail "cannot read the served certificate"
# The first-run certificate is issued by a development CA made beside it:
# export that CA from the container and verify the chain with it, no -k.
ca=$("${PM[@]}" logs "$NAME" 2>&1 | sed -n 's/.*made the portshare development CA thumbprint=\([0-9a-fA-F]*\).*/\1/p' | head -1)
if [ -n "$ca" ]; then
    "${PM[@]}" exec "$NAME" portshare cert export "$ca" --out /tmp/portshare-ca.crt >/dev/null \
        || fail "cert export of the development CA failed"
    "${PM[@]}" cp "$NAME:/tmp/portshare-ca.crt" "$WORK/ca.crt"
    body=$(curl -fsS --cacert "$WORK/ca.crt" --resolve "localhost:$HTTPS_PORT:127.0.0.1" \
        "https://localhost:$HTTPS_PORT/hello.txt") || fail "the certificate does not verify with its CA"
    [ "$body" = "hello from the volume" ] || fail "HTTPS with the CA served '$body'"
else
    fail "the log names no development CA; the first-run certificate cannot be verified"
fi

say "podman exec $NAME netsh http show sslcert"
sslcert=$("${PM[@]}" exec "$NAME" netsh http show sslcert) || fail "netsh http show sslcert failed"
grep -E 'IP:port|Hostname:port|Certificate Hash' <<<"$sslcert" | sed 's/^ */    /'
grep -qi "Certificate Hash *: *$served" <<<"$sslcert" \
    || fail "the served certificate ($served) is not the bound one"
ls "$WORK/certs" | grep -q . || fail "nothing was written to the mounted certs/"

say "HEALTHCHECK"
# The check runs on demand (`--health-interval disable` above: podman's
# periodic checks need systemd timers, which a CI machine may lack).
if "${PM[@]}" healthcheck run "$NAME"; then
    say "podman healthcheck run: healthy"
else
    # Podman without systemd cannot always run health checks by itself; run
    # the image's check command by hand then.
    check=$("${PM[@]}" image inspect --format '{{json .Config.Healthcheck.Test}}' "$IMAGE")
    [ "$check" != null ] && [ -n "$check" ] || fail "the image has no HEALTHCHECK"
    "${PM[@]}" exec "$NAME" bash -c "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[-1])' "$check")" \
        || fail "the HEALTHCHECK command fails"
fi

say "graceful stop on SIGTERM"
start=$SECONDS
"${PM[@]}" stop -t 30 "$NAME" >/dev/null || fail "podman stop failed"
took=$((SECONDS - start))
code=$("${PM[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || fail "exit code $code after SIGTERM (137 would be a kill after the timeout)"
[ "$took" -lt 30 ] || fail "the stop took ${took}s"
log=$("${PM[@]}" logs "$NAME" 2>&1)
grep -q "SIGTERM received" <<<"$log" || fail "the log does not show the SIGTERM"

say "container smoke test passed (stopped in ${took}s)"
