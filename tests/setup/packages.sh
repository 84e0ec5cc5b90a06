#!/usr/bin/env bash
# Installs the Debian packages ferrolb's tests need, if any is missing. Idempotent and quick
# when everything is present. Needs root (CI runs as root).
set -euo pipefail

# python3: control-plane.sh reads `go mod download -json`; iproute2: network-namespace tests.
PACKAGES=(python3 iproute2 ca-certificates)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[packages] installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
