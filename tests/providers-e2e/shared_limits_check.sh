#!/usr/bin/env bash
# tests/providers-e2e/shared_limits_check.sh - what `shared_limits` refuses
# and what it does when the bucket is not there (issue 15, item 4):
#
# 1. `sluice check` and `run` refuse it, exit 2, with a message naming the
#    stage and what to change: on a route whose sink keeps no bucket
#    (sink-sqlite has no limit_grant), without rpm or tpm, on a stage that
#    is not a provider, with a limit_name of bad characters or too long, and
#    a limit_name without shared_limits;
# 2. with sink-postgres, `check` accepts it, and a run with limit_name,
#    rpm and tpm keeps two rows named by it (never by the key);
# 3. a bucket table of another shape (the grant fails for good): the
#    provider is passed by and its documents fail, saying why; no hang;
# 4. PostgreSQL stopped in the middle of a run: the process paces alone
#    and says so, goes back to the bucket when the server is back, and
#    every document is stored once.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"
source "$HERE/limits_ini.sh"
source "$HERE/../plugins/sink-postgres/pglib.sh"
trap 'rc=$?; stop_fakes; (exit $rc); pg_cleanup' EXIT

key="sk-slcheck-$$-$RANDOM"
export OPENAI_API_KEY=$key
start_fake f --api-key "$key" --llm-latency-ms 20
pg_start

shared=("base_url = ${URL[f]}/v1" "rpm = 600" "shared_limits = true" --)
limits_ini sqlite.ini "${shared[@]}" "plugin = sink-sqlite" 'path = ${CWD}/store.db'
limits_ini pg.ini "${shared[@]}" "plugin = sink-postgres" "host = 127.0.0.1" "port = $PG_PORT" "dbname = postgres" "user = postgres" \
    "breaker_cooldown = 1s"
mkdir docs
for i in $(seq 1 20); do printf '# Doc %d\n\nSome text of document %d.\n' "$i" "$i" >"docs/d$i.md"; done

# refused CASE PATTERN ARGS...: check and run both exit 2 saying PATTERN
refused() {
    local what=$1 pattern=$2
    shift 2
    sl "$@" check
    check_eq "$what: check exits 2" "$RC" 2
    check_contains "$what: check says why" "$ERR" "$pattern"
    sl "$@" run docs
    check_eq "$what: run exits 2" "$RC" 2
    check_contains "$what: run says why" "$ERR" "$pattern"
}

refused "a sink without limit_grant" \
    "\[summarizer\] shared_limits: the shared bucket is kept in the route's store, and \[store\] \(plugin sink-sqlite, used by \[route.text\]\) cannot keep one \(it has no limit_grant\); store in sink-postgres, or remove shared_limits" \
    -c sqlite.ini
check "nothing was stored by the refused run" test ! -e store.db
refused "no rpm or tpm" "\[summarizer\] shared_limits: set rpm or tpm" -c pg.ini --set summarizer.rpm=0
refused "not a provider" "\[chunker\] shared_limits: only providers .* plugin chunk-text is not one" \
    -c pg.ini --set chunker.shared_limits=true
refused "a limit_name with a space" "\[summarizer\] limit_name: byte 5 \(0x20\) is not allowed" \
    -c pg.ini --set "summarizer.limit_name=acct one"
refused "a limit_name too long" "\[summarizer\] limit_name: 121 characters; at most 120" \
    -c pg.ini --set "summarizer.limit_name=$(printf 'a%.0s' $(seq 1 121))"
refused "limit_name without shared_limits" \
    "\[summarizer\] limit_name: names a shared bucket, but shared_limits is off" \
    -c pg.ini --set summarizer.shared_limits=false --set summarizer.limit_name=acct
check_eq "no bucket table was made by a refused command" \
    "$(pg_sql "SELECT count(*) FROM pg_tables WHERE tablename = 'sluice_rate_limits'")" 0

