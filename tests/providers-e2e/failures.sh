#!/usr/bin/env bash
# tests/providers-e2e/failures.sh - the failure list lasts, in SQLite and in
# PostgreSQL alike. Documents whose embeddings a fake provider refuses (it is
# "down": every connection reset) fail; each is recorded in the store with
# its stage, reason and attempts; `sluice failed` lists them (table and
# JSON); `sluice retry` runs exactly those once the provider is back, and a
# document stored leaves the list. A document that failed max_attempts runs
# is a dead letter: `run` and `retry` pass it over (no request is made for
# it), `failed` shows it as such, and `retry --all` stores it. Nothing here
# waits for time: the fake's state changes through /_config between runs.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"
source "$HERE/../plugins/sink-postgres/pglib.sh"
# both libraries trap EXIT: stop the fakes, then the cluster (which cleans up)
trap 'rc=$?; stop_fakes; (exit $rc); pg_cleanup' EXIT

key="sk-failures-$$-$RANDOM"
export OPENAI_API_KEY=$key
start_fake f
pg_start

# conf SINK FILE: Markdown, chunks, embed-openai against the fake, into SINK
# (sqlite or postgres); no retries, so a refused call fails its document at
# once, and a breaker that closes again at once.
conf() {
    local sink=$1 file=$2
    {
        cat <<EOF
[sluice]
include = *.md
retries = 0
max_attempts = 2

[route.text]
media = text/markdown
stages = markdown chunker embedder
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text

[embedder]
plugin = embed-openai
api_key = \${OPENAI_API_KEY}
base_url = ${URL[f]}/v1
dimension = 1536
breaker_cooldown = 10ms

EOF
        if [[ $sink == sqlite ]]; then
            printf '[store]\nplugin = sink-sqlite\npath = ${CWD}/.sluice/store.db\n'
        else
            printf '[store]\nplugin = sink-postgres\nhost = 127.0.0.1\nport = %s\ndbname = postgres\nuser = postgres\n' "$PG_PORT"
        fi
    } >"$file"
}

# stored_count SINK: documents in the store.
stored_count() {
    if [[ $1 == sqlite ]]; then sql .sluice/store.db 'SELECT count(*) FROM documents;'; else pg_sql 'SELECT count(*) FROM sluice_documents'; fi
}
# failure_rows SINK: rows of the failures table.
failure_rows() {
    if [[ $1 == sqlite ]]; then sql .sluice/store.db 'SELECT count(*) FROM failures;'; else pg_sql 'SELECT count(*) FROM sluice_failures'; fi
}

