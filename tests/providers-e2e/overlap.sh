#!/usr/bin/env bash
# tests/providers-e2e/overlap.sh - a document's summaries and its embeddings
# are asked at once when neither needs the other (embed_summaries = false);
# when the embedder reads the chunks' summaries (embed_summaries = true) a
# chunk is embedded as soon as its own summary comes, beside whatever else
# is still asked. One document of one chunk, summaries = both, a fake
# provider that holds every answer for a while: 3 requests in flight at
# peak when all overlap, 2 when the embedding waits for its chunk's summary.
# Either way the document is stored once, with its summary, and with
# embed_summaries the embedded text carries it (its vector differs).
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-overlap-$$-$RANDOM"
export OPENAI_API_KEY=$key
mkdir docs
{
    echo "# Rotating credentials"
    echo
    echo "Issue the new token, roll it out, then revoke the old one."
} >docs/rotate.md

openai_ini overlap.ini

# long enough that two requests sent at the same step are surely in flight together
start_fake p --api-key "$key" --latency-ms 1500
url=(--set "summarizer.base_url=${URL[p]}/v1" --set "embedder.base_url=${URL[p]}/v1"
    --set summarizer.summaries=both --set embedder.batch_size=64)

declare -A vec=()
for mode in false true; do
    fake_reset p
    rm -rf run && mkdir run && cd run
    tsl "embed_summaries=$mode" -c ../overlap.ini "${url[@]}" --set "summarizer.embed_summaries=$mode" -vv \
        run --json ../docs
    cd "$T"
    check_eq "embed_summaries=$mode: exit status" "$RC" 0
    check_eq "embed_summaries=$mode: stored" "$(json .documents.stored)" 1
    check_eq "embed_summaries=$mode: the document's summary is stored" \
        "$(sql run/.sluice/store.db "SELECT count(*) FROM documents WHERE json_extract(metadata, '\$.summary') LIKE 'Summary:%';")" 1
    check_eq "embed_summaries=$mode: every chunk has its summary and a vector" \
        "$(sql run/.sluice/store.db "SELECT count(*) FROM chunks WHERE summary IS NULL OR vector IS NULL;")" 0
    check_eq "embed_summaries=$mode: two completions (chunk, document) and one embedding call" \
        "$(fake_stats p '[.by_path["/v1/chat/completions"], .by_path["/v1/embeddings"]] | map(tostring) | join(" ")')" "2 1"
    if [[ $mode == false ]]; then
        check_eq "embed_summaries=false: summaries and embeddings were in flight together" \
            "$(fake_stats p .peak_concurrent)" 3
        check_contains "embed_summaries=false: the job logs both at once" "$ERR" 'rotate.md: chunk -> summarize\+embed'
    else
        check_eq "embed_summaries=true: the embedding waited for its chunk's summary" \
            "$(fake_stats p .peak_concurrent)" 2
        check_contains "embed_summaries=true: the job logs one joint step, chained" "$ERR" \
            'rotate.md: chunk -> summarize\+embed'
    fi
    vec[$mode]=$(sql run/.sluice/store.db "SELECT hex(vector) FROM chunks;")
done
check_ne "the embedded text carried the summary: the vectors differ" "${vec[true]}" "${vec[false]}"
finish
