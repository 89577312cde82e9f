#!/usr/bin/env bash
# tests/e2e/incremental.sh - a second run does only the work that changed.
# Unchanged documents (same content hash, same pipeline fingerprint) are
# skipped and the store stays byte-for-byte the same; a modified document is
# stored again with its chunks replaced, never added twice; an option that
# changes the output (chunker.size) changes the fingerprint, so every
# document is stored again, and going back restores the earlier store.
source "$(dirname "$0")/lib.sh"

cp -r "$SRC/examples/corpus" docs
n=$(count_files docs '*.md' '*.txt')
db=.sluice/store.db

sl_ok run --json docs
check_eq "first run stores every document" "$(json .documents.stored)" "$n"
d1=$(store_digest "$db")
f1=$(sql "$db" "SELECT fingerprint FROM documents ORDER BY uri;")
check_eq "uris are the paths as found from the PATH given" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri LIKE 'docs/%';")" "$n"

# Nothing changed: everything skipped, store untouched.
sl_ok run --json docs
check_eq "unchanged rerun: total" "$(json .documents.total)" "$n"
check_eq "unchanged rerun: every document skipped" "$(json .documents.skipped)" "$n"
check_eq "unchanged rerun: nothing stored" "$(json .documents.stored)" 0
check_eq "unchanged rerun: no chunks written" "$(json .chunks)" 0
check_eq "unchanged rerun: store digest" "$(store_digest "$db")" "$d1"

# A new modification time with the same bytes is not a change.
touch docs/*
sl_ok run docs
check_contains "table report says what was skipped" "$OUT" "$n skipped"
check_eq "touched files: store digest" "$(store_digest "$db")" "$d1"

# Modify one file: it alone is stored again, its chunks replaced.
target=docs/tuning.md
old_hash=$(sql "$db" "SELECT hash FROM documents WHERE uri = '$target';")
others_before=$(sql "$db" "SELECT d.uri, d.hash, c.ordinal, c.text, hex(c.vector) FROM chunks c
                           JOIN documents d ON d.id = c.doc_id WHERE d.uri != '$target'
                           ORDER BY d.uri, c.ordinal;" | sha256sum)
check_gt "the removed part is stored before the change" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = '$target' AND c.text LIKE '%transparent huge pages%';")" 0
{
    head -n 12 "$SRC/examples/corpus/tuning.md"
    printf '\n## Closing\n\nThe zanzibarquux setting replaced all of the advice that used to follow.\n'
} >"$target"

sl_ok run --json docs
check_eq "one modified: stored" "$(json .documents.stored)" 1
check_eq "one modified: the rest skipped" "$(json .documents.skipped)" "$((n - 1))"
check_ne "modified document has a new hash" "$(sql "$db" "SELECT hash FROM documents WHERE uri = '$target';")" "$old_hash"
check_eq "modified document: one row" "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = '$target';")" 1
check_eq "no duplicate (document, ordinal)" "$(duplicate_chunks "$db")" 0
check_eq "chunk_count matches the chunk rows" "$(chunk_count_mismatches "$db")" 0
check_eq "no orphaned chunks" "$(orphan_chunks "$db")" 0
check_gt "new text is in the chunks" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = '$target' AND c.text LIKE '%zanzibarquux%';")" 0
check_eq "removed text is gone from the chunks" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = '$target' AND c.text LIKE '%transparent huge pages%';")" 0
check_eq "other documents' chunks untouched" \
    "$(sql "$db" "SELECT d.uri, d.hash, c.ordinal, c.text, hex(c.vector) FROM chunks c
                  JOIN documents d ON d.id = c.doc_id WHERE d.uri != '$target'
                  ORDER BY d.uri, c.ordinal;" | sha256sum)" "$others_before"
sl_ok query -k 1 --json "zanzibarquux setting"
check_eq "query finds the new text" "$(json 'hits[0].uri')" "$target"
d2=$(store_digest "$db")
chunks2=$(sql "$db" "SELECT count(*) FROM chunks;")

# A chunker option changes the pipeline fingerprint: everything is redone.
sl_ok run --json --set chunker.size=400 docs
check_eq "chunker.size=400: every document stored again" "$(json .documents.stored)" "$n"
check_eq "chunker.size=400: nothing skipped" "$(json .documents.skipped)" 0
f2=$(sql "$db" "SELECT fingerprint FROM documents ORDER BY uri;")
check_eq "chunker.size=400: one fingerprint for all documents" "$(sort -u <<<"$f2" | wc -l | tr -d ' ')" 1
check_ne "chunker.size=400: the fingerprint changed" "$(sort -u <<<"$f2")" "$(sort -u <<<"$f1")"
check_gt "smaller chunks: more of them" "$(sql "$db" "SELECT count(*) FROM chunks;")" "$chunks2"
check_eq "no duplicate (document, ordinal)" "$(duplicate_chunks "$db")" 0
check_eq "chunk_count matches the chunk rows" "$(chunk_count_mismatches "$db")" 0
check_eq "no orphaned chunks" "$(orphan_chunks "$db")" 0
check_eq "longest chunk respects size=400 (plus overlap slack)" \
    "$(sql "$db" "SELECT max(length(text)) <= 600 FROM chunks;")" 1

sl_ok run --json --set chunker.size=400 docs
check_eq "same option again: every document skipped" "$(json .documents.skipped)" "$n"

# Options that do not change the output leave the fingerprint alone.
sl_ok run --json --set sluice.threads=1 --set chunker.size=400 docs
check_eq "threads=1: still every document skipped" "$(json .documents.skipped)" "$n"

# Back to the defaults: stored again, and the store equals the earlier one.
sl_ok run --json docs
check_eq "back to defaults: every document stored again" "$(json .documents.stored)" "$n"
check_eq "back to defaults: store digest as before" "$(store_digest "$db")" "$d2"

finish
