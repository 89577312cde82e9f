#!/usr/bin/env bash
# bench/scale.sh - throughput, CPU and memory at scale with remote providers:
# the acceptance benchmark for sluice's throughput on large corpora.
#
#   bench/scale.sh [BUILD_DIR]            (default: build)
#   SIZES="1000 10000 50000" MEMORY_BUDGET=512M bench/scale.sh
#
# The workload: SIZES (1000 10000) Markdown documents of about DOC_BYTES
# (40000) bytes, cut by chunk-text (1000 characters, 200 overlap) into
# about 70 chunks each. Every document gets a summary from llm-openai
# (summaries = document; a document longer than the llm stage's
# max_input_chars, 24000 by default, is summarised in parts and then once
# more over the parts) and every chunk an embedding from embed-openai (384
# dimensions, base64), both on the fake provider (tests/fake-provider) with
# fixed latencies LLM_MS (200) and EMBED_MS (50) and no rate limit; the
# chunks go to sink-sqlite. With no limit every request may wait at once,
# so past the longest single-document chain the wall time is sluice's own
# CPU: what the table measures.
#
# For each size it runs, each into a fresh store under WORK:
#
#   - sluice with the providers, under /usr/bin/time -v (peak RSS, user and
#     system CPU) with --json, sampling the loop thread's CPU (the main
#     thread, where every HTTP request lives: utime + stime of
#     /proc/PID/task/PID/stat) to give its busy share (loop CPU / wall);
#   - sluice without providers (parse-markdown, chunk-text, embed-hash 384,
#     sink-sqlite, the same memory_budget): peak RSS when nothing waits;
#   - the same workload through the usual design, blocking-client with 4
#     threads, each making the same calls per document one after another
#     (the summary parts, the combining summary, the embedding batches of
#     128, as counted in sluice's report). Blocked on each call it would
#     take minutes at 10,000 documents, so it runs T4_DOCS (200) documents
#     once and is extrapolated linearly to each size (the table says so).
#
# One Markdown table per size: documents, wall s, documents/s, chunks/s,
# CPU s (user + sys), CPU us per stored chunk, the loop thread's busy share,
# peak RSS, the report's peak_inflight_bytes, memory_budget, the report's
# lower bound (.binding.chain_s, the longest single-document chain) and its
# binding-constraint line (.binding.line); "-" where a report has none. Under
# it the fake provider's own CPU over the run, to show it was not the limit,
# and the CPU of sink-sqlite's writer thread (from its -v log line): one
# thread, so its CPU per chunk bounds the chunks a second.
# It ends with the goals beside the largest size's numbers.
#
# Variables: SIZES, WORK (/tmp/sluice-bench-scale: corpora are generated
# once there and reused), MEMORY_BUDGET (256M), DOC_BYTES (40000), LLM_MS
# (200), EMBED_MS (50), NO_PROVIDERS=1 (only the run without providers),
# T4_DOCS (200), KEYWORD_INDEX (on; later: sink-sqlite leaves its keyword index
# to the first query after the run; off: it keeps none),
# FIXED_MB (150: the fixed overhead above memory_budget that README's
# "Memory: memory_budget" section states, and the RSS goal allows),
# BLOCKING_CLIENT (another blocking-client executable),
# KEEP_STORES=1 (keep each run's store: about 2.5 GB at 10,000 documents;
# by default only report.json, stderr.txt and time.txt stay in the run's
# folder).
# Needs jq, curl, awk and /usr/bin/time (Debian package `time`). Not run in
# CI: timings are for people.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-$here/../build}")
sluice=$build/sluice
fake=$build/tests/fake-provider/fake-provider
client=${BLOCKING_CLIENT:-$build/tests/fake-provider/blocking-client}
work=${WORK:-/tmp/sluice-bench-scale}
sizes=${SIZES:-1000 10000}
budget=${MEMORY_BUDGET:-256M}
doc_bytes=${DOC_BYTES:-40000}
llm_ms=${LLM_MS:-200}
embed_ms=${EMBED_MS:-50}
no_providers=${NO_PROVIDERS:-0}
t4_docs=${T4_DOCS:-200}
fixed_mb=${FIXED_MB:-150}
keep_stores=${KEEP_STORES:-0}
keyword_index=${KEYWORD_INDEX:-on}
embed_batch=128 # embed-openai's preferred batch: the blocking client sends the same
key=sk-bench-scale

