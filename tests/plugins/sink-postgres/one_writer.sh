#!/usr/bin/env bash
# tests/plugins/sink-postgres/one_writer.sh - one writer process per
# PostgreSQL store (database, schema and table prefix): while `sluice serve`
# holds a store, `run` and a second `serve` on it are refused with exit 4
# and the holder's PID, a store under another table prefix is not; the
# lock is a session-level advisory lock, so when the holder is killed with
# SIGKILL the server drops it with the session and the next run works.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

pg_start
mkdir docs
for i in 1 2 3; do printf '# Doc %d\n\nSome text of document %d.\n' "$i" "$i" >"docs/d$i.md"; done
write_conf pg.ini "$PG_PORT"

# wait_for DESCRIPTION COMMAND...: polls until COMMAND succeeds (20 s at most).
wait_for() {
    local what=$1 t_end=$(($(date +%s) + 20))
    shift
    checks=$((checks + 1))
    until "$@"; do
        if (($(date +%s) >= t_end)); then
            fail "$what: not within 20 s"
            return 0
        fi
        sleep 0.1
    done
}
holders() { pg_sql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                    WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'sluice writer pid $1 on %'"; }
held_by() { [[ $(holders "$1") == 1 ]]; }
stored() { [[ $(pg_sql "SELECT count(*) FROM sluice_documents" 2>/dev/null) == 3 ]]; }

"$SLUICE" -c pg.ini serve docs </dev/null >serve.out 2>serve.err &
spid=$!
wait_for "serve holds the store's advisory lock" held_by "$spid"
wait_for "serve stores the folder" stored

sl -c pg.ini run --json docs
check_eq "run while serve holds the store: exit status" "$RC" 4
check_contains "run while serve holds the store: names the holder's PID" "$ERR" "in use by another sluice process \(PID $spid"
sl -c pg.ini serve docs
check_eq "a second serve: exit status" "$RC" 4
check_contains "a second serve: names the holder's PID" "$ERR" "PID $spid"
sl -c pg.ini --set store.table_prefix=other_ run --json docs
check_eq "a store under another table prefix is not held: exit status" "$RC" 0
check_eq "another table prefix: stored" "$(json .documents.stored)" 3
check "serve still running" kill -0 "$spid"

kill -9 "$spid"
wait "$spid" 2>/dev/null || true
gone() { [[ $(holders "$spid") == 0 ]]; }
wait_for "the server drops the killed holder's lock with its session" gone
sl -c pg.ini run --json docs
check_eq "run after the holder was killed with SIGKILL: exit status" "$RC" 0
check_eq "run after SIGKILL: nothing lost, all skipped" "$(json .documents.skipped)" 3
finish
