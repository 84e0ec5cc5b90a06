#!/usr/bin/env bash
# A long libFuzzer run of a bgp/fuzz target: decode_message (the BGP message decoder, seeded
# with valid messages built by the codec and captured from GoBGP, BIRD and FRR), bmp_message
# (the BMP codec both ways; its inputs build messages, so it starts from nothing) or
# update_builder (UPDATE packing, classic and RFC 8950 IPv4-over-IPv6 next hops; from nothing). Builds the
# target with nightly, fuzzes for SECONDS, and rewrites the target's "Fuzzing" section of
# docs/benchmarks.md (between its markers) with what the run did: executions, executions per
# second, coverage, corpus, crashes, and the CPU share it got (the machine is shared). A crash
# fails the script and leaves its input under bgp/fuzz/artifacts/<target>/.
# Usage: tests/bench/fuzz.sh [decode_message|bmp_message|update_builder]
#        (SECONDS=600; override with FERROLB_FUZZ_SECONDS)
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${1:-decode_message}
case "$TARGET" in decode_message|bmp_message|update_builder) ;; *) echo "unknown target $TARGET" >&2; exit 2;; esac
SECONDS_=${FERROLB_FUZZ_SECONDS:-600}
OUT=docs/benchmarks.md
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

CARGO_FUZZ=$(bash tests/setup/cargo-fuzz.sh | tail -n 1)
export PATH="$(dirname "$CARGO_FUZZ"):$PATH"
mkdir "$work/seeds" "$work/corpus"
if [ "$TARGET" = decode_message ]; then
  cargo run -q --locked -p ferrolb-bgp --example fuzz_seeds -- "$work/seeds" >&2
fi
(cd bgp/fuzz && cargo +nightly fuzz build --sanitizer none "$TARGET")
status=0
(cd bgp/fuzz && /usr/bin/time -f 'cpu %U %S wall %e' -o "$work/time" \
  cargo +nightly fuzz run --sanitizer none "$TARGET" "$work/corpus" "$work/seeds" \
  -- -max_total_time="$SECONDS_" -print_final_stats=1) 2> "$work/log" || status=$?
tail -n 40 "$work/log" >&2
[ "$status" -eq 0 ] || { echo "the fuzzer failed (exit $status): see above" >&2; exit "$status"; }

