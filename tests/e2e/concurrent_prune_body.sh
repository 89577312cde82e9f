# tests/e2e/concurrent_prune_body.sh - the body the two concurrent-prune
# tests share (tests/e2e/concurrent_prune.sh on SQLite,
# tests/plugins/sink-postgres/concurrent_prune.sh on PostgreSQL): `sluice
# run --prune docs` started while `sluice run docs` holds the same store.
# Sourced after lib.sh, not a test of its own.
# shellcheck shell=bash
#
# The test sets, for its sink:
#   ndocs                 the files under docs/
#   STORE=(ARGS...)       sluice's options for the store in use
#   holds_store PID       true while PID holds the store (its writer lock)
#   stored                documents in the store (0 while there is none)
#   complete LABEL        checks that the store holds every file once, whole
#   fresh_store           points STORE at a new, empty store
#   HOST_RE               the holder's host as the refusal message shows it
# and calls prune_is_refused, then prune_waits.

# holder_started: the holder holds the store and has stored some documents.
holder_pid=
holder_started() { holds_store "$holder_pid" && [[ $(stored) -ge 20 ]]; }
# start_holder: `sluice run docs` in the background, paused (SIGSTOP) once it
# holds the store mid-run, so "while it runs" does not depend on timing.
start_holder() {
    "$SLUICE" "${STORE[@]}" run --json docs </dev/null >holder.json 2>holder.err &
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
# wait_for_waiting ERR PID: polls until the `--wait` run writing to ERR says
# it waits, or PID ended.
wait_for_waiting() {
    for _ in $(seq 1 600); do
        grep -q "waiting (--wait)" "$1" && break
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
}

# --- without --wait: refused, naming the holder; nothing deleted ---
prune_is_refused() {
    start_holder
    local stored_then
    stored_then=$(stored)
    sl "${STORE[@]}" run --json --prune docs
    check_eq "prune while a run holds the store: exit status 4" "$RC" 4
    check_contains "the message names the holder's PID, host and start time" "$ERR" \
        "in use by another sluice process \(PID $holder_pid on host $HOST_RE started [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC"
    check_eq "the refused prune deleted nothing" "$(stored)" "$stored_then"
    sl "${STORE[@]}" run --json docs
    check_eq "a plain second run, the same: exit status 4" "$RC" 4
    end_holder
    check_eq "the holder: exit status" "$HOLDER_RC" 0
    OUT=$(cat holder.json)
    check_eq "the holder stored every document" "$(json .documents.stored)" "$ndocs"
    complete "after the refused prune"
}

# --- with --wait: waits, then runs; prunes only what is gone ---
prune_waits() {
    fresh_store
    start_holder
    "$SLUICE" -v "${STORE[@]}" run --json --prune --wait docs </dev/null >waiter.json 2>waiter.err &
    local waiter=$! wrc
    wait_for_waiting waiter.err "$waiter"
    check_contains "--wait says whom it waits for" "$(cat waiter.err)" "waiting \(--wait\): .*PID $holder_pid on host"
    check "--wait: still waiting while the holder holds the store" kill -0 "$waiter"
    end_holder
    check_eq "--wait: the holder's exit status" "$HOLDER_RC" 0
    set +e
    wait "$waiter"
    wrc=$?
    set -e
    check_eq "--wait: ran after the holder, exit status" "$wrc" 0
    if [[ $wrc -ne 0 ]]; then echo "stderr: $(tail -c 3000 waiter.err)" >&2; fi
    OUT=$(cat waiter.json)
    check_eq "--wait: nothing pruned (every file exists)" "$(json .documents.pruned)" 0
    check_eq "--wait: everything skipped (the holder stored it)" "$(json .documents.skipped)" "$ndocs"
    check_contains "--wait: the log says it got the store" "$(cat waiter.err)" "the store is ours after waiting"
    complete "after --wait"
}
