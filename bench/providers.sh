#!/usr/bin/env bash
# bench/providers.sh - sluice's remote providers against the usual design,
# on the fake provider (tests/fake-provider), modelled on a real workload.
#
#   bench/providers.sh [BUILD_DIR]            (default: build)
#
# The workload: DOCS (500) Markdown documents of about DOC_BYTES (4000)
# bytes, which the default chunker (1000 characters, 150 overlap) cuts into
# about 8 chunks each. Every document needs one summary call (LLM_MS, 2000
# ms, as measured on a real run) and then one embedding call per batch of
# BATCH (8) chunks (EMBED_MS, 400 ms), so one embedding call per document
# on average. It prints, side by side:
#
#   - the lower bound: the longest single-document chain (LLM_MS + EMBED_MS),
#     or the total requests over the allowed concurrency or rate, whichever
#     is larger (no limit is configured by default, so it is the chain;
#     LLM_CONCURRENCY, EMBED_CONCURRENCY, LLM_RPM, EMBED_RPM set limits on
#     sluice and into the bound);
#   - sluice: the wall time of `sluice run` over the DOCS documents
#     (parse-markdown, chunk-text, llm-openai, embed-openai, sink-sqlite),
#     the median of RUNS (3) runs, each into a fresh store;
#   - a sequential run: blocking-client --threads 1, one blocking libcurl
#     call after another. At 2.4 s a document it would take 20 minutes, so
#     it runs SEQ_DOCS (50) documents and is extrapolated linearly to DOCS
#     (the table says so);
#   - the usual design this replaces: blocking-client --threads 4, on
#     T4_DOCS (100) documents, extrapolated likewise.
#
# Then a separate run for in-flight capacity: INFLIGHT_DOCS (10,000) small
# documents, every call taking INFLIGHT_MS (10000) ms, no limits: the fake
# provider's peak_concurrent (how many requests it held at once; the
# latency is long enough for all 10,000 summary calls to go out before the
# first answer, since admitting 10,000 documents - read, the sink's lookup,
# parse, chunk - takes several seconds on a small machine) and the
# CPU time of sluice's loop thread (the main thread, where every HTTP
# request lives: utime + stime from /proc/PID/task/PID/stat) over the wall
# time, with the whole process's CPU beside it.
#
# Corpora are generated once into WORK (/tmp/sluice-bench-providers) and
# reused. Needs jq, curl and awk. Not run in CI: timings are for people.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-$here/../build}")
sluice=$build/sluice
fake=$build/tests/fake-provider/fake-provider
client=$build/tests/fake-provider/blocking-client
work=${WORK:-/tmp/sluice-bench-providers}
docs=${DOCS:-500}
doc_bytes=${DOC_BYTES:-4000}
llm_ms=${LLM_MS:-2000}
embed_ms=${EMBED_MS:-400}
batch=${BATCH:-8}
seq_docs=${SEQ_DOCS:-50}
t4_docs=${T4_DOCS:-100}
runs=${RUNS:-3}
llm_conc=${LLM_CONCURRENCY:-0}
embed_conc=${EMBED_CONCURRENCY:-0}
llm_rpm=${LLM_RPM:-0}
embed_rpm=${EMBED_RPM:-0}
inflight_docs=${INFLIGHT_DOCS:-10000}
inflight_ms=${INFLIGHT_MS:-10000}
key=sk-bench-providers

for x in "$sluice" "$fake" "$client"; do
    [[ -x $x ]] || {
        echo "no $x: build first (cmake -S . -B build && cmake --build build)" >&2
        exit 2
    }
done
for tool in jq curl awk; do
    command -v "$tool" >/dev/null || {
        echo "bench/providers.sh needs $tool" >&2
        exit 2
    }
done
# 10,000 requests in flight are 10,000 sockets in sluice and as many in the
# fake provider (which raises its own limit).
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < inflight_docs + 1000)); then
    echo "warning: open-file limit $(ulimit -n) is below $((inflight_docs + 1000)): the in-flight run may fail" >&2
