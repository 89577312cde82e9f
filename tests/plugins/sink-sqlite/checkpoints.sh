#!/usr/bin/env bash
# tests/plugins/sink-sqlite/checkpoints.sh - the WAL is checkpointed on
# sink-sqlite's checkpoint thread, not by the writer after its commits, and
# stays bounded while a run writes far more than it: 700 generated
# documents with 8192-dimension embed-hash vectors make a store of about
# 160 MB, ten times the 16 MB that wakes the checkpointer. A sampler reads
# the WAL's size while the run writes: it must stay under 96 MB (the
# writer's own checkpoint past 4000 pages, 64 MB, plus a group's pages),
# where a WAL nobody checkpoints would grow as large as the store. Then
# every document is stored once, the WAL is gone at exit, the store checks
# healthy, and a rerun skips everything.
source "$(dirname "$0")/../../e2e/lib.sh"

n=700
bash "$SRC/bench/gen_corpus.sh" "$n" docs 5000 7 >/dev/null
check_eq "generated documents" "$(count_files docs '*.md')" "$n"
common=(-v run --json --set sluice.threads=2 --set store.path="$T/ckpt.db" --set embedder.dimension=8192)

# the largest WAL seen, in bytes, written to wal.max until stopped
(
    max=0
    while :; do
        s=$(stat -c %s "$T/ckpt.db-wal" 2>/dev/null || echo 0)
        if ((s > max)); then
            max=$s
            echo "$max" >"$T/wal.max"
        fi
        sleep 0.02
    done
) &
sampler=$!
sl_ok "${common[@]}" docs
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true

check_eq "stored" "$(json .documents.stored)" "$n"
check_eq "failed" "$(json .documents.failed)" 0
size=$(stat -c %s "$T/ckpt.db")
check_gt "the store is larger than 128 MB (so an unchecked WAL would be too)" "$size" $((128 << 20))
ckpts=$(sed -n 's/.* \([0-9][0-9]*\) checkpoints on the checkpoint thread.*/\1/p' <<<"$ERR")
check_gt "checkpoints ran on the checkpoint thread (log: ${ckpts:-none})" "${ckpts:-0}" 0
check_lacks "no checkpoint failed" "$ERR" "checkpoints failed"
check_lacks "the checkpoint thread started" "$ERR" "no checkpoint thread"
max=$(cat "$T/wal.max" 2>/dev/null || echo 0)
check_gt "the sampler saw the WAL (${max} bytes)" "$max" 0
check "the WAL stayed under 96 MB while the run wrote (largest seen: $max bytes)" test "$max" -lt $((96 << 20))
check "the WAL is gone after the run" test ! -e "$T/ckpt.db-wal"
check_eq "no duplicate (document, ordinal)" "$(duplicate_chunks ckpt.db)" 0
check_eq "chunk_count matches the chunk rows" "$(chunk_count_mismatches ckpt.db)" 0
check_eq "integrity" "$(sql ckpt.db "PRAGMA integrity_check;")" ok

sl_ok "${common[@]}" docs
check_eq "rerun: skipped" "$(json .documents.skipped)" "$n"
check_eq "rerun: stored" "$(json .documents.stored)" 0

finish
