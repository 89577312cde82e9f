#!/usr/bin/env bash
# tests/providers-e2e/resends.sh - the report's requests are what the
# provider saw (issue 17): libcurl sends a request again by itself when a
# kept-alive connection turns out dead before any answer, and those sends
# reached the provider too. The fake's close-reused fault reads a request
# that arrives on a kept-alive connection, counts it, and closes the
# connection without answering, so libcurl resends it; the report's
# requests per provider must equal the fake's count per path, and the
# report says how many of them were resends.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-resends-$$-$RANDOM"
export OPENAI_API_KEY=$key
openai_ini r.ini
bash "$SRC/bench/gen_corpus.sh" 40 docs 3000 11 >/dev/null

start_fake p --api-key "$key" --fault-close-reused 0.3 --seed 5
# two calls at a time per provider: nearly every request reuses a connection
sl -c r.ini --set "summarizer.base_url=${URL[p]}/v1" --set "embedder.base_url=${URL[p]}/v1" \
    --set summarizer.max_concurrency=2 --set embedder.max_concurrency=2 run --json docs
check_eq "exit status" "$RC" 0
[[ $RC -eq 0 ]] || echo "stderr: $(tail -c 2000 <<<"$ERR")" >&2
check_eq "every document stored" "$(json .documents.stored)" 40
closed=$(fake_stats p '.faults.close_reused')
echo "the fake: $(curl -sf "${URL[p]}/_stats")"
check_gt "the fake closed kept-alive connections under requests" "$closed" 0
chats=$(fake_stats p '.by_path["/v1/chat/completions"] // 0')
embeds=$(fake_stats p '.by_path["/v1/embeddings"] // 0')
check_eq "summarizer: the report's requests = the chat requests the provider saw" \
    "$(provider requests summarizer)" "$chats"
check_eq "embedder: the report's requests = the embedding requests the provider saw" \
    "$(provider requests embedder)" "$embeds"
check_eq "the report's resends = the requests the fake dropped (libcurl sent each again)" \
    "$(($(provider resends summarizer) + $(provider resends embedder)))" "$closed"
check_gt "the report counts resends" "$(($(provider resends summarizer) + $(provider resends embedder)))" 0
check_eq "no retries by the core: the resends were libcurl's" \
    "$(($(provider retries summarizer) + $(provider retries embedder)))" 0

finish
