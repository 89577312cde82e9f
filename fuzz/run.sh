#!/usr/bin/env bash
# fuzz/run.sh BUILD_DIR [SECONDS] - runs every fuzzer of a -DSLUICE_FUZZ=ON
# build for SECONDS each (default 60), two at a time, each on a copy of its
# committed corpus (fuzz/corpus/NAME) so new inputs do not land in the tree.
# Prints a table: runs, coverage (edges: libFuzzer's "cov"), features, the
# corpus size at the end, speed and findings. Exits 1 on any finding, its
# input kept as BUILD_DIR/fuzz-out/NAME/artifacts/crash-* (add it to
# fuzz/regressions/NAME once fixed: replay tests run it in every build).
#
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DSLUICE_FUZZ=ON -DSLUICE_TESTS=OFF
#   cmake --build build-fuzz -j2 --target fuzzers
#   fuzz/run.sh build-fuzz 600        # ten minutes each
set -uo pipefail
build=$(realpath "${1:?usage: fuzz/run.sh BUILD_DIR [SECONDS]}")
secs=${2:-60}
src=$(cd "$(dirname "$0")/.." && pwd)
out=$build/fuzz-out
mkdir -p "$out"
mapfile -t fuzzers < <(find "$build/fuzz" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x -printf '%f\n' | sort)
[[ ${#fuzzers[@]} -gt 0 ]] || {
    echo "no fuzzers in $build/fuzz (configure with -DSLUICE_FUZZ=ON and build the 'fuzzers' target)" >&2
    exit 1
}
# the sanitizer runtime is shared (plugins link it too): its place in the
# library list is not first, which is fine here
export SLUICE_PLUGIN_DIR=$build/plugins ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:verify_asan_link_order=0
one() {
    local name=$1 dir=$out/$1
    rm -rf "$dir" && mkdir -p "$dir/corpus" "$dir/artifacts"
    cp "$src/fuzz/corpus/$name/"* "$dir/corpus/" 2>/dev/null
    "$build/fuzz/$name" "$dir/corpus" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" >"$dir/log" 2>&1
    echo $? >"$dir/rc"
}
i=0
for f in "${fuzzers[@]}"; do
    one "$f" &
    i=$((i + 1))
    if ((i % 2 == 0)); then wait; fi
done
wait
printf '%-20s %10s %7s %9s %7s %8s  %s\n' harness runs cov features corpus exec/s findings
bad=0
for f in "${fuzzers[@]}"; do
    d=$out/$f
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$d/log" | grep -oE '[0-9]+$' | tail -1)
    speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$d/log" | grep -oE '[0-9]+$' | tail -1)
    last=$(grep -E '^#[0-9]+' "$d/log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
    corp=$(find "$d/corpus" -type f | wc -l)
    # slow-unit-* inputs (over 10 s once) are not failures: on a shared
    # machine a stall makes them; they are named, and replayed by hand
    crashes=$(find "$d/artifacts" -type f ! -name 'slow-unit-*' | wc -l)
    slow=$(find "$d/artifacts" -type f -name 'slow-unit-*' | wc -l)
    rc=$(cat "$d/rc")
    finding=none
    if [[ $slow != 0 ]]; then finding="none ($slow slow input(s) kept in $d/artifacts)"; fi
    if [[ $rc != 0 || $crashes != 0 ]]; then
        finding="exit $rc, $crashes input(s) in $d/artifacts: $(grep -m1 -E 'ERROR|SUMMARY|deadly' "$d/log")"
        bad=1
    fi
    printf '%-20s %10s %7s %9s %7s %8s  %s\n' "$f" "${runs:-?}" "${cov:-?}" "${ft:-?}" "$corp" "${speed:-?}" "$finding"
done
exit $bad
