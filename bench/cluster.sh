#!/usr/bin/env bash
# bench/cluster.sh - throughput of a sluice cluster: 1, 2 and 4 nodes
# (`sluice run --queue`) sharing one corpus through one PostgreSQL job
# queue, on the fake provider, with a per-node cap on requests in flight so
# that the provider's latency binds rather than this machine's cores. Then
# the queue's own capacity (bench/queue_capacity.sh) on the same server:
# the ceiling on how many nodes one database can feed.
#
#   bench/cluster.sh [BUILD_DIR]                  (default: build)
#   NODES="1 2 4" DOCS=400 CAP=2 bench/cluster.sh
#
# The workload: DOCS (400) Markdown documents of about DOC_BYTES (1500)
# bytes (bench/gen_corpus.sh), each one chunk or two, through
# parse-markdown, chunk-text, llm-openai (a summary per document: chat,
# LLM_MS = 200 ms on the fake provider), embed-openai (384 dimensions,
# EMBED_MS = 50 ms) into sink-postgres. Each node's llm and embedding
# stages have `max_concurrency = CAP` (2): one node then stores at most
# CAP / LLM_MS documents per second (10 by default), whatever its CPU, as a
# node held to its share of a provider's concurrency would.
#
# First the baseline: one plain `sluice run` of the corpus (no queue) into
# its own tables. Then for each node count N (a fresh table_prefix each
# time, so a fresh store and queue), it runs `sluice enqueue` over the corpus once, then starts N
# `sluice run --queue` nodes at once and waits until every node has
# exited (a node exits when the queue is drained). The wall time is from
# the nodes' start to the last exit. It checks in SQL that every document
# was stored exactly once and every job is done, and prints documents/s
# (to the last ack: a node out of work waits, polling, for the others'
# leases, so the exits come later and are shown beside it), the ratio to
# 1 node, the bound N * CAP / LLM_MS, the jobs per lease statement (jobs
# leased together share their leased_at), and how the jobs split between
# the nodes. Then QCAP_ARGS (default "--jobs 20000 --seconds 2")
# go to bench/queue_capacity.sh against the same server.
#
# Variables: NODES, DOCS, DOC_BYTES, CAP, LLM_MS, EMBED_MS, QCAP_ARGS,
# QCAP=0 (skip the capacity table), LIMIT (900: seconds the nodes of one
# count may take before the bench gives up). PostgreSQL is made by
# tests/plugins/sink-postgres/pgcluster.sh (initdb in /tmp, a free port,
# fsync on) and removed at the end, like everything else under the one
# WORK folder. Needs jq, curl and psql. Not run in CI: timings are for
# people, and on a shared machine they move: say what else was running.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-$here/../build}")
nodes_list=${NODES:-1 2 4}
docs=${DOCS:-400}
doc_bytes=${DOC_BYTES:-1500}
cap=${CAP:-2}
llm_ms=${LLM_MS:-200}
embed_ms=${EMBED_MS:-50}
qcap_args=${QCAP_ARGS:---jobs 20000 --seconds 2}
qcap=${QCAP:-1}
limit=${LIMIT:-900}
key=sk-bench-cluster
pgcluster=$here/../tests/plugins/sink-postgres/pgcluster.sh

[[ -f $build/CMakeCache.txt ]] || {
    echo "no configured build at $build: cmake -S . -B build first" >&2
    exit 2
}
for tool in jq curl psql awk; do
    command -v "$tool" >/dev/null || {
        echo "bench/cluster.sh needs $tool (scripts/deps.sh installs it)" >&2
        exit 2
    }
done
cmake --build "$build" -j2 --target sluice-cli fake-provider parse-markdown chunk-text llm-openai embed-openai \
    sink-postgres >/dev/null
sluice=$build/sluice
fake=$build/tests/fake-provider/fake-provider

work=$(mktemp -d /tmp/sluice-bench-cluster.XXXXXX)
chmod 711 "$work" # as root, the server runs as postgres and must reach $work/pg
cluster=$work/pg
fake_pid=""
node_pids=()
cleanup() {
    local p
    for p in "${node_pids[@]}"; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    if [[ -n $fake_pid ]]; then kill -TERM "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null; fi
    bash "$pgcluster" stop "$cluster" || true
    rm -rf "$work"
    return 0
}
trap cleanup EXIT

