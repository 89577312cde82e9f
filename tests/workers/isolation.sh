#!/usr/bin/env bash
# shellcheck disable=SC2016 # jq filters use $variables of their own
# tests/workers/isolation.sh - an isolated stage costs one document per
# disaster, never the run. A corpus of good Markdown plus one document per
# kind of disaster (a segfault, an abort, a hang, a runaway allocation, a
# call to exit) goes through a parser that misbehaves on marker words
# (tests/workers/plugins/test_bad.c), run in worker processes: first a cpu
# plugin forced there by `isolated = true`, then a plugin that declares the
# isolated bottleneck itself. Each run ends with status 1, stores every good
# document, lists each bad one in the --json report with its reason, and
# leaves no worker process behind. The real Markdown parser and chunker,
# isolated (with seccomp and recycling), store exactly what they store
# in-process. Last, sluice is killed with SIGKILL while a worker hangs: the
# worker must die with it.
#
# Usage: isolation.sh SLUICE SOURCE_DIR WORKERS_PLUGIN_DIR
PLUGINS=$(realpath "${3:?usage: isolation.sh SLUICE SOURCE_DIR WORKERS_PLUGIN_DIR}")
# shellcheck source=SCRIPTDIR/../e2e/lib.sh
source "$(dirname "$0")/../e2e/lib.sh"

mark_workers

mkdir docs
cp "$SRC"/examples/corpus/*.md docs/
ngood=$(count_files docs '*.md')
printf '# Crash\n\nSLUICE_TEST_SEGFAULT\n' >docs/segv.md
printf '# Abort\n\nSLUICE_TEST_ABORT\n' >docs/abort.md
printf '# Hang\n\nSLUICE_TEST_HANG\n' >docs/hang.md
printf '# Runaway\n\nSLUICE_TEST_ALLOCATE\n' >docs/alloc.md
printf '# Exit\n\nSLUICE_TEST_EXIT\n' >docs/exit.md
declare -A want=(
    [docs/segv.md]='segmentation fault'
    [docs/abort.md]='abort'
    [docs/hang.md]='timed out after 2000 ms'
    [docs/alloc.md]='memory limit|out of memory'
    [docs/exit.md]='exited with status 3'
)

# write_ini FILE PLUGIN TIMEOUT EXTRA: a route whose parser is PLUGIN, with
# call_timeout TIMEOUT and EXTRA settings, into the real chunker, embedder
# and SQLite sink.
write_ini() {
    cat >"$1" <<EOF
[sluice]
threads = 2
workers = 2
worker_memory_limit = 64M
include = *.md
plugin_path = $PLUGINS

[route.text]
media = text/markdown text/plain
stages = parser chunker embedder
sink = store

[parser]
plugin = $2
call_timeout = $3
$4

[chunker]
plugin = chunk-text

[embedder]
plugin = embed-hash
dimension = 64

[store]
plugin = sink-sqlite
path = $T/${2}.db
EOF
}

check_run() {
    local label=$1 db=$2
    check_eq "$label: exit status with failed documents" "$RC" 1
    if [[ $RC -ne 1 ]]; then echo "stderr: $(tail -c 3000 <<<"$ERR")" >&2; fi
    check_eq "$label: stored" "$(json .documents.stored)" "$ngood"
    check_eq "$label: failed" "$(json .documents.failed)" "${#want[@]}"
    local uri reason
    for uri in "${!want[@]}"; do
        reason=$(jqo --arg u "$uri" '.failed[] | select(.uri == $u) | .reason')
        check_contains "$label: reason for $uri" "$reason" "${want[$uri]}"
        check_contains "$label: reason for $uri names the plugin" "$reason" "test-bad-"
        check_eq "$label: stage of $uri" "$(jqo --arg u "$uri" '.failed[] | select(.uri == $u) | .stage')" parser
        check_eq "$label: $uri is not stored" "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = '$uri';")" 0
    done
    for f in "$SRC"/examples/corpus/*.md; do
        uri=docs/$(basename "$f")
        check_gt "$label: good document $uri stored with chunks" \
            "$(sql "$db" "SELECT coalesce(max(chunk_count), 0) FROM documents WHERE uri = '$uri';")" 0
    done
    check_eq "$label: no worker process left" "$(leftover_workers)" 0
}

# A cpu plugin forced into workers by its stage.
write_ini forced.ini test-bad-parser 2s 'isolated = true'
sl -c forced.ini run --json docs
check_run "isolated = true" "$T/test-bad-parser.db"

# A plugin that declares the isolated bottleneck runs there without being told.
write_ini declared.ini test-bad-isolated 2s ''
sl -c declared.ini run --json docs
check_run "bottleneck isolated" "$T/test-bad-isolated.db"

# Isolation changes where stages run, never what is stored: the real
# Markdown parser and chunker in workers (recycled every 3 documents, under
# the seccomp filter) give the same store, byte for byte, as in-process.
write_real_ini() {
    cat >"$1" <<EOF
[sluice]
workers = 2
worker_max_documents = 3
worker_seccomp = true
include = *.md

[route.text]
media = text/markdown text/plain
stages = markdown chunker embedder
sink = store

[markdown]
plugin = parse-markdown
$3

[chunker]
plugin = chunk-text
size = 400
overlap = 50
$3

[embedder]
plugin = embed-hash
dimension = 64

[store]
plugin = sink-sqlite
path = $T/$2
EOF
}
mkdir real
cp "$SRC"/examples/corpus/*.md real/
write_real_ini real-isolated.ini isolated.db 'isolated = true'
write_real_ini real-inprocess.ini inprocess.db ''
sl_ok -c real-isolated.ini run --json real
check_eq "isolated run: everything stored" "$(json .documents.stored)" "$ngood"
check_eq "isolated run: no worker process left" "$(leftover_workers)" 0
sl_ok -c real-inprocess.ini run --json real
check_eq "same store with and without isolation" "$(store_digest "$T/isolated.db")" "$(store_digest "$T/inprocess.db")"
check_gt "the store is not empty" "$(sql "$T/isolated.db" "SELECT count(*) FROM chunks;")" "$ngood"

# Without isolation the same segfault takes sluice itself down: the runs
# above really ran the parser elsewhere. It is reported (exit status 4,
# the plugin named); call_timeout is refused on a pool stage, so none here.
mkdir crash
cp docs/segv.md crash/
write_ini inprocess.ini test-bad-parser 0 ''
set +e
timeout -k 10 "$SLUICE_TIMEOUT" "$SLUICE" -c inprocess.ini run --json crash </dev/null >/dev/null 2>crash.err
RC=$?
set -e
check_eq "without isolation the segfault takes sluice down, reported (status 5)" "$RC" 5
check_contains "without isolation: the crash names the plugin" "$(cat crash.err)" "crashed: .* in plugin test-bad-parser"

# sluice killed while a worker hangs: the worker goes with it.
mkdir hang
cp docs/hang.md hang/
write_ini killed.ini test-bad-parser 60s 'isolated = true'
set +e
"$SLUICE" -c killed.ini run hang </dev/null >/dev/null 2>"$T/killed.err" &
pid=$!
set -e
for _ in $(seq 1 100); do
    [[ $(leftover_workers) -gt 0 ]] && break
    sleep 0.1
done
check_gt "a worker runs while sluice runs" "$(leftover_workers)" 0
sleep 0.5
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
left=1
for _ in $(seq 1 50); do
    left=$(leftover_workers)
    [[ $left -eq 0 ]] && break
    sleep 0.1
done
check_eq "no worker outlives a killed sluice" "$left" 0

finish
