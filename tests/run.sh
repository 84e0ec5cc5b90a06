#!/usr/bin/env bash
# ferrolb's whole test suite, exactly as CI runs it (.ci/run calls this):
#   1. prerequisites: the real kube-apiserver, kubectl and etcd, built from their Go modules
#      and cached under ~/.cache/ferrolb (minutes the first time, seconds afterwards);
#   2. formatting and lints (cargo fmt --check, clippy -D warnings);
#   3. every unit, property and integration test, including those against the real apiserver
#      and those in network namespaces (root needed), which run the built binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "prerequisites"
bash tests/setup/packages.sh
FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1)
export FERROLB_K8S_BIN
FERROLB_HELM_BIN=$(bash tests/setup/helm.sh | tail -n 1)
export FERROLB_HELM_BIN

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (the binaries the namespace tests run as processes)"
cargo build --workspace --bins --locked

step "cargo test"
cargo test --workspace --locked
