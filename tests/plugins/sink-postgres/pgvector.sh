#!/usr/bin/env bash
# tests/plugins/sink-postgres/pgvector.sh - with pgvector on the server
# (PGlite: PostgreSQL in WASM with the extension, over the wire protocol;
# Debian has no pgvector package), `vector = auto` makes the store's vectors
# vector(384) with an HNSW index for cosine distance, `sluice query` goes
# through that index and finds a chunk by its own text, a rerun skips
# everything and --prune removes a deleted file. PGlite is one backend
# shared by every connection, so the sink runs with pool_size = 1.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

pglite_start
ndocs=20
bash "$SRC/bench/gen_corpus.sh" "$ndocs" docs 2500 11 >/dev/null
write_conf pg.ini "$PGLITE_PORT" pool_size=1

sl_ok -c pg.ini run --json docs
check_eq "run: stored" "$(json .documents.stored)" "$ndocs"
check_eq "run: failed" "$(json .documents.failed)" 0
check_eq "vectors kept as" "$(pglite_sql "SELECT value FROM sluice_meta WHERE key = 'vector'")" pgvector
check_eq "embedding column type" \
    "$(pglite_sql "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                   WHERE attrelid = 'sluice_chunks'::regclass AND attname = 'embedding'")" "vector(384)"
check_contains "HNSW index for cosine distance" \
    "$(pglite_sql "SELECT indexdef FROM pg_indexes WHERE tablename = 'sluice_chunks'")" \
    "USING hnsw \(embedding vector_cosine_ops\)"
nchunks=$(pglite_sql "SELECT count(*) FROM sluice_chunks")
check_gt "chunks stored" "$nchunks" "$ndocs"
check_eq "every chunk has its vector" \
    "$(pglite_sql "SELECT count(*) FROM sluice_chunks WHERE vector_dims(embedding) = 384 AND dim = 384")" "$nchunks"
digest1=$(pg_digest sluice_ pglite_sql)

# The query's shape (what sink-postgres sends, with a stored vector as the
# query) can walk the index; with this few rows the planner would rather
# scan, so scans are switched off to ask.
plan=$(pglite_sql "SET hnsw.ef_search = 100" "SET enable_seqscan = off" \
    "EXPLAIN SELECT doc_id FROM sluice_chunks ORDER BY embedding <=> (SELECT embedding FROM sluice_chunks LIMIT 1) LIMIT 3")
check_contains "a nearest-neighbour query walks the HNSW index" "$plan" "Index Scan using sluice_chunks_embedding_idx"

probe_uri=docs/d000/doc-00004.md
probe=$(pglite_sql "SELECT c.text FROM sluice_chunks c JOIN sluice_documents d ON d.id = c.doc_id
                    WHERE d.uri = '$probe_uri' AND c.ordinal = 2")
sl_ok -c pg.ini query --mode vector -k 5 --json "$probe"
check_eq "query: top hit is the chunk itself" "$(json 'hits[0].uri') $(json 'hits[0].chunk')" "$probe_uri 2"
check_eq "query: its score is 1" "$(json 'hits[0].score * 1000 | round')" 1000
check_eq "query: k hits" "$(json 'hits | length')" 5
# hybrid (the default) on PGlite: the tsvector ranking fused with HNSW's
sl_ok -c pg.ini query -k 5 --json "$probe"
check_eq "hybrid: top hit is the chunk itself" "$(json 'hits[0].uri') $(json 'hits[0].chunk')" "$probe_uri 2"
check_eq "hybrid: first in the vector ranking" "$(json 'hits[0].vector.rank')" 1
check_gt "hybrid: found by keyword too" "$(json 'hits[0].keyword.rank')" 0

sl_ok -c pg.ini run --json docs
check_eq "rerun: all skipped" "$(json .documents.skipped)" "$ndocs"
check_eq "rerun: store unchanged" "$(pg_digest sluice_ pglite_sql)" "$digest1"

rm docs/d000/doc-00002.md
sl_ok -c pg.ini run --prune --json docs
check_eq "--prune: pruned" "$(json .documents.pruned)" 1
check_eq "--prune: gone" "$(pglite_sql "SELECT count(*) FROM sluice_documents")" $((ndocs - 1))

# A store made with pgvector is not reopened as real[].
sl -c pg.ini --set store.vector=array run --json docs
check_eq "vector = array on a pgvector store: exit status" "$RC" 2
check_contains "vector = array on a pgvector store: says why" "$ERR" "keeps its vectors as pgvector"

finish
