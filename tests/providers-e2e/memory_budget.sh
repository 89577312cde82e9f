#!/usr/bin/env bash
# tests/providers-e2e/memory_budget.sh - `[sluice] memory_budget` counts what
# a document holds in flight, not only its file: its elements, chunks,
# vectors and summaries, and the request and response bodies and embedding
# batches it has out. With a small budget and a slow provider (so that every
# admitted document is still in flight when the next would be admitted):
#   - every document is stored, once;
#   - the report's peak_inflight_bytes is above zero and never above the
#     budget, and the expansion it measured is more than the file alone (so
#     more than the file is counted);
#   - the budget is what held documents back: the provider saw far fewer
#     requests at once than with a large budget on the same corpus;
#   - a document larger than the whole budget still goes through, alone,
#     instead of waiting forever.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-budget-$$-$RANDOM"
export OPENAI_API_KEY=$key
ndocs=40
bash "$SRC/bench/gen_corpus.sh" "$ndocs" corpus 16000 3 >/dev/null
check_eq "documents generated" "$(count_files corpus '*.md')" "$ndocs"

openai_ini budget.ini

# Every answer takes 400 ms: a document admitted stays in flight that long
# at least, so what is in flight at once is what the budget lets in.
start_fake slow --api-key "$key" --latency-ms 400 --latency-dist fixed
url=(--set "summarizer.base_url=${URL[slow]}/v1" --set "embedder.base_url=${URL[slow]}/v1")
budget=$((2 * 1024 * 1024))

mkdir small
cd small
sl -c ../budget.ini "${url[@]}" --set sluice.memory_budget=2M run --json ../corpus
cd "$T"
check_eq "2M budget: exit status" "$RC" 0
[[ $RC -eq 0 ]] || echo "stderr: $(tail -c 2000 <<<"$ERR")" >&2
check_eq "2M budget: stored" "$(json .documents.stored)" "$ndocs"
check_eq "2M budget: failed" "$(json .documents.failed)" 0
store_once small/.sluice/store.db "$ndocs" "2M budget"
check_eq "report: the budget" "$(json .memory_budget_bytes)" "$budget"
peak=$(json .peak_inflight_bytes)
check_gt "report: peak_inflight_bytes" "$peak" 0
check "peak_inflight_bytes ($peak) within the 2M budget ($budget)" test "$peak" -le "$budget"
# the file alone would be an expansion of 1: vectors, chunks and bodies count
check "the expansion measured ($(json .inflight_expansion)) counts more than the file" \
    test "$(json '.inflight_expansion > 2')" = true
check_eq "2M budget: the report says the budget bounded the run" "$(json .binding.kind)" memory_budget
check_contains "2M budget: and how long admission waited" "$(json .binding.line)" \
    'bound by memory_budget = 2 MB: admission waited [0-9.]+ s of [0-9.]+ s for room'
# room frees as documents finish: the line looks through the budget to what
# held them, here the slow provider both stages call, not the parser or the store
check_contains "2M budget: and what held the documents in flight" "$(json .binding.line)" \
    'the documents in flight spent [0-9]+% of their time in \[(summarizer|embedder)\]'
small_peak=$(fake_stats slow .peak_concurrent)

# The same corpus with room for all of it: the budget was what held back.
curl -s -X POST "${URL[slow]}/_reset" >/dev/null
mkdir large
cd large
sl -c ../budget.ini "${url[@]}" --set sluice.memory_budget=1G run --json ../corpus
cd "$T"
check_eq "1G budget: stored" "$(json .documents.stored)" "$ndocs"
large_peak=$(fake_stats slow .peak_concurrent)
check_gt "requests in flight at once with 1G ($large_peak)" "$large_peak" "$((ndocs / 2))"
check "the 2M budget held documents back: $small_peak requests at once, not $large_peak" \
    test "$((small_peak * 3))" -le "$large_peak"

# --- one document larger than the whole budget: it goes through, alone ---
mkdir big
bash "$SRC/bench/gen_corpus.sh" 1 big-src 3000000 5 >/dev/null
cp big-src/d000/doc-00000.md big/huge.md
cp corpus/d000/doc-00001.md big/small.md
check_gt "the big document is over the budget" "$(stat -c %s big/huge.md)" "$budget"
mkdir bigrun
cd bigrun
sl -c ../budget.ini "${url[@]}" --set sluice.memory_budget=2M run --json ../big
cd "$T"
check_eq "over-budget document: exit status" "$RC" 0
[[ $RC -eq 0 ]] || echo "stderr: $(tail -c 2000 <<<"$ERR")" >&2
check_eq "over-budget document: both stored" "$(json .documents.stored)" 2
check_gt "over-budget document: it was counted, over the budget, alone" "$(json .peak_inflight_bytes)" \
    "$budget"

finish
