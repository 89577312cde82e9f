#!/usr/bin/env bash
# tests/plugins/sink-sqlite/settle.sh - a run ends, and reports, only once
# sink-sqlite's keyword file has caught up with what the run stored (the
# sink's settle, plugin.h ABI 1.6), and a keyword file that cannot catch up
# is a warning, never a failed document or a lost one.
#
# The keyword thread is held back for sure: another connection holds the
# keyword file's write lock while the run stores. The report is read as
# sluice writes it, before the process exits: at that moment the file's
# state must already reach the store's log head (before settle, the report
# came first and the file caught up at exit, after it). Then, with a busy
# timeout shorter than the lock is held, the catch-up fails: the run still
# stores every document, exits 0 and says why in a warning; the next
# keyword query catches the file up and finds the new documents.
source "$(dirname "$0")/../../e2e/lib.sh"

db=$T/s.db
kw=$db.keywords
common=(run --json --set store.path="$db")

source "$(dirname "$0")/keywords.sh"

# hold_lock SECONDS: another connection holds the keyword file's write
# lock for that long (in the background); returns once it holds it
hold_lock() {
    rm -f "$T/locked"
    printf 'BEGIN IMMEDIATE;\nUPDATE kw_state SET id = id;\n.shell touch %s/locked\n.shell sleep %s\nCOMMIT;\n' \
        "$T" "$1" | sqlite3 -batch "$kw" >/dev/null &
    holder=$!
    for _ in $(seq 1 200); do
        [[ -e $T/locked ]] && return 0
        sleep 0.05
    done
    fail "the lock holder never took the keyword file's lock"
    finish
}

write_docs docs 1 20
sl_ok "${common[@]}" docs
check_eq "first run: stored" "$(json .documents.stored)" 20
check_eq "first run: the keyword file reached the log head" "$(kw_seq)" "$(log_head)"
check_eq "first run: a settle stage ran once" "$(json '.stages[] | select(.name == "store.settle") | .items')" 1
check "first run: settle_s is a number" test "$(json '.binding.settle_s | type')" = number

# --- held back: the report waits for the catch-up ---
write_docs docs 21 40
hold_lock 4
head0=$(log_head)
# the report as sluice writes it; the keyword state read at its last line,
# while sluice has not exited yet (it exits only after the report)
set +e
timeout -k 10 "$SLUICE_TIMEOUT" "$SLUICE" "${common[@]}" docs </dev/null 2>"$T/held.err" | {
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$T/held.json"
        [[ $line == "}" ]] && break
    done
    echo "$(kw_seq) $(log_head)" >"$T/at_report"
    cat >/dev/null
}
rc=${PIPESTATUS[0]}
set -e
wait "$holder" || true
check_eq "held: exit status" "$rc" 0
# shellcheck disable=SC2034 # read by json (lib.sh)
OUT=$(cat "$T/held.json")
check_eq "held: stored" "$(json .documents.stored)" 20
check_eq "held: skipped" "$(json .documents.skipped)" 20
read -r seq_at head_at <"$T/at_report"
check_gt "held: the run logged new keyword entries" "$head_at" "$head0"
check_eq "held: at the report, the keyword file had caught up with the run" "$seq_at" "$head_at"
settle=$(json .binding.settle_s)
wall=$(json .wall_s)
check "held: the settle waited for the lock (settle_s $settle)" awk -v s="$settle" 'BEGIN { exit !(s > 0.2) }'
check "held: the settle is inside the run's wall ($settle of $wall s)" awk -v s="$settle" -v w="$wall" \
    'BEGIN { exit !(s < w) }'
if awk -v s="$settle" -v w="$wall" 'BEGIN { exit !(s >= 0.3 * w) }'; then
    check_eq "held: a settle of 30% or more of the run binds it" "$(json .binding.kind)" store
    check_contains "held: the line names the store's catching up" "$(json .binding.line)" \
        "after the last document was stored to bring its own indexes up to date"
fi
check_lacks "held: no warning" "$(cat "$T/held.err")" "warn"
sl_ok query --set store.path="$db" --mode keyword --json -k 3 wordmark33
check_eq "held: the new document is found by keyword" "$(json 'hits[0].uri')" "docs/n33.md"

# --- cannot catch up: a warning, every document stored ---
write_docs docs 41 50
hold_lock 6
sl "${common[@]}" --set store.busy_timeout=1s docs
wait "$holder" || true
check_eq "locked: exit status" "$RC" 0
check_eq "locked: stored" "$(json .documents.stored)" 10
check_eq "locked: failed" "$(json .documents.failed)" 0
check_contains "locked: the warning names the stage" "$ERR" "store.settle"
check_contains "locked: the warning names the keyword file" "$ERR" "$kw"
check_contains "locked: the warning says nothing was lost" "$ERR" "the documents are stored"
check_eq "locked: every document is in the store" "$(sql "$db" "SELECT count(*) FROM documents;")" 50
check_eq "locked: no duplicate (document, ordinal)" "$(duplicate_chunks "$db")" 0
check "locked: the keyword file is behind (seq $(kw_seq) of $(log_head))" test "$(kw_seq)" -lt "$(log_head)"
sl_ok query --set store.path="$db" --mode keyword --json -k 3 wordmark47
check_eq "locked: a keyword query catches up and finds the new document" "$(json 'hits[0].uri')" "docs/n47.md"
check_eq "locked: after the query the keyword file reached the head" "$(kw_seq)" "$(log_head)"

finish
