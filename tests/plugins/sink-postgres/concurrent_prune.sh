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

# the body is the SQLite test's too (tests/e2e/concurrent_prune_body.sh)
# P: the table prefix of the store in use
P=sluice_
STORE=(-c pg.ini --set "store.table_prefix=$P")
holds_store() {
    [[ $(pg_sql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted
                   AND a.application_name LIKE 'sluice writer pid $1 on %'") == 1 ]]
}
stored() { pg_sql "SELECT count(*) FROM ${P}documents" 2>/dev/null || echo 0; }
complete() {
    check_eq "$1: every file once" \
        "$(pg_sql "SELECT count(*), count(DISTINCT uri) FROM ${P}documents")" "$ndocs|$ndocs"
    check_eq "$1: chunk counts" \
        "$(pg_sql "SELECT count(*) FROM ${P}documents d WHERE chunk_count <>
                   (SELECT count(*) FROM ${P}chunks c WHERE c.doc_id = d.id)")" 0
}
fresh_store() {
    P=w_
    STORE=(-c pg.ini --set "store.table_prefix=$P")
}
# the holder's name reaches the message through application_name, cut short
host=$(hostname)
HOST_RE="${host:0:20}.*"
source "$HERE/../../e2e/concurrent_prune_body.sh"

prune_is_refused
prune_waits
finish
