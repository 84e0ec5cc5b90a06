#!/usr/bin/env bash
# Builds krew and its manifest validator from their Go module (sigs.k8s.io/krew, pinned) for the
# krew test (tests/tests/krew.rs: validate-krew-manifest checks manifests/krew's manifest, and
# `krew install --manifest --archive` installs the release archive the way users will).
# Idempotent: cached under $FERROLB_CACHE (default ~/.cache/ferrolb), keyed by version. Prints
# the directory holding `krew` and `validate-krew-manifest` as its last line.
set -euo pipefail
VERSION=${FERROLB_KREW_VERSION:-0.4.3}
. "$(dirname "$0")/go-env.sh"
go_install_cached krew "$CACHE/bin/krew-$VERSION" "" \
  "sigs.k8s.io/krew/cmd/krew@v$VERSION" "sigs.k8s.io/krew/cmd/validate-krew-manifest@v$VERSION"
