#!/usr/bin/env bash
# tests/providers-e2e/conf_examples.sh - the ready configurations of conf/
# work as shipped: conf/openai.ini, conf/ollama.ini, conf/anthropic.ini and
# conf/mixed.ini each pass `sluice check` with their keys in the
# environment, and each ingests examples/corpus against fake providers with
# only the base URLs overridden by --set: a keyed "cloud" fake speaking
# OpenAI and Anthropic, and a keyless "local" one for the Ollama endpoints.
# Every file becomes one document with its summary, every chunk gets a
# vector of the configured size, and the requests reached the endpoints the
# example names.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

unset OPENAI_BASE_URL ANTHROPIC_BASE_URL OLLAMA_HOST OPENAI_BACKUP_URL OPENAI_BACKUP_KEY
key="sk-conf-$$-$RANDOM"
backup_key="sk-backup-$$-$RANDOM"
export OPENAI_API_KEY=$key ANTHROPIC_API_KEY=$key

corpus=$SRC/examples/corpus
nfiles=$(count_files "$corpus" '*.md' '*.markdown' '*.txt' '*.text')
check_gt "files in examples/corpus" "$nfiles" 5

for c in openai ollama anthropic mixed; do
    check "conf/$c.ini exists" test -f "$SRC/conf/$c.ini"
    sl -c "$SRC/conf/$c.ini" check
    check_eq "conf/$c.ini: sluice check exit status" "$RC" 0
    [[ $RC -eq 0 ]] || echo "check $c: $ERR" >&2
    check_contains "conf/$c.ini: check names the summarizer" "$OUT" '\[summarizer\] llm-'
    check_contains "conf/$c.ini: check names the embedder" "$OUT" '\[embedder\] embed-'
done
# Without its key a config that needs one is refused, naming the variable.
sl -c "$SRC/conf/openai.ini" --set summarizer.api_key= check
check_eq "openai.ini check: an empty key is accepted (local servers need none)" "$RC" 0
(
    unset OPENAI_API_KEY
    sl -c "$SRC/conf/openai.ini" check
    echo "$RC" >"$T/.rc-nokey"
    echo "$ERR" >"$T/.err-nokey"
)
check_eq "openai.ini check without OPENAI_API_KEY: exit status" "$(cat "$T/.rc-nokey")" 2
check_contains "openai.ini check without OPENAI_API_KEY: says which variable" "$(cat "$T/.err-nokey")" 'OPENAI_API_KEY'

start_fake cloud --api-key "$key"
start_fake local
start_fake backup --api-key "$key"
cloud=${URL[cloud]} local=${URL[local]}

# ingest NAME SLUICE_ARGS...: conf/NAME.ini in a fresh folder $T/NAME.
ingest() {
    local name=$1
    shift
    mkdir -p "$T/$name"
    cd "$T/$name"
    tsl "$name" -c "$SRC/conf/$name.ini" "$@" run --json "$corpus"
    cd "$T"
    check_eq "$name: exit status" "$RC" 0
    [[ $RC -eq 0 ]] || echo "$name: stderr: $(tail -c 2000 <<<"$ERR")" >&2
    check_eq "$name: report: stored" "$(json .documents.stored)" "$nfiles"
    check_eq "$name: report: failed" "$(json .documents.failed)" 0
    check_eq "$name: report: no failures listed" "$(json '.failed | length')" 0
}

# summaries DB NAME: every document has the fake's summary of its prompt.
doc_summaries() {
    check_eq "$2: every document's metadata has its summary" \
        "$(sql "$1" "SELECT count(*) FROM documents WHERE json_extract(metadata, '\$.summary') LIKE 'Summary: Summarise this document%';")" \
        "$nfiles"
}

# dims DB NAME DIM: every vector has the configured size.
dims() {
    check_eq "$2: every vector has $3 dimensions" "$(sql "$1" "SELECT DISTINCT dim FROM chunks;")" "$3"
}

