# Sourced by the benchmark loops: `copy_test_binary NAME DEST` builds the integration test NAME
# of ferrolb-tests once and copies its binary to DEST. The trials run that copy, so sources
# edited while a benchmark runs change nothing in it.
copy_test_binary() {
  local built
  built=$(cargo test -q --locked --no-run -p ferrolb-tests --test "$1" --message-format=json 2>/dev/null \
    | python3 -c 'import json, sys; print(next(m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["kind"] == ["test"] and m["target"]["name"] == sys.argv[1]))' "$1")
  cp "$built" "$2"
}
