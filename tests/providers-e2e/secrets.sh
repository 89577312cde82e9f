#!/usr/bin/env bash
# tests/providers-e2e/secrets.sh - an API key never leaves the process except
# in its request header. The real provider plugins (llm-openai,
# llm-anthropic, llm-ollama, embed-openai) run against a fake provider that
# demands a key; the key must not appear in stdout, stderr at -vv, the
# --json report, the text report, `sluice check`, or the store - not after a
# good run, not in the 401 errors of a wrong key (which the plugins do put
# in their messages), not when a server echoes the key back in an error
# body, and not in configuration errors next to the key. Where a message
# would have shown it, it shows "***".
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

unset OPENAI_BASE_URL ANTHROPIC_BASE_URL OLLAMA_HOST OPENAI_BACKUP_URL OPENAI_BACKUP_KEY
key="sk-proj-$$-$RANDOM-secret-do-not-print"
wrong="sk-wrong-$$-$RANDOM-also-secret"
export OPENAI_API_KEY=$key ANTHROPIC_API_KEY=$key

corpus=$SRC/examples/corpus
start_fake cloud --api-key "$key"
u=${URL[cloud]}

# scrubbed WHAT [SECRET...]: the last run's stdout and stderr hold neither
# the key nor any other SECRET given.
scrubbed() {
    local what=$1 s
    shift
    for s in "$key" "$@"; do
        check_lacks "$what: stdout" "$OUT" "$s"
        check_lacks "$what: stderr" "$ERR" "$s"
    done
}

sl plugins --json
check_eq "plugins --json: exit status" "$RC" 0
for p in llm-openai llm-anthropic llm-ollama embed-openai embed-ollama; do
    check_eq "$p declares api_key secret" \
        "$(jqo --arg p "$p" 'plugins[] | select(.name == $p) | .options[] | select(.name == "api_key") | .secret')" true
done

# --- a good run, at -vv, both report forms ---
for c in openai anthropic; do
    sl -vv -c "$SRC/conf/$c.ini" check
    check_eq "check -vv $c.ini: exit status" "$RC" 0
    scrubbed "check -vv $c.ini"
done
mkdir good
cd good
sl -vv -c "$SRC/conf/openai.ini" --set "summarizer.base_url=$u/v1" --set "embedder.base_url=$u/v1" run --json "$corpus"
check_eq "good run: exit status" "$RC" 0
check_eq "good run: the key was accepted (no 401)" "$(fake_stats cloud '.status["401"] // 0')" 0
check_gt "good run: requests made with the key" "$(fake_stats cloud '.status["200"] // 0')" 0
check_eq "good run: stdout is the JSON report" "$(json '.documents.stored > 0')" true
scrubbed "good run -vv --json"
rm -rf .sluice
sl -vv -c "$SRC/conf/openai.ini" --set "summarizer.base_url=$u/v1" --set "embedder.base_url=$u/v1" run "$corpus"
check_eq "good run, text report: exit status" "$RC" 0
check_contains "good run: the text report lists the providers" "$OUT" 'summarizer +llm-openai'
scrubbed "good run -vv, text report"
check_eq "the key is nowhere in the store's files" "$(cat .sluice/* | grep -caF "$key" || true)" 0
cd "$T"

# --- a wrong key: 401 from each provider plugin ---
# wrong_key WHAT CONF SLUICE_ARGS...: the run stops (exit 2) on the 401,
# says to check the key, and shows neither key.
wrong_key() {
    local what=$1 conf=$2
    shift 2
    mkdir -p "$T/$what"
    cd "$T/$what"
    sl -vv -c "$SRC/conf/$conf.ini" "$@" run --json "$corpus"
    cd "$T"
    check_eq "$what: exit status (a wrong key is fatal)" "$RC" 2
    check_contains "$what: the report says 401 and to check the key" "$(json .fatal)" 'HTTP 401 .*check the API key'
    check_contains "$what: stderr says it too" "$ERR" 'HTTP 401 .*check the API key'
    scrubbed "$what" "$wrong"
}
wrong_key openai-401 openai --set "summarizer.base_url=$u/v1" --set "embedder.base_url=$u/v1" \
    --set "summarizer.api_key=$wrong"
check_contains "openai-401: it was the completions call" "$(json .fatal)" '/v1/chat/completions'
wrong_key embed-401 openai --set "summarizer.base_url=$u/v1" --set "embedder.base_url=$u/v1" \
    --set summarizer.summaries=none --set "embedder.api_key=$wrong"
