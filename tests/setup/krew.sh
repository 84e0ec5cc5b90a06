#!/usr/bin/env bash
# Builds krew and its manifest validator from their Go module (sigs.k8s.io/krew, pinned) for the
# krew test (tests/tests/krew.rs: validate-krew-manifest checks manifests/krew's manifest, and
# `krew install --manifest --archive` installs the release archive the way users will).
# Idempotent: cached under $FERROLB_CACHE (default ~/.cache/ferrolb), keyed by version. Prints
# the directory holding `krew` and `validate-krew-manifest` as its last line.
set -euo pipefail
VERSION=${FERROLB_KREW_VERSION:-0.4.3}
. "$(dirname "$0")/go-env.sh"
BIN="$CACHE/bin/krew-$VERSION"

log() { printf '[krew] %s\n' "$*" >&2; }

if [ -x "$BIN/krew" ] && [ -x "$BIN/validate-krew-manifest" ]; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "go is required (https://go.dev); none on PATH"; exit 1; }
mkdir -p "$BIN" "$GOMODCACHE" "$GOCACHE"
start=$(date +%s)
log "building sigs.k8s.io/krew@v$VERSION: krew and validate-krew-manifest (cold: about a minute)"
GOBIN="$BIN" go install -trimpath -ldflags "-s -w" \
  "sigs.k8s.io/krew/cmd/krew@v$VERSION" "sigs.k8s.io/krew/cmd/validate-krew-manifest@v$VERSION"
for tool in krew validate-krew-manifest; do
  [ -x "$BIN/$tool" ] || { log "build finished but $BIN/$tool is missing"; exit 1; }
done
log "built in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
