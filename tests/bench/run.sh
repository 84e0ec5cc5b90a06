#!/usr/bin/env bash
# Runs ferrolb's benchmarks and rewrites docs/benchmarks.md with what they measured:
#   1. allocator micro-benchmarks (criterion; medians);
#   (the sections of tests/bench/failover.sh, bgp.sh and fuzz.sh are kept as they are)
#   2. N LoadBalancer Services to IPs on the real apiserver: the apiserver floor, ferrolb and
#      MetalLB's controller, interleaved, medians of RUNS runs and ratios to the floor, and
#      docs/plots/controller.svg: time against Services (SWEEP sizes timed once more each);
#   3. tests/bench/bgp-advertise.sh: the codec packing 10,000 host routes, and 10,000 prefixes
#      to GoBGP after Established, from ferrolb's session and from a second gobgpd.
# Usage: tests/bench/run.sh            (N=10000, RUNS=3; override with FERROLB_BENCH_SERVICES/_RUNS)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${FERROLB_BENCH_SERVICES:-10000}
RUNS=${FERROLB_BENCH_RUNS:-3}
# Further sizes timed once per contender for docs/plots/controller.svg.
SWEEP=${FERROLB_BENCH_SWEEP:-1000,3000}
OUT=docs/benchmarks.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1); export FERROLB_K8S_BIN
mapfile -t mb < <(bash tests/setup/metallb.sh)

echo "== allocator micro-benchmarks" >&2
cargo bench -q -p ferrolb-controller --bench allocator >&2
echo "== $N Services, $RUNS runs" >&2
cargo build -q --release -p ferrolb-controller -p ferrolb-tests --bin ferrolb-controller --bin bench-controller
mkdir -p docs/plots
./target/release/bench-controller --services "$N" --runs "$RUNS" \
  --ferrolb target/release/ferrolb-controller --metallb "${mb[0]}/controller" --metallb-crds "${mb[1]}" \
  --sweep "$SWEEP" --plot docs/plots/controller.svg > "$work/e2e.md"

python3 - "$OUT" "$work/e2e.md" "$N" "$RUNS" <<'PY'
import json, os, platform, subprocess, sys, datetime, glob
out, e2e, n, runs = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], sys.argv[4]
k8s = os.path.basename(os.environ.get("FERROLB_K8S_BIN", "")).split("-")[1:2] or ["?"]
k8s = k8s[0]
def med(group, case):
    path = f"target/criterion/allocate+release/{group}/{case}/new/estimates.json"
    return json.load(open(path))["median"]["point_estimate"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
rows = []
for group, label, cases in [("v4 _16", "IPv4 /16", ["10", "10000", "60000"]), ("v6 _64", "IPv6 /64", ["10", "10000", "1000000"])]:
    base = med(group, cases[0])
    for c in cases:
        m = med(group, c)
        rows.append(f"| {label} | {int(c):,} | {m/1000:.2f} µs | {m/base:.2f}× |")
doc = f"""# Benchmarks

Measured by `tests/bench/run.sh` on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}),
{int(mem)//1024//1024} GiB, Linux {platform.release()}. The machine is shared and noisy: read the
medians and the ratios, which come from one run, rather than the absolute times.

## Allocator (criterion, `cargo bench -p ferrolb-controller --bench allocator`)

One allocate + release while the allocator already holds N allocations (half of them released
again, so the pool is fragmented). The pool's size does not enter: pools are never enumerated,
used addresses are merged runs in a B-tree, so the cost grows only with the depth of the B-trees
(and cache misses) as allocations grow by orders of magnitude.

| pool | allocations held | median allocate+release | vs 10 held |
|---|---|---|---|
""" + "\n".join(rows) + f"""

## {int(n):,} LoadBalancer Services to IPs on the real apiserver

`target/release/bench-controller --services {n} --runs {runs}` (through `tests/bench/run.sh`):
each contender gets a fresh etcd + kube-apiserver {k8s} holding {int(n):,} single-stack IPv6
LoadBalancer Services and one pool; the clock starts when the controller process starts (cache
sync included) and stops when a watch has seen an IP on every Service. The apiserver floor is a
minimal client that lists the Services and patches the same statuses with the same concurrency
(16) as ferrolb's status writer: no controller can be faster. MetalLB's controller (v0.16.1) is
built from its Go module by `tests/setup/metallb.sh`. CPU seconds and peak RSS are the controller
process's own (`/proc/<pid>/stat`, `VmHWM`); runs are interleaved so drift hits all alike.

![Time to assign every Service against their number, beside the floor](plots/controller.svg)

{e2e}"""
# The other scripts of tests/bench own sections between <!-- name:begin/end --> markers, and
# notes sit between them: this script owns only what comes before the first; keep the rest.
import re
old = open(out).read() if os.path.exists(out) else ""
first = re.search(r"<!-- [\w-]+:begin -->", old)
if first:
    doc = doc.rstrip("\n") + "\n\n" + old[first.start():]
open(out, "w").write(doc)
PY
echo "wrote $OUT" >&2
bash tests/bench/bgp-advertise.sh
