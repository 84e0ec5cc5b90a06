#!/usr/bin/env bash
# A Service's IP into the router's FIB, unnumbered beside numbered, on the lab's real cluster
# (needs root): runs the lab test `a_loadbalancer_ip_is_reached_over_unnumbered_links_to_every_node`
# (tests/tests/lab_unnumbered.rs) TRIALS times, each on a fresh lab (two real nodes, FRR on the LAN
# peering with each node's address, and a spine FRR joined to each node by a link with IPv6
# link-locals only, one BGPPeer `interface: unn0`). In each trial five Services are created one
# after another; for each, the time from its creation until the LAN router's kernel routes its IP
# (numbered) and until the spine's does, `via inet6` (unnumbered). Collects the test's
# `lab-unnumbered:` lines and rewrites the "Unnumbered BGP" section of docs/benchmarks.md
# (between the lab-unnumbered markers) with medians, p90s and maxima.
# Usage: tests/bench/unnumbered.sh   (TRIALS=4; override with FERROLB_BENCH_TRIALS; set
#        FERROLB_K8S_BIN / FERROLB_IMAGES to reuse built binaries and images)
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${FERROLB_BENCH_TRIALS:-4}
TEST=a_loadbalancer_ip_is_reached_over_unnumbered_links_to_every_node
OUT=docs/benchmarks.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg); export LOAD_BEFORE

bash tests/setup/packages.sh
[ -n "${FERROLB_K8S_BIN:-}" ] || FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1)
[ -n "${FERROLB_IMAGES:-}" ] || FERROLB_IMAGES=$(bash tests/setup/images.sh | tail -n 1)
export FERROLB_K8S_BIN FERROLB_IMAGES
. tests/bench/test-binary.sh
copy_test_binary lab_unnumbered "$work/lab_unnumbered"
for i in $(seq 1 "$TRIALS"); do
  echo "== trial $i/$TRIALS" >&2
  if ! (cd tests && "$work/lab_unnumbered" "$TEST" --exact --nocapture) > "$work/trial.log" 2>&1; then
    echo "trial $i failed; the end of its output:" >&2
    tail -n 60 "$work/trial.log" >&2
    exit 1
  fi
  grep '^lab-unnumbered:' "$work/trial.log" | tee -a "$work/lines" >&2
done

python3 - "$OUT" "$work/lines" "$TRIALS" "$(basename "$FERROLB_K8S_BIN")" <<'PY'
import datetime, os, platform, re, statistics, sys
out, lines, trials, k8s = sys.argv[1], open(sys.argv[2]).read().splitlines(), sys.argv[3], sys.argv[4]
rows = [dict(f.split("=", 1) for f in l.removeprefix("lab-unnumbered: ").split()) for l in lines]

def stats(key):
    values = sorted(float(r[key]) for r in rows)
    p90 = values[min(len(values) - 1, int(0.9 * len(values) + 0.5) - 1)]
    return [statistics.median(values), p90, values[-1]]

numbered, unnumbered = stats("numbered_ms"), stats("unnumbered_ms")
ratio = unnumbered[0] / numbered[0]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
fmt = lambda v: " | ".join(f"{x:.0f} ms" for x in v)
section = f"""<!-- lab-unnumbered:begin -->
## Unnumbered BGP: a Service's IP into the router's FIB (`tests/bench/unnumbered.sh`, {trials} trials)

Measured on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()},
load average {os.environ.get('LOAD_BEFORE', '?')} before the run, Kubernetes from `{k8s}`. Each
trial is the lab test `{'a_loadbalancer_ip_is_reached_over_unnumbered_links_to_every_node'}` on a
fresh lab: two real nodes (kubelet, containerd, kube-proxy), ferrolb's release image from
`manifests/install.yaml`, FRR on the LAN peering with each node's IPv4 address (numbered), and a
spine FRR joined to each node by a link that has only IPv6 link-local addresses, peered by one
BGPPeer `interface: unn0` (unnumbered, IPv4 routes with IPv6 next hops, RFC 8950). Five
Services are created one after another per trial ({len(rows)} in all); each time is from the
Service's creation (so it includes the controller's allocation) until the router's kernel holds
a route for its IP (`ip route show`, polled every 20 ms): the same speakers, the same
advertisement, both routers FRR 8.4.

| | median | p90 | max | Services |
|---|---|---|---|---|
| numbered (LAN FRR) | {fmt(numbered)} | {len(rows)} |
| unnumbered (spine FRR, `via inet6`) | {fmt(unnumbered)} | {len(rows)} |

Unnumbered over numbered, medians: {ratio:.2f}×.
<!-- lab-unnumbered:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Benchmarks\n"
if "<!-- lab-unnumbered:begin -->" in doc:
    doc = re.sub(r"<!-- lab-unnumbered:begin -->.*?<!-- lab-unnumbered:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the lab-unnumbered section of $OUT" >&2
