#!/usr/bin/env bash
# tests/providers-e2e/serve.sh - `sluice serve` against the fake provider:
#   - files created, changed and deleted in the watched folder (and in a new
#     subfolder) reach the store, or leave it, within seconds, by events
#     alone (the rescan is an hour away);
#   - one writer per store: `run` and a second `serve` are refused with
#     exit 4 and the holder's PID;
#   - SIGHUP with a broken config is refused with the reason in the log and
#     the old config keeps ingesting; SIGHUP with another chunk size stores
#     every document again (new pipeline fingerprint);
#   - a file that arrives while a change pass runs joins that pass;
#   - SIGTERM with work in flight exits 0, and a `run` after it stores
#     nothing new and skips everything: nothing was lost;
#   - a holder killed with SIGKILL leaves a lock that does not block;
#   - [sluice] listen: /metrics counts over every pass, passes promtool, and
#     answers while a pass runs.
# Every wait polls for a state with a deadline; no sleep assumes a speed.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

export OPENAI_API_KEY="sk-serve-$$-$RANDOM"
export CWD=$T
DB=$T/.sluice/store.db
DEADLINE_S=${SERVE_DEADLINE_S:-20}

start_fake p --api-key "$OPENAI_API_KEY" --embed-dim 8
overrides=(--set "summarizer.base_url=${URL[p]}/v1" --set "embedder.base_url=${URL[p]}/v1"
    --set embedder.dimension=8)
serve_ini() { # FILE CHUNK_SIZE: the rescan is an hour away, so events alone must do
    openai_ini "$1" 'watch = w' 'watch_debounce = 200ms' 'rescan = 1h' 'report_interval = 1s' 'listen = 127.0.0.1:0'
    sed -i "s/^plugin = chunk-text$/plugin = chunk-text\nsize = $2\noverlap = 10/" "$1"
}

