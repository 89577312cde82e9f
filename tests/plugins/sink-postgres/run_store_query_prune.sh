#!/usr/bin/env bash
# tests/plugins/sink-postgres/run_store_query_prune.sh - sluice ingests a
# corpus into a real PostgreSQL (a cluster made by the test; no pgvector, so
# vectors are real[]) and the store behaves as the durability contract
# says: the schema is made and versioned, every chunk is stored with its
# vector, a rerun skips everything, a changed file is replaced, --prune
# removes a deleted file's rows and records it in the runs table, and
# `sluice query` finds a chunk by its own text (cosine 1). Table names and
# values that look like SQL are stored as plain text, and
# `sluice check --plugin` passes against the server.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

pg_start
ndocs=40
bash "$SRC/bench/gen_corpus.sh" "$ndocs" docs 3000 5 >/dev/null
write_conf pg.ini "$PG_PORT"
check "the INI holds no password" test -z "$(grep -i password pg.ini | grep -v password_env || true)"

sl_ok -c pg.ini run --json docs
check_eq "first run: stored" "$(json .documents.stored)" "$ndocs"
check_eq "first run: failed" "$(json .documents.failed)" 0
chunks=$(json .chunks // .documents.chunks)
check_eq "schema version" "$(pg_sql "SELECT value FROM sluice_meta WHERE key = 'schema_version'")" 3
check_eq "vectors kept as" "$(pg_sql "SELECT value FROM sluice_meta WHERE key = 'vector'")" array
check_eq "dimension recorded" "$(pg_sql "SELECT value FROM sluice_meta WHERE key = 'dimension'")" 384
check_eq "embedding column type" \
    "$(pg_sql "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
               WHERE attrelid = 'sluice_chunks'::regclass AND attname = 'embedding'")" "real[]"
check_eq "documents stored" "$(pg_sql "SELECT count(*) FROM sluice_documents")" "$ndocs"
total_chunks=$(pg_sql "SELECT count(*) FROM sluice_chunks")
check_gt "chunks stored" "$total_chunks" "$ndocs"
if [[ $chunks != null ]]; then check_eq "chunks stored = chunks reported" "$total_chunks" "$chunks"; fi
check_eq "every chunk has a 384-dimensional vector" \
    "$(pg_sql "SELECT count(*) FROM sluice_chunks WHERE dim = 384 AND array_length(embedding, 1) = 384")" \
    "$total_chunks"
check_eq "chunk_count matches the chunk rows" \
    "$(pg_sql "SELECT count(*) FROM sluice_documents d WHERE chunk_count <>
               (SELECT count(*) FROM sluice_chunks c WHERE c.doc_id = d.id)")" 0
check_eq "one run recorded" "$(pg_sql "SELECT count(*) FROM sluice_runs")" 1
check_eq "documents carry their metadata as JSON" \
    "$(pg_sql "SELECT count(*) FROM sluice_documents WHERE metadata ? 'title' AND title = metadata->>'title'")" "$ndocs"
digest1=$(pg_digest sluice_)

# A chunk's own text embeds to its own vector: it is the nearest, cosine 1.
probe_uri=docs/d000/doc-00007.md
probe=$(pg_sql "SELECT c.text FROM sluice_chunks c JOIN sluice_documents d ON d.id = c.doc_id
                WHERE d.uri = '$probe_uri' AND c.ordinal = 1")
sl_ok -c pg.ini query --mode vector -k 3 --json "$probe"
check_eq "query: top hit is the chunk itself" "$(json 'hits[0].uri')" "$probe_uri"
check_eq "query: its score is 1" "$(json 'hits[0].score * 1000 | round')" 1000
check_eq "query: k hits" "$(json 'hits | length')" 3
check "query: hits in descending score" jq -e '(if type == "array" then . else .hits end) |
    (.[0].score >= .[1].score and .[1].score >= .[2].score)' <<<"$OUT" >/dev/null

sl_ok -c pg.ini run --json docs
check_eq "rerun: all skipped" "$(json .documents.skipped)" "$ndocs"
check_eq "rerun: store unchanged" "$(pg_digest sluice_)" "$digest1"
check_eq "rerun: a second run recorded" "$(pg_sql "SELECT count(*) FROM sluice_runs")" 2

changed=docs/d000/doc-00003.md
printf '# Replaced\n\nThis document was rewritten with a marker: zebra-quartz.\n' >"$changed"
sl_ok -c pg.ini run --json docs
check_eq "after a change: stored" "$(json .documents.stored)" 1
check_eq "after a change: skipped" "$(json .documents.skipped)" $((ndocs - 1))
check_eq "changed document: its old chunks are gone, the new one is there" \
    "$(pg_sql "SELECT count(*), bool_and(c.text LIKE '%zebra-quartz%') FROM sluice_chunks c
               JOIN sluice_documents d ON d.id = c.doc_id WHERE d.uri = '$changed'")" "1|t"

rm docs/d000/doc-00005.md
sl_ok -c pg.ini run --json docs
check_eq "deleted file without --prune: kept" "$(pg_sql "SELECT count(*) FROM sluice_documents")" "$ndocs"
sl_ok -c pg.ini run --prune --json docs
check_eq "--prune: pruned" "$(json .documents.pruned)" 1
check_eq "--prune: the document is gone" \
    "$(pg_sql "SELECT count(*) FROM sluice_documents WHERE uri = 'docs/d000/doc-00005.md'")" 0
check_eq "--prune: its chunks went with it" \
    "$(pg_sql "SELECT count(*) FROM sluice_chunks WHERE doc_id NOT IN (SELECT id FROM sluice_documents)")" 0
check_eq "--prune: recorded in the run's row" "$(pg_sql "SELECT pruned FROM sluice_runs WHERE pruned IS NOT NULL")" 1

# Names and values that look like SQL are only ever identifiers and parameters.
mkdir odd
cp "$SRC/examples/corpus/faq.txt" "odd/it's \"quoted\"; DROP TABLE sluice_documents; --.txt"
prefix='we"ird; DROP TABLE sluice_chunks; -- '
sl_ok -c pg.ini --set "store.table_prefix=$prefix" run --json odd
check_eq "odd prefix: stored" "$(json .documents.stored)" 1
# meta, runs, documents, chunks, the failure list and the job queue
check_eq "odd prefix: the tables carry it verbatim" \
    "$(pg_sql "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'we\"ird; DROP TABLE sluice_chunks; -- %'")" 6
check_eq "odd file name: stored verbatim" \
    "$(pg_sql "SELECT uri FROM \"we\"\"ird; DROP TABLE sluice_chunks; -- documents\"")" \
    "odd/it's \"quoted\"; DROP TABLE sluice_documents; --.txt"
check_eq "the other tables are untouched" "$(pg_sql "SELECT count(*) FROM sluice_documents")" $((ndocs - 1))

# A schema of its own, made on first use.
sl_ok -c pg.ini --set store.schema=Sluice_Test run --json odd
check_eq "schema option: tables in that schema" \
    "$(pg_sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'Sluice_Test'")" 6

# The plugin's own contract check, against this server.
sl check --plugin "$BUILD/plugins/sink-postgres.so" --set host=127.0.0.1 --set "port=$PG_PORT" \
    --set user=postgres --set dbname=postgres --set table_prefix=check_
check_eq "check --plugin against the server: exit status" "$RC" 0
check_contains "check --plugin: passes" "$OUT" "passes"

finish
