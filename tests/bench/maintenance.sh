#!/usr/bin/env bash
# Planned maintenance, ferrolb and MetalLB side by side, on the lab's real cluster (needs root):
# runs the two tests of tests/tests/maintenance.rs TRIALS times each, interleaved, each on a
# fresh lab (three real nodes, BIRD with ECMP, an echo pod per node): a client on the LAN and
# one behind the router send a UDP request every 10 ms through an L2 IP and a BGP IP while the
# node they enter is drained, the speaker DaemonSet is restarted, and the node is shut down
# (SIGTERM to its speaker, then its processes and link). Collects the tests' `maintenance:`
# lines and rewrites the "Planned maintenance" section of docs/benchmarks.md (between the
# maintenance markers).
# Usage: tests/bench/maintenance.sh   (TRIALS=10; override with FERROLB_BENCH_TRIALS; set
#        FERROLB_K8S_BIN / FERROLB_IMAGES to reuse built binaries and images)
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${FERROLB_BENCH_TRIALS:-10}
OUT=docs/benchmarks.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg); export LOAD_BEFORE

bash tests/setup/packages.sh
[ -n "${FERROLB_K8S_BIN:-}" ] || FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1)
[ -n "${FERROLB_IMAGES:-}" ] || FERROLB_IMAGES=$(bash tests/setup/images.sh | tail -n 1)
bash tests/setup/metallb.sh > /dev/null
export FERROLB_K8S_BIN FERROLB_IMAGES
. tests/bench/test-binary.sh
copy_test_binary maintenance "$work/maintenance"
for i in $(seq 1 "$TRIALS"); do
  for test in ferrolb_loses_no_request_in_drains_rolling_updates_and_shutdowns metallb_goes_through_the_same_events; do
    echo "== trial $i/$TRIALS: $test" >&2
    if ! (cd tests && "$work/maintenance" "$test" --exact --nocapture) > "$work/trial.log" 2>&1; then
      echo "trial $i failed; the end of its output:" >&2
      tail -n 60 "$work/trial.log" >&2
      exit 1
    fi
    grep '^maintenance: [a-z]* [a-z]*-[a-z0-9]* ' "$work/trial.log" | tee -a "$work/lines" >&2
  done
done

python3 - "$OUT" "$work/lines" "$TRIALS" "$(basename "$FERROLB_K8S_BIN")" <<'PY'
import datetime, os, platform, re, statistics, sys
out, lines, trials, k8s = sys.argv[1], open(sys.argv[2]).read().splitlines(), sys.argv[3], sys.argv[4]
runs = {}
for line in lines:
    lb, event, *fields = line.removeprefix("maintenance: ").split()
    runs.setdefault((lb, event), []).append(dict(f.split("=", 1) for f in fields))

def cell(lb, event, key, unit=""):
    values = sorted(float(r[key]) for r in runs.get((lb, event), []))
    if not values:
        return "–"
    p90 = values[min(len(values) - 1, int(0.9 * len(values) + 0.5) - 1)]
    return " / ".join(f"{v:.0f}{unit}" for v in (statistics.median(values), p90, values[-1]))

events = [
    ("drain-l2", "`kubectl drain` of the node the L2 requests enter"),
    ("drain-bgp", "`kubectl drain` of the node the BGP requests enter"),
    ("rollout-l2", "speaker DaemonSet rolling update (L2 requests)"),
    ("rollout-bgp", "speaker DaemonSet rolling update (BGP requests)"),
    ("shutdown-l2", "shutdown of the node the L2 requests enter"),
    ("shutdown-bgp", "shutdown of the node the BGP requests enter"),
]
table = "\n".join(
    f"| {title} | {cell('ferrolb', e, 'lost')} | {cell('ferrolb', e, 'outage_ms', ' ms')} "
    f"| {cell('metallb', e, 'lost')} | {cell('metallb', e, 'outage_ms', ' ms')} "
    f"| {len(runs.get(('ferrolb', e), []))} / {len(runs.get(('metallb', e), []))} |"
    for e, title in events)
sent = sum(int(r["sent"]) for rs in runs.values() for r in rs)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = f"""<!-- maintenance:begin -->
## Planned maintenance, ferrolb and MetalLB side by side (`tests/bench/maintenance.sh`, {trials} trials)

Measured on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()},
load average {os.environ.get('LOAD_BEFORE', '?')} before the run, Kubernetes from `{k8s}`. Each
trial is one run of each test in `tests/tests/maintenance.rs`, interleaved, each on a fresh lab:
three real nodes (kubelet, containerd, kube-proxy nftables), BIRD peering with every node (ECMP
into its kernel), an echo pod per node. ferrolb is installed from `manifests/install.yaml` (BFD
with BIRD); MetalLB v0.16.1 from its own `metallb-native.yaml` and images built from its Go
module (native BGP, no BFD; the same pools, AS numbers and 9 s hold time). A client on the LAN
sends a UDP request every 10 ms through an L2 IP, and one behind the router through a BGP IP;
both Services are `externalTrafficPolicy: Local`, so the node whose pod answers is the node the
requests entered, and that node is the one each event takes away. Probing runs from 1 s before
the event's command to 12 s after it returned (past MetalLB's hold time). A shutdown is what a
kubelet's graceful node shutdown does: SIGTERM to the node's speaker (through containerd); once
it has exited, or its grace period is over, the node's processes stop and its link goes down.
Nodes drained are uncordoned before the next event. {sent} requests in all.

Requests lost and the longest outage, as median / p90 / max over the trials:

| event | ferrolb lost | ferrolb outage | MetalLB lost | MetalLB outage | trials (ferrolb / MetalLB) |
|---|---|---|---|---|---|
{table}

The probes are single UDP flows: a request is lost only if nothing answers it. Established TCP
connections are not measured here; a flow the router moves to another node's path reaches
another pod, which would reset a TCP connection that UDP does not have.
<!-- maintenance:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Benchmarks\n"
if "<!-- maintenance:begin -->" in doc:
    doc = re.sub(r"<!-- maintenance:begin -->.*?<!-- maintenance:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the maintenance section of $OUT" >&2
