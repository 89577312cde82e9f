#!/usr/bin/env bash
# tests/plugins/sink-postgres/fault_restart.sh - PostgreSQL restarted in the
# middle of a run (pg_ctl restart -m fast: every connection is cut, and for
# a moment new ones are refused): sluice reconnects, the interrupted
# documents' transactions are retried, and the run ends with every document
# stored exactly once: the same rows as a run that was never disturbed.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

pg_start
ndocs=3000
bash "$SRC/bench/gen_corpus.sh" "$ndocs" docs 2500 3 >/dev/null
write_conf pg.ini "$PG_PORT"

# The run to disturb, in the background; the restart comes once it has
# stored some documents and long before it could have stored them all.
"$SLUICE" -v -c pg.ini run --json docs </dev/null >run.json 2>run.err &
pid=$!
before=0
for _ in $(seq 1 600); do
    before=$(pg_sql "SELECT count(*) FROM sluice_documents" 2>/dev/null || echo 0)
    [[ $before -ge 50 ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
pg_restart
running=no
if kill -0 "$pid" 2>/dev/null; then running=yes; fi
set +e
wait "$pid"
rc=$?
set -e
echo "restarted with $before of $ndocs documents stored; sluice still running after the restart: $running"
# shellcheck disable=SC2034 # lib.sh's json reads OUT
OUT=$(cat run.json)
check_eq "the restart came mid-run (documents stored before it)" "$((before > 0 && before < ndocs))" 1
check_eq "sluice was still running when the server was back" "$running" yes
check_eq "disturbed run: exit status" "$rc" 0
if [[ $rc -ne 0 ]]; then echo "stderr: $(tail -c 3000 run.err)" >&2; fi
check_eq "disturbed run: failed" "$(json .documents.failed)" 0
check_eq "disturbed run: stored" "$(json .documents.stored)" "$ndocs"
retries=$(json '[.stages[] | select(.name | startswith("store")) | .retries] | add')
check_gt "the sink's calls were retried (the fault reached it)" "$retries" 0
check_contains "the log says the connection was lost" "$(cat run.err)" "lost the connection|closed an idle connection"

check_eq "documents stored once each" "$(pg_sql "SELECT count(*), count(DISTINCT uri) FROM sluice_documents")" \
    "$ndocs|$ndocs"
check_eq "chunk_count matches the chunk rows" \
    "$(pg_sql "SELECT count(*) FROM sluice_documents d WHERE chunk_count <>
               (SELECT count(*) FROM sluice_chunks c WHERE c.doc_id = d.id)")" 0

# The same corpus, undisturbed, under another prefix: the same rows.
sl_ok -c pg.ini --set store.table_prefix=calm_ run --json docs
check_eq "undisturbed run: stored" "$(json .documents.stored)" "$ndocs"
check_eq "disturbed store = undisturbed store" "$(pg_digest sluice_)" "$(pg_digest calm_)"

finish
