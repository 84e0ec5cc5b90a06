#!/usr/bin/env bash
# The one setup entry point: everything the lab (`./lab`) and the tests (`tests/run.sh`) need
# before they start, so no step exists that only one of them does.
#
#   bash tests/setup/prepare.sh [lab|tests]     (default: lab)
#
# `lab` runs the stages marked `lab`; `tests` runs those and the ones marked `tests` too. Each
# stage prints one line when it starts, a heartbeat every 30 s while it runs (cold Go and Rust
# builds take minutes) and one line with its time when it ends; its own output goes to a log
# whose tail is shown if it fails. Every stage is idempotent and takes seconds when warm.
#
# stdout carries only `export NAME=value` lines (the directories the stages found), for
#   prepared=$(bash tests/setup/prepare.sh tests); eval "$prepared"
set -euo pipefail
cd "$(dirname "$0")/../.."

FOR=${1:-lab}
case "$FOR" in
  lab | tests) ;;
  *) echo "usage: $0 [lab|tests]" >&2; exit 2 ;;
esac
# The lab and the tests run one Kubernetes release: the newest the Go module proxy serves that
# works on this machine's cgroup v1. (The compatibility tests add older kube-apiservers.)
K8S_VERSION=${FERROLB_K8S_VERSION:-1.37.2}
ETCD_VERSION=${FERROLB_ETCD_VERSION:-3.6.16}
HEARTBEAT=${FERROLB_SETUP_HEARTBEAT:-30}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/ferrolb-setup.XXXXXX")
trap 'rm -rf "$LOGS"' EXIT

say() { printf '[setup] %s\n' "$*" >&2; }

# stage <lab|tests> <VAR|-> <title> <command…>
# Runs the command unless the stage is for `tests` and we prepare the lab. With a VAR, the
# command's last stdout line (a directory) is exported as VAR, also on our stdout.
stage() {
  local for=$1 var=$2 title=$3; shift 3
  if [ "$for" = tests ] && [ "$FOR" = lab ]; then return 0; fi
  local log="$LOGS/stage.log" out="$LOGS/stage.out" start pid next status=0 open=1 seen=0
  : > "$log"; : > "$out"
  printf '[setup] %s … ' "$title" >&2
  start=$SECONDS
  next=$((start + HEARTBEAT))
  "$@" > "$out" 2> "$log" < /dev/null &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
    if [ "$SECONDS" -ge "$next" ] && kill -0 "$pid" 2>/dev/null; then
      next=$((next + HEARTBEAT))
      # The log's last line, if it says something new (a Go build is silent for minutes).
      local size last=""
      size=$(stat -c %s "$log")
      [ "$size" = "$seen" ] || last=$(tail -n 1 "$log" | tr -d '\r' | cut -c1-100)
      seen=$size
      [ "$open" = 1 ] && { echo >&2; open=0; }
      say "  … still at it after $((SECONDS - start)) s${last:+ (last: $last)}"
    fi
  done
  wait "$pid" || status=$?
  [ "$open" = 1 ] || printf '[setup]   ' >&2
  if [ "$status" -ne 0 ]; then
    printf 'failed after %s s (exit %s); the end of its output:\n' "$((SECONDS - start))" "$status" >&2
    tail -n 40 "$log" >&2
    exit "$status"
  fi
  printf 'done in %s s\n' "$((SECONDS - start))" >&2
  if [ "$var" != - ]; then
    local value
    value=$(grep -v '^[[:space:]]*$' "$out" | tail -n 1)
    [ -n "$value" ] || { say "$title printed no directory"; exit 1; }
    export "$var=$value"
    printf 'export %s=%q\n' "$var" "$value"
  fi
}

# One line per stage; add a stage here and both README commands run it.
stage lab   -                "Debian packages (nftables, conntrack, bird2, frr, gobgpd, …)" bash tests/setup/packages.sh
stage lab   FERROLB_K8S_BIN  "building Kubernetes v$K8S_VERSION and etcd v$ETCD_VERSION (cold: ~8 min)" env FERROLB_K8S_VERSION="$K8S_VERSION" bash tests/setup/control-plane.sh
stage tests -                "building kube-apiserver v1.28 and v1.31 (for the compatibility tests; cold: ~12 min)" bash tests/setup/old-apiserver.sh
stage lab   -                "building ferrolb's binaries (cargo build --workspace --bins; cold: ~15 min)" cargo build --workspace --bins --locked
stage lab   FERROLB_IMAGES   "building the images (pause, echo, ferrolb from static musl binaries; cold: ~10 min)" bash tests/setup/images.sh
stage tests FERROLB_PREVIOUS_DIR "building an earlier commit's ferrolb image (for the upgrade tests; cold: ~8 min)" bash tests/setup/previous-image.sh
stage tests FERROLB_HELM_BIN "building helm (cold: ~3 min)" bash tests/setup/helm.sh
stage tests FERROLB_KREW_BIN "building krew and its manifest validator (cold: ~1 min)" bash tests/setup/krew.sh
stage tests FERROLB_PROMETHEUS_BIN "building promtool and prometheus (for the alert rules' tests; cold: ~8 min)" bash tests/setup/prometheus.sh
stage tests -                "building MetalLB's speaker and controller from its Go module (side-by-side test; cold: ~5 min)" bash tests/setup/metallb.sh
if [ "${FERROLB_FUZZ_SECONDS:-45}" -gt 0 ]; then
  stage tests CARGO_FUZZ_BIN "installing cargo-fuzz (cold: ~4 min)" bash -c 'dirname "$(bash tests/setup/cargo-fuzz.sh | tail -n 1)"'
fi
