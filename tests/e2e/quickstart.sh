#!/usr/bin/env bash
# tests/e2e/quickstart.sh - the README's first experience, checked: `sluice
# run examples/corpus` with the embedded default config in an empty folder
# stores every file as a document with chunks in .sluice/store.db, and
# `sluice query` finds them again: k hits, best first, from the corpus, and
# a sentence copied from a file finds that file first.
source "$(dirname "$0")/lib.sh"

corpus=$SRC/examples/corpus
nfiles=$(count_files "$corpus" '*.md' '*.markdown' '*.txt' '*.text')
check_gt "files in examples/corpus" "$nfiles" 5
nbytes=$(find "$corpus" -type f \( -name '*.md' -o -name '*.txt' \) -printf '%s\n' | awk '{s += $1} END {print s}')
db=$T/.sluice/store.db

check "no store before the first run" test ! -e "$db"
sl_ok run --json "$corpus"
check_eq "report: documents.total" "$(json .documents.total)" "$nfiles"
check_eq "report: documents.stored" "$(json .documents.stored)" "$nfiles"
check_eq "report: documents.failed" "$(json .documents.failed)" 0
check_eq "report: documents.skipped" "$(json .documents.skipped)" 0
check_eq "report: bytes read" "$(json .bytes)" "$nbytes"
check_gt "report: chunks" "$(json .chunks)" "$((nfiles - 1))"
check_eq "report: no failed list" "$(json '.failed | length')" 0
check_gt "report: stages" "$(json '.stages | length')" 3
check_gt "report: peak_rss_bytes" "$(json .peak_rss_bytes)" 0
check_eq "report: version is the executable's" "$(json .version)" "$("$SLUICE" --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)"
report_chunks=$(json .chunks)

check "store made at .sluice/store.db in the working folder" test -s "$db"
check_eq "documents in the store" "$(sql "$db" 'SELECT count(*) FROM documents;')" "$nfiles"
check_eq "chunks in the store = chunks in the report" "$(sql "$db" 'SELECT count(*) FROM chunks;')" "$report_chunks"
check_eq "every document has chunks" "$(sql "$db" 'SELECT count(*) FROM documents WHERE chunk_count < 1;')" 0
check_eq "chunk_count and ordinals match the chunk rows" "$(chunk_count_mismatches "$db")" 0
check_eq "no duplicate (document, ordinal)" "$(duplicate_chunks "$db")" 0
check_eq "every vector is dim float32s" \
    "$(sql "$db" 'SELECT count(*) FROM chunks WHERE dim <= 0 OR length(vector) != 4 * dim;')" 0
check_eq "no empty chunk text" "$(sql "$db" "SELECT count(*) FROM chunks WHERE length(text) = 0;")" 0

# Every file of the corpus is a document, under the path it was found by,
# with its size; and markdown headings reach the chunks.
for f in "$corpus"/*; do
    got=$(sql "$db" "SELECT bytes FROM documents WHERE uri = '$f';")
    check_eq "document $f stored with its size" "$got" "$(stat -c %s "$f")"
done
check_gt "chunks of markdown files carry headings" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri LIKE '%.md' AND c.heading != '';")" 0

# A query returns k hits, best first, each from the corpus.
sl_ok query -k 4 --json "how do I restore the data directory from a backup"
check_eq "query: k hits" "$(json 'hits | length')" 4
check_eq "query: scores descending" "$(json '[hits[].score] as $s | $s == ($s | sort | reverse)')" true
check_eq "query: vector scores are cosines" \
    "$(json '[hits[].vector.score // empty | select(. > 1.0001 or . < -1.0001)] | length')" 0
check_eq "query: every hit's uri is a corpus file" \
    "$(jqo --arg c "$corpus/" '[hits[].uri | select(startswith($c) | not)] | length')" 0
check_eq "query: backups question finds backup-restore.md first" \
    "$(json 'hits[0].uri')" "$corpus/backup-restore.md"
check_gt "query: the hit carries its text" "$(json 'hits[0].text | length')" 20

# The table output (no --json) names the source and line of each hit.
sl_ok query -k 2 "rotate an API token without downtime"
check_contains "query table shows source:line" "$OUT" "authentication\.md:[0-9]+"

# A sentence copied verbatim from a file finds that file first: for every
# file, its longest line of prose (list markers stripped; starts with a
# letter, so no table rows or fences).
for f in "$corpus"/*; do
    sentence=$(sed -E 's/^[[:space:]]*([*-]|[0-9]+\.)?[[:space:]]*//' "$f" | grep -E '^[A-Za-z]' |
        awk '{ if (length($0) > length(best)) best = $0 } END { print best }')
    [[ -n $sentence ]] || continue
    sl_ok query -k 1 --json "$sentence"
    check_eq "verbatim line of $(basename "$f") finds it first" "$(json 'hits[0].uri')" "$f"
done

finish
