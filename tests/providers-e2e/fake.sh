# tests/providers-e2e/fake.sh - starting and reading fake providers, for the
# provider end-to-end tests; sourced after tests/e2e/lib.sh.
# shellcheck shell=bash
#
# Each test is run by ctest as `TEST.sh SLUICE SOURCE_DIR FAKE_PROVIDER`.
# lib.sh gives the checks, the scratch folder ($T) and the `sl` wrapper;
# this file adds servers: `start_fake NAME OPTIONS...` starts a fake provider
# on a free port of 127.0.0.1 and records its base URL in URL[NAME]; every
# server is killed (by its pid) when the test exits, pass or fail.
#
# The benchmarks (bench/*.sh) source it too, without lib.sh: they set T (a
# scratch folder for the servers' output) first, pass the same three
# arguments, and call stop_fakes in their own EXIT trap (this file traps EXIT
# only beside lib.sh).

if [[ $# -lt 3 ]]; then
    echo "usage: $0 SLUICE SOURCE_DIR FAKE_PROVIDER" >&2
    exit 2
fi
# lib.sh has moved into $T already: a relative path is from where we started.
FAKE=$(cd "${OLDPWD:-.}" && realpath "$3")
[[ -x $FAKE ]] || {
    echo "FAIL: $FAKE is not an executable (the fake provider is built with the tests)" >&2
    exit 1
}
command -v curl >/dev/null || {
    echo "FAIL: curl is not installed (the fake provider's /_stats is read with it)" >&2
    exit 1
}

declare -A URL=() FAKE_PID=()

stop_fakes() {
    local n
    for n in "${!FAKE_PID[@]}"; do
        kill -TERM "${FAKE_PID[$n]}" 2>/dev/null || true
        wait "${FAKE_PID[$n]}" 2>/dev/null || true
    done
    FAKE_PID=()
}
# lib.sh's cleanup reads the exit status first: hand it the test's own.
if declare -F finish >/dev/null; then
    trap 'rc=$?; stop_fakes; (exit $rc); cleanup' EXIT
fi

# start_fake NAME OPTIONS...: a fake provider with OPTIONS (see
# tests/fake-provider/README.md); URL[NAME] is http://127.0.0.1:PORT.
start_fake() {
    local name=$1 out=$T/.fake-$1.out i port=
    shift
    : >"$out"
    "$FAKE" --port 0 "$@" >"$out" 2>"$T/.fake-$name.err" &
    FAKE_PID[$name]=$!
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$out" || true)
        [[ -n $port ]] && break
        kill -0 "${FAKE_PID[$name]}" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z $port ]]; then
        echo "FAIL: fake provider $name ($*) did not start: $(cat "$T/.fake-$name.err")" >&2
        exit 1
    fi
    URL[$name]=http://127.0.0.1:$port
}

# stop_fake NAME
stop_fake() {
    kill -TERM "${FAKE_PID[$1]}" 2>/dev/null || true
    wait "${FAKE_PID[$1]}" 2>/dev/null || true
    unset "FAKE_PID[$1]"
}

# fake_stats NAME FILTER: a jq filter on the server's /_stats.
fake_stats() {
    curl -sf --max-time 10 "${URL[$1]}/_stats" | jq -r "$2" 2>/dev/null || echo INVALID
}

# fake_reset NAME: zero the counters, re-arm fail-first, reseed.
fake_reset() {
    curl -sf --max-time 10 -X POST "${URL[$1]}/_reset" >/dev/null || fail "POST /_reset on $1"
}

# fake_config NAME JSON: change options at run time.
fake_config() {
    curl -sf --max-time 10 -d "$2" "${URL[$1]}/_config" >/dev/null || fail "POST /_config $2 on $1"
}

# provider FIELD NAME: a field of the named provider in the last --json report.
provider() {
    jqo --arg n "$2" ".providers[] | select(.name == \$n) | .$1"
}

