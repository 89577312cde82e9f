#!/usr/bin/env bash
# tests/plugins/sink-postgres/concurrent_prune.sh - `sluice run --prune docs`
# started while `sluice run docs` runs on the same PostgreSQL store (issue
# 17, finding 4: 61 and 188 of 191 documents that still existed were
# deleted, one pruning run reporting "stored 191, pruned 130").
#
# One writer per store: the second run is refused with exit 4 and a message
# naming the holder (PID, host, start time), deletes nothing, and the store
# ends complete. With --wait it waits, runs once the holder is done, and
# prunes nothing that exists. The holder is paused (SIGSTOP) while it holds
# the store, so "while it runs" does not depend on timing.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

pg_start
ndocs=1500
bash "$SRC/bench/gen_corpus.sh" "$ndocs" docs 2000 13 >/dev/null
write_conf pg.ini "$PG_PORT"

# P: the table prefix of the store in use
P=sluice_
stored() { pg_sql "SELECT count(*) FROM ${P}documents" 2>/dev/null || echo 0; }
holder_pid=
holder_started() {
    [[ $(pg_sql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted
                   AND a.application_name LIKE 'sluice writer pid $holder_pid on %'") == 1 ]] &&
        [[ $(stored) -ge 20 ]]
}
start_holder() {
    "$SLUICE" -c pg.ini --set "store.table_prefix=$P" run --json docs </dev/null >holder.json 2>holder.err &
    holder_pid=$!
    for _ in $(seq 1 1200); do
        holder_started && break
        kill -0 "$holder_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -STOP "$holder_pid" 2>/dev/null || true
    check "the holder is mid-run, holding the store" holder_started
}
end_holder() {
    kill -CONT "$holder_pid" 2>/dev/null || true
    set +e
    wait "$holder_pid"
    HOLDER_RC=$?
    set -e
}
complete() {
    check_eq "$1: every file once" \
        "$(pg_sql "SELECT count(*), count(DISTINCT uri) FROM ${P}documents")" "$ndocs|$ndocs"
    check_eq "$1: chunk counts" \
        "$(pg_sql "SELECT count(*) FROM ${P}documents d WHERE chunk_count <>
                   (SELECT count(*) FROM ${P}chunks c WHERE c.doc_id = d.id)")" 0
}

# --- without --wait: refused, naming the holder; nothing deleted ---
start_holder
stored_then=$(stored)
sl -c pg.ini run --json --prune docs
check_eq "prune while a run holds the store: exit status 4" "$RC" 4
host=$(hostname)
check_contains "the message names the holder's PID, host and start time" "$ERR" \
    "in use by another sluice process \(PID $holder_pid on host ${host:0:20}.* started [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC"
check_eq "the refused prune deleted nothing" "$(stored)" "$stored_then"
end_holder
check_eq "the holder: exit status" "$HOLDER_RC" 0
OUT=$(cat holder.json)
check_eq "the holder stored every document" "$(json .documents.stored)" "$ndocs"
complete "after the refused prune"

# --- with --wait: waits, then runs; prunes only what is gone ---
P=w_ # a fresh store
start_holder
"$SLUICE" -v -c pg.ini --set "store.table_prefix=$P" run --json --prune --wait docs </dev/null >waiter.json 2>waiter.err &
waiter=$!
for _ in $(seq 1 600); do
    grep -q "waiting (--wait)" waiter.err && break
    kill -0 "$waiter" 2>/dev/null || break
    sleep 0.05
done
check_contains "--wait says whom it waits for" "$(cat waiter.err)" "waiting \(--wait\): .*PID $holder_pid on host"
check "--wait: still waiting while the holder holds the store" kill -0 "$waiter"
end_holder
check_eq "--wait: the holder's exit status" "$HOLDER_RC" 0
set +e
wait "$waiter"
wrc=$?
set -e
check_eq "--wait: ran after the holder, exit status" "$wrc" 0
if [[ $wrc -ne 0 ]]; then echo "stderr: $(tail -c 3000 waiter.err)" >&2; fi
OUT=$(cat waiter.json)
check_eq "--wait: nothing pruned (every file exists)" "$(json .documents.pruned)" 0
check_eq "--wait: everything skipped (the holder stored it)" "$(json .documents.skipped)" "$ndocs"
complete "after --wait"
finish