python3 - "$OUT" "$work/log" "$work/time" "$SECONDS_" "$work/seeds" "$TARGET" <<'PY'
import datetime, os, platform, re, sys
out, log, timing, seconds = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read(), sys.argv[4]
target = sys.argv[6]
seeds = len(os.listdir(sys.argv[5]))
seeds_built = len([f for f in os.listdir(sys.argv[5]) if not f.startswith("captured-")])
stat = lambda k: re.search(rf"stat::{k}:\s+(\d+)", log).group(1)
inited = re.search(r"INITED cov: (\d+) ft: (\d+)", log)
done = re.search(r"DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", log)
cpu_u, cpu_s, wall = map(float, re.search(r"cpu (\S+) (\S+) wall (\S+)", timing).groups())
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
execs, rate = int(stat("number_of_executed_units")), int(stat("average_exec_per_sec"))
# From an empty corpus libFuzzer's INITED line may carry no coverage yet.
start = f"{inited.group(1)} and {inited.group(2)} at the start" if inited else "nothing at the start"
machine = f"""Run on {datetime.date.today()} — {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, one
libFuzzer worker"""
figures = f"""| | |
|---|---|
| executions | {execs:,} in {wall:.0f} s |
| executions per second (libFuzzer's average) | {rate:,} |
| CPU time the fuzzer got | {cpu_u + cpu_s:.0f} s of {wall:.0f} s ({(cpu_u + cpu_s) / wall:.0%} of one core, on a machine shared with other jobs) |
| coverage: edges (`cov`), features (`ft`) | {start} → {done.group(1)} and {done.group(2)} |
| corpus at the end | {done.group(3)} inputs, {done.group(4)} |
| crashes | none |"""
if target == "decode_message":
    marker = "fuzz"
    section = f"""<!-- fuzz:begin -->
## Fuzzing the BGP decoder (`tests/bench/fuzz.sh`)

{machine}, target `decode_message` (bgp/fuzz: any bytes under 8 session contexts; no
panic, a sendable NOTIFICATION for every error, decode → encode → decode unchanged), built by
cargo-fuzz 0.13.2 on nightly without sanitizer (the codec has no `unsafe`; overflow checks on),
seeded by `bgp/examples/fuzz_seeds.rs` with {seeds} messages ({seeds_built} built with the codec, the rest
captured from GoBGP, BIRD and FRR; among the built ones an OPEN with the extended next hop
capability and UPDATEs carrying IPv4 routes in MP_REACH_NLRI behind 16- and 32-octet IPv6 next
hops, RFC 8950):

```
cargo run -p ferrolb-bgp --example fuzz_seeds -- seeds && cd bgp/fuzz &&
cargo +nightly fuzz run --sanitizer none decode_message corpus ../../seeds -- -max_total_time={seconds}
```

{figures}

Two decoder faults were fixed before this run, each with a regression test: unknown attributes
kept in arrival order but sent back sorted, so a round trip changed the value (found by the
target within a second of its first run), and a NOTIFICATION too long to send for a ROUTE-REFRESH
of 4076 octets or more (found while writing the target's checks, not by a run).
CI (`tests/run.sh`) fuzzes for 45 s on every run.
<!-- fuzz:end -->
"""
elif target == "update_builder":
    marker = "fuzz-builder"
    section = f"""<!-- fuzz-builder:begin -->
## Fuzzing the UPDATE builder (`tests/bench/fuzz.sh update_builder`)

{machine}, target `update_builder` (bgp/fuzz: arbitrary IPv4 and IPv6 prefix sets and path
attributes packed by `UpdateBuilder`, IPv4 either classic with NEXT_HOP or, per RFC 8950, in
MP_REACH_NLRI with an IPv6 next hop of 16 or 32 octets: every UPDATE encodes within 4096 octets
and decodes without error, announcing or withdrawing exactly the prefixes given, in order, with
no NEXT_HOP in the RFC 8950 case; attributes that leave no room give an error, never an oversized
message), built by cargo-fuzz 0.13.2 on nightly without sanitizer, from an empty corpus:

```
cd bgp/fuzz && cargo +nightly fuzz run --sanitizer none update_builder corpus -- -max_total_time={seconds}
```

{figures}
<!-- fuzz-builder:end -->
"""
else:
    marker = "fuzz-bmp"
    section = f"""<!-- fuzz-bmp:begin -->
## Fuzzing the BMP codec (`tests/bench/fuzz.sh bmp_message`)

{machine}, target `bmp_message` (bgp/fuzz: any bytes cut into BMP frames and decoded without
panic, every decoded message encoding to bytes that decode to it again; and the same bytes read
as the fields of a message — peer header, TLVs, statistics, Peer Down reason, BGP PDUs — whose
encoding frames at its own length and decodes back to it), built by cargo-fuzz 0.13.2 on
nightly without sanitizer, from an empty corpus:

```
cd bgp/fuzz && cargo +nightly fuzz run --sanitizer none bmp_message corpus -- -max_total_time={seconds}
```

{figures}
<!-- fuzz-bmp:end -->
"""
doc = open(out).read() if os.path.exists(out) else "# Benchmarks\n"
if f"<!-- {marker}:begin -->" in doc:
    doc = re.sub(rf"<!-- {marker}:begin -->.*?<!-- {marker}:end -->\n", lambda m: section, doc, flags=re.S)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(out, "w").write(doc)
PY
echo "wrote the $TARGET fuzzing section of $OUT" >&2
