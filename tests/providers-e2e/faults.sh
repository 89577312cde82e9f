#!/usr/bin/env bash
# tests/providers-e2e/faults.sh - every way a provider breaks, end to end:
# conf/openai.ini ingests examples/corpus against a fake provider that
# answers 429 with Retry-After, 5xx, resets connections, stalls, truncates or
# mangles its JSON, drips its body, or fails its first requests. A fault
# that clears must cost retries, never documents: the run exits 0 and every
# file is stored exactly once, chunks and all. A fault that never clears
# must fail every document with a reason that names the HTTP status or the
# transport error, and store nothing.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-faults-$$-$RANDOM"
export OPENAI_API_KEY=$key
corpus=$SRC/examples/corpus
nfiles=$(count_files "$corpus" '*.md' '*.markdown' '*.txt' '*.text')
check_gt "files in examples/corpus" "$nfiles" 5

# run_against NAME EXTRA_SLUICE_ARGS...: a fresh store in $T/NAME, the
# openai example pointed at the fake NAME; short backoffs and a breaker that
# recovers quickly so the test stays fast (the policies are the same).
run_against() {
    local name=$1 u=${URL[$1]}
    shift
    mkdir -p "$T/$name"
    cd "$T/$name"
    tsl "$name" -c "$SRC/conf/openai.ini" \
        --set "summarizer.base_url=$u/v1" --set "embedder.base_url=$u/v1" \
        --set sluice.retry_base=10ms --set sluice.retry_max=300ms \
        --set summarizer.breaker_cooldown=100ms --set embedder.breaker_cooldown=100ms \
        "$@" run --json "$corpus"
    cd "$T"
}

# survives NAME STATS_FILTER SLUICE_ARGS...: the fault happened (the filter
# on the fake's /_stats is > 0), and the run shrugged it off.
survives() {
    local name=$1 filter=$2
    shift 2
    run_against "$name" "$@"
    local db=$T/$name/.sluice/openai.db
    check_eq "$name: exit status" "$RC" 0
    [[ $RC -eq 0 ]] || echo "$name: stderr: $(tail -c 2000 <<<"$ERR")" >&2
    check_gt "$name: the fault was injected ($filter)" "$(fake_stats "$name" "$filter")" 0
    check_eq "$name: report: stored" "$(json .documents.stored)" "$nfiles"
    check_eq "$name: report: failed" "$(json .documents.failed)" 0
    check_gt "$name: report: provider retries" "$(json '[.providers[].retries] | add')" 0
    local sent seen
    sent=$(json '[.providers[].requests] | add')
    seen=$(fake_stats "$name" .requests)
    if [[ $name == reset ]]; then
        # libcurl itself resends a request whose reused connection died
        # before any answer, unseen by the core: the fake may count more.
        check "$name: report: requests ($sent) <= what the fake saw ($seen)" test "$sent" -le "$seen"
    else
        check_eq "$name: report: requests = what the fake saw" "$sent" "$seen"
    fi
    check_eq "$name: report: chunks = chunk rows" "$(json .chunks)" "$(sql "$db" 'SELECT count(*) FROM chunks;')"
    store_once "$db" "$nfiles" "$name"
    check_eq "$name: every document has its summary" \
        "$(sql "$db" "SELECT count(*) FROM documents WHERE json_extract(metadata, '\$.summary') LIKE 'Summary:%';")" \
        "$nfiles"
}

