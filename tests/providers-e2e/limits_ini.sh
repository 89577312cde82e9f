# tests/providers-e2e/limits_ini.sh - the pipeline the shared-limits tests and
# bench/shared_limits.sh run: Markdown, chunk-text, llm-openai summaries (the
# key is ${OPENAI_API_KEY}), local embeddings (embed-hash, 64 dimensions),
# then the store. Sourced; needs nothing else.
# shellcheck shell=bash

# limits_ini FILE [SUMMARIZER_LINE...] [-- STORE_LINE...]: the lines before
# `--` go into [summarizer] (base_url, rpm, shared_limits...), those after it
# into [store].
limits_ini() {
    local file=$1 summarizer=()
    shift
    while (($#)) && [[ $1 != -- ]]; do
        summarizer+=("$1")
        shift
    done
    (($#)) && shift
    {
        cat <<'EOF2'
[sluice]
include = *.md

[route.text]
media = text/markdown
stages = markdown chunker summarizer embedder
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text

[summarizer]
plugin = llm-openai
api_key = ${OPENAI_API_KEY}
EOF2
        ((${#summarizer[@]})) && printf '%s\n' "${summarizer[@]}"
        printf '\n[embedder]\nplugin = embed-hash\ndimension = 64\n\n[store]\n'
        (($#)) && printf '%s\n' "$@"
    } >"$file"
}
