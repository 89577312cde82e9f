#!/usr/bin/env bash
# bench/soak.sh - `sluice serve` for a while with files arriving all the
# time and a provider that fails some calls: does memory stay flat, does
# the store keep up with what arrives, and how fast does /metrics answer?
#
#   SOAK_S=600 RATE=5 SAMPLE_S=30 FAULT=0.05 bench/soak.sh [BUILD_DIR]
#
# The fake provider (tests/fake-provider) answers embeddings and summaries
# with 20-80 ms of latency and a 500 on FAULT of the calls (sluice retries
# them). serve watches WORK/in (default /tmp/sluice-bench/soak), where a
# generator moves RATE Markdown files a second (made beforehand by
# bench/gen_corpus.sh, ~3 KB each; a rename, as a mail or sync tool
# delivers). Every SAMPLE_S seconds a row: elapsed time, serve's resident
# size, files arrived, documents in the store, failed (/metrics), provider
# calls and the 500s among them, and /metrics latency (median and worst of
# 5 requests). After SOAK_S seconds the files stop, the store is given up
# to 120 s to catch up, serve gets SIGTERM, and a last row and a summary
# are printed. Timings are for people: nothing asserts on them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-$here/../build}")
soak_s=${SOAK_S:-600}
rate=${RATE:-5}
sample_s=${SAMPLE_S:-30}
fault=${FAULT:-0.05}
work=${WORK:-/tmp/sluice-bench/soak}
sluice=$build/sluice
fake=$build/tests/fake-provider/fake-provider
for x in "$sluice" "$fake"; do
    [[ -x $x ]] || {
        echo "soak: $x is missing (build the project with its tests first)" >&2
        exit 2
    }
done
for tool in curl sqlite3 awk; do command -v "$tool" >/dev/null || {
    echo "soak: $tool is not installed" >&2
    exit 2
}; done

rm -rf "$work"
mkdir -p "$work/in" "$work/pool"
cd "$work"
total=$((soak_s * rate + rate))
bash "$here/gen_corpus.sh" "$total" pool 3000 7 >/dev/null
mapfile -t files < <(find pool -name '*.md' | sort)

# the fake and the pipeline are the provider tests' (tests/providers-e2e/fake.sh)
T=$work
source "$here/../tests/providers-e2e/fake.sh" "$sluice" "$here/.." "$fake"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    stop_fakes
    wait 2>/dev/null || true
}
trap cleanup EXIT

start_fake soak --embed-dim 256 --latency-ms 50 --latency-jitter-ms 30 --fault-5xx "$fault" --seed 7
fake_url=${URL[soak]}

export OPENAI_API_KEY=sk-soak
openai_ini soak.ini 'watch = in' 'watch_debounce = 300ms' 'rescan = 2m' 'report_interval = 60s' \
    'listen = 127.0.0.1:0' "summarizer.base_url = $fake_url/v1" "embedder.base_url = $fake_url/v1" \
    'embedder.dimension = 256' "store.path = $work/store.db"

"$sluice" -c soak.ini serve </dev/null >serve.out 2>serve.err &
spid=$!
pids+=("$spid")
for ((i = 0; i < 200; i++)); do
    addr=$(sed -n 's|.*serving http://\([^/]*\)/.*|\1|p' serve.err | head -1)
    [[ -n $addr ]] && break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.05
done
[[ -n ${addr:-} ]] || {
    echo "soak: serve did not start: $(cat serve.err)" >&2
    exit 1
}

# the arrivals: RATE files a second, moved in one by one
(
    n=0
    t0=$(date +%s%N)
    while ((n < ${#files[@]})); do
        f=${files[$n]}
        d=in/$(basename "$(dirname "$f")")
        mkdir -p "$d"
        mv "$f" "$d/"
        n=$((n + 1))
        echo "$n" >arrived.tmp && mv arrived.tmp arrived.count # never read half-written
        # keep to the schedule: file n is due at n / RATE seconds
        due=$((t0 + n * 1000000000 / rate))
        now=$(date +%s%N)
        ((due > now)) && sleep "$(awk -v ns=$((due - now)) 'BEGIN { printf "%.3f", ns / 1e9 }')"
        [[ -f stop.arrivals ]] && break
    done
) &
gen=$!
pids+=("$gen")

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$spid/status" 2>/dev/null || echo "-"; }
stored() { sqlite3 -batch -noheader "$work/store.db" 'SELECT count(*) FROM documents;' 2>/dev/null || echo 0; }
metric() { curl -sf --max-time 10 "http://$addr/metrics" | sed -n "s/^$1 //p"; }
# median and worst of 5 /metrics requests, in ms
metrics_latency() {
    local i t=()
    for i in 1 2 3 4 5; do
        t+=("$(curl -s -o /dev/null --max-time 10 -w '%{time_total}' "http://$addr/metrics")")
    done
    printf '%s\n' "${t[@]}" | sort -n | awk '{ v[NR] = $1 * 1000 } END { printf "%.1f %.1f", v[3], v[5] }'
}
fake_stat() { curl -sf --max-time 10 "$fake_url/_stats" | sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" | head -1; }
fake_500() { curl -sf --max-time 10 "$fake_url/_stats" | sed -n 's/.*"500": *\([0-9]*\).*/\1/p' | head -1; }

printf '%8s %8s %8s %8s %8s %10s %8s %12s %12s\n' elapsed rss_MB arrived stored failed calls 500s metrics_p50 metrics_max
row() {
    local lat
    lat=$(metrics_latency)
    printf '%7ss %8s %8s %8s %8s %10s %8s %10sms %10sms\n' "$1" "$(rss_mb)" "$(cat arrived.count 2>/dev/null || echo 0)" \
        "$(stored)" "$(metric 'sluice_documents_total{outcome="failed"}' || echo -)" "$(fake_stat requests)" \
        "$(fake_500 || echo 0)" ${lat}
}

t0=$(date +%s)
next=$sample_s
while (($(date +%s) - t0 < soak_s)); do
    sleep 1
    if (($(date +%s) - t0 >= next)); then
        row "$next"
        next=$((next + sample_s))
    fi
    kill -0 "$spid" 2>/dev/null || {
        echo "soak: serve died: $(tail -5 serve.err)" >&2
        exit 1
    }
done
touch stop.arrivals
wait "$gen" 2>/dev/null || true
arrived=$(cat arrived.count)
# let the store catch up: stored + failed reaches what arrived
t_end=$(($(date +%s) + 120))
while (($(date +%s) < t_end)); do
    f=$(metric 'sluice_documents_total{outcome="failed"}' || echo 0)
    (($(stored) + ${f:-0} >= arrived)) && break
    sleep 1
done
row "$(($(date +%s) - t0))"
kill -TERM "$spid"
set +e
wait "$spid"
rc=$?
set -e
echo
echo "arrived $arrived files in ${soak_s} s at $rate/s; stored $(stored); serve exited $rc after SIGTERM"
grep -E "serve: up " serve.err | tail -1 | sed 's/^sluice: info: serve: /last counters: /'
