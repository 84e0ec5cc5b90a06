#!/usr/bin/env bash
# BGP announcement latency (needs root): two node namespaces running ferrolb-speaker peered with
# GoBGP; per trial a Service gets an IP in its status, and the time until GoBGP holds the /32
# from both nodes is read from GoBGP's own `monitor adj-in` stream; then the IP is removed and
# the withdrawal is timed the same way. Then the same with MetalLB's speaker (native BGP, built
# by tests/setup/metallb.sh). Rewrites the "BGP announcement latency" section of
# docs/benchmarks.md (between its markers) with this run's p50/p99 and ratios.
# Usage: tests/bench/bgp.sh              (TRIALS=30; override with FERROLB_BENCH_TRIALS)
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${FERROLB_BENCH_TRIALS:-30}
OUT=docs/benchmarks.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

bash tests/setup/packages.sh
FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1); export FERROLB_K8S_BIN
mapfile -t mb < <(bash tests/setup/metallb.sh)
cargo build -q --release -p ferrolb-speaker -p ferrolb-tests --bin ferrolb-speaker --bin bench-bgp-latency
./target/release/bench-bgp-latency --trials "$TRIALS" --metallb "${mb[0]}" --metallb-crds "${mb[1]}" > "$work/bgp.md"

python3 - "$OUT" "$work/bgp.md" <<'PY'
import datetime, os, platform, re, sys
out, body = sys.argv[1], open(sys.argv[2]).read()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = f"""<!-- bgp-latency:begin -->
## BGP announcement latency (`tests/bench/bgp.sh`)

Measured on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()},
real kernel in network namespaces, release build, real kube-apiserver. The clock starts just
before the Service's status gets its IP (what the controller writes) and stops at the GoBGP
stream line that completes the change.

{body}<!-- bgp-latency:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Benchmarks\n"
if "<!-- bgp-latency:begin -->" in doc:
    doc = re.sub(r"<!-- bgp-latency:begin -->.*?<!-- bgp-latency:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the BGP latency section of $OUT" >&2
