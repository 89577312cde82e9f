#!/usr/bin/env bash
# bench/shared_limits.sh - how close N sluice processes sharing one provider
# account's rpm (`shared_limits = true`, issue 15 item 4) come to the limit,
# and by how much they overshoot it.
#
#   bench/shared_limits.sh [--build DIR] [--limits "600 1200"] [--nodes "2 4"]
#                          [--seconds 90] [--control]
#
# For each limit and node count: a fresh fake provider (tests/fake-provider:
# it limits nothing, answers a summary in 20 ms, and counts the requests it
# accepts in a sliding 60 s window: --rpm 1000000000 --rpm-window), one
# PostgreSQL cluster (pgcluster.sh, shared by all rows; the bucket table is
# emptied between rows), and N `sluice run` processes, each storing under
# its own table prefix and summarising one Markdown file per request with
# llm-openai, `rpm = LIMIT`, `shared_limits = true`. Each process has
# enough documents to send the whole limit alone, so the bucket is what
# binds. They run --seconds (over a minute, so that windows fill) and are
# then stopped with SIGTERM: each finishes the documents it holds, still
# drawing from the bucket, so a row lasts longer than --seconds. Printed
# per row:
#   max/60s      the most requests the provider saw in any 60 s
#   overshoot    how far max/60s went past the limit (0 when under)
#   share        max/60s as a share of the limit: what the bucket let through
#   mean/min     all requests / time until the last process ended, per
#                minute (the first minute includes the bucket's burst)
#   per node     the requests of the least and the most served process
#   updates/s    UPDATEs of the bucket rows per second (pg_stat): the row's heat
# --control adds, per node count, a row without shared_limits (each process
# only under its own rpm window): what the account would have seen.
# Timings are for people, never for assertions.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
limits="600 1200" nodes_list="2 4" seconds=90 control=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --limits) limits=$2; shift 2 ;;
    --nodes) nodes_list=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --control) control=1; shift ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "bench/shared_limits.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
build=$(cd "$build" && pwd)
sluice=$build/sluice fake=$build/tests/fake-provider/fake-provider
for f in "$sluice" "$fake"; do
    [[ -x $f ]] || { echo "bench/shared_limits.sh: $f is not built (cmake --build $build)" >&2; exit 2; }
done
pgc=$here/../tests/plugins/sink-postgres/pgcluster.sh

work=$(mktemp -d /tmp/slbench.XXXXXX)
pgdir=$(mktemp -u /tmp/slpgb.XXXXXX)
fake_pid=
declare -a pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    [[ -n $fake_pid ]] && kill "$fake_pid" 2>/dev/null || true
    bash "$pgc" stop "$pgdir" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
port=$(bash "$pgc" start "$pgdir")
psql_() { bash "$pgc" psql "$pgdir" -At -c "$1"; }
export OPENAI_API_KEY=sk-bench-shared

# one corpus per process, big enough for the whole limit over the run
max_limit=0
for l in $limits; do ((l > max_limit)) && max_limit=$l; done
max_nodes=0
for n in $nodes_list; do ((n > max_nodes)) && max_nodes=$n; done
per_node=$((max_limit * (seconds + 60) / 60))
for ((k = 1; k <= max_nodes; k++)); do
    mkdir -p "$work/docs-$k"
    for ((i = 1; i <= per_node; i++)); do printf '# N%d %d\n\nnote %d of node %d\n' "$k" "$i" "$i" "$k"; done |
        awk -v d="$work/docs-$k" '/^# /{f=d "/n" NR ".md"} {print > f}'
done

source "$here/../tests/providers-e2e/limits_ini.sh"
limits_ini "$work/node.ini" -- "plugin = sink-postgres" "host = 127.0.0.1" "port = $port" "dbname = postgres" \
    "user = postgres"

start_fake() {
    "$fake" --port 0 --rpm 1000000000 --rpm-window --llm-latency-ms 20 >"$work/fake.out" 2>/dev/null &
    fake_pid=$!
    local p=
    for _ in $(seq 1 100); do
        p=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/fake.out")
        [[ -n $p ]] && break
        sleep 0.05
    done
    furl=http://127.0.0.1:$p
}

row=0
one() { # LIMIT NODES SHARED
    local limit=$1 n=$2 shared=$3 k
    row=$((row + 1))
    start_fake
    psql_ "DROP TABLE IF EXISTS sluice_rate_limits" >/dev/null 2>&1
    pids=()
    local t0
    t0=$(date +%s.%N)
    for ((k = 1; k <= n; k++)); do
        "$sluice" -q -c "$work/node.ini" --set "summarizer.base_url=$furl/v1" --set "summarizer.rpm=$limit" \
            --set "summarizer.shared_limits=$shared" --set "store.table_prefix=r${row}n${k}_" \
            run --json "$work/docs-$k" </dev/null >"$work/r$row-$k.json" 2>"$work/r$row-$k.err" &
        pids+=($!)
    done
    sleep "$seconds"
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    local t1
    t1=$(date +%s.%N)
    local stats
    stats=$(curl -sf "$furl/_stats")
    kill "$fake_pid" 2>/dev/null || true
    wait "$fake_pid" 2>/dev/null || true
    fake_pid=
    local peak total lo=999999999 hi=0 r upd
    peak=$(jq .peak_minute <<<"$stats")
    total=$(jq '.by_path["/v1/chat/completions"] // 0' <<<"$stats")
    for ((k = 1; k <= n; k++)); do
        r=$(jq '[.providers[] | select(.name == "summarizer") | .requests] | add // 0' "$work/r$row-$k.json" 2>/dev/null || echo 0)
        ((r < lo)) && lo=$r
        ((r > hi)) && hi=$r
    done
    sleep 1 # the servers' sessions flush their statistics as they end
    upd=$(psql_ "SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables WHERE relname = 'sluice_rate_limits'" 2>/dev/null || echo 0)
    [[ -n $upd ]] || upd=0
    awk -v l="$limit" -v n="$n" -v s="$shared" -v p="$peak" -v t="$total" -v t0="$t0" -v t1="$t1" \
        -v lo="$lo" -v hi="$hi" -v u="$upd" 'BEGIN {
        d = t1 - t0; over = p > l ? (p - l) * 100 / l : 0
        printf "| %5d | %5d | %-6s | %7d | %8.1f %% | %5.1f %% | %8.0f | %5d-%-5d | %9.1f |\n",
            l, n, s == "true" ? "shared" : "local", p, over, p * 100 / l, t * 60 / d, lo, hi, u / d }'
}

echo "sluice processes sharing one fake provider's rpm; ${seconds} s per row, 20 ms answers"
echo
echo "| limit | nodes | bucket | max/60s | overshoot | share | mean/min | per node    | updates/s |"
echo "|------:|------:|--------|--------:|----------:|------:|---------:|-------------|----------:|"
for limit in $limits; do
    for n in $nodes_list; do
        one "$limit" "$n" true
        if ((control)); then one "$limit" "$n" false; fi
    done
done
