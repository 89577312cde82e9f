#!/usr/bin/env bash
# tests/plugins/sink-postgres/queue_locked.sh - a node stalled inside its
# store's transaction holds its job's row locked, past the lease. The rest
# of the queue must not wait for it: a healthy node reclaims and leases
# around the locked job (SKIP LOCKED) and stores every other document while
# the lock is held. Once the stalled transaction ends, the locked job's
# expired lease is reclaimed like any other, the node takes it with the
# next fencing token, stores it and exits.
#
# The stalled node is played by a psql session: the job is made leased by a
# node "ghost" whose lease ran out, and the session holds the row FOR UPDATE
# (as a store transaction does after its ack) in a long pg_sleep.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/../../providers-e2e/fake.sh"
source "$HERE/pglib.sh"
source "$HERE/queuelib.sh"

N=20
pg_start
start_fake f
mkdir docs
for ((i = 0; i < N; i++)); do
    printf '# Document %d\n\nDocument %d of the queue, one paragraph long.\n' "$i" "$i" >"docs/doc$i.md"
done
queue_conf q.ini "${URL[f]}" "queue_lease = 2s" "queue_lease_size = 4"

sl -c q.ini enqueue docs
check_eq "enqueue: exit status" "$RC" 0
check_contains "enqueue: every document" "$OUT" "$N enqueued"

ghost=$(pg_sql "SELECT min(id) FROM sluice_jobs")
ghost_uri=$(pg_sql "SELECT uri FROM sluice_jobs WHERE id = $ghost")
pg_sql "UPDATE sluice_jobs SET state = 'leased', lease_owner = 'ghost:1:1', token = token + 1, attempts = 1,
        leased_at = now() - interval '10 s', lease_expires = now() - interval '5 s' WHERE id = $ghost" >/dev/null
# the stalled transaction: the row locked, then a sleep the test cancels
pg_sql "BEGIN; SELECT id FROM sluice_jobs WHERE id = $ghost FOR UPDATE; SELECT pg_sleep(300) /* ghost */; COMMIT" \
    >ghost.out 2>&1 &
ghost_psql=$!
locked() {
    [[ $(pg_sql "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(300) /* ghost */%' AND pid <> pg_backend_pid()") == 1 ]]
}
wait_until 30 "the ghost's transaction holds the job's row" locked
check_eq "the row is locked (another session cannot lock it now)" \
    "$(pg_sql "SELECT count(*) FROM (SELECT id FROM sluice_jobs WHERE id = $ghost FOR UPDATE SKIP LOCKED) s")" 0

start_node n
others_stored() { (($(pg_sql "SELECT count(*) FROM sluice_documents") >= N - 1)); }
wait_until 60 "every other document stored while the ghost's row is locked" others_stored
check_eq "the ghost's document is not stored yet" \
    "$(pg_sql "SELECT count(*) FROM sluice_documents WHERE uri = '$ghost_uri'")" 0
check_eq "the ghost's job is still its own" \
    "$(pg_sql "SELECT state || ' ' || lease_owner || ' ' || token FROM sluice_jobs WHERE id = $ghost")" "leased ghost:1:1 1"
check "the node is still running (the ghost's job is open)" kill -0 "${NODE[n]}"

# the stalled transaction ends (as a killed node's would)
gpid=$(pg_sql "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(300) /* ghost */%' AND pid <> pg_backend_pid()")
check_eq "the ghost's sleep is cancelled" "$(pg_sql "SELECT pg_cancel_backend(${gpid:-0})")" t
wait "$ghost_psql" 2>/dev/null || true

nrc=0
timeout 60 tail --pid="${NODE[n]}" -f /dev/null || fail "the node did not end within 60 s of the lock's release"
wait "${NODE[n]}" || nrc=$?
check_eq "node: exit status" "$nrc" 0
check_eq "node: stored every document" "$(jq .documents.stored n.out)" "$N"
check_eq "documents stored once each" "$(pg_sql "SELECT count(*) || ' ' || count(DISTINCT uri) FROM sluice_documents")" "$N $N"
check_eq "the ghost's job: done by the node with the next token" \
    "$(pg_sql "SELECT state || ' ' || token || ' ' || attempts || ' ' || (done_by LIKE '%:${NODE[n]}:%') FROM sluice_jobs WHERE id = $ghost")" \
    "done 2 2 true"
check_eq "every job done" "$(jobs_in 'done')" "$N"
check_eq "no failures counted" "$(pg_sql "SELECT count(*) FROM sluice_jobs WHERE failures > 0")" 0

# The ack again, as a store retried after a connection lost during its
# COMMIT sends it: with the token the job was done with, it passes (that
# lease's own commit); with an older token it is refused.
check_eq "the ack with the token the job was done with passes" \
    "$(pg_sql "SELECT 'passed' FROM (SELECT sluice_queue_ack($ghost, 2)) a" 2>&1)" passed
ack_old=$(pg_sql "SELECT sluice_queue_ack($ghost, 1)" 2>&1 || true)
check_contains "the ack with an older token is refused" "$ack_old" \
    "lease lost: job $ghost token 1 was re-leased; commit refused \(the job is now token 2, done"
check_eq "the job is unchanged by either" \
    "$(pg_sql "SELECT state || ' ' || token FROM sluice_jobs WHERE id = $ghost")" "done 2"
finish
