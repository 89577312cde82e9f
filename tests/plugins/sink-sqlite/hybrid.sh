#!/usr/bin/env bash
# tests/plugins/sink-sqlite/hybrid.sh - hybrid retrieval on sink-sqlite
# through the real sluice: the FTS5 keyword index beside the vectors.
#
#   - A rare word in a long chunk: keyword-only ranks that chunk first,
#     vector-only (embed-hash) does not have it in its top 5 (short chunks
#     made of pieces of the word are nearer by n-grams), and hybrid, the
#     default, has it first. --json shows each hit's rank and score in both
#     rankings, and the fused score is 1 / (60 + vector rank) + 2 / (60 +
#     keyword rank) (the default weights).
#   - Text FTS5 would read as syntax (quotes, stars, NEAR, minus, colons,
#     brackets, AND/OR/NOT) is searched as words, never an error.
#   - The index follows the chunks: a replaced document's old words and a
#     pruned document's words are no longer found, and FTS5's
#     integrity-check against the chunks table passes.
#   - A schema-2 store (made with the DDL of the schema before the keyword
#     index, filled with the rows of the store above) answers a
#     read-only `sluice query` by vector alone, says so, and is not written;
#     --mode keyword on it is an error saying why; the next `sluice run`
#     migrates it, building the index from the chunks already stored (an
#     unchanged document, skipped by that run, is then found by keyword).
#   - A schema-3 store (insert triggers) is migrated to 4 by a run: the
#     triggers go, a replaced document is indexed by the writer, and the
#     index and the vector log agree with the chunks.
source "$(dirname "$0")/../../e2e/lib.sh"

db=.sluice/store.db
mkdir docs
# The long chunk: ordinary prose, one rare word in the middle.
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
# Short chunks dense in pieces of the word, but never the word itself.
for i in $(seq 1 8); do
    printf '# Note %d\n\nfrob nicator frobni cator obnicat robnica nicat frobn %d\n' "$i" "$i" >"docs/note$i.md"
done
sl_ok run docs
check_eq "schema version 5" "$(sql $db "SELECT value FROM meta WHERE key = 'schema_version';")" 5
check_eq "every chunk is in the keyword index" \
    "$(sql $db.keywords "SELECT count(*) FROM chunks_fts_docsize;")" "$(sql $db "SELECT count(*) FROM chunks;")"

target=docs/log.md
sl_ok query --mode keyword --json -k 5 frobnicator
check_eq "keyword only: the long chunk first" "$(json 'hits[0].uri')" "$target"
check_eq "keyword only: nothing else holds the word" "$(json 'hits | length')" 1
check_eq "keyword only: its keyword rank is 1" "$(json 'hits[0].keyword.rank')" 1
check_eq "keyword only: no vector rank" "$(json 'hits[0].vector')" null
sl_ok query --mode vector --json -k 5 frobnicator
check_eq "vector only: 5 hits" "$(json 'hits | length')" 5
check_eq "vector only (hash): the long chunk is not in the top 5" \
    "$(jqo --arg t "$target" '[hits[] | select(.uri == $t)] | length')" 0
check_eq "vector only: scores are cosines" "$(json '[hits[] | select(.score > 1.0001 or .score < -1.0001)] | length')" 0
sl_ok query --json -k 5 frobnicator
check_eq "hybrid (the default): the long chunk first" "$(json 'hits[0].uri')" "$target"
check_eq "hybrid: its keyword rank shown" "$(json 'hits[0].keyword.rank')" 1
check_gt "hybrid: its vector rank shown (below 5)" "$(json 'hits[0].vector.rank')" 5
check_eq "hybrid: every fused score is 1/(60 + vector rank) + 2/(60 + keyword rank)" \
    "$(json '[hits[] | ((if .vector then 1 / (60 + .vector.rank) else 0 end)
              + (if .keyword then 2 / (60 + .keyword.rank) else 0 end) - .score)
              | select(. > 1e-12 or . < -1e-12)] | length')" 0
check_eq "hybrid: best first" "$(json '[hits[].score] as $s | $s == ($s | sort | reverse)')" true
sl_ok query -k 3 frobnicator
check_contains "the table names both ranks" "$OUT" "vector #[0-9]+ [0-9.]+, keyword #1 "

# Words FTS5 would read as syntax are words.
for q in '"frobnicator' 'frobnicator*' '* - ^' 'NEAR(frobnicator backups, 2)' 'text:frobnicator' \
    'frobnicator AND OR NOT' '(((' '-frobnicator -' 'frob"nicator' "it's the frobnicator's" ':' ''\''"'; do
    sl query --mode keyword --json -k 3 -- "$q"
    check_eq "keyword query $q: exit 0" "$RC" 0
    check_eq "keyword query $q: JSON hits" "$(json 'hits | type')" array
    sl query --json -k 3 -- "$q"
    check_eq "hybrid query $q: exit 0" "$RC" 0
