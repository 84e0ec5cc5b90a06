#!/usr/bin/env bash
# BGP benchmarks (need root), each run against MetalLB's own speaker (native BGP, built by
# tests/setup/metallb.sh) in the same run:
#   1. announcement latency: two node namespaces peered with GoBGP; per trial a Service gets an
#      IP in its status, and the time until GoBGP holds the /32 from both nodes is read from
#      GoBGP's own `monitor adj-in` stream; then the IP is removed and the withdrawal is timed;
#      with the apiserver floor (a watch seeing the status change);
#   2. withdrawal after a hard node failure: node-1's link is cut and BIRD is polled until
#      node-1's path is gone — ferrolb with BFD 300 ms × 3, without BFD at hold time 3 s, and
#      MetalLB (no BFD) at hold time 3 s.
# Rewrites the BGP section of docs/benchmarks.md (between its markers) with this run's figures.
# Usage: tests/bench/bgp.sh   (TRIALS=30 and FAILOVER_TRIALS=10; override with
#                              FERROLB_BENCH_TRIALS / FERROLB_BENCH_FAILOVER_TRIALS)
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${FERROLB_BENCH_TRIALS:-30}
FAILOVER_TRIALS=${FERROLB_BENCH_FAILOVER_TRIALS:-10}
OUT=docs/benchmarks.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

bash tests/setup/packages.sh
FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1); export FERROLB_K8S_BIN
mapfile -t mb < <(bash tests/setup/metallb.sh)
cargo build -q --release -p ferrolb-speaker -p ferrolb-tests --bin ferrolb-speaker \
  --bin bench-bgp-latency --bin bench-bgp-failover
./target/release/bench-bgp-latency --trials "$TRIALS" --metallb "${mb[0]}" --metallb-crds "${mb[1]}" > "$work/bgp.md"
./target/release/bench-bgp-failover --trials "$FAILOVER_TRIALS" --metallb "${mb[0]}" --metallb-crds "${mb[1]}" > "$work/failover.md"

python3 - "$OUT" "$work/bgp.md" "$work/failover.md" <<'PY'
import datetime, os, platform, re, sys
out, body, failover = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = f"""<!-- bgp-latency:begin -->
## BGP (`tests/bench/bgp.sh`)

Measured on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()},
real kernel in network namespaces, release build, real kube-apiserver. The clock starts just
before the Service's status gets its IP (what the controller writes) and stops at the GoBGP
stream line that completes the change.

### Announcement latency (`bench-bgp-latency`)

{body}
### Withdrawal after a hard node failure (`bench-bgp-failover`)

node-1's link is cut: no FIN and no NOTIFICATION reach the router, so only BFD or the hold
timer can tell. Goal (issue #5): withdrawal within BFD's detection time (300 ms × 3).

{failover}<!-- bgp-latency:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Benchmarks\n"
if "<!-- bgp-latency:begin -->" in doc:
    doc = re.sub(r"<!-- bgp-latency:begin -->.*?<!-- bgp-latency:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the BGP latency section of $OUT" >&2