# 2. accepted with sink-postgres; limit_name names the rows
sl -c pg.ini check
check_eq "sink-postgres: check accepts shared_limits" "$RC" 0
sl -c pg.ini --set summarizer.limit_name=team-a.gpt:1 --set summarizer.tpm=100000 run --json docs
check_eq "rpm and tpm shared under limit_name: exit status" "$RC" 0
check_eq "rpm and tpm shared: every document stored" "$(json .documents.stored)" 20
check_eq "two buckets named by limit_name" \
    "$(pg_sql "SELECT string_agg(name, ' ' ORDER BY name) FROM sluice_rate_limits")" "team-a.gpt:1/rpm team-a.gpt:1/tpm"
check_eq "the tpm bucket: a burst of 2 s of 100000" \
    "$(pg_sql "SELECT burst FROM sluice_rate_limits WHERE name = 'team-a.gpt:1/tpm'")" 3333
check_lacks "the key is in no row" "$(pg_sql "SELECT * FROM sluice_rate_limits")" "$key"

# 3. a table of another shape: the grant fails for good
pg_sql "DROP TABLE sluice_rate_limits" "CREATE TABLE sluice_rate_limits (name text PRIMARY KEY)" >/dev/null
for i in 21 22 23; do printf '# Doc %d\n\nMore text %d.\n' "$i" "$i" >"docs/d$i.md"; done
sl -c pg.ini --set store.table_prefix=broken_ run --json docs
check_eq "a bucket that refuses: exit status 1 (documents failed)" "$RC" 1
check_eq "a bucket that refuses: every document failed" "$(json .documents.failed)" 23
check_contains "a bucket that refuses: the reason names the bucket and the server's error" "$ERR" \
    "rpm: the shared bucket in \[store\] refused a grant: .*column .* does not exist"
check_eq "a bucket that refuses: no summary was asked" "$(fake_stats f '.by_path["/v1/chat/completions"] // 0')" 20

# 4. PostgreSQL stopped mid-run: a local share, then back to the bucket
pg_sql "DROP TABLE sluice_rate_limits" >/dev/null
fake_reset f
bash "$SRC/bench/gen_corpus.sh" 300 many 400 3 >/dev/null
"$SLUICE" -v -c pg.ini --set store.table_prefix=halt_ run --json many </dev/null >halt.json 2>halt.err &
pid=$!
until [[ $(fake_stats f '.by_path["/v1/chat/completions"] // 0') -ge 30 ]] || ! kill -0 $pid 2>/dev/null; do
    sleep 0.2
done
pg_halt
end=$(($(date +%s) + 60))
until grep -q "cannot be reached" halt.err || (($(date +%s) > end)) || ! kill -0 $pid 2>/dev/null; do sleep 0.2; done
sent_down=$(fake_stats f '.by_path["/v1/chat/completions"] // 0')
sleep 2
pg_resume
end=$(($(date +%s) + 300))
while kill -0 $pid 2>/dev/null && (($(date +%s) < end)); do sleep 0.5; done
kill -9 $pid 2>/dev/null || true
wait $pid
rc=$?
check_eq "PostgreSQL stopped mid-run: exit status" "$rc" 0
[[ $rc == 0 ]] || echo "stderr: $(tail -c 3000 halt.err)" >&2
check_contains "the server away: the process says it paces alone" "$(cat halt.err)" \
    "rpm: the shared bucket in \[store\] cannot be reached .*; pacing alone at [0-9]+ per minute"
check_contains "the server back: the process draws from the bucket again" "$(cat halt.err)" \
    "rpm: \[store\] answers the shared bucket again"
check_eq "PostgreSQL stopped mid-run: every document stored once" \
    "$(pg_sql "SELECT count(*), count(DISTINCT uri) FROM halt_documents")" "300|300"
echo "summaries asked before the halt was noticed: $sent_down; in all: $(fake_stats f '.by_path["/v1/chat/completions"] // 0')"

finish
