#!/usr/bin/env bash
# tests/providers-e2e/wrong_dimension.sh - a primary embedder that returns
# vectors of another dimension fails as a provider, not the run (issue
# 17: its good responses were discarded and every document failed):
#   - with a healthy backup of the right dimension, the chain passes the
#     primary by, the backup embeds, and every document is stored with
#     vectors of the configured dimension; the log names the provider and
#     both dimensions;
#   - with no backup, every document fails with that reason, and the run
#     is not stopped as by a fatal error.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-dim-$$-$RANDOM"
export OPENAI_API_KEY=$key
openai_ini solo.ini
cp solo.ini chain.ini
printf '\n[embedder-backup]\nplugin = embed-openai\napi_key = ${OPENAI_API_KEY}\ndimension = 1536\n' >>chain.ini
bash "$SRC/bench/gen_corpus.sh" 12 docs 2500 5 >/dev/null

start_fake bad --api-key "$key" --embed-dim 768
start_fake good --api-key "$key"

# --- a healthy backup: it takes the work ---
mkdir chain && cd chain
sl -c ../chain.ini --set "summarizer.base_url=${URL[good]}/v1" --set "embedder.base_url=${URL[bad]}/v1" \
    --set "embedder-backup.base_url=${URL[good]}/v1" --set embedder.fallback=embedder-backup run --json ../docs
cd "$T"
check_eq "with a backup: exit status" "$RC" 0
[[ $RC -eq 0 ]] || echo "stderr: $(tail -c 2000 <<<"$ERR")" >&2
check_eq "with a backup: no fatal error" "$(json '.fatal // "none"')" none
store_once chain/.sluice/store.db 12 "with a backup"
check_eq "with a backup: every vector has the configured 1536 dimensions" \
    "$(sql chain/.sluice/store.db 'SELECT count(*) FROM chunks WHERE dim != 1536;')" 0
check_gt "with a backup: the primary was asked" "$(fake_stats bad '.by_path["/v1/embeddings"] // 0')" 0
check_gt "with a backup: the backup embedded" "$(fake_stats good '.by_path["/v1/embeddings"] // 0')" 0
check_contains "with a backup: the log names the provider and both dimensions" "$ERR" \
    'embedder.*returned 768-dimensional vectors; the config says 1536.*no more calls to it in this run; its fallbacks take the work'
check_lacks "with a backup: nothing stopped the run" "$ERR" "stopping the run"

# --- no backup: the documents fail with the reason, the run is not stopped ---
mkdir solo && cd solo
sl -c ../solo.ini --set "summarizer.base_url=${URL[good]}/v1" --set "embedder.base_url=${URL[bad]}/v1" \
    run --json ../docs
cd "$T"
check_eq "no backup: exit status (documents failed)" "$RC" 1
check_eq "no backup: no fatal error" "$(json '.fatal // "none"')" none
check_eq "no backup: every document failed" "$(json .documents.failed)" 12
check_eq "no backup: each with the provider, got and expected dimensions" \
    "$(json '[.failed[].reason | select(test("provider embedder: model text-embedding-3-small returned 768-dimensional vectors; the config says 1536"))] | length')" 12
check_lacks "no backup: nothing stopped the run" "$ERR" "stopping the run"

finish
