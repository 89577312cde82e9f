#!/usr/bin/env bash
# bench/ann.sh - sink-sqlite's query latency with and without its HNSW
# vector index at 10,000, 100,000 and 1,000,000 stored chunks, the index's
# recall@10 against brute force, its build time, size and load time.
#
#   bench/ann.sh [BUILD]                       # default build/
#   SIZES="10000 100000" bench/ann.sh          # fewer sizes
#   DIM=384 QUERIES=200 EXACT_QUERIES=50 EF=50,100,200 WORK=/tmp/sluice-bench-ann bench/ann.sh
#
# Stores of synthetic clustered vectors (bench/ann_bench.c says how) are
# made once under $WORK and reused; the index is built again each time.
# Brute force reads every vector per query, so it runs EXACT_QUERIES
# queries (fewer at 1,000,000: EXACT_QUERIES_1M); the index runs QUERIES.
# The driver runs niced: the numbers are for a quiet machine only if the
# machine is quiet.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
SIZES=${SIZES:-"10000 100000 1000000"}
DIM=${DIM:-384}
QUERIES=${QUERIES:-200}
EXACT_QUERIES=${EXACT_QUERIES:-50}
EXACT_QUERIES_1M=${EXACT_QUERIES_1M:-20}
EF=${EF:-"50,100,200"}
WORK=${WORK:-/tmp/sluice-bench-ann}
mkdir -p "$WORK"

cmake --build "$build" --target bench-ann >/dev/null
driver=$build/bench/bench-ann
plugin=$build/plugins/sink-sqlite.so
[ -f "$plugin" ] || plugin=$(find "$build" -name sink-sqlite.so | head -1)

out=$WORK/results.txt
: >"$out"
for n in $SIZES; do
    ex=$EXACT_QUERIES
    [ "$n" -ge 1000000 ] && ex=$EXACT_QUERIES_1M
    echo "== $n chunks (dim $DIM, $QUERIES queries, $ex brute force) ==" >&2
    nice -n 10 "$driver" --plugin "$plugin" --dir "$WORK" --n "$n" --dim "$DIM" --queries "$QUERIES" \
        --exact-queries "$ex" --ef "$EF" | tee -a "$out" >&2
done

echo
echo "sink-sqlite query latency, $DIM-dim synthetic vectors, k=10 (machine: $(nproc) cores)"
printf '%-10s %-6s %5s %8s %8s %10s %9s %9s %7s\n' chunks index ef p50_ms p95_ms recall@10 build_s index_MB load_s
awk '$1 == "chunks" {
    for (i = 1; i < NF; i += 2) f[$i] = $(i + 1)
    if (f["mode"] == "exact")
        printf "%-10s %-6s %5s %8s %8s %10s %9s %9s %7s\n", f["chunks"], "none", "-", f["p50_ms"], f["p95_ms"], "1 (exact)", "-", "-", "-"
    else
        printf "%-10s %-6s %5s %8s %8s %10s %9s %9s %7s\n", f["chunks"], "hnsw", f["ef"], f["p50_ms"], f["p95_ms"], f["recall@10"], f["build_s"], f["index_mb"], f["load_s"]
    delete f
}' "$out"
