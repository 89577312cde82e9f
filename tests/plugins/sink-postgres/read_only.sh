#!/usr/bin/env bash
# tests/plugins/sink-postgres/read_only.sh - read-only commands never make a
# PostgreSQL store, and `store check` reads one.
#
# On a fresh cluster, query, failed and store check say "there is no store"
# (exit 2) and create no table or schema; check and run --dry-run work
# without making one either. After a run, store check reports the schema's
# counts (healthy, exit 0; --json too), a chunk whose document row is gone
# is reported as an orphan (DAMAGED, exit 1), and store rebuild is refused
# with the plugin named: PostgreSQL repairs its own pages.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

pg_start
mkdir docs
for i in 1 2 3 4; do printf '# Doc %d\n\nSome text of document %d about storing.\n' "$i" "$i" >"docs/d$i.md"; done
write_conf pg.ini "$PG_PORT"
write_conf pg_schema.ini "$PG_PORT" schema=lib
tables() { pg_sql "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'sluice_%'"; }
schemas() { pg_sql "SELECT count(*) FROM pg_namespace WHERE nspname = 'lib'"; }

sl -c pg.ini query storing
check_eq "query on a fresh database: exit status" "$RC" 2
check_contains "query on a fresh database: there is no store" "$ERR" "there is no store here \(no table .*sluice_meta"
sl -c pg.ini failed
check_eq "failed on a fresh database: exit status" "$RC" 2
check_contains "failed on a fresh database: there is no store" "$ERR" "there is no store here"
sl -c pg.ini store check
check_eq "store check on a fresh database: exit status" "$RC" 2
sl -c pg.ini check
check_eq "check on a fresh database: exit status" "$RC" 0
sl -c pg.ini check --connect
check_eq "check --connect on a fresh database: exit status" "$RC" 0
sl -c pg.ini run --dry-run docs
check_eq "dry run on a fresh database: exit status" "$RC" 0
check_contains "dry run on a fresh database: every document is new" "$OUT" "4 new"
sl -c pg_schema.ini query storing
check_eq "query with a schema that does not exist: exit status" "$RC" 2
check_eq "the read-only commands made no table" "$(tables)" 0
check_eq "the read-only commands made no schema" "$(schemas)" 0

sl_ok -c pg.ini run docs
sl -c pg.ini store check
check_eq "store check after a run: exit status" "$RC" 0
chunks=$(pg_sql "SELECT count(*) FROM sluice_chunks")
check_contains "store check after a run: healthy, with the counts" "$OUT" "healthy"
check_contains "store check after a run: the counts" "$OUT" "documents 4, chunks $chunks, vectors $chunks, orphans 0"
sl -c pg.ini store check --json
check_eq "store check --json: documents" "$(json '.stores[0].documents')" 4
sl -c pg.ini query storing
check_eq "query after a run: exit status" "$RC" 0

# an orphan: a chunk whose document row is gone (the foreign key lifted for it)
pg_sql "ALTER TABLE sluice_chunks DROP CONSTRAINT sluice_chunks_doc_id_fkey" \
    "DELETE FROM sluice_documents WHERE uri = 'docs/d1.md'" >/dev/null
sl -c pg.ini store check
check_eq "store check with an orphan chunk: exit status" "$RC" 1
check_contains "store check with an orphan chunk: DAMAGED and why" "$OUT" "DAMAGED.*|chunks in .* belong to no document"
sl -c pg.ini store rebuild
check_eq "store rebuild on PostgreSQL: exit status" "$RC" 2
check_contains "store rebuild on PostgreSQL: refused, naming the plugin" "$ERR" "sink-postgres cannot rebuild its store"
finish
