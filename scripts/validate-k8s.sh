#!/usr/bin/env bash
# Validates deploy/kubernetes/*.yaml against the Kubernetes API schemas,
# offline: PyPI's kubernetes-validate carries the schemas of every
# Kubernetes version in the package, so only its installation needs the
# network (into a virtualenv under target/, reused by later runs).
#
# --strict rejects unknown fields (a misspelt `readOnlyRootFileSystem`
# would otherwise pass and silently do nothing). Custom resources have no
# schema there: cert-manager's Certificate (certificate.yaml) is only
# checked for being YAML with its apiVersion and kind, and any other
# unknown kind fails. A broken manifest is validated first, to show that
# the validator does reject what it should.
#
# Environment: K8S_VERSION (default: the package's newest, e.g. 1.37.0).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.37.0
VENV=target/k8s-validate
if ! "$VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$VERSION"
fi
KV=("$VENV/bin/kubernetes-validate" --strict)
if [ -n "${K8S_VERSION:-}" ]; then
    KV+=(-k "$K8S_VERSION")
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The validator must refuse an unknown field and a wrong type.
cat >"$tmp/broken.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  replicas: two
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      containers:
        - name: c
          image: x
          securityContext:
            readOnlyRootFileSystem: true
EOF
if "${KV[@]}" --quiet "$tmp/broken.yaml" >"$tmp/broken.out" 2>&1; then
    cat "$tmp/broken.out" >&2
    echo "FAIL: kubernetes-validate accepted a broken Deployment" >&2
    exit 1
fi

status=0
for f in deploy/kubernetes/*.yaml; do
    out=$("${KV[@]}" "$f" 2>&1) || status=1
    printf '%s\n' "$out"
    # A missing schema is only a warning to kubernetes-validate: allow it
    # for cert-manager's kinds alone.
    if grep "Couldn't find schema" <<<"$out" | grep -qv "api version cert-manager.io/"; then
        echo "FAIL: $f has a kind without a schema" >&2
        status=1
    fi
done
[ "$status" = 0 ] && echo "deploy/kubernetes: valid"
exit "$status"