fi
mkdir -p "$work"
export OPENAI_API_KEY=$key

fakes=()
cleanup() {
    for p in "${fakes[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    return 0
}
trap cleanup EXIT

# start_fake OPTIONS...: a new fake provider; its base URL in $fake_url.
# (Not a command substitution: the pid must reach `fakes` in this shell.)
start_fake() {
    local out
    out=$(mktemp "$work/fake.XXXXXX")
    "$fake" --port 0 --api-key "$key" --latency-dist fixed "$@" >"$out" 2>/dev/null &
    fakes+=($!)
    local port="" i
    for ((i = 0; i < 200; i++)); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$out" || true)
        [[ -z $port ]] || break
        sleep 0.05
    done
    rm -f "$out"
    [[ -n $port ]] || {
        echo "the fake provider did not start" >&2
        exit 1
    }
    fake_url=http://127.0.0.1:$port
}

# The pipeline: the stages of conf/openai.ini with the chunker's defaults,
# a small vector (the size does not change the calls), and the limits asked for.
write_ini() {
    cat >"$1" <<EOF
[sluice]
include = *.md

[route.text]
media = text/markdown
stages = markdown chunker summarizer embedder
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text

[summarizer]
plugin = llm-openai
base_url = \${BENCH_URL}/v1
api_key = \${OPENAI_API_KEY}
summaries = document
max_concurrency = $llm_conc
rpm = $llm_rpm

[embedder]
plugin = embed-openai
base_url = \${BENCH_URL}/v1
api_key = \${OPENAI_API_KEY}
dimension = 256
shorten = true
batch_size = $batch
max_concurrency = $embed_conc
rpm = $embed_rpm

[store]
plugin = sink-sqlite
path = \${CWD}/.sluice/store.db
EOF
}
ini=$work/providers.ini
write_ini "$ini"

now() { date +%s.%N; }
fmt() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# --- the corpora ---
corpus=$work/corpus-$docs-$doc_bytes
if [[ ! -f $corpus/.complete ]]; then
    rm -rf "$corpus"
    echo "generating $docs documents of about $doc_bytes bytes in $corpus" >&2
    bash "$here/gen_corpus.sh" "$docs" "$corpus" "$doc_bytes" 1 >/dev/null
    touch "$corpus/.complete"
fi
small=$work/small-$inflight_docs
if [[ ! -f $small/.complete ]]; then
    rm -rf "$small"
    echo "generating $inflight_docs small documents in $small" >&2
    mkdir -p "$small"
    awk -v n="$inflight_docs" -v out="$small" 'BEGIN {
        for (i = 0; i < n; i++) {
            if (i % 100 == 0) system("mkdir -p " out "/d" int(i / 100))
            f = sprintf("%s/d%d/note-%05d.md", out, int(i / 100), i)
            printf "# Note %d\n\nThe worker %d leases segment %d of the journal and replays it into the index before the snapshot rotates.\n", i, i, i * 7 % 1000 > f
            close(f)
        }
    }'
    touch "$small/.complete"
fi

# --- sluice on the workload ---
start_fake --llm-latency-ms "$llm_ms" --embed-latency-ms "$embed_ms"
url=$fake_url
run=$work/run-sluice
# The machine may be shared: run it RUNS times, each into a fresh store, and
# take the median (the spread is printed too).
walls=()
for ((k = 1; k <= runs; k++)); do
    rm -rf "$run" && mkdir -p "$run"
    echo "sluice: $docs documents, LLM ${llm_ms} ms, embeddings ${embed_ms} ms (run $k of $runs)" >&2
    curl -s -X POST "$url/_reset" >/dev/null
    t0=$(now)
    (cd "$run" && BENCH_URL=$url "$sluice" -c "$ini" run --json "$corpus" >report.json)
    t1=$(now)
    walls+=("$(calc "$t1 - $t0")")
