#!/usr/bin/env bash
# tests/providers-e2e/rpm_window.sh - `rpm` set exactly to the provider's
# limit draws no 429 (issue 17). The fake enforces 30 requests in any
# 60 s (a sliding window, as providers that count per minute do); sluice
# with rpm = 30 sends 36 summaries to it. A pacer that starts with a
# burst on top of the rate sends more than 30 in the first minute and is
# answered 429; one that keeps every 60 s window within the limit takes
# the 30 at once and the other 6 a minute later, with no 429 and no
# breaker. (A 429 holds the provider's calls, never opens its breaker:
# retry_budget.sh checks that part.) This test runs a little over a
# minute: the limit is per minute.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-rpm-$$-$RANDOM"
export OPENAI_API_KEY=$key
openai_ini w.ini
for i in $(seq 1 36); do printf '# Note %d\n\nThe %d-th note on rate limits.\n' "$i" "$i" >"note-$i.md"; done
mkdir docs && mv note-*.md docs/

start_fake lim --api-key "$key" --rpm 30 --rpm-window
start_fake emb --api-key "$key"
tsl rpm-30 -c w.ini --set "summarizer.base_url=${URL[lim]}/v1" --set "embedder.base_url=${URL[emb]}/v1" \
    --set summarizer.rpm=30 run --json docs
check_eq "exit status" "$RC" 0
[[ $RC -eq 0 ]] || echo "stderr: $(tail -c 2000 <<<"$ERR")" >&2
check_eq "every document stored" "$(json .documents.stored)" 36
check_eq "the provider saw every summary request" "$(fake_stats lim '.by_path["/v1/chat/completions"] // 0')" 36
check_eq "the provider answered no 429" "$(fake_stats lim '.status["429"] // 0')" 0
check "the provider saw at most 30 requests in any 60 s ($(fake_stats lim .peak_minute))" \
    test "$(fake_stats lim .peak_minute)" -le 30
check_eq "the report: nothing throttled" "$(provider throttled summarizer)" 0
check_eq "the report: the breaker never opened" "$(provider breaker_opens summarizer)" 0
check_eq "the report: no retries" "$(provider retries summarizer)" 0

finish