need=("$sluice")
[[ $no_providers == 1 ]] || need+=("$fake" "$client")
for x in "${need[@]}"; do
    [[ -x $x ]] || {
        echo "no $x: build first (cmake -S . -B build && cmake --build build)" >&2
        exit 2
    }
done
for tool in jq curl awk /usr/bin/time; do
    command -v "$tool" >/dev/null || {
        echo "bench/scale.sh needs $tool (scripts/deps.sh installs it; /usr/bin/time is Debian's time)" >&2
        exit 2
    }
done
[[ $sizes =~ ^[[:space:]]*[0-9]+([[:space:]]+[0-9]+)*[[:space:]]*$ ]] || {
    echo "SIZES must be numbers: $sizes" >&2
    exit 2
}
# memory_budget in MiB, as sluice reads it (base 1024).
budget_mb=$(awk -v s="$budget" 'BEGIN {
    if (!match(s, /^[0-9]+/)) exit 1
    n = substr(s, 1, RLENGTH); u = tolower(substr(s, RLENGTH + 1)); sub(/^ +/, "", u)
    if (u == "" || u == "b") m = 1.0 / 1048576
    else if (u ~ /^k(i?b)?$/) m = 1.0 / 1024
    else if (u ~ /^m(i?b)?$/) m = 1
    else if (u ~ /^g(i?b)?$/) m = 1024
    else if (u ~ /^t(i?b)?$/) m = 1048576
    else exit 1
    printf "%g", n * m
}') || {
    echo "MEMORY_BUDGET is not a size: $budget (say 256M)" >&2
    exit 2
}
# Every document's requests may be in flight at once: that many sockets.
ulimit -n "$(ulimit -Hn)"
mkdir -p "$work"
export OPENAI_API_KEY=$key

fakes=()
cleanup() {
    for p in "${fakes[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    return 0
}
trap cleanup EXIT

