#!/usr/bin/env bash
# Installs cargo-fuzz (the libFuzzer driver for `bgp/fuzz`) from crates.io with its lockfile,
# into a root of its own under $FERROLB_CACHE (default ~/.cache/ferrolb), never ~/.cargo/bin.
# Idempotent: a cached binary of the pinned version is reused. The fuzz targets themselves need
# the nightly toolchain (`cargo +nightly fuzz …`); this script only checks that it is there.
# Prints the path of the `cargo-fuzz` binary as its last line.
set -euo pipefail
VERSION=${FERROLB_CARGO_FUZZ_VERSION:-0.13.2}
CACHE=${FERROLB_CACHE:-$HOME/.cache/ferrolb}
ROOT="$CACHE/cargo-fuzz-$VERSION"
BIN="$ROOT/bin/cargo-fuzz"

log() { printf '[cargo-fuzz] %s\n' "$*" >&2; }

rustup toolchain list | grep -q '^nightly' || {
  log "the nightly toolchain is required (rustup toolchain install nightly --profile minimal)"
  exit 1
}

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q " $VERSION"; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

start=$(date +%s)
log "installing cargo-fuzz $VERSION into $ROOT (cold: a few minutes)"
# Its own target directory, so the build neither reuses nor pollutes the workspace's. All cores
# (prepare.sh runs one stage at a time); FERROLB_JOBS limits it.
CARGO_TARGET_DIR="$CACHE/cargo-fuzz-build" \
  cargo install cargo-fuzz --version "=$VERSION" --locked --root "$ROOT" -j "${FERROLB_JOBS:-$(nproc)}" >&2
rm -rf "$CACHE/cargo-fuzz-build"
[ -x "$BIN" ] || { log "install finished but $BIN is missing"; exit 1; }
log "installed in $(( $(date +%s) - start ))s"
echo "$BIN"
