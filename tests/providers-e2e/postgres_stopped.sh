#!/usr/bin/env bash
# tests/providers-e2e/postgres_stopped.sh - PostgreSQL stopped in the middle
# of a run with providers (issue 17, finding 5):
#
# 1. stopped for several seconds, then started again: every connection is
#    cut, new ones are refused meanwhile, and once the server is back the
#    run ends by itself with every document stored exactly once (no
#    duplicate, none missing, chunk counts right, a vector on every chunk);
# 2. stopped for good: the run ends by itself, exit status 1, each document
#    not stored failing with a retryable reason that names the server
#    (with a short breaker cooldown, to keep the test short);
# 3. stopped for good, then SIGTERM: the run stops within its grace period
#    with the interrupted status, 3.
#
# The hang this guards against: connections idle in CLOSE_WAIT taken for
# live ones, store calls queued beside them for ever, nothing reconnecting,
# and SIGTERM waiting for documents that never end.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"
source "$HERE/../plugins/sink-postgres/pglib.sh"
# both libraries trap EXIT: stop the fakes, then the cluster (which cleans up)
trap 'rc=$?; stop_fakes; (exit $rc); pg_cleanup' EXIT

key="sk-pgstop-$$-$RANDOM"
export OPENAI_API_KEY=$key
start_fake f --api-key "$key" --llm-latency-ms 60 --embed-latency-ms 10
pg_start
ndocs=400
bash "$SRC/bench/gen_corpus.sh" "$ndocs" docs 1500 5 >/dev/null

openai_ini pg.ini "summarizer.base_url = ${URL[f]}/v1" "embedder.base_url = ${URL[f]}/v1" \
    'store.plugin = sink-postgres' 'store.path' 'store.host = 127.0.0.1' "store.port = $PG_PORT" \
    'store.dbname = postgres' 'store.user = postgres'

# start_run PREFIX NAME [ARGS...]: `sluice run --json` into tables PREFIX*
# in the background; PID is its pid, NAME.json and NAME.err its output.
# Two summaries at a time (60 ms each: about 30 documents a second), so
# that the run is surely still going when the server stops. Unpaced, it
# once (CI, two tests at a time) had 253 documents stored when the first
# poll saw them, and all 400 before the stop took effect.
start_run() {
    local p=$1 name=$2
    shift 2
    "$SLUICE" -v -c pg.ini --set "store.table_prefix=$p" --set summarizer.max_concurrency=2 "$@" \
        run --json docs </dev/null >"$name.json" 2>"$name.err" &
    PID=$!
}
# stored_in PREFIX: documents in its table (0 while the server is away).
stored_in() { pg_sql "SELECT count(*) FROM ${1}documents" 2>/dev/null || echo 0; }
# wait_stored PREFIX N: polls until N documents are stored, or the run ended.
wait_stored() {
    local n=0
    for _ in $(seq 1 1200); do
        n=$(stored_in "$1")
        [[ $n -ge $2 ]] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "$n"
}
# wait_run LIMIT_S: waits for the run to end; RC is its status, or 124
# when it was still running after LIMIT_S (a hang: it is killed).
wait_run() {
    local end=$(($(date +%s) + $1))
    while kill -0 "$PID" 2>/dev/null && (($(date +%s) < end)); do sleep 0.2; done
    if kill -0 "$PID" 2>/dev/null; then
        kill -9 "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        RC=124
        return
    fi
    set +e
    wait "$PID"
    RC=$?
    set -e
}
# store_whole PREFIX N WHAT: N documents, each once, chunks right.
store_whole() {
    local p=$1 n=$2 what=$3
    check_eq "$what: documents stored once each" \
        "$(pg_sql "SELECT count(*), count(DISTINCT uri) FROM ${p}documents")" "$n|$n"
    check_eq "$what: chunk_count matches the chunk rows" \
        "$(pg_sql "SELECT count(*) FROM ${p}documents d WHERE chunk_count <>
                   (SELECT count(*) FROM ${p}chunks c WHERE c.doc_id = d.id)")" 0
    check_eq "$what: no chunk twice" \
        "$(pg_sql "SELECT count(*) - count(DISTINCT (doc_id, ordinal)) FROM ${p}chunks")" 0
    check_eq "$what: a vector of 1536 on every chunk" \
        "$(pg_sql "SELECT count(*) FROM ${p}chunks WHERE embedding IS NULL OR dim <> 1536")" 0
    if [[ $n -gt 0 ]]; then
        check_gt "$what: chunks stored" "$(pg_sql "SELECT count(*) FROM ${p}chunks")" "$((n - 1))"
    fi
}

