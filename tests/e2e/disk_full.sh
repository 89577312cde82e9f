#!/usr/bin/env bash
# tests/e2e/disk_full.sh - a disk that fills up mid-run: the run stops with
# "stopped after N documents stored: ... no space left on device ..." and
# exit status 1 (a partial ingestion, never 2 "nothing was ingested"), N is
# exactly what the store holds, the store is consistent, and once there is
# room again a rerun completes it to what an uninterrupted run stores.
#
# The store lives on a small tmpfs the test mounts (the test runs as root,
# as CI does); a mount that fails fails the test with the reason.
source "$(dirname "$0")/lib.sh"

mkdir docs full
for i in $(seq 1 40); do
    {
        printf '# Document %d\n\n' "$i"
        for p in $(seq 1 12); do
            printf 'Paragraph %d of document %d: sluice stores chunks and their vectors, %d of them.\n\n' "$p" "$i" $((i * p))
        done
    } >"docs/d$i.md"
done
sl_ok --set store.path="$T/ref/store.db" run docs
ref=$(store_digest "$T/ref/store.db")

if ! mount_err=$(mount -t tmpfs -o size=640k tmpfs full 2>&1); then
    fail "cannot mount a tmpfs for the full disk (needs root, as CI runs): $mount_err ($(id))"
    finish
fi
umount_full() { umount "$T/full" 2>/dev/null || true; }
trap 'umount_full; cleanup' EXIT

# one document per transaction: the disk fills between two of them
sl --set store.path="$T/full/store.db" --set store.group_max=1 run docs
stored=$(sql full/store.db "SELECT count(*) FROM documents")
check_gt "some documents were stored before the disk filled" "$stored" 0
check_gt "the disk filled before every document was stored" 40 "$stored"
check_eq "disk full after some documents: exit status 1 (partial), not 2" "$RC" 1
check_contains "the report says where it stopped and why" "$OUT" "stopped after $stored documents stored: store: no space left on device for $T/full/store\.db"
check_contains "the report says what to do" "$OUT" "free some space, then run again"
check_contains "the report's count is what the store holds" "$OUT" "documents: 40 total, $stored stored"
check_eq "the store is consistent: no chunk without its document" "$(orphan_chunks full/store.db)" 0
check_eq "the store is consistent: every document has all its chunks" "$(chunk_count_mismatches full/store.db)" 0

sl --set store.path="$T/full/store.db" run docs
check_eq "still full: nothing more fits (exit 2: nothing was ingested)" "$RC" 2
check_contains "still full: it says so" "$OUT$ERR" "no space left on device"
mount -o remount,size=16m "$T/full"
sl_ok --set store.path="$T/full/store.db" run --json docs
check_eq "with room again the rerun stores the rest" "$(json .documents.stored)" $((40 - stored))
check_eq "and skips what was stored" "$(json .documents.skipped)" "$stored"
check_eq "the completed store equals an uninterrupted run's" "$(store_digest full/store.db)" "$ref"
sl --set store.path="$T/full/store.db" store check
check_eq "store check after the rerun: healthy" "$RC" 0
finish
