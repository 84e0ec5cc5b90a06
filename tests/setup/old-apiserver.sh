#!/usr/bin/env bash
# Builds the oldest kube-apiserver ferrolb is tested against (with its own etcd), for the
# compatibility tests: a release whose Service status has no `ipMode` (it came in 1.29). Cached
# like the harness's binaries (tests/setup/control-plane.sh); prints the directory last.
set -euo pipefail
export FERROLB_K8S_VERSION=${FERROLB_OLD_K8S_VERSION:-1.28.15}
export FERROLB_K8S_BINS=kube-apiserver
exec bash "$(dirname "$0")/control-plane.sh"
