#!/usr/bin/env bash
# tests/providers-e2e/fallback.sh - `fallback = SECTION` on io stages: with
# the primary provider down (a fake provider that resets every connection)
# and the secondary healthy, the secondary does the work: every document is
# stored, once, and the run report shows the primary's failures, its
# breaker opening, and the secondary's requests. With both down the
# documents fail with the reason. And an embedder chain whose links would
# give incomparable vectors (another dimension, another model) is refused
# by `sluice check` and `sluice run` before any request is made.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-fallback-$$-$RANDOM"
export OPENAI_API_KEY=$key
corpus=$SRC/examples/corpus
nfiles=$(count_files "$corpus" '*.md' '*.markdown' '*.txt' '*.text')
check_gt "files in examples/corpus" "$nfiles" 5

cat >chain.ini <<'EOF'
[sluice]
include = *.md *.txt
retry_base = 10ms

[route.text]
media = text/markdown text/plain
stages = markdown chunker summarizer embedder
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text

[summarizer]
plugin = llm-openai
api_key = ${OPENAI_API_KEY}
fallback = backup
breaker_failures = 2
breaker_cooldown = 10m

[backup]
plugin = llm-openai
api_key = ${OPENAI_API_KEY}
model = gpt-4o          ; an LLM fallback may use another model

[embedder]
plugin = embed-openai
api_key = ${OPENAI_API_KEY}
dimension = 1536
fallback = embedder-backup
breaker_failures = 1
breaker_cooldown = 10m

[embedder-backup]
plugin = embed-openai
api_key = ${OPENAI_API_KEY}
dimension = 1536

[store]
plugin = sink-sqlite
path = ${CWD}/.sluice/store.db
EOF

start_fake primary --api-key "$key" --down
start_fake secondary --api-key "$key"
urls=(--set "summarizer.base_url=${URL[primary]}/v1" --set "embedder.base_url=${URL[primary]}/v1"
    --set "backup.base_url=${URL[secondary]}/v1" --set "embedder-backup.base_url=${URL[secondary]}/v1")

sl -c chain.ini check
check_eq "the chain passes check" "$RC" 0

# --- the primary is down: the secondary does the work ---
mkdir one
cd one
tsl primary-down -c ../chain.ini "${urls[@]}" run --json "$corpus"
cd "$T"
check_eq "primary down: exit status" "$RC" 0
[[ $RC -eq 0 ]] || echo "stderr: $(tail -c 2000 <<<"$ERR")" >&2
check_eq "primary down: stored" "$(json .documents.stored)" "$nfiles"
check_eq "primary down: failed" "$(json .documents.failed)" 0
store_once one/.sluice/store.db "$nfiles" "primary down"
check_eq "primary down: every document has its summary (from the backup)" \
    "$(sql one/.sluice/store.db "SELECT count(*) FROM documents WHERE json_extract(metadata, '\$.summary') LIKE 'Summary:%';")" \
    "$nfiles"

check_gt "report: the primary LLM was tried" "$(provider requests summarizer)" 0
check_gt "report: the primary LLM's failures" "$(provider failures summarizer)" 1
check_eq "report: every call to the primary LLM failed" "$(provider failures summarizer)" \
    "$(provider requests summarizer)"
check_eq "report: the primary LLM's breaker opened once (the cooldown outlasts the run)" \
    "$(provider breaker_opens summarizer)" 1
check_eq "report: the backup LLM summarised every document" "$(provider requests backup)" "$nfiles"
check_eq "report: the backup LLM never failed" "$(provider failures backup)" 0
check_gt "report: the backup LLM's tokens" "$(provider tokens_in backup)" 0
check_gt "report: the primary embedder's failures" "$(provider failures embedder)" 0
check_eq "report: the primary embedder's breaker opened" "$(provider breaker_opens embedder)" 1
check_gt "report: the backup embedder's requests" "$(provider requests embedder-backup)" 0
check_eq "report: the backup embedder never failed" "$(provider failures embedder-backup)" 0
check_contains "the breaker opening is logged" "$ERR" 'summarizer: .*leaving it alone'

