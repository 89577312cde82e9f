#!/usr/bin/env bash
# tests/e2e/prune.sh - a removed document is cleaned up only when asked.
# Without --prune its rows stay (a run over part of a tree must not delete
# the rest); with --prune the documents under the PATHs given that this run
# did not see are deleted with their chunks, and nothing else is.
source "$(dirname "$0")/lib.sh"

mkdir -p docs other
cp "$SRC"/examples/corpus/* docs/
cp "$SRC"/examples/corpus/faq.txt other/
n=$(count_files docs '*.md' '*.txt')
db=.sluice/store.db
gone=docs/monitoring.md

sl_ok run --json docs other
check_eq "first run stores docs and other" "$(json .documents.stored)" "$((n + 1))"
gone_id=$(sql "$db" "SELECT id FROM documents WHERE uri = '$gone';")
check_gt "the document to remove has chunks" \
    "$(sql "$db" "SELECT count(*) FROM chunks WHERE doc_id = $gone_id;")" 0

rm "$gone"

sl_ok run --json docs
check_eq "without --prune: nothing pruned" "$(json .documents.pruned)" 0
check_eq "without --prune: the removed file's document stays" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = '$gone';")" 1
check_gt "without --prune: its chunks stay" "$(sql "$db" "SELECT count(*) FROM chunks WHERE doc_id = $gone_id;")" 0
check_eq "without --prune: total documents" "$(sql "$db" "SELECT count(*) FROM documents;")" "$((n + 1))"

# Pruning docs/ must not touch other/, which this run does not cover.
sl_ok run --json --prune docs
check_eq "with --prune: one pruned" "$(json .documents.pruned)" 1
check_eq "with --prune: the rest skipped" "$(json .documents.skipped)" "$((n - 1))"
check_eq "with --prune: the document row is gone" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = '$gone';")" 0
check_eq "with --prune: its chunks are gone" "$(sql "$db" "SELECT count(*) FROM chunks WHERE doc_id = $gone_id;")" 0
check_eq "with --prune: no orphaned chunks" "$(orphan_chunks "$db")" 0
check_eq "with --prune: the other documents under docs/ stay" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri LIKE 'docs/%';")" "$((n - 1))"
check_eq "with --prune: a document outside the PATH given stays" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = 'other/faq.txt';")" 1
check_eq "chunk_count matches the chunk rows" "$(chunk_count_mismatches "$db")" 0

sl_ok query -k 20 --json "prometheus metrics alerts histogram scrape endpoint"
check_eq "query no longer returns the pruned document" \
    "$(jqo --arg g "$gone" '[hits[] | select(.uri == $g)] | length')" 0

# Pruning again finds nothing more to do.
sl_ok run --json --prune docs
check_eq "second --prune: nothing pruned" "$(json .documents.pruned)" 0
check_eq "second --prune: every document skipped" "$(json .documents.skipped)" "$((n - 1))"

finish
