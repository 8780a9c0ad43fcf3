#!/usr/bin/env bash
# Profiles one full copy: runs `ots-benchmarks full-copy` for one variant, attaches `perf record`
# to the benchmark (replicator) and to the server child once the source table is filled, stops
# when the copy is done, and prints the top symbols of each process.
#
# Usage: benchmarks/profile.sh [VARIANT (wasm|native)] [ROWS] [PERF OPTIONS...]
# e.g.   benchmarks/profile.sh native 300000 --call-graph dwarf,32768 -F 199
set -euo pipefail

variant=${1:-native}
rows=${2:-300000}
shift $(($# > 2 ? 2 : $#))
perf_options=("$@")
[ ${#perf_options[@]} -gt 0 ] || perf_options=(-F 997)

cd "$(dirname "$0")/.."
cargo build --release -p ots-benchmarks
out=$(mktemp -d)
log=$out/bench.log
./target/release/ots-benchmarks full-copy --rows "$rows" --variants "$variant" --count-only >"$log" 2>&1 &
bench=$!
until grep -q '^fill:' "$log"; do
  kill -0 "$bench" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
server=$(sed -n 's/^server: .* (pid \([0-9]*\))$/\1/p' "$log")
perf record "${perf_options[@]}" -p "$bench" -o "$out/replicator.data" >/dev/null 2>&1 &
perf_bench=$!
perf record "${perf_options[@]}" -p "$server" -o "$out/server.data" >/dev/null 2>&1 &
perf_server=$!
# The copy is over when its tunnel stops (the row count that follows is not profiled).
until grep -q 'stopped on request' "$log"; do sleep 0.2; done
kill -INT "$perf_bench" "$perf_server"
wait "$perf_bench" "$perf_server" || true
wait "$bench"
grep -v '^$' "$log" | tail -4
for side in replicator server; do
  echo "== $side: top symbols (perf data in $out/$side.data)"
  perf report -i "$out/$side.data" --no-children --sort dso,sym --stdio 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -25
done
