#!/usr/bin/env bash
# Builds the real Kubernetes binaries that ferrolb's tests (and the lab) run: kube-apiserver,
# kube-proxy and kubectl, and for the real cluster (tests/src/cluster) kubelet,
# kube-controller-manager and kube-scheduler, from the Go module k8s.io/kubernetes, and etcd from
# go.etcd.io/etcd/server/v3, each at a pinned version. Idempotent: binaries are cached outside the
# repository under $FERROLB_CACHE (default ~/.cache/ferrolb), keyed by version, so a second run takes
# seconds. Prints the directory that holds the binaries as its last line.
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them with
# relative `replace` lines, so `go install …@v1.34.x` refuses it. We derive the replace list from the
# published go.mod and point every staging module at its published tag v0.34.x.
set -euo pipefail

K8S_VERSION=${FERROLB_K8S_VERSION:-1.37.2}
ETCD_VERSION=${FERROLB_ETCD_VERSION:-3.6.16}
. "$(dirname "$0")/go-env.sh"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"

# FERROLB_K8S_BINS narrows the build (an old kube-apiserver alone, for a compatibility test).
K8S_BINS=${FERROLB_K8S_BINS:-kube-apiserver kube-proxy kubectl kubelet kube-controller-manager kube-scheduler}
# FERROLB_WITH_ETCD=0 builds no etcd (such an apiserver runs with the harness's).
ETCD_BINS=etcd
[ "${FERROLB_WITH_ETCD:-1}" = 1 ] || ETCD_BINS=""

log() { printf '[control-plane] %s\n' "$*" >&2; }

have_all() {
  for b in $K8S_BINS $ETCD_BINS; do [ -x "$BIN/$b" ] || return 1; done
}

if have_all; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "go is required (https://go.dev); none on PATH"; exit 1; }
mkdir -p "$BIN" "$GOMODCACHE" "$GOCACHE"
start=$(date +%s)

# --- Kubernetes -------------------------------------------------------------------------------
missing=""
for b in $K8S_BINS; do [ -x "$BIN/$b" ] || missing="$missing $b"; done
if [ -n "$missing" ]; then
  W="$CACHE/src/k8s-$K8S_VERSION"
  mkdir -p "$W" && cd "$W"
  STG="v0.${K8S_VERSION#1.}"
  MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
  if [ ! -f go.sum ] || ! grep -q "k8s.io/kubernetes v$K8S_VERSION" go.mod 2>/dev/null; then
    rm -f go.mod go.sum
    go mod init local/ferrolb-k8sbuild >/dev/null 2>&1
    log "resolving k8s.io/kubernetes v$K8S_VERSION"
    GOMOD=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    for m in $(awk '/^replace \(/{f=1;next} f&&/^\)/{f=0} f&&$1 ~ /^k8s\.io\//{print $1}' "$GOMOD"); do
      go mod edit -replace="$m=$m@$STG"
    done
    GOFLAGS=-mod=mod go get "k8s.io/kubernetes@v$K8S_VERSION"
  fi
  LDF="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
  LDF="$LDF -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
  LDF="$LDF -X k8s.io/component-base/version.gitTreeState=clean"
  log "building$missing v$K8S_VERSION (cold: many minutes)"
  pkgs=""
  for b in $missing; do pkgs="$pkgs k8s.io/kubernetes/cmd/$b"; done
  # shellcheck disable=SC2086 # one word per package
  GOFLAGS=-mod=mod go build -p 2 -trimpath -ldflags "$LDF" -o "$BIN/" $pkgs
fi

# --- etcd -------------------------------------------------------------------------------------
if [ -n "$ETCD_BINS" ] && [ ! -x "$BIN/etcd" ]; then
  W="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$W" && cd "$W"
  if [ ! -f go.sum ] || ! grep -q "etcd/server/v3 v$ETCD_VERSION" go.mod 2>/dev/null; then
    rm -f go.mod go.sum
    go mod init local/ferrolb-etcdbuild >/dev/null 2>&1
    GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  fi
  log "building etcd v$ETCD_VERSION"
  GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
fi

have_all || { log "build finished but binaries are missing in $BIN"; exit 1; }
log "built in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