# start_fake OPTIONS...: a new fake provider; its base URL in $fake_url and
# its pid in $fake_pid. (Not a command substitution: the pid must reach
# `fakes` in this shell.)
start_fake() {
    local out
    out=$(mktemp "$work/fake.XXXXXX")
    "$fake" --port 0 --api-key "$key" --latency-dist fixed "$@" >"$out" 2>/dev/null &
    fake_pid=$!
    fakes+=("$fake_pid")
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

# The pipeline with the providers (the stages of conf/openai.ini) and the
# one without (the default pipeline), both under MEMORY_BUDGET.
write_ini() {
    local stages=$2 embedder
    if [[ $1 == providers ]]; then
        embedder="plugin = embed-openai
base_url = \${BENCH_URL}/v1
api_key = \${OPENAI_API_KEY}
dimension = 384
shorten = true"
    else
        embedder="plugin = embed-hash
dimension = 384"
    fi
    cat >"$3" <<EOF
[sluice]
include = *.md
memory_budget = $budget

[route.text]
media = text/markdown
stages = $stages
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text
size = 1000
overlap = 200

[summarizer]
plugin = llm-openai
base_url = \${BENCH_URL}/v1
api_key = \${OPENAI_API_KEY}
summaries = document

[embedder]
$embedder

[store]
plugin = sink-sqlite
path = \${CWD}/.sluice/store.db
keyword_index = $keyword_index
EOF
}
ini_prov=$work/scale-providers.ini
ini_none=$work/scale-none.ini
write_ini providers "markdown chunker summarizer embedder" "$ini_prov"
write_ini none "markdown chunker embedder" "$ini_none"

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
tck=$(getconf CLK_TCK)

# ticks_into VAR FILE: VAR = utime + stime from a /proc stat file, or empty
# when it is gone. Builtins only and no subshell: sampling every 50 ms, a
# fork a sample (and a sleep process) cost the 2-core machine about a tenth
# of its CPU, taken from the run it measured.
ticks_into() {
    local line f
    printf -v "$1" ''
    { read -r line <"$2"; } 2>/dev/null || return 0
    # the fields after the command name (which may hold spaces and parens):
    # utime and stime are the 12th and 13th
    read -r -a f <<<"${line##*) }"
    printf -v "$1" '%d' $((f[11] + f[12]))
}
ticks() { ticks_into _t "$1" && echo "$_t"; }

# nap: 50 ms without starting a process (a read that times out on a pipe
# this shell holds both ends of, so nothing ever arrives)
exec {nap_fd}<> <(:)
nap() { read -r -t 0.05 -u "$nap_fd" _ || true; }

# time_field FILE NAME: a value from /usr/bin/time -v's output.
time_field() { awk -F': *' -v k="$2" '$1 ~ k { print $2 }' "$1"; }

# run_sluice KIND INI CORPUS N: one run into a fresh store; sets the r_* values.
run_sluice() {
    local kind=$1 ini=$2 corpus=$3 n=$4
    local run=$work/run-$n-$kind
    rm -rf "$run" && mkdir -p "$run"
    local f0=0
    if [[ $kind == providers ]]; then
        curl -s -X POST "$fake_url/_reset" >/dev/null
        f0=$(ticks "/proc/$fake_pid/stat")
    fi
    echo "sluice ($kind): $n documents" >&2
    local t0 t1 tpid pid="" loop=0 x rc=0
    t0=$(now)
    (cd "$run" && exec env BENCH_URL="${fake_url:-}" /usr/bin/time -v -o time.txt \
        "$sluice" -c "$ini" run -v --json "$corpus" >report.json 2>stderr.txt) &
    tpid=$!
    # sluice is the child of /usr/bin/time; the loop runs on its main thread
    # (task id = pid). Sample until it exits: the last sample misses at most
    # the final 50 ms.
    while kill -0 "$tpid" 2>/dev/null; do
        if [[ -z $pid ]]; then
            { read -r pid _ <"/proc/$tpid/task/$tpid/children"; } 2>/dev/null || true
            [[ -n $pid ]] || pid=$(pgrep -P "$tpid" 2>/dev/null || true)
        fi
        if [[ -n $pid ]]; then
            ticks_into x "/proc/$pid/task/$pid/stat"
            [[ -z $x ]] || loop=$x
        fi
        nap
    done
    wait "$tpid" || rc=$?
    t1=$(now)
    # 1: some documents failed, the others were stored (warned below)
    if ((rc > 1)) || [[ ! -s $run/report.json ]]; then
        echo "sluice failed (exit $rc); see $run/stderr.txt and $run/time.txt" >&2
        tail -5 "$run/stderr.txt" >&2 || true
        exit 1
    fi
    local rep=$run/report.json
    r_wall=$(calc "$t1 - $t0")
    r_stored=$(jq .documents.stored "$rep")
    r_failed=$(jq .documents.failed "$rep")
    r_chunks=$(jq .chunks "$rep")
    r_cpu=$(calc "$(time_field "$run/time.txt" "User time") + $(time_field "$run/time.txt" "System time")")
    r_rss=$(calc "$(time_field "$run/time.txt" "Maximum resident set size") / 1024")
    r_loop=$(calc "$loop / $tck")
    r_inflight=$(jq -r '.peak_inflight_bytes // empty | . / 1048576' "$rep")
    r_chain=$(jq -r '.binding.chain_s // empty' "$rep")
    r_line=$(jq -r '.binding.line // empty' "$rep")
    r_rep=$rep
    # sink-sqlite's writer thread logs its CPU at the end (-v): one thread,
    # so its CPU per chunk bounds the chunks a second, whatever the cores
    r_writer=$(sed -n 's/.*the writer thread wrote for [0-9.]* s, \([0-9.]*\) s of it on the CPU.*/\1/p' \
        "$run/stderr.txt" | tail -1)
    # and its keyword thread (FTS5 into PATH.keywords) its own; the run
    # ends once that has caught up, which the wall time includes
    r_kw=$(sed -n 's/.*its thread indexed for [0-9.]* s, \([0-9.]*\) s of it on the CPU.*/\1/p' \
        "$run/stderr.txt" | tail -1)
    r_fake_cpu=""
    if [[ $kind == providers ]]; then
        x=$(ticks "/proc/$fake_pid/stat")
        r_fake_cpu=$(calc "(${x:-$f0} - $f0) / $tck")
        r_fake_peak=$(curl -s "$fake_url/_stats" | jq .peak_concurrent)
    fi
    # A 10,000-document store is about 2.5 GB: keep only what was measured.
    [[ $keep_stores == 1 ]] || rm -rf "$run/.sluice"
    [[ $r_stored == "$n" ]] || echo "warning: sluice ($kind) stored $r_stored of $n documents; see $run" >&2
    [[ $r_failed == 0 ]] || echo "warning: $r_failed documents failed in $run" >&2
}

# row LABEL DOCS WALL CHUNKS CPU LOOP RSS INFLIGHT BUDGET CHAIN LINE: one
# table row; empty fields print "-".
row() {
    awk -v label="$1" -v d="$2" -v w="$3" -v c="$4" -v cpu="$5" -v loop="$6" -v rss="$7" \
        -v inf="$8" -v bud="$9" -v chain="${10}" -v line="${11}" 'BEGIN {
        gsub(/\|/, "\\|", line)
        printf "| %s | %s | %.2f | %.0f | %.0f | %.2f | %s | %s | %.1f | %s | %s | %s | %s |\n",
            label, d, w, d / w, c / w, cpu, (c > 0 ? sprintf("%.1f", cpu / c * 1e6) : "-"),
            (loop == "" ? "-" : sprintf("%.3f", loop / w)), rss,
            (inf == "" ? "-" : sprintf("%.1f", inf)), (bud == "" ? "-" : bud),
            (chain == "" ? "-" : sprintf("%.3f", chain)), (line == "" ? "-" : line)
    }'
}

