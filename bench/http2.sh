#!/usr/bin/env bash
# bench/http2.sh - the same provider workload over HTTP/2, over HTTP/1.1
# with TLS, and over plain HTTP/1.1: connections, wall time and CPU.
#
#   bench/http2.sh [BUILD_DIR]            (default: build)
#   SIZES="100 1000" bench/http2.sh build-bench
#
# The workload is bench/scale.sh's: documents of about 40 KB (70 chunks),
# parse-markdown, chunk-text (1000/200), llm-openai (document summaries,
# 200 ms), embed-openai (384 dimensions, 50 ms), sink-sqlite. The fake
# provider (tests/fake-provider) answers; for the TLS rows the test's TLS
# front (tests/providers-e2e/tls_front.mjs, Node) stands before it with a
# certificate made here, offering h2 or HTTP/1.1 only. The front is a Node
# process on the same cores: its CPU is in neither sluice column, but it
# slows both TLS rows alike. For each size and transport it prints wall
# time, documents/s, sluice's CPU (user + system), its loop thread's busy
# share, calls, connections opened (the report's), answers over HTTP/2.
# Needs node, openssl, jq, curl and /usr/bin/time. Not run in CI.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-$here/../build}")
sluice=$build/sluice
fake=$build/tests/fake-provider/fake-provider
sizes=${SIZES:-100 1000}
work=${WORK:-/tmp/sluice-bench-http2}
for tool in node openssl jq curl /usr/bin/time; do
    command -v "$tool" >/dev/null || {
        echo "bench/http2.sh needs $tool (scripts/deps.sh installs it)" >&2
        exit 2
    }
done
[[ -x $sluice && -x $fake ]] || {
    echo "no sluice or fake provider in $build: build it with the tests first" >&2
    exit 2
}
mkdir -p "$work"
cd "$work"
ulimit -n "$(ulimit -Hn)"

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
# port_of FILE: the port a server printed as "listening on 127.0.0.1:PORT"
port_of() {
    local i p=''
    for ((i = 0; i < 200; i++)); do
        p=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$1" 2>/dev/null || true)
        [[ -n $p ]] && break
        sleep 0.05
    done
    [[ -n $p ]] || {
        echo "a server did not start: $(cat "$1")" >&2
        exit 1
    }
    echo "$p"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout front.key -out front.pem \
    -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
key=sk-bench-http2
"$fake" --port 0 --api-key "$key" --latency-dist fixed --llm-latency-ms 200 --embed-latency-ms 50 \
    --embed-dim 384 >fake.out 2>fake.err &
pids+=($!)
fp=$(port_of fake.out)
node "$here/../tests/providers-e2e/tls_front.mjs" --backend "http://127.0.0.1:$fp" --cert front.pem \
    --key front.key >h2.out 2>&1 &
pids+=($!)
node "$here/../tests/providers-e2e/tls_front.mjs" --backend "http://127.0.0.1:$fp" --cert front.pem \
    --key front.key --http1-only >h1.out 2>&1 &
pids+=($!)
declare -A base=([plain]="http://127.0.0.1:$fp" [h2]="https://127.0.0.1:$(port_of h2.out)"
    [h1]="https://127.0.0.1:$(port_of h1.out)")
declare -A label=([plain]="HTTP/1.1, plain" [h1]="HTTP/1.1, TLS" [h2]="HTTP/2, TLS")

cat >run.ini <<EOF
[sluice]
include = *.md
memory_budget = 256M

[route.text]
media = text/markdown
stages = markdown chunker summarizer embedder
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
api_key = $key
ca_file = $work/front.pem
summaries = document

[embedder]
plugin = embed-openai
base_url = \${BENCH_URL}/v1
api_key = $key
ca_file = $work/front.pem
dimension = 384
shorten = true

[store]
plugin = sink-sqlite
path = \${CWD}/.sluice/store.db
EOF

rows=()
for n in $sizes; do
    corpus=$work/corpus-$n
    bash "$here/gen_corpus.sh" --once "$n" "$corpus" 40000 1 >/dev/null
    for t in plain h1 h2; do
        run=$work/run-$n-$t
        rm -rf "$run" && mkdir -p "$run"
        echo "$n documents, ${label[$t]}" >&2
        (cd "$run" && BENCH_URL=${base[$t]} /usr/bin/time -v -o time.txt "$sluice" -c "$work/run.ini" run --json \
            "$corpus" >report.json 2>stderr.txt) || {
            echo "sluice failed; see $run/stderr.txt" >&2
            exit 1
        }
        r=$run/report.json
        cpu=$(awk -F': *' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$run/time.txt")
        rows+=("$(jq -r --arg l "${label[$t]}" --arg cpu "$cpu" '
            [.providers[].requests] as $q | [.providers[].connections] as $c | [.providers[].http2_requests] as $h |
            "| \(.documents.stored) | \($l) | \(.wall_s * 100 | round / 100) | \(.documents.stored / .wall_s | round) | \($cpu) | \(.binding.loop_busy * 100 | round)% | \($q | add) | \($c | add) | \($h | add) |"' "$r")")
    done
done

echo
echo "$("$sluice" --version | head -1), $(curl --version | head -1 | cut -d' ' -f1-2), $(nproc) cores; fake provider 200 ms chat, 50 ms embeddings"
echo
echo "| docs | transport | wall s | docs/s | sluice CPU s | loop busy | calls | connections | HTTP/2 answers |"
echo "|-----:|:----------|-------:|-------:|-------------:|----------:|------:|------------:|---------------:|"
printf '%s\n' "${rows[@]}"
echo
echo "TLS rows go through tls_front.mjs (Node, on the same cores); connections and HTTP/2 answers are the report's."
