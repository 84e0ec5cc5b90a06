#!/usr/bin/env bash
# Layer-2 failover benchmark (needs root): three node namespaces running ferrolb-speaker, a
# client sending a request every 10 ms to a LoadBalancer IP; the owner dies, loses its link, or
# is stopped gracefully, TRIALS times each. Then the same on a fresh cluster running MetalLB's own
# speaker (built by tests/setup/metallb.sh; skipped with a note if that fails). Rewrites the
# "Layer-2 failover" section of docs/benchmarks.md (between the failover markers) with the
# medians and p99s of this run, and docs/plots/failover.svg with every trial's gap.
# Usage: tests/bench/failover.sh         (TRIALS=20; override with FERROLB_BENCH_TRIALS)
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${FERROLB_BENCH_TRIALS:-20}
OUT=docs/benchmarks.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

bash tests/setup/packages.sh
FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1); export FERROLB_K8S_BIN
metallb=()
if mapfile -t mb < <(bash tests/setup/metallb.sh) && [ "${#mb[@]}" -ge 2 ] && [ -x "${mb[0]}/speaker" ]; then
  metallb=(--metallb "${mb[0]}" --metallb-crds "${mb[1]}")
  MB_NOTE=""
else
  echo "tests/setup/metallb.sh failed: measuring ferrolb only" >&2
  MB_NOTE="MetalLB's speaker could not be built on this run (tests/setup/metallb.sh failed), so only ferrolb was measured; for reference, MetalLB's memberlist defaults declare a dead node after about 4–6 s (REFERENCE.md §4.2)."
fi
export MB_NOTE
cargo build -q --release -p ferrolb-speaker -p ferrolb-tests --bin ferrolb-speaker --bin bench-failover
mkdir -p docs/plots
./target/release/bench-failover --trials "$TRIALS" "${metallb[@]}" --plot docs/plots/failover.svg > "$work/failover.md"

python3 - "$OUT" "$work/failover.md" "$TRIALS" <<'PY'
import datetime, os, platform, re, sys
out, body, trials = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
note = os.environ.get("MB_NOTE", "")
note = note + "\n" if note else ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = f"""<!-- failover:begin -->
## Layer-2 failover (`tests/bench/failover.sh`, {trials} trials per event)

Measured on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()},
real kernel in network namespaces, release build. Goal (issue #4): p99 ≤ 1 s after a hard node
death, no gap for a graceful stop.

![Every trial's gap per event, ferrolb beside MetalLB](plots/failover.svg)

Each dot is a trial; the bar marks the median (for an even count the mean of the two middle
trials, where the tables' p50 is the lower of them).

{body}{note}<!-- failover:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Benchmarks\n"
if "<!-- failover:begin -->" in doc:
    doc = re.sub(r"<!-- failover:begin -->.*?<!-- failover:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the failover section of $OUT" >&2
