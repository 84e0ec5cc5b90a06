#!/usr/bin/env bash
# Builds the container images of ferrolb's real test cluster (tests/src/cluster) as OCI image
# archives, without a registry or a Docker daemon, and prints their directory as its last line:
#
#   ferrolb-0.1.0.tar  ghcr.io/ferrolb/ferrolb:0.1.0 — the Dockerfile's result: static (musl)
#                      /ferrolb-controller and /ferrolb-speaker, the CA bundle, USER 65532:65532;
#                      loadable by `docker load -i` and `kind load image-archive`
#   pause.tar          localhost/ferrolb/pause:0.1.0 — the pod sandbox (containerd's sandbox_image)
#   echo.tar           localhost/ferrolb/echo:0.1.0 — the HTTP workload (answers with its pod,
#                      node and the client address it saw)
#
# The two small images are static C programs (tests/setup/images/*.c) built with gcc -static and
# cached by their source's hash; the ferrolb binaries are built from this checkout every time
# (cargo makes that quick when nothing changed). The archives are written by our own code
# (tests/src/image.rs, through the ferrolb-image binary). Output: $FERROLB_CACHE/images
# (default ~/.cache/ferrolb/images).
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${FERROLB_CACHE:-$HOME/.cache/ferrolb}
OUT="$CACHE/images"
MUSL=x86_64-unknown-linux-musl
log() { printf '[images] %s\n' "$*" >&2; }
start=$(date +%s)
mkdir -p "$OUT/bin"

# --- pause and echo: static C -----------------------------------------------------------------
for prog in pause echo; do
  src="tests/setup/images/$prog.c"
  sum=$(sha256sum "$src" | cut -c1-16)
  bin="$OUT/bin/$prog-$sum"
  if [ ! -x "$bin" ]; then
    log "compiling $prog (gcc -static)"
    gcc -static -O2 -s -Wall -Wextra -Werror -o "$bin.tmp" "$src"
    mv "$bin.tmp" "$bin"
  fi
  ln -sf "$(basename "$bin")" "$OUT/bin/$prog"
done

# --- ferrolb: static (musl) release binaries, as the Dockerfile builds them ----------------------
if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
  log "adding the Rust target $MUSL"
  rustup target add "$MUSL" >&2
fi
log "building ferrolb-controller and ferrolb-speaker for $MUSL (release; cold: minutes)"
cargo build --release --locked --target "$MUSL" -p ferrolb-controller -p ferrolb-speaker \
  --bin ferrolb-controller --bin ferrolb-speaker >&2
target=${CARGO_TARGET_DIR:-target}

# --- the archives ---------------------------------------------------------------------------
log "writing the image archives"
cargo run -q --locked -p ferrolb-tests --bin ferrolb-image -- \
  --out-dir "$OUT" \
  --pause "$OUT/bin/pause" --echo "$OUT/bin/echo" \
  --controller "$target/$MUSL/release/ferrolb-controller" \
  --speaker "$target/$MUSL/release/ferrolb-speaker" \
  --ca-bundle /etc/ssl/certs/ca-certificates.crt >&2
log "done in $(( $(date +%s) - start ))s: $OUT"
echo "$OUT"
