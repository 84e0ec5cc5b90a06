#!/usr/bin/env bash
# ferrolb's whole test suite, exactly as CI runs it (.ci/run calls this):
#   1. prerequisites: the real kube-apiserver, kubectl, etcd, kubelet, kube-controller-manager
#      and kube-scheduler, built from their Go modules and cached under ~/.cache/ferrolb
#      (minutes the first time, seconds afterwards), and the container images of the real
#      cluster (tests/setup/images.sh);
#   2. formatting and lints (cargo fmt --check, clippy -D warnings);
#   3. every unit, property and integration test, including those against the real apiserver
#      and those in network namespaces (root needed), which run the built binaries;
#   4. a short libFuzzer run of the BGP message decoder (bgp/fuzz, nightly + cargo-fuzz), failing
#      on any crash; FERROLB_FUZZ_SECONDS sets its length (default 45, 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "prerequisites"
bash tests/setup/packages.sh
FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1)
export FERROLB_K8S_BIN
FERROLB_HELM_BIN=$(bash tests/setup/helm.sh | tail -n 1)
export FERROLB_HELM_BIN
# The real cluster's images (tests/tests/cluster_e2e.rs): pause, echo and ferrolb's own.
FERROLB_IMAGES=$(bash tests/setup/images.sh | tail -n 1)
export FERROLB_IMAGES
FUZZ_SECONDS=${FERROLB_FUZZ_SECONDS:-45}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  CARGO_FUZZ=$(bash tests/setup/cargo-fuzz.sh | tail -n 1)
fi

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path bgp/fuzz/Cargo.toml -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (the binaries the namespace tests run as processes)"
cargo build --workspace --bins --locked

step "cargo test"
cargo test --workspace --locked

if [ "$FUZZ_SECONDS" -gt 0 ]; then
  step "fuzz: decode_message for ${FUZZ_SECONDS}s"
  # Seeds are written by the codec itself; the corpus the run grows is thrown away. No
  # sanitizer: the codec has no unsafe code, and overflow checks stay on.
  fuzz=$(mktemp -d); trap 'rm -rf "$fuzz"' EXIT
  cargo run -q --locked -p ferrolb-bgp --example fuzz_seeds -- "$fuzz/seeds"
  mkdir "$fuzz/corpus"
  (cd bgp/fuzz && PATH="$(dirname "$CARGO_FUZZ"):$PATH" cargo +nightly fuzz run --sanitizer none \
    decode_message "$fuzz/corpus" "$fuzz/seeds" -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1)
fi
