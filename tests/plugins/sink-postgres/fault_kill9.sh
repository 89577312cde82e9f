#!/usr/bin/env bash
# tests/plugins/sink-postgres/fault_kill9.sh - sluice killed with SIGKILL in
# the middle of runs into PostgreSQL, then run again to the end, leaves the
# same rows as a run that was never interrupted: the server rolls back the
# transactions of the dead connections, so a document is in the store whole
# or not at all, and the next run stores what is missing. Store A (tables
# a_*) comes from one uninterrupted run, store B (b1_*) from killed runs and
# a last one; their digests (every document and chunk, vectors included,
# ids, times and run numbers left out) must be equal.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

pg_start
ndocs=1500
bash "$SRC/bench/gen_corpus.sh" "$ndocs" docs 2500 9 >/dev/null
write_conf pg.ini "$PG_PORT"

t0=$(now_ms)
sl_ok -c pg.ini --set store.table_prefix=a_ run --json docs
ta=$(($(now_ms) - t0))
check_eq "uninterrupted run: stored" "$(json .documents.stored)" "$ndocs"
digest_a=$(pg_digest a_)
echo "uninterrupted run took ${ta} ms"

# Kill at random moments until 3 kills found sluice running with documents
# left to store (a kill after it finished tests nothing), at most 15 tries.
# A kill lands after the run has stored something of its own (polled in the
# store, so a slow start on a loaded machine cannot make every kill land
# before the first commit), plus a random delay drawn from the first 20% of
# the time the remaining documents took in the uninterrupted run: a kill
# late in the first 40% (as it was) could leave so few documents that the
# next run stored them all before its kill, and the tries ran out with one
# kill landed (the embedder got faster, and so did the runs).
RANDOM=$$
landed=0
tries=0
partial=0
# Store B's tables: a run that stores every document before its kill (on a
# loaded machine the poll for its first commit can see it late) leaves
# nothing to kill into, so store B starts over under a new prefix, and its
# kills are counted afresh.
round=1
b=b1_
while ((landed < 3 && tries < 20)); do
    before=$(pg_sql "SELECT count(*) FROM ${b}documents" 2>/dev/null || echo 0)
    if [[ $before -ge $ndocs ]]; then
        echo "store ${b} was filled before 3 kills landed: starting again"
        round=$((round + 1))
        b=b${round}_
        landed=0
        partial=0
        before=0
    fi
    tries=$((tries + 1))
    left_ms=$((ta * (ndocs - before) / ndocs))
    delay=$((RANDOM % (left_ms * 2 / 10 + 1)))
    "$SLUICE" -c pg.ini --set store.table_prefix="$b" run --json docs </dev/null >/dev/null 2>&1 &
    pid=$!
    t0=$(now_ms)
    while kill -0 "$pid" 2>/dev/null && (($(now_ms) - t0 < 60000)); do
        now=$(pg_sql "SELECT count(*) FROM ${b}documents" 2>/dev/null || echo 0)
        [[ $now -le $before ]] || break
        sleep 0.01
    done
    sleep "$((delay / 1000)).$(printf '%03d' $((delay % 1000)))"
    state="had already exited"
    if kill -9 "$pid" 2>/dev/null; then state=killed; fi
    wait "$pid" 2>/dev/null || true
    stored=$(pg_sql "SELECT count(*) FROM ${b}documents" 2>/dev/null || echo 0)
    if [[ $state == killed && $stored != "$ndocs" ]]; then
        landed=$((landed + 1))
        if [[ $stored -gt $before ]]; then partial=$((partial + 1)); fi
    fi
    echo "try $tries: sluice $state ${delay} ms after its first commit; store ${b} holds $stored documents"
done
check_gt "kills that found sluice running" "$landed" 1
check_gt "kills that left store B partly written" "$partial" 0
check_eq "store B: every stored document has all its chunks" \
    "$(pg_sql "SELECT count(*) FROM ${b}documents d WHERE chunk_count <>
               (SELECT count(*) FROM ${b}chunks c WHERE c.doc_id = d.id)")" 0

sl_ok -c pg.ini --set store.table_prefix="$b" run --json docs
check_eq "resumed run: failed" "$(json .documents.failed)" 0
check_eq "resumed run: stored + skipped = all" \
    "$(($(json .documents.stored) + $(json .documents.skipped)))" "$ndocs"
check_gt "resumed run: skipped what the killed runs stored" "$(json .documents.skipped)" 0
check_eq "store B (killed, resumed) = store A (uninterrupted)" "$(pg_digest "$b")" "$digest_a"

sl_ok -c pg.ini --set store.table_prefix="$b" run --json docs
check_eq "run after completion: every document skipped" "$(json .documents.skipped)" "$ndocs"
check_eq "run after completion: digest unchanged" "$(pg_digest "$b")" "$digest_a"

finish