# wait_for DESCRIPTION COMMAND...: polls COMMAND until it succeeds or the
# deadline passes (then the check fails).
wait_for() {
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
uris() { q "SELECT group_concat(uri, ' ') FROM (SELECT uri FROM documents ORDER BY uri);"; }
uris_are() { [[ $(uris) == "$1" ]]; }
log_has() { grep -qE -- "$1" serve.err; }
serving() { kill -0 "$spid" 2>/dev/null; }

start_serve() {
    "$SLUICE" -c serve.ini "${overrides[@]}" serve </dev/null >serve.out 2>serve.err &
    spid=$!
}
stop_serve() { # waits; sets SRC_RC
    kill -TERM "$spid" 2>/dev/null || true
    set +e
    wait "$spid"
    SRC_RC=$?
    set -e
}

# doc TITLE: a Markdown document of a few hundred characters (several chunks at size 40)
doc() {
    printf '# %s\n\n' "$1"
    for i in 1 2 3 4 5 6; do printf 'Sentence %d of the document called %s, with some words.\n\n' "$i" "$1"; done
}
mkdir w
doc 'Alpha The first document.' >w/a.md
doc 'Beta The second document.' >w/b.md
serve_ini serve.ini 400
start_serve
wait_for "the initial pass stores the two files" uris_are "w/a.md w/b.md"
check "serve still running after the initial pass" serving

# --- one writer per store ---
sl -c serve.ini "${overrides[@]}" run --json w
check_eq "run while serve holds the store: exit status" "$RC" 4
check_contains "run while serve holds the store: names the holder's PID" "$ERR" "in use by another sluice process \(PID $spid"
sl -c serve.ini "${overrides[@]}" serve
check_eq "a second serve: exit status" "$RC" 4
check_contains "a second serve: names the holder's PID" "$ERR" "PID $spid"
check "serve survives the refused newcomers" serving

# --- create, change, delete, new subfolder ---
hash_a=$(q "SELECT hash FROM documents WHERE uri = 'w/a.md';")
doc 'Gamma A new document.' >w/c.md
doc 'Alpha The first document, changed.' >w/a.md
rm w/b.md
mkdir w/sub
doc 'Delta In a new subfolder.' >w/sub/d.md
wait_for "created, changed and deleted files reach the store" uris_are "w/a.md w/c.md w/sub/d.md"
a_changed() { [[ $(q "SELECT hash FROM documents WHERE uri = 'w/a.md';") != "$hash_a" ]]; }
wait_for "the changed file is stored again" a_changed
# a file created in the new subfolder after its watch was added
doc 'Epsilon Later in the subfolder.' >w/sub/e.md
wait_for "a file added to the new subfolder is stored" uris_are "w/a.md w/c.md w/sub/d.md w/sub/e.md"
rm -r w/sub
wait_for "a deleted subfolder's documents leave the store" uris_are "w/a.md w/c.md"
# files arriving faster than the debounce, for longer than a pass: each
# waits for its own quiet time, and those ready during a pass go into the
# next one (both once lost files until the rescan)
mkdir w/stream
for i in $(seq 1 30); do
    doc "Stream $i" >"w/stream/s$i.md"
    sleep 0.05
done
streamed() { [[ $(q "SELECT count(*) FROM documents WHERE uri LIKE 'w/stream/%';") == 30 ]]; }
wait_for "30 files arriving one after another are all stored" streamed
rm -r w/stream
wait_for "the streamed folder leaves the store when deleted" uris_are "w/a.md w/c.md"
check_eq "no duplicate chunks" "$(duplicate_chunks "$DB")" 0
check_eq "no orphan chunks" "$(orphan_chunks "$DB")" 0
wait_for "the periodic counters line" log_has "serve: up [0-9]+ s: [0-9]+ passes; [0-9]+ stored"
# /metrics counts over every pass: as many stored as the passes said
addr=$(sed -n 's|.*serving http://\([^/]*\)/.*|\1|p' serve.err | head -1)
metric() { curl -sf --max-time 10 "http://$addr/metrics" | sed -n "s/^$1 //p"; }
passes_stored=$(sed -n 's/.* pass over [0-9]* paths: \([0-9]*\) stored.*/\1/p' serve.err | awk '{ s += $1 } END { print s + 0 }')
check_eq "/metrics: stored over every pass = the passes' sum" "$(metric 'sluice_documents_total{outcome="stored"}')" "$passes_stored"
curl -sf --max-time 10 "http://$addr/metrics" >metrics.txt || true
check "/metrics passes promtool check metrics" promtool check metrics <metrics.txt

# --- SIGHUP with a broken config: refused, the old one keeps ingesting ---
cp serve.ini good.ini
printf '\n[bogus]\nplugin = no-such-plugin\n' >>serve.ini
kill -HUP "$spid"
wait_for "a broken reload is refused with the reason in the log" log_has "reload refused, the running configuration stays: .*no-such-plugin"
check "serve still running after a refused reload" serving
doc 'Zeta After the refused reload.' >w/f.md
wait_for "the old configuration still ingests" uris_are "w/a.md w/c.md w/f.md"

# --- SIGHUP with another chunk size: every document stored again ---
fp_old=$(q "SELECT group_concat(DISTINCT fingerprint) FROM documents;")
chunks_old=$(q "SELECT count(*) FROM chunks;")
serve_ini serve.ini 40
kill -HUP "$spid"
restored() {
    [[ $(q "SELECT count(*) FROM documents WHERE fingerprint = '$fp_old';") == 0 &&
        $(q "SELECT count(*) FROM documents;") == 3 ]]
}
wait_for "after a reload with chunker size 40, every document has the new fingerprint" restored
wait_for "the reload is logged" log_has "reloaded .*serve.ini"
check_gt "smaller chunks: more chunks than before ($chunks_old)" "$(q 'SELECT count(*) FROM chunks;')" "$chunks_old"
check_eq "no duplicate chunks after the reload" "$(duplicate_chunks "$DB")" 0

# --- a file ready during a change pass joins it, not waiting for its end ---
fake_config p '{"latency-ms": 2000, "latency-dist": "fixed"}'
doc 'Eta Slow to store.' >w/slow.md
provider_busy() { (($(fake_stats p .in_flight) > 0)); }
wait_for "the slow file's requests reach the provider" provider_busy
doc 'Theta Arrives while the pass runs.' >w/joiner.md
wait_for "the file arriving during the pass joins it" log_has "w/joiner.md: joins the change pass in progress"
wait_for "both are stored" uris_are "w/a.md w/c.md w/f.md w/joiner.md w/slow.md"
check_contains "one change pass over one path stored both" "$(cat serve.err)" \
    "change pass over 1 paths: 2 stored, 0 skipped, 0 failed"
check_eq "no duplicate chunks after a file joined a pass" "$(duplicate_chunks "$DB")" 0
fake_config p '{"latency-ms": 0}'
rm w/slow.md w/joiner.md
wait_for "the two leave the store" uris_are "w/a.md w/c.md w/f.md"

# --- SIGTERM with work in flight: exit 0, nothing lost ---
fake_config p '{"latency-ms": 1500, "latency-dist": "fixed"}'
mkdir staging
for i in $(seq 1 12); do printf '# Batch %d\n\nDocument %d of a batch.\n' "$i" "$i" >"staging/b$i.md"; done
mv staging w/batch # one event: the folder arrives whole
in_flight() { (($(fake_stats p .in_flight) > 0)); }
wait_for "requests of the batch reach the provider" in_flight
check_gt "/metrics answers during a pass, with documents in flight" "$(metric sluice_documents_in_flight)" 0
stop_serve
check_eq "serve exits 0 after SIGTERM with work in flight" "$SRC_RC" 0
check_contains "the log says it finishes what is in flight" "$(cat serve.err)" "interrupted: finishing [0-9]+ documents in flight"
fake_config p '{"latency-ms": 0}'
nfiles=$(count_files w '*.md')
sl -c serve.ini "${overrides[@]}" run --json w
check_eq "run after serve: exit status" "$RC" 0
check_eq "run after serve: nothing new stored" "$(json .documents.stored)" 0
check_eq "run after serve: every file skipped" "$(json .documents.skipped)" "$nfiles"
check_eq "run after serve: nothing failed" "$(json .documents.failed)" 0

# --- a killed holder does not block ---
start_serve
lock_is_serve() { [[ $(cut -d" " -f1 "$DB.lock" 2>/dev/null) == "$spid" ]] && log_has "initial pass"; }
wait_for "the new serve holds the lock" lock_is_serve
kill -9 "$spid"
wait "$spid" 2>/dev/null || true
sl -c serve.ini "${overrides[@]}" run --json w
check_eq "run after the holder was killed with SIGKILL: exit status" "$RC" 0
check_eq "run after SIGKILL: nothing new stored" "$(json .documents.stored)" 0

# --- two runs: the second is refused while the first writes ---
fake_config p '{"latency-ms": 3000, "latency-dist": "fixed"}'
"$SLUICE" -c serve.ini "${overrides[@]}" --set store.path="$T/two.db" run w </dev/null >/dev/null 2>run1.err &
rpid=$!
lock_is_run() { [[ $(cut -d" " -f1 "$T/two.db.lock" 2>/dev/null) == "$rpid" ]]; }
wait_for "the first run holds the lock" lock_is_run
sl -c serve.ini "${overrides[@]}" --set store.path="$T/two.db" run --json w
check_eq "a second run on the same store: exit status" "$RC" 4
check_contains "a second run: names the first run's PID" "$ERR" "PID $rpid"
kill -9 "$rpid"
wait "$rpid" 2>/dev/null || true
fake_config p '{"latency-ms": 0}'
sl -c serve.ini "${overrides[@]}" --set store.path="$T/two.db" run --json w
check_eq "a run after the first run was killed with SIGKILL: exit status" "$RC" 0
check_eq "a run after SIGKILL: every file stored or skipped" "$(($(json .documents.stored) + $(json .documents.skipped)))" "$nfiles"
finish