check_eq "the down fake reset every request it got" "$(fake_stats primary .faults.down)" \
    "$(fake_stats primary .requests)"
check_eq "the down fake got the primaries' requests, no more" "$(fake_stats primary .requests)" \
    "$(json '[.providers[] | select(.name == "summarizer" or .name == "embedder") | .requests] | add')"
check_eq "the healthy fake answered every completion" \
    "$(fake_stats secondary '.by_path["/v1/chat/completions"]')" "$nfiles"
check_eq "the healthy fake answered all with 200" "$(fake_stats secondary '.status["200"]')" \
    "$(fake_stats secondary .requests)"

# --- both down: every document fails, with the reason ---
fake_config secondary '{"down": true}'
mkdir both
cd both
tsl both-down -c ../chain.ini "${urls[@]}" --set sluice.retries=2 \
    --set summarizer.breaker_failures=0 --set backup.breaker_failures=0 run --json "$corpus"
cd "$T"
check_eq "both down: exit status" "$RC" 1
check_eq "both down: failed" "$(json .documents.failed)" "$nfiles"
check_eq "both down: stored" "$(json .documents.stored)" 0
# Summaries and embeddings of a document overlap (both providers are down),
# so a document fails in whichever stage answers first: the summarizer or
# the embedder, each naming its own endpoint's transport error.
check_eq "both down: each failure names the transport error" \
    "$(json '[.failed[] | select(.reason | test("POST 127\\.0\\.0\\.1:[0-9]+/v1/(chat/completions|embeddings) failed: .") | not)] | length')" 0
check_eq "both down: each failed in the summarizer or the embedder stage" \
    "$(json '[.failed[] | select(.stage != "summarizer" and .stage != "embedder")] | length')" 0
check_eq "both down: nothing stored" "$(sql both/.sluice/store.db 'SELECT count(*) FROM documents;')" 0
check_gt "both down: the backup was tried too" "$(provider requests backup)" 0
fake_config secondary '{"down": false}'

# --- chains whose vectors would not be comparable are refused ---
fake_reset primary
fake_reset secondary
sl -c chain.ini "${urls[@]}" --set embedder-backup.dimension=768 check
check_eq "embedder chain mixing dimensions: check exit status" "$RC" 2
check_contains "embedder chain mixing dimensions: says why" "$ERR" \
    '\[embedder\] fallback: \[embedder-backup\].*768 dimensions.*1536 dimensions.*one model and dimension'
sl -c chain.ini "${urls[@]}" --set embedder-backup.model=text-embedding-3-large check
check_eq "embedder chain mixing models: check exit status" "$RC" 2
check_contains "embedder chain mixing models: says why" "$ERR" \
    '\[embedder\] fallback: \[embedder-backup\] embeds with text-embedding-3-large.*text-embedding-3-small.*one model'
mkdir refused
cd refused
sl -c ../chain.ini "${urls[@]}" --set embedder-backup.dimension=768 run "$corpus"
cd "$T"
check_eq "embedder chain mixing dimensions: run exit status" "$RC" 2
check_contains "embedder chain mixing dimensions: run says why" "$ERR" 'one model and dimension'
check_eq "a refused chain makes no request" \
    "$(($(fake_stats primary .requests) + $(fake_stats secondary .requests)))" 0

# An LLM falling back to an embedder (or the reverse) is another mistake.
sl -c chain.ini --set summarizer.fallback=embedder-backup check
check_eq "llm falling back to an embedder: check exit status" "$RC" 2
check_contains "llm falling back to an embedder: says why" "$ERR" 'embedder-backup.*embedder.*llm'
sl -c chain.ini --set embedder.fallback=nosuch check
check_eq "fallback to a missing section: check exit status" "$RC" 2
check_contains "fallback to a missing section: says which" "$ERR" 'nosuch'

check_lacks "no output shows the key" "$OUT$ERR" "$key"
finish
