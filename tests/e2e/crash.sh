#!/usr/bin/env bash
# tests/e2e/crash.sh - a plugin that crashes is reported, not just suffered
# (issue 16): a NULL dereference or abort() in a pool plugin, and exit(3)
# inside a plugin call, exit with status 5 naming the plugin, its stage and
# the document and suggesting --set STAGE.isolated=true; a crashing io
# plugin says its executor cannot isolate it; a rerun resumes as after
# kill -9 and stores every document once. Uses test-misbehave(-io)
# (tests/core/plugins/test_misbehave.c).
source "$(dirname "$0")/lib.sh"

mkdir docs
for i in 1 2 3 4 5 6; do printf 'Document %s.\n\nSome text about topic %s.\n' "$i" "$i" >"docs/ok$i.txt"; done
printf 'This one breaks the parser.\n' >docs/bad.txt
cat >c.ini <<EOF
[sluice]
plugin_path = $BUILD/tests/plugins $BUILD/plugins
include = *.txt
threads = 2
[route.text]
media = text/plain text/markdown
stages = parser chunker embedder
sink = store
[parser]
plugin = test-misbehave
[chunker]
plugin = chunk-text
[embedder]
plugin = embed-hash
dimension = 16
[store]
plugin = sink-sqlite
path = $T/store.db
EOF

for mode in segv abort; do
    sl -c c.ini --set parser.mode=$mode run docs
    check_eq "$mode in a pool plugin: the documented exit status" "$RC" 5
    check_contains "$mode: says what happened" "$ERR" "crashed: SIG(SEGV|ABRT)"
    check_contains "$mode: names plugin, stage and document" "$ERR" \
        "in plugin test-misbehave \(stage \[parser\], parse\) on document docs/bad\.txt"
    check_contains "$mode: suggests isolation" "$ERR" "--set parser\.isolated=true"
    check_contains "$mode: says the next run resumes" "$ERR" "run the same command again to resume"
done

sl -c c.ini --set parser.mode=exit run docs
check_eq "exit(3) in a plugin: the documented exit status, not 3" "$RC" 5
check_contains "exit(3): reported with its status" "$ERR" "crashed: exit\(3\) called in plugin test-misbehave"
check_contains "exit(3): names the document" "$ERR" "on document docs/bad\.txt"

# an io plugin cannot be isolated: the message says so instead of suggesting it
sl -c c.ini --set parser.plugin=test-misbehave-io --set parser.mode=segv run docs
check_eq "segv in an io plugin: exit status" "$RC" 5
check_contains "io crash: names plugin and document" "$ERR" "in plugin test-misbehave-io .* on document docs/bad\.txt"
check_contains "io crash: its executor cannot isolate it" "$ERR" "cannot isolate it"
check_lacks "io crash: no isolated=true suggestion" "$ERR" "--set parser.isolated=true"

# a crash in an io plugin's own callback (a timer), outside any core call
sl -c c.ini --set parser.plugin=test-misbehave-io --set parser.mode=segv_later run docs
check_eq "segv in an io plugin's timer callback: exit status" "$RC" 5
check_contains "callback crash: names the plugin and where" "$ERR" \
    "in plugin test-misbehave-io \(stage \[parser\], a timer callback\)"

# a rerun resumes: every document stored exactly once
sl -c c.ini run --json docs
check_eq "rerun after the crashes: exit status" "$RC" 0
check_eq "rerun: every document stored or skipped" "$(json '.documents.stored + .documents.skipped')" 7
check_eq "rerun: each document once in the store" "$(sql "$T/store.db" 'SELECT count(*) FROM documents;')" 7
sl -c c.ini run --json docs
check_eq "a third run skips everything" "$(json .documents.skipped)" 7

# with isolation, the same crash costs one document
sl -c c.ini --set parser.mode=segv --set parser.isolated=true --set store.path="$T/iso.db" run --json docs
check_eq "isolated crash: one document failed, status 1" "$RC" 1
check_eq "isolated crash: the others stored" "$(json .documents.stored)" 6

finish