for sink in sqlite postgres; do
    mkdir -p "$T/$sink/docs"
    cd "$T/$sink"
    conf "$sink" s.ini
    for i in 1 2 3; do printf '# Kept %s\n\nThis one is stored at once (%s).\n' "$i" "$sink" >"docs/kept$i.md"; done

    # 1. three documents stored while the provider is up
    fake_config f '{"down": false}'
    sl_ok -c s.ini run --json docs
    check_eq "$sink: first run stores 3" "$(json .documents.stored)" 3
    check_eq "$sink: the failures table exists and is empty" "$(failure_rows "$sink")" 0

    # 2. two new documents while the provider is down: both fail, recorded
    for i in 1 2; do printf '# Late %s\n\nThis one meets a provider that is down.\n' "$i" >"docs/late$i.md"; done
    fake_config f '{"down": true}'
    sl -c s.ini run --json docs
    check_eq "$sink: run with the provider down: exit 1" "$RC" 1
    check_eq "$sink: 2 failed, 3 skipped" "$(json '[.documents.failed, .documents.skipped] | @csv')" "2,3"
    sl_ok -c s.ini failed --json
    check_eq "$sink: failed lists 2" "$(json .count)" 2
    check_eq "$sink: the late documents" "$(json '[.failures[].uri] | join(" ")')" "docs/late1.md docs/late2.md"
    check_eq "$sink: in the embedder stage" "$(json '[.failures[].stage] | unique | join(" ")')" "embedder"
    check_contains "$sink: with the transport error as reason" "$(json '.failures[0].reason')" '/v1/embeddings failed: .+'
    check_eq "$sink: attempts 1 each" "$(json '[.failures[].attempts] | unique | join(" ")')" 1
    check_eq "$sink: not dead letters yet" "$(json '[.failures[] | select(.dead_letter)] | length')" 0
    check_contains "$sink: first and last time in RFC 3339" "$(json '.failures[0].first_failed')" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$'
    check_lacks "$sink: no key in the list" "$OUT" "$key"
    sl_ok -c s.ini failed
    check_contains "$sink: failed (table) names a document with its stage" "$OUT" 'docs/late1.md \[embedder\] attempts 1'

    # 3. retry runs exactly those two, and stores them once the provider is back
    fake_config f '{"down": false}'
    fake_reset f
    sl_ok -c s.ini retry --json
    check_eq "$sink: retry: 2 documents, both stored" "$(json '[.documents.total, .documents.stored] | @csv')" "2,2"
    check_eq "$sink: retry: the kept ones were not even looked at" "$(json .documents.skipped)" 0
    check_eq "$sink: retry: the list is empty" "$(failure_rows "$sink")" 0
    check_eq "$sink: 5 documents stored" "$(stored_count "$sink")" 5
    sl_ok -c s.ini failed
    check_contains "$sink: failed says none" "$OUT" "no failed documents"
    sl_ok -c s.ini retry
    check_contains "$sink: retry with nothing to do" "$OUT" "nothing to retry"

    # 4. a document failing max_attempts (2) runs is a dead letter
    printf '# Doomed\n\nThis one fails twice.\n' >docs/doomed.md
    fake_config f '{"down": true}'
    sl -c s.ini run --json docs
    check_eq "$sink: doomed, run 1: failed" "$(json .documents.failed)" 1
    sl -c s.ini retry --json
    check_eq "$sink: doomed, retry while down: failed again" "$(json .documents.failed)" 1
    sl_ok -c s.ini failed --json
    check_eq "$sink: doomed: attempts 2" "$(json '.failures[0].attempts')" 2
    check_eq "$sink: doomed: a dead letter" "$(json '.failures[0].dead_letter')" true
    check_eq "$sink: dead_letters count" "$(json .dead_letters)" 1
    check_eq "$sink: max_attempts shown" "$(json .max_attempts)" 2
    sl_ok -c s.ini failed
    check_contains "$sink: failed (table) marks it" "$OUT" 'DEAD LETTER docs/doomed.md'

    # the provider is back, but run and retry pass the dead letter over
    fake_config f '{"down": false}'
    fake_reset f
    sl_ok -c s.ini run --json docs
    check_eq "$sink: run passes the dead letter over (parked 1)" "$(json .documents.parked)" 1
    check_eq "$sink: run: nothing stored" "$(json .documents.stored)" 0
    sl_ok -c s.ini retry
    check_contains "$sink: retry leaves dead letters" "$OUT" "every failed document is a dead letter"
    check_eq "$sink: no request was made for it" "$(fake_stats f '.by_path["/v1/embeddings"] // 0')" 0
    sl_ok -c s.ini failed --json
    check_eq "$sink: still listed" "$(json .count)" 1

    # retry --all releases it
    sl_ok -c s.ini retry --all --json
    check_eq "$sink: retry --all stores it" "$(json '[.documents.total, .documents.stored] | @csv')" "1,1"
    check_gt "$sink: and asked the provider" "$(fake_stats f '.by_path["/v1/embeddings"] // 0')" 0
    check_eq "$sink: the list is empty again" "$(failure_rows "$sink")" 0
    check_eq "$sink: 6 documents stored" "$(stored_count "$sink")" 6
    cd "$T"
done

# A store made before the failure list existed gets the table on open.
mkdir -p "$T/old" && cd "$T/old"
mkdir docs && printf '# Old\n\nA store from before.\n' >docs/old.md
conf sqlite s.ini
sl_ok -c s.ini run docs
sql .sluice/store.db 'DROP TABLE failures;' >/dev/null
sl_ok -c s.ini failed
check_contains "an old store: failed lists nothing" "$OUT" "no failed documents"
# `failed` only reads (issue 17): the table comes with the next run
check_eq "an old store: failed makes no table" "$(sql .sluice/store.db "SELECT count(*) FROM sqlite_master WHERE name = 'failures';")" 0
sl_ok -c s.ini run docs
check_eq "an old store gets its failures table when a run opens it" "$(sql .sluice/store.db "SELECT count(*) FROM sqlite_master WHERE name = 'failures';")" 1
pg_sql 'DROP TABLE sluice_failures' >/dev/null
conf postgres p.ini
sl_ok -c p.ini failed
check_contains "an old PostgreSQL store: failed lists nothing" "$OUT" "no failed documents"
check_eq "an old PostgreSQL store: failed makes no table" "$(pg_sql "SELECT count(*) FROM pg_tables WHERE tablename = 'sluice_failures'")" 0
sl_ok -c p.ini run docs
check_eq "an old PostgreSQL store gets its failures table when a run opens it" "$(pg_sql "SELECT count(*) FROM pg_tables WHERE tablename = 'sluice_failures'")" 1

# A run stopped by a fatal error (a rejected key) counts no attempt against
# its documents: the configuration failed, not they.
start_fake keyed --api-key "$key"
printf '# Keyed\n\nMet a rejected key.\n' >docs/keyed.md
OPENAI_API_KEY="sk-wrong-$$" sl -c s.ini --set "embedder.base_url=${URL[keyed]}/v1" run --json docs
check_ne "rejected key: the run did not succeed" "$RC" 0
check_contains "rejected key: the report says why it stopped" "$(json .fatal)" '401|key'
sl_ok -c s.ini failed --json
check_eq "rejected key: nothing recorded" "$(json .count)" 0

finish