check_contains "embed-401: it was the embeddings call" "$(json .fatal)" '/v1/embeddings'
# the wrong key from the environment this time, as the example reads it
ANTHROPIC_API_KEY=$wrong
wrong_key anthropic-401 anthropic --set "summarizer.base_url=$u/v1" --set summarizer.rpm=0 --set summarizer.tpm=0
check_contains "anthropic-401: it was the messages call" "$(json .fatal)" '/v1/messages'
ANTHROPIC_API_KEY=$key
wrong_key ollama-401 ollama --set "summarizer.base_url=$u" --set "embedder.base_url=$u" \
    --set "summarizer.api_key=$wrong"
check_contains "ollama-401: it was /api/chat" "$(json .fatal)" '/api/chat'
check_gt "the fake refused the wrong keys" "$(fake_stats cloud '.status["401"] // 0')" 3

# --- a server that echoes the key back in its error body ---
# The fake names an unknown model in its 404; make the model the key.
start_fake echo --api-key "$key" --models gpt-4o-mini,text-embedding-3-small
mkdir echo
cd echo
# shellcheck disable=SC2016 # interpolated by sluice, not the shell
sl -vv -c "$SRC/conf/openai.ini" --set "summarizer.base_url=${URL[echo]}/v1" \
    --set "embedder.base_url=${URL[echo]}/v1" --set 'summarizer.model=${OPENAI_API_KEY}' run --json "$corpus"
cd "$T"
check_eq "echoed key: exit status (an unknown model is fatal)" "$RC" 2
check_contains "echoed key: the server's message, key scrubbed" "$(json .fatal)" 'The model `\*\*\*` does not exist'
scrubbed "echoed key"

# --- configuration errors next to the key ---
cat >near.ini <<EOF
[route.text]
media = text/markdown text/plain
stages = markdown chunker summarizer embedder
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text

[summarizer]
plugin = llm-openai
api_key = $key
timeout = $key

[embedder]
plugin = embed-hash
dimension = 64

[store]
plugin = sink-sqlite
path = \${CWD}/.sluice/store.db
EOF
sl -c near.ini check
check_eq "key written in the INI, bad value beside it: exit status" "$RC" 2
check_contains "bad value beside the key: names file, line and option, shows ***" "$ERR" \
    "near.ini:15: \[summarizer\] timeout: '\*\*\*' is not a duration"
scrubbed "bad value beside the key"
sed -i "s/^timeout = .*/timeout = soon/" near.ini
sl -c near.ini check
check_contains "(the same error shows an ordinary value)" "$ERR" "timeout: 'soon' is not a duration"
sed -i "s/^timeout = .*/timeout = 5s/; s/^api_key = /api_kee = /" near.ini
sl -c near.ini check
check_eq "misspelt api_key: exit status" "$RC" 2
check_contains "misspelt api_key: did you mean" "$ERR" "near.ini:14: \[summarizer\] api_kee: unknown option.*did you mean 'api_key'"
scrubbed "misspelt api_key"
sl -c "$SRC/conf/openai.ini" --set "summarizer.base_url=$key" check
check_eq "the key given as base_url: exit status" "$RC" 2
check_contains "the key given as base_url: shows ***" "$ERR" "base_url.*'\*\*\*' is not an http"
scrubbed "the key given as base_url"
sl -c "$SRC/conf/openai.ini" --set "embedder.dimension=$key" check
check_eq "the key given as a number: exit status" "$RC" 2
scrubbed "the key given as a number"

# Credentials inside a base_url that is refused are not echoed (issue 17:
# ftp://u:KEY@h/ printed whole); the rest of the URL still is.
urlpass="pw-$$-$RANDOM-in-url"
sl -c "$SRC/conf/openai.ini" --set "summarizer.base_url=ftp://user:$urlpass@host.example/v1" check
check_eq "credentials in a refused base_url: exit status" "$RC" 2
check_contains "credentials in a refused base_url: the URL is named without them" "$ERR" \
    "'ftp://host\.example/v1' is not an http"
check_lacks "credentials in a refused base_url: the password is not printed" "$OUT$ERR" "$urlpass"
check_lacks "credentials in a refused base_url: nor the user" "$OUT$ERR" "user:"

finish
