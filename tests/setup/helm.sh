#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v3, pinned) for the Helm chart's test
# (tests/tests/helm_chart.rs renders manifests/chart with `helm template`). Idempotent: the binary
# is cached under $FERROLB_CACHE (default ~/.cache/ferrolb), keyed by version. Prints the directory
# holding `helm` as its last line.
set -euo pipefail
VERSION=${FERROLB_HELM_VERSION:-3.22.0}
. "$(dirname "$0")/go-env.sh"
BIN="$CACHE/bin/helm-$VERSION"

log() { printf '[helm] %s\n' "$*" >&2; }

# A helm built without helm's Makefile's ldflags believes it talks to Kubernetes 1.20 when no
# cluster is asked (`helm template`, `helm lint`), and so refuses a chart that needs a newer one;
# the marker says this build has them.
if [ -x "$BIN/helm" ] && [ -f "$BIN/kube-version" ]; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "go is required (https://go.dev); none on PATH"; exit 1; }
mkdir -p "$BIN" "$GOMODCACHE" "$GOCACHE"
start=$(date +%s)
log "building helm.sh/helm/v3/cmd/helm@v$VERSION (cold: a few minutes)"
# As helm's Makefile does: the Kubernetes version it assumes is its client-go's (v0.35 → 1.35).
module=$(go mod download -json "helm.sh/helm/v3@v$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
client_go=$(awk '$1 == "k8s.io/client-go" { print $2 }' "$module/go.mod")
kube_minor=$(echo "$client_go" | cut -d. -f2)
[ -n "$kube_minor" ] || { log "no k8s.io/client-go version in $module/go.mod"; exit 1; }
kube="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kube_minor"
kube="$kube -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kube_minor"
GOBIN="$BIN" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean $kube" \
  "helm.sh/helm/v3/cmd/helm@v$VERSION"
[ -x "$BIN/helm" ] || { log "build finished but $BIN/helm is missing"; exit 1; }
echo "1.$kube_minor" > "$BIN/kube-version"
log "built in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