done
sorted=$(printf '%s\n' "${walls[@]}" | sort -g)
sluice_wall=$(sed -n "$(((runs + 1) / 2))p" <<<"$sorted")
sluice_min=$(head -1 <<<"$sorted")
sluice_max=$(tail -1 <<<"$sorted")
rep=$run/report.json
stored=$(jq .documents.stored "$rep")
chunks=$(jq .chunks "$rep")
llm_calls=$(jq '[.providers[] | select(.name == "summarizer") | .requests] | add' "$rep")
embed_calls=$(jq '[.providers[] | select(.name == "embedder") | .requests] | add' "$rep")
retries=$(jq '[.providers[].retries] | add' "$rep")
sluice_peak=$(curl -s "$url/_stats" | jq .peak_concurrent)
[[ $stored == "$docs" ]] || echo "warning: sluice stored $stored of $docs documents" >&2
chunks_per_doc=$(calc "$chunks / $docs")
cpd=$(awk -v x="$chunks_per_doc" 'BEGIN { printf "%d", x + 0.5 }')

# --- the lower bound ---
llm_s=$(calc "$llm_ms / 1000")
embed_s=$(calc "$embed_ms / 1000")
chain=$(calc "$llm_s + $embed_s")
min_embed_calls=$(((chunks + batch - 1) / batch))
# bound CALLS SECONDS CONCURRENCY RPM: the time CALLS take at best under the limits.
bound() {
    awk -v n="$1" -v s="$2" -v c="$3" -v r="$4" 'BEGIN {
        b = 0
        if (c > 0) b = int((n + c - 1) / c) * s
        if (r > 0 && n * 60 / r > b) b = n * 60 / r
        printf "%.6f", b
    }'
}
llm_bound=$(bound "$docs" "$llm_s" "$llm_conc" "$llm_rpm")
embed_bound=$(bound "$min_embed_calls" "$embed_s" "$embed_conc" "$embed_rpm")
lower=$(awk -v a="$chain" -v b="$llm_bound" -v c="$embed_bound" 'BEGIN { m = a; if (b > m) m = b; if (c > m) m = c; printf "%.6f", m }')
if awk -v a="$chain" -v l="$lower" 'BEGIN { exit !(a >= l) }'; then
    lower_why="the longest chain: ${llm_ms} + ${embed_ms} ms"
else
    lower_why="requests over the allowed concurrency or rate"
fi

# --- the blocking baselines ---
# blocking RUN_DOCS THREADS: wall seconds of blocking-client on RUN_DOCS documents.
blocking() {
    local out
    out=$("$client" --url "$url" --api-key "$key" --docs "$1" --threads "$2" --chunks-per-doc "$cpd" \
        --batch "$batch" --embed-model text-embedding-3-small)
    jq -r .wall_s <<<"$out"
}
echo "blocking client, 1 thread: $seq_docs documents (about $(calc "$seq_docs * $chain" | cut -d. -f1) s)" >&2
seq_wall=$(blocking "$seq_docs" 1)
echo "blocking client, 4 threads: $t4_docs documents (about $(calc "$t4_docs * $chain / 4" | cut -d. -f1) s)" >&2
t4_wall=$(blocking "$t4_docs" 4)
seq_full=$(calc "$seq_wall * $docs / $seq_docs")
t4_full=$(calc "$t4_wall * $docs / $t4_docs")

# --- in flight: INFLIGHT_DOCS documents, every call INFLIGHT_MS ---
start_fake --latency-ms "$inflight_ms"
url2=$fake_url
run2=$work/run-inflight
rm -rf "$run2" && mkdir -p "$run2"
echo "sluice: $inflight_docs small documents, every call ${inflight_ms} ms" >&2
tck=$(getconf CLK_TCK)
t0=$(now)
(cd "$run2" && exec env BENCH_URL="$url2" "$sluice" -c "$ini" --set summarizer.max_concurrency=0 \
    --set embedder.max_concurrency=0 --set summarizer.rpm=0 --set embedder.rpm=0 \
    run --json "$small" >report.json) &