load0=$(cut -d' ' -f1-3 /proc/loadavg)
port=$(PGCLUSTER_FSYNC=on bash "$pgcluster" start "$cluster")
db() { env PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -At \
    "host=127.0.0.1 port=$port user=postgres dbname=postgres" "$@"; }

"$fake" --port 0 --api-key "$key" --embed-dim 384 --latency-dist fixed --llm-latency-ms "$llm_ms" \
    --embed-latency-ms "$embed_ms" >"$work/fake.out" 2>"$work/fake.err" &
fake_pid=$!
fport=""
for ((i = 0; i < 200; i++)); do
    fport=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/fake.out" || true)
    [[ -z $fport ]] || break
    sleep 0.05
done
[[ -n $fport ]] || {
    echo "the fake provider did not start: $(cat "$work/fake.err")" >&2
    exit 1
}
fake_url=http://127.0.0.1:$fport

bash "$here/gen_corpus.sh" "$docs" "$work/corpus" "$doc_bytes" >/dev/null

# write_ini FILE PREFIX: the cluster's configuration, one per node count.
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
size = 1000
overlap = 150

[summarizer]
plugin = llm-openai
base_url = $fake_url/v1
api_key = \${OPENAI_API_KEY}
summaries = document
max_concurrency = $cap

[embedder]
plugin = embed-openai
base_url = $fake_url/v1
api_key = \${OPENAI_API_KEY}
dimension = 384
max_concurrency = $cap

[store]
plugin = sink-postgres
host = 127.0.0.1
port = $port
dbname = postgres
user = postgres
table_prefix = $2
EOF
}
export OPENAI_API_KEY=$key

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# The baseline: one plain `sluice run` (no queue) of the same corpus and
# pipeline into its own tables: what one process does without the queue.
write_ini "$work/plain.ini" plain_
echo "baseline: one sluice run without the queue" >&2
t0=$(now)
rc=0
"$sluice" -c "$work/plain.ini" run "$work/corpus" >"$work/plain.out" 2>"$work/plain.err" || rc=$?
((rc <= 1)) || {
    echo "sluice run (no queue) exited $rc: $(tail -5 "$work/plain.err")" >&2
    exit 1
}
plain_wall=$(calc "$(now) - $t0")
plain_stored=$(db -c "SELECT count(*) FROM plain_documents")
[[ $plain_stored == "$docs" ]] || {
    echo "sluice run (no queue) stored $plain_stored documents, not $docs: $(tail -3 "$work/plain.err")" >&2
    exit 1
}
plain_rate=$(calc "$docs / $plain_wall")

