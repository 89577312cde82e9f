#!/usr/bin/env bash
# tests/providers-e2e/fallback_share.sh - a fallback takes work only when
# the primary cannot (issue 17: with everything healthy the primary
# answered 4 of 90 summaries and the fallback 86):
#   - all healthy, the primary one call at a time (max_concurrency = 1):
#     the primary answers every summary, the fallback none;
#   - the primary's limiter has had no room for `fallback_after` (rpm = 5,
#     fallback_after = 1s): the primary takes its 5, the fallback the rest;
#   - the primary answering 429 (a concurrency limit): a 429 paces, the
#     unit comes back to the primary, the fallback is not asked;
#   - the primary down (every connection reset): the fallback takes over
#     and every document is stored.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-share-$$-$RANDOM"
export OPENAI_API_KEY=$key
openai_ini share.ini 'retry_base = 10ms' 'summarizer.fallback = backup' 'summarizer.max_concurrency = 1' \
    'backup.plugin = llm-openai' 'backup.api_key = ${OPENAI_API_KEY}'
bash "$SRC/bench/gen_corpus.sh" 20 docs 1500 3 >/dev/null
chats='.by_path["/v1/chat/completions"] // 0'

start_fake prim --api-key "$key" --llm-latency-ms 50
start_fake fb --api-key "$key"
start_fake emb --api-key "$key"
urls=(--set "summarizer.base_url=${URL[prim]}/v1" --set "backup.base_url=${URL[fb]}/v1"
    --set "embedder.base_url=${URL[emb]}/v1")

# --- all healthy: the primary answers everything ---
mkdir healthy && cd healthy
sl -c ../share.ini "${urls[@]}" run --json ../docs
cd "$T"
check_eq "healthy: exit status" "$RC" 0
check_eq "healthy: stored" "$(json .documents.stored)" 20
check_eq "healthy: the primary answered every summary" "$(fake_stats prim "$chats")" 20
check_eq "healthy: the fallback answered none" "$(fake_stats fb "$chats")" 0
check_eq "healthy: the report agrees" "$(provider requests summarizer)/$(provider requests backup)" 20/0

# --- the primary's limit has no room for a long while: overflow to the fallback ---
fake_reset prim
fake_reset fb
mkdir limited && cd limited
sl -c ../share.ini "${urls[@]}" --set summarizer.rpm=5 --set summarizer.fallback_after=1s run --json ../docs
cd "$T"
check_eq "rpm 5, fallback_after 1s: exit status" "$RC" 0
check_eq "rpm 5, fallback_after 1s: stored" "$(json .documents.stored)" 20
check_eq "rpm 5, fallback_after 1s: the primary took the 5 its minute allows" "$(fake_stats prim "$chats")" 5
check_eq "rpm 5, fallback_after 1s: the fallback took the other 15" "$(fake_stats fb "$chats")" 15

# --- the primary answers 429 (two at a time, Retry-After: 1): it paces,
# the unit backs off and comes back to it; the fallback is not asked ---
start_fake busy --api-key "$key" --max-concurrent 2 --llm-latency-ms 100
fake_reset fb
mkdir paced && cd paced
sl -c ../share.ini --set "summarizer.base_url=${URL[busy]}/v1" --set "backup.base_url=${URL[fb]}/v1" \
    --set "embedder.base_url=${URL[emb]}/v1" --set summarizer.max_concurrency=8 --set sluice.retries=100 \
    run --json ../docs
cd "$T"
check_eq "429s: exit status" "$RC" 0
check_eq "429s: stored" "$(json .documents.stored)" 20
check_gt "429s: the primary did answer 429" "$(fake_stats busy '.status["429"] // 0')" 0
check_eq "429s: the primary answered every summary" "$(fake_stats busy '.status["200"] // 0')" 20
check_eq "429s: the fallback was not asked" "$(fake_stats fb "$chats")" 0
check_eq "429s: the primary's breaker never opened" "$(provider breaker_opens summarizer)" 0

# --- the primary down: the fallback takes over ---
fake_reset fb
fake_config prim '{"down": true}'
mkdir down && cd down
sl -c ../share.ini "${urls[@]}" run --json ../docs
cd "$T"
check_eq "primary down: exit status" "$RC" 0
check_eq "primary down: stored" "$(json .documents.stored)" 20
check_eq "primary down: the fallback answered every summary" "$(fake_stats fb "$chats")" 20
check_gt "primary down: the primary's breaker opened" "$(provider breaker_opens summarizer)" 0

finish
