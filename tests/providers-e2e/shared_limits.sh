#!/usr/bin/env bash
# tests/providers-e2e/shared_limits.sh - two sluice processes sharing one
# provider account's `rpm = 600` (issue 15, item 4) together never send it
# more than 600 requests in any 60 s. Each process alone could go far
# faster: its own rpm window allows 600 at once and the fake answers in
# 10 ms. They store into one PostgreSQL database under two table prefixes
# (one writer per store), and draw from one bucket: the provider's limits
# are the account's, not a store's.
#
# The fake counts every request it accepts in a sliding 60 s window and
# limits nothing (--rpm 1000000000 --rpm-window: peak_minute is the most
# requests it saw in any 60 s). The run lasts over a minute: 800 summaries
# at under 600 a minute. A control run without shared_limits sends more
# than 600 in a minute, so the check can fail.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"
source "$HERE/limits_ini.sh"
source "$HERE/../plugins/sink-postgres/pglib.sh"
trap 'rc=$?; stop_fakes; (exit $rc); pg_cleanup' EXIT

key="sk-shared-$$-$RANDOM"
export OPENAI_API_KEY=$key
pg_start
per_node=400
for n in a b; do
    mkdir -p "docs-$n"
    for i in $(seq 1 $per_node); do
        printf '# Note %s %d\n\nThe %d-th note of node %s on shared limits.\n' "$n" "$i" "$i" "$n" >"docs-$n/note-$i.md"
    done
done

# node.ini: summaries by llm-openai (rpm 600, shared), local embeddings
limits_ini node.ini "rpm = 600" "shared_limits = true" -- "plugin = sink-postgres" "host = 127.0.0.1" \
    "port = $PG_PORT" "dbname = postgres" "user = postgres" "breaker_cooldown = 1s"

start_fake lim --api-key "$key" --rpm 1000000000 --rpm-window --llm-latency-ms 10

# node NAME DOCS FAKE [--set ...]: a sluice process in the background
# storing under table prefix NAME_, its pid in PID[NAME]
declare -A PID=()
node() {
    local n=$1 d=$2 f=$3
    shift 3
    "$SLUICE" -v -c node.ini --set "summarizer.base_url=${URL[$f]}/v1" --set "store.table_prefix=${n}_" "$@" \
        run --json "$d" </dev/null >"$n.json" 2>"$n.err" &
    PID[$n]=$!
}
# wait_nodes LIMIT_S: waits for every node; one still running after LIMIT_S is killed (a hang).
wait_nodes() {
    local n end=$(($(date +%s) + $1))
    for n in "${!PID[@]}"; do
        while kill -0 "${PID[$n]}" 2>/dev/null && (($(date +%s) < end)); do sleep 0.5; done
        if kill -0 "${PID[$n]}" 2>/dev/null; then
            fail "node $n still running after $1 s: killed"
            kill -9 "${PID[$n]}" 2>/dev/null || true
        fi
        wait "${PID[$n]}"
        RCS[$n]=$?
    done
}
declare -A RCS=()
requests() { jq -r '.providers[] | select(.name == "summarizer") | .requests' "$1.json" 2>/dev/null || echo 0; }

t0=$(date +%s)
node a docs-a lim
node b docs-b lim
wait_nodes 400
took=$(($(date +%s) - t0))
echo "two shared nodes: done in $took s; a sent $(requests a), b sent $(requests b)"
for n in a b; do
    check_eq "node $n: exit status" "${RCS[$n]}" 0
    [[ ${RCS[$n]} == 0 ]] || echo "node $n stderr: $(tail -c 2000 "$n.err")" >&2
    check_eq "node $n: every document stored" "$(pg_sql "SELECT count(*) FROM ${n}_documents")" "$per_node"
    check_gt "node $n made requests (at least a tenth of them)" "$(requests $n)" $((per_node * 2 / 10 - 1))
    check_contains "node $n logs where its rpm comes from" "$(cat "$n.err")" "rpm = 600 shared through \[store\]"
done
total=$(fake_stats lim '.by_path["/v1/chat/completions"] // 0')
peak=$(fake_stats lim .peak_minute)
echo "the fake saw $total summary requests, at most $peak in any 60 s"
check_eq "the provider saw every summary once" "$total" $((2 * per_node))
check "together at most 600 requests in any 60 s (peak $peak)" test "$peak" -le 600
check_gt "together over half the limit in the busiest minute (peak $peak): the bucket starves nobody" "$peak" 300
check "the run spanned more than a minute ($took s)" test "$took" -gt 60
check_eq "the provider answered no 429" "$(fake_stats lim '.status["429"] // 0')" 0

# the bucket: one row for the account, shared by both table prefixes, named without the key
check_eq "one bucket row, in the schema without a table prefix" \
    "$(pg_sql "SELECT count(*) FROM sluice_rate_limits")" 1
row=$(pg_sql "SELECT name, burst, rate FROM sluice_rate_limits")
echo "bucket: $row"
check_contains "the bucket is named by plugin, url and model" "$row" "^llm-openai\|http://127.0.0.1:[0-9]*/v1\|"
check_contains "the bucket's name has a hash of the key" "$row" "\|key:[0-9a-f]{16}/rpm\|"
check_lacks "the bucket's name is not the key" "$row" "$key"
check_lacks "the key is in no log or report" "$(cat a.err b.err a.json b.json)" "$key"

# control: the same two nodes without shared_limits send more than the limit in a minute
start_fake ctl --api-key "$key" --rpm 1000000000 --rpm-window --llm-latency-ms 10
PID=()
node ca docs-a ctl --set summarizer.shared_limits=false
node cb docs-b ctl --set summarizer.shared_limits=false
wait_nodes 400
check_eq "control: both nodes exit 0" "${RCS[ca]} ${RCS[cb]}" "0 0"
peak_ctl=$(fake_stats ctl .peak_minute)
echo "control without shared_limits: at most $peak_ctl in any 60 s"
check_gt "control: without the shared bucket the pair exceeds 600 in a minute" "$peak_ctl" 600

finish
