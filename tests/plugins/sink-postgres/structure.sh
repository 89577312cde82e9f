#!/usr/bin/env bash
# tests/plugins/sink-postgres/structure.sh - each chunk's structure reaches
# PostgreSQL and `sluice query`: the Markdown of tests/e2e/structure_doc.sh
# (a table larger than a chunk, a code block) through `sluice run` into a
# real PostgreSQL (real[] vectors) whose store has schema version 1 (made
# here with its DDL, one old document in it): the store is upgraded in
# place, the attrs column is jsonb, and `query --json` shows kinds, page and
# heading path, the header row atop every table chunk and no row cut. Then
# the same through PGlite, where the query takes pgvector's HNSW path.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/../../e2e/structure_doc.sh"
source "$HERE/pglib.sh"

mkdir docs
write_structure_doc docs/guide.md

pg_start
pg_sql "CREATE TABLE sluice_meta(key text PRIMARY KEY, value text NOT NULL)" \
    "INSERT INTO sluice_meta VALUES ('schema_version', '1'), ('vector', 'array'), ('dimension', '384')" \
    "CREATE TABLE sluice_runs(run_id bigint PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now(),
       pruned integer, pruned_at timestamptz)" \
    "CREATE TABLE sluice_documents(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       uri text COLLATE \"C\" NOT NULL UNIQUE, hash text NOT NULL, fingerprint text NOT NULL, media_type text,
       bytes bigint, title text, metadata jsonb NOT NULL DEFAULT '{}', chunk_count integer NOT NULL DEFAULT 0,
       stored_at timestamptz NOT NULL DEFAULT now(), stored_run bigint, seen_run bigint)" \
    "CREATE TABLE sluice_chunks(doc_id bigint NOT NULL REFERENCES sluice_documents(id) ON DELETE CASCADE,
       ordinal integer NOT NULL, page integer NOT NULL DEFAULT 0, line integer NOT NULL DEFAULT 0,
       heading text NOT NULL DEFAULT '', text text NOT NULL, summary text, dim integer NOT NULL DEFAULT 0,
       embedding real[], PRIMARY KEY (doc_id, ordinal))" \
    "INSERT INTO sluice_documents(uri, hash, fingerprint, chunk_count) VALUES ('old/one.md', 'h', 'f', 1)" \
    "INSERT INTO sluice_chunks(doc_id, ordinal, page, line, heading, text, dim, embedding)
       SELECT id, 0, 1, 1, 'Old', 'an old chunk', 384, array_fill(0.5::real, ARRAY[384]) FROM sluice_documents" >/dev/null
write_conf pg.ini "$PG_PORT"

sl_ok -c pg.ini run --json --set chunker.size=300 --set chunker.overlap=0 docs
check_eq "stored" "$(json .documents.stored)" 1
check_eq "schema upgraded to version 3" "$(pg_sql "SELECT value FROM sluice_meta WHERE key = 'schema_version'")" 3
check_eq "attrs is jsonb" "$(pg_sql "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                                     WHERE attrelid = 'sluice_chunks'::regclass AND attname = 'attrs'")" jsonb
check_eq "the old chunk is kept, with no attributes" \
    "$(pg_sql "SELECT c.attrs::text FROM sluice_chunks c JOIN sluice_documents d ON d.id = c.doc_id
               WHERE d.uri = 'old/one.md'")" "{}"
check_eq "every new chunk has kinds in the store" \
    "$(pg_sql "SELECT count(*) FROM sluice_chunks c JOIN sluice_documents d ON d.id = c.doc_id
               WHERE d.uri = 'docs/guide.md' AND NOT c.attrs ? 'kinds'")" 0
check_gt "table chunks in the store" "$(pg_sql "SELECT count(*) FROM sluice_chunks WHERE attrs->>'kinds' LIKE '%table%'")" 2

sl_ok -c pg.ini query -k 100 --json "pkg size notes"
check_eq "query: every chunk of the store" "$(json 'hits | length')" "$(pg_sql "SELECT count(*) FROM sluice_chunks")"
check_eq "query: the old chunk has no kinds" \
    "$(json '[hits[] | select(.uri == "old/one.md") | .kinds | length] | first')" 0
check_structure_hits
sl_ok -c pg.ini query -k 100 "pkg size notes"
check_contains "query text: page, kinds and heading path" "$OUT" "p. 1 · table · Guide > Install"

# pgvector (PGlite): the query through the HNSW index answers the same structure.
pglite_start
write_conf lite.ini "$PGLITE_PORT" pool_size=1
sl_ok -c lite.ini run --json --set chunker.size=300 --set chunker.overlap=0 docs
check_eq "pglite: stored" "$(json .documents.stored)" 1
check_eq "pglite: vectors kept as" "$(pglite_sql "SELECT value FROM sluice_meta WHERE key = 'vector'")" pgvector
sl_ok -c lite.ini query -k 100 --json "pkg size notes"
check_structure_hits

finish