# --- conf/openai.ini: both stages on the OpenAI API ---
before=$(fake_stats cloud .requests)
ingest openai --set "summarizer.base_url=$cloud/v1" --set "embedder.base_url=$cloud/v1"
db=$T/openai/.sluice/openai.db
store_once "$db" "$nfiles" openai
dims "$db" openai 512
doc_summaries "$db" openai
check_eq "openai: summaries = document: no chunk summaries" \
    "$(sql "$db" 'SELECT count(*) FROM chunks WHERE summary IS NOT NULL;')" 0
check_eq "openai: one completion per document" "$(provider requests summarizer)" "$nfiles"
check_gt "openai: the embedder made requests" "$(provider requests embedder)" 0
check_gt "openai: report: input tokens" "$(provider tokens_in summarizer)" 0
check_gt "openai: report: output tokens" "$(provider tokens_out summarizer)" 0
check_eq "openai: report: the summarizer's cost is priced" "$(provider 'cost > 0' summarizer)" true
check_eq "openai: report: the embedder's cost is priced" "$(provider 'cost > 0' embedder)" true
check_eq "openai: the fake saw the completions" "$(fake_stats cloud '.by_path["/v1/chat/completions"]')" "$nfiles"
check_eq "openai: the fake saw every request" "$(fake_stats cloud .requests)" \
    "$((before + $(json '[.providers[].requests] | add')))"

# --- conf/ollama.ini: a local Ollama, no key ---
ingest ollama --set "summarizer.base_url=$local" --set "embedder.base_url=$local"
db=$T/ollama/.sluice/ollama.db
store_once "$db" "$nfiles" ollama
dims "$db" ollama 768
doc_summaries "$db" ollama
check_eq "ollama: one /api/chat per document" "$(fake_stats local '.by_path["/api/chat"]')" "$nfiles"
check_gt "ollama: embeddings through /api/embed" "$(fake_stats local '.by_path["/api/embed"]')" 0
check_gt "ollama: report: input tokens (prompt_eval_count)" "$(provider tokens_in summarizer)" 0

# --- conf/anthropic.ini: summaries of documents and chunks, embedded with
# the chunk text. Its 50 rpm and 50,000 tpm would pace the ~85 requests
# over 100 s; the fake has no such limits, so the test lifts them.
before=$(fake_stats cloud '.by_path["/v1/messages"] // 0')
ingest anthropic --set "summarizer.base_url=$cloud/v1" --set summarizer.rpm=0 --set summarizer.tpm=0
db=$T/anthropic/.sluice/anthropic.db
store_once "$db" "$nfiles" anthropic
dims "$db" anthropic 384
doc_summaries "$db" anthropic
nchunks=$(sql "$db" 'SELECT count(*) FROM chunks;')
check_eq "anthropic: summaries = both: every chunk has its summary" \
    "$(sql "$db" "SELECT count(*) FROM chunks WHERE summary LIKE 'Summary: Summarise this passage%';")" "$nchunks"
check_eq "anthropic: one message per document and per chunk" \
    "$(($(fake_stats cloud '.by_path["/v1/messages"]') - before))" "$((nfiles + nchunks))"
check_eq "anthropic: report: requests" "$(provider requests summarizer)" "$((nfiles + nchunks))"
# embed_summaries = true: the vectors are of summary + text, so they all
# differ from the same pipeline's vectors of the text alone.
mkdir -p "$T/plain"
cd "$T/plain"
tsl plain -c "$SRC/conf/anthropic.ini" --set "summarizer.base_url=$cloud/v1" --set summarizer.rpm=0 --set summarizer.tpm=0 \
    --set summarizer.embed_summaries=false run --json "$corpus"
cd "$T"
check_eq "anthropic without embed_summaries: exit status" "$RC" 0
plain=$T/plain/.sluice/anthropic.db
check_eq "anthropic: same chunks either way" \
    "$(sql "$plain" 'SELECT count(*) FROM chunks;')" "$nchunks"
