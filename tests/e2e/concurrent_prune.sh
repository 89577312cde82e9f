#!/usr/bin/env bash
# tests/e2e/concurrent_prune.sh - `sluice run --prune docs` started while
# `sluice run docs` runs on the same SQLite store (issue 17, finding 4: the
# plain run's lookups overwrote seen_run under the pruning one, which then
# deleted hundreds of documents that still existed, both exiting 0).
#
# One writer per store: the second run is refused with exit 4 and a message
# naming the holder (PID, host, start time), deletes nothing, and the store
# ends complete. With --wait it waits instead, runs once the holder is done,
# and prunes nothing that exists. The holder is paused (SIGSTOP) while it
# holds the store, so "while it runs" does not depend on timing. A run
# waiting for the store ends at SIGTERM.
source "$(dirname "$0")/lib.sh"

ndocs=1500
bash "$SRC/bench/gen_corpus.sh" "$ndocs" docs 2000 11 >/dev/null
db=.sluice/store.db
lock=$db.lock

# the body is the PostgreSQL test's too (concurrent_prune_body.sh)
STORE=()
holds_store() { [[ -f $lock ]] && [[ $(cut -d' ' -f1 "$lock" 2>/dev/null) == "$1" ]]; }
stored() { sql "$db" "SELECT count(*) FROM documents;" 2>/dev/null || echo 0; }
complete() {
    check_eq "$1: every file once" \
        "$(sql "$db" "SELECT count(*), count(DISTINCT uri) FROM documents;")" "$ndocs|$ndocs"
    check_eq "$1: chunk counts" "$(chunk_count_mismatches "$db")" 0
    check_eq "$1: no orphan chunks" "$(orphan_chunks "$db")" 0
}
fresh_store() { rm -rf .sluice; }
HOST_RE="$(hostname),"
source "$(dirname "$0")/concurrent_prune_body.sh"

prune_is_refused
prune_waits

# --- SIGTERM while waiting: exit 3 (interrupted), nothing started ---
rm -rf .sluice
start_holder
"$SLUICE" run --json --prune --wait docs </dev/null >term.json 2>term.err &
waiter=$!
wait_for_waiting term.err "$waiter"
kill -TERM "$waiter" 2>/dev/null || true
end=$(($(date +%s) + 30))
while kill -0 "$waiter" 2>/dev/null && (($(date +%s) < end)); do sleep 0.1; done
check "SIGTERM while waiting: the waiter ends (the holder still holds the store)" test ! -d "/proc/$waiter"
kill -9 "$waiter" 2>/dev/null || true
set +e
wait "$waiter"
wrc=$?
set -e
check_eq "SIGTERM while waiting: exit status 3 (interrupted)" "$wrc" 3
check_contains "SIGTERM while waiting: says so" "$(cat term.err)" "interrupted while waiting for the store"
end_holder
check_eq "SIGTERM while waiting: the holder went on, exit status" "$HOLDER_RC" 0
check_eq "SIGTERM while waiting: the store is complete" \
    "$(sql "$db" "SELECT count(*), count(DISTINCT uri) FROM documents;")" "$ndocs|$ndocs"

# and a file that is really gone is still pruned by the waiting run's kind
rm docs/d000/doc-00000.md
sl_ok run --json --prune --wait docs
check_eq "--wait with nobody holding: runs at once, prunes the removed file" "$(json .documents.pruned)" 1
finish
