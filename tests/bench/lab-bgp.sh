#!/usr/bin/env bash
# A rollback and an upgrade through a BGP IP on the lab's real cluster (needs root): runs the lab
# test `a_rollback_and_an_upgrade_lose_no_request_through_a_bgp_ip` (tests/tests/lab_e2e.rs)
# TRIALS times, each on a fresh lab (three real nodes, BIRD, ferrolb from install.yaml), while a
# client behind the router sends a UDP request every 10 ms through an eTP Cluster BGP IP and the
# speakers and controllers roll to an earlier build (tests/setup/previous-image.sh) and back to
# this checkout's, each by applying that build's install.yaml. Collects the test's `lab-bgp:`
# lines and rewrites the "BGP rolling upgrade" section of docs/benchmarks.md (between the
# lab-bgp markers) with medians, p90s and maxima.
# Usage: tests/bench/lab-bgp.sh   (TRIALS=10; override with FERROLB_BENCH_TRIALS; set
#        FERROLB_K8S_BIN / FERROLB_IMAGES to reuse built binaries and images)
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${FERROLB_BENCH_TRIALS:-10}
TEST=a_rollback_and_an_upgrade_lose_no_request_through_a_bgp_ip
OUT=docs/benchmarks.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg); export LOAD_BEFORE

bash tests/setup/packages.sh
[ -n "${FERROLB_K8S_BIN:-}" ] || FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1)
[ -n "${FERROLB_IMAGES:-}" ] || FERROLB_IMAGES=$(bash tests/setup/images.sh | tail -n 1)
[ -n "${FERROLB_PREVIOUS_DIR:-}" ] || FERROLB_PREVIOUS_DIR=$(bash tests/setup/previous-image.sh | tail -n 1)
export FERROLB_K8S_BIN FERROLB_IMAGES FERROLB_PREVIOUS_DIR
. tests/bench/test-binary.sh
copy_test_binary lab_e2e "$work/lab_e2e"
for i in $(seq 1 "$TRIALS"); do
  echo "== trial $i/$TRIALS" >&2
  if ! (cd tests && "$work/lab_e2e" "$TEST" --exact --nocapture) > "$work/trial.log" 2>&1; then
    echo "trial $i failed; the end of its output:" >&2
    tail -n 60 "$work/trial.log" >&2
    exit 1
  fi
  grep '^lab-bgp:' "$work/trial.log" | tee -a "$work/lines" >&2
done

python3 - "$OUT" "$work/lines" "$TRIALS" "$(basename "$FERROLB_K8S_BIN")" "$(cat "$FERROLB_PREVIOUS_DIR/REFERENCE")" <<'PY'
import datetime, os, platform, re, statistics, sys
out, lines, trials, k8s, previous = sys.argv[1], open(sys.argv[2]).read().splitlines(), sys.argv[3], sys.argv[4], sys.argv[5]
parsed = [l.removeprefix("lab-bgp: ").split(" ", 1) for l in lines]
events = ["rollback", "upgrade"]
rows = {e: [dict(f.split("=", 1) for f in rest.split()) for ev, rest in parsed if ev == e] for e in events}

def stats(event, key, fmt):
    values = sorted(float(r[key]) for r in rows[event])
    p90 = values[min(len(values) - 1, int(0.9 * len(values) + 0.5) - 1)]
    return " | ".join(fmt(v) for v in (statistics.median(values), p90, values[-1]))

table = "\n".join(line for e in events for line in [
    f"| {e}: requests lost | {stats(e, 'lost', lambda v: f'{v:.0f}')} | {len(rows[e])} |",
    f"| {e}: longest outage | {stats(e, 'outage_ms', lambda v: f'{v:.0f} ms')} | {len(rows[e])} |",
    f"| {e}: rollout of 3 speakers + 2 controllers | {stats(e, 'rollout_s', lambda v: f'{v:.1f} s')} | {len(rows[e])} |",
])
sent = sum(int(r["sent"]) for e in events for r in rows[e])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = f"""<!-- lab-bgp:begin -->
## BGP rollback and upgrade on the lab (`tests/bench/lab-bgp.sh`, {trials} trials)

Measured on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()},
load average {os.environ.get('LOAD_BEFORE', '?')} before the run, Kubernetes from `{k8s}`. Each
trial is the lab test `a_rollback_and_an_upgrade_lose_no_request_through_a_bgp_ip` on a fresh lab:
three real nodes (kubelet, containerd, kube-proxy nftables), BIRD peering with every node
(ECMP into its kernel), ferrolb's release image from `manifests/install.yaml`, three echo pods
behind an `externalTrafficPolicy: Cluster` IP of the BGP pool. A client behind the router sends
a UDP request every 10 ms through it while the speaker DaemonSet and the controller Deployment
roll back to an earlier build (`{previous}`, from `tests/setup/previous-image.sh`, installed by
applying that commit's `install.yaml`), then forward to this checkout's (`kubectl apply
--server-side -f manifests/install.yaml`) — {sent} requests in all. Each trial checks that the
running image IDs changed and that
every node's path was out of use at some point in each rollout (marked 65535:0 while its speaker
drained, or withdrawn), so the flow had to move.

| | median | p90 | max | trials |
|---|---|---|---|---|
{table}

A stopping speaker re-advertises its paths with GRACEFUL_SHUTDOWN (65535:0) and three AS-path
prepends, waits the BGPPeer's drain time (10 s by default), withdraws, then closes (RFC 8326);
the prepends make BIRD prefer the other nodes' paths over the marked one (shown on its own by
`speaker_bgp::graceful_shutdown`), so the flow has moved before the path is withdrawn.
<!-- lab-bgp:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Benchmarks\n"
if "<!-- lab-bgp:begin -->" in doc:
    doc = re.sub(r"<!-- lab-bgp:begin -->.*?<!-- lab-bgp:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the lab-bgp section of $OUT" >&2
