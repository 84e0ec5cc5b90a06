#!/usr/bin/env bash
# ferrolb's whole test suite, exactly as CI runs it (.ci/run calls this):
#   1. prerequisites, by tests/setup/prepare.sh (the same entry point `./lab` uses): Debian
#      packages, the real kube-apiserver, kube-proxy, kubectl and etcd built from their Go
#      modules and cached under ~/.cache/ferrolb, ferrolb's binaries (the namespace tests run
#      them as processes), helm, krew, promtool and cargo-fuzz — minutes the first time, seconds afterwards;
#   2. formatting and lints (cargo fmt --check, clippy -D warnings);
#   3. every unit, property and integration test, including those against the real apiserver
#      and those in network namespaces (root needed), which run the built binaries;
#   4. short libFuzzer runs of the BGP message decoder and the BMP codec (bgp/fuzz, nightly +
#      cargo-fuzz), failing on any crash; FERROLB_FUZZ_SECONDS sets the first's length (default
#      45, 0 skips both), the BMP run gets a third of it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "prerequisites"
FUZZ_SECONDS=${FERROLB_FUZZ_SECONDS:-45}
# Exports FERROLB_K8S_BIN, FERROLB_IMAGES, FERROLB_PREVIOUS_DIR,
# FERROLB_HELM_BIN, FERROLB_KREW_BIN, FERROLB_PROMETHEUS_BIN and (unless fuzzing is off) CARGO_FUZZ_BIN.
prepared=$(FERROLB_FUZZ_SECONDS=$FUZZ_SECONDS bash tests/setup/prepare.sh tests)
eval "$prepared"

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path bgp/fuzz/Cargo.toml -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
# Every test binary runs even after one fails, so a red run lists all its failures.
cargo test --workspace --locked --no-fail-fast

if [ "$FUZZ_SECONDS" -gt 0 ]; then
  step "fuzz: decode_message for ${FUZZ_SECONDS}s"
  # Seeds are written by the codec itself; the corpus the run grows is thrown away. No
  # sanitizer: the codec has no unsafe code, and overflow checks stay on.
  fuzz=$(mktemp -d); trap 'rm -rf "$fuzz"' EXIT
  cargo run -q --locked -p ferrolb-bgp --example fuzz_seeds -- "$fuzz/seeds"
  mkdir "$fuzz/corpus"
  (cd bgp/fuzz && PATH="$CARGO_FUZZ_BIN:$PATH" cargo +nightly fuzz run --sanitizer none \
    decode_message "$fuzz/corpus" "$fuzz/seeds" -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1)
  bmp_seconds=$(( (FUZZ_SECONDS + 2) / 3 ))
  step "fuzz: bmp_message for ${bmp_seconds}s"
  # Its inputs build BMP messages as well as being decoded, so it needs no seeds.
  mkdir "$fuzz/bmp"
  (cd bgp/fuzz && PATH="$CARGO_FUZZ_BIN:$PATH" cargo +nightly fuzz run --sanitizer none \
    bmp_message "$fuzz/bmp" -- -max_total_time="$bmp_seconds" -print_final_stats=1)
fi
