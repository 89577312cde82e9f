#!/usr/bin/env bash
# tests/plugins/sink-postgres/hybrid.sh - hybrid retrieval on a real
# PostgreSQL (a cluster made by the test; real[] vectors): the chunks'
# tsvector, a generated column with a GIN index, ranked by ts_rank and fused
# with the vector ranking.
#
#   - A rare word in a long chunk: keyword-only ranks that chunk first,
#     vector-only (embed-hash) does not have it in its top 5, hybrid has it
#     first, with both ranks in --json.
#   - Text that would be tsquery syntax (& | ! : * ' ( <->) is searched as
#     words, never an error; a replaced document's old words are gone.
#   - A schema-2 store (version 2's DDL, filled with the rows of the store
#     above) answers a read-only `sluice query` by vector alone, says so,
#     and is not written; the next `sluice run` migrates it, computing the
#     tsvector of every chunk already stored.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

pg_start
write_conf pg.ini "$PG_PORT"
mkdir docs
{
    echo "# Maintenance log"
    echo
    for i in $(seq 1 12); do
        printf 'Week %d: the team checked the backups, rotated the logs, replaced a disk in rack %d and ' "$i" "$i"
        printf 'updated the runbook after reviewing the alerts of the previous night with the on-call engineer. '
        if [[ $i == 6 ]]; then printf 'The frobnicator was recalibrated. '; fi
    done
    echo
} >docs/log.md
for i in $(seq 1 8); do
    printf '# Note %d\n\nfrob nicator frobni cator obnicat robnica nicat frobn %d\n' "$i" "$i" >"docs/note$i.md"
done
sl_ok -c pg.ini run docs
check_eq "schema version 3" "$(pg_sql "SELECT value FROM sluice_meta WHERE key = 'schema_version'")" 3
check_eq "tsv is a generated tsvector" \
    "$(pg_sql "SELECT format_type(atttypid, atttypmod) || ' ' || attgenerated::text FROM pg_attribute
               WHERE attrelid = 'sluice_chunks'::regclass AND attname = 'tsv'")" "tsvector s"
check_eq "a GIN index on it" "$(pg_sql "SELECT count(*) FROM pg_indexes WHERE tablename = 'sluice_chunks'
                                         AND indexdef LIKE '%USING gin (tsv)%'")" 1
check_eq "every chunk has its tsvector" "$(pg_sql "SELECT count(*) FROM sluice_chunks WHERE tsv IS NULL")" 0

target=docs/log.md
sl_ok -c pg.ini query --mode keyword --json -k 5 frobnicator
check_eq "keyword only: the long chunk first" "$(json 'hits[0].uri')" "$target"
check_eq "keyword only: its keyword rank is 1" "$(json 'hits[0].keyword.rank')" 1
sl_ok -c pg.ini query --mode vector --json -k 5 frobnicator
check_eq "vector only (hash): the long chunk is not in the top 5" \
    "$(jqo --arg t "$target" '[hits[] | select(.uri == $t)] | length')" 0
sl_ok -c pg.ini query --json -k 5 frobnicator
check_eq "hybrid (the default): the long chunk first" "$(json 'hits[0].uri')" "$target"
check_gt "hybrid: its vector rank shown (below 5)" "$(json 'hits[0].vector.rank')" 5
check_eq "hybrid: every fused score is 1/(60 + vector rank) + 2/(60 + keyword rank)" \
    "$(json '[hits[] | ((if .vector then 1 / (60 + .vector.rank) else 0 end)
              + (if .keyword then 2 / (60 + .keyword.rank) else 0 end) - .score)
              | select(. > 1e-12 or . < -1e-12)] | length')" 0

for q in "frobnicator & | !" "'frobnicator" 'frob:* <-> (frobnicator' '!!!' "it's" 'a & b | c' '()'; do
    sl -c pg.ini query --mode keyword --json -k 3 -- "$q"
    check_eq "keyword query $q: exit 0" "$RC" 0
    check_eq "keyword query $q: JSON hits" "$(json 'hits | type')" array
