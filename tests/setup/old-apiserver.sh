#!/usr/bin/env bash
# Builds the older kube-apiservers of the compatibility tests (tests/tests/controller/compat.rs),
# which run with the harness's etcd: 1.28 (below ferrolb's minimum: its CRDs do not install and Service
# status has no ipMode) and 1.31 (the minimum, whose LoadBalancerIPMode gate can still be turned
# off). Cached like the harness's binaries (tests/setup/control-plane.sh); prints one line per
# release, "<version> <directory>".
set -euo pipefail
for version in 1.28.15 1.31.14; do
  dir=$(FERROLB_K8S_VERSION=$version FERROLB_K8S_BINS=kube-apiserver FERROLB_WITH_ETCD=0 \
    bash "$(dirname "$0")/control-plane.sh" | tail -n 1)
  echo "$version $dir"
done