# --- 1. stopped for several seconds, then started again ---
start_run a_ a
before=$(wait_stored a_ 40)
pg_halt
# the run goes on meanwhile: summaries and embeddings, stores refused
sleep 6
running=no
if kill -0 "$PID" 2>/dev/null; then running=yes; fi
pg_resume
wait_run 180
echo "stopped with $before of $ndocs stored; sluice exited $RC"
check_eq "restart: the stop came mid-run" "$((before > 0 && before < ndocs))" 1
check_eq "restart: sluice was still running while the server was away" "$running" yes
check "restart: the run ended by itself (exit $RC; 124: hung)" test "$RC" -ne 124
check_eq "restart: exit status" "$RC" 0
if [[ $RC -ne 0 ]]; then echo "stderr: $(tail -c 3000 a.err)" >&2; fi
# shellcheck disable=SC2034 # lib.sh's json reads OUT
OUT=$(cat a.json)
check_eq "restart: stored" "$(json .documents.stored)" "$ndocs"
check_eq "restart: failed" "$(json .documents.failed)" 0
check_gt "restart: the sink's calls were retried (the stop reached it)" \
    "$(json '[.stages[] | select(.name | startswith("store")) | .retries] | add')" 0
store_whole a_ "$ndocs" "restart"

# --- 2. stopped for good ---
# The store's breaker opens when the server goes; each cooldown it lets
# one call through to probe. Once [sluice] retries probes in a row have
# failed, the calls waiting behind it have had their retries too: they
# fail, naming the server. A short cooldown keeps the test short (the
# default 30 s makes that 2.5 minutes; [sluice] retry_budget still caps it).
start_run b_ b --set store.breaker_cooldown=2s
before=$(wait_stored b_ 40)
pg_halt
wait_run 200
echo "stopped for good with $before of $ndocs stored; sluice exited $RC"
check "never back: the run ended by itself (exit $RC; 124: hung)" test "$RC" -ne 124
check_eq "never back: exit status 1 (some stored, the rest failed)" "$RC" 1
if [[ $RC -ne 1 ]]; then echo "stderr: $(tail -c 3000 b.err)" >&2; fi
OUT=$(cat b.json)
check_eq "never back: every document accounted for" "$(json '.documents.stored + .documents.failed')" "$ndocs"
check_gt "never back: documents failed" "$(json .documents.failed)" 0
check_eq "never back: each failure names the store and the server" \
    "$(jqo --arg p "$PG_PORT" '[.failed[] | select(.reason | contains($p) | not)] | length')" 0
check_eq "never back: each failure is the connection's, not the document's" \
    "$(json '[.failed[] | select((.reason | test("cannot connect|lost the connection|connections to .* keep closing")) | not)] | length')" 0
check_gt "never back: the waiting ones failed once the breaker's probes kept failing" \
    "$(json '[.failed[] | select(.reason | test("probes? failed"))] | length')" 0
check_eq "never back: the failures are in the store stage" \
    "$(json '[.failed[] | select(.stage | startswith("store") | not)] | length')" 0
pg_resume
stored_b=$(stored_in b_)
reported_b=$(json .documents.stored)
# Nothing the report says was stored is missing. The store may hold a few
# more: a COMMIT that reached the server as it shut down ("fast" ends each
# backend, but one that had applied its COMMIT has) is stored while sluice
# saw the connection close first and counted the document as failed and
# retryable, as any client of a database whose connection dies after
# COMMIT was sent must (the outcome is unknown to it; the next run's
# lookup finds the document stored, unchanged, and skips it). There is at
# most one such COMMIT on each of the store's connections (pool_size).
pool_size=$(sl_ok plugins --json >/dev/null; jqo '[plugins[] | select(.name == "sink-postgres") | .options[]
    | select(.name == "pool_size") | .default] | first // empty')
check "never back: what the report says was stored is in the store ($stored_b stored, $reported_b reported)" \
    test "$stored_b" -ge "$reported_b"
check "never back: at most one COMMIT in doubt a connection ($stored_b stored, $reported_b reported, pool_size ${pool_size:-?})" \
    test "$stored_b" -le "$((reported_b + ${pool_size:-0}))"
store_whole b_ "$stored_b" "never back"

# --- 3. stopped for good, then SIGTERM ---
start_run c_ c
before=$(wait_stored c_ 40)
pg_halt
# SIGTERM once the run has seen the server go
for _ in $(seq 1 600); do
    grep -q "lost the connection\|closed an idle connection\|cannot connect" c.err && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
running=no
if kill -0 "$PID" 2>/dev/null; then running=yes; fi
kill -TERM "$PID" 2>/dev/null || true
wait_run 90
echo "SIGTERM with the server away, $before stored before; sluice exited $RC"
check_eq "SIGTERM: sluice was running when it came" "$running" yes
check "SIGTERM: the run stopped (exit $RC; 124: hung)" test "$RC" -ne 124
check_eq "SIGTERM: exit status 3 (interrupted)" "$RC" 3
if [[ $RC -ne 3 ]]; then echo "stderr: $(tail -c 3000 c.err)" >&2; fi
pg_resume
stored_c=$(stored_in c_)
store_whole c_ "$stored_c" "SIGTERM"

# And the next run completes what the stopped ones left.
sl -c pg.ini --set store.table_prefix=b_ run --json docs
check_eq "rerun after the stop for good: exit status" "$RC" 0
store_whole b_ "$ndocs" "rerun after the stop for good"
finish
