#!/usr/bin/env bash
# Layer-2 events on a real cluster (needs root): runs tests/tests/cluster_l2.rs TRIALS times,
# each on a fresh three-node cluster (etcd, kube-apiserver, controller manager, scheduler;
# containerd, runc, kubelet and kube-proxy per node namespace) with ferrolb installed from
# manifests/install.yaml, the echo Deployment behind an externalTrafficPolicy Local IP and a
# client sending a UDP request every 10 ms through it, while
#   - the speaker DaemonSet and controller Deployment roll from an earlier build's image
#     (tests/setup/previous-image.sh; installed from its install.yaml) to this checkout's;
#   - the announcing node is cordoned, then uncordoned;
#   - the announcing node is drained (kubectl drain);
#   - the announcing node dies (its pid namespace and kube-proxy killed at once).
# Collects the test's `cluster-l2:` lines and rewrites the "Layer-2 events on a real cluster"
# section of docs/benchmarks.md (between the cluster markers) with medians, p90s and maxima.
# Usage: tests/bench/cluster.sh     (TRIALS=10; override with FERROLB_BENCH_TRIALS; set
#        FERROLB_K8S_BIN / FERROLB_IMAGES to reuse built binaries and images, and
#        FERROLB_BENCH_KEEP_LOGS=<file> to keep every trial's output, with what the speakers
#        logged about the IP whenever requests were lost)
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${FERROLB_BENCH_TRIALS:-10}
OUT=docs/benchmarks.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg); export LOAD_BEFORE

bash tests/setup/packages.sh
[ -n "${FERROLB_K8S_BIN:-}" ] || FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1)
[ -n "${FERROLB_IMAGES:-}" ] || FERROLB_IMAGES=$(bash tests/setup/images.sh | tail -n 1)
[ -n "${FERROLB_PREVIOUS_DIR:-}" ] || FERROLB_PREVIOUS_DIR=$(bash tests/setup/previous-image.sh | tail -n 1)
export FERROLB_K8S_BIN FERROLB_IMAGES FERROLB_PREVIOUS_DIR
. tests/bench/test-binary.sh
copy_test_binary cluster_l2 "$work/cluster_l2"
for i in $(seq 1 "$TRIALS"); do
  echo "== trial $i/$TRIALS" >&2
  if ! (cd tests && "$work/cluster_l2" --nocapture) > "$work/trial.log" 2>&1; then
    echo "trial $i failed; the end of its output:" >&2
    tail -n 60 "$work/trial.log" >&2
    exit 1
  fi
  grep '^cluster-l2:' "$work/trial.log" | tee -a "$work/lines" >&2
  [ -z "${FERROLB_BENCH_KEEP_LOGS:-}" ] || cat "$work/trial.log" >> "$FERROLB_BENCH_KEEP_LOGS"
done

python3 - "$OUT" "$work/lines" "$TRIALS" "$(cat "$FERROLB_PREVIOUS_DIR/REFERENCE")" <<'PY'
import datetime, os, platform, re, statistics, sys
out, lines, trials = sys.argv[1], open(sys.argv[2]).read().splitlines(), sys.argv[3]
events = {}
for line in lines:
    event, *fields = line.removeprefix("cluster-l2: ").split()
    events.setdefault(event, []).append(dict(f.split("=", 1) for f in fields))

def column(event, key):
    return [float(r[key]) for r in events.get(event, []) if r.get(key, "none") != "none"]

def stats(values, fmt):
    if not values:
        return "–", "–", "–"
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values) + 0.5) - 1)]
    return fmt(statistics.median(values)), fmt(p90), fmt(values[-1])

count = lambda v: f"{v:.0f}"
millis = lambda v: f"{v:.0f} ms"
seconds = lambda v: f"{v:.1f} s"
rows = [
    ("rolling upgrade from the earlier build: requests lost", column("upgrade", "lost"), count),
    ("rolling upgrade from the earlier build: longest outage", column("upgrade", "outage_ms"), millis),
    ("rolling upgrade: rollout of 3 speakers + 2 controllers", column("upgrade", "rollout_s"), seconds),
    ("cordon of the announcer, then uncordon: requests lost", column("cordon", "lost"), count),
    ("drain of the announcer: requests lost", column("drain", "lost"), count),
    ("drain of the announcer: longest outage", column("drain", "outage_ms"), millis),
    ("announcer dies: last answer from it → first from the new one", column("node-death", "gap_ms"), millis),
    ("announcer dies: requests lost", column("node-death", "lost"), count),
    ("kubectl delete -f install.yaml: until everything is gone", column("uninstall", "done_s"), seconds),
]
table = "\n".join(f"| {name} | {' | '.join(stats(v, fmt))} | {len(v)} |" for name, v, fmt in rows)
sent = column("upgrade", "sent") + column("cordon", "sent") + column("drain", "sent") + column("node-death", "sent")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = f"""<!-- cluster:begin -->
## Layer-2 events on a real cluster (`tests/bench/cluster.sh`, {trials} trials)

Measured on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()},
load average {os.environ.get('LOAD_BEFORE', '?')} before the run. Each trial is `cargo test -p ferrolb-tests
--test cluster_l2` on a fresh cluster of three real nodes (kubelet 1.34, containerd, runc,
kube-proxy nftables, each in a network namespace) with an earlier build of ferrolb
(`{sys.argv[4]}`, from `tests/setup/previous-image.sh`) installed from that commit's
`install.yaml`, then upgraded to this checkout's release image by applying
`manifests/install.yaml`; a client on the LAN sends a UDP request every 10 ms through an
`externalTrafficPolicy: Local` IP (one echo pod per node, so the answering node is the
announcer) — {int(sum(sent))} requests in all. A request is lost when no answer came back.

| event | median | p90 | max | trials |
|---|---|---|---|---|
{table}

The echo pods keep serving for 2 s after they are asked to stop (a preStop sleep), so what a
drain loses is ferrolb's. The IP leaves a drained node as soon as its pod starts terminating
(a serving but terminating endpoint counts only while no ready one exists elsewhere, as in
kube-proxy), while that pod still answers; and an owner that sees its IP claimed waits 500 ms
before it defends it, so a successor that learned of the move first is not silenced (before
both fixes, on 2026-12-06: 22 requests lost at the median, up to 156, with outages of up to
1.5 s). A node's new endpoint draws traffic only once it has settled (1.5 s, for kube-proxy to
program it; before that, 2 of 32 looped rolling upgrades lost a few hundred ms); the test
prints the speakers' log lines about the IP when requests are lost (keep them with
`FERROLB_BENCH_KEEP_LOGS`), but the replaced speakers' logs go with their pods.
<!-- cluster:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Benchmarks\n"
if "<!-- cluster:begin -->" in doc:
    doc = re.sub(r"<!-- cluster:begin -->.*?<!-- cluster:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the cluster section of $OUT" >&2
