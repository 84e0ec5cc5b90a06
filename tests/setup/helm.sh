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

if [ -x "$BIN/helm" ]; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "go is required (https://go.dev); none on PATH"; exit 1; }
mkdir -p "$BIN" "$GOMODCACHE" "$GOCACHE"
start=$(date +%s)
log "building helm.sh/helm/v3/cmd/helm@v$VERSION (cold: a few minutes)"
GOBIN="$BIN" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  "helm.sh/helm/v3/cmd/helm@v$VERSION"
[ -x "$BIN/helm" ] || { log "build finished but $BIN/helm is missing"; exit 1; }
log "built in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
