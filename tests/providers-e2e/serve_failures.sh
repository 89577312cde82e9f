#!/usr/bin/env bash
# tests/providers-e2e/serve_failures.sh - `sluice serve` keeps the failure
# list as `run` does (failures.h), against the fake provider:
#   - a malformed document (invalid UTF-8) fails each pass that sees it and
#     is recorded in the store with its stage, reason and attempts, counted
#     across passes (the periodic rescan retries it);
#   - `sluice failed --json` reads the list while serve holds the store (a
#     reader is not a second writer);
#   - after [sluice] max_attempts passes it is a dead letter: later rescans
#     pass it over (attempts stay, the log and /metrics say "parked");
#   - a dead letter that was stored before it broke keeps its stored
#     version through the rescans' prune (the file is there);
#   - the file fixed in place is stored by the next pass (a changed file is
#     not kept a dead letter) and its entry leaves the list;
#   - a new file that fails while serve runs is recorded too.
# Every wait polls for a state with a deadline; no sleep assumes a speed.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

export OPENAI_API_KEY="sk-servefail-$$-$RANDOM"
export CWD=$T
DB=$T/.sluice/store.db
DEADLINE_S=${SERVE_DEADLINE_S:-30}
MAX=3

start_fake p --api-key "$OPENAI_API_KEY" --embed-dim 8
overrides=(--set "summarizer.base_url=${URL[p]}/v1" --set "embedder.base_url=${URL[p]}/v1"
    --set embedder.dimension=8)
# a rescan every second: the safety net is what retries a failed file
openai_ini serve.ini 'watch = w' 'watch_debounce = 200ms' 'rescan = 1s' "max_attempts = $MAX" \
    'listen = 127.0.0.1:0'

wait_for() { # DESCRIPTION COMMAND...: polls COMMAND until it succeeds or the deadline passes
    local what=$1 t_end=$(($(date +%s) + DEADLINE_S))
    shift
    checks=$((checks + 1))
    until "$@"; do
        if (($(date +%s) >= t_end)); then
            fail "$what: not within ${DEADLINE_S} s"
            return 0
        fi
        sleep 0.1
    done
}
q() { sql "$DB" "$1" 2>/dev/null || echo "?"; }
serving() { kill -0 "$spid" 2>/dev/null; }
# failed_json: `sluice failed --json` on serve's store, while serve runs
failed_json() { "$SLUICE" -c serve.ini "${overrides[@]}" failed --json 2>failed.err >failed.json; }
entry() { # URI FIELD: the field of URI's row in the last failed.json, or "none"
    jq -r --arg u "$1" "[.failures[] | select(.uri == \$u) | .$2] | if length == 0 then \"none\" else .[0] end" failed.json
}
attempts_at_least() { failed_json && [[ $(entry "$1" attempts) =~ ^[0-9]+$ ]] && (($(entry "$1" attempts) >= $2)); }
rescans() { grep -c 'serve: rescan pass over' serve.err || true; }
rescans_past() { (($(rescans) >= $1)); }
stored() { [[ $(q "SELECT count(*) FROM documents WHERE uri = '$1';") == 1 ]]; }
no_entry() { failed_json && [[ $(entry "$1" uri) == none ]]; }

mkdir w
printf '# Good\n\nA document that is stored at once.\n' >w/good.md
printf '# Was good\n\nStored once, broken later.\n' >w/was.md
sl -c serve.ini "${overrides[@]}" run --json w
check_eq "a first run stores was.md and good.md" "$(json .documents.stored)" 2
was_hash=$(q "SELECT hash FROM documents WHERE uri = 'w/was.md';")
printf '# Bad\n\nThese bytes are not UTF-8: \xff\xfe here.\n' >w/bad.md
printf '# Was good\n\nBroken now: \xe9t\xe9 in Latin-1.\n' >w/was.md
# every failure is recorded in a later second than the files' last change,
# so a dead letter's "changed since its last failure" is plainly false
t_made=$(stat -c %Z w/bad.md w/was.md | sort -n | tail -1)
until (($(date +%s) > t_made)); do sleep 0.1; done

"$SLUICE" -c serve.ini "${overrides[@]}" serve </dev/null >serve.out 2>serve.err &
spid=$!
wait_for "the good file is stored" stored w/good.md

