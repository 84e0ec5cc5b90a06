#!/usr/bin/env bash
# Issue #14's speaker probe (needs root): one real kube-apiserver, one node running the
# release ferrolb-speaker in a network namespace, SERVICES layer-2 Services with a ready
# endpoint each, then 30 more (tests/src/bin/bench-speaker-scale.rs). Rewrites the "Speaker at
# scale" section of docs/scale.md (between the speaker-scale markers) with the run's figures.
# Usage: tests/bench/speaker-scale.sh   (SERVICES=10000; override with FERROLB_SCALE_SERVICES;
#        FERROLB_SCALE_RUNS runs it that many times and reports medians, default 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
SERVICES=${FERROLB_SCALE_SERVICES:-10000}
RUNS=${FERROLB_SCALE_RUNS:-1}
OUT=docs/scale.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg); export LOAD_BEFORE

[ -n "${FERROLB_K8S_BIN:-}" ] || FERROLB_K8S_BIN=$(bash tests/setup/control-plane.sh | tail -n 1)
export FERROLB_K8S_BIN
cargo build -q --release --locked -p ferrolb-speaker -p ferrolb-tests --bin ferrolb-speaker --bin bench-speaker-scale
for i in $(seq 1 "$RUNS"); do
  echo "== run $i/$RUNS" >&2
  ./target/release/bench-speaker-scale --services "$SERVICES" --more 30 | tee -a "$work/lines" >&2
done

python3 - "$OUT" "$work/lines" "$(git rev-parse --short HEAD)" <<'PY'
import datetime, os, platform, re, statistics, sys
out, lines, commit = sys.argv[1], open(sys.argv[2]).read().splitlines(), sys.argv[3]
rows = [dict(f.split("=", 1) for f in l.removeprefix("speaker-scale: ").split()) for l in lines if l.startswith("speaker-scale:")]
med = lambda k: statistics.median(float(r[k]) for r in rows)
r0 = rows[0]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = f"""<!-- speaker-scale:begin -->
## Speaker at scale (`tests/bench/speaker-scale.sh`)

Measured on {datetime.date.today()} at {commit} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, load
average {os.environ.get('LOAD_BEFORE', '?')} before the run; {len(rows)} run(s), medians. One real kube-apiserver
(with etcd), one node running the release `ferrolb-speaker` in a network namespace, no
controller: the bench writes each Service's status IPs and an EndpointSlice with one ready
endpoint on the node itself. The first {r0['services']} Services share the lan pool's 40 IPv4
addresses (one sharing key, distinct ports); the {r0['more']} later ones have an IPv6 address each.

| | ferrolb |
|---|---|
| {r0['services']} Services created (32 requests in flight) | {med('created_s'):.1f} s |
| … all reported by the speaker (one ServiceL2Status each), from the first creation | {med('reported_s'):.1f} s |
| speaker RSS then | {med('rss_mib'):.0f} MiB |
| {r0['more']} more Services created | {med('more_created_s'):.2f} s |
| … all answered for by the speaker (`ferrolb_speaker_layer2_announced_ips`), from their first creation | {med('more_announced_s'):.2f} s |
| … all reported | {med('more_reported_s'):.2f} s |
| speaker RSS at the end | {med('rss_end_mib'):.0f} MiB |

Issue #14's goal: the later Services announced and reported within 1 s, the speaker at most
25 MiB at 10,000 Services. MetalLB is not in this table yet (the issue's own probe measured
MetalLB v0.16.1 at 299 MiB, 84 s to report 10,000 and 8.3 s for 30 more, on a different day).
<!-- speaker-scale:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Scale\n\nHow ferrolb grows with Services and nodes, measured. Each section says how it was run.\n"
if "<!-- speaker-scale:begin -->" in doc:
    doc = re.sub(r"<!-- speaker-scale:begin -->.*?<!-- speaker-scale:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the speaker-scale section of $OUT" >&2
