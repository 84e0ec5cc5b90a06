#!/usr/bin/env bash
# Installs the Debian packages ferrolb's tests need, if any is missing. Idempotent and quick
# when everything is present. Needs root (CI runs as root).
set -euo pipefail

# python3: control-plane.sh reads `go mod download -json`; iproute2: network-namespace tests;
# gobgpd, bird2, frr: the real BGP routers the BGP speaker is tested against (their daemons are
# started by the tests inside namespaces, never as system services); nftables, conntrack: what
# kube-proxy (nftables mode) needs inside the lab's node namespaces; containerd, runc,
# containernetworking-plugins: the container runtime and CNI (bridge, host-local) of the real
# cluster's nodes (tests/src/cluster), started inside node namespaces, never as host services;
# musl-tools, gcc: the static binaries of the images (tests/setup/images.sh); pmacct: its
# pmbmpd is the real BMP collector the speaker's BMP export is tested against (started by the
# test in a namespace).
PACKAGES=(python3 iproute2 ca-certificates gobgpd bird2 frr nftables conntrack
  containerd runc containernetworking-plugins musl-tools gcc libc6-dev pmacct)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[packages] installing: ${missing[*]}" >&2
  apt-get update -qq
  # No service may start on the host: policy-rc.d refuses every start while we install.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