if [[ $no_providers != 1 ]]; then
    start_fake --llm-latency-ms "$llm_ms" --embed-latency-ms "$embed_ms" --embed-dim 384
fi

declare -A out
largest=""
t4_done=0
for n in $sizes; do
    corpus=$work/corpus-$n-$doc_bytes
    if [[ ! -f $corpus/.complete ]]; then
        rm -rf "$corpus"
        echo "generating $n documents of about $doc_bytes bytes in $corpus" >&2
        bash "$here/gen_corpus.sh" "$n" "$corpus" "$doc_bytes" 1 >/dev/null
        touch "$corpus/.complete"
    fi
    rows=()
    notes=()
    if [[ $no_providers != 1 ]]; then
        run_sluice providers "$ini_prov" "$corpus" "$n"
        rows+=("$(row "sluice, providers" "$r_stored" "$r_wall" "$r_chunks" "$r_cpu" "$r_loop" "$r_rss" \
            "$r_inflight" "$budget_mb" "$r_chain" "$r_line")")
        llm_req=$(jq '[.providers[] | select(.name == "summarizer") | .requests - .retries] | add // 0' "$r_rep")
        emb_req=$(jq '[.providers[] | select(.name == "embedder") | .requests - .retries] | add // 0' "$r_rep")
        [[ -z $r_writer || $r_chunks == 0 ]] || notes+=("sink-sqlite's writer thread (providers): $r_writer s CPU, $(calc "$r_writer / $r_chunks * 1e6" | awk '{ printf "%.1f", $1 }') µs a stored chunk of the run's $(calc "$r_cpu / $r_chunks * 1e6" | awk '{ printf "%.1f", $1 }'); one thread, so at most $(calc "$r_chunks / $r_writer" | awk '{ printf "%.0f", $1 }') chunks/s on cores of this speed, whatever their number.")
        [[ -z $r_kw || $r_chunks == 0 ]] || notes+=("sink-sqlite's keyword thread (providers): $r_kw s CPU, $(calc "$r_kw / $r_chunks * 1e6" | awk '{ printf "%.1f", $1 }') µs a stored chunk, beside the writer; its catching up after the last document took $(jq -r '.binding.settle_s // 0 | . * 100 | round / 100' "$r_rep") s, inside the run (the report's wall_s, $(jq -r '.wall_s | . * 100 | round / 100' "$r_rep") s, includes it: the sink's settle).")
        notes+=("fake provider: $(calc "$r_fake_cpu" | awk '{ printf "%.2f", $1 }') s CPU over the sluice run's $(calc "$r_wall" | awk '{ printf "%.2f", $1 }') s ($(calc "$r_fake_cpu / $r_wall" | awk '{ printf "%.2f", $1 }') of a core), $r_fake_peak requests in flight at peak; sluice sent $llm_req summary and $emb_req embedding requests ($(calc "$llm_req / $r_stored" | awk '{ printf "%.2f", $1 }') and $(calc "$emb_req / $r_stored" | awk '{ printf "%.2f", $1 }') a document).")
        out[$n,p_wall]=$r_wall out[$n,p_docs]=$r_stored out[$n,p_cpu]=$r_cpu out[$n,p_chunks]=$r_chunks
        out[$n,p_loop]=$r_loop out[$n,p_rss]=$r_rss

        # The blocking baseline, once, on the calls sluice made per document.
        if ((t4_done == 0)); then
            t4_done=1
            cpd=$(awk -v c="$r_chunks" -v d="$r_stored" 'BEGIN { printf "%d", c / d + 0.5 }')
            llm_per_doc=$(awk -v c="$llm_req" -v d="$r_stored" 'BEGIN { printf "%d", c / d + 0.5 }')
            # tokens are words x 4 / 3 on the fake provider
            sum_words=$(jq '[.providers[] | select(.name == "summarizer") | .tokens_in] | add // 0' "$r_rep")
            chunk_words=$(jq '[.providers[] | select(.name == "embedder") | .tokens_in] | add // 0' "$r_rep")
            parts=1
            ((llm_per_doc < 2)) || parts=$((llm_per_doc - 1))
            sum_words=$(awk -v t="$sum_words" -v d="$r_stored" -v p="$parts" 'BEGIN { w = t * 3 / 4 / d / p; printf "%d", w < 1 ? 1 : w }')
            chunk_words=$(awk -v t="$chunk_words" -v c="$r_chunks" 'BEGIN { w = t * 3 / 4 / c; printf "%d", w < 1 ? 1 : w }')
            t4_args=(--url "$fake_url" --api-key "$key" --docs "$t4_docs" --threads 4 --chunks-per-doc "$cpd"
                --batch "$embed_batch" --chunk-words "$chunk_words")
            t4_llm=1
            if "$client" --help | grep -q -- --summary-parts; then
                t4_args+=(--summary-parts "$parts" --summary-words "$sum_words" --encoding base64 --dimensions 384)
                ((parts == 1)) || t4_llm=$((parts + 1))
            else
                echo "warning: $client has no --summary-parts: it makes 1 summary call a document, sluice $llm_per_doc (rebuild it)" >&2
            fi
            t4_emb=$(((cpd + embed_batch - 1) / embed_batch))
            t4_chain=$(calc "($t4_llm * $llm_ms + $t4_emb * $embed_ms) / 1000")
            echo "blocking client, 4 threads: $t4_docs documents (about $(awk -v d="$t4_docs" -v c="$t4_chain" 'BEGIN { printf "%.0f", int((d + 3) / 4) * c }') s)" >&2
            curl -s -X POST "$fake_url/_reset" >/dev/null
            f0=$(ticks "/proc/$fake_pid/stat")
            t4_out=$(/usr/bin/time -v -o "$work/t4-time.txt" "$client" "${t4_args[@]}") || {
                echo "blocking-client failed: $t4_out" >&2
                exit 1
            }
            f1=$(ticks "/proc/$fake_pid/stat")
            t4_wall=$(jq -r .wall_s <<<"$t4_out")
            t4_cpu=$(calc "$(time_field "$work/t4-time.txt" "User time") + $(time_field "$work/t4-time.txt" "System time")")
            t4_rss=$(calc "$(time_field "$work/t4-time.txt" "Maximum resident set size") / 1024")
            t4_fake_cpu=$(calc "($f1 - $f0) / $tck")
            t4_calls=$(curl -s "$fake_url/_stats" | jq -c '[.by_path["/v1/chat/completions"], .by_path["/v1/embeddings"]]')
        fi
        x=$(calc "$n / $t4_docs")
        how="$t4_docs documents run, extrapolated x$(awk -v x="$x" 'BEGIN { printf "%g", x }')"
        ((n != t4_docs)) || how="measured"
        rows+=("$(row "blocking-client --threads 4 ($how)" \
            "$n" "$(calc "$t4_wall * $x")" "$(calc "$t4_docs * $cpd * $x")" "$(calc "$t4_cpu * $x")" "" "$t4_rss" "" "" \
            "$(calc "int(($n + 3) / 4) * $t4_chain")" \
            "4 threads, each waiting $t4_llm summary + $t4_emb embedding call(s) a document in sequence")")
    fi
    run_sluice none "$ini_none" "$corpus" "$n"
    rows+=("$(row "sluice, no providers (embed-hash)" "$r_stored" "$r_wall" "$r_chunks" "$r_cpu" "$r_loop" "$r_rss" \
        "$r_inflight" "$budget_mb" "$r_chain" "$r_line")")
    [[ -z $r_writer || $r_chunks == 0 ]] || notes+=("sink-sqlite's writer thread (no providers): $r_writer s CPU, $(calc "$r_writer / $r_chunks * 1e6" | awk '{ printf "%.1f", $1 }') µs a stored chunk of the run's $(calc "$r_cpu / $r_chunks * 1e6" | awk '{ printf "%.1f", $1 }'); one thread, so at most $(calc "$r_chunks / $r_writer" | awk '{ printf "%.0f", $1 }') chunks/s on cores of this speed, whatever their number.")
    [[ -z $r_kw || $r_chunks == 0 ]] || notes+=("sink-sqlite's keyword thread (no providers): $r_kw s CPU, $(calc "$r_kw / $r_chunks * 1e6" | awk '{ printf "%.1f", $1 }') µs a stored chunk, beside the writer; its catching up after the last document took $(jq -r '.binding.settle_s // 0 | . * 100 | round / 100' "$r_rep") s, inside the run (the report's wall_s, $(jq -r '.wall_s | . * 100 | round / 100' "$r_rep") s, includes it: the sink's settle).")
    out[$n,n_rss]=$r_rss
    out[$n,n_chunks]=$r_chunks
    largest=$n
    out[$n,rows]=$(printf '%s\n' "${rows[@]}")
    out[$n,notes]=$(printf '%s\n' "${notes[@]+"${notes[@]}"}")