done
sl_ok query --mode keyword --json -k 3 'NEAR(frobnicator)'
check_eq "NEAR( is a word: the frobnicator still found" "$(json 'hits[0].uri')" "$target"
sl query --mode sideways x
check_eq "--mode sideways: usage error" "$RC" 2
check_contains "--mode sideways: says which modes" "$ERR" "hybrid, vector or keyword"

# The index follows replace and prune.
sed -i 's/frobnicator/calibrator/' "$target"
sl_ok run docs
sl_ok query --mode keyword --json -k 5 frobnicator
check_eq "after replace: the old word is gone from the index" "$(json 'hits | length')" 0
sl_ok query --mode keyword --json -k 5 calibrator
check_eq "after replace: the new word is found" "$(json 'hits[0].uri')" "$target"
rm docs/note3.md
sl_ok run --prune docs
sl_ok query --mode keyword --json -k 20 'frob nicator'
check_eq "after prune: the pruned note is not found" \
    "$(json '[hits[] | select(.uri == "docs/note3.md")] | length')" 0
check_eq "after prune: the other notes are" "$(json '[hits[].uri] | unique | length')" 7
check_eq "FTS5 integrity-check against the chunks" \
    "$(sql $db.keywords "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1); SELECT 'ok';" 2>&1)" ok

# A schema-2 store, as the sink made it before the keyword index: version
# 2's DDL (migrations 1 and 2 of sink_sqlite.c at that version, and the
# failure list), filled with this store's rows through ATTACH.
rm -f old.db
sql old.db "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL;
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents( id INTEGER PRIMARY KEY, uri TEXT UNIQUE NOT NULL, hash TEXT NOT NULL,
  fingerprint TEXT NOT NULL, media_type TEXT, bytes INTEGER, title TEXT, metadata TEXT NOT NULL DEFAULT '{}',
  chunk_count INTEGER NOT NULL DEFAULT 0, stored_at TEXT NOT NULL, seen_run INTEGER);
CREATE TABLE chunks( id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  ordinal INTEGER NOT NULL, dim INTEGER NOT NULL DEFAULT 0, vector BLOB, page INTEGER NOT NULL DEFAULT 0,
  line INTEGER NOT NULL DEFAULT 0, heading TEXT NOT NULL DEFAULT '', text TEXT NOT NULL, summary TEXT,
  UNIQUE(doc_id, ordinal));
ALTER TABLE chunks ADD COLUMN attrs TEXT NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS failures( uri TEXT PRIMARY KEY, stage TEXT NOT NULL, reason TEXT NOT NULL,
  attempts INTEGER NOT NULL, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL);
INSERT INTO meta VALUES('schema_version', '2');
ATTACH '$db' AS cur;
INSERT INTO documents SELECT * FROM cur.documents;
INSERT INTO chunks SELECT * FROM cur.chunks;" >/dev/null
rm -f $db $db-wal $db-shm
mv old.db $db
check_eq "schema-2 store made" "$(sql $db "SELECT count(*) FROM sqlite_master WHERE name LIKE 'chunks_fts%';")" 0
check_gt "schema-2 store holds the chunks" "$(sql $db "SELECT count(*) FROM chunks;")" 8
before=$(sql $db "SELECT value FROM meta WHERE key = 'schema_version';")
sl_ok query --json -k 3 calibrator
check_eq "old store, read-only query: answers" "$(json 'hits | length')" 3
check_eq "old store: by vector alone (no keyword ranks)" "$(json '[hits[] | select(.keyword != null)] | length')" 0
check_contains "old store: says the keyword ranking is missing, and why" "$ERR" \
    "no keyword ranking: .*schema version 2"
check_eq "old store: a query did not migrate it" "$(sql $db "SELECT value FROM meta WHERE key = 'schema_version';")" \
    "$before"
check_eq "old store: no index made by the query" \
    "$(sql $db "SELECT count(*) FROM sqlite_master WHERE name LIKE 'chunks_fts%';")" 0
sl query --mode keyword -k 3 calibrator
check_eq "old store, --mode keyword: exit 2" "$RC" 2
check_contains "old store, --mode keyword: says how to build the index" "$ERR" "sluice run"
# The store read-only on disk: still answers.
chmod a-w $db .sluice
if [[ ! -w $db ]]; then # root writes anyway; the check means nothing then
    sl_ok query --mode vector --json -k 2 calibrator
    check_eq "read-only file: answers" "$(json 'hits | length')" 2
fi
chmod u+w $db .sluice

sl_ok run --json docs
check_eq "migrating run: every document unchanged, skipped" "$(json .documents.stored)" 0
check_eq "migrated to schema 5" "$(sql $db "SELECT value FROM meta WHERE key = 'schema_version';")" 5
check_eq "migrated: every stored chunk indexed" \
    "$(sql $db.keywords "SELECT count(*) FROM chunks_fts_docsize;")" "$(sql $db "SELECT count(*) FROM chunks;")"
