#!/usr/bin/env bash
# bench/ingest.sh - ingest throughput and memory of the default pipeline
# (parse-markdown, chunk-text, embed-hash, sink-sqlite) on generated corpora.
#
#   bench/ingest.sh [SLUICE]          (default: build/sluice)
#   SIZES="1000 10000" THREADS="1 2" WORK=/tmp/sluice-bench bench/ingest.sh
#
# For each corpus size (deterministic Markdown of about 5 KB per file, made
# by bench/gen_corpus.sh and kept in WORK between runs) and each thread
# count, it runs `sluice run --json --set sluice.threads=N` into a fresh
# store and reads the run report: wall time (the process's, start to exit),
# documents/s, MB/s, the process's CPU and the cores it kept busy, peak RSS
# (from /usr/bin/time -v when installed, else the report's peak_rss_bytes;
# CPU needs it) and the busy seconds of each stage. It prints one Markdown
# table, then the two ratios that matter: what a second thread buys, and
# how memory grows with the corpus (it should not: documents stream through
# a bounded window). Needs jq; see bench/README.md. Not run in CI: timings are for
# people, never for assertions.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
sluice=$(realpath "${1:-$here/../build/sluice}")
sizes=${SIZES:-1000 10000}
threads_list=${THREADS:-1 2}
work=${WORK:-/tmp/sluice-bench}
doc_bytes=${DOC_BYTES:-5000}

[[ -x $sluice ]] || {
    echo "no sluice at $sluice: build it first (cmake -S . -B build && cmake --build build)" >&2
    exit 2
}
command -v jq >/dev/null || {
    echo "bench/ingest.sh needs jq (apt-get install jq, or scripts/deps.sh)" >&2
    exit 2
}
timer=()
if [[ -x /usr/bin/time ]]; then timer=(/usr/bin/time -v); fi
mkdir -p "$work"

# busy STAGE_PLUGIN_PREFIX REPORT: busy seconds of the stages whose plugin
# name starts with the prefix (the sink's lookup stage counted apart).
busy() {
    jq -r --arg p "$1" '[.stages[] | select(.plugin | startswith($p)) | select(.name | test("lookup") | not)
                         | .busy_s] | add // 0' "$2" | awk '{ printf "%.2f", $1 }'
}

declare -A rate rss
rows=()
for n in $sizes; do
    corpus=$work/corpus-$n
    bash "$here/gen_corpus.sh" --once "$n" "$corpus" "$doc_bytes" 1 >/dev/null
    for t in $threads_list; do
        run=$work/run-$n-$t
        rm -rf "$run" && mkdir -p "$run"
        echo "ingesting $n documents with $t thread(s)" >&2
        t0=$(date +%s.%N)
        (cd "$run" && "${timer[@]}" "$sluice" run --json --set sluice.threads="$t" "$corpus" \
            >report.json 2>stderr.txt) || {
            echo "sluice failed; see $run/stderr.txt" >&2
            exit 1
        }
        t1=$(date +%s.%N)
        r=$run/report.json
        docs=$(jq -r .documents.stored "$r")
        failed=$(jq -r .documents.failed "$r")
        bytes=$(jq -r .bytes "$r")
        # start to exit, not the report's wall_s: the report's ends after
        # the store's settle (its keyword index caught up), but loading the
        # plugins and closing the store are part of the run too
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        rss_kb=$(awk -F': *' '/Maximum resident set size/ {print $2}' "$run/stderr.txt")
        if [[ -z $rss_kb ]]; then rss_kb=$(($(jq -r .peak_rss_bytes "$r") / 1024)); fi
        # the process's CPU (user + system) and how many cores that kept
        # busy: on a small machine the store's own threads (the writer, the
        # keyword index) take a core, and a second pipeline thread then
        # has none left to run on
        read -r cpu cores < <(awk -v w="$wall" -F': *' '
            /User time \(seconds\)/ { u = $2 } /System time \(seconds\)/ { s = $2; seen = 1 }
            END { if (seen) printf "%.2f %.2f\n", u + s, (u + s) / w; else print "- -" }' "$run/stderr.txt")
        read -r mb dps mbps rss_mb < <(awk -v b="$bytes" -v d="$docs" -v w="$wall" -v k="$rss_kb" \
            'BEGIN { printf "%.1f %.0f %.2f %.1f\n", b / 1e6, d / w, b / 1e6 / w, k / 1024 }')
        rate[$n,$t]=$dps
        rss[$n,$t]=$rss_mb
        if [[ $failed != 0 ]]; then echo "warning: $failed documents failed in $run" >&2; fi
        rows+=("$(printf '| %6s | %6s | %7s | %7.2f | %7s | %6s | %6s | %5s | %11s | %7s | %7s | %7s | %7s |' \
            "$docs" "$mb" "$t" "$wall" "$dps" "$mbps" "$cpu" "$cores" "$rss_mb" \
            "$(busy parse- "$r")" "$(busy chunk- "$r")" "$(busy embed- "$r")" "$(busy sink- "$r")")")
    done
done

echo
echo "$("$sluice" --version | head -1), $(nproc) cores, $(uname -m); default config (embed-hash 384, SQLite)"
echo
echo "|   docs |     MB | threads |  wall s |  docs/s |   MB/s |  CPU s | cores | peak RSS MB | parse s | chunk s | embed s | store s |"
echo "|-------:|-------:|--------:|--------:|--------:|-------:|-------:|------:|------------:|--------:|--------:|--------:|--------:|"
printf '%s\n' "${rows[@]}"
echo
echo "CPU s: the process's user + system CPU (from /usr/bin/time); cores: CPU s / wall s."
echo "busy s: time spent inside each stage's callbacks, summed over threads."

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
read -r -a ts <<<"$threads_list"
read -r -a ns <<<"$sizes"
if ((${#ts[@]} >= 2)); then
    for n in "${ns[@]}"; do
        echo "throughput ${ts[-1]} threads / ${ts[0]} thread(s), $n docs: $(ratio "${rate[$n,${ts[-1]}]}" "${rate[$n,${ts[0]}]}")x"
    done
fi
if ((${#ns[@]} >= 2)); then
    for t in "${ts[@]}"; do
        echo "peak RSS ${ns[-1]} docs / ${ns[0]} docs, $t thread(s): $(ratio "${rss[${ns[-1]},$t]}" "${rss[${ns[0]},$t]}")x"
    done
fi
