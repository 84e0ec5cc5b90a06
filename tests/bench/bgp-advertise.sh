#!/usr/bin/env bash
# Advertising 10,000 prefixes over BGP (needs root): the codec's cost to pack and decode 10,000
# host routes (criterion, bgp/benches/updates.rs), then bench-bgp-advertise — how long after
# Established a receiving GoBGP holds all 10,000 /32s sent by ferrolb's session, and by a
# second gobgpd holding the same routes, alternating, TRIALS each. Rewrites the "Advertising
# 10,000 prefixes" section of docs/benchmarks.md (between its markers) with this run's medians.
# Usage: tests/bench/bgp-advertise.sh    (TRIALS=10, PREFIXES=10000; override with
#        FERROLB_BENCH_TRIALS, FERROLB_BENCH_PREFIXES)
set -euo pipefail
cd "$(dirname "$0")/../.."
TRIALS=${FERROLB_BENCH_TRIALS:-10}
PREFIXES=${FERROLB_BENCH_PREFIXES:-10000}
OUT=docs/benchmarks.md
TARGET=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

bash tests/setup/packages.sh
echo "== codec: 10,000 host routes" >&2
cargo bench -q --locked -p ferrolb-bgp --bench updates >&2
echo "== $PREFIXES prefixes to GoBGP, $TRIALS trials per sender" >&2
cargo build -q --locked --release -p ferrolb-tests --bin bench-bgp-advertise
"$TARGET/release/bench-bgp-advertise" --prefixes "$PREFIXES" --trials "$TRIALS" > "$work/advertise.md"

python3 - "$OUT" "$work/advertise.md" "$TARGET" "$PREFIXES" <<'PY'
import datetime, json, os, platform, re, sys
out, body, target, n = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], int(sys.argv[4])
def med(case, family):
    path = f"{target}/criterion/10000 host routes/{case}/{family}/new/estimates.json"
    return json.load(open(path))["median"]["point_estimate"]
rows = []
for family, label in [("ipv4", "IPv4 /32"), ("ipv6", "IPv6 /128")]:
    enc, dec = med("build+encode", family), med("decode", family)
    rows.append(f"| {label} | {enc/1e6:.2f} ms | {dec/1e6:.2f} ms | {enc/10000:.0f} ns | {dec/10000:.0f} ns |")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = f"""<!-- bgp-advertise:begin -->
## Advertising 10,000 prefixes over BGP (`tests/bench/bgp-advertise.sh`)

Measured on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()},
real kernel in network namespaces, release build. The machine is shared and noisy: read the
medians and the ratio, which come from one run.

### The codec (criterion, `cargo bench -p ferrolb-bgp --bench updates`)

What a session does when it comes up with a full route set: the `UpdateBuilder` packs 10,000 host
routes sharing one set of attributes into UPDATEs of at most 4096 octets, each is encoded, and
the bytes are decoded back.

| routes | median build + encode | median decode | per route, encode | per route, decode |
|---|---|---|---|---|
""" + "\n".join(rows) + f"""

### {n:,} IPv4 /32s to GoBGP after Established (`bench-bgp-advertise`)

A receiving gobgpd (fresh for every trial) peers with one sender at a time: ferrolb's session
(`ferrolb_speaker::bgp::Session`, on a current-thread tokio runtime), or a second gobgpd that
already holds the same routes in its RIB (loaded from an MRT dump). The clock starts when the
receiver reports the session Established (its `gobgp monitor neighbor` stream) and stops at the
first back-to-back poll of `gobgp neighbor <ip> -j` showing all {n:,} prefixes accepted.

{body}<!-- bgp-advertise:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Benchmarks\n"
if "<!-- bgp-advertise:begin -->" in doc:
    doc = re.sub(r"<!-- bgp-advertise:begin -->.*?<!-- bgp-advertise:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the BGP advertisement section of $OUT" >&2
