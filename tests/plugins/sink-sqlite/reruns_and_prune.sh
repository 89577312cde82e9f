#!/usr/bin/env bash
# tests/plugins/sink-sqlite/reruns_and_prune.sh - sink-sqlite through the
# real sluice, on 300 generated documents and two pool threads, so lookups
# run while groups are being written: grouped stores (the default) and one
# transaction per document (group_max = 1) make the same store; a rerun
# with --prune on an unchanged corpus skips everything, prunes nothing and
# records every document as seen; after files are deleted and edited,
# exactly the deleted ones go, the edited ones are replaced, and the store
# equals a fresh ingest of what is left.
source "$(dirname "$0")/../../e2e/lib.sh"

n=300
bash "$SRC/bench/gen_corpus.sh" "$n" docs 2000 5 >/dev/null
check_eq "generated documents" "$(count_files docs '*.md')" "$n"
common=(run --json --set sluice.threads=2)

sl_ok "${common[@]}" --set store.path="$T/grouped.db" docs
check_eq "grouped: stored" "$(json .documents.stored)" "$n"
sl_ok "${common[@]}" --set store.path="$T/single.db" --set store.group_max=1 docs
check_eq "group_max=1: stored" "$(json .documents.stored)" "$n"
check_eq "group_max=1 and grouped stores are equal" "$(store_digest single.db)" "$(store_digest grouped.db)"
check_eq "grouped: chunk_count matches the chunk rows" "$(chunk_count_mismatches grouped.db)" 0
check_eq "grouped: no duplicate (document, ordinal)" "$(duplicate_chunks grouped.db)" 0

# A rerun over the unchanged corpus, with --prune: the lookups' seen-marks
# must all be written before prune runs, or it would delete skipped documents.
sl_ok "${common[@]}" --set store.path="$T/grouped.db" --prune docs
check_eq "unchanged rerun: skipped" "$(json .documents.skipped)" "$n"
check_eq "unchanged rerun: stored" "$(json .documents.stored)" 0
check_eq "unchanged rerun: pruned" "$(json .documents.pruned)" 0
check_eq "unchanged rerun: documents kept" "$(sql grouped.db "SELECT count(*) FROM documents;")" "$n"
check_eq "unchanged rerun: every document seen by this run" \
    "$(sql grouped.db "SELECT count(*) FROM documents WHERE seen_run = $(json .run_id);")" "$n"

# Seven files deleted, three edited.
gone=(d000/doc-00000.md d000/doc-00042.md d001/doc-00100.md d001/doc-00157.md d002/doc-00201.md
    d002/doc-00250.md d002/doc-00299.md)
for f in "${gone[@]}"; do rm "docs/$f"; done
for f in d000/doc-00007.md d001/doc-00123.md d002/doc-00222.md; do printf '\n## Edited\n\nA new section.\n' >>"docs/$f"; done
sl_ok "${common[@]}" --set store.path="$T/grouped.db" --prune docs
check_eq "after edits: pruned" "$(json .documents.pruned)" "${#gone[@]}"
check_eq "after edits: stored (the edited ones)" "$(json .documents.stored)" 3
check_eq "after edits: skipped" "$(json .documents.skipped)" "$((n - ${#gone[@]} - 3))"
list=$(printf "'docs/%s'," "${gone[@]}")
check_eq "the deleted files' documents are gone" \
    "$(sql grouped.db "SELECT count(*) FROM documents WHERE uri IN (${list%,});")" 0
check_eq "every other document stays" "$(sql grouped.db "SELECT count(*) FROM documents;")" "$((n - ${#gone[@]}))"
check_eq "no orphaned chunks" "$(orphan_chunks grouped.db)" 0
sl_ok "${common[@]}" --set store.path="$T/fresh.db" docs
check_eq "the store equals a fresh ingest of what is left" "$(store_digest grouped.db)" "$(store_digest fresh.db)"

finish
