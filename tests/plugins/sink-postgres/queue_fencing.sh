#!/usr/bin/env bash
# tests/plugins/sink-postgres/queue_fencing.sh - the classic failure of
# lease-based queues, made to happen: node A leases the one job, reads and
# looks the document up, and while its embedding request waits at the
# provider it is stopped (SIGSTOP) past its lease. Node B takes the job
# (token 2), stores and acks it, and exits. A is continued: its embedding
# arrives, its store's transaction finds the job re-leased, and the commit
# is refused - A's log says so - so the document is stored exactly once,
# by B, and the job is done with B's token.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/../../providers-e2e/fake.sh"
source "$HERE/pglib.sh"
source "$HERE/queuelib.sh"

pg_start
start_fake f --embed-latency-ms 1500 --latency-dist fixed
mkdir docs
printf '# Fenced\n\nOne document that two nodes will both work on.\n' >docs/one.md
queue_conf q.ini "${URL[f]}" "queue_lease = 1s"

sl -c q.ini enqueue docs
check_eq "enqueue: exit status" "$RC" 0
check_contains "enqueue: one job" "$OUT" "1 enqueued"

start_node a
apid=${NODE[a]}
leased_by_a() { [[ $(pg_sql "SELECT count(*) FROM sluice_jobs WHERE state = 'leased' AND lease_owner LIKE '%:$apid:%'") == 1 ]]; }
wait_until 60 "node A leases the job" leased_by_a
embedding_asked() { [[ $(fake_stats f '.by_path["/v1/embeddings"] // 0') -ge 1 ]]; }
wait_until 60 "node A's embedding request reaches the provider" embedding_asked
kill -STOP "$apid"
fake_config f '{"embed-latency-ms": 0}' >/dev/null
expired() { [[ $(pg_sql "SELECT count(*) FROM sluice_jobs WHERE lease_expires < now()") == 1 ]]; }
wait_until 30 "A's lease runs out while it is stopped" expired

start_node b
bpid=${NODE[b]}
wait "$bpid" && brc=0 || brc=$?
check_eq "node B: exit status" "$brc" 0
check_eq "node B stored the document" "$(jq .documents.stored b.out)" 1
check_eq "the job is done, by B, with token 2" \
    "$(pg_sql "SELECT state || ' ' || token || ' ' || (done_by LIKE '%:$bpid:%') FROM sluice_jobs")" "done 2 true"

kill -CONT "$apid"
wait "$apid" && arc=0 || arc=$?
check_eq "node A: exit status (its document failed: lease lost)" "$arc" 1
check_contains "node A's log: its late commit was refused" "$(cat a.err)" \
    "lease lost: job 1 token 1 was re-leased; commit refused"
check_eq "node A stored nothing" "$(jq .documents.stored a.out)" 0
check_eq "stored exactly once" "$(pg_sql "SELECT count(*) FROM sluice_documents")" 1
check_eq "its chunks once" "$(pg_sql "SELECT count(*) - count(DISTINCT (doc_id, ordinal)) FROM sluice_chunks")" 0
check_eq "the job is still done by B (A's refusal changed nothing)" \
    "$(pg_sql "SELECT state || ' ' || token || ' ' || failures FROM sluice_jobs")" "done 2 0"
check_eq "no job left leased" "$(jobs_in leased)" 0
finish
