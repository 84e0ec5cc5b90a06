#!/usr/bin/env bash
# Builds the ferrolb image of an earlier commit, for the upgrade tests (a rolling upgrade from
# one build to another, as users do it), and prints its directory as its last line:
#
#   ferrolb-0.1.0-<commit>.tar  ghcr.io/ferrolb/ferrolb:0.1.0-<commit> — that commit's static
#                               binaries, in the image this checkout's ferrolb-image writes
#   install.yaml                that commit's manifests/install.yaml, its image set to the above
#   REFERENCE                   the image reference, one line
#
# The commit is FERROLB_PREVIOUS, by default the one below: the main branch as CI last passed
# it before the speaker's status writer was rewritten, so the two builds write differently. Its
# source comes from this clone's history (`git archive`); it is built in a directory of its own
# that is removed afterwards, and the result is cached by commit under
# $FERROLB_CACHE/previous (default ~/.cache/ferrolb/previous). Cold: a release musl build of
# the workspace's own crates (minutes on 2 cores); warm: nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
PREVIOUS=${FERROLB_PREVIOUS:-c958f0e5cb4acdf67decd46b032c4d10ee2a3a1a}
CACHE=${FERROLB_CACHE:-$HOME/.cache/ferrolb}
MUSL=x86_64-unknown-linux-musl
log() { printf '[previous-image] %s\n' "$*" >&2; }
start=$(date +%s)

if ! commit=$(git rev-parse --verify --quiet "$PREVIOUS^{commit}"); then
  log "this checkout lacks commit $PREVIOUS, the build the upgrade tests start from"
  log "(a shallow clone or a source archive: clone the repository with its history, or set"
  log "FERROLB_PREVIOUS to a commit it has)"
  exit 1
fi
short=${commit:0:12}
tag="0.1.0-$short"
reference="ghcr.io/ferrolb/ferrolb:$tag"
out="$CACHE/previous/$short"
if [ -f "$out/REFERENCE" ] && [ -f "$out/ferrolb-$tag.tar" ] && [ -f "$out/install.yaml" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ferrolb-previous.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "building ferrolb-controller and ferrolb-speaker of $short for $MUSL (release; cold: minutes)"
mkdir -p "$work/src"
git archive "$commit" | tar -x -C "$work/src"
if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
  rustup target add "$MUSL" >&2
fi
# The dependencies both commits share need not be compiled twice: start from a copy of this
# checkout's release build for the same target (tests/setup/images.sh runs before this) and of
# the build scripts and proc macros it compiled for the host; cargo reuses every crate whose
# version and features match. Only the copy is written to.
here=${CARGO_TARGET_DIR:-$PWD/target}
if [ -d "$here/$MUSL/release/deps" ] && [ -d "$here/release/deps" ]; then
  log "starting from a copy of $here/{release,$MUSL/release} (the dependencies both builds share)"
  mkdir -p "$work/target/$MUSL" "$work/target/release"
  cp -a --reflink=auto "$here/$MUSL/release" "$work/target/$MUSL/"
  for d in build deps .fingerprint; do cp -a --reflink=auto "$here/release/$d" "$work/target/release/"; done
  rm -f "$work/target/$MUSL/release/ferrolb-controller" "$work/target/$MUSL/release/ferrolb-speaker"
fi
(cd "$work/src" && CARGO_TARGET_DIR="$work/target" cargo build --release --locked \
  --target "$MUSL" -p ferrolb-controller -p ferrolb-speaker \
  --bin ferrolb-controller --bin ferrolb-speaker >&2)
bin="$work/target/$MUSL/release"

log "writing the image archive $reference"
mkdir -p "$out.tmp"
cargo run -q --locked -p ferrolb-tests --bin ferrolb-image -- \
  --out-dir "$out.tmp" --reference "$reference" \
  --controller "$bin/ferrolb-controller" --speaker "$bin/ferrolb-speaker" \
  --ca-bundle /etc/ssl/certs/ca-certificates.crt >&2
# That commit's install bundle, pointed at its image (the one line naming ferrolb's image).
sed "s#image: ghcr.io/ferrolb/ferrolb:[^[:space:]]*#image: $reference#" \
  "$work/src/manifests/install.yaml" > "$out.tmp/install.yaml"
grep -q "image: $reference" "$out.tmp/install.yaml" || {
  log "$short's install.yaml names no ghcr.io/ferrolb/ferrolb image to point at $reference"
  exit 1
}
echo "$reference" > "$out.tmp/REFERENCE"
rm -rf "$out"
mv "$out.tmp" "$out"
log "done in $(( $(date +%s) - start ))s: $out"
echo "$out"
