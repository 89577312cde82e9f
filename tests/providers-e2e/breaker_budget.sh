#!/usr/bin/env bash
# tests/providers-e2e/breaker_budget.sh - a provider that always answers 500
# with no fallback (issue 16): the breaker opens, and no document waits out
# cooldown after cooldown: each fails once [sluice] retry_budget would be
# passed, with "provider X unavailable after N retries over T s".
# With many documents at a dead port, every one keeps the transport error
# in its reason, not only those whose own call was out when the breaker
# opened (the queued ones used to get only "unavailable").
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-breaker-$$-$RANDOM"
export OPENAI_API_KEY=$key
mkdir docs
for i in 1 2 3; do printf '# Note %s\n\nThe provider is down.\n' "$i" >"docs/n$i.md"; done
openai_ini b.ini

start_fake down --api-key "$key" --fault-5xx 1
t0=$(now_ms)
sl -c b.ini --set "summarizer.base_url=${URL[down]}/v1" --set "embedder.base_url=${URL[down]}/v1" \
    --set sluice.retries=1000 --set sluice.retry_base=10ms --set sluice.retry_max=100ms \
    --set sluice.retry_budget=3s --set summarizer.breaker_failures=2 --set embedder.breaker_failures=2 \
    --set summarizer.breaker_cooldown=20s --set embedder.breaker_cooldown=20s run --json docs
t1=$(now_ms)
check_eq "always 500: exit status (documents failed)" "$RC" 1
check_eq "always 500: every document failed" "$(json .documents.failed)" 3
check_contains "always 500: the reason names the provider, the retries and the time" "$(json '.failed[0].reason')" \
    "provider (summarizer|embedder) unavailable after [0-9]+ retr(y|ies) over [0-9.]+ s"
check "always 500: no document waited out a 20 s cooldown ($((t1 - t0)) ms)" test "$((t1 - t0))" -lt 15000

# --- a dead port and many documents: each reason keeps the transport error ---
start_fake gone
dead=${URL[gone]}
stop_fake gone
mkdir many
for i in $(seq 1 200); do printf '# Many %s\n\nNobody listens.\n' "$i" >"many/m$i.md"; done
sl -c b.ini --set "summarizer.base_url=$dead/v1" --set "embedder.base_url=$dead/v1" \
    --set sluice.retry_budget=2s run --json many
check_eq "dead port: every document failed" "$(json .documents.failed)" 200
check_eq "dead port: every reason keeps the transport error" \
    "$(json '[.failed[] | select(.reason | test("POST 127\\.0\\.0\\.1:[0-9]+/v1/(chat/completions|embeddings) failed: connection refused") | not)] | length')" 0
check_gt "dead port: the breaker opened (documents gave up on it)" \
    "$(json '[.failed[] | select(.reason | test("unavailable after"))] | length')" 0

finish
