#!/usr/bin/env bash
# tests/e2e/watchdog.sh - calls that never end, end twice or block (issue 16):
#   - an SL_PENDING call that never completes fails its document at the
#     deadline ([sluice] call_deadline, or the stage's call_timeout) and the
#     run goes on; a late sl_call_done is ignored and counted;
#   - sl_call_done twice is an error in the log and counted in the report;
#   - an io plugin blocking the loop thread is logged with its name;
#   - call_timeout on a stage that runs on the thread pool is refused at
#     config time with the reason, not silently ignored;
#   - a plugin failing with no message, or with a code that is no SL_E*
#     code, is reported with the code and the plugin.
# Uses test-misbehave(-io) (tests/core/plugins/test_misbehave.c).
source "$(dirname "$0")/lib.sh"

mkdir docs
for i in 1 2 3; do printf 'Document %s.\n' "$i" >"docs/ok$i.txt"; done
printf 'This one misbehaves.\n' >docs/bad.txt
cat >w.ini <<EOF
[sluice]
plugin_path = $BUILD/tests/plugins $BUILD/plugins
include = *.txt
call_deadline = 2s
[route.text]
media = text/plain text/markdown
stages = parser chunker embedder
sink = store
[parser]
plugin = test-misbehave-io
[chunker]
plugin = chunk-text
[embedder]
plugin = embed-hash
dimension = 16
[store]
plugin = sink-sqlite
path = \${CWD}/store.db
EOF

io() { rm -f store.db; sl -c w.ini "$@" run --json docs; }

io --set parser.mode=never
check_eq "never answers: status 1 (one document failed)" "$RC" 1
check_eq "never answers: the others stored" "$(json .documents.stored)" 3
check_contains "never answers: fails at the deadline, naming the plugin" "$(json '.failed[0].reason')" \
    "no answer from test-misbehave-io within 2 s.*call_deadline"
check_eq "never answers: the document named" "$(json '.failed[0].uri')" "docs/bad.txt"

io --set parser.mode=never --set parser.call_timeout=1s --set sluice.call_deadline=10m
check_contains "call_timeout on an io stage is its deadline" "$(json '.failed[0].reason')" \
    "no answer from test-misbehave-io within 1 s.*call_timeout"

# answers 3 s after a 1 s deadline: failed at the deadline, the late answer ignored
io --set parser.mode=late --set parser.delay=3000 --set sluice.call_deadline=1s
check_eq "late answer: the document failed at the deadline" "$(json .documents.failed)" 1
check_eq "late answer: counted" "$(json .answers_ignored.late)" 1
check_contains "late answer: said" "$ERR" "answered a call after its deadline"

io --set parser.mode=twice
check_eq "sl_call_done twice: the run itself goes on" "$(json .documents.stored)" 4
check_eq "sl_call_done twice: counted" "$(json .answers_ignored.already_answered)" 1
check_contains "sl_call_done twice: an error naming the plugin" "$ERR" \
    "error: parser: plugin test-misbehave-io called sl_call_done on a call already answered"

io --set parser.mode=block --set parser.delay=1000
check_eq "blocking the loop: documents stored" "$(json .documents.stored)" 4
check_contains "blocking the loop: logged with the plugin and document" "$ERR" \
    "plugin test-misbehave-io has blocked the loop thread for [0-9]+ ms in parse on docs/bad\.txt"

# a process stopped (SIGSTOP, then continued 1.5 s later) inside a call on
# the loop thread: the call did not block anything, nobody ran; not blamed
io -v --set parser.mode=stop --set parser.delay=1500
check_eq "stopped inside a loop call: documents stored" "$(json .documents.stored)" 4
check_contains "stopped inside a loop call: the pause is said" "$ERR" \
    "the process did not run for 1[0-9]{3} ms \(stopped, or its machine stalled\)"
check_lacks "stopped inside a loop call: not blamed on the plugin" "$ERR" "blocked the loop thread"
# the same on the thread pool, past slow_call
io --set parser.plugin=test-misbehave --set parser.mode=stop --set parser.delay=1500 --set sluice.slow_call=300ms
check_eq "stopped inside a pool call: documents stored" "$(json .documents.stored)" 4
check_lacks "stopped inside a pool call: not a slow call" "$ERR" "has been running"

# a pool call running past [sluice] slow_call is logged with plugin and document
io --set parser.plugin=test-misbehave --set parser.mode=block --set parser.delay=1500 --set sluice.slow_call=300ms
check_eq "slow pool call: documents stored" "$(json .documents.stored)" 4
check_contains "slow pool call: logged with plugin and document" "$ERR" \
    "plugin test-misbehave has been running [0-9]+ ms in parse on docs/bad\.txt \(\[sluice\] slow_call = 300 ms\)"

# call_timeout cannot stop a pool call: refused with the reason
sl -c w.ini --set parser.plugin=test-misbehave --set parser.call_timeout=5s run docs
check_eq "call_timeout on a pool stage: a config error" "$RC" 2
check_contains "call_timeout on a pool stage: the reason and the way out" "$ERR" \
    "\[parser\] call_timeout: .* runs on the thread pool, where a call cannot be stopped.*parser\.isolated=true"
rm -f store.db
sl -c w.ini --set parser.plugin=test-misbehave --set parser.call_timeout=5s --set parser.isolated=true run --json docs
check_eq "call_timeout with isolated = true: accepted" "$RC" 0

# failures without a message, or with a code that is no SL_E* code
io --set parser.plugin=test-misbehave --set parser.mode=fail
check_contains "a failure with no message: the code and the plugin" "$(json '.failed[0].reason')" \
    "test-misbehave failed with .*bad input.*\(-?[0-9]+\) and no message"
io --set parser.plugin=test-misbehave --set parser.mode=fail --set parser.code=-77
check_contains "an unknown code: shown" "$(json '.failed[0].reason')" "unknown error \(-77\)"

# SIGTERM: in-flight work gets shutdown_grace, then sluice stops with the report
rm -f store.db
"$SLUICE" -c w.ini --set parser.mode=never --set sluice.call_deadline=10m --set sluice.shutdown_grace=1s \
    run --json docs >term.json 2>term.err &
pid=$!
stored_at_least "$pid" store.db 3 # the three good documents
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
check_eq "SIGTERM with a call stuck: status 3 after the grace" "$rc" 3
check_contains "SIGTERM: names where it was stuck" "$(cat term.err)" "still in flight .* in parser \(1\)"
check_eq "SIGTERM: the report is printed" "$(jq -r '.documents.stored' term.json)" 3
check_eq "SIGTERM: the report says interrupted" "$(jq -r '.interrupted' term.json)" true

finish