# store_once DB NFILES WHAT: every file is one document, stored once, with
# its chunks once each and a vector on every chunk.
store_once() {
    local db=$1 n=$2 what=$3
    check_eq "$what: documents in the store = files" "$(sql "$db" 'SELECT count(*) FROM documents;')" "$n"
    check_eq "$what: distinct documents = files" "$(sql "$db" 'SELECT count(DISTINCT uri) FROM documents;')" "$n"
    check_eq "$what: every chunk once: count(*) = count(distinct (doc_id, ordinal))" \
        "$(sql "$db" 'SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT doc_id, ordinal FROM chunks)) FROM chunks;')" 0
    check_eq "$what: no duplicate (document, ordinal)" "$(duplicate_chunks "$db")" 0
    check_eq "$what: chunk_count and ordinals match the chunk rows" "$(chunk_count_mismatches "$db")" 0
    check_eq "$what: no orphan chunks" "$(orphan_chunks "$db")" 0
    check_gt "$what: chunks stored" "$(sql "$db" 'SELECT count(*) FROM chunks;')" "$((n - 1))"
    check_eq "$what: every chunk has a vector of dim float32s" \
        "$(sql "$db" 'SELECT count(*) FROM chunks WHERE vector IS NULL OR dim <= 0 OR length(vector) != 4 * dim;')" 0
}

# tsl LABEL ARGS...: sl, and one line saying how long it ran (for people
# reading the log; nothing asserts on it).
tsl() {
    local label=$1 t0
    shift
    t0=$(now_ms)
    sl "$@"
    echo "$label: sluice exited $RC after $(($(now_ms) - t0)) ms"
}

# ini_set FILE SECTION KEY [VALUE]: KEY = VALUE in [SECTION] of FILE: the
# key's line replaced where it stands, else added at the section's end, the
# section added at the file's end when there is none. Without VALUE the
# key's line is dropped.
ini_set() {
    local file=$1
    INI_SECTION=$2 INI_KEY=$3 INI_DROP=1 INI_VALUE=
    (($# > 3)) && INI_DROP=0 INI_VALUE=$4
    export INI_SECTION INI_KEY INI_DROP INI_VALUE
    awk '
        function line() { print ENVIRON["INI_KEY"] " = " ENVIRON["INI_VALUE"] }
        function blanks() { for (; nb > 0; nb--) print "" }
        function close_section() { if (cur == sec && !done && !drop) { line(); done = 1 } }
        BEGIN { sec = ENVIRON["INI_SECTION"]; key = ENVIRON["INI_KEY"]; drop = ENVIRON["INI_DROP"] == 1 }
        /^[ \t]*$/ { nb++; next }
        /^\[/ { close_section(); blanks(); cur = substr($0, 2, index($0, "]") - 2); seen = seen || cur == sec; print; next }
        { blanks() }
        cur == sec { k = $0; sub(/[ \t]*=.*/, "", k); if (k == key) { if (!drop && !done) line(); done = 1; next } }
        { print }
        END { close_section(); blanks(); if (!seen && !drop) { print ""; print "[" sec "]"; line() } }
    ' "$file" >"$file.tmp" && mv "$file.tmp" "$file"
    unset INI_SECTION INI_KEY INI_DROP INI_VALUE
}

# openai_ini FILE [LINE...]: the pipeline most provider tests run:
# Markdown, chunk-text, llm-openai summaries of documents, embed-openai (1536
# dimensions), sink-sqlite in ./.sluice; both providers take
# ${OPENAI_API_KEY} and need their base_url set (--set, or a line here).
# A line `KEY = VALUE` goes into [sluice]; `SECTION.KEY = VALUE` sets KEY in
# [SECTION] (ini_set: replaced, added, or a new section, as in
# `backup.plugin = llm-openai`); `SECTION.KEY` alone drops the key (as
# `store.path` for another sink).
openai_ini() {
    local file=$1 l edits=()
    shift
    {
        printf '[sluice]\ninclude = *.md\n'
        for l in "$@"; do
            # the key is what stands before the first "=": a dot in it names the section
            if [[ ${l%%=*} == *.* ]]; then
                edits+=("$l")
            else
                printf '%s\n' "$l"
            fi
        done
        cat <<'EOF'

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

[embedder]
plugin = embed-openai
api_key = ${OPENAI_API_KEY}
dimension = 1536

[store]
plugin = sink-sqlite
path = ${CWD}/.sluice/store.db
EOF
    } >"$file"
    local key value
    for l in ${edits[@]+"${edits[@]}"}; do
        key=${l%%=*}
        key=${key%"${key##*[![:space:]]}"} # trailing blanks off
        if [[ $l == *=* ]]; then
            value=${l#*=}
            value=${value#"${value%%[![:space:]]*}"} # leading blanks off
            ini_set "$file" "${key%.*}" "${key##*.}" "$value"
        else
            ini_set "$file" "${key%.*}" "${key##*.}"
        fi
    done
}
