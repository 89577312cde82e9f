#!/usr/bin/env bash
# tests/plugins/sink-postgres/queue_enqueue.sh - the job queue's bookkeeping:
# enqueue twice enqueues nothing the second time; after a node stored them,
# an unchanged corpus enqueues nothing and one changed file one job. A
# document that cannot be read is retried with backoff and dead after
# [sluice] max_attempts failures, with its reason, in `sluice failed`. Queue
# nodes share the store with each other but not with a plain run (exit 4),
# and `queue status` counts by state. An idle node is woken by enqueue's
# NOTIFY, not by its (hour-long) poll. A job whose uri is an http:// URL is
# fetched by the node that leases it.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/../../providers-e2e/fake.sh"
source "$HERE/pglib.sh"
source "$HERE/queuelib.sh"

pg_start
start_fake f
mkdir docs
for i in 1 2 3 4 5; do printf '# Doc %d\n\nThe text of document %d.\n' "$i" "$i" >"docs/d$i.md"; done
queue_conf q.ini "${URL[f]}" "queue_backoff = 100ms" "max_attempts = 3"

sl -c q.ini enqueue --json docs
check_eq "first enqueue: exit status" "$RC" 0
check_eq "first enqueue: enqueued" "$(json .enqueued)" 5
sl -c q.ini enqueue --json docs
check_eq "second enqueue: enqueued" "$(json .enqueued)" 0
check_eq "second enqueue: already queued" "$(json .already_queued)" 5
check_eq "one open job per document" "$(jobs_in queued)" 5
sl -c q.ini queue status --json
check_eq "queue status: queued" "$(json .queued)" 5
check_eq "queue status: the oldest queued job has an age" "$(json '.oldest_queued_s >= 0')" true

sl -c q.ini run --queue --json
check_eq "run --queue: exit status" "$RC" 0
check_eq "run --queue: stored" "$(json .documents.stored)" 5
check_eq "every job done" "$(jobs_in 'done')" 5
sl -c q.ini enqueue --json docs
check_eq "stored and unchanged: enqueued" "$(json .enqueued)" 0
check_eq "stored and unchanged: counted" "$(json .unchanged)" 5
printf 'A new paragraph.\n' >>docs/d2.md
sl -c q.ini enqueue --json docs
check_eq "one file changed: enqueued" "$(json .enqueued)" 1
check_eq "one file changed: the rest unchanged" "$(json .unchanged)" 4
sl -c q.ini run --queue --json
check_eq "the changed file: stored again" "$(json .documents.stored)" 1

# a poison document: enqueued, then gone before a node reads it
printf '# Gone\n' >docs/gone.md
sl -c q.ini enqueue --json docs
check_eq "the doomed file: enqueued" "$(json .enqueued)" 1
rm docs/gone.md
sl -c q.ini run --queue --json
check_eq "run --queue with a poison job: exit status 1" "$RC" 1
check_eq "its job is dead" "$(pg_sql "SELECT state || ' ' || failures FROM sluice_jobs WHERE uri LIKE '%gone.md'")" "dead 3"
check_contains "its last error says why" "$(pg_sql "SELECT last_error FROM sluice_jobs WHERE uri LIKE '%gone.md'")" "read: cannot read"
sl -c q.ini failed --json
check_eq "sluice failed: lists it" "$(json '[.failures[] | select(.uri | endswith("gone.md"))] | length')" 1
check_eq "sluice failed: a dead letter" "$(json '.failures[] | select(.uri | endswith("gone.md")) | .dead_letter')" true
sl -c q.ini queue status --json
check_eq "queue status: dead letters" "$(json .dead_letters)" 1

# a job whose uri is an http:// URL (h/sources): enqueued as given, fetched
# by the node that leases it, stored under the URL
mkdir www
printf '# Remote\n\nA remote document about numbatword.\n' >www/remote.md
python3 -c '
import functools, http.server, sys
H = functools.partial(http.server.SimpleHTTPRequestHandler, directory="www")
H.log_message = lambda *a: None
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()' >www.port 2>www.log &
wpid=$!
got_port() { [[ -s www.port ]]; }
wait_until 30 "the HTTP server is up" got_port
rurl="http://127.0.0.1:$(head -1 www.port)/remote.md"
sl -c q.ini enqueue --json "$rurl"
check_eq "a URL: enqueued" "$(json .enqueued)" 1
check_eq "its job keeps the URL" "$(pg_sql "SELECT count(*) FROM sluice_jobs WHERE uri = '$rurl'")" 1
sl -c q.ini run --queue --json
check_eq "a URL job: exit status" "$RC" 0
check_eq "a URL job: stored" "$(json .documents.stored)" 1
check_eq "stored under its URL, with its text" \
    "$(pg_sql "SELECT count(*) FROM sluice_chunks c JOIN sluice_documents d ON d.id = c.doc_id WHERE d.uri = '$rurl' AND c.text LIKE '%numbatword%'")" 1
kill "$wpid" 2>/dev/null || true

# nodes share the store; a plain run does not
# (polling once an hour: only enqueue's NOTIFY can wake it in time)
"$SLUICE" -c q.ini --set sluice.queue_poll=1h serve --queue </dev/null >serve.out 2>serve.err &
spid=$!
node_holds() { [[ $(pg_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'sluice node pid $spid on %'") == 1 ]]; }
wait_until 30 "serve --queue holds its shared claim" node_holds
sl -c q.ini run --queue --json
check_eq "a second node beside serve --queue: exit status" "$RC" 0
sl -c q.ini run --json docs
check_eq "a plain run while a node holds the store: exit status 4" "$RC" 4
check_contains "a plain run: names the node" "$ERR" "a queue node"
printf '# Late\n\nArrives while the node is idle.\n' >docs/late.md
idle_waiting() { [[ $(pg_sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'") -ge 1 ]]; }
wait_until 30 "the idle node listens" idle_waiting
sl -c q.ini enqueue --json docs
check_eq "a late file: enqueued" "$(json .enqueued)" 1
late_stored() { [[ $(pg_sql "SELECT count(*) FROM sluice_documents WHERE uri LIKE '%late.md'") == 1 ]]; }
wait_until 30 "NOTIFY wakes the idle serve --queue, which stores the late file" late_stored
kill -TERM "$spid"
wait "$spid" && src=0 || src=$?
check_eq "serve --queue: SIGTERM ends it cleanly" "$src" 0
sl -c q.ini run --json docs
check_eq "a plain run after the nodes left" "$RC" 0
finish
