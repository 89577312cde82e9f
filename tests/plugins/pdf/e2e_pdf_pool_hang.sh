#!/usr/bin/env bash
# tests/plugins/pdf/e2e_pdf_pool_hang.sh - a PDF that hangs mupdf
# (hostile/forms-bomb.pdf: form XObjects 64 wide and 6 deep, days of work)
# in pool mode, not isolated (issue 17, finding 10: the first SIGTERM
# waited for "documents in flight" for ever, and every rerun hung the
# same way).
#
# 1. SIGTERM: the run stops within [sluice] shutdown_grace with exit 3,
#    and the message names the document still running and its plugin.
# 2. No signal: the call passes [sluice] call_deadline, the document
#    fails with that reason (its thread is left to it, a new one takes its
#    place), the others are stored, and the run ends by itself: exit 1.
# 3. Reruns do the same, never hang; once the document has failed
#    [sluice] max_attempts runs it is a dead letter, passed over: exit 0.
#
# Usage (ctest): e2e_pdf_pool_hang.sh SLUICE SOURCE_DIR FIXTURE_DIR
source "$2/tests/e2e/lib.sh"
FIXTURES=$(realpath "$3")
CONF=$SRC/conf/pdf.ini

mkdir corpus
cp "$FIXTURES"/hostile/forms-bomb.pdf "$FIXTURES"/text.pdf corpus/
printf '# Notes\n\nThe lock keeper logs every barge by name.\n' >corpus/notes.md
db=$T/store.db
POOL=(-c "$CONF" --set "store.path=$db" --set sluice.threads=2)
bomb_reason() { jqo '.failed[] | select(.uri == "corpus/forms-bomb.pdf") | .reason'; }

# --- 1. SIGTERM while the bomb runs on a pool thread ---
"$SLUICE" "${POOL[@]}" --set sluice.shutdown_grace=2s --set sluice.slow_call=1s run corpus \
    </dev/null >term.out 2>term.err &
pid=$!
# the watchdog names a pool call running past slow_call: the bomb is in mupdf
for _ in $(seq 1 600); do
    grep -q "plugin parse-pdf has been running" term.err && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
check_contains "the bomb is running on a pool thread" "$(cat term.err)" "plugin parse-pdf has been running .* on corpus/forms-bomb.pdf"
kill -TERM "$pid" 2>/dev/null || true
end=$(($(date +%s) + 120))
while kill -0 "$pid" 2>/dev/null && (($(date +%s) < end)); do sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
    fail "SIGTERM: still running 120 s after it (grace 2 s)"
    kill -9 "$pid"
fi
set +e
wait "$pid"
rc=$?
set -e
check_eq "SIGTERM: exit status 3 (interrupted)" "$rc" 3
check_contains "SIGTERM: names the document still running and its plugin" "$(cat term.err)" \
    "stopping: 1 documents still in flight 2000 ms after the interrupt .* in pdf \(1\); still running on the thread pool: corpus/forms-bomb.pdf \(parse-pdf, [0-9.]+ s\)"

# --- 2. no signal: call_deadline fails the document, the run ends ---
run_pool() { sl "${POOL[@]}" --set sluice.call_deadline=3s --set sluice.max_attempts=3 "$@" run --json corpus; }
run_pool
check_eq "call_deadline: exit status 1 (one document failed)" "$RC" 1
if [[ $RC -ne 1 ]]; then echo "stderr: $(tail -c 3000 <<<"$ERR")" >&2; fi
check_eq "call_deadline: the others are stored (or were, during the grace above)" \
    "$(json '.documents.stored + .documents.skipped')" 2
check_eq "call_deadline: one failure" "$(json .documents.failed)" 1
check_eq "call_deadline: the bomb fails in the parser" \
    "$(jqo '.failed[] | select(.uri == "corpus/forms-bomb.pdf") | .stage')" pdf
check_contains "call_deadline: the reason says so" "$(bomb_reason)" \
    "no answer from parse-pdf within [0-9.]+ s \(\[sluice\] call_deadline\)"
check_contains "call_deadline: the log names the document" "$ERR" \
    "corpus/forms-bomb.pdf.*plugin parse-pdf still running after [0-9.]+ s"
check_eq "call_deadline: the bomb is not stored" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = 'corpus/forms-bomb.pdf';")" 0
check_contains "call_deadline: text.pdf's text is stored" \
    "$(sql "$db" "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = 'corpus/text.pdf';" | tr '\n' ' ')" "seventeen lanterns"

# --- 3. reruns: the same, then a dead letter ---
run_pool
check_eq "rerun: exit status 1, not a hang" "$RC" 1
check_eq "rerun: the stored ones skipped" "$(json .documents.skipped)" 2
check_contains "rerun: the bomb fails the same way" "$(bomb_reason)" "no answer from parse-pdf within"
run_pool
check_eq "third run: exit status 1" "$RC" 1
sl "${POOL[@]}" --set sluice.max_attempts=3 failed --json
check_eq "the failure list: three runs failed it" \
    "$(jqo '.. | objects | select(.uri? == "corpus/forms-bomb.pdf") | .attempts' | head -1)" 3
run_pool
check_eq "after max_attempts: exit status 0, the bomb passed over" "$RC" 0
check_eq "after max_attempts: one dead letter passed over" "$(json .documents.parked)" 1
finish
