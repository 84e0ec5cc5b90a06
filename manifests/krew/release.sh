#!/usr/bin/env bash
# Writes kubectl-ferrolb's krew release: the archive krew downloads and the manifest for krew's
# index, from manifests/krew/ferrolb.yaml.
#
#   manifests/krew/release.sh OUT_DIR [BINARY]
#
# BINARY defaults to the static musl release build (built here if missing), the one to publish;
# tests pass the debug build. The version is the workspace's; FERROLB_RELEASE_URL is where the
# archive will be published (default: the GitHub release of that version). Prints the manifest's
# path as its last line.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: $0 OUT_DIR [BINARY]}
binary=${2:-}
version=v$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
[ "$version" != v ] || { echo "release.sh: no version in $root/Cargo.toml" >&2; exit 1; }
archive=kubectl-ferrolb_${version}_linux_amd64.tar.gz
url=${FERROLB_RELEASE_URL:-https://github.com/ferrolb/ferrolb/releases/download/$version}/$archive

if [ -z "$binary" ]; then
  musl=x86_64-unknown-linux-musl
  (cd "$root" && cargo build --release --locked --target "$musl" -p ferrolb-cli --bin kubectl-ferrolb >&2)
  binary=${CARGO_TARGET_DIR:-$root/target}/$musl/release/kubectl-ferrolb
fi
[ -x "$binary" ] || { echo "release.sh: $binary is not an executable" >&2; exit 1; }

mkdir -p "$out"
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
install -m 0755 "$binary" "$stage/kubectl-ferrolb"
install -m 0644 "$root/LICENSE" "$stage/LICENSE"
# The same bytes for the same binary: fixed order, owner and time.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" -cf - \
  kubectl-ferrolb LICENSE | gzip -n > "$out/$archive"
sum=$(sha256sum "$out/$archive" | cut -d' ' -f1)
sed -e "s|@VERSION@|$version|" -e "s|@URI_LINUX_AMD64@|$url|" -e "s|@SHA256_LINUX_AMD64@|$sum|" \
  -e '/^# /d' "$root/manifests/krew/ferrolb.yaml" > "$out/ferrolb.yaml"
echo "release.sh: $out/$archive ($sum) and $out/ferrolb.yaml" >&2
echo "$out/ferrolb.yaml"
