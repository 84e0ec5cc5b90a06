#!/bin/bash
# One node of ferrolb's test cluster (tests/src/cluster): containerd + runc + kubelet.
#
# Started by the harness as
#   ip netns exec <node netns> unshare --pid --fork --kill-child --mount-proc --uts bash node.sh DIR
# so this script is process 1 of the node's own pid namespace, in a mount namespace of its own:
# when it dies (the harness kills its parent), the kernel kills containerd, kubelet, every shim
# and every container with it. DIR holds env (NODE, CGROUP_ROOT, IMAGES, BIN), the configs, the
# node's private /var/lib, /run and /var/log, and the logs.
set -euo pipefail
DIR=$1
# shellcheck source=/dev/null
. "$DIR/env"
log() { printf '[node %s] %s\n' "$NODE" "$*"; }

# hostNetwork pods see the node's name as their host name.
hostname "$NODE"
mount --make-rprivate /

# `ip netns exec` mounted a sysfs of the node's network namespace over /sys, which hides the
# cgroup mounts: mount the host's hierarchies again (the host is cgroup v1, hybrid).
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p "/sys/fs/cgroup/$c"
  mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified

# The kubelet's cgroup root, in every v1 hierarchy; cpuset needs cpus and mems before use.
for c in cpu cpuacct cpuset memory devices freezer blkio pids systemd; do
  mkdir -p "/sys/fs/cgroup/$c/$CGROUP_ROOT"
done
cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.cpus"
cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.mems"

# Private state: default paths work and nothing reaches the host's.
mkdir -p "$DIR/root/var/lib" "$DIR/root/run" "$DIR/root/var/log"
mount --bind "$DIR/root/var/lib" /var/lib
mount --bind "$DIR/root/run" /run
mount --bind "$DIR/root/var/log" /var/log
mount --bind "$DIR/machine-id" /etc/machine-id
mkdir -p /run/containerd /var/lib/kubelet

log "starting containerd"
containerd --config "$DIR/containerd.toml" >>"$DIR/containerd.log" 2>&1 &
echo $! >"$DIR/containerd.pid"
for _ in $(seq 1 200); do
  ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1 && break
  kill -0 "$(cat "$DIR/containerd.pid")" 2>/dev/null || { log "containerd exited"; exit 1; }
  sleep 0.05
done
for image in $IMAGES; do
  log "importing $image"
  ctr --address /run/containerd/containerd.sock -n k8s.io images import "$image"
done

log "starting kubelet"
"$BIN/kubelet" --config="$DIR/kubelet.yaml" --kubeconfig="$DIR/kubelet.kubeconfig" \
  --hostname-override="$NODE" --node-ip="$NODE_IP" --v=1 >>"$DIR/kubelet.log" 2>&1 &
echo $! >"$DIR/kubelet.pid"
log "running"
# Until containerd or kubelet exits (or the harness kills this namespace).
wait -n
log "containerd or kubelet exited"
exit 1