declare -A wall ackwall rate enq split per_lease
for n in $nodes_list; do
    prefix=n${n}_
    ini=$work/cluster-$n.ini
    write_ini "$ini" "$prefix"
    echo "$n node(s): enqueue $docs documents" >&2
    t0=$(now)
    "$sluice" -c "$ini" enqueue "$work/corpus" >"$work/enqueue-$n.out" 2>"$work/enqueue-$n.err" || {
        echo "sluice enqueue failed: $(tail -5 "$work/enqueue-$n.err")" >&2
        exit 1
    }
    enq[$n]=$(calc "$(now) - $t0")
    curl -s -X POST "$fake_url/_reset" >/dev/null
    node_pids=()
    t0=$(now)
    for ((k = 1; k <= n; k++)); do
        "$sluice" -c "$ini" run --queue >"$work/node-$n-$k.out" 2>"$work/node-$n-$k.err" &
        node_pids+=($!)
    done
    # until every node has exited, or LIMIT seconds
    while :; do
        alive=0
        for p in "${node_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        if (($(date +%s) - ${t0%.*} > limit)); then
            echo "$n node(s): still running after $limit s (LIMIT); the last lines of their logs:" >&2
            tail -3 "$work"/node-"$n"-*.err >&2 || true
            exit 1
        fi
        sleep 0.05
    done
    t1=$(now)
    for ((k = 0; k < n; k++)); do
        rc=0
        wait "${node_pids[$k]}" || rc=$?
        ((rc <= 1)) || {
            echo "node $((k + 1)) of $n exited $rc: $(tail -5 "$work/node-$n-$((k + 1)).err")" >&2
            exit 1
        }
    done
    node_pids=()
    wall[$n]=$(calc "$t1 - $t0")
    # exactly once: one row per document, every job done, none left over
    read -r stored distinct ndone open < <(db -F ' ' -c "SELECT (SELECT count(*) FROM ${prefix}documents),
        (SELECT count(DISTINCT uri) FROM ${prefix}documents),
        (SELECT count(*) FROM ${prefix}jobs WHERE state = 'done'),
        (SELECT count(*) FROM ${prefix}jobs WHERE state <> 'done')")
    if [[ $stored != "$docs" || $distinct != "$docs" || $ndone != "$docs" || $open != 0 ]]; then
        echo "$n node(s): $stored documents stored ($distinct distinct), $ndone jobs done, $open not done;" \
            "expected $docs each and 0 (logs in $work are removed on exit: last lines below)" >&2
        tail -3 "$work"/node-"$n"-*.err >&2 || true
        exit 1
    fi
    split[$n]=$(db -c "SELECT string_agg(c::text, '/' ORDER BY c DESC) FROM
        (SELECT count(*) AS c FROM ${prefix}jobs WHERE state = 'done' GROUP BY done_by) x")
    # a node that ran out of work waits (queue_poll) until the others'
    # leases are done too; the rate is to the last ack, the exits are shown
    # beside it. Jobs leased by one statement share their leased_at and
    # node: so many lease statements took a job.
    read -r last_ack leases < <(db -F ' ' -c "SELECT extract(epoch FROM max(done_at)),
        count(DISTINCT (done_by, leased_at)) FROM ${prefix}jobs")
    ackwall[$n]=$(calc "$last_ack - $t0")
    per_lease[$n]=$(calc "$docs / $leases")
    rate[$n]=$(calc "$docs / ${ackwall[$n]}")
    chat=$(curl -s "$fake_url/_stats" | jq '.by_path["/v1/chat/completions"] // 0')
    echo "$n node(s): ${wall[$n]} s, $chat chat requests" >&2
done

first=${nodes_list%% *}
echo
echo "sluice cluster on one PostgreSQL $(db -c 'SHOW server_version' | cut -d' ' -f1) (fsync on), fake provider:"
echo "$docs documents of ~$doc_bytes bytes; chat $llm_ms ms, embeddings $embed_ms ms (fixed);"
echo "max_concurrency = $cap per node on the llm and embedding stages (bound: $cap / ${llm_ms} ms per node)"
echo "$(nproc) cores, load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
printf '| %-5s | %9s | %11s | %9s | %11s | %9s | %12s | %8s | %10s | %-16s |\n' nodes documents "to last ack" \
    "all exit" documents/s "vs $first" "bound docs/s" "of bound" "jobs/lease" "jobs per node"
printf '|-------|----------:|------------:|----------:|------------:|----------:|-------------:|---------:|-----------:|------------------|\n'
printf '| %-5s | %9d | %11s | %8.2fs | %11.2f | %9s | %12.1f | %7.0f%% | %10s | %-16s |\n' "plain" "$docs" "-" \
    "$plain_wall" "$plain_rate" "-" "$(calc "$cap * 1000 / $llm_ms")" \
    "$(calc "100 * $plain_rate * $llm_ms / ($cap * 1000)")" "-" "(run, no queue)"
for n in $nodes_list; do
    bound=$(calc "$n * $cap * 1000 / $llm_ms")
    printf '| %-5d | %9d | %10.2fs | %8.2fs | %11.2f | %8.2fx | %12.1f | %7.0f%% | %10.1f | %-16s |\n' "$n" "$docs" \
        "${ackwall[$n]}" "${wall[$n]}" "${rate[$n]}" "$(calc "${rate[$n]} / ${rate[$first]}")" "$bound" \
        "$(calc "100 * ${rate[$n]} / $bound")" "${per_lease[$n]}" "${split[$n]}"
done
echo
for n in $nodes_list; do echo "enqueue of $docs documents ($n-node run): ${enq[$n]} s"; done

if [[ $qcap == 1 ]]; then
    echo
    echo "The queue's own capacity on the same server (bench/queue_capacity.sh $qcap_args):"
    echo
    # shellcheck disable=SC2086 # the arguments are words
    bash "$here/queue_capacity.sh" --build "$build" --port "$port" $qcap_args
fi