done
sl_ok -c pg.ini query --mode keyword --json -k 3 "frobnicator & | !"
check_eq "operators are not syntax: the frobnicator found" "$(json 'hits[0].uri')" "$target"

sed -i 's/frobnicator/calibrator/' "$target"
sl_ok -c pg.ini run docs
sl_ok -c pg.ini query --mode keyword --json -k 5 frobnicator
check_eq "after replace: the old word is gone" "$(json 'hits | length')" 0

# A schema-2 store under the prefix old_: version 2's DDL, this store's rows.
pg_sql "CREATE TABLE old_meta(key text PRIMARY KEY, value text NOT NULL)" \
    "INSERT INTO old_meta VALUES ('schema_version', '2'), ('vector', 'array'), ('dimension', '384')" \
    "CREATE TABLE old_runs(run_id bigint PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now(),
       pruned integer, pruned_at timestamptz)" \
    "CREATE TABLE old_documents(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
       uri text COLLATE \"C\" NOT NULL UNIQUE, hash text NOT NULL, fingerprint text NOT NULL, media_type text,
       bytes bigint, title text, metadata jsonb NOT NULL DEFAULT '{}', chunk_count integer NOT NULL DEFAULT 0,
       stored_at timestamptz NOT NULL DEFAULT now(), stored_run bigint, seen_run bigint)" \
    "CREATE TABLE old_chunks(doc_id bigint NOT NULL REFERENCES old_documents(id) ON DELETE CASCADE,
       ordinal integer NOT NULL, page integer NOT NULL DEFAULT 0, line integer NOT NULL DEFAULT 0,
       heading text NOT NULL DEFAULT '', text text NOT NULL, summary text, dim integer NOT NULL DEFAULT 0,
       embedding real[], PRIMARY KEY (doc_id, ordinal))" \
    "ALTER TABLE old_chunks ADD COLUMN attrs jsonb NOT NULL DEFAULT '{}'" \
    "INSERT INTO old_documents OVERRIDING SYSTEM VALUE SELECT * FROM sluice_documents" \
    "INSERT INTO old_chunks SELECT doc_id, ordinal, page, line, heading, text, summary, dim, embedding, attrs
       FROM sluice_chunks" >/dev/null
old=(-c pg.ini --set store.table_prefix=old_)
check_gt "schema-2 store holds the chunks" "$(pg_sql "SELECT count(*) FROM old_chunks")" 8
sl_ok "${old[@]}" query --json -k 3 calibrator
check_eq "old store, read-only query: answers" "$(json 'hits | length')" 3
check_eq "old store: by vector alone" "$(json '[hits[] | select(.keyword != null)] | length')" 0
check_contains "old store: says the keyword ranking is missing, and why" "$ERR" \
    "no keyword ranking: .*schema version 2"
check_eq "old store: not migrated by a query" \
    "$(pg_sql "SELECT value FROM old_meta WHERE key = 'schema_version'")" 2
check_eq "old store: no tsv column made by a query" \
    "$(pg_sql "SELECT count(*) FROM pg_attribute WHERE attrelid = 'old_chunks'::regclass AND attname = 'tsv'")" 0
sl "${old[@]}" query --mode keyword -k 3 calibrator
check_eq "old store, --mode keyword: exit 2" "$RC" 2
sl_ok "${old[@]}" run --json docs
check_eq "migrating run: every document unchanged, skipped" "$(json .documents.stored)" 0
check_eq "migrated to schema 3" "$(pg_sql "SELECT value FROM old_meta WHERE key = 'schema_version'")" 3
check_eq "migrated: every stored chunk has its tsvector" "$(pg_sql "SELECT count(*) FROM old_chunks WHERE tsv IS NULL")" 0
sl_ok "${old[@]}" query --mode keyword --json -k 3 calibrator
check_eq "migrated: a chunk stored before is found by keyword" "$(json 'hits[0].uri')" "$target"
sl_ok "${old[@]}" query --json -k 3 calibrator
check_eq "migrated: hybrid fuses both" "$(json 'hits[0].keyword.rank')" 1

finish