done

# --- the tables ---
echo
echo "$("$sluice" --version | head -1), $(nproc) cores, $(uname -m), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ $no_providers != 1 ]]; then
    echo "Providers: the fake provider, summaries ${llm_ms} ms, embeddings ${embed_ms} ms (fixed), no rate limit."
fi
for n in $sizes; do
    echo
    echo "## $n documents of about $doc_bytes bytes ($(calc "${out[$n,n_chunks]} / $n" | awk '{ printf "%.1f", $1 }') chunks a document), memory_budget $budget"
    echo
    echo "| run | documents | wall s | documents/s | chunks/s | CPU s (user+sys) | CPU µs / stored chunk | loop thread busy (CPU / wall) | peak RSS MB | peak in flight MB | memory_budget MB | lower bound s (longest chain) | binding constraint |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    echo "${out[$n,rows]}"
    if [[ -n ${out[$n,notes]} ]]; then
        echo
        echo "${out[$n,notes]}"
    fi
done
if [[ $no_providers != 1 ]]; then
    echo
    echo "blocking-client ${t4_args[*]:4}: $t4_docs documents, $t4_wall s, calls $t4_calls (summaries, embeddings), fake provider $(awk -v x="$t4_fake_cpu" 'BEGIN { printf "%.2f", x }') s CPU. Its CPU is the HTTP calls alone (no reading, parsing, chunking or storing); its lower bound is ceil(documents / 4) x $(awk -v x="$t4_chain" 'BEGIN { printf "%g", x }') s."