# never_clears NAME REASON_REGEX SLUICE_ARGS...: every document fails, each
# with a reason matching REASON_REGEX; nothing is stored.
never_clears() {
    local name=$1 want=$2
    shift 2
    run_against "$name" --set sluice.retries=2 "$@"
    local db=$T/$name/.sluice/openai.db
    check_eq "$name: exit status (documents failed)" "$RC" 1
    check_eq "$name: report: stored" "$(json .documents.stored)" 0
    check_eq "$name: report: failed" "$(json .documents.failed)" "$nfiles"
    check_eq "$name: report: a failure listed per document" "$(json '[.failed[].uri] | unique | length')" "$nfiles"
    check_eq "$name: every reason names the error" \
        "$(jqo --arg re "$want" '[.failed[] | select(.reason | test($re; "i") | not)] | length')" 0
    check_contains "$name: a reason, as written" "$(json '.failed[0].reason')" "$want"
    # The summary and the embeddings are asked at once (embed_summaries is
    # off): a document fails in whichever gives up first, and what it still
    # had queued in the other is dropped, not sent.
    check_eq "$name: each document failed in the summarizer or the embedder" \
        "$(json '[.failed[] | select(.stage != "summarizer" and .stage != "embedder")] | length')" 0
    # A breaker whose probes keep failing judges the provider gone, and the
    # documents still waiting behind it fail then, unasked (issue 17: a dead
    # provider must not hold a run for hours); each says "unavailable".
    local sreq unasked
    sreq=$(json '[.providers[] | select(.name == "summarizer") | .requests] | add')
    unasked=$(json '[.failed[] | select(.reason | test("unavailable"))] | length')
    check "$name: every summary was asked or its document failed behind the open breaker ($sreq requests, $unasked unavailable, $nfiles documents)" \
        test "$((sreq + unasked))" -ge "$nfiles"
    check "$name: at most the first try and 2 retries per summary ($sreq)" test "$sreq" -le "$((nfiles * 3))"
    check_eq "$name: nothing stored" "$(sql "$db" 'SELECT count(*) FROM documents;')" 0
    check_eq "$name: no chunks stored" "$(sql "$db" 'SELECT count(*) FROM chunks;')" 0
}

# --- faults that clear ---

# Three requests at a time, each 300 ms: the rest get 429 with Retry-After: 1.
start_fake r429 --api-key "$key" --max-concurrent 3 --latency-ms 300
survives r429 '.status["429"]' --set sluice.retries=15

start_fake r5xx --api-key "$key" --seed 3 --fault-5xx 0.3
survives r5xx '.faults["5xx"]'

start_fake reset --api-key "$key" --seed 4 --fault-reset 0.3
survives reset '.faults.reset'

# A stalled answer never comes: the plugin's timeout gives up on it.
start_fake stall --api-key "$key" --seed 5 --fault-stall 0.25
survives stall '.faults.stall' --set summarizer.timeout=2s --set embedder.timeout=2s

start_fake truncate --api-key "$key" --seed 6 --fault-truncate 0.3
survives truncate '.faults.truncate'

start_fake malformed --api-key "$key" --seed 7 --fault-malformed 0.3
survives malformed '.faults.malformed'

# One byte every 100 ms: an answer would take minutes; the timeout fires.
start_fake drip --api-key "$key" --seed 8 --fault-drip 0.25 --drip-interval-ms 100
survives drip '.faults.drip' --set summarizer.timeout=2s --set embedder.timeout=2s

start_fake failfirst --api-key "$key" --fail-first 6
survives failfirst '.faults.fail_first'
check_eq "failfirst: the fake failed exactly its first 6" "$(fake_stats failfirst '.status["503"]')" 6

# --- faults that never clear (no fallback) ---

start_fake down --api-key "$key" --down
never_clears down 'POST 127\.0\.0\.1:[0-9]+/v1/(chat/completions|embeddings) failed: .+'

start_fake all5xx --api-key "$key" --fault-5xx 1
never_clears all5xx 'HTTP 500 from POST 127\.0\.0\.1:[0-9]+/v1/(chat/completions|embeddings)'

# Without the breaker: its half-open probes would take the stalls one at a time.
start_fake allstall --api-key "$key" --fault-stall 1
never_clears allstall 'timed? ?out' --set summarizer.timeout=1s --set summarizer.breaker_failures=0 \
    --set embedder.timeout=1s --set embedder.breaker_failures=0

start_fake allmalformed --api-key "$key" --fault-malformed 1
never_clears allmalformed 'not valid JSON'

check_lacks "no output shows the key" "$(cat "$T"/.out "$T"/.err)" "$key"
finish
