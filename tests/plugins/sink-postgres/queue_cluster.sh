#!/usr/bin/env bash
# tests/plugins/sink-postgres/queue_cluster.sh - the issue's test: four node
# processes share 2,000 documents through the job queue in a PostgreSQL
# started here, embedding through the fake provider. Two nodes are killed
# with SIGKILL at random moments, a third is stopped (SIGSTOP) past its
# lease and continued. Afterwards, in SQL: every document stored exactly
# once (none missing, none twice), each with the chunk count of a reference
# single-process run, no job left leased or dead, the killed nodes' jobs
# taken by others (attempts rose, failures did not), and the stalled node's
# late commits refused (its log says so). n3, the node that stalls, embeds
# through a slow fake of its own, so that it is stopped while its documents
# wait on the provider, not inside a store transaction.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/../../providers-e2e/fake.sh"
source "$HERE/pglib.sh"
source "$HERE/queuelib.sh"

N=2000
pg_start
start_fake f
start_fake slow
mkdir docs
for ((i = 0; i < N; i++)); do
    d=docs/$((i % 20))
    [[ -d $d ]] || mkdir "$d"
    # sizes vary so chunk counts do (chunk-text size = 400)
    {
        printf '# Document %d\n\n' "$i"
        for ((p = 0; p <= i % 4; p++)); do
            printf 'Paragraph %d of document %d: the queue hands each document to one node at a time, and the store acks it in the same transaction that writes its chunks.\n\n' "$p" "$i"
        done
    } >"$d/doc$i.md"
done
queue_conf q.ini "${URL[f]}" "queue_lease = 3s" "queue_lease_size = 8" "queue_backoff = 200ms"

# the reference: one plain process into tables of another prefix
sl -c q.ini --set store.table_prefix=ref_ run --json docs
check_eq "reference run: exit status" "$RC" 0
check_eq "reference run: stored" "$(json .documents.stored)" "$N"

sl -c q.ini enqueue docs
check_eq "enqueue: exit status" "$RC" 0
check_contains "enqueue: every document" "$OUT" "$N enqueued"

# nodes answer slowly enough to be caught mid-document
fake_config f '{"embed-latency-ms": 40, "embed-latency-jitter-ms": 30}' >/dev/null
fake_config slow '{"embed-latency-ms": 1500}' >/dev/null
for n in n1 n2 n4; do start_node "$n"; done
start_node n3 --set "embedder.base_url=${URL[slow]}/v1"
done_at_least() { (($(jobs_in 'done') >= $1)); }
holds() { (($(pg_sql "SELECT count(*) FROM sluice_jobs WHERE state = 'leased' AND lease_owner LIKE '%:$1:%'") > 0)); }

# two SIGKILLs at random moments, each while the node holds leases
k1=$((100 + RANDOM % 300))
k2=$((k1 + 100 + RANDOM % 300))
wait_until 150 "$k1 documents done" done_at_least "$k1"
wait_until 30 "n1 holds leases" holds "${NODE[n1]}"
kill -9 "${NODE[n1]}"
wait_until 150 "$k2 documents done" done_at_least "$k2"
wait_until 30 "n2 holds leases" holds "${NODE[n2]}"
kill -9 "${NODE[n2]}"

# the stall: n3 stopped holding a lease it took over a second ago, so that
# the document is past its lookup and waits on the slow provider; it will
# store it late. A job n3 holds locked (stopped inside a store transaction,
# after the ack) stays n3's until it goes on: the other nodes skip it rather
# than wait. So only unlocked leases count, and while n3 holds none it goes
# on and is stopped anew (10 tries).
n3_old_leases() { pg_sql "SELECT coalesce(string_agg(id::text, ','), '') FROM (SELECT id FROM sluice_jobs WHERE state = 'leased' AND lease_owner LIKE '%:${NODE[n3]}:%' AND leased_at < now() - interval '1 second' FOR UPDATE SKIP LOCKED) s"; }
holds_old() { [[ -n $(n3_old_leases) ]]; }
stalled=""
for ((try = 0; try < 10 && ${#stalled} == 0; try++)); do
    ((try == 0)) || kill -CONT "${NODE[n3]}"
    wait_until 30 "n3 holds a lease over a second old" holds_old
    kill -STOP "${NODE[n3]}"
    stalled=$(n3_old_leases)
done
check "n3 stopped holding a lease it had not locked" test -n "$stalled"
taken() { (($(pg_sql "SELECT count(*) FROM sluice_jobs WHERE id IN ($stalled) AND state = 'done' AND done_by NOT LIKE '%:${NODE[n3]}:%'") > 0)); }
wait_until 120 "another node took and stored a job of the stalled n3" taken
kill -CONT "${NODE[n3]}"

wait "${NODE[n1]}" 2>/dev/null || true
wait "${NODE[n2]}" 2>/dev/null || true
wait "${NODE[n3]}" && rc3=0 || rc3=$?
wait "${NODE[n4]}" && rc4=0 || rc4=$?
check "n3 ended by itself (0, or 1 when a refused commit failed a document): $rc3" test "$rc3" -le 1
check_eq "n4: exit status" "$rc4" 0

check_eq "documents stored" "$(pg_sql "SELECT count(*) FROM sluice_documents")" "$N"
check_eq "no document twice" "$(pg_sql "SELECT count(*) - count(DISTINCT uri) FROM sluice_documents")" 0
check_eq "none missing: every reference document is stored" \
    "$(pg_sql "SELECT count(*) FROM ref_documents r WHERE NOT EXISTS (SELECT 1 FROM sluice_documents d WHERE d.uri = r.uri)")" 0
check_eq "chunk counts as the reference run's" \
    "$(pg_sql "SELECT count(*) FROM ref_documents r JOIN sluice_documents d USING (uri) WHERE d.chunk_count <> r.chunk_count")" 0
check_eq "chunks in all, as the reference" "$(pg_sql "SELECT count(*) FROM sluice_chunks")" \
    "$(pg_sql "SELECT count(*) FROM ref_chunks")"
check_eq "each document's chunks match its count" \
    "$(pg_sql "SELECT count(*) FROM sluice_documents d WHERE chunk_count <> (SELECT count(*) FROM sluice_chunks c WHERE c.doc_id = d.id)")" 0
check_eq "every job done" "$(jobs_in 'done')" "$N"
check_eq "no job left leased" "$(jobs_in leased)" 0
check_eq "no job dead" "$(jobs_in dead)" 0
check_eq "one job per document" "$(pg_sql "SELECT count(DISTINCT uri) FROM sluice_jobs")" "$N"
check_eq "expired leases are not failures" "$(pg_sql "SELECT count(*) FROM sluice_jobs WHERE failures > 0")" 0
check_gt "the killed and stalled nodes' jobs were leased again" \
    "$(pg_sql "SELECT count(*) FROM sluice_jobs WHERE attempts > 1")" 0
check_contains "the stalled node's late commit was refused (its log)" "$(cat n3.err)" "commit refused"
sl -c q.ini queue status --json
check_eq "queue status: exit status" "$RC" 0
check_eq "queue status: done" "$(json .done)" "$N"
check_eq "queue status: nothing queued" "$(json .queued)" 0
finish