sl_ok query --mode keyword --json -k 3 calibrator
check_eq "migrated: a chunk stored before is found by keyword" "$(json 'hits[0].uri')" "$target"
sl_ok query --json -k 3 calibrator
check_eq "migrated: hybrid fuses both again" "$(json 'hits[0].keyword.rank')" 1
check_eq "FTS5 integrity-check after the migration" \
    "$(sql $db.keywords "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1); SELECT 'ok';" 2>&1)" ok

# A schema-3 store (its keyword index and vector log kept by a trigger on
# each inserted chunk) is migrated by the next run: the insert triggers go,
# the writer indexes what it stores (one statement a group), and the index
# agrees with the chunks.
sql $db "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
  INSERT INTO chunks_fts(rowid, text, heading, summary) VALUES (new.id, new.text, new.heading, new.summary); END;
CREATE TRIGGER vector_log_insert AFTER INSERT ON chunks WHEN new.vector IS NOT NULL BEGIN
  INSERT INTO vector_log(chunk, dim, added) VALUES(new.id, new.dim, 1); END;
UPDATE meta SET value = '3' WHERE key = 'schema_version';" >/dev/null
sed -i 's/calibrator/gyroscope/' "$target"
sl_ok run docs
check_eq "schema 3 migrated to 5" "$(sql $db "SELECT value FROM meta WHERE key = 'schema_version';")" 5
check_eq "schema 5: no trigger per inserted chunk" \
    "$(sql $db "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'
                AND name IN ('chunks_fts_insert', 'vector_log_insert');")" 0
sl_ok query --mode keyword --json -k 3 gyroscope
check_eq "schema 5: the replaced document is found by its new word" "$(json 'hits[0].uri')" "$target"
sl_ok query --mode keyword --json -k 3 calibrator
check_eq "schema 5: its old word is gone" "$(json 'hits | length')" 0
check_eq "FTS5 integrity-check after schema 5's first run" \
    "$(sql $db.keywords "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1); SELECT 'ok';" 2>&1)" ok
check_eq "every chunk in the keyword index once" \
    "$(sql $db.keywords "SELECT count(*) FROM chunks_fts_docsize;")" "$(sql $db "SELECT count(*) FROM chunks;")"
check_eq "the vector log's last word on each of its new vectors: added" \
    "$(sql $db "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri = '$target'
                AND c.vector IS NOT NULL AND (SELECT l.added FROM vector_log l WHERE l.chunk = c.id
                ORDER BY l.seq DESC LIMIT 1) IS NOT 1;")" 0
check_eq "the keyword log was trimmed, and holds nothing below its mark" \
    "$(sql $db "SELECT count(*) FROM keyword_log WHERE seq <= (SELECT CAST(value AS INTEGER) FROM meta
                WHERE key = 'keyword_log_trimmed');")" 0
check_eq "the keyword file covers the whole log" "$(sql $db.keywords "SELECT seq FROM kw_state;")" \
    "$(sql $db "SELECT seq FROM sqlite_sequence WHERE name = 'keyword_log';")"

# The keyword file is the store's to remake: gone, or damaged, a query
# builds it again from the chunks and finds what they hold.
rm -f $db.keywords $db.keywords-wal $db.keywords-shm
sl_ok query --mode keyword --json -k 3 gyroscope
check_eq "keyword file removed: the query rebuilt it and finds the word" "$(json 'hits[0].uri')" "$target"
check_eq "keyword file removed: rebuilt with every chunk" \
    "$(sql $db.keywords "SELECT count(*) FROM chunks_fts_docsize;")" "$(sql $db "SELECT count(*) FROM chunks;")"
# No keyword file, and none can be made (here its path leads into a folder
# that does not exist, as a read-only folder would refuse it even to root):
# a hybrid query answers by vector and says why; keyword alone fails.
rm -f $db.keywords $db.keywords-wal $db.keywords-shm
ln -s /nonexistent-sluice-dir/kw $db.keywords
sl_ok query --json -k 3 gyroscope
check_eq "keyword file cannot be made: hybrid answers by vector" "$(json '[hits[] | select(.keyword != null)] | length')" 0
check_gt "keyword file cannot be made: hybrid still has hits" "$(json 'hits | length')" 0
check_contains "keyword file cannot be made: says why" "$ERR" "no keyword ranking: .*keywords"
sl query --mode keyword -k 3 gyroscope
check_eq "keyword file cannot be made: --mode keyword fails" "$RC" 2
rm -f $db.keywords

head -c 8192 /dev/urandom >$db.keywords
rm -f $db.keywords-wal $db.keywords-shm
sl_ok query --mode keyword --json -k 3 gyroscope
check_eq "keyword file damaged: the query rebuilt it and finds the word" "$(json 'hits[0].uri')" "$target"
check_contains "keyword file damaged: says so" "$ERR" "keywords: .*building it again"
check_eq "keyword file damaged: rebuilt whole" \
    "$(sql $db.keywords "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1); SELECT 'ok';" 2>&1)" ok

check_gt "the replaced document has vectors" \
    "$(sql $db "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri = '$target'
                AND c.vector IS NOT NULL;")" 0

finish