pid=$!
loop_ticks=0
proc_ticks=0
# The loop runs on the main thread (task id = pid). Sample until it exits;
# the last sample misses at most the final 20 ms.
while kill -0 "$pid" 2>/dev/null; do
    # the fields after the command name (which may hold spaces and parens):
    # utime and stime are the 12th and 13th
    s=$(sed 's/^.*) //' "/proc/$pid/task/$pid/stat" 2>/dev/null || true)
    p=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null || true)
    if [[ -n $s && -n $p ]]; then
        read -r -a sf <<<"$s"
        read -r -a pf <<<"$p"
        loop_ticks=$((sf[11] + sf[12]))
        proc_ticks=$((pf[11] + pf[12]))
    fi
    sleep 0.02
done
wait "$pid" || true
t1=$(now)
in_wall=$(calc "$t1 - $t0")
rep2=$run2/report.json
in_stored=$(jq .documents.stored "$rep2")
in_peak=$(curl -s "$url2/_stats" | jq .peak_concurrent)
in_rss=$(jq '.peak_rss_bytes / 1048576' "$rep2")
loop_cpu=$(calc "$loop_ticks / $tck")
proc_cpu=$(calc "$proc_ticks / $tck")

# --- the table ---
ratio() { awk -v a="$1" -v b="$lower" 'BEGIN { printf "%.2f", a / b }'; }
cat <<EOF

## Providers benchmark: $docs documents, summary ${llm_ms} ms + embeddings ${embed_ms} ms

Workload: $docs Markdown documents of about $doc_bytes bytes; the default
chunker made $chunks chunks ($(fmt "$chunks_per_doc") a document); one summary call each
($llm_calls sent) and embedding batches of $batch chunks ($embed_calls sent, at least
$min_embed_calls). Limits: LLM concurrency ${llm_conc/#0/none}, rpm ${llm_rpm/#0/none}; embeddings
concurrency ${embed_conc/#0/none}, rpm ${embed_rpm/#0/none}. The blocking client makes one summary
and $(((cpd + batch - 1) / batch)) embedding call(s) of $cpd chunks per document.

| run | documents run | wall s | wall s for $docs documents | / lower bound |
| --- | ---: | ---: | ---: | ---: |
| lower bound ($lower_why) | - | - | $(fmt "$lower") | 1.00 |
| **sluice** (median of $runs runs: $(fmt "$sluice_min") to $(fmt "$sluice_max") s; one loop thread, $sluice_peak requests in flight at peak, $retries retries) | $stored | $(fmt "$sluice_wall") | $(fmt "$sluice_wall") | **$(ratio "$sluice_wall")** |
| sequential (blocking-client, 1 thread) | $seq_docs, extrapolated x$(calc "$docs / $seq_docs" | awk '{printf "%g", $1}') | $(fmt "$seq_wall") | $(fmt "$seq_full") | $(ratio "$seq_full") |
| 4 threads blocking on each call (blocking-client --threads 4) | $t4_docs, extrapolated x$(calc "$docs / $t4_docs" | awk '{printf "%g", $1}') | $(fmt "$t4_wall") | $(fmt "$t4_full") | $(ratio "$t4_full") |

## In flight: $inflight_docs small documents, every call ${inflight_ms} ms, no limits

| documents stored | peak requests in flight (fake provider) | wall s | loop thread CPU s | loop thread cores (CPU / wall) | process CPU s (all threads) | peak RSS MB |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| $in_stored | $in_peak | $(fmt "$in_wall") | $(fmt "$loop_cpu") | $(calc "$loop_cpu / $in_wall" | awk '{printf "%.3f", $1}') | $(fmt "$proc_cpu") | $(fmt "$in_rss") |

Goals: sluice within 15% of the lower bound (ratio <= 1.15); 10,000 requests
in flight with the loop thread under one core (CPU / wall < 1).
EOF