fi

# --- the goals, beside the largest size ---
n=$largest
echo
echo "Goals (at 10,000 documents), with the $n-document numbers:"
if [[ $no_providers != 1 ]]; then
    awk -v n="$n" -v d="${out[$n,p_docs]}" -v w="${out[$n,p_wall]}" -v cpu="${out[$n,p_cpu]}" \
        -v c="${out[$n,p_chunks]}" -v loop="${out[$n,p_loop]}" -v rss="${out[$n,p_rss]}" \
        -v nrss="${out[$n,n_rss]}" -v bud="$budget_mb" -v fixed="$fixed_mb" 'BEGIN {
        ok = "met"; no = "NOT met"
        printf "- >= 1,000 documents/s at 10,000 documents: %.0f (%s)\n", d / w, (d / w >= 1000 ? ok : no)
        if (c > 0) printf "- <= 25 µs sluice CPU per chunk: %.1f (%s)\n", cpu / c * 1e6, (cpu / c * 1e6 <= 25 ? ok : no)
        else printf "- <= 25 µs sluice CPU per chunk: no chunks stored (%s)\n", no
        printf "- loop thread under half a core: %.3f (%s)\n", loop / w, (loop / w < 0.5 ? ok : no)
        printf "- peak RSS under memory_budget + %g MB fixed overhead (%g MB): %.1f MB with providers, %.1f without (%s)\n",
            fixed, bud + fixed, rss, nrss, ((rss < bud + fixed && nrss < bud + fixed) ? ok : no)
    }'
else
    awk -v rss="${out[$n,n_rss]}" -v bud="$budget_mb" -v fixed="$fixed_mb" 'BEGIN {
        printf "- >= 1,000 documents/s at 10,000 documents; <= 25 µs sluice CPU per chunk; loop thread under half a core: not measured (NO_PROVIDERS=1 skipped the provider runs)\n"
        printf "- peak RSS under memory_budget + %g MB fixed overhead (%g MB): %.1f MB without providers (%s)\n",
            fixed, bud + fixed, rss, (rss < bud + fixed ? "met" : "NOT met")
    }'
fi
