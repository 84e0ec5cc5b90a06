#!/usr/bin/env bash
# The Grafana dashboard's panels as images (needs root): the lab, a real Prometheus scraping it
# while a timeline of events plays, every panel's queries drawn into docs/dashboard/*.svg and
# listed in docs/dashboard.md (src/bin/bench-dashboard-images.rs says how).
# Usage: tests/bench/dashboard-images.sh    (about 8 minutes warm)
set -euo pipefail
cd "$(dirname "$0")/../.."
prepared=$(bash tests/setup/prepare.sh lab); eval "$prepared"
PROMETHEUS=$(bash tests/setup/prometheus.sh | tail -n 1)
cargo build -q --release --locked -p ferrolb-tests --bin bench-dashboard-images
./target/release/bench-dashboard-images "$PROMETHEUS"
