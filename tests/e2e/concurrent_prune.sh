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
# holds the store, so "while it runs" does not depend on timing.
source "$(dirname "$0")/lib.sh"

ndocs=1500
bash "$SRC/bench/gen_corpus.sh" "$ndocs" docs 2000 11 >/dev/null
db=.sluice/store.db
lock=$db.lock

# holder_started: the holder holds the store and has stored some documents.
holder_pid=
holder_started() {
    [[ -f $lock ]] && [[ $(cut -d' ' -f1 "$lock" 2>/dev/null) == "$holder_pid" ]] &&
        [[ $(sql "$db" "SELECT count(*) FROM documents;" 2>/dev/null || echo 0) -ge 20 ]]
}
# start_holder: `sluice run docs` in the background, paused once it holds
# the store mid-run.
start_holder() {
    "$SLUICE" run --json docs </dev/null >holder.json 2>holder.err &
    holder_pid=$!
    for _ in $(seq 1 1200); do
        holder_started && break
        kill -0 "$holder_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -STOP "$holder_pid" 2>/dev/null || true
    check "the holder is mid-run, holding the store" holder_started
}
# end_holder: lets the holder go on and waits for it; HOLDER_RC.
end_holder() {
    kill -CONT "$holder_pid" 2>/dev/null || true
    set +e
    wait "$holder_pid"
    HOLDER_RC=$?
    set -e
}

# --- without --wait: refused, naming the holder; nothing deleted ---
start_holder
stored_then=$(sql "$db" "SELECT count(*) FROM documents;")
sl run --json --prune docs
check_eq "prune while a run holds the store: exit status 4" "$RC" 4
check_contains "the message names the holder's PID, host and start time" "$ERR" \
    "in use by another sluice process \(PID $holder_pid on host $(hostname), started [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC"
check_eq "the refused prune deleted nothing" "$(sql "$db" "SELECT count(*) FROM documents;")" "$stored_then"
sl run --json docs
check_eq "a plain second run, the same: exit status 4" "$RC" 4
end_holder
check_eq "the holder: exit status" "$HOLDER_RC" 0
OUT=$(cat holder.json)
check_eq "the holder stored every document" "$(json .documents.stored)" "$ndocs"
check_eq "the store is complete: every file once" \
    "$(sql "$db" "SELECT count(*), count(DISTINCT uri) FROM documents;")" "$ndocs|$ndocs"
check_eq "the store is complete: chunk counts" "$(chunk_count_mismatches "$db")" 0
check_eq "the store is complete: no orphan chunks" "$(orphan_chunks "$db")" 0

# --- with --wait: waits, then runs; prunes only what is gone ---
rm -rf .sluice
start_holder
"$SLUICE" -v run --json --prune --wait docs </dev/null >waiter.json 2>waiter.err &
waiter=$!
for _ in $(seq 1 600); do
    grep -q "waiting (--wait)" waiter.err && break
    kill -0 "$waiter" 2>/dev/null || break
    sleep 0.05
done
check_contains "--wait says whom it waits for" "$(cat waiter.err)" "waiting \(--wait\): .*PID $holder_pid on host"
check "--wait: still waiting while the holder holds the store" kill -0 "$waiter"
end_holder
check_eq "--wait: the holder's exit status" "$HOLDER_RC" 0
set +e
wait "$waiter"
wrc=$?
set -e
check_eq "--wait: ran after the holder, exit status" "$wrc" 0
OUT=$(cat waiter.json)
check_eq "--wait: nothing pruned (every file exists)" "$(json .documents.pruned)" 0
check_eq "--wait: everything skipped (the holder stored it)" "$(json .documents.skipped)" "$ndocs"
check_contains "--wait: the log says it got the store" "$(cat waiter.err)" "the store is ours after waiting"
check_eq "--wait: the store is complete" \
    "$(sql "$db" "SELECT count(*), count(DISTINCT uri) FROM documents;")" "$ndocs|$ndocs"
check_eq "--wait: chunk counts" "$(chunk_count_mismatches "$db")" 0

# --- SIGTERM while waiting: exit 3 (interrupted), nothing started ---
rm -rf .sluice
start_holder
"$SLUICE" run --json --prune --wait docs </dev/null >term.json 2>term.err &
waiter=$!
for _ in $(seq 1 600); do
    grep -q "waiting (--wait)" term.err && break
    kill -0 "$waiter" 2>/dev/null || break
    sleep 0.05
done
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
