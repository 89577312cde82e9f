#!/usr/bin/env bash
# tests/plugins/sink-postgres/queue_fencing.sh - the classic failure of
# lease-based queues, made to happen: node A leases the one job, reads and
# looks the document up, and while its embedding request waits at the
# provider it is stopped (SIGSTOP) past its lease. Node B takes the job
# (token 2), stores and acks it, and exits. A is continued: its embedding
# arrives, its store's transaction finds the job re-leased, and the commit
# is refused - A's log says so - so the document is stored exactly once,
# by B, and the job is done with B's token.
#
# Then the same with an e-mail and its attachment: the attachment is a
# document found inside the leased one, stored before its parent. A's late
# store of it is refused too (fenced by the parent's job, which only the
# parent's store acks), so A stores nothing and B's copy stands.
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

# 2. An e-mail: node A is stopped while its attachment (a child document,
# past its lookup) waits on the provider; B stores the e-mail and the
# attachment; A's late store of the child is refused as its parent's is.
email_route >>q.ini
mail=(--set 'sluice.include=*.eml' --set store.table_prefix=m_)
mkdir mail
# an older version stored first, so that a node's lookup of the attachment
# leaves a trace (its seen_run) that says it is past that lookup
printf '# Inside\n\nThe attachment as it was.\n' >inside.md
python3 "$SRC/tests/e2e/make_email.py" mail mail/m.eml "A fenced e-mail with one attachment." inside.md=inside.md
sl -c q.ini "${mail[@]}" run --json mail
check_eq "e-mail: the older version stored" "$(json .documents.stored)" 2
old_run=$(pg_sql "SELECT seen_run FROM m_documents WHERE uri = 'mail/m.eml#inside.md'")
printf '# Inside\n\nThe attachment that two nodes both work on.\n' >inside.md
python3 "$SRC/tests/e2e/make_email.py" mail mail/m.eml "A fenced e-mail with one attachment." inside.md=inside.md
sl -c q.ini "${mail[@]}" enqueue mail
check_eq "e-mail: enqueued" "$RC" 0
fake_config f '{"embed-latency-ms": 3000}' >/dev/null
start_node a2 "${mail[@]}"
a2pid=${NODE[a2]}
mail_leased() { [[ $(pg_sql "SELECT count(*) FROM m_jobs WHERE state = 'leased' AND lease_owner LIKE '%:$a2pid:%'") == 1 ]]; }
wait_until 60 "node A leases the e-mail's job" mail_leased
child_looked_up() { [[ $(pg_sql "SELECT seen_run <> $old_run FROM m_documents WHERE uri = 'mail/m.eml#inside.md'") == t ]]; }
wait_until 60 "node A looked the attachment up (it now waits on the provider)" child_looked_up
kill -STOP "$a2pid"
fake_config f '{"embed-latency-ms": 0}' >/dev/null
mail_expired() { [[ $(pg_sql "SELECT count(*) FROM m_jobs WHERE lease_expires < now()") == 1 ]]; }
wait_until 30 "A's lease on the e-mail runs out while it is stopped" mail_expired
start_node b2 "${mail[@]}"
wait "${NODE[b2]}" && brc=0 || brc=$?
check_eq "e-mail, node B: exit status" "$brc" 0
check_eq "e-mail, node B stored the e-mail and its attachment" "$(jq .documents.stored b2.out)" 2
kill -CONT "$a2pid"
wait "$a2pid" && arc=0 || arc=$?
check_eq "e-mail, node A: exit status (its documents failed: lease lost)" "$arc" 1
check_contains "e-mail, node A's report: the attachment's late store was refused" \
    "$(jq -r '.failed[] | select(.uri == "mail/m.eml#inside.md") | .reason' a2.out)" \
    "lease lost: job 1 token 1 was re-leased; commit refused for a document found inside it"
check_eq "e-mail, node A stored nothing" "$(jq .documents.stored a2.out)" 0
check_eq "e-mail: each document stored once" \
    "$(pg_sql "SELECT count(*) || ' ' || count(DISTINCT uri) FROM m_documents")" "2 2"
check_eq "e-mail: the attachment is B's" \
    "$(pg_sql "SELECT count(*) FROM m_documents d WHERE d.uri = 'mail/m.eml#inside.md' AND d.stored_run = (SELECT stored_run FROM m_documents WHERE uri = 'mail/m.eml')")" 1
check_eq "e-mail: the job is done with B's token" \
    "$(pg_sql "SELECT state || ' ' || token || ' ' || failures FROM m_jobs")" "done 2 0"
finish