# --- the failure is in the store while serve holds it ---
wait_for "the malformed file is in 'sluice failed --json'" attempts_at_least w/bad.md 1
check "'sluice failed --json' while serve holds the store: exit 0" failed_json
check_eq "failed --json: the stage" "$(entry w/bad.md stage)" markdown
check_contains "failed --json: the reason names the byte" "$(entry w/bad.md reason)" "invalid UTF-8 at byte [0-9]+"
check_eq "failed --json: max_attempts" "$(jq -r .max_attempts failed.json)" "$MAX"
check_contains "'sluice failed' (table) while serve runs" \
    "$("$SLUICE" -c serve.ini "${overrides[@]}" failed 2>&1)" "w/bad.md \[markdown\] attempts [0-9]+"
check "serve still running alongside the readers" serving

# --- attempts count across rescans, up to a dead letter ---
wait_for "attempts reach max_attempts over the rescans" attempts_at_least w/bad.md "$MAX"
check_eq "after max_attempts passes: attempts" "$(entry w/bad.md attempts)" "$MAX"
check_eq "after max_attempts passes: a dead letter" "$(entry w/bad.md dead_letter)" true
wait_for "the broken stored file reaches max_attempts too" attempts_at_least w/was.md "$MAX"
check_eq "failed --json counts both as dead letters" "$(jq -r .dead_letters failed.json)" 2
# two more rescans: it is passed over, not tried again
seen=$(rescans)
wait_for "two more rescans" rescans_past $((seen + 2))
failed_json
check_eq "a dead letter is not retried by rescans: attempts" "$(entry w/bad.md attempts)" "$MAX"
check_eq "the other dead letter is not retried either" "$(entry w/was.md attempts)" "$MAX"
check_eq "a dead letter stored before it broke keeps its stored version through the rescans" \
    "$(q "SELECT hash FROM documents WHERE uri = 'w/was.md';")" "$was_hash"
check_contains "the log says it is passed over" "$(cat serve.err)" \
    "w/bad.md.*a dead letter \(failed max_attempts runs\): passed over"
check_contains "a rescan counts it passed over" "$(cat serve.err)" \
    "rescan pass over [0-9]+ paths: 0 stored, [0-9]+ skipped, 0 failed, 0 pruned, 2 dead letters passed over"
addr=$(sed -n 's|.*serving http://\([^/]*\)/.*|\1|p' serve.err | head -1)
metric() { curl -sf --max-time 10 "http://$addr/metrics" | sed -n "s/^$1 //p"; }
check_gt "/metrics counts parked documents" "$(metric 'sluice_documents_total{outcome="parked"}')" 0
check_eq "the dead letter is not in the store" "$(q "SELECT count(*) FROM documents WHERE uri = 'w/bad.md';")" 0

# --- a fixed file is stored and leaves the list ---
printf '# Bad no more\n\nFixed: every byte is UTF-8 now.\n' >w/bad.md
wait_for "the fixed dead letter is stored" stored w/bad.md
wait_for "the stored file's entry leaves the failure list" no_entry w/bad.md
printf '# Was good\n\nGood again.\n' >w/was.md
was_stored_again() { [[ $(q "SELECT hash FROM documents WHERE uri = 'w/was.md';") != "$was_hash" ]]; }
wait_for "the other fixed dead letter is stored again" was_stored_again
wait_for "its entry leaves the list too" no_entry w/was.md
check_eq "failed --json: nothing left" "$(jq -r .count failed.json)" 0
check_eq "the failures table is empty" "$(q 'SELECT count(*) FROM failures;')" 0

# --- a file that fails while serve runs (a change pass) is recorded too ---
printf '# Late\n\n\xc3\x28 broken\n' >w/late.md
wait_for "a new malformed file is in the list" attempts_at_least w/late.md 1
check_eq "the new file's stage" "$(entry w/late.md stage)" markdown
check "serve still running" serving

kill -TERM "$spid"
set +e
wait "$spid"
src=$?
set -e
check_eq "serve exits 0 after SIGTERM" "$src" 0
check_eq "the list outlives serve" "$("$SLUICE" -c serve.ini "${overrides[@]}" failed --json | jq -r '.failures[].uri')" w/late.md
finish
