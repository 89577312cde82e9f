#!/usr/bin/env bash
# tests/providers-e2e/send_off_loop.sh - an io plugin that sets
# SL_PLUGIN_SEND_OFF_LOOP (plugin.h, ABI 1.7) is called on a pool thread,
# where it builds its request; the transfer it sends from there is started
# by the loop and answered, failures included; a plugin without the flag is
# still called on the loop thread.
#
# The two test embedders (tests/core/plugins/test_io_thread.c) fail the run
# (SL_EFATAL) when called on the wrong side, and answer each call only when
# its POST to the fake provider has come back. So: every document stored,
# and as many embeddings requests at the fake as embed calls in the report,
# means each call ran where its flag says and each transfer it handed over
# was made. The first requests get 503: their answers, on the same path,
# are retried, and nothing is stored twice.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

use_test_plugins test-io-offloop

sl_ok plugins --json
check_eq "plugins --json: test-io-offloop sends off the loop" \
    "$(json 'plugins[] | select(.name == "test-io-offloop") | .sends_off_loop')" true
check_eq "plugins --json: test-io-onloop does not" \
    "$(json 'plugins[] | select(.name == "test-io-onloop") | .sends_off_loop')" false
check_eq "plugins --json: nor does a cpu plugin" \
    "$(json 'plugins[] | select(.name == "chunk-text") | .sends_off_loop')" false
check_eq "plugins --json: the in-tree providers do" \
    "$(json '[plugins[] | select(.name | test("^(llm|embed)-(openai|ollama|anthropic)$")) | .sends_off_loop] | map(tostring) | join(" ")')" \
    "true true true true true"

key="sk-offloop-$$-$RANDOM"
export TEST_IO_KEY=$key
start_fake p --api-key "$key" --latency-ms 20
export TEST_IO_URL=${URL[p]}/v1

mkdir docs
for i in $(seq 1 12); do
    {
        printf '# Runbook %d\n\n' "$i"
        for s in 1 2 3 4 5 6; do
            printf '## Step %d\n\nRestart the worker pool %d on host %d, then watch the queue drain for a minute.\n\n' \
                "$s" "$s" "$i"
        done
    } >"docs/r$i.md"
done

cat >off.ini <<'EOF'
[sluice]
threads = 2
retry_base = 10ms

[route.text]
media = text/markdown
stages = markdown chunker embedder
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text
size = 120
overlap = 0

[embedder]
plugin = test-io-offloop
base_url = ${TEST_IO_URL}
api_key = ${TEST_IO_KEY}

[store]
plugin = sink-sqlite
path = ${CWD}/.sluice/store.db
EOF

# run_with PLUGIN FAIL_FIRST: one run into a fresh store
run_with() {
    fake_reset p
    fake_config p "{\"fail-first\": $2}"
    rm -rf run && mkdir run && cd run
    tsl "$1" -c ../off.ini --set "embedder.plugin=$1" -v run --json ../docs
    cd "$T"
}

for plugin in test-io-offloop test-io-onloop; do
    run_with "$plugin" 3
    check_eq "$plugin: exit status" "$RC" 0
    check_lacks "$plugin: embed was called where its flag says" "$ERR" "embed called"
    check_eq "$plugin: stored" "$(json .documents.stored)" 12
    check_eq "$plugin: failed" "$(json .documents.failed)" 0
    store_once run/.sluice/store.db 12 "$plugin"
    calls=$(json '.stages[] | select(.name == "embedder") | .calls')
    check_gt "$plugin: embed calls" "$calls" 11
    # the three 503s are calls too: they were sent, answered and retried
    check_eq "$plugin: each embed call's request reached the fake" \
        "$(fake_stats p '.by_path["/v1/embeddings"]')" "$calls"
    check_eq "$plugin: the 503s were retried" "$(json '.stages[] | select(.name == "embedder") | .retries')" 3
    check_eq "$plugin: the stage is still the loop executor's" \
        "$(json '.stages[] | select(.name == "embedder") | .executor')" loop
    check_lacks "$plugin: the key is never printed" "$OUT$ERR" "$key"
done

# A dead endpoint: the transfer handed over from the pool thread fails on
# the loop, its answer says why, and the documents fail (retryable) rather
# than the run hanging or crashing.
start_fake gone # a port where nothing listens: a fake started and stopped
dead=${URL[gone]}
stop_fake gone
rm -rf run && mkdir run && cd run
tsl dead -c ../off.ini --set "embedder.base_url=$dead/v1" --set sluice.retries=1 \
    --set sluice.retry_budget=2s run --json ../docs
cd "$T"
check_eq "dead endpoint: exit status (documents failed)" "$RC" 1
check_eq "dead endpoint: every document failed" "$(json .documents.failed)" 12
check_contains "dead endpoint: the error says the connection was refused" "$ERR" "connection refused"

finish