check_eq "anthropic: embed_summaries changes every vector" \
    "$(sqlite3 -batch -noheader "$db" "ATTACH '$plain' AS p;
        SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
          JOIN p.documents pd ON pd.uri = d.uri JOIN p.chunks pc ON pc.doc_id = pd.id AND pc.ordinal = c.ordinal
         WHERE pc.vector != c.vector;")" "$nchunks"

# --- conf/mixed.ini: Anthropic with a local Ollama fallback, OpenAI
# embeddings with a second endpoint as fallback ---
fake_reset cloud
fake_reset local
ingest mixed --set "summarizer.base_url=$cloud/v1" --set "local-llm.base_url=$local" \
    --set "embedder.base_url=$cloud/v1" --set "embedder-backup.base_url=${URL[backup]}/v1"
db=$T/mixed/.sluice/mixed.db
store_once "$db" "$nfiles" mixed
dims "$db" mixed 1536
doc_summaries "$db" mixed
check_eq "mixed: every document summarised once, by Anthropic or the local model" \
    "$(($(fake_stats cloud '.by_path["/v1/messages"] // 0') + $(fake_stats local '.by_path["/api/chat"] // 0')))" "$nfiles"
# 50 rpm covers the corpus's summaries in its first minute, and a healthy
# primary keeps its work: the local fallback takes none (issue 17: it took
# 86 of 90 when the primary was merely at its limit).
check_eq "mixed: Anthropic, healthy and within its rpm, summarised every document" \
    "$(provider requests summarizer)" "$nfiles"
check_eq "mixed: the local fallback was not needed" "$(provider requests local-llm)" 0
check_gt "mixed: embeddings from OpenAI" "$(fake_stats cloud '.by_path["/v1/embeddings"] // 0')" 0
check_eq "mixed: the backup embedder was not needed" "$(fake_stats backup .requests)" 0
check_eq "mixed: report lists all four providers" \
    "$(json '[.providers[].name] | sort | join(",")')" "embedder,embedder-backup,local-llm,summarizer"

# With the cloud answering 500 to everything, both chains fall back: the
# local model summarises, the backup embeds. The backup's key defaults
# to OPENAI_API_KEY (${OPENAI_BACKUP_KEY:-${OPENAI_API_KEY}}), and with
# OPENAI_BACKUP_KEY set it is that one.
stop_fake backup
start_fake backup --api-key "$backup_key"
export OPENAI_BACKUP_KEY=$backup_key
fake_config cloud '{"fault-5xx": 1}'
fake_reset cloud
fake_reset local
mkdir -p "$T/mixed-down"
cd "$T/mixed-down"
tsl mixed-down -c "$SRC/conf/mixed.ini" --set "summarizer.base_url=$cloud/v1" --set "local-llm.base_url=$local" --set "embedder.base_url=$cloud/v1" \
    --set "embedder-backup.base_url=${URL[backup]}/v1" run --json "$corpus"
cd "$T"
check_eq "mixed, cloud failing: exit status" "$RC" 0
[[ $RC -eq 0 ]] || echo "mixed-down: stderr: $(tail -c 2000 <<<"$ERR")" >&2
check_eq "mixed, cloud failing: stored" "$(json .documents.stored)" "$nfiles"
store_once "$T/mixed-down/.sluice/mixed.db" "$nfiles" mixed-down
check_gt "mixed, cloud failing: the backup embedded (with OPENAI_BACKUP_KEY)" \
    "$(fake_stats backup '.status["200"] // 0')" 0
check_eq "mixed, cloud failing: the backup never refused the key" \
    "$(fake_stats backup '.status["401"] // 0')" 0
check_gt "mixed, cloud failing: the primary embedder was tried" "$(provider failures embedder)" 0
check_gt "mixed, cloud failing: Anthropic was tried" "$(provider failures summarizer)" 0
check_eq "mixed, cloud failing: the local model summarised every document" \
    "$(fake_stats local '.status["200"] // 0')" "$nfiles"
doc_summaries "$T/mixed-down/.sluice/mixed.db" mixed-down
unset OPENAI_BACKUP_KEY

check_lacks "no output shows the key" "$OUT$ERR" "$key"
finish
