#!/usr/bin/env bash
# tests/providers-e2e/retry_budget.sh - waiting on a provider is bounded:
#   - a 503 with `Retry-After: 86400` does not park a document for a day on
#     each retry (issue 17): a wait past [sluice] retry_budget fails the
#     document at once, saying so; without the budget in the way, the same
#     provider's answer after the Retry-After is taken;
#   - a retried failure that runs out of attempts says after how many;
#   - a 100 MB completion for max_tokens = 512 is cut off at a bound tied
#     to what was asked and fails the document, instead of being stored;
#   - a 429 is the provider pacing us, not a failure: with every request
#     over a concurrency limit answered 429, the breaker never opens and
#     every document is stored.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-budget-$$-$RANDOM"
export OPENAI_API_KEY=$key
mkdir docs
printf '# Maintenance\n\nThe provider is down for the night.\n' >docs/one.md

openai_ini b.ini

# --- Retry-After: 86400 (a day) ---
start_fake day --api-key "$key" --fail-first 1000 --retry-after 86400
t0=$(now_ms)
sl -c b.ini --set "summarizer.base_url=${URL[day]}/v1" --set "embedder.base_url=${URL[day]}/v1" \
    --set sluice.retry_budget=1m run --json docs
t1=$(now_ms)
check_eq "Retry-After 86400: exit status (the document failed)" "$RC" 1
check_eq "Retry-After 86400: failed" "$(json .documents.failed)" 1
check_contains "Retry-After 86400: the reason names the wait and the budget" "$(json '.failed[0].reason')" \
    'gave up: waiting 86400000 ms more would pass \[sluice\] retry_budget = 60000 ms'
check "Retry-After 86400: it failed at once, not after a day ($((t1 - t0)) ms)" test "$((t1 - t0))" -lt 20000

# --- a short Retry-After within the budget is honoured, then the work is done ---
start_fake brief --api-key "$key" --fail-first 1 --retry-after 1
rm -rf .sluice
t0=$(now_ms)
sl -c b.ini --set "summarizer.base_url=${URL[brief]}/v1" --set "embedder.base_url=${URL[brief]}/v1" run --json docs
t1=$(now_ms)
check_eq "Retry-After 1: exit status" "$RC" 0
check_eq "Retry-After 1: stored" "$(json .documents.stored)" 1
check "Retry-After 1: the retry waited the second asked ($((t1 - t0)) ms)" test "$((t1 - t0))" -ge 1000

# --- attempts run out: the reason says after how many ---
start_fake down --api-key "$key" --fault-5xx 1
rm -rf .sluice
sl -c b.ini --set "summarizer.base_url=${URL[down]}/v1" --set "embedder.base_url=${URL[down]}/v1" \
    --set sluice.retries=2 --set sluice.retry_base=10ms --set summarizer.breaker_failures=0 \
    --set embedder.breaker_failures=0 run --json docs
check_eq "500 every time: exit status" "$RC" 1
check_contains "500 every time: the reason says after how many retries" "$(json '.failed[0].reason')" \
    'HTTP 500.*\(after 2 retries\)'

# --- a 100 MB summary for max_tokens = 512 is cut off, never stored ---
start_fake huge --api-key "$key" --oversize 100000000
rm -rf .sluice
sl -c b.ini --set "summarizer.base_url=${URL[huge]}/v1" --set "embedder.base_url=${URL[huge]}/v1" \
    --set summarizer.max_tokens=512 --set sluice.retries=1 --set sluice.retry_base=10ms run --json docs
check_eq "100 MB answer: exit status (the document failed)" "$RC" 1
check_contains "100 MB answer: the reason says it was too large" "$(json '.failed[0].reason')" \
    'response larger than [0-9]+ bytes: cut off'
check "100 MB answer: memory stayed far below it ($(json '.peak_rss_bytes') bytes)" \
    test "$(json '.peak_rss_bytes')" -lt 80000000
check_eq "100 MB answer: nothing stored" "$(sql .sluice/store.db 'SELECT count(*) FROM documents;')" 0

# --- 429s pace, they do not open the breaker ---
# one request at a time, each 200 ms: the others are answered 429 at once
start_fake busy --api-key "$key" --max-concurrent 1 --latency-ms 200
bash "$SRC/bench/gen_corpus.sh" 6 six 1500 4 >/dev/null
rm -rf .sluice
sl -c b.ini --set "summarizer.base_url=${URL[busy]}/v1" --set "embedder.base_url=${URL[busy]}/v1" \
    --set summarizer.breaker_failures=2 --set embedder.breaker_failures=2 --set sluice.retries=30 \
    run --json six
check_eq "429s: exit status" "$RC" 0
check_eq "429s: every document stored" "$(json .documents.stored)" 6
check_gt "429s: the provider did answer 429" "$(fake_stats busy '.status["429"] // 0')" 0
check_eq "429s: the summarizer's breaker never opened" "$(provider breaker_opens summarizer)" 0
check_eq "429s: the embedder's breaker never opened" "$(provider breaker_opens embedder)" 0
check_lacks "429s: nothing says the provider was left alone" "$ERR" "leaving it alone"

finish
