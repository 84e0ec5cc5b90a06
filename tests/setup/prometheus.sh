#!/usr/bin/env bash
# Builds promtool and prometheus from Prometheus' Go module (github.com/prometheus/prometheus,
# pinned): promtool checks and unit-tests the alert rules (tests/tests/alerts.rs, `promtool test
# rules` on series scraped from the lab), prometheus scrapes the lab for the dashboard's panel
# images (tests/bench/dashboard-images.sh). The web UI's assets are not built (npm); the API is
# all that is used. Idempotent: cached under $FERROLB_CACHE (default ~/.cache/ferrolb), keyed by
# version. Prints the directory holding both as its last line.
set -euo pipefail
VERSION=${FERROLB_PROMETHEUS_VERSION:-0.316.0}
. "$(dirname "$0")/go-env.sh"
go_install_cached prometheus "$CACHE/bin/prometheus-$VERSION" "" \
  "github.com/prometheus/prometheus/cmd/promtool@v$VERSION" \
  "github.com/prometheus/prometheus/cmd/prometheus@v$VERSION"
