#!/usr/bin/env bash
# Builds MetalLB's controller and speaker from their Go module (go.universe.tf/metallb, pinned)
# for the side-by-side benchmarks, cached under $FERROLB_CACHE. Prints the directory holding the
# binaries (`controller`, `speaker`) and, on a second line, the directory of MetalLB's CRDs (from
# the module cache).
set -euo pipefail
VERSION=${FERROLB_METALLB_VERSION:-0.16.1}
. "$(dirname "$0")/go-env.sh"
BIN="$CACHE/bin/metallb-$VERSION"
for cmd in controller speaker; do
  if [ ! -x "$BIN/$cmd" ]; then
    echo "[metallb] building go.universe.tf/metallb/$cmd@v$VERSION" >&2
    mkdir -p "$BIN"
    GOBIN="$BIN" go install "go.universe.tf/metallb/$cmd@v$VERSION"
  fi
done
echo "$BIN"
echo "$GOMODCACHE/go.universe.tf/metallb@v$VERSION/config/crd/bases"
